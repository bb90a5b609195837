"""The explanation of a missing recording: the nearest recorded request, the diff, the hint.

:class:`~notebook_recorder.RecordingNotFoundError` (``_errors``) carries this text. As vcrpy's
``errors.py`` explains a cassette miss, it names the request that had no recording, shows the
nearest recorded request in that directory and the smallest diff between the two (for example
``temperature: 0.7 -> 0.2``), suggests ``normalize=``/``ignore=`` rules when the two differ only
in volatile strings, and says how to record the missing call.
"""

from __future__ import annotations

import heapq
import os
import re
import struct
import sys
import threading
import time
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from . import _nearest_cache, _user_cache
from ._calllog import display_path
from ._errors import RecordingFormatError
from ._keys import (
    SHARED_ENDPOINTS,
    InferenceRequest,
    Request,
    ToolRequest,
    comparable,
    diff,
    normalize,
    request_from_record,
)
from ._match import volatile_only
from ._modes import ENV_MODE, Mode, env_mode, env_mode_source
from ._store import on_parse, read_recording, walk_recordings

if TYPE_CHECKING:
    from ._match import Rules
    from ._store import Store


class Recorder(Protocol):
    """What the explanation reads of a :class:`~._recorder.Recorder` (which calls it): its store,
    scope and rules, and the command that records a pytest test (set by the pytest plugin)."""

    @property
    def store(self) -> Store: ...

    @property
    def record_command(self) -> str | None: ...

    @property
    def scope(self) -> str | None: ...

    @property
    def rules(self) -> Rules: ...


def missing_message(recorder: Recorder, request: Request, key: str) -> str:
    """Why ``request`` (keyed ``key``) has no recording under ``recorder``, and what to do."""
    directory = display_path(recorder.store.root)
    lines = [f"No recording of {request.summary()} in {directory}/ (key {key[:12]}…, scope {recorder.scope!r})."]
    client = getattr(request, "client", "")
    if client:
        lines.append(f"The request was made by {client}.")
    if recorder.rules:
        lines.append(f"Requests are matched under these rules: {recorder.rules.summary()}.")
    closest = nearest(recorder, request)
    if closest is None and not recorder.store.exists:
        lines.append("That directory does not exist: nothing has been recorded there yet.")
    elif closest is None:
        lines.append("There is no recorded request to compare it with in that directory.")
    else:
        path, changes = closest
        lines.append(f"Nearest recorded request: {display_path(path)}")
        lines += [f"    {change}" for change in changes[:8]]
        if len(changes) > 8:
            lines.append(f"    … and {len(changes) - 8} more differences")
        lines += _volatile_hint(changes)
    broken = recorder.store.errors()
    if broken:
        lines.append(f"{len(broken)} file(s) there could not be read:")
        lines += [f"    {display_path(p)}: {problem}" for p, problem in list(broken.items())[:5]]
    lines += record_hint(recorder, directory)
    return "\n".join(lines)


MAX_COMPARED = 64
"""Recorded requests diffed at most to explain one miss: the nearest is looked for among those
of the same endpoint and model first (:class:`_Summary`), so a folder of any size is explained
in about the same time."""

MAX_LEAVES = 512
"""Leaves of a request summarized at most (a longer request is ranked by its first ones)."""


class _Summary(NamedTuple):
    """What the search needs to know of a recording without reading it again. A file that holds
    no request we can compare (unreadable, or of a kind without a key) has an empty ``group``."""

    group: tuple[str, ...]  # ("tool", provider/name) or (method, endpoint)
    model: str
    test_id: str | None
    size: int
    mtime_ns: int
    fields: str  # one 8-byte digest per leaf of the body (or kwargs), in hex: see _leaves


_path_digests: dict[str, int] = {}  # leaf paths repeat from file to file: each is hashed once


def _path_digest(path: str) -> int:
    digest = _path_digests.get(path)
    if digest is None:
        digest = zlib.crc32(path.encode("utf-8", "surrogatepass"))
        if len(_path_digests) < 100_000:
            _path_digests[path] = digest
    return digest


def _value_digest(value: Any) -> int:
    kind = type(value)
    if kind is str:
        if "." in value:
            value = normalize(value)  # long decimals in strings, as keys and diffs see them
        return zlib.crc32(value.encode("utf-8", "surrogatepass"), 1)  # not the digest of its repr
    if kind is float:
        value = round(value, 5)
    return zlib.crc32(repr(value).encode("utf-8", "surrogatepass"))


