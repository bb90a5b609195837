"""Listing, reading and shape-checking recording files, safely: one odd entry never stops or
hangs the rest.

Every part of the package that lists or reads recordings (the store, the command line, the
analysis loader) goes through here.

- Only regular files are read, and symbolic links to them. A FIFO, socket or device named
  ``*.json`` is never opened for a blocking read: it is reported as a problem and skipped. A file
  is opened with ``O_NONBLOCK`` and checked with ``fstat`` before a byte is read, so even a file
  replaced by a FIFO between the listing and the read cannot hang.
- Symbolic-link loops, broken links and entries that cannot be examined (``EACCES``) are
  reported, never raised.
- A symbolic link to a directory is followed once per real directory: a link back to a
  directory being listed or to one above the root (a loop) is reported and not followed; a
  second link to a directory already listed elsewhere is skipped silently, since its files are
  listed there.
- Hidden entries (names starting with ``.``) are skipped: our temporary files among them.
- A parsed recording passes :func:`check_record` before anything walks it: nesting is bounded
  (:data:`MAX_DEPTH`), so no recursive reader (keys, decoding, ``verify``) meets Python's
  recursion limit, and the few fields whose wrong type would break a reader are checked. (The
  analysis loader skips the depth bound: it walks nothing recursively.)

Temporary files: :meth:`notebook_recorder.core._store.Store.write` writes ``.<key>.<pid>.<rand>.tmp``
beside the recording and renames it. A process killed mid-write leaves one behind;
:func:`stale_temp_files` finds those no live writer can still own.
"""

from __future__ import annotations

import errno
import functools
import operator
import os
import re
import stat as stat_module
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import orjson

from ._errors import RecordingFormatError, json_kind

#: Temporary files older than this (seconds) are stale whoever wrote them.
STALE_TEMP_SECONDS = 3600.0
#: Temporary files whose writer (the pid in their name) is gone are stale after this (seconds).
DEAD_WRITER_SECONDS = 60.0

# ``.<key[:16]>.<pid>.<8 random characters>.tmp`` (older versions wrote no pid): our names only,
# so that no other program's temporary file is ever taken for ours.
_TEMP_NAME = re.compile(r"\.[0-9a-f]{1,16}\.(?:(?P<pid>\d+)\.)?[a-z0-9_]{8}\.tmp")


class NotRegularFileError(OSError):
    """A recording path that is not a regular file (a FIFO, socket, device or directory)."""


class Problem(NamedTuple):
    """An entry that looks like a recording but cannot be read, and why."""

    path: str
    problem: str


class Listing(NamedTuple):
    """One directory: its ``*.json`` files, its subdirectories and its odd entries, by name."""

    files: list[str]
    dirs: list[str]
    problems: list[Problem]


class Walk(NamedTuple):
    """A directory tree: the recording files, the odd entries, and the directories listed."""

    files: list[str]
    problems: list[Problem]
    dirs: list[str]


class Listed(NamedTuple):
    """One directory of a walk (:func:`iter_listings`) and its listing."""

    path: str
    listing: Listing


def mode_text(mode: int) -> str:
    """``'a FIFO'``, ``'a socket'``... for a file mode that is not a regular file's."""
    for test, what in (
        (stat_module.S_ISFIFO, "a FIFO"),
        (stat_module.S_ISSOCK, "a socket"),
        (stat_module.S_ISCHR, "a character device"),
        (stat_module.S_ISBLK, "a block device"),
        (stat_module.S_ISDIR, "a directory"),
    ):
        if test(mode):
            return what
    return "not a regular file"


def error_text(exc: OSError) -> str:
    """An ``OSError`` met while examining or reading an entry, as a short problem text."""
    if exc.errno == errno.ELOOP:
        return "a symbolic link loop; skipped"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied; skipped"
    if isinstance(exc, NotRegularFileError):
        return str(exc.strerror)
    return f"cannot read ({exc.strerror or exc})"


