"""A directory of recordings: lookup by key, a content index, and atomic writes.

Lookup has three tiers, cheapest first:

1. ``<dir>/<key>.json``: one ``stat``, O(1). This is every file we wrote ourselves.
2. the file names of the whole tree (subdirectories too), listed once per process.
3. a content index: the key recomputed from each file's stored request. This finds files whose
   name is not their key, such as every llama-stack file and renamed files. It is built once per
   directory per process, the first time tiers 1 and 2 miss, and kept current as files are written;
   later misses look at each directory's modification time (one ``stat`` per directory) and list
   again only the directories that changed, parsing only their new or replaced files. A large
   folder's index is kept on disk between processes (:mod:`._index_cache`): a new process parses
   only the files whose size or modification time changed since.

A file replayed again is read (one ``read``) and compared with the bytes parsed last time: while
they are the same, its parsed record is served from a small bounded cache (:class:`_ParsedFiles`).

Only the index ((key, occurrence) -> path) stays in memory, never the recordings themselves.

Occurrences (FORMAT.md, "Repeated identical requests"): the k-th identical request of a recording
context is ``<key>-<k>.json`` with ``"occurrence": k`` (``<key>.json`` for the first). The name is
the fast path; the content index files every recording under the key and occurrence its content
says, so a renamed or misnamed occurrence file is still found.

Files are listed and read through :mod:`._files`: an odd entry (a FIFO, a link loop, a file that
cannot be parsed or has the wrong shape) is remembered as an error for that file, shown when a
lookup misses (:meth:`Store.errors`), and never stops or hangs a lookup of another file.

The command line asks a ``Store`` too: :meth:`Store.find_prefix` for ``show KEY``,
:func:`._importing.import_into` for ``import``, and :func:`walk_recordings` / :func:`read_recording`
for any tree or file of recordings.
"""

from __future__ import annotations

import contextlib
import enum
import os
import re
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from . import _files, _index_cache
from ._codec import dumps, loads
from ._errors import RecordingFormatError
from ._keys import name_occurrence, record_key, record_occurrence, recording_name

if TYPE_CHECKING:
    from ._match import Rules


_T = TypeVar("_T")

MODEL_LIST_NAME = re.compile(r"models-(?P<key>[0-9a-f]{64})-(?P<digest>[0-9a-f]{8})")
"""llama-stack's name for a model list: ``models-<key>-<digest8>.json``."""


def name_key_occurrence(path: Path) -> tuple[str, int]:
    """The key and occurrence a file's name claims (FORMAT.md, "Repeated identical requests"): its
    stem, ``<key>-<k>`` for an occurrence, or the hash part of ``models-<hash>-<digest8>``."""
    match = MODEL_LIST_NAME.fullmatch(path.stem)
    return (match.group("key"), 1) if match else name_occurrence(path.stem)


def walk_recordings(root: Path) -> _files.Walk:
    """The ``*.json`` files under ``root`` (or ``root`` itself), sorted, hidden entries skipped,
    and the entries that cannot be read (FIFOs, link loops...: see :mod:`._files`)."""
    if root.is_file():
        return _files.Walk([str(root)], [], [])
    try:
        return _files.walk(str(root))
    except OSError as exc:
        return _files.Walk([], [_files.Problem(str(root), _files.error_text(exc))], [])


def read_recording(path: Path) -> dict[str, Any]:
    """One recording file, parsed and shape-checked. Errors name the file."""
    try:
        data, _ = _files.read_file(str(path))
    except OSError as exc:
        raise RecordingFormatError(path, _files.error_text(exc)) from None
    return loads(data, path)


