"""The missing-recording search's summaries of a folder, kept on disk between processes.

:mod:`._notfound` ranks a folder's recordings by endpoint, model and changed fields before it
diffs the few nearest (:data:`._notfound.MAX_COMPARED`). Summarizing means reading every file
once: about two seconds for 30,000 files, paid again by every new process (each pytest run, each
kernel). This module keeps the summaries of a large folder (:data:`MIN_FILES` recordings or
more) in the user's cache directory, so the first miss of a later process reads only the files
it diffs.

Where and how it is kept is :mod:`._user_cache` (``nearest/`` in the user's cache directory;
``APIREC_CACHE_DIR=off`` turns it off). A summary is used only for a file that is in the folder's
listing now with the size and modification time it had when it was summarized; any other file is
summarized again. A cache file that is too large, not JSON, of another format version or another
folder, or has malformed entries is ignored (entry by entry), and at worst ranks the folder's
files in a worse order: what is shown is always diffed from the recordings themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from . import _user_cache

PART = "nearest"
FORMAT = "notebook-recorder nearest-recording summaries"
VERSION = 1
MIN_FILES = _user_cache.MIN_FILES
"""Folders with fewer recordings are summarized in well under a second: they are not cached."""


def cache_path(root: Path) -> Path | None:
    """The cache file of the recordings folder ``root`` (resolved); ``None``: the cache is off."""
    return _user_cache.cache_path(PART, root)


class Cached(NamedTuple):
    """What the cache file holds (checked by :mod:`._notfound` before any of it is used)."""

    groups: list[Any]  # [[group, model], ...]: the rows the entries point to
    files: dict[str, Any]  # path relative to the folder ("/"-separated) -> [size, mtime_ns, row, test_id, leaves]
    dirs: dict[str, Any]  # the folder's directories ("" for itself) -> mtime_ns when listed
    listed_at: int  # when the folder was listed (time.time_ns())


def load(root: Path) -> Cached | None:
    """The cache of ``root``, or ``None`` when there is none or it cannot be trusted (see the
    module's docstring). Never raises."""
    document = _user_cache.load(PART, root, FORMAT, VERSION)
    if document is None:
        return None
    groups, entries, dirs, listed_at = (document.get(name) for name in ("groups", "files", "dirs", "listed_at"))
    if not isinstance(groups, list) or not isinstance(entries, dict) or not isinstance(dirs, dict):
        return None
    return Cached(groups, entries, dirs, listed_at) if type(listed_at) is int else None


def save(root: Path, cached: Cached) -> None:
    """Replace the cache of ``root`` (atomically); a cache directory that cannot be written is
    left alone (the next process summarizes the folder again)."""
    _user_cache.save(PART, root, FORMAT, VERSION, cached._asdict())
