"""The recorder of each marked test: the ``apirec`` and ``apirec_config`` fixtures, who gets them,
and the settings a test's marker, its directory's ``apirec_config`` and the session give it."""

from __future__ import annotations

import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ...core._modes import Mode
from ._options import CONFIG_KEYS, MARKER, counts_key, dir_out, session_mode, used_key

if TYPE_CHECKING:
    from ...core._recorder import Recorder

_DEFAULT_ROOT = "recordings"


@pytest.fixture
def apirec_config() -> dict[str, Any]:
    """Defaults for the marked tests of a directory: override it in a ``conftest.py``.

    Keys: ``dir`` (a directory, relative to the test file's), ``mode`` (used when the command line
    gives none), ``scope`` (the ``test_id``; ``None`` for none). A marker's own arguments win.
    """
    return {}


@pytest.fixture
def apirec(request: pytest.FixtureRequest, apirec_config: Mapping[str, Any]) -> Iterator[Recorder]:
    """The active Recorder of this test: its ``mode``, ``dir`` and ``scope``.

    Asking for it records or replays the test's calls, with or without the marker.
    """
    from ...core._calllog import calls

    recorder = _recorder(request.node, apirec_config)
    config = request.config
    config.stash[used_key] = True
    before = len(calls())
    try:
        with _activated(recorder):
            yield recorder
    finally:
        made = calls()
        made = made[before:] if len(made) >= before else made
        config.stash[counts_key].update(call.outcome for call in made)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give the ``apirec`` fixture to the tests marked ``@pytest.mark.apirec`` (on the test, its
    class or its module), and only to them: a session that marks no test pays nothing per test.

    It goes before the test's first function-scoped fixture, as an autouse fixture would: those
    fixtures' calls are recorded with the test's, and fixtures of wider scope (set up once for
    many tests) are left out.
    """
    for item in items:
        if item.get_closest_marker(MARKER) is None:
            continue
        names: list[str] | None = getattr(item, "fixturenames", None)
        if names is None or "apirec" in names:
            continue
        definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
        position = len(names)
        for index, name in enumerate(names):
            found = definitions.get(name)
            if not found or found[-1].scope == "function":
                position = index
                break
        names.insert(position, "apirec")


def _recorder(item: pytest.Item, defaults: Mapping[str, Any]) -> Recorder:
    """The Recorder for one test: its marker's arguments, then ``apirec_config``, then the session's."""
    settings = _settings(item, defaults)
    recorder = _test_recorder_class()(
        settings["mode"],
        settings["dir"],
        settings["scope"],
        block_network=settings["block_network"],
        allow_hosts=settings["allow_hosts"],
        ignore=settings["ignore"],
        normalize=settings["normalize"],
        dir_out=dir_out(item.config, item.path.stem),
        pace=item.config.getoption("apirec_pace", None),
    )
    if not settings["mode_set_by_test"]:  # --apirec-mode decides: a missing call's error says it first
        recorder.record_command = record_command(item)
    return recorder


def record_command(item: pytest.Item) -> str:
    return f"pytest --apirec-mode=record-if-missing {shlex.quote(item.nodeid)}"


_recorder_class: type[Recorder] | None = None


def _test_recorder_class() -> type[Recorder]:
    global _recorder_class
    if _recorder_class is None:
        from ...core._recorder import Recorder

        class TestRecorder(Recorder):
            """A Recorder whose directory may not exist yet, even in replay: a test's first call
            explains what is missing (and a test that makes no call passes)."""

            __test__ = False

            def check(self) -> None:
                pass

        _recorder_class = TestRecorder
    return _recorder_class


def _settings(item: pytest.Item, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``mode``, ``dir`` and ``scope`` for one test.

    The mode: the marker's, else ``--apirec-mode`` when given, else ``apirec_config``'s, else
    ``replay`` (and ``APIREC_MODE`` over all of them, in the Recorder). A relative ``dir`` is
    relative to the test file's directory. ``scope`` may be ``None`` (no ``test_id``).
    """
    if not isinstance(defaults, Mapping):
        raise pytest.UsageError(
            f"{item.nodeid}: the apirec_config fixture must return a dict, not {type(defaults).__name__}"
        )
    _check_keys(item, "the apirec_config fixture", defaults)
    given = dict(defaults)
    if "mode" in given and item.config.getoption("apirec_mode", None):
        del given["mode"]  # the command line wins over a directory's default
    marker = item.get_closest_marker(MARKER)
    if marker is not None:
        if marker.args:
            raise pytest.UsageError(
                f"{item.nodeid}: @pytest.mark.{MARKER} takes keyword arguments only "
                f"({', '.join(f'{k}=' for k in CONFIG_KEYS)}), got {marker.args!r}"
            )
        _check_keys(item, f"@pytest.mark.{MARKER}", marker.kwargs)
        given.update(marker.kwargs)

    try:
        mode = Mode.parse(given["mode"]) if given.get("mode") is not None else session_mode(item.config)
    except ValueError as exc:
        raise pytest.UsageError(f"{item.nodeid}: {exc}") from None
    directory = Path(given["dir"]).expanduser() if given.get("dir") is not None else _default_dir(item)
    if not directory.is_absolute():
        directory = item.path.parent / directory
    scope = given["scope"] if "scope" in given else scope_for(item)
    if scope is not None and not isinstance(scope, str):
        raise pytest.UsageError(f"{item.nodeid}: scope must be a string or None, not {type(scope).__name__}")
    options = item.config.option
    block_network = bool(given.get("block_network") or options.apirec_block_network)
    if options.apirec_allow_host and not block_network:
        raise pytest.UsageError("--apirec-allow-host only means something with --apirec-block-network")
    marked_hosts = given.get("allow_hosts") or ()  # a test may name its hosts whether or not the run blocks
    allow_hosts = [*options.apirec_allow_host, *([marked_hosts] if isinstance(marked_hosts, str) else marked_hosts)]
    return {
        "mode": mode,
        "dir": directory,
        "scope": scope,
        "block_network": block_network,
        "allow_hosts": allow_hosts,
        "ignore": given.get("ignore") or (),
        "normalize": given.get("normalize"),
        "mode_set_by_test": given.get("mode") is not None,
    }