def _odd_entry(entry: os.DirEntry[str]) -> str:
    """Why a ``*.json`` entry that is neither a regular file nor a directory was skipped."""
    try:
        return f"not a regular file ({mode_text(entry.stat().st_mode)}); skipped"
    except FileNotFoundError:
        return "a broken symbolic link (its target does not exist); skipped"
    except OSError as exc:
        return error_text(exc)


_by_name: Callable[[os.DirEntry[str]], str] = operator.attrgetter("name")


def list_dir(path: str, st: os.stat_result | None = None) -> Listing:
    """The ``*.json`` files (regular, or links to regular files), subdirectories and odd entries
    of one directory, each sorted by name; hidden entries are left out.

    A regular file costs no system call beyond the listing itself (the directory entry says what
    it is); only links and odd entries are ``stat``-ed. ``st`` is unused (the signature is the one
    :func:`walk` calls, for listers that cache by the directory's stat).
    """
    del st
    files: list[str] = []
    dirs: list[str] = []
    problems: list[Problem] = []
    with os.scandir(path) as it:
        entries = sorted(it, key=_by_name)
    for e in entries:
        name = e.name
        if name[0] == ".":
            continue
        recording = name.endswith(".json")
        try:
            if recording and e.is_file():
                files.append(e.path)
            elif e.is_dir():
                dirs.append(e.path)
            elif recording:
                problems.append(Problem(e.path, _odd_entry(e)))
        except OSError as exc:  # a link loop, or an entry we may not examine
            if recording:
                problems.append(Problem(e.path, error_text(exc)))
    return Listing(files, dirs, problems)


Lister = Callable[[str, os.stat_result], Listing]


def walk(root: str, st: os.stat_result | None = None, lister: Lister = list_dir) -> Walk:
    """Every recording file under ``root`` (a directory), in name order, subdirectories included.

    Nothing under ``root`` raises: odd entries, directory loops and directories that cannot be
    listed become :class:`Problem` s. ``lister`` lists one directory (the analysis loader passes
    one that caches listings by the directory's stat).
    """
    files: list[str] = []
    problems: list[Problem] = []
    dirs: list[str] = []
    for item in iter_walk(root, st, lister, dirs):
        if type(item) is str:
            files.append(item)
        else:
            problems.append(item)  # type: ignore[arg-type]
    return Walk(files, problems, dirs)


def iter_walk(
    root: str, st: os.stat_result | None = None, lister: Lister = list_dir, dirs: list[str] | None = None
) -> Iterator[str | Problem]:
    """:func:`walk` as it goes, one directory listed at a time: each recording file's path (a
    ``str``) and each :class:`Problem`, in :func:`walk`'s order (a directory's files and odd
    entries, then its subdirectories'); the directories listed are appended to ``dirs``."""
    for item in iter_listings(root, st, lister, dirs):
        if type(item) is Listed:
            yield from item.listing.files
            yield from item.listing.problems
        else:
            yield item  # type: ignore[misc]


def iter_listings(
    root: str, st: os.stat_result | None = None, lister: Lister = list_dir, dirs: list[str] | None = None
) -> Iterator[Listed | Problem]:
    """:func:`iter_walk` a directory at a time: each directory's :class:`Listed` (its files and
    odd entries, in the order :func:`iter_walk` gives them), and a :class:`Problem` for a
    directory that cannot be listed or followed; each directory is listed once."""
    if st is None:
        st = os.stat(root)
    seen: set[tuple[int, int]] = {(st.st_dev, st.st_ino)}
    ancestors: set[tuple[int, int]] = _above(root)

    def visit(path: str, st: os.stat_result) -> Iterator[Listed | Problem]:
        ident = (st.st_dev, st.st_ino)
        try:
            listing = lister(path, st)
        except OSError as exc:
            yield Problem(path, f"cannot list this directory: {error_text(exc)}")
            return
        if dirs is not None:
            dirs.append(path)
        yield Listed(path, listing)
        ancestors.add(ident)
        for sub in listing.dirs:
            try:
                sub_st = os.stat(sub)
            except FileNotFoundError:  # removed while we looked
                continue
            except OSError as exc:
                yield Problem(sub, error_text(exc))
                continue
            if not stat_module.S_ISDIR(sub_st.st_mode):
                continue  # replaced while we looked
            sub_ident = (sub_st.st_dev, sub_st.st_ino)
            if sub_ident in ancestors:
                yield Problem(sub, "a link back to a directory that contains it (a loop); not followed")
            elif sub_ident not in seen:
                seen.add(sub_ident)
                yield from visit(sub, sub_st)
        ancestors.discard(ident)

    yield from visit(root, st)


