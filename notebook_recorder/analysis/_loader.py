"""Find recording files, read them once, and cache what was extracted. No pandas here.

The cache maps a path to what was extracted from it, and is trusted only while the file's
``(size, mtime_ns, ctime_ns, inode)`` are unchanged: an edit, an atomic replace, even an edit
that restores the old mtime, changes one of them. A file modified within :data:`RACY_WINDOW_NS`
of the moment it was read is "racy" (git's term): a second write in the same timestamp tick
would leave its stat unchanged, so such an entry is read again next time rather than trusted.
Nothing stale is ever served, and a corpus that is not being written to is parsed once per
process. Directory listings are cached the same way, by the directory's stat: adding, removing or
renaming a file changes it.

A load of many new files (:data:`PARALLEL_MIN_FILES`) reads them from both ends of the list at
once, the second half in a helper process on another CPU (:class:`_Helper`); the result is the
same as when one process reads them all.

Files are listed and read through :mod:`notebook_recorder.core._files`, as the store and the command
line do: a FIFO, socket or device named ``*.json``, a link loop, a broken link or an entry that
cannot be examined becomes a row with ``error`` set, and never stops or hangs a load.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import stat as stat_module
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from ..core import _files
from ..core._errors import RecordingFormatError
from ..core._keys import name_occurrence
from ._extract import extract
from ._progress import Progress
from ._rows import Extracted

if TYPE_CHECKING:
    import subprocess

#: Files modified this close (in ns) to the moment they were read are read again next time.
RACY_WINDOW_NS = 2_000_000_000
#: Loads of at least this many new or changed files get a helper process (see :class:`_Helper`).
PARALLEL_MIN_FILES = 1000
#: Set to ``0`` to never start a helper process: every file is then read in this process.
ENV_LOAD_HELPER = "NOTEBOOK_RECORDER_LOAD_HELPER"

StatKey = tuple[int, int, int, int]
Source = Any  # a path, a list of paths, or a DataFrame with a ``path`` column


#: The error of a file that cannot be read, as this module called it in 0.1: now
#: :class:`~notebook_recorder.RecordingFormatError` itself, which every part of the package raises
#: for a bad file (``nr.RecordingLoadError`` stays, deprecated, until 0.3).
RecordingLoadError = RecordingFormatError


class Loaded(NamedTuple):
    """The files of one load, as parallel lists."""

    paths: list[str]
    sizes: list[int | None]  # None when the file is gone
    results: list[Extracted | str]  # a str is why the file could not be read
    extras: list[dict[Callable[[Any], Any], Any]]  # values of callable columns; empty without them
    mtimes_ns: list[int]  # each file's modification time (-1 when the file is gone)


class _Cached(NamedTuple):
    stat: StatKey
    trusted: bool  # False when the file changed so recently that its stat may not show the next change
    result: Extracted | str
    extras: dict[Callable[[Any], Any], Any]  # values of callable columns, by column function
    size: int | None  # None when the file could not be opened


_CACHE: dict[str, _Cached] = {}


def clear_cache() -> None:
    """Forget every cached file (and frame)."""
    _CACHE.clear()
    _DIRS.clear()
    for hook in _CLEAR_HOOKS:
        hook()


_CLEAR_HOOKS: list[Callable[[], None]] = []


# --- discovering files ------------------------------------------------------------------------

Stat = os.stat_result | None  # None: not taken, because the file is not in the cache (fstat tells)


class _Listing(NamedTuple):
    stat: StatKey  # of the directory when it was listed
    trusted: bool  # False when it changed so recently that its stat may not show the next change
    listing: _files.Listing  # its *.json files, subdirectories and odd entries


#: Directory listings, trusted like files: while the directory's stat is unchanged. Adding,
#: removing or renaming an entry changes the directory's mtime and ctime.
_DIRS: dict[str, _Listing] = {}


def _listing(root: str, st: os.stat_result) -> _files.Listing:
    """:func:`notebook_recorder.core._files.list_dir`, cached by the directory's stat. A listing with
    odd entries is never trusted: a link's target can change without its directory changing."""
    key = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    c = _DIRS.get(root)
    if c is not None and c.trusted and c.stat == key:
        return c.listing
    now_ns = time.time_ns()
    listing = _files.list_dir(root)
    trusted = st.st_mtime_ns < now_ns - RACY_WINDOW_NS and not listing.problems
    _DIRS[root] = _Listing(key, trusted, listing)
    return listing