def _check_keys(item: pytest.Item, source: str, values: Mapping[str, Any]) -> None:
    unknown = sorted(set(values) - set(CONFIG_KEYS))
    if unknown:
        raise pytest.UsageError(
            f"{item.nodeid}: {source}: unknown setting(s) {', '.join(map(repr, unknown))}; "
            f"valid ones are: {', '.join(CONFIG_KEYS)}"
        )


def _default_dir(item: pytest.Item) -> Path:
    """``recordings/<module stem>/`` beside the test file, or under ``apirec_dir`` when it is set
    (there the test file's directory, relative to the root directory, is kept, so two test
    modules with the same name never share a directory)."""
    path = item.path
    root = str(item.config.getini("apirec_dir") or "").strip()
    if not root:
        return path.parent / _DEFAULT_ROOT / path.stem
    base = item.config.inipath.parent if item.config.inipath else item.config.rootpath
    root_path = Path(root).expanduser()
    root_path = root_path if root_path.is_absolute() else base / root_path
    try:
        relative = path.parent.relative_to(item.config.rootpath)
    except ValueError:
        relative = Path()
    return root_path / relative / path.stem


def scope_for(item: pytest.Item) -> str:
    """The ``test_id`` of a test's recordings: its node id from the file name on
    (``test_chat.py::TestX::test_y[gpt-4o]``). The directory already says where the test lives,
    so recordings do not depend on the directory pytest was started from."""
    _, sep, rest = item.nodeid.partition("::")
    return f"{item.path.name}{sep}{rest}"


class _activated:
    """Push ``recorder`` as a ``recording()`` block for the duration of the test."""

    def __init__(self, recorder: Recorder) -> None:
        from ...core._session import _pushed

        self._context = _pushed(recorder)

    def __enter__(self) -> Recorder:
        return self._context.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._context.__exit__(*exc)