def _above(root: str) -> set[tuple[int, int]]:
    """The directories that contain ``root`` (its real path's parents, up to ``/``): a link to one
    of them is a loop too, and followed it would list everything beside ``root`` (a link to ``/``
    in a downloaded folder, the whole disk)."""
    found: set[tuple[int, int]] = set()
    path = os.path.realpath(root)
    while True:
        parent = os.path.dirname(path)
        if parent == path:
            return found
        path = parent
        try:
            st = os.stat(path)
        except OSError:
            continue
        found.add((st.st_dev, st.st_ino))


def open_regular(path: str) -> tuple[int, os.stat_result]:
    """A read-only descriptor of ``path`` and its ``fstat``, only if it is a regular file.

    The open never blocks (``O_NONBLOCK``: a FIFO opens at once and is then refused); anything
    but a regular file raises :class:`NotRegularFileError`. The caller closes the descriptor.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # opening a socket (or a FIFO on some systems)
            try:
                what = mode_text(os.stat(path).st_mode)
            except OSError:
                what = "not a regular file"
            raise NotRegularFileError(errno.ENXIO, f"not a regular file ({what}); skipped", path) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat_module.S_ISREG(st.st_mode):
            raise NotRegularFileError(errno.EINVAL, f"not a regular file ({mode_text(st.st_mode)}); skipped", path)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_file(path: str) -> tuple[bytes, os.stat_result]:
    """The bytes of the regular file ``path``, and its stat as of the read (``fstat``).

    Raises ``OSError`` (:class:`NotRegularFileError` for a FIFO, socket or device) and never
    blocks.
    """
    fd, st = open_regular(path)
    try:
        size = st.st_size
        data = os.read(fd, size + 1)
        if len(data) > size:  # grew since the fstat: read the rest
            parts = [data]
            while chunk := os.read(fd, 1 << 20):
                parts.append(chunk)
            data = b"".join(parts)
        return data, st
    finally:
        os.close(fd)


# --- the shape of a parsed recording ----------------------------------------------------------

#: The deepest JSON nesting a recording may have; deeper files are a ``RecordingFormatError``.
#: Real recordings are far shallower (llama-stack's corpus reaches 12 levels); the bound keeps
#: every recursive reader (keys, decoding, ``verify``) far from Python's recursion limit.
MAX_DEPTH = 200
_DUMPS_DEPTH = 254  # orjson.dumps refuses deeper values: wrapped to this, the check runs in C

_TYPE = "__type__"
_ABSENT: Any = object()
_get_type = operator.itemgetter(_TYPE)
_STR = {str}
# A ``__type__`` name: dotted Python identifiers (``<locals>`` as written for local classes).
_TYPE_NAME = re.compile(r"[^\W\d]\w*(?:\.(?:[^\W\d]\w*|<locals>))+")


def check_depth(value: Any, path: object = "<recording>") -> None:
    """Raise ``RecordingFormatError`` when ``value`` nests deeper than :data:`MAX_DEPTH`."""
    wrapped = value
    for _ in range(_DUMPS_DEPTH - MAX_DEPTH):
        wrapped = [wrapped]
    try:
        orjson.dumps(wrapped)
    except orjson.JSONEncodeError as exc:
        if "recursion" in str(exc).lower():
            raise RecordingFormatError(path, f"nested deeper than {MAX_DEPTH} levels") from None


@functools.lru_cache(maxsize=1024)
def valid_type_name(name: str) -> bool:
    """Whether ``name`` is shaped like ``<module>.<qualname>`` (not whether it can be imported)."""
    return _TYPE_NAME.fullmatch(name) is not None


def _check_type(value: Any, part: str, index: int | None, path: object) -> None:
    if type(value) is dict and _TYPE in value:
        name = value[_TYPE]
        if not (type(name) is str and valid_type_name(name)):
            where = f"response.{part}" if index is None else f"response.{part}[{index}]"
            raise RecordingFormatError(path, f"{where} has a malformed __type__ {name!r:.80}")


def _sdk_model_prefixes() -> tuple[str, ...]:
    from ._types import SDKS

    return tuple(f"{prefix}." for sdk in SDKS for prefix in sdk.models)


_SDK_MODELS = _sdk_model_prefixes()
#: Fields of the SDK's response objects that are lists whenever they are there (``choices`` of a
#: chat completion or a completion): a recording whose data holds something else there is broken,
#: not merely lenient (a provider's ``object: ""`` is lenient).
_SDK_LIST_FIELDS = ("choices",)


def check_sdk_data(value: dict[str, Any], where: str, path: object = "<recording>") -> None:
    """Raise ``RecordingFormatError`` when ``value`` names an SDK model (by name: nothing is
    imported) and its ``__data__`` is no API object: not an object, a private field (``_...``,
    which no API sends and which the SDK's lenient ``construct`` would take as its own
    arguments), or a list field (``choices``) holding something else."""
    name = value.get(_TYPE)
    if type(name) is not str or not name.startswith(_SDK_MODELS) or "__data__" not in value:
        return
    data = value["__data__"]
    shown = name.rpartition(".")[2]
    if type(data) is not dict:
        raise RecordingFormatError(path, f"{where}.__data__ is {json_kind(data)}; a {shown} is an object")
    for field in data:
        if field[:1] == "_":
            raise RecordingFormatError(
                path, f"{where}.__data__ has a private field {field!r:.60}; recorded API data has none"
            )
    for field in _SDK_LIST_FIELDS:
        if field in data and type(data[field]) is not list:
            raise RecordingFormatError(
                path, f"{where}.__data__.{field} is {json_kind(data[field])}; a {shown}'s {field} is a list"
            )


def check_record(record: dict[str, Any], path: object = "<recording>", *, depth: bool = True) -> None:
    """The checks every reader makes on a parsed recording (an object with ``request`` and
    ``response`` objects), beyond its being JSON. Raises ``RecordingFormatError`` naming ``path``:

    - nesting deeper than :data:`MAX_DEPTH`, unless ``depth=False``: the analysis loader walks
      nothing recursively, so any depth orjson accepts (1,024) is harmless there, and it skips
      the cost (a C-speed ``orjson.dumps``, about a fifth of the parse);
    - an ``id_normalization_mapping`` that is not an object of strings to strings;
    - a malformed ``__type__`` name (not ``<module>.<qualname>``) where replay starts decoding:
      the response body, each item of a list body, a tool's ``return_value``;
    - an SDK object's data that is no API object where replay starts decoding
      (:func:`check_sdk_data`);
    - an ``exception_data`` that is not an object;
    - a ``content-encoding`` among the response headers (bodies are stored decoded: replay never
      decompresses anything a file holds);
    - an API call (not a tool, not an HTTP-level recording with its ``content_type``) that did not
      fail, whose body is a number, string or boolean.
    """
    if depth:
        check_depth(record, path)
    mapping = record.get("id_normalization_mapping")
    # (JSON object keys are always strings; the values need checking, at C speed)
    if mapping is not None and not (type(mapping) is dict and set(map(type, mapping.values())) <= _STR):
        raise RecordingFormatError(path, "'id_normalization_mapping' must be an object of strings to strings")
    request, response = record["request"], record["response"]
    for part in ("body", "return_value"):
        value = response.get(part)
        if type(value) is list:  # a stream: the few distinct names first, items only if one is bad
            try:
                names = set(map(_get_type, value))  # C-speed, for the usual list of typed chunks
            except (KeyError, TypeError, IndexError):
                try:
                    names = {item.get(_TYPE, _ABSENT) for item in value if type(item) is dict}
                except TypeError:  # an unhashable __type__: malformed, found below
                    names = {None}
            if not all(name is _ABSENT or (type(name) is str and valid_type_name(name)) for name in names):
                for i, item in enumerate(value):
                    _check_type(item, part, i, path)
        else:
            _check_type(value, part, None, path)
        if type(value) is dict:
            check_sdk_data(value, f"response.{part}", path)
    headers = response.get("headers")
    if type(headers) is dict:
        for name, value in headers.items():
            if name.lower() == "content-encoding" and str(value).strip().lower() not in ("", "identity"):
                raise RecordingFormatError(
                    path,
                    f"response.headers has content-encoding {value!r:.40}; a recording's body is stored decoded, "
                    "so replay never applies one (a compressed body there could be a decompression bomb)",
                )
    exception_data = response.get("exception_data")
    if exception_data is not None and type(exception_data) is not dict:
        raise RecordingFormatError(
            path, f"response.exception_data is {json_kind(exception_data)}; it must be an object (type, message...)"
        )
    body = response.get("body")
    api_call = "body" in request and isinstance(request.get("method"), str) and "tool_name" not in request
    http_level = "content_type" in response  # FORMAT.md's HTTP-level recordings: a text body is text
    if api_call and not http_level and not response.get("is_exception") and isinstance(body, str | int | float | bool):
        raise RecordingFormatError(
            path, f"response.body is {json_kind(body)}; an API call's result is an object or a list"
        )


# --- temporary files --------------------------------------------------------------------------


def temp_name_prefix(stem: str) -> str:
    """The start of a temporary file's name for a recording named ``<stem>.json``: hidden, with
    the writer's pid, so that :func:`stale_temp_files` can tell a live write from a dead one."""
    return f".{stem[:16]}.{os.getpid()}."


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # exists (another user's), or cannot tell: assume alive
    return True