def _walk(
    root: str,
    st: os.stat_result,
    paths: list[str],
    stats: list[Stat],
    cached: dict[str, _Cached],
    problems: list[_files.Problem],
) -> None:
    """Append every ``*.json`` under the directory ``root`` (of stat ``st``), in name order, and
    the entries that cannot be read to ``problems``.

    A file is stat'ed only when the cache has it, to check the entry; a new file is stat'ed when
    it is opened (``fstat``), so a first load costs no extra system call per file. A directory
    is listed again only when its stat changed (see :data:`_DIRS`).
    """
    walk = _files.walk(root, st, _listing)
    problems += walk.problems
    stat = os.stat
    for path in walk.files:
        if path in cached:
            try:
                stats.append(stat(path))
            except FileNotFoundError:  # removed while we looked
                continue
            except OSError:  # a link that became a loop...: read again, which reports it
                stats.append(None)
            paths.append(path)
        else:
            stats.append(None)
            paths.append(path)


def _is_frame(src: Any) -> bool:
    return hasattr(src, "columns") and hasattr(src, "__getitem__") and not isinstance(src, (str, bytes))


def find_files(src: Source) -> tuple[list[str], list[Stat], list[_files.Problem]]:
    """Paths (and stats, see :func:`_walk`) of every recording named by ``src``, in a stable order,
    and the entries found that cannot be read (FIFOs, link loops...).

    ``src`` is a file or directory (searched recursively for ``*.json``), an iterable of them, or a
    frame with a ``path`` column, such as one returned by :func:`load_recordings`. Duplicates are
    dropped.
    """
    cached = _CACHE
    paths: list[str] = []
    stats: list[Stat] = []
    problems: list[_files.Problem] = []
    if _is_frame(src):
        if "path" not in src.columns:
            raise ValueError("a frame given as source needs a 'path' column (use load_recordings)")
        paths = list(dict.fromkeys(p for p in src["path"].tolist() if isinstance(p, str)))
        stat = os.stat
        for p in paths:
            if p in cached:
                try:
                    stats.append(stat(p))
                except FileNotFoundError:
                    stats.append(_MISSING)
            else:
                stats.append(None)
        return paths, stats, problems
    for entry in _given(src):
        if isinstance(entry, _files.Problem):
            problems.append(entry)
            continue
        p, st = entry
        if stat_module.S_ISDIR(st.st_mode):
            _walk(p, st, paths, stats, cached, problems)
        else:
            paths.append(p)
            stats.append(st)
    if len(paths) != len(set(paths)):
        seen: set[str] = set()
        keep = [i for i, p in enumerate(paths) if not (p in seen or seen.add(p))]  # type: ignore[func-returns-value]
        paths, stats = [paths[i] for i in keep], [stats[i] for i in keep]
    return paths, stats, problems


_MISSING = os.stat_result((0,) * 16)  # stands for a file that vanished


def iter_sources(src: Source) -> Iterator[str | _files.Problem]:
    """What :func:`find_files` finds, as it goes and without keeping it (for sources too large to
    list in memory): each recording's path, or a :class:`~notebook_recorder.core._files.Problem`
    for an entry that cannot be read; in the same order, duplicates included (the caller drops
    them). Directory listings are not cached (:func:`find_files` caches them by their stat)."""
    for item in iter_listings(src):
        if type(item) is _files.Listed:
            yield from item.listing.files
            yield from item.listing.problems
        else:
            yield item  # type: ignore[misc]


