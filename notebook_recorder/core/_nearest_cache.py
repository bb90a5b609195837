"""The missing-recording search's summaries of a folder, kept on disk between processes.

:mod:`._notfound` ranks a folder's recordings by endpoint, model and changed fields before it
diffs the few nearest (:data:`._notfound.MAX_COMPARED`). Summarizing means reading every file
once: about two seconds for 30,000 files, paid again by every new process (each pytest run, each
kernel). This module keeps the summaries of a large folder (:data:`MIN_FILES` recordings or
more) in the user's cache directory, so the first miss of a later process reads only the files
it diffs.

Safe for a stranger's folder: nothing is written into the recordings folder, only under
``$XDG_CACHE_HOME/notebook-recorder/nearest/`` (``~/.cache`` by default), one JSON file per
folder (named by a hash of its resolved path), written atomically (a temporary file, then a
rename). The file is data only (``orjson``, never pickle): a summary is used only for a file
that is in the folder's listing now with the size and modification time it had when it was
summarized; any other file is summarized again. A cache file that is too large, not JSON, of
another format version or another folder, or has malformed entries is ignored (entry by entry),
and at worst ranks the folder's files in a worse order: what is shown is always diffed from the
recordings themselves.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from . import _files

FORMAT = "notebook-recorder nearest-recording summaries"
VERSION = 1
MIN_FILES = 1_000
"""Folders with fewer recordings are summarized in well under a second: they are not cached."""
MAX_BYTES = 256 << 20
"""A larger cache file is not read (30,000 recordings take about 7 MB)."""


def cache_dir() -> Path:
    """Where the summaries are kept: ``$XDG_CACHE_HOME/notebook-recorder/nearest``."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "notebook-recorder" / "nearest"


def cache_path(root: Path) -> Path:
    """The cache file of the recordings folder ``root`` (resolved)."""
    digest = hashlib.sha256(str(root).encode("utf-8", "surrogatepass")).hexdigest()[:24]
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in root.name)[:40]
    return cache_dir() / f"{name}-{digest}.json"


class Cached(NamedTuple):
    """What the cache file holds (checked by :mod:`._notfound` before any of it is used)."""

    groups: list[Any]  # [[group, model], ...]: the rows the entries point to
    files: dict[str, Any]  # path relative to the folder ("/"-separated) -> [size, mtime_ns, row, test_id, leaves]
    dirs: dict[str, Any]  # the folder's directories ("" for itself) -> mtime_ns when listed
    listed_at: int  # when the folder was listed (time.time_ns())


def load(root: Path) -> Cached | None:
    """The cache of ``root``, or ``None`` when there is none or it cannot be trusted (see the
    module's docstring). Never raises."""
    path = cache_path(root)
    try:
        if os.stat(path).st_size > MAX_BYTES:
            return None
        data, _ = _files.read_file(str(path))
        document = orjson.loads(data)
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(document, dict):
        return None
    if document.get("format") != FORMAT or document.get("version") != VERSION or document.get("root") != str(root):
        return None
    groups, entries, dirs, listed_at = (document.get(name) for name in ("groups", "files", "dirs", "listed_at"))
    if not isinstance(groups, list) or not isinstance(entries, dict) or not isinstance(dirs, dict):
        return None
    return Cached(groups, entries, dirs, listed_at) if type(listed_at) is int else None


def save(root: Path, cached: Cached) -> None:
    """Replace the cache of ``root`` (atomically); a cache directory that cannot be written is
    left alone (the next process summarizes the folder again)."""
    path = cache_path(root)
    document = {"format": FORMAT, "version": VERSION, "root": str(root), **cached._asdict()}
    try:
        data = orjson.dumps(document)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".nearest-", suffix=".tmp", dir=path.parent)
    except (OSError, TypeError):
        return
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
