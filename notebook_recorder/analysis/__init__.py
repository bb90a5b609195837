"""Recordings as pandas frames, and a readable view of one recording.

pandas is imported by the frame functions only, when first used: ``Recording`` and the loader
work without it.

>>> df = load_recordings("recordings")        # one row per file
>>> messages(df); tool_calls(df); token_stream(df)
>>> recordings, msgs, calls, chunks = load_frames("recordings")   # all four at once
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._diff import RunDiff, diff
    from ._export import ExportResult, connect, export
    from ._frames import (
        MESSAGE_COLUMNS,
        RECORDING_COLUMNS,
        TOKEN_COLUMNS,
        TOOL_CALL_COLUMNS,
        Column,
        Frames,
        RecordingLoadWarning,
        load_frames,
        load_recordings,
        messages,
        token_stream,
        tool_calls,
    )
    from ._loader import RecordingLoadError, clear_cache
    from ._plot import plot_token_stream
    from ._recording import Recording
    from ._verdicts import DEFAULT_FAIL_ON, VERDICT_DOCS, VERDICTS

__all__ = [
    "DEFAULT_FAIL_ON",
    "MESSAGE_COLUMNS",
    "RECORDING_COLUMNS",
    "TOKEN_COLUMNS",
    "TOOL_CALL_COLUMNS",
    "VERDICTS",
    "VERDICT_DOCS",
    "Column",
    "ExportResult",
    "Frames",
    "Recording",
    "RecordingLoadError",
    "RecordingLoadWarning",
    "RunDiff",
    "clear_cache",
    "connect",
    "diff",
    "export",
    "load_frames",
    "load_recordings",
    "messages",
    "plot_token_stream",
    "token_stream",
    "tool_calls",
]

_WHERE = {
    "DEFAULT_FAIL_ON": "_verdicts",
    "RunDiff": "_diff",
    "VERDICTS": "_verdicts",
    "VERDICT_DOCS": "_verdicts",
    "diff": "_diff",
    "MESSAGE_COLUMNS": "_frames",
    "RECORDING_COLUMNS": "_frames",
    "TOKEN_COLUMNS": "_frames",
    "TOOL_CALL_COLUMNS": "_frames",
    "Column": "_frames",
    "Frames": "_frames",
    "load_frames": "_frames",
    "RecordingLoadWarning": "_frames",
    "load_recordings": "_frames",
    "messages": "_frames",
    "token_stream": "_frames",
    "tool_calls": "_frames",
    "RecordingLoadError": "_loader",
    "ExportResult": "_export",
    "connect": "_export",
    "export": "_export",
    "clear_cache": "_loader",
    "plot_token_stream": "_plot",
    "Recording": "_recording",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
