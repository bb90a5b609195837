"""What the plugin reports: a missing recording, explained, without the SDK's frames; the summary
line of the session's calls (added up across pytest-xdist workers)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ...core._errors import RecordingNotFoundError
from ...core._modes import ENV_MODE
from ._options import counts_key, session_mode, used_key
from ._recorder import record_command

if TYPE_CHECKING:
    from _pytest._code.code import ExceptionInfo, Traceback, TracebackEntry
    from _pytest.terminal import TerminalReporter


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport | None:
    """The report of a test that failed on a missing recording: the explanation, how to record it
    with pytest, and a traceback that ends at the user's line. Every other report is pytest's."""
    excinfo = call.excinfo
    if excinfo is None or not isinstance(excinfo.value, RecordingNotFoundError):
        return None
    error = excinfo.value
    command = record_command(item)
    if not getattr(error, "_apirec_hint", False) and command not in str(error):
        hint = f"In pytest, with the API key set:\n    {command}"
        if os.environ.get(ENV_MODE) and ENV_MODE not in str(error):
            hint += f"\n    ({ENV_MODE} is set to {os.environ[ENV_MODE]!r} and overrides --apirec-mode: unset it)"
        error.args = (f"{error.args[0]}\n{hint}", *error.args[1:]) if error.args else (hint,)
        error._apirec_hint = True  # type: ignore[attr-defined]
    if item.config.getoption("fulltrace", False):
        return None
    item._traceback_filter = _without_sdk_frames(item._traceback_filter)  # type: ignore[method-assign,assignment]
    try:
        return pytest.TestReport.from_item_and_call(item, call)
    finally:
        del item._traceback_filter


def _without_sdk_frames(
    pytest_filter: Callable[[ExceptionInfo[BaseException]], Traceback],
) -> Callable[[ExceptionInfo[BaseException]], Traceback]:
    """pytest's own traceback filter for an item, then the openai SDK's and this package's frames
    left out: the report ends at the user's line that made the call."""

    def traceback_filter(excinfo: ExceptionInfo[BaseException]) -> Traceback:
        from _pytest._code.code import Traceback

        entries = list(pytest_filter(excinfo))
        kept = [entry for entry in entries if _user_frame(entry)]
        if not kept:
            return Traceback(entries)
        return Traceback([*kept[:-1], kept[-1].with_repr_style(None)])

    return traceback_filter


_hidden_roots: tuple[str, ...] | None = None


def _user_frame(entry: TracebackEntry) -> bool:
    """Whether a traceback entry is the user's code: not the openai SDK's, not this package's."""
    global _hidden_roots
    if _hidden_roots is None:
        roots = [str(Path(__file__).resolve().parents[2])]  # the whole package, not only frontends/
        import sys

        for name in ("openai", "anthropic"):  # the hooked SDKs that are loaded
            sdk = sys.modules.get(name)
            if sdk is not None and sdk.__file__:
                roots.append(str(Path(sdk.__file__).resolve().parent))
        _hidden_roots = tuple(root + os.sep for root in roots)
    try:
        path = str(Path(entry.path).resolve())
    except (OSError, TypeError):
        return True
    return not path.startswith(_hidden_roots)


def pytest_terminal_summary(terminalreporter: TerminalReporter, config: pytest.Config) -> None:
    if not config.stash.get(used_key, False):
        return
    counts = config.stash[counts_key]
    parts = [f"{counts.get(outcome, 0)} {outcome}" for outcome in ("replayed", "recorded", "missing")]
    parts += [f"{n} {outcome}" for outcome, n in sorted(counts.items()) if outcome not in _MAIN_OUTCOMES and n]
    total = sum(counts.values())
    line = f"{total} call{'' if total == 1 else 's'}: {', '.join(parts)} (mode {session_mode(config).value})"
    markup = {"red": True} if counts.get("missing") else {}
    terminalreporter.write_sep("-", "notebook-recorder")
    terminalreporter.write_line(f"apirec: {line}", **markup)


_MAIN_OUTCOMES = frozenset({"replayed", "recorded", "missing"})


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None and config.stash.get(used_key, False):  # a pytest-xdist worker
        counts: Counter[str] = config.stash[counts_key]
        workeroutput["notebook_recorder_calls"] = dict(counts)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist: add a worker's call counts to the controller's."""
    counts = getattr(node, "workeroutput", {}).get("notebook_recorder_calls")
    if counts:
        config = node.config
        config.stash[used_key] = True
        config.stash[counts_key].update(counts)
