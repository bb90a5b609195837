"""What ``ls`` and ``verify`` see in a tree of recordings: one :class:`Entry` per file.

A scan reads each file once and keeps only what it shows, never the parsed recording, so that a
directory of thousands of files is fine. Files are listed and read through :mod:`._store`. A scan
of many files (:data:`PARALLEL_MIN_FILES`) reads them in worker processes, one per usable CPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from itertools import chain
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ...core._codec import DATA, TYPE
from ...core._errors import RecordingFormatError
from ...core._files import valid_type_name
from ...core._keys import (
    ToolRequest,
    call_kind,
    canonical_endpoint,
    record_key,
    record_occurrence,
    record_rules,
    request_from_record,
)
from ...core._secrets import leaks
from ...core._store import name_key_occurrence, read_recording, relative, trusted_patterns, walk_recordings
from ...core._terminal import one_line

#: Scans of at least this many files are spread over worker processes (one per usable CPU).
PARALLEL_MIN_FILES = 1000
#: Set to ``0`` to scan in this process only.
ENV_SCAN_WORKERS = "NOTEBOOK_RECORDER_SCAN_WORKERS"
_CHUNK = 200  # files per task handed to a worker

STRICT_MATCH = "strict (no rules)"
"""How ``match`` describes a file keyed without rules."""


@dataclass
class Entry:
    """One file of a recordings directory, as ``ls`` and ``verify`` see it."""

    path: Path
    rel: str
    size: int
    problem: str = ""  # why it could not be read; empty when it could
    key: str | None = None  # recomputed from content
    occurrence: int | None = 1  # from content; None when its `occurrence` field is not valid
    bad_occurrence: str = ""  # the invalid `occurrence` value, as repr
    kind: str = ""
    label: str = ""  # endpoint or provider/tool
    model: str = ""
    streaming: bool = False
    chunks: int | None = None
    test_id: str | None = None
    types: frozenset[str] = frozenset()  # __type__ names used (only for verify)
    leaks: tuple[str, ...] = ()  # credential-looking findings (only for verify)
    match: str = STRICT_MATCH  # the match rules it was keyed under (its `match` field), described
    opaque: bool = False  # keyed with a callable normalizer: its key cannot be recomputed here
    untrusted: bool = False  # keyed with normalize patterns the project does not configure: not run
    bad_match: bool = False  # its `match` field is malformed

    @property
    def shown(self) -> str:
        """:attr:`rel` as one printable line (control characters escaped: see ``_terminal``)."""
        return one_line(self.rel)

    @property
    def stale_name(self) -> bool:
        if self.key is None or self.occurrence is None:
            return False
        return name_key_occurrence(self.path) != (self.key, self.occurrence)


def scan_file(path: Path, root: Path, trusted: frozenset[str], *, deep: bool = False) -> Entry:
    """What ``ls`` shows about one file; with ``deep``, also what ``verify`` checks.

    The parsed recording itself is not kept, so that a directory of thousands of files is fine.
    """
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    entry = Entry(path=path, rel=relative(path, root), size=size)
    try:
        record = read_recording(path)
        if deep:
            entry.types = frozenset(type_names(record))
            malformed = sorted(name for name in entry.types if not valid_type_name(name))
            if malformed:
                raise RecordingFormatError(path, f"malformed __type__ {malformed[0]!r:.80}")
            entry.leaks = tuple(leaks(path, record))
        return _scan_record(entry, record, trusted)
    except RecordingFormatError as exc:
        problem = exc.problem
    except Exception as exc:  # a shape no one foresaw must not stop ls or verify
        problem = f"unexpected content ({type(exc).__name__}: {exc})"
    return Entry(path=path, rel=entry.rel, size=size, problem=problem, kind="unreadable")


def _scan_record(entry: Entry, record: dict[str, Any], trusted: frozenset[str]) -> Entry:
    """``entry`` completed from its parsed recording; ``trusted``: the regexes it may run."""
    request, response = record["request"], record["response"]
    test_id = record.get("test_id")
    entry.test_id = test_id if isinstance(test_id, str) else None
    entry.key = record_key(record, trusted=trusted)
    rules = record_rules(record)
    if rules is None:
        entry.bad_match, entry.match = True, "a malformed match field"
    else:
        entry.match, entry.opaque = rules.summary(), rules.opaque
        entry.untrusted = not rules.opaque and not set(dict(rules.normalize)) <= trusted
    entry.occurrence = record_occurrence(record)
    if entry.occurrence is None:
        entry.bad_occurrence = repr(record.get("occurrence"))[:40]
    parsed = request_from_record(record)
    body = response.get("body")
    entry.streaming = bool(response.get("is_streaming"))
    entry.chunks = len(body) if entry.streaming and isinstance(body, list) else None
    if parsed is None:
        url = str(request.get("url") or "")
        payload = request.get("payload")
        if url:
            entry.kind, entry.label = "http", canonical_endpoint(urlsplit(url).path)
        else:  # e.g. llama-stack's file_processors recordings: provider + api, no request body
            entry.kind = "other"
            entry.label = "/".join(str(request[k]) for k in ("provider", "api") if request.get(k)) or "?"
        entry.model = str(payload.get("model") or "") if isinstance(payload, Mapping) else ""
    elif "payload" in request or ("status" in response and "content_type" in response):
        entry.kind = "http"  # recorded at the HTTP level (llama-stack's raw files, or ours)
        entry.label = parsed.label
        entry.model = parsed.model
    else:
        entry.kind = "tool" if isinstance(parsed, ToolRequest) else call_kind(parsed.label)
        entry.label = parsed.label
        entry.model = parsed.model
    if response.get("is_exception"):
        entry.kind = "exception"
    return entry


def scan(root: Path, *, deep: bool = False) -> list[Entry]:
    """Every recording under ``root``, and an ``unreadable`` entry for every odd one."""
    walk = walk_recordings(root)
    trusted = trusted_patterns(root)  # once per scan: it looks for the project's pyproject.toml
    entries = _scan_files(walk.files, root, trusted, deep)
    for odd in walk.problems:
        path = Path(odd.path)
        entries.append(Entry(path=path, rel=relative(path, root), size=0, problem=odd.problem, kind="unreadable"))
    return entries


def _scan_chunk(paths: list[str], root: Path, trusted: frozenset[str], deep: bool) -> tuple[int, list[Entry]]:
    return os.getpid(), [scan_file(Path(path), root, trusted, deep=deep) for path in paths]


#: The processes that read the files of the last scan (for tests).
last_scan_pids: set[int] = set()


def _workers(n_files: int) -> int:
    """How many worker processes a scan of ``n_files`` gets: 0 (this process) when few."""
    if n_files < PARALLEL_MIN_FILES or os.environ.get(ENV_SCAN_WORKERS) == "0":
        return 0
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return cpus if cpus > 1 else 0


def _scan_files(paths: list[str], root: Path, trusted: frozenset[str], deep: bool) -> list[Entry]:
    """The entries of ``paths``, in order: in worker processes when there are many."""
    workers = _workers(len(paths))
    if workers:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        size = max(1, min(_CHUNK, len(paths) // (4 * workers)))
        chunks = [paths[i : i + size] for i in range(0, len(paths), size)]
        task = partial(_scan_chunk, root=root, trusted=trusted, deep=deep)
        try:
            # spawn: a fresh interpreter, whatever threads this process runs (a kernel, a server)
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                done = list(pool.map(task, chunks))
        except (OSError, BrokenProcessPool):
            pass  # no processes to be had here: scan in this one
        else:
            last_scan_pids.clear()
            last_scan_pids.update(pid for pid, _ in done)
            return list(chain.from_iterable(entries for _, entries in done))
    pid, entries = _scan_chunk(paths, root, trusted, deep)
    last_scan_pids.clear()
    last_scan_pids.add(pid)
    return entries


def type_names(value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):
        name = value.get(TYPE)
        if isinstance(name, str):
            yield name
        elif name is not None and DATA in value:
            yield f"<not a name: {name!r:.40}>"
        for v in value.values():
            yield from type_names(v)
    elif isinstance(value, list):
        for v in value:
            yield from type_names(v)