def _leaves(request: Request) -> str:
    """One digest per leaf of the request's body (or a tool's kwargs), as :func:`._keys.diff`
    sees them: the path's CRC in the high 32 bits, the value's in the low 32, packed and in hex.
    How many leaves two requests do not share estimates how many changes their diff has (so a
    recording that differs in one value is diffed before one that differs in five), without
    reading it again. Stable across processes (they are kept on disk by :mod:`._nearest_cache`)."""
    body = request.kwargs if isinstance(request, ToolRequest) else request.body
    digests: list[int] = []
    _walk(body, "", digests)
    return struct.pack(f">{len(digests)}Q", *digests).hex()


_HEX = re.compile(r"[0-9a-f]*")


def _well_formed(fields: Any) -> bool:
    """Whether ``fields`` is what :func:`_leaves` makes (a cache can hold anything)."""
    return (
        type(fields) is str and len(fields) <= 16 * MAX_LEAVES and not len(fields) % 16 and bool(_HEX.fullmatch(fields))
    )


_SCALARS = (str, int, float, bool, type(None))


def _walk(value: Any, prefix: str, digests: list[int]) -> None:
    """The leaves of ``value`` at the paths :func:`._keys.diff` names them, into ``digests``."""
    if type(value) in _SCALARS:
        if len(digests) < MAX_LEAVES:
            digests.append(_path_digest(prefix or "(value)") << 32 | _value_digest(value))
    elif (type(value) is dict or isinstance(value, Mapping)) and value:
        for name, item in value.items():
            if len(digests) >= MAX_LEAVES:
                return
            _walk(item, f"{prefix}.{name}" if prefix else str(name), digests)
    elif isinstance(value, list | tuple) and value:
        for i, item in enumerate(value):
            if len(digests) >= MAX_LEAVES:
                return
            _walk(item, f"{prefix}[{i}]", digests)
    elif len(digests) < MAX_LEAVES:
        digests.append(_path_digest(prefix or "(value)") << 32 | _value_digest(value))


def _digests(fields: str) -> tuple[int, ...]:
    """The digests of :func:`_leaves` (none when ``fields`` is not theirs: a cache can be wrong)."""
    try:
        packed = bytes.fromhex(fields)
        return struct.unpack(f">{len(packed) // 8}Q", packed)
    except (ValueError, struct.error):
        return ()


def _estimate(wanted: frozenset[int], wanted_paths: frozenset[int], fields: str) -> int:
    """About how many changes the diff between two requests has: the leaf paths of either that
    are not the same leaf (same path, same value) in both."""
    digests = _digests(fields)
    paths = {digest >> 32 for digest in digests}
    return len(paths) + len(wanted_paths) - len(wanted_paths.intersection(paths)) - len(wanted.intersection(digests))


# Per directory: path -> its summary. Kept for the process, so that each further miss only lists
# the folder and reads the few files it compares; a large folder's summaries are also kept on
# disk between processes (:mod:`._nearest_cache`).
_summaries: dict[Path, dict[str, _Summary]] = {}
_summaries_lock = threading.Lock()
_unsaved: set[Path] = set()  # directories whose summaries changed since the cache was written
_unchecked: dict[Path, set[str]] = {}  # summaries from the cache on disk, not stat-ed yet


def forget_summaries() -> None:
    """Drop the per-directory summaries held in memory (tests and benchmarks use this to start
    as a new process would; the cache on disk is kept)."""
    with _summaries_lock:
        _summaries.clear()
        _listings.clear()
        _built_from.clear()
        _disk_listings.clear()
        _unsaved.clear()
        _unchecked.clear()


def _group(request: Request) -> tuple[str, ...]:
    return ("tool", request.label) if isinstance(request, ToolRequest) else (request.method, request.endpoint)


def _model(request: Request) -> str:
    """The request's model: its ``model`` field, else its body's (older files have no field)."""
    if request.model or isinstance(request, ToolRequest):
        return request.model
    model = request.body.get("model") if isinstance(request.body, dict) else None
    return model if isinstance(model, str) else ""


