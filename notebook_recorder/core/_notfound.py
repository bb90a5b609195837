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
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from ._calllog import display_path
from ._errors import RecordingFormatError
from ._keys import Request, ToolRequest, comparable, diff, request_from_record
from ._match import volatile_only
from ._modes import ENV_MODE, Mode, env_mode, env_mode_source
from ._store import read_recording, walk_recordings

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


@dataclass(frozen=True)
class _Summary:
    """What the search needs to know of a recording without reading it again."""

    group: tuple[str, ...]  # ("tool", provider/name) or (method, endpoint)
    model: str
    test_id: str | None
    mtime_ns: int
    fields: frozenset[tuple[str, int]]  # the body's (or kwargs') top-level fields, each with a digest


def _fields(request: Request) -> frozenset[tuple[str, int]]:
    """Top-level fields and a hash of each value: how many differ ranks a recording before it is
    diffed (a recording that differs in one field is diffed before one that differs in five)."""
    body = request.kwargs if isinstance(request, ToolRequest) else request.body
    if not isinstance(body, dict):
        return frozenset()
    fields = set()
    for name, value in body.items():
        try:
            digest = hash(orjson.dumps(value, option=orjson.OPT_SORT_KEYS))
        except TypeError:
            digest = hash(repr(value))
        fields.add((str(name), digest))
    return frozenset(fields)


# Per directory: path -> its summary (None: not a request we can compare). Kept for the process,
# so that each further miss only lists the folder and reads the few files it compares.
_summaries: dict[Path, dict[str, _Summary | None]] = {}
_summaries_lock = threading.Lock()


def forget_summaries() -> None:
    """Drop the per-directory summaries (tests and benchmarks use this to start cold)."""
    with _summaries_lock:
        _summaries.clear()
        _listings.clear()
        _built_from.clear()


def _group(request: Request) -> tuple[str, ...]:
    return ("tool", request.label) if isinstance(request, ToolRequest) else (request.method, request.endpoint)


def _model(request: Request) -> str:
    """The request's model: its ``model`` field, else its body's (older files have no field)."""
    if request.model or isinstance(request, ToolRequest):
        return request.model
    model = request.body.get("model") if isinstance(request.body, dict) else None
    return model if isinstance(model, str) else ""


def _summarize(path: str) -> _Summary | None:
    try:
        mtime = os.stat(path).st_mtime_ns
        record = read_recording(Path(path))
    except (OSError, RecordingFormatError):
        return None
    stored = request_from_record(record)
    if stored is None:
        return None
    test_id = record.get("test_id")
    scope = test_id if isinstance(test_id, str) else None
    return _Summary(_group(stored), _model(stored), scope, mtime, _fields(stored))


# Per directory: the mtimes of the directories listed, and the files found. A directory's mtime
# changes when a file is added, removed or renamed in it: while none changed, the folder is not
# listed again (30,000 entries take longer to list than the rest of an explanation).
_listings: dict[Path, tuple[dict[str, int], list[str]]] = {}
_built_from: dict[Path, list[str]] = {}  # the listing each directory's summaries were last brought up to


def _recording_files(root: Path) -> list[str]:
    cached = _listings.get(root)
    if cached is not None:
        mtimes, files = cached
        try:
            if all(os.stat(folder).st_mtime_ns == mtime for folder, mtime in mtimes.items()):
                return files
        except OSError:
            pass
    walk = walk_recordings(root)
    mtimes = {}
    for folder in walk.dirs:
        try:
            mtimes[folder] = os.stat(folder).st_mtime_ns
        except OSError:
            continue
    with _summaries_lock:
        _listings[root] = (mtimes, walk.files)
    return walk.files


def _summarized(root: Path) -> dict[str, _Summary | None]:
    """Every recording under ``root``, summarized; files read once per process (new ones on a
    later miss; a file found changed when it is compared is summarized again)."""
    files = _recording_files(root)
    with _summaries_lock:
        known = _summaries.setdefault(root, {})
        if _built_from.get(root) is files:
            return dict(known)  # the same listing as last time: every file in it is summarized
        present = set(files)
        for gone in [path for path in known if path not in present]:
            del known[gone]
        new = [path for path in files if path not in known]
    found = {path: _summarize(path) for path in new}
    with _summaries_lock:
        known.update(found)
        _built_from[root] = files
        return dict(known)


def _candidates(request: Request, scope: str | None, summaries: dict[str, _Summary | None]) -> list[str]:
    """At most :data:`MAX_COMPARED` files to diff: same endpoint and model first, then the same
    endpoint, then the rest; within each, the fewest top-level fields changed first, then the
    same scope, then the newest."""
    group, model, fields = _group(request), _model(request), _fields(request)
    ranked: list[tuple[int, int, bool, int, str]] = []
    for path, summary in summaries.items():
        if summary is None:
            continue
        closeness = 0 if summary.group == group and summary.model == model else 1 if summary.group == group else 2
        changed = len(summary.fields ^ fields)
        ranked.append((closeness, changed, summary.test_id != scope, -summary.mtime_ns, path))
    return [path for *_, path in heapq.nsmallest(MAX_COMPARED, ranked)]


def _refresh(root: Path, path: str, stored: Request | None, test_id: Any) -> None:
    """A compared file's summary as read now (it may have been edited since it was summarized)."""
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        return
    summary = None
    if stored is not None:
        scope = test_id if isinstance(test_id, str) else None
        summary = _Summary(_group(stored), _model(stored), scope, mtime, _fields(stored))
    with _summaries_lock:
        if path in _summaries.get(root, {}):
            _summaries[root][path] = summary


def nearest(recorder: Recorder, request: Request) -> tuple[Path, list[Any]] | None:
    """The recorded request nearest to ``request`` in the recorder's directory, and the changes.

    Bounded: at most :data:`MAX_COMPARED` recordings are diffed, chosen by endpoint and model
    from an index of the folder that each file enters once."""
    wanted = comparable(request, recorder.scope, recorder.rules)
    summaries = _summarized(recorder.store.root)
    best: tuple[tuple[int, float], Path, list[Any]] | None = None
    for path in _candidates(request, recorder.scope, summaries):
        try:
            record = read_recording(Path(path))
        except RecordingFormatError:
            continue
        stored = request_from_record(record)
        test_id = record.get("test_id")
        _refresh(recorder.store.root, path, stored, test_id)
        if stored is None or type(stored) is not type(request):
            continue
        changes = diff(comparable(stored, test_id if isinstance(test_id, str) else None, recorder.rules), wanted)
        # Fewest changes first; among those, the most similar values ('3.12' is near '3.13').
        if best is not None and len(changes) > best[0][0]:
            continue  # its distance cannot make it nearer (and costs more than the rest)
        rank = (len(changes), sum(change.distance for change in changes))
        if best is None or rank < best[0]:
            best = (rank, Path(path), changes)
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
