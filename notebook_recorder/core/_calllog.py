"""This process's call log: one :class:`Call` per intercepted call, written by the Recorder.

``calls()`` is what ``nr.calls()``, ``%apirec status``, the pytest summary and
``notebook-recorder run`` read. When ``$NOTEBOOK_RECORDER_USAGE_LOG`` is set, every replayed or
recorded file is also appended to that file (``prune`` and ``run`` read it from a kernel). Paths
are shown relative to the working directory (:func:`display_path`).
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# When set, every replayed or recorded file is appended to this file as ``<outcome>\t<absolute
# path>`` lines. ``notebook-recorder run`` and ``prune`` use it to learn what a kernel replayed.
ENV_USAGE_LOG = "NOTEBOOK_RECORDER_USAGE_LOG"


@dataclass(frozen=True)
class Call:
    """One entry of this process's call log (see :func:`calls`)."""

    index: int
    cell: int | None
    kind: str
    endpoint: str
    model: str
    mode: str
    outcome: str
    path: str | None
    key: str
    test_id: str | None
    ms: float
    streamed: bool
    error: str | None
    occurrence: int = 1
    """Which occurrence of its request the recording used is (the k-th identical request of a
    recording context is occurrence k; past the last recorded one, replay uses the last). For a
    call with no recording (live, missing), the call's own count."""
    origin: str | None = None
    """For ``kind="network"``: the ``file:line`` of the code that opened the connection."""
    client: str | None = None
    """Which library made the call or opened the connection, and through which HTTP library:
    ``google-genai via httpx2``, ``requests`` (the user's own call), ``None`` when not known (a
    typed SDK call, a raw socket)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _CallLog:
    def __init__(self) -> None:
        self._calls: list[Call] = []
        self._lock = threading.Lock()
        self.cell: int | None = None

    def append(self, **fields: Any) -> None:
        with self._lock:
            self._calls.append(Call(index=len(self._calls) + 1, cell=self.cell, **fields))

    def snapshot(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()


log = _CallLog()
"""The call log of this process (the Recorder appends to it)."""


def calls() -> list[Call]:
    """This process's intercepted calls, oldest first: endpoint or tool, model, outcome, file, timing.

    ``kind`` is the call's kind (``"inference"``, ``"embedding"``, ``"token_count"``..., as in the
    README's table of kinds) or ``"tool"``; also ``"realtime"`` for an SDK websocket connection
    (not recorded), and ``"network"`` for a connection that bypassed the hooks inside a recording
    context (``endpoint`` is ``host:port``, ``origin`` the code that opened it, ``outcome``
    ``"unrecorded"`` or ``"blocked"``). A recorded call whose file could not be written (disk
    full, a value JSON cannot hold...) is ``"unsaved"``: the caller got the answer, and a
    ``NotRecordedWarning`` said why. ``pandas.DataFrame(nr.calls())`` turns them into a frame.
    """
    return log.snapshot()


def clear_calls() -> None:
    """Empty the call log."""
    log.clear()


def set_cell(execution_count: int | None) -> None:
    """Tag the calls that follow with a notebook cell's execution count (the magics do this)."""
    log.cell = execution_count


def display_path(path: Path | str) -> str:
    """:func:`_shown_path`, remembered per working directory: the call log shows a path for
    every call, and resolving paths costs file-system calls."""
    return _shown_path(str(path), os.getcwd())


@functools.lru_cache(maxsize=1024)
def _shown_path(path: str, cwd: str) -> str:
    return _display_path_now(path, cwd)


@functools.lru_cache(maxsize=256)
def _resolved_directories(parent: str, cwd: str) -> tuple[Path, Path]:
    """``parent`` and the working directory ``cwd``, resolved, remembered: a recording context
    writes thousands of files to one directory, each with a new name (its occurrence), and
    resolving a directory costs a file-system call per component."""
    del cwd  # part of the cache key only: Path.cwd() is what is resolved, as before
    return Path(os.path.realpath(parent)), Path.cwd().resolve()


def _display_path_now(path: Path | str, cwd_key: str | None = None) -> str:
    """A path relative to the working directory when the two share a directory other than the
    root: ``recordings/x.json``, or ``../recordings/x.json`` from a notebook in ``notebooks/``
    (so notebook outputs do not show the machine's absolute paths). Else the path as it is.

    Only the directories are resolved, never the file itself: a symbolic link is shown by its own
    name, not its target's (a broken link or a link loop must be named as the user sees it).
    With ``cwd_key`` (``os.getcwd()``), the directories' resolution is remembered for that
    working directory, as :func:`_shown_path` remembers whole paths."""
    path = Path(path)
    try:
        if cwd_key is None:
            parent, cwd = Path(os.path.realpath(path.parent)), Path.cwd().resolve()
        else:
            parent, cwd = _resolved_directories(str(path.parent), cwd_key)
        resolved = parent / path.name
        try:
            return str(resolved.relative_to(cwd))
        except ValueError:
            common = Path(os.path.commonpath([resolved, cwd]))
            return os.path.relpath(resolved, cwd) if common.parent != common else str(path)
    except (ValueError, OSError, RuntimeError):  # another drive on Windows, a vanished cwd, a link loop
        return str(path)


_usage_lock = threading.Lock()


def log_usage(outcome: str, path: Path) -> None:
    """Append ``<outcome>\t<absolute path>`` to ``$NOTEBOOK_RECORDER_USAGE_LOG``, if it is set.

    Errors propagate on purpose: ``prune`` deletes what the log does not mention, so a log that
    silently lost lines could delete recordings that are in use.
    """
    target = os.environ.get(ENV_USAGE_LOG)
    if not target:
        return
    line = f"{outcome}\t{Path(path).resolve()}\n"
    with _usage_lock, open(target, "a", encoding="utf-8") as fh:
        fh.write(line)