def _summary_of(stored: Request | None, test_id: Any, size: int, mtime_ns: int) -> _Summary:
    if stored is None:
        return _Summary((), "", None, size, mtime_ns, "")
    scope = test_id if isinstance(test_id, str) else None
    return _Summary(_group(stored), _model(stored), scope, size, mtime_ns, _leaves(stored))


def _summarize(path: str) -> _Summary | None:
    """The summary of one file as it is now; ``None`` when it is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    try:
        record = read_recording(Path(path))
    except RecordingFormatError:
        return _summary_of(None, None, st.st_size, st.st_mtime_ns)
    return _summary_of(request_from_record(record), record.get("test_id"), st.st_size, st.st_mtime_ns)


# Per directory: the mtimes of the directories listed, when they were listed, and the files
# found. A directory's mtime changes when a file is added, removed or renamed in it: while none
# changed, the folder is not listed again (30,000 entries take longer to list than the rest of an
# explanation).
_listings: dict[Path, tuple[dict[str, int], int, list[str]]] = {}
_built_from: dict[Path, list[str]] = {}  # the listing each directory's summaries were last brought up to
_disk_listings: dict[Path, list[str]] = {}  # listings just taken from the cache on disk
RACY_NS = _user_cache.RACY_NS
"""A directory changed less than this before it was listed may change again within the same
timestamp: its listing is not kept in the cache on disk (see :func:`_listed_on_disk`)."""


def _unchanged(mtimes: dict[str, int]) -> bool:
    try:
        return all(os.stat(folder).st_mtime_ns == mtime for folder, mtime in mtimes.items())
    except OSError:
        return False


def _recording_files(root: Path, on_disk: _nearest_cache.Cached | None = None) -> list[str]:
    """The recording files under ``root``: as listed last time by this process, or by an earlier
    one (``on_disk``), while none of its directories changed since; else listed now."""
    cached = _listings.get(root)
    if cached is not None and _unchanged(cached[0]):
        return cached[2]
    if on_disk is not None:
        files = _listed_on_disk(root, on_disk)
        if files is not None:
            return files
    listed_at = time.time_ns()
    walk = walk_recordings(root)
    mtimes = {}
    for folder in walk.dirs:
        try:
            mtimes[folder] = os.stat(folder).st_mtime_ns
        except OSError:
            continue
    with _summaries_lock:
        _listings[root] = (mtimes, listed_at, walk.files)
    return walk.files


def _listed_on_disk(root: Path, on_disk: _nearest_cache.Cached) -> list[str] | None:
    """The listing kept in the cache on disk, if none of the folder's directories changed since
    (nor shortly before it was made): the files of its entries. Names that are not plain
    relative paths of ``*.json`` files in the directories listed are refused with the listing."""
    prefix = str(root) + os.sep
    mtimes: dict[str, int] = {}
    for name, mtime in on_disk.dirs.items():
        if type(mtime) is not int or mtime > on_disk.listed_at - RACY_NS or not _plain(name, ""):
            return None
        mtimes[str(root) if name == "" else prefix + name] = mtime
    if str(root) not in mtimes or not _unchanged(mtimes):
        return None
    names = list(on_disk.files)
    flat = len(on_disk.dirs) == 1  # the folder alone: no "/" in any name
    if not (_FLAT_NAMES if flat else _NAMES).fullmatch("\n".join(names) + "\n"):
        return None
    if not flat:
        dirs = {name + "/" if name else "" for name in on_disk.dirs}
        if any(name[: name.rfind("/") + 1] not in dirs for name in names):
            return None
    files = [prefix + name for name in names] if os.sep == "/" else [prefix + n.replace("/", os.sep) for n in names]
    with _summaries_lock:
        _listings[root] = (mtimes, on_disk.listed_at, files)
        _disk_listings[root] = files
    return files


_PART = r"[^./\n\\\0][^/\n\\\0]*"  # a file or directory name, not hidden
_FLAT_NAMES = re.compile(rf"(?:{_PART}\.json\n)*")  # one name a line
_NAMES = re.compile(rf"(?:(?:{_PART}/)*{_PART}\.json\n)*")


def _plain(name: str, suffix: str) -> bool:
    """Whether ``name`` is a relative path with no hidden, empty, ``..`` or absolute part."""
    if not isinstance(name, str) or not name.endswith(suffix) or "\\" in name or "\0" in name:
        return False
    return name == "" or all(part and part[0] != "." for part in name.split("/"))


def _from_cache(root: Path, new: list[str], on_disk: _nearest_cache.Cached) -> tuple[dict[str, _Summary], bool]:
    """The summaries the folder's cache on disk holds for ``new`` files; a malformed entry is not
    used. Each is checked against its file (same size and modification time) before its leaves
    are compared (:func:`_checked`): the endpoint and model of the files never ranked are
    taken as cached, which spares a ``stat`` of every file in the folder. Also whether the cache
    holds entries of other files (gone since, or malformed), so that it is written again."""
    groups: list[tuple[tuple[str, ...], str] | None] = []
    for row in on_disk.groups:
        ok = isinstance(row, list) and len(row) == 2 and isinstance(row[0], list) and isinstance(row[1], str)
        ok = ok and len(row[0]) <= 2 and all(isinstance(part, str) for part in row[0])
        groups.append((tuple(row[0]), row[1]) if ok else None)
    cached = on_disk.files
    prefix = str(root) + os.sep
    cut, get, make, rows_count = len(prefix), cached.get, _Summary._make, len(groups)
    found = {}
    if _disk_listings.pop(root, None) is new:  # the listing kept with them: in the same order
        pairs: Iterable[tuple[str, Any]] = zip(new, cached.values(), strict=True)
    else:
        pairs = ((path, get(path[cut:].replace(os.sep, "/"))) for path in new)
    for path, entry in pairs:
        # Only the endpoint and model are checked here: the rest is checked before it is used
        # (_checked), for the few files ranked by their leaves.
        if type(entry) is not list or len(entry) != 5 or type(entry[2]) is not int or not 0 <= entry[2] < rows_count:
            continue
        kind = groups[entry[2]]
        if kind is not None:
            found[path] = make((kind[0], kind[1], entry[3], entry[0], entry[1], entry[4]))
    return found, len(found) != len(cached)


def _summarized(root: Path) -> dict[str, _Summary]:
    """Every recording under ``root``, summarized; files read once per process (new ones on a
    later miss; a file found changed when it is compared is summarized again), or not at all
    when the folder's cache on disk has them as they are."""
    on_disk = _nearest_cache.load(root) if root not in _built_from else None
    files = _recording_files(root, on_disk)
    with _summaries_lock:
        known = _summaries.setdefault(root, {})
        if _built_from.get(root) is files:
            return dict(known)  # the same listing as last time: every file in it is summarized
        present = set(files)
        gone = [path for path in known if path not in present]
        for path in gone:
            del known[path]
        cold = not known and not gone
        new = files if cold else [path for path in files if path not in known]
    reused, stale = _from_cache(root, new, on_disk) if new and on_disk is not None else ({}, False)
    found = dict(reused)
    for path in new:
        if path not in found:
            summary = _summarize(path)
            if summary is not None:
                found[path] = summary
    with _summaries_lock:
        if gone or stale or len(found) > len(reused):
            _unsaved.add(root)
        if reused:
            _unchecked.setdefault(root, set()).update(reused)
        known.update(found)
        _built_from[root] = files
        return dict(known)