def iter_listings(src: Source) -> Iterator[_files.Listed | str | _files.Problem]:
    """:func:`iter_sources` a directory at a time: each directory's
    :class:`~notebook_recorder.core._files.Listed` (its files and odd entries), and each file
    named directly (a path) or entry that cannot be read (a ``Problem``), in the same order."""
    if _is_frame(src):
        paths, _, _ = find_files(src)  # the frame holds them all already
        yield from paths
        return
    for entry in _given(src):
        if isinstance(entry, _files.Problem):
            yield entry
            continue
        p, st = entry
        if stat_module.S_ISDIR(st.st_mode):
            yield from _files.iter_listings(p, st)
        else:
            yield p


def _given(src: Any) -> Iterator[tuple[str, os.stat_result] | _files.Problem]:
    """Each file or directory ``src`` names (one, or an iterable of them), with its stat; a
    :class:`~notebook_recorder.core._files.Problem` for one that cannot be examined."""
    items: Iterable[Any] = [src] if isinstance(src, (str, os.PathLike)) else src
    for item in items:
        p = os.fspath(item)
        try:
            st = os.stat(p)
        except FileNotFoundError:
            raise  # a path that does not exist is the user's to see
        except OSError as e:  # a link loop...: a row that says so
            yield _files.Problem(p, _files.error_text(e))
            continue
        yield p, st


# --- reading ----------------------------------------------------------------------------------


read_file = _files.read_file  # the file's bytes and its fstat; only regular files, never blocks


def _key_of(path: str) -> str:
    """The key a file's name gives: the name without ``.json``, and without the ``-<k>`` of an
    occurrence file (``<key>-<k>.json``), so that every occurrence of a request shares its key."""
    name = path.rpartition(os.sep)[2]
    if os.altsep:
        name = name.rpartition(os.altsep)[2]
    stem = name[:-5] if name.endswith(".json") else os.path.splitext(name)[0]
    return name_occurrence(stem)[0] if len(stem) > 65 else stem


def parse_file(path: str) -> tuple[Extracted | str, Any, os.stat_result | None]:
    """(extracted rows or an error message, the parsed JSON or None, the file's stat or None)."""
    try:
        raw, st = read_file(path)
    except FileNotFoundError:
        return "cannot read the file: no such file", None, None
    except OSError as e:
        return f"cannot read the file: {_files.error_text(e)}", None, None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        return f"invalid JSON: {e}", None, st
    del raw
    try:
        result = extract(data, _key_of(path), path)
        _files.check_record(data, path, depth=False)  # nothing here recurses: any depth is harmless
        return result, data, st
    except RecordingFormatError as e:
        return e.problem, data, st
    except RecursionError:
        return "unreadable recording: nested too deeply", data, st
    except Exception as e:  # a shape no one foresaw must not stop a load
        return f"unreadable recording: {type(e).__name__}: {e}", data, st


