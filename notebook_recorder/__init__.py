"""notebook-recorder: record OpenAI SDK calls and tool calls once, replay them exactly, offline.

>>> import notebook_recorder as nr
>>> with nr.recording("replay", dir="recordings"):
...     client.chat.completions.create(model="gpt-4o", messages=[...])

In a notebook: ``%load_ext notebook_recorder`` then ``%apirec replay``. Recordings are JSON files
in llama-stack's format; ``nr.load_recordings(path)`` turns a directory of them into a pandas frame.

Importing this package is cheap: the openai SDK, pandas and nbclient load only when used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .core._version import __version__ as __version__

# Public names, and the private module each one lives in. Loaded on first access (PEP 562), so
# that `import notebook_recorder` and `%load_ext notebook_recorder` stay light. The package's
# layers: `frontends` (magics, CLI, pytest plugin) -> `hooks` (SDKs, tools, network guard) ->
# `core`; `analysis` -> `core`.
_EXPORTS: dict[str, str] = {
    # recording and replaying
    "Mode": ".core._modes",
    "Recorder": ".core._recorder",
    "recording": ".core._session",
    "start": ".core._session",
    "stop": ".core._session",
    "calls": ".core._calllog",
    "clear_calls": ".core._calllog",
    "Call": ".core._calllog",
    "tool": ".hooks.tools",
    "register_types": ".core._types",
    # errors
    "RecordingError": ".core._errors",
    "RecordingNotFoundError": ".core._errors",
    "RecordingFormatError": ".core._errors",
    "RecordedToolError": ".core._errors",
    "NotRecordableError": ".core._errors",
    "NotRecordedWarning": ".core._errors",
    "NetworkBlockedError": ".core._errors",
    # analysis (pandas)
    "load_recordings": ".analysis",
    "load_frames": ".analysis",
    "Frames": ".analysis",
    "Column": ".analysis",
    "RecordingLoadError": ".analysis",
    "messages": ".analysis",
    "tool_calls": ".analysis",
    "token_stream": ".analysis",
    "plot_token_stream": ".analysis",
    "Recording": ".analysis",
}

# The names that start recorders: the hooks (`hooks/`) are registered with the core before they are used.
_STARTS_RECORDERS = frozenset({"recording", "start", "stop"})

__all__ = [*_EXPORTS, "load_ipython_extension", "unload_ipython_extension", "__version__"]

if TYPE_CHECKING:
    from .analysis import (
        Column as Column,
        Frames as Frames,
        Recording as Recording,
        RecordingLoadError as RecordingLoadError,
        load_frames as load_frames,
        load_recordings as load_recordings,
        messages as messages,
        plot_token_stream as plot_token_stream,
        token_stream as token_stream,
        tool_calls as tool_calls,
    )
    from .core._calllog import Call as Call, calls as calls, clear_calls as clear_calls
    from .core._errors import (
        NetworkBlockedError as NetworkBlockedError,
        NotRecordableError as NotRecordableError,
        NotRecordedWarning as NotRecordedWarning,
        RecordedToolError as RecordedToolError,
        RecordingError as RecordingError,
        RecordingFormatError as RecordingFormatError,
        RecordingNotFoundError as RecordingNotFoundError,
    )
    from .core._modes import Mode as Mode
    from .core._recorder import Recorder as Recorder
    from .core._session import recording as recording, start as start, stop as stop
    from .core._types import register_types as register_types
    from .hooks.tools import tool as tool


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'notebook_recorder' has no attribute {name!r}")
    if name in _STARTS_RECORDERS:
        importlib.import_module(".hooks", __name__)  # the hooks register themselves with the core
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext notebook_recorder``: register the ``%apirec`` / ``%%apirec`` magics."""
    from .frontends.ipython.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext notebook_recorder``: remove the magics and every patch they installed."""
    from .frontends.ipython.magics import unload_ipython_extension as unload

    unload(ipython)