def _observe(root: Path, path: str, record: dict[str, Any] | None, st: os.stat_result) -> None:
    """A file the store's content index has just parsed (:func:`._store.on_parse`), summarized
    from that parse: the first miss in a folder reads each file once, not once for the index and
    once for the explanation."""
    stored = request_from_record(record) if record is not None else None
    test_id = record.get("test_id") if record is not None else None
    summary = _summary_of(stored, test_id, st.st_size, st.st_mtime_ns)
    with _summaries_lock:
        known = _summaries.setdefault(root, {})
        if known.get(path) != summary:
            known[path] = summary
            _unsaved.add(root)
        unchecked = _unchecked.get(root)
        if unchecked is not None:
            unchecked.discard(path)


on_parse(_observe)


def _checked(root: Path, path: str, summary: _Summary) -> _Summary | None:
    """``summary`` if it is ``path``'s as the file is now (and well formed); else the file summarized again
    (``None``: it is gone). Only summaries from the cache on disk are checked: this process's
    own are brought up to date when compared (:func:`_refresh`)."""
    with _summaries_lock:
        unchecked = _unchecked.get(root)
        if unchecked is None or path not in unchecked:
            return summary
        unchecked.discard(path)
    try:
        st = os.stat(path)
    except OSError:
        st = None
    same = st is not None and st.st_size == summary.size and st.st_mtime_ns == summary.mtime_ns
    if same and (summary.test_id is None or type(summary.test_id) is str) and _well_formed(summary.fields):
        return summary
    fresh = _summarize(path) if st is not None else None
    _refresh(root, path, fresh)
    return fresh