# --- loading ----------------------------------------------------------------------------------


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector during a bulk load.

    Parsing allocates millions of containers while the cache keeps growing, so the collector
    would otherwise rescan the cache again and again (a third of the load time, measured). Rows
    hold no reference cycles, and the previous state is restored even on error.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def load_entries(
    src: Source,
    *,
    strict: bool = False,
    progress: bool | None = None,
    extras: Sequence[Callable[[Any], Any]] = (),
) -> Loaded:
    """Every file of ``src`` with its extracted rows, from the cache when still valid.

    Two passes: a quick one that checks the stat of every cached file, then one that reads only
    the files that are new or changed (with a progress bar when that takes a while, and with a
    helper process when they are many, see :class:`_Helper`).
    ``extras`` are functions of a recording's parsed JSON (callable column extractors); their
    values per file come back in ``Loaded.extras``.
    """
    paths, stats, problems = find_files(src)
    cache = _CACHE
    get = cache.get
    results: list[Any] = []
    todo: list[int] = []
    for i, (path, st) in enumerate(zip(paths, stats, strict=True)):
        c = get(path) if st is not None else None
        if (
            c is None
            or not c.trusted
            or c.stat != (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)  # type: ignore[union-attr]
            or (extras and any(f not in c.extras for f in extras))
        ):
            todo.append(i)
            results.append(None)
        else:
            results.append(c.result)
    if todo:
        started_ns = time.time_ns()  # before any read: files modified after it are not trusted
        bar = Progress(len(todo), progress, "Loading recordings")
        helper = None
        try:
            with gc_paused():
                if len(todo) >= PARALLEL_MIN_FILES and not extras:
                    helper = _Helper.start([paths[i] for i in todo], started_ns)
                # This process reads from the start of the list; the helper, if any, from the end.
                k, end = 0, len(todo)
                while k < end:
                    i = todo[k]
                    c = _read_one(paths[i], extras, started_ns)
                    cache[paths[i]] = c
                    results[i] = c.result
                    bar.advance()
                    k += 1
                    if helper is not None:
                        for j, c in helper.poll():
                            if j >= k:  # not read here already
                                i = todo[j]
                                cache[paths[i]] = c
                                results[i] = c.result
                                bar.advance()
                        end = max(k, helper.end)
        finally:
            if helper is not None:
                helper.stop()
            bar.close()
    entries = [cache[p] for p in paths]
    extra_values = [c.extras for c in entries] if extras else []
    if problems:  # entries that are not readable files: rows with only an error
        known = set(paths)
        problems = [odd for odd in problems if odd.path not in known]
        paths = paths + [odd.path for odd in problems]
        results = results + [odd.problem for odd in problems]
        entries = entries + [_Cached((-1, -1, -1, -1), False, odd.problem, {}, None) for odd in problems]
        if extras:
            extra_values = extra_values + [{} for _ in problems]
    if strict:
        for path, r in zip(paths, results, strict=True):
            if isinstance(r, str):
                raise RecordingFormatError(path, r)
        for path, values in zip(paths, extra_values, strict=False):
            for f in extras:
                e = values.get(f)
                if isinstance(e, Exception):
                    name = getattr(f, "__name__", repr(f))
                    raise RecordingFormatError(path, f"column function {name}: {type(e).__name__}: {e}") from e
    return Loaded(paths, [c.size for c in entries], results, extra_values, [c.stat[1] for c in entries])


def _read_one(path: str, extras: Sequence[Callable[[Any], Any]], started_ns: int) -> _Cached:
    result, data, st = parse_file(path)
    if st is None:
        return _Cached((-1, -1, -1, -1), False, result, {}, None)
    values: dict[Callable[[Any], Any], Any] = {}
    if extras and data is not None and not isinstance(result, str):
        for f in extras:
            try:
                values[f] = f(data)
            except Exception as e:  # kept, to become an error (or be raised when strict)
                values[f] = e
    key = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    return _Cached(key, st.st_mtime_ns < started_ns - RACY_WINDOW_NS, result, values, st.st_size)