def stale_temp_files(directory: str, now: float | None = None) -> list[str]:
    """Temporary files in ``directory`` (not below) that a killed write left behind, by name.

    A temporary file is stale when it is older than :data:`STALE_TEMP_SECONDS`, or when the
    process named in it is gone and it is older than :data:`DEAD_WRITER_SECONDS`. A temporary
    file that a live process may still be writing is never listed.
    """
    now = time.time() if now is None else now
    stale: list[str] = []
    try:
        with os.scandir(directory) as it:
            entries = [e for e in it if e.name.endswith(".tmp") and _TEMP_NAME.fullmatch(e.name)]
    except OSError:
        return stale
    for e in sorted(entries, key=_by_name):
        try:
            st = e.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat_module.S_ISREG(st.st_mode):
            continue
        age = now - st.st_mtime
        match = _TEMP_NAME.fullmatch(e.name)
        pid = match.group("pid") if match else None
        if age > STALE_TEMP_SECONDS or (pid is not None and age > DEAD_WRITER_SECONDS and not _alive(int(pid))):
            stale.append(e.path)
    return stale


def remove_stale_temp_files(directory: str) -> list[str]:
    """Delete :func:`stale_temp_files` of ``directory``; the paths removed."""
    removed = []
    for path in stale_temp_files(directory):
        try:
            os.unlink(path)
        except OSError:
            continue
        removed.append(path)
    return removed
