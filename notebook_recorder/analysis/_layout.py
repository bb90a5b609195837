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

MANIFEST = "_manifest.sqlite"
"""The manifest: an SQLite database of the exported files (see ``_export``)."""
OLD_MANIFEST = "_manifest.json"
"""The manifest of earlier builds (JSON): such a dataset is read, and rebuilt by an export."""
APPLICATION_ID = 0x6E724453  # "nrDS", in the SQLite header (``PRAGMA application_id``)
_SQLITE_MAGIC = b"SQLite format 3\x00"
_FORMAT = "notebook-recorder dataset"

__all__ = ["DATASETS", "MANIFEST", "SCHEMA_VERSION", "is_dataset"]


def _head(path: Path, n: int) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError:
        return b""


def is_dataset(path: Any) -> bool:
    """Whether ``path`` is a directory written by :func:`~notebook_recorder.export`: it has a
    manifest (only the first 100 bytes of the file are read)."""
    if not isinstance(path, str | os.PathLike):
        return False
    head = _head(Path(path, MANIFEST), 100)
    if len(head) == 100 and head.startswith(_SQLITE_MAGIC) and head[68:72] == APPLICATION_ID.to_bytes(4, "big"):
        return True
    return _FORMAT.encode() in _head(Path(path, OLD_MANIFEST), 200)