class _ParsedFiles:
    """A bounded cache of parsed recordings, by path, served only while the file's bytes are the
    same: replaying a file again reads it (one ``read``, a fraction of the parse) and compares the
    bytes, rather than parsing and checking them again. An edit, whatever its timestamps, changes
    the bytes, so nothing stale is served.

    The records are shared between the calls that replay them: readers must not modify them
    (replay builds new objects from them, and ``_codec.loads`` returns a fresh record).

    A hook may keep what it derives from a cached record beside it (:meth:`derived`: the bytes an
    HTTP-level replay serves), so a file replayed again is read and compared, and neither parsed
    nor converted again; the derived values go when their record does.
    """

    MAX_BYTES = 32 << 20  # file bytes kept in all (parsed, they weigh a few times more)
    MAX_FILE_BYTES = 8 << 20  # a larger file is parsed on every call, never kept
    MAX_FILES = 64

    def __init__(self) -> None:
        self._entries: OrderedDict[str, tuple[bytes, dict[str, Any]]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        # id(record) -> what hooks derived from it (:meth:`derived`); only for cached records,
        # which the entries keep alive, so an id is never reused while it is here.
        self._derived: dict[int, dict[str, Any]] = {}

    def read(self, path: str) -> dict[str, Any]:
        try:
            data, _ = _files.read_file(path)
        except OSError as exc:
            raise RecordingFormatError(Path(path), _files.error_text(exc)) from None
        with self._lock:
            hit = self._entries.get(path)
            if hit is not None and hit[0] == data:
                self._entries.move_to_end(path)
                return hit[1]
        record = loads(data, Path(path))
        if len(data) <= self.MAX_FILE_BYTES:
            with self._lock:
                old = self._entries.pop(path, None)
                if old is not None:
                    self._drop(old)
                self._entries[path] = (data, record)
                self._bytes += len(data)
                self._derived[id(record)] = {}
                while self._bytes > self.MAX_BYTES or len(self._entries) > self.MAX_FILES:
                    self._drop(self._entries.popitem(last=False)[1])
        return record

    def _drop(self, entry: tuple[bytes, dict[str, Any]]) -> None:
        self._bytes -= len(entry[0])
        self._derived.pop(id(entry[1]), None)

    def derived(self, record: dict[str, Any], name: str, build: Callable[[], _T]) -> _T:
        """``build()``, kept beside ``record`` while ``record`` is in the cache (the same object
        :meth:`read` returned), so that the next call for the same unchanged file gets it back
        without building it again. ``build`` must depend on nothing but ``record``, and its value
        must not be modified by whoever uses it: it is shared, as the record is. Not cached (built
        every time) for a record that is not in the cache: a large file, or one replaced since."""
        with self._lock:
            slot = self._derived.get(id(record))
            if slot is not None and name in slot:
                return cast(_T, slot[name])
        value = build()
        with self._lock:
            slot = self._derived.get(id(record))
            if slot is not None:
                slot[name] = value
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._derived.clear()
            self._bytes = 0


_parsed = _ParsedFiles()

derived = _parsed.derived
"""What a hook derived from a parsed recording, kept beside it (:meth:`_ParsedFiles.derived`)."""


def stale_temp_files(root: Path) -> list[Path]:
    """Temporary files that killed writes left anywhere under ``root`` (see :mod:`._files`)."""
    return [Path(p) for directory in walk_recordings(root).dirs for p in _files.stale_temp_files(directory)]


def trusted_patterns(root: Path) -> frozenset[str]:
    """The ``normalize`` patterns of the ``pyproject.toml`` nearest ``root``: the only regular
    expressions from a recording file's ``match`` field that are run (a hostile pattern in a file
    could run for ever)."""
    from ._config import project_config

    try:
        return frozenset(dict(project_config(root).rules.normalize))
    except ValueError:
        return frozenset()


def relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when it is below it, else as it is."""
    try:
        return str(path.relative_to(root)) or path.name
    except ValueError:
        return str(path)


@dataclass
class _Index:
    """What one process knows about one directory. Paths are kept as ``str``: a ``Path`` object
    weighs several times more, and this is all that replay keeps in memory per file."""

    names: dict[str, list[str]] = field(default_factory=dict)  # file stem -> paths
    by_key: dict[tuple[str, int], str] = field(default_factory=dict)  # content (key, occurrence) -> path
    more: dict[tuple[str, int], set[str]] = field(default_factory=dict)  # (key, occurrence) -> other files
    occurrences: dict[str, set[int]] = field(default_factory=dict)  # content key -> occurrences indexed
    verified: dict[str, tuple[int, int, str, int]] = field(default_factory=dict)  # path -> (mtime, size, key, occ)
    seen: dict[str, int] = field(default_factory=dict)  # path -> mtime_ns when indexed
    contents: dict[str, _index_cache.Entry] = field(default_factory=dict)  # path -> what it held then
    errors: dict[str, str] = field(default_factory=dict)  # unreadable files and odd entries
    dirs: dict[str, tuple[int, int]] = field(default_factory=dict)  # directory -> (mtime_ns, inode) when listed
    pending: list[str] = field(default_factory=list)  # listed, not content-indexed yet
    listed: bool = False
    indexed: bool = False
    lock: threading.RLock = field(default_factory=threading.RLock)


def _dir_version(st: os.stat_result) -> tuple[int, int]:
    return (st.st_mtime_ns, st.st_ino)


_indexes: dict[tuple[Path, str], _Index] = {}
_indexes_lock = threading.Lock()


def _index_for(root: Path, rules: str = "") -> _Index:
    """The index of ``root`` under the match rules with fingerprint ``rules`` (``""``: strict):
    the content index keys every stored request under the rules in force (``_match``)."""
    with _indexes_lock:
        index = _indexes.get((root, rules))
        if index is None:
            index = _indexes[root, rules] = _Index()
        return index


ParseObserver = Callable[[Path, str, "dict[str, Any] | None", os.stat_result], None]
"""Called with the folder, a file's path, its parsed record (``None``: unreadable) and its stat."""
_observers: list[ParseObserver] = []


def on_parse(observer: ParseObserver) -> None:
    """Call ``observer(root, path, record, stat)`` for each file the content index parses
    (``record`` ``None``: it cannot be read), so that another index of the folder is built from
    the same parse (:mod:`._notfound`'s summaries) rather than by reading every file again."""
    if observer not in _observers:
        _observers.append(observer)


def forget_indexes() -> None:
    """Drop every in-memory index and parsed file (tests and benchmarks use this to start cold)."""
    with _indexes_lock:
        _indexes.clear()
    _parsed.clear()


Snapshot = tuple[int, int, int] | None
"""What :meth:`Store.snapshot` says is on disk for one occurrence."""


class Unchecked(enum.Enum):
    UNCHECKED = "unchecked"


UNCHECKED = Unchecked.UNCHECKED
""":meth:`Store.write` without ``expect``: write over whatever is there (``import``)."""


@dataclass(frozen=True)
class Found:
    """A recording found for a key: the file, its parsed content, and which occurrence it is."""

    path: Path
    record: dict[str, Any]
    occurrence: int = 1


class Store:
    """The recordings under one directory, looked up under match ``rules`` (strict by default):
    a stored request is found when its key under these rules is the key asked for, whatever rules
    it was recorded under."""

    def __init__(self, root: str | os.PathLike[str], rules: Rules | None = None) -> None:
        from ._match import STRICT

        self.root = Path(root).expanduser().resolve()
        self.rules = rules if rules is not None else STRICT
        self._index = _index_for(self.root, self.rules.fingerprint)
        self._cleaned = False  # stale temporary files removed (on the first write)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    @property
    def exists(self) -> bool:
        return self.root.is_dir()

    def path_for(self, key: str, occurrence: int = 1) -> Path:
        """Where occurrence ``occurrence`` of the recording of ``key`` is written."""
        return self.root / recording_name(key, occurrence)

    # -- reading ------------------------------------------------------------------------------

    def read(self, path: Path) -> dict[str, Any]:
        """One recording file, parsed and shape-checked (or, when its bytes are those parsed
        last time, served from a small cache: :class:`_ParsedFiles`). Errors name the file."""
        return _parsed.read(str(path))

    def find(self, key: str, occurrence: int = 1) -> Found | None:
        """Occurrence ``occurrence`` of the recording for ``key``, or ``None``.

        A malformed file that *is* the one asked for raises ``RecordingFormatError``; malformed
        files elsewhere never affect other lookups.
        """
        return self._find(key, occurrence, latest=False)

    def find_latest(self, key: str, occurrence: int) -> Found | None:
        """What replay serves to the ``occurrence``-th call of ``key``: that occurrence when it is
        recorded, else the latest one recorded before it, else (a gap at the start, left by a call
        that failed while recording) the first one after it. ``None`` when ``key`` has none.
        """
        return self._find(key, occurrence, latest=True)

    def _find(self, key: str, occurrence: int, *, latest: bool) -> Found | None:
        found = self._verified(str(self.path_for(key, occurrence)), key, occurrence)
        if found is not None:
            return found
        if not self.exists:
            return None
        with self._index.lock:
            self._list_names()
            for path in self._index.names.get(recording_name(key, occurrence)[:-5], []):
                found = self._verified(path, key, occurrence)
                if found is not None:
                    return found
            found = self._indexed(key, occurrence, latest=latest) if self._index.indexed else None
            if found is None:
                # Build the content index, or refresh it: files written by another process, moved
                # or edited since it was built are picked up here, on a miss, never on a hit.
                self._index_contents()
                found = self._indexed(key, occurrence, latest=latest)
        return found

    def find_all(self, key: str, occurrence: int = 1) -> list[Found]:
        """Every readable recording with ``key`` and ``occurrence``, the one :meth:`find` returns first.

        llama-stack writes one model list per server it listed, all with the same request:
        replaying ``models.list()`` merges them. This builds the content index.
        """
        first = self.find(key, occurrence)
        if first is None:
            return []
        wanted = (key, occurrence)
        with self._index.lock:
            if not self._index.indexed:
                self._index_contents()
            others = sorted(self._index.more.get(wanted, set()) | {self._index.by_key.get(wanted, str(first.path))})
        found = [first]
        for path in others:
            if path != str(first.path):
                try:
                    hit = self._verified(path, key, occurrence)
                except RecordingFormatError:
                    continue
                if hit is not None:
                    found.append(hit)
        return found

    def _indexed(self, key: str, occurrence: int, *, latest: bool) -> Found | None:
        """From the content index: occurrence ``occurrence`` of ``key``; with ``latest``, failing
        that, the latest one before it, else the first one after it."""
        if not latest:
            return self._indexed_one(key, occurrence)
        known = self._index.occurrences.get(key)
        if not known:
            return None
        before = sorted((k for k in known if k <= occurrence), reverse=True)
        after = sorted(k for k in known if k > occurrence)
        for candidate in [*before, *after]:
            found = self._indexed_one(key, candidate)
            if found is not None:
                return found
        return None

    def _indexed_one(self, key: str, occurrence: int) -> Found | None:
        index, wanted = self._index, (key, occurrence)
        while (path := index.by_key.get(wanted)) is not None:
            try:
                found = self._verified(path, key, occurrence)
            except RecordingFormatError:
                found = None
            if found is not None:
                return found
            del index.by_key[wanted]  # gone or edited: stale; another file with the same content may do
            others = index.more.get(wanted)
            if others:
                index.by_key[wanted] = others.pop()
        index.occurrences.get(key, set()).discard(occurrence)
        return None

    def _verified(self, path: str, key: str, occurrence: int = 1) -> Found | None:
        """``path`` parsed, if its content really has ``key`` and ``occurrence``; a renamed file
        does not count.

        Recomputing the key costs more than parsing a small file, so a file already verified
        and unchanged since (same mtime and size) is not verified again.
        """
        try:
            stat = os.stat(path)  # before reading: a later change is seen next time
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RecordingFormatError(Path(path), _files.error_text(exc)) from None
        record = self.read(Path(path))
        version = (stat.st_mtime_ns, stat.st_size, key, occurrence)
        verified = self._index.verified
        if verified.get(path) != version:
            if record_occurrence(record) != occurrence:
                return None
            # A request that held a credential was written masked: its name is the key of what was sent.
            if _content_key(record, path, self.rules) != key and record.get("masked") is not True:
                return None
            verified[path] = version
        return Found(Path(path), record, occurrence)

    def _list_names(self) -> None:
        """List the tree once: every file by name, every directory with its modification time."""
        index = self._index
        if index.listed:
            return
        walk = self._walk_tree(self._lister)
        for path in walk.files:
            index.names.setdefault(os.path.basename(path)[:-5], []).append(path)
        index.pending.extend(walk.files)
        for odd in walk.problems:
            index.errors[odd.path] = odd.problem
        index.listed = True

    def _name(self, path: str) -> bool:
        """List ``path`` under its file name; whether it was not listed there yet."""
        paths = self._index.names.setdefault(os.path.basename(path)[:-5], [])
        if path in paths:
            return False
        paths.append(path)
        return True

    def _lister(self, path: str, st: os.stat_result) -> _files.Listing:
        """:func:`._files.list_dir`, noting the directory's modification time (see :meth:`_refresh`)."""
        listing = _files.list_dir(path)
        self._index.dirs[path] = _dir_version(st)
        return listing

    def _refresh(self) -> None:
        """Bring the listing up to date from the directories' modification times: a directory whose
        mtime changed since it was listed (a file added, removed or renamed in it, or replaced by
        an atomic write) is listed again, and only its new or replaced files are queued for the
        content index. One ``stat`` per directory, never a walk of the tree. (A file edited in
        place, not through a rename, keeps its directory's mtime: a lookup that finds it verifies
        its content, so it never answers for a request it no longer holds; a new process indexes
        it under its new content.)"""
        index = self._index
        for directory, version in list(index.dirs.items()):
            try:
                st = os.stat(directory)
            except OSError:
                del index.dirs[directory]  # gone: its files fail verification and are dropped then
                continue
            if _dir_version(st) == version:
                continue
            try:
                listing = self._lister(directory, st)
            except OSError as exc:
                index.errors[directory] = f"cannot list this directory: {_files.error_text(exc)}"
                continue
            present = {*listing.files, *(odd.path for odd in listing.problems)}
            for gone in [p for p in index.errors if os.path.dirname(p) == directory and p not in present]:
                del index.errors[gone]  # removed or fixed since
            for odd in listing.problems:
                index.errors[odd.path] = odd.problem
            for path in listing.files:
                if self._name(path) or path in index.seen:  # new, or replaced by a rename perhaps:
                    index.pending.append(path)  # stat-checked when indexed
            for sub in listing.dirs:
                if sub in index.dirs:
                    continue
                try:
                    walk = _files.walk(sub, lister=self._lister)
                except OSError:
                    continue
                for path in walk.files:
                    self._name(path)
                    index.pending.append(path)
                for odd in walk.problems:
                    index.errors[odd.path] = odd.problem

    def note_own_write(self, path: Path, directory_before: tuple[int, int] | None) -> None:
        """A file this process wrote (:meth:`write`) is indexed already: when nobody else changed
        its directory since it was listed, the directory's new mtime is taken as listed, so the
        next miss does not list it again."""
        index = self._index
        directory = str(path.parent)
        if directory_before is None or index.dirs.get(directory) != directory_before:
            return
        try:
            index.dirs[directory] = _dir_version(os.stat(directory))
        except OSError:
            pass

    def _index_contents(self) -> None:
        """Parse every file listed and not indexed yet (or replaced since) and record its content
        key. The first call indexes the whole tree; later ones only what :meth:`_refresh` found.

        A large folder's index is kept on disk between processes (:mod:`._index_cache`): the
        first call of a new process parses only the files whose size or modification time
        changed since. Each file parsed is shown to the observers (:func:`on_parse`)."""
        index = self._index
        if not index.listed:
            self._list_names()
        elif index.indexed:
            self._refresh()
        first, index.indexed = not index.indexed, True
        pending, index.pending = index.pending, []
        kept = _index_cache.load(self.root, self.rules) if first and len(pending) >= _index_cache.MIN_FILES else None
        if kept:
            pending = self._index_kept(pending, kept)
        stat, seen, contents, errors = os.stat, index.seen, index.contents, index.errors
        occurrences, by_key = index.occurrences, index.by_key
        parsed = 0
        for path in pending:
            try:
                st = stat(path)
            except OSError:
                errors.pop(path, None)
                continue
            mtime = st.st_mtime_ns
            if seen.get(path) == mtime:
                continue
            seen[path] = mtime
            contents[path] = entry = self._parse(path, st)
            parsed += 1
            _, _, key, occurrence, problem = entry
            if problem is not None:
                errors[path] = problem
                continue
            errors.pop(path, None)
            if key is None or occurrence is None:
                continue
            occurrences.setdefault(key, set()).add(occurrence)
            if by_key.setdefault((key, occurrence), path) != path:
                index.more.setdefault((key, occurrence), set()).add(path)
        gone = kept is not None and len(kept) != len(contents)  # files deleted since it was kept
        if (parsed or gone) and len(contents) >= _index_cache.MIN_FILES:
            _index_cache.save(self.root, self.rules, contents)

    def _index_kept(self, pending: list[str], kept: dict[str, _index_cache.Entry]) -> list[str]:
        """The first index of a new process from the index kept on disk: each file's entry when
        its size and mtime are still those kept. Returns the files to parse. Kept lean: a new
        process's first miss goes through every file of the folder here."""
        index, stat, get = self._index, os.stat, kept.get
        cut, slash = len(str(self.root)) + 1, os.sep == "/"
        stale: list[str] = []
        paths: list[str] = []
        entries: list[_index_cache.Entry] = []
        for path in pending:
            try:
                st = stat(path)
            except OSError:
                continue
            entry = get(path[cut:] if slash else path[cut:].replace(os.sep, "/"))
            if entry is None or entry[0] != st.st_size or entry[1] != st.st_mtime_ns:
                stale.append(path)
            else:
                paths.append(path)
                entries.append(entry)
        index.seen.update(zip(paths, [entry[1] for entry in entries], strict=True))
        index.contents.update(zip(paths, entries, strict=True))
        occurrences, by_key, more = index.occurrences, index.by_key, index.more
        for path, (_, _, key, occurrence, problem) in zip(paths, entries, strict=True):
            if problem is not None:
                index.errors[path] = problem
            elif key is not None and occurrence is not None:
                occurrences.setdefault(key, set()).add(occurrence)
                if by_key.setdefault((key, occurrence), path) != path:
                    more.setdefault((key, occurrence), set()).add(path)
        return stale

    def _parse(self, path: str, st: os.stat_result) -> _index_cache.Entry:
        """What the content index keeps of one file (read now), shown to the observers."""
        record: dict[str, Any] | None = None
        try:
            record = self.read(Path(path))
            key, occurrence = _content_key(record, path, self.rules), record_occurrence(record)
        except RecordingFormatError as exc:
            entry: _index_cache.Entry = (st.st_size, st.st_mtime_ns, None, None, exc.problem)
            record = None
        else:
            if occurrence is None:
                problem = f"occurrence must be a whole number >= 1, not {record.get('occurrence')!r}"
                entry = (st.st_size, st.st_mtime_ns, None, None, problem)
            else:
                entry = (st.st_size, st.st_mtime_ns, key, occurrence, None)
        for observer in _observers:
            try:
                observer(self.root, path, record, st)
            except Exception:  # an observer's trouble must not stop a lookup
                continue
        return entry

    def _walk_tree(self, lister: _files.Lister = _files.list_dir) -> _files.Walk:
        """The tree's recording files and odd entries (see :mod:`._files`); empty if it is gone."""
        try:
            return _files.walk(str(self.root), lister=lister)
        except OSError:
            return _files.Walk([], [], [])

    def _walk(self) -> Iterator[str]:
        """Every recording file in the tree, hidden files and directories (``.``) left out."""
        return iter(self._walk_tree().files)

    def _json_files(self) -> Iterator[Path]:
        return map(Path, self._walk())

    def replay_response(self, found: Found, key: str) -> dict[str, Any]:
        """The recorded ``response`` that replaying ``found`` serves.

        llama-stack wrote one model list (``models-*.json``) per server it listed, all for the
        same request: like llama-stack, replay serves their union (items told apart by ``id``).
        """
        response: dict[str, Any] = found.record["response"]
        body = response.get("body")
        if not isinstance(body, list) or not found.path.name.startswith("models-"):
            return response
        merged: dict[Any, Any] = {}
        for other in self.find_all(key, found.occurrence):
            items = other.record["response"].get("body")
            for item in items if isinstance(items, list) else []:
                data = item.get("__data__", item) if isinstance(item, dict) and "__type__" in item else item
                merged.setdefault(data.get("id") if isinstance(data, dict) else repr(data), item)
        return {**response, "body": list(merged.values()) or body}

    def records(self) -> Iterator[tuple[Path, dict[str, Any]]]:
        """Every readable recording in the tree (for error messages and tools, not for replay)."""
        for path in self._json_files():
            try:
                yield path, self.read(path)
            except RecordingFormatError:
                continue

    def errors(self) -> dict[Path, str]:
        """Files that could not be read, and odd entries (FIFOs, link loops...), as of the last
        time the content index looked: path -> why."""
        with self._index.lock:
            return {Path(path): problem for path, problem in self._index.errors.items()}

    def find_prefix(self, prefix: str, *, shown: str | None = None) -> Path:
        """The file of the recording whose key is ``prefix`` (64 hex digits) or starts with it, by
        name or by content; the first occurrence when one request was recorded several times.

        :class:`LookupError` when none or several match; its message names them, the unreadable
        files, and the directory as ``shown`` (default: :attr:`root`).
        """
        where = shown or str(self.root)
        if len(prefix) == 64:
            if (self.root / f"{prefix}.json").is_file():  # by name: also a file keyed under match rules
                return self.root / f"{prefix}.json"
            try:
                found = self.find_latest(prefix, 1)  # its first occurrence recorded
            except RecordingFormatError as exc:
                raise LookupError(str(exc)) from None
            if found is not None:
                return found.path
            raise LookupError(f"no recording with key {prefix} in {where}")
        matches: dict[Path, str] = {}
        walk = walk_recordings(self.root)
        unreadable = [f"  {relative(Path(odd.path), self.root)}: {odd.problem}" for odd in walk.problems]
        for file in map(Path, walk.files):
            name_key = name_key_occurrence(file)[0]
            if name_key.startswith(prefix):
                matches[file] = name_key
                continue
            try:
                content_key = record_key(read_recording(file))
            except RecordingFormatError as exc:
                unreadable.append(f"  {relative(file, self.root)}: {exc.problem}")
                continue
            except Exception as exc:  # an odd shape: that file cannot match, the others still can
                unreadable.append(f"  {relative(file, self.root)}: unexpected content ({type(exc).__name__})")
                continue
            if content_key is not None and content_key.startswith(prefix):
                matches[file] = content_key
        if not matches:
            message = f"no recording whose key starts with {prefix} in {where}"
            if unreadable:
                message += f"\n{len(unreadable)} file(s) there could not be read:\n" + "\n".join(unreadable[:10])
            raise LookupError(message)
        if len(matches) > 1 and len(set(matches.values())) == 1:
            # One request recorded several times (occurrences): the first.
            first = [p for p in matches if name_key_occurrence(p)[1] == 1]
            if len(first) == 1:
                return first[0]
        if len(matches) > 1:
            listed = "\n".join(f"  {k[:16]}…  {relative(p, self.root)}" for p, k in list(matches.items())[:10])
            raise LookupError(f"{len(matches)} recordings in {where} have keys starting with {prefix}:\n{listed}")
        return next(iter(matches))

    # -- writing ------------------------------------------------------------------------------

    def snapshot(self, key: str, occurrence: int = 1) -> Snapshot:
        """What occurrence ``occurrence`` of ``key`` is on disk now, as :meth:`write` compares it:
        ``(inode, mtime_ns, size)`` of its file, or ``None`` when there is none."""
        try:
            st = os.stat(self.path_for(key, occurrence))
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def write(
        self,
        key: str,
        record: Mapping[str, Any],
        *,
        expect: Snapshot | Unchecked = UNCHECKED,
        others_since_ns: int | None = None,
    ) -> Path:
        """Write a recording atomically: a temporary file in the same directory, then a rename.

        The file is named by ``key`` and the record's own ``occurrence`` (1 when absent), so a
        name always agrees with its content. A reader, or a process killed mid-write, never sees a
        truncated file. The first write of a ``Store`` removes temporary files that killed writes
        left behind (:mod:`._files`).

        ``expect`` is the :meth:`snapshot` of that occurrence taken when the call was decided.
        When the file is no longer what it was (another process, or another recorder, wrote the
        same occurrence meanwhile), this answer is not written over theirs: it is kept under the
        next occurrence that has no file, and the path returned says which. The check and the
        rename happen under a lock on the directory (``flock`` on the directory itself), so two
        writers cannot both see the old file. ``others_since_ns`` (the writer's recording context
        began then, wall clock) says more: a file of that occurrence modified after it is another
        run's answer even when it was there before this call began (two processes recording the
        same requests into one directory, one a step ahead of the other), and is kept too. A file
        older than that was left by an earlier run, and is replaced, as ``record`` always has.

        Raises ``OSError`` when the file cannot be written (disk full, file too large, no
        permission) and ``ValueError`` / ``TypeError`` when the record cannot be written as JSON
        (a NaN, an integer past 64 bits, a lone surrogate: :func:`._codec.dumps`); nothing is
        left behind then.
        """
        occurrence = record_occurrence(record)
        if occurrence is None:
            raise ValueError(f"occurrence must be a whole number >= 1, not {record.get('occurrence')!r}")
        self.root.mkdir(parents=True, exist_ok=True)
        if not self._cleaned:
            self._cleaned = True
            _files.remove_stale_temp_files(str(self.root))
        data = dumps(record)
        with _directory_lock(self.root) if expect is not UNCHECKED else contextlib.nullcontext():
            now = self.snapshot(key, occurrence) if expect is not UNCHECKED else None
            if expect is not UNCHECKED and (
                now != expect or (now is not None and others_since_ns is not None and now[1] > others_since_ns)
            ):
                while os.path.lexists(self.path_for(key, occurrence)):
                    occurrence += 1
                record = with_occurrence(record, occurrence)
                data = dumps(record)
            path = self.path_for(key, occurrence)
            directory_before = _dir_version(os.stat(self.root))
            fd, tmp = tempfile.mkstemp(prefix=_files.temp_name_prefix(key), suffix=".tmp", dir=self.root)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        name = str(path)
        with self._index.lock:
            if self._index.listed:
                paths = self._index.names.setdefault(path.name[:-5], [])
                if name not in paths:
                    paths.append(name)
            self._index.by_key[(key, occurrence)] = name
            self._index.occurrences.setdefault(key, set()).add(occurrence)
            self._index.seen.pop(name, None)
            self._index.contents.pop(name, None)
            self.note_own_write(path, directory_before)
        return path


def with_occurrence(record: Mapping[str, Any], occurrence: int) -> dict[str, Any]:
    """``record`` saying it is occurrence ``occurrence`` (FORMAT.md: the field after ``test_id``,
    absent for the first)."""
    rest = {k: v for k, v in record.items() if k not in ("test_id", "occurrence")}
    head: dict[str, Any] = {"test_id": record.get("test_id")} if "test_id" in record else {}
    if occurrence > 1:
        head["occurrence"] = occurrence
    return {**head, **rest}


_thread_locks: dict[Path, threading.Lock] = {}


@contextlib.contextmanager
def _directory_lock(root: Path) -> Iterator[None]:
    """Hold the write lock of the directory ``root``: a thread lock, and (where ``fcntl`` exists)
    an exclusive ``flock`` on the directory itself, which other processes take too. No file is
    created for it: nothing appears among the recordings."""
    with _indexes_lock:
        lock = _thread_locks.setdefault(root, threading.Lock())
    with lock:
        try:
            import fcntl
        except ImportError:  # Windows: threads only
            yield
            return
        fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock


def _content_key(record: Mapping[str, Any], path: str | Path, rules: Rules) -> str | None:
    """:func:`record_key` under ``rules``, with a shape no one foresaw reported as that file's
    format error."""
    try:
        return record_key(record, rules)
    except Exception as exc:  # a file's odd content must not stop lookups of other files
        raise RecordingFormatError(path, f"cannot compute its key ({type(exc).__name__}: {exc})") from None
