"""Find recording files, read them once, and cache what was extracted. No pandas here.

The cache maps a path to what was extracted from it, and is trusted only while the file's
``(size, mtime_ns, ctime_ns, inode)`` are unchanged. A file whose timestamps are within
:data:`RACY_WINDOW_NS` of the moment it was read is "racy" (git's term): a second write in the
same timestamp tick would leave its stat unchanged, so such an entry is read again next time
rather than trusted. Nothing stale is ever served, and a corpus that is not being written to is
parsed once per process.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import orjson

from ._extract import Extracted, RecordingFormatError, extract

#: Files modified this close (in ns) to the moment they were read are read again next time.
RACY_WINDOW_NS = 2_000_000_000
#: Show a progress bar once loading has taken this long (seconds).
PROGRESS_DELAY_S = 1.0

StatKey = tuple[int, int, int, int]
Source = Any  # a path, a list of paths, or a DataFrame with a ``path`` column


class RecordingLoadError(ValueError):
    """A recording file could not be read (raised when ``strict=True``); names the file."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class Entry(NamedTuple):
    """One file of a load: its path, size, and what was extracted (or why it failed)."""

    path: str
    size: int | None  # None when the file is gone
    result: Extracted | str  # a str is the error


class _Cached(NamedTuple):
    stat: StatKey
    read_ns: int  # wall clock just before the stat that produced ``stat``
    result: Extracted | str
    extras: dict[Callable[[Any], Any], Any]  # values of callable columns, by column function


_CACHE: dict[str, _Cached] = {}


def clear_cache() -> None:
    """Forget every cached file (and frame)."""
    _CACHE.clear()
    for hook in _CLEAR_HOOKS:
        hook()


_CLEAR_HOOKS: list[Callable[[], None]] = []


# --- discovering files ------------------------------------------------------------------------


def _walk(root: str, out: list[tuple[str, os.stat_result]]) -> None:
    """Append every ``*.json`` under ``root`` (sorted, hidden entries skipped) with its stat."""
    try:
        it = os.scandir(root)
    except NotADirectoryError:
        out.append((root, os.stat(root)))
        return
    with it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        name = e.name
        if name[0] == ".":
            continue
        if e.is_dir():
            _walk(e.path, out)
        elif name.endswith(".json"):
            try:
                out.append((e.path, e.stat()))
            except FileNotFoundError:  # removed while we looked
                continue


def _is_frame(src: Any) -> bool:
    return hasattr(src, "columns") and hasattr(src, "__getitem__") and not isinstance(src, (str, bytes))


def find_files(src: Source) -> list[tuple[str, os.stat_result]]:
    """(path, stat) of every recording named by ``src``, in a stable order, without duplicates.

    ``src`` is a file or directory (searched recursively for ``*.json``), an iterable of them, or a
    frame with a ``path`` column, such as one returned by :func:`load_recordings`.
    """
    found: list[tuple[str, os.stat_result]] = []
    if _is_frame(src):
        if "path" not in src.columns:
            raise ValueError("a frame given as source needs a 'path' column (use load_recordings)")
        paths: Iterable[Any] = dict.fromkeys(p for p in src["path"].tolist() if isinstance(p, str))
        for p in paths:
            try:
                found.append((p, os.stat(p)))
            except FileNotFoundError:
                found.append((p, _MISSING))
        return found
    items: Iterable[Any] = [src] if isinstance(src, (str, os.PathLike)) else src
    for item in items:
        p = os.fspath(item)
        st = os.stat(p)  # FileNotFoundError for a path that does not exist is the user's to see
        if os.path.isdir(p):
            _walk(p, found)
        else:
            found.append((p, st))
    if len(found) > 1:
        seen: set[str] = set()
        unique = []
        for f in found:
            if f[0] not in seen:
                seen.add(f[0])
                unique.append(f)
        found = unique
    return found


_MISSING = os.stat_result((0,) * 16)  # stands for a file that vanished


# --- reading ----------------------------------------------------------------------------------


