"""The layout of a dataset written by :func:`~notebook_recorder.export`: its names and version,
and how to tell one (no pandas, no pyarrow here)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
"""The version of the datasets' layout and columns; bumped when they change (an export of an
older version is rebuilt whole)."""

DATASETS: dict[str, str] = {
    "calls": "recordings",
    "messages": "messages",
    "tool_calls": "tool_calls",
    "chunks": "token_stream",
}
"""Dataset directory -> the frame it holds (:func:`load_frames`' names)."""

MANIFEST = "_manifest.json"
_FORMAT = "notebook-recorder dataset"

__all__ = ["DATASETS", "MANIFEST", "SCHEMA_VERSION", "is_dataset"]


def is_dataset(path: Any) -> bool:
    """Whether ``path`` is a directory written by :func:`~notebook_recorder.export`."""
    if not isinstance(path, str | os.PathLike):
        return False
    try:
        head = Path(path, MANIFEST).read_bytes()[:200]
    except OSError:
        return False
    return _FORMAT.encode() in head
