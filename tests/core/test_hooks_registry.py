"""The core installs the hooks that registered with it (``core/_hooks``), without importing any.

A hook is installed when the first recorder becomes active (``start``, a ``recording()`` block)
and removed when the last one ends, with the recorder's mode; the SDK hooks and the network guard
register themselves when ``notebook_recorder.hooks`` is imported.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import notebook_recorder as nr
from notebook_recorder.core import _hooks
from notebook_recorder.core._modes import Mode


@pytest.fixture
def events() -> Iterator[list[str]]:
    seen: list[str] = []
    _hooks.register(
        "test-hook",
        lambda mode: seen.append(f"install {mode.value if mode else None}"),
        lambda: seen.append("uninstall"),
    )
    try:
        yield seen
    finally:
        _hooks.unregister("test-hook")


def test_the_package_registers_the_sdk_hooks_and_the_network_guard() -> None:
    nr.recording  # noqa: B018  (the names that start recorders load the hooks)
    names = [hook.name for hook in _hooks.registered()]
    assert names[:2] == ["sdk", "network"]


def test_a_block_installs_the_registered_hooks_and_removes_them_at_its_end(events: list[str], tmp_path: Path) -> None:
    with nr.recording("record", dir=tmp_path):
        assert events == ["install record"]
        with nr.recording("live", dir=tmp_path):
            assert events == ["install record", "install live"]
        assert events == ["install record", "install live"]  # a block is still open
    assert events == ["install record", "install live", "uninstall"]


def test_start_installs_them_until_stop(events: list[str], tmp_path: Path) -> None:
    nr.start(Mode.RECORD_IF_MISSING, dir=tmp_path)
    try:
        assert events == ["install record-if-missing"]
        with nr.recording("record", dir=tmp_path):
            pass
        assert events == ["install record-if-missing", "install record"]  # the session remains
    finally:
        nr.stop()
    assert events[-1] == "uninstall"


def test_a_hook_registered_again_under_its_name_replaces_the_first(events: list[str], tmp_path: Path) -> None:
    _hooks.register("test-hook", lambda mode: events.append("second"), lambda: None)
    with nr.recording("record", dir=tmp_path):
        pass
    assert events == ["second"]