def _read(path: str, size: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        data = os.read(fd, size + 1)
        if len(data) > size:  # grew since the stat: read the rest
            parts = [data]
            while chunk := os.read(fd, 1 << 20):
                parts.append(chunk)
            data = b"".join(parts)
        return data
    finally:
        os.close(fd)


def _key_of(path: str) -> str:
    name = os.path.basename(path)
    return name[:-5] if name.endswith(".json") else os.path.splitext(name)[0]


def parse_file(path: str, size: int) -> tuple[Extracted | str, Any]:
    """(extracted rows or an error message, the parsed JSON or None)."""
    try:
        raw = _read(path, size)
    except OSError as e:
        return f"cannot read the file: {e.strerror or e}", None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        return f"invalid JSON: {e}", None
    del raw
    try:
        return extract(data, _key_of(path)), data
    except RecordingFormatError as e:
        return str(e), data
    except Exception as e:  # a shape no one foresaw must not stop a load
        return f"unreadable recording: {type(e).__name__}: {e}", data


# --- progress ---------------------------------------------------------------------------------


def _in_notebook() -> bool:
    ipython = sys.modules.get("IPython")
    if ipython is None or "ipykernel" not in sys.modules:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _auto_progress() -> bool:
    ci = os.environ.get("CI", "")
    if ci and ci.lower() not in ("0", "false", "no"):
        return False
    if _in_notebook():
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    """A tqdm bar that appears only once a load has run for :data:`PROGRESS_DELAY_S`."""

    def __init__(self, total: int, enabled: bool | None, desc: str) -> None:
        self.enabled = _auto_progress() if enabled is None else bool(enabled)
        self.total = total
        self.desc = desc
        self.done = 0
        self.bar: Any = None
        self.t0 = time.perf_counter()

    def advance(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        elif self.enabled and not self.done & 15 and time.perf_counter() - self.t0 > PROGRESS_DELAY_S:
            self.bar = self._make_bar()

    def _make_bar(self) -> Any:
        kwargs = {"total": self.total, "initial": self.done, "desc": self.desc, "unit": "file"}
        if _in_notebook():
            try:
                from tqdm.notebook import tqdm as notebook_tqdm

                return notebook_tqdm(**kwargs)
            except Exception:  # no ipywidgets: fall back to text on stderr
                pass
        from tqdm import tqdm

        return tqdm(file=sys.stderr, **kwargs)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# --- loading ----------------------------------------------------------------------------------


def load_entries(
    src: Source,
    *,
    strict: bool = False,
    progress: bool | None = None,
    extras: Sequence[Callable[[Any], Any]] = (),
) -> tuple[list[Entry], list[dict[Callable[[Any], Any], Any]]]:
    """Every file of ``src`` with its extracted rows, from the cache when still valid.

    ``extras`` are functions of a recording's parsed JSON (callable column extractors); their
    values per file come back in the second list (empty dicts when ``extras`` is empty).
    """
    files = find_files(src)
    cache = _CACHE
    entries: list[Entry] = []
    extra_values: list[dict[Callable[[Any], Any], Any]] = []
    bar = Progress(len(files), progress, "Loading recordings")
    now = time.time_ns()
    try:
        for path, st in files:
            key = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
            c = cache.get(path)
            if (
                c is None
                or c.stat != key
                or (st.st_mtime_ns > c.read_ns - RACY_WINDOW_NS or st.st_ctime_ns > c.read_ns - RACY_WINDOW_NS)
                or (extras and any(f not in c.extras for f in extras))
            ):
                if st is _MISSING:
                    c = _Cached(key, now, "cannot read the file: no such file", {})
                else:
                    read_ns = time.time_ns()
                    result, data = parse_file(path, st.st_size)
                    values: dict[Callable[[Any], Any], Any] = {}
                    if extras and data is not None and not isinstance(result, str):
                        for f in extras:
                            try:
                                values[f] = f(data)
                            except Exception as e:
                                if strict:
                                    raise RecordingLoadError(
                                        path, f"column {getattr(f, '__name__', f)!r}: {type(e).__name__}: {e}"
                                    ) from e
                                values[f] = e
                    del data
                    c = _Cached(key, read_ns, result, values)
                cache[path] = c
            if strict and isinstance(c.result, str):
                raise RecordingLoadError(path, c.result)
            entries.append(Entry(path, None if st is _MISSING else st.st_size, c.result))
            if extras:
                extra_values.append(c.extras)
            bar.advance()
    finally:
        bar.close()
    return entries, extra_values
