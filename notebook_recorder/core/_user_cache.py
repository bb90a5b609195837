"""What a large recordings folder costs to read, kept in the user's cache directory between processes.

Two parts keep one JSON file per folder here: the store's content index (:mod:`._index_cache`:
which request each file holds) and the missing-recording search's summaries
(:mod:`._nearest_cache`). This module is their shared mechanism: where the files live, how they
are named, read and written.

- Where: ``$APIREC_CACHE_DIR`` when set; else ``$XDG_CACHE_HOME/notebook-recorder``
  (``~/.cache/notebook-recorder`` by default). ``APIREC_CACHE_DIR=off`` turns the cache off:
  nothing is read or written, every new process reads the folder again.
- Nothing is ever written into a recordings folder. One file per folder and part,
  ``<part>/<folder name>-<hash of its resolved path and variant>.json``, written atomically (a
  temporary file, then a rename), readable by its owner only.
- Data only (``orjson``, never pickle), read through :func:`._files.read_file` (a FIFO in its
  place never blocks), at most :data:`MAX_BYTES`. A document of another format, version, library
  version, folder or variant is ignored; each part checks its entries before use, and neither
  can make replay serve a wrong recording (a file found through the index is read and its key
  checked before it is served).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import orjson

from . import _files
from ._version import __version__

ENV_CACHE_DIR = "APIREC_CACHE_DIR"
"""The cache directory (``off``, ``0``, ``false``, ``no`` or ``none``: no cache)."""
OFF = frozenset({"off", "0", "false", "no", "none"})
MAX_BYTES = 256 << 20
"""A larger cache file is not read (30,000 recordings take about 7 MB per part)."""
MIN_FILES = 1_000
"""Folders with fewer recordings are read in well under a second: they are not cached."""
RACY_NS = 2_000_000_000
"""A file or directory changed less than this before it was read may change again within the same
timestamp: what was read of it is not kept on disk (its size and time would not tell)."""


def cache_root() -> Path | None:
    """The cache directory, or ``None`` when the cache is turned off (``APIREC_CACHE_DIR=off``)."""
    chosen = os.environ.get(ENV_CACHE_DIR, "").strip()
    if chosen.lower() in OFF:
        return None
    if chosen:
        return Path(chosen).expanduser()
    return default_root()


def default_root() -> Path:
    """``$XDG_CACHE_HOME/notebook-recorder`` (``~/.cache/notebook-recorder`` when it is unset or
    relative): the cache directory when ``APIREC_CACHE_DIR`` does not name one."""
    base = os.environ.get("XDG_CACHE_HOME") or ""
    return (Path(base) if os.path.isabs(base) else Path.home() / ".cache") / "notebook-recorder"


def cache_path(part: str, root: Path, variant: str = "") -> Path | None:
    """The cache file of ``part`` for the recordings folder ``root`` (resolved), or ``None`` when
    the cache is turned off."""
    base = cache_root()
    if base is None:
        return None
    seed = str(root) if not variant else f"{root}\0{variant}"
    digest = hashlib.sha256(seed.encode("utf-8", "surrogatepass")).hexdigest()[:24]
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in root.name)[:40]
    return base / part / f"{name}-{digest}.json"


def load(part: str, root: Path, fmt: str, version: int, variant: str = "") -> dict[str, Any] | None:
    """The document kept for ``root`` by ``part``, if it is one of ``fmt`` and ``version``, written
    by this library version for this folder and variant; else ``None``. Never raises."""
    path = cache_path(part, root, variant)
    if path is None:
        return None
    try:
        if os.stat(path).st_size > MAX_BYTES:
            return None
        data, _ = _files.read_file(str(path))
        document = orjson.loads(data)
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(document, dict):
        return None
    header = (document.get("format"), document.get("version"), document.get("library"), document.get("root"))
    if header != (fmt, version, __version__, str(root)) or document.get("variant", "") != variant:
        return None
    return document


def save(part: str, root: Path, fmt: str, version: int, body: dict[str, Any], variant: str = "") -> None:
    """Replace the document kept for ``root`` by ``part`` (atomically). A cache directory that
    cannot be written is left alone: the next process reads the folder again."""
    path = cache_path(part, root, variant)
    if path is None:
        return
    header = {"format": fmt, "version": version, "library": __version__, "root": str(root), "variant": variant}
    try:
        data = orjson.dumps({**header, **body})
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{part}-", suffix=".tmp", dir=path.parent)
    except (OSError, TypeError):
        return
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
