"""The store's content index of a large folder, kept on disk between processes.

A lookup that misses by name builds the store's content index (:meth:`._store.Store._index_contents`):
every file parsed and its key recomputed, about three seconds for 30,000 files, paid again by
every new process before its first miss can even be explained. This module keeps, for a folder of
:data:`MIN_FILES` recordings or more, what the index found in each file (its key and occurrence
under the match rules in force, or why it cannot be read) in the user's cache directory
(:mod:`._user_cache`, ``index/``; ``APIREC_CACHE_DIR=off`` turns it off), one file per folder and
set of match rules.

A kept entry is used only for a file that is in the folder's listing now with the size and
modification time (nanoseconds) it had when it was parsed; any other file is parsed again, and a
file changed less than :data:`._user_cache.RACY_NS` before it was parsed is not kept. Rules with
a callable normalizer are never kept (the key depends on code, not on data).

Trust: the index only says where to look. A file found through it is read and its key and
occurrence recomputed before it is served (:meth:`._store.Store._verified`), so a cache that lies,
is malformed or stale can at worst make a lookup miss, never serve another request's recording;
a malformed cache is ignored as a whole.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _user_cache

if TYPE_CHECKING:
    from ._match import Rules

PART = "index"
FORMAT = "notebook-recorder content index"
VERSION = 1
MIN_FILES = _user_cache.MIN_FILES
MAX_PROBLEM = 1_000
"""The longest reason a kept entry may give for a file that cannot be read."""

_KEYS = re.compile(r"(?:[0-9a-f]{64}\n)*")

Entry = tuple[int, int, "str | None", "int | None", "str | None"]
"""What the content index found in one file: ``(size, mtime_ns, key, occurrence, problem)``; the
key and occurrence under the rules in force (``key`` ``None``: a kind of file that has no key),
or ``problem``: why it cannot be read (then key and occurrence are ``None``)."""


def variant(rules: Rules) -> str | None:
    """The match rules as kept in the cache's name and content; ``None``: not kept (a callable
    normalizer, whose effect is code)."""
    if rules.normalizer_name is not None or rules.normalizer is not None:
        return None
    if not rules:
        return ""
    return json.dumps([list(rules.ignore), [list(pair) for pair in rules.normalize]])


def load(root: Path, rules: Rules) -> dict[str, Entry] | None:
    """The kept content index of ``root`` under ``rules``: path relative to ``root`` (``/``
    separated) -> entry; ``None`` when there is none or it is malformed anywhere. An entry is used
    only for a listed file whose ``stat`` has the entry's size and mtime. Never raises."""
    kept_variant = variant(rules)
    if kept_variant is None:
        return None
    document = _user_cache.load(PART, root, FORMAT, VERSION, kept_variant)
    if document is None:
        return None
    fields = ("names", "sizes", "mtimes", "keys", "occurrences", "problems")
    columns: list[Any] = [document.get(name) for name in fields]
    if not all(type(column) is list for column in columns) or len({len(c) for c in columns}) != 1:
        return None
    names, sizes, mtimes, keys, occurrences, problems = columns
    # Sizes and mtimes need no check: an entry is used only when they equal the file's.
    present = [key for key in keys if key is not None]
    if not all(type(key) is str for key in present):
        return None
    if not _KEYS.fullmatch("\n".join(present) + "\n" if present else ""):
        return None
    if not all(
        (type(occurrence) is int and occurrence >= 1 and problem is None)
        or (occurrence is None and key is None and type(problem) is str and len(problem) <= MAX_PROBLEM)
        for key, occurrence, problem in zip(keys, occurrences, problems, strict=True)
    ):
        return None
    return dict(zip(names, zip(sizes, mtimes, keys, occurrences, problems, strict=True), strict=True))


def save(root: Path, rules: Rules, entries: dict[str, Entry]) -> None:
    """Keep ``entries`` (path -> entry) for the next process: those of files under ``root`` that
    did not change just before they were parsed."""
    kept_variant = variant(rules)
    if kept_variant is None:
        return
    prefix = str(root) + os.sep
    cut, settled = len(prefix), time.time_ns() - _user_cache.RACY_NS
    kept = [(path, entry) for path, entry in entries.items() if path.startswith(prefix) and entry[1] < settled]
    names = [path[cut:] if os.sep == "/" else path[cut:].replace(os.sep, "/") for path, _ in kept]
    columns = list(zip(*(entry for _, entry in kept), strict=True)) if kept else [(), (), (), (), ()]
    body = dict(zip(("sizes", "mtimes", "keys", "occurrences", "problems"), map(list, columns), strict=True))
    _user_cache.save(PART, root, FORMAT, VERSION, {"names": names, **body}, kept_variant)