def _save(root: Path) -> None:
    """Keep a large folder's summaries on disk for the next process, when they changed."""
    with _summaries_lock:
        if root not in _unsaved:
            return
        _unsaved.discard(root)
        known = dict(_summaries.get(root, {}))
    listing = _listings.get(root)
    if len(known) < _nearest_cache.MIN_FILES or listing is None:
        return
    mtimes, listed_at, files = listing
    if len(files) != len(known):
        return  # changed since it was listed: kept on disk by a later miss
    prefix = str(root) + os.sep
    dirs = {
        "" if folder == str(root) else folder[len(prefix) :].replace(os.sep, "/"): mtime
        for folder, mtime in mtimes.items()
    }
    rows: dict[tuple[tuple[str, ...], str], int] = {}
    entries = {}
    for path, summary in known.items():
        if path.startswith(prefix):
            row = rows.setdefault((summary.group, summary.model), len(rows))
            name = path[len(prefix) :].replace(os.sep, "/")
            entries[name] = [summary.size, summary.mtime_ns, row, summary.test_id, summary.fields]
    groups = [[list(group), model] for group, model in rows]
    _nearest_cache.save(root, _nearest_cache.Cached(groups, entries, dirs, listed_at))


def _candidates(
    request: Request, scope: str | None, summaries: dict[str, _Summary], root: Path | None = None
) -> list[str]:
    """At most :data:`MAX_COMPARED` files to diff: same endpoint and model first, then the same
    endpoint, then the rest; within each, the fewest changes estimated from the leaves first
    (:func:`_leaves`), then the same scope, then the newest. With ``root``, each summary ranked
    by its leaves is checked first (:func:`_checked`)."""
    group, model = _group(request), _model(request)
    leaves = _digests(_leaves(request))
    wanted, wanted_paths = frozenset(leaves), frozenset(digest >> 32 for digest in leaves)
    # comparable() keeps the scope of an API call (not of a tool call, nor of a model list)
    scoped = isinstance(request, InferenceRequest) and request.endpoint not in SHARED_ENDPOINTS

    def closeness(summary: _Summary) -> int:
        return 0 if summary.group == group and summary.model == model else 1 if summary.group == group else 2

    brackets: list[list[tuple[str, _Summary]]] = [[], []]
    for path, summary in summaries.items():
        if summary.group == group:
            brackets[summary.model != model].append((path, summary))
    if len(brackets[0]) + len(brackets[1]) < MAX_COMPARED:  # the other endpoints are needed too
        brackets.append([(path, summary) for path, summary in summaries.items() if summary.group not in (group, ())])
    chosen: list[str] = []
    for level, bracket in enumerate(brackets):
        room = MAX_COMPARED - len(chosen)
        if room <= 0:
            break
        ranked = []
        for path, summary in bracket:
            current = _checked(root, path, summary) if root is not None else summary
            if current is None or not current.group or closeness(current) != level:
                continue  # gone, or changed its endpoint or model since it was cached
            other_scope = current.test_id != scope
            changes = _estimate(wanted, wanted_paths, current.fields) + (scoped and other_scope)
            ranked.append((changes, other_scope, -current.mtime_ns, path))
        chosen += [path for *_, path in heapq.nsmallest(room, ranked)]
    return chosen


def _refresh(root: Path, path: str, summary: _Summary | None) -> None:
    """A compared file's summary as read now (it may have been edited since it was summarized)."""
    with _summaries_lock:
        known = _summaries.get(root, {})
        if path not in known or known[path] == summary:
            return
        if summary is None:
            del known[path]
        else:
            known[path] = summary
        _unsaved.add(root)