# --- a helper process for large loads ---------------------------------------------------------


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class _Helper:
    """A second Python process that reads, parses and extracts files from the end of a list.

    Reading a large corpus is CPU-bound (orjson holds the GIL, and so does the extraction), so on
    a machine with a second core a helper process halves it: the loading process reads files
    from the start of the list, the helper from the end, and they meet in the middle. The helper
    sends the extracted rows of every batch of files it finishes (pickled ``_Cached`` entries,
    the very values this process would have made), and is killed when the two meet, so that
    which process read a file changes nothing in the result, only the time it took.

    The helper is a fresh interpreter (not a fork: forking a process with threads, as pandas
    sessions and notebooks have, is unsafe), started with this process's ``sys.path``. It takes
    about as long to start as this process takes to read a few hundred files, which is why it is
    used for large loads only. If it cannot be started, fails, or is slow, this process simply
    reads the remaining files itself: the helper can only save time.
    """

    BATCH = 32  # files per message: small enough to meet closely, large enough to pickle well

    def __init__(self, proc: subprocess.Popen[bytes], fd: int, n: int) -> None:
        self.proc = proc
        self.fd = fd
        self.buf = bytearray()
        self.end = n  # the files from this index on have been received
        self.failed = False

    @staticmethod
    def possible() -> bool:
        """Whether a helper can help: allowed, a second CPU, and a Python interpreter to run it with."""
        if os.environ.get(ENV_LOAD_HELPER, "").strip() == "0":
            return False
        return os.name == "posix" and _usable_cpus() >= 2 and bool(sys.executable) and not getattr(sys, "frozen", False)

    @classmethod
    def start(cls, paths: list[str], started_ns: int) -> _Helper | None:
        """A helper for ``paths``, or None when there is no second CPU or no interpreter to run."""
        if not cls.possible():
            return None
        import threading  # here: the helper process itself needs it not

        request = pickle.dumps((sys.path, paths, started_ns, cls.BATCH), protocol=pickle.HIGHEST_PROTOCOL)
        proc = spawn_helper(_HELPER_CODE)
        if proc is None:
            return None
        assert proc.stdin is not None and proc.stdout is not None
        fd = proc.stdout.fileno()
        os.set_blocking(fd, False)
        # The request is larger than a pipe holds and the helper needs a moment to start: write it
        # from a thread (blocked in the system call, without the GIL) rather than wait for it here.
        threading.Thread(target=_send, args=(proc.stdin, request), daemon=True).start()
        return cls(proc, fd, len(paths))

    def poll(self) -> list[tuple[int, _Cached]]:
        """The entries received since the last call, with their index; they lower :attr:`end`."""
        if self.failed:
            return []
        try:
            chunk = os.read(self.fd, 1 << 20)
        except BlockingIOError:
            return []
        except OSError:
            chunk = b""
        if not chunk:  # the helper is gone (finished, or failed): nothing more will come
            return []
        buf = self.buf
        buf += chunk
        out: list[tuple[int, _Cached]] = []
        while len(buf) >= 8:
            n = int.from_bytes(buf[:8], "little")
            if len(buf) < 8 + n:
                break
            try:
                lo, entries = pickle.loads(buf[8 : 8 + n])
                ok = lo + len(entries) == self.end  # batches come from the end, in order
            except Exception:
                ok = False
            if not ok:  # something is wrong with the helper: this process reads the rest itself
                self.failed = True
                break
            out.extend(enumerate(entries, lo))
            self.end = lo
            del buf[: 8 + n]
        return out

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def spawn_helper(code: str, *, buffered: bool = False) -> Any:
    """A fresh interpreter (``-I``) running ``code``, with pipes to its stdin and from its stdout
    (unbuffered unless ``buffered``: ``pickle.load`` needs whole reads), or None when none can be
    started: the caller then does the work itself."""
    import subprocess

    try:
        return subprocess.Popen(
            [sys.executable, "-I", "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=-1 if buffered else 0,
        )
    except OSError:
        return None


def _send(pipe: Any, data: bytes) -> None:
    try:
        with pipe:
            pipe.write(data)
    except OSError:  # the helper is gone; this process reads the files itself
        pass


_HELPER_CODE = """\
import pickle, sys
request = pickle.load(sys.stdin.buffer)
sys.path[:] = request[0]
from notebook_recorder.analysis._loader import _helper_main
_helper_main(*request[1:])
"""


def _helper_main(paths: list[str], started_ns: int, batch: int) -> None:
    """The helper process: read ``paths`` from the end, sending each batch's entries on stdout."""
    gc.disable()  # see gc_paused; this process ends when the loading one has what it needs
    out = sys.stdout.buffer
    hi = len(paths)
    while hi > 0:
        lo = max(0, hi - batch)
        entries = [_read_one(p, (), started_ns) for p in paths[lo:hi]]
        data = pickle.dumps((lo, entries), protocol=pickle.HIGHEST_PROTOCOL)
        out.write(len(data).to_bytes(8, "little") + data)
        out.flush()
        hi = lo