def nearest(recorder: Recorder, request: Request) -> tuple[Path, list[Any]] | None:
    """The recorded request nearest to ``request`` in the recorder's directory, and the changes.

    Bounded: at most :data:`MAX_COMPARED` recordings are diffed, chosen by endpoint, model and
    the leaves they share with ``request`` from an index of the folder that each file enters
    once (and, for a large folder, once for all processes: :mod:`._nearest_cache`)."""
    root = recorder.store.root
    wanted = comparable(request, recorder.scope, recorder.rules)
    summaries = _summarized(root)
    best: tuple[tuple[int, float], Path, list[Any]] | None = None
    for path in _candidates(request, recorder.scope, summaries, root):
        try:
            st = os.stat(path)
            record = read_recording(Path(path))
        except OSError:
            _refresh(root, path, None)
            continue
        except RecordingFormatError:
            _refresh(root, path, _summary_of(None, None, st.st_size, st.st_mtime_ns))
            continue
        stored = request_from_record(record)
        test_id = record.get("test_id")
        _refresh(root, path, _summary_of(stored, test_id, st.st_size, st.st_mtime_ns))
        if stored is None or type(stored) is not type(request):
            continue
        changes = diff(comparable(stored, test_id if isinstance(test_id, str) else None, recorder.rules), wanted)
        # Fewest changes first; among those, the most similar values ('3.12' is near '3.13').
        if best is not None and len(changes) > best[0][0]:
            continue  # its distance cannot make it nearer (and costs more than the rest)
        rank = (len(changes), sum(change.distance for change in changes))
        if best is None or rank < best[0]:
            best = (rank, Path(path), changes)
    _save(root)
    return (best[1], best[2]) if best else None


def _volatile_hint(changes: list[Any]) -> list[str]:
    """When the nearest recording differs only in strings that look volatile (dates, times, UUIDs,
    hex ids): say so, and show the ``normalize=`` (and, for id-like fields, ``ignore=``) to add."""
    found = volatile_only(changes)
    if not found:
        return []
    rules = {regex: placeholder for regex, placeholder in found.values()}
    as_python = "{" + ", ".join(f'r"{regex}": "{placeholder}"' for regex, placeholder in rules.items()) + "}"
    flags = " ".join(f"--normalize '{regex}={placeholder}'" for regex, placeholder in rules.items())
    toml = [f"    '{regex}' = \"{placeholder}\"" for regex, placeholder in rules.items()]
    lines = [
        f"It differs only in strings that look volatile ({', '.join(found)}). If they change on every "
        "run, match requests with them normalised:",
        f"    nr.recording(..., normalize={as_python})",
        f"    %apirec replay {flags}",
    ]
    # A field that is nothing but an id or a timestamp (``run-3f2a9c1d``) can be left out instead.
    ids = [c.path for c in changes if " " not in str(c.old).strip()]
    if ids:
        lines.append("  or leave those fields out of the key:")
        lines.append(f"    nr.recording(..., ignore={ids!r})")
        lines.append(f"    %apirec replay {' '.join(f'--ignore {path}' for path in ids)}")
    lines += ["  or for the whole project, in pyproject.toml:", "    [tool.notebook-recorder.normalize]", *toml]
    return lines


def record_hint(recorder: Recorder, directory: str) -> list[str]:
    """How to record the missing call, the way that fits where it was made first: under pytest
    the command that records the test (``Recorder.record_command``, set by the pytest plugin), in
    IPython or Jupyter the magic, in plain code the ``nr.recording`` line."""
    magic = "    %apirec record-if-missing                      (in a notebook)"
    code = f'    nr.recording("record-if-missing", dir="{directory}")   (in code)'
    if recorder.record_command:
        ways = [f"    {recorder.record_command}   (in pytest)", code]
    elif _in_ipython():
        ways = [magic, code]
    else:
        ways = [code, magic]
    lines = ["To record it, run the call once with an API key in record-if-missing mode:", *ways]
    if env_mode() is Mode.REPLAY:
        source = env_mode_source()
        if source.startswith("run "):  # notebook-recorder run set it for its kernel
            lines.append(f"{source} overrides the mode chosen in the notebook: run it with --mode record-if-missing.")
        else:
            lines.append(f"{ENV_MODE}=replay is set and overrides the mode chosen in code: unset it to record.")
    return lines


def _in_ipython() -> bool:
    """Whether the call was made in an IPython shell or a Jupyter kernel."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    return get is not None and get() is not None
