"""The Recorder: mode + store + scope + call log. The one place that decides replay, record or live.

Interceptors describe a call as a request (``_keys``), ask :meth:`Recorder.decide` what to do,
carry it out, and report back with :meth:`Recorder.save` or :meth:`Recorder.finish`. Magics, the
command line and tests all go through here.

Occurrences (DESIGN.md, "Modes"): each Recorder is one recording context (a session started by
``start``, one entry of a ``recording()`` block) and counts the requests it sees, by directory and
key, in its :class:`Occurrences`. The k-th identical request is recorded as, and replayed from,
occurrence k; past the last recorded one, replay serves the last. ``record`` writes occurrences
1, 2, ... afresh; occurrences beyond this run's count, left by an earlier and longer run, stay on
disk (unused, so ``prune`` lists them): deleting them could lose answers that a partial re-run
simply did not reach. The ``%%apirec`` cells of a notebook count with the session.
"""

from __future__ import annotations

import contextvars
import datetime
import enum
import functools
import inspect
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from . import __version__
from ._errors import RecordingNotFoundError
from ._keys import Request, ToolRequest, call_kind, comparable, diff, request_from_record
from ._match import NormalizeArg, Rules, volatile_only
from ._modes import ENV_DIR, ENV_MODE, Mode, env_dir, env_mode
from ._secrets import mask
from ._store import Found, Store

DEFAULT_DIR = "recordings"

# When set, every replayed or recorded file is appended to this file as ``<outcome>\t<absolute
# path>`` lines. ``notebook-recorder run`` and ``prune`` use it to learn what a kernel replayed.
ENV_USAGE_LOG = "NOTEBOOK_RECORDER_USAGE_LOG"

F = TypeVar("F", bound=Callable[..., Any])


class Action(enum.Enum):
    """What an interceptor must do with one call."""

    LIVE = "live"
    RECORD = "record"
    REPLAY = "replay"


@dataclass(frozen=True)
class Call:
    """One entry of this process's call log (see :func:`calls`)."""

    index: int
    cell: int | None
    kind: str
    endpoint: str
    model: str
    mode: str
    outcome: str
    path: str | None
    key: str
    test_id: str | None
    ms: float
    streamed: bool
    error: str | None
    occurrence: int = 1
    """Which occurrence of its request the recording used is (the k-th identical request of a
    recording context is occurrence k; past the last recorded one, replay uses the last). For a
    call with no recording (live, missing), the call's own count."""
    origin: str | None = None
    """For ``kind="network"``: the ``file:line`` of the code that opened the connection."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Occurrences:
    """How many times each request was made in one recording context: thread-safe counts by
    recordings directory and key. Recorders that share one count together."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def next(self, directory: Path, key: str) -> int:
        """Count one more request of ``key`` in ``directory``: 1 for the first, then 2, 3, ..."""
        with self._lock:
            count = self._counts[str(directory), key] = self._counts.get((str(directory), key), 0) + 1
        return count


@dataclass
class Decision:
    """What :meth:`Recorder.decide` chose for one request. Interceptors hand it back when done."""

    action: Action
    request: Request
    key: str
    recorder: Recorder
    found: Found | None = None
    started: float = 0.0
    occurrence: int = 1  # the k-th identical request of this recorder; what a recording is saved as
    # The credential values the request carried (``_secrets.request_secrets``): the interceptor
    # sets them when it records, and :meth:`Recorder.save` masks them in what it writes.
    secrets: tuple[str, ...] = ()

    @property
    def record(self) -> dict[str, Any]:
        assert self.found is not None, "only replay decisions carry a record"
        return self.found.record


class Recorder:
    """Records and replays calls in one mode, to one directory, under one scope.

    ``APIREC_MODE`` and ``APIREC_DIR`` override ``mode`` and ``dir`` whenever they are set, so
    CI can force replay on code that says otherwise.

    A network connection that does not go through a hooked call (a framework's own HTTP client,
    say) is logged as a ``kind="network"`` call; with ``block_network=True`` it raises
    ``NetworkBlockedError`` before any byte is sent, unless its host is in ``allow_hosts``
    (names or addresses; ``"localhost"`` means every loopback address). See ``_network``.

    Matching is strict unless rules say otherwise (``_match``): ``ignore`` lists request paths
    left out of the key (``"body.metadata.run_id"``, ``"body.messages[*].name"``, ``"kwargs.x"``
    for tools), ``normalize`` maps regular expressions to replacements applied to every string of
    the request (or is a callable taking and returning an API request's body). The
    ``[tool.notebook-recorder]`` table of the nearest ``pyproject.toml`` (``_config``) adds its
    rules, and its ``dir`` is the default directory when ``dir`` is not given.
    """

    def __init__(
        self,
        mode: Mode | str = Mode.RECORD_IF_MISSING,
        dir: str | os.PathLike[str] | None = None,
        scope: str | None = None,
        *,
        block_network: bool = False,
        allow_hosts: Iterable[str] = (),
        ignore: Iterable[str] | str | None = None,
        normalize: NormalizeArg = None,
    ) -> None:
        from ._config import project_config

        # A relative directory means relative to where recording started: a notebook that
        # changes directory (``%cd``) keeps recording to, and replaying from, the same place.
        self._cwd = os.getcwd()
        self.project = project_config(self._cwd)
        """The ``[tool.notebook-recorder]`` table in force (``_config.ProjectConfig``)."""
        self.requested_mode = Mode.parse(mode)
        self.requested_dir = Path(dir) if dir is not None else (self.project.dir or Path(DEFAULT_DIR))
        self.scope = scope
        self.block_network = bool(block_network)
        self.allow_hosts = _hosts(allow_hosts)
        self.explicit_rules = Rules.build(ignore, normalize)
        """The rules given to this recorder, without the project's."""
        self.rules = self.project.rules.merged(self.explicit_rules)
        """The match rules in force: the project's and the explicit ones (``_match.Rules``)."""
        self._store: Store | None = None
        self._store_dir: Path | None = None
        self.occurrences = Occurrences()
        """How many times each request was made in this recording context (see the module doc)."""
        self.check()

    def __repr__(self) -> str:
        return f"Recorder(mode={self.mode.value!r}, dir={str(self.dir)!r}, scope={self.scope!r})"

    @property
    def mode(self) -> Mode:
        """The mode in force: ``APIREC_MODE`` if set, else the one asked for."""
        return env_mode() or self.requested_mode

    @property
    def dir(self) -> Path:
        """The directory in force: ``APIREC_DIR`` if set, else the one asked for."""
        return env_dir() or self.requested_dir

    @property
    def store(self) -> Store:
        directory = self.dir
        if self._store is None or self._store_dir != directory:
            self._store, self._store_dir = Store(Path(self._cwd, directory.expanduser()), self.rules), directory
        return self._store

    def check(self) -> None:
        """Fail early on settings that cannot work: replaying from a directory that does not exist."""
        if self.mode is Mode.REPLAY and not self.store.exists:
            raise FileNotFoundError(
                f"replay mode needs a recordings directory, and {str(self.dir)!r} does not exist "
                f"(current directory: {os.getcwd()})"
            )

    # -- the decision -------------------------------------------------------------------------

    def decide(self, request: Request) -> Decision:
        """Replay, record or go live for ``request``; raise ``RecordingNotFoundError`` in replay
        mode when nothing was recorded.

        The k-th identical request replays occurrence k, or the latest one recorded before it
        (``record-if-missing`` too: it records only a request that has no recording at all), and
        is recorded as occurrence k.
        """
        mode = self.mode
        key = request.key(self.scope, self.rules)
        occurrence = self.occurrences.next(self.store.root, key)
        decision = Decision(Action.LIVE, request, key, self, started=time.perf_counter(), occurrence=occurrence)
        if mode is Mode.LIVE:
            return decision
        if mode.reads:
            found = self.store.find_latest(key, occurrence)
            if found is not None:
                decision.action, decision.found = Action.REPLAY, found
                return decision
            if mode is Mode.REPLAY:
                raise self.missing(decision)
        decision.action = Action.RECORD
        return decision

    def missing(self, decision: Decision, reason: str | None = None) -> RecordingNotFoundError:
        """Log a call that has no recording and cannot be made now, and build its error.

        ``reason`` says why it cannot be recorded, when that is not replay mode itself.
        """
        self.finish(decision, "missing", error="RecordingNotFoundError")
        message = self._missing_message(decision.request, decision.key)
        if reason:
            message = f"{message}\n{reason}"
        return RecordingNotFoundError(message, key=decision.key, request=decision.request, directory=self.dir)

    def save(self, decision: Decision, response: dict[str, Any], *, streamed: bool = False) -> Path:
        """Write the recording for a recorded call, and log it.

        The response is written as the caller saw it, ids and timestamps included (FORMAT.md,
        "What is stored is what the caller saw"), with every credential value of
        ``decision.secrets`` masked first, wherever it is echoed: error messages and bodies,
        ``response_text``, results, stream chunks.
        """
        response = dict(mask(response, decision.secrets))
        if "duration_ms" not in response:  # streams time themselves; a plain call ends here
            response["duration_ms"] = round((time.perf_counter() - decision.started) * 1000, 3)
        if response.get("is_exception"):
            response["body"] = None
        record: dict[str, Any] = {
            "test_id": self.scope,
            "request": decision.request.to_json(self.scope),
            "response": response,
            "id_normalization_mapping": {},
            "recorder": {
                "name": "notebook-recorder",
                "version": __version__,
                "recorded_at": _now_iso(),
                **({} if isinstance(decision.request, ToolRequest) else _sdk_versions()),
            },
        }
        if self.rules:  # which rules the key was computed under (FORMAT.md, "Extensions of our own")
            record["match"] = self.rules.to_json()
        if decision.occurrence > 1:  # FORMAT.md, "Repeated identical requests"
            record = {"test_id": self.scope, "occurrence": decision.occurrence, **record}
        path = self.store.write(decision.key, record)
        error = (response.get("exception_data") or {}).get("type") if response.get("is_exception") else None
        self.finish(decision, "recorded", path=path, streamed=streamed, error=error)
        return path

    def finish(
        self,
        decision: Decision,
        outcome: str,
        *,
        path: Path | None = None,
        streamed: bool = False,
        error: str | None = None,
    ) -> None:
        """Log a call's outcome: replayed, recorded, live, missing or error."""
        if path is None and decision.found is not None:
            path = decision.found.path
        occurrence = decision.found.occurrence if decision.found is not None else decision.occurrence
        request = decision.request
        _log.append(
            kind="tool" if isinstance(request, ToolRequest) else call_kind(request.label),
            endpoint=request.label,
            model=request.model,
            mode=self.mode.value,
            outcome=outcome,
            path=_display_path(path) if path else None,
            key=decision.key,
            test_id=self.scope,
            ms=(time.perf_counter() - decision.started) * 1000,
            streamed=streamed,
            error=error,
            occurrence=occurrence,
        )
        if path is not None:
            _log_usage(outcome, path)

    def log_event(
        self, kind: str, endpoint: str, outcome: str, *, error: str | None = None, origin: str | None = None
    ) -> None:
        """Log something that is not a recordable request: a network connection that bypassed the
        hooks (``kind="network"``) or a realtime connection (``kind="realtime"``)."""
        _log.append(
            kind=kind,
            endpoint=endpoint,
            model="",
            mode=self.mode.value,
            outcome=outcome,
            path=None,
            key="",
            test_id=self.scope,
            ms=0.0,
            streamed=False,
            error=error,
            origin=origin,
        )

    # -- messages -----------------------------------------------------------------------------

    def _missing_message(self, request: Request, key: str) -> str:
        directory = _display_path(self.store.root)
        lines = [f"No recording of {request.describe()} in {directory}/ (key {key[:12]}…, scope {self.scope!r})."]
        if self.rules:
            lines.append(f"Requests are matched under these rules: {self.rules.describe()}.")
        nearest = self._nearest(request)
        if nearest is None:
            lines.append("There is no recorded request to compare it with in that directory.")
        else:
            path, changes = nearest
            lines.append(f"Nearest recorded request: {_display_path(path)}")
            lines += [f"    {change}" for change in changes[:8]]
            if len(changes) > 8:
                lines.append(f"    … and {len(changes) - 8} more differences")
            lines += _volatile_hint(changes)
        broken = self.store.errors()
        if broken:
            lines.append(f"{len(broken)} file(s) there could not be read:")
            lines += [f"    {_display_path(p)}: {problem}" for p, problem in list(broken.items())[:5]]
        lines.append("To record it, run the call once with an API key in record-if-missing mode:")
        lines.append("    %apirec record-if-missing                      (in a notebook)")
        lines.append(f'    nr.recording("record-if-missing", dir="{directory}")   (in code)')
        if env_mode() is Mode.REPLAY:
            lines.append(f"{ENV_MODE}=replay is set and overrides the mode chosen in code: unset it to record.")
        return "\n".join(lines)

    def _nearest(self, request: Request) -> tuple[Path, list[Any]] | None:
        wanted = comparable(request, self.scope, self.rules)
        best: tuple[tuple[int, float], Path, list[Any]] | None = None
        for path, record in self.store.records():
            stored = request_from_record(record)
            if stored is None or type(stored) is not type(request):
                continue
            test_id = record.get("test_id")
            changes = diff(comparable(stored, test_id if isinstance(test_id, str) else None, self.rules), wanted)
            # Fewest changes first; among those, the most similar values ('3.12' is near '3.13').
            rank = (len(changes), sum(change.distance for change in changes))
            if best is None or rank < best[0]:
                best = (rank, path, changes)
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


def _hosts(hosts: Iterable[str] | str) -> frozenset[str]:
    """``allow_hosts`` as lower-case names; a string may list several, separated by commas."""
    if isinstance(hosts, str):
        hosts = [hosts]
    names = {part.strip().lower().strip("[]") for host in hosts for part in str(host).split(",")}
    return frozenset(name for name in names if name)


def _display_path(path: Path | str) -> str:
    """:func:`_shown_path`, remembered per working directory: the call log shows a path for
    every call, and resolving paths costs file-system calls."""
    return _shown_path(str(path), os.getcwd())


@functools.lru_cache(maxsize=1024)
def _shown_path(path: str, cwd: str) -> str:
    del cwd  # part of the cache key only
    return _display_path_now(path)


def _display_path_now(path: Path | str) -> str:
    """A path relative to the working directory when the two share a directory other than the
    root: ``recordings/x.json``, or ``../recordings/x.json`` from a notebook in ``notebooks/``
    (so notebook outputs do not show the machine's absolute paths). Else the path as it is.

    Only the directories are resolved, never the file itself: a symbolic link is shown by its own
    name, not its target's (a broken link or a link loop must be named as the user sees it)."""
    path = Path(path)
    try:
        resolved, cwd = Path(os.path.realpath(path.parent)) / path.name, Path.cwd().resolve()
        try:
            return str(resolved.relative_to(cwd))
        except ValueError:
            common = Path(os.path.commonpath([resolved, cwd]))
            return os.path.relpath(resolved, cwd) if common.parent != common else str(path)
    except (ValueError, OSError, RuntimeError):  # another drive on Windows, a vanished cwd, a link loop
        return str(path)


_usage_lock = threading.Lock()


def _log_usage(outcome: str, path: Path) -> None:
    """Append ``<outcome>\t<absolute path>`` to ``$NOTEBOOK_RECORDER_USAGE_LOG``, if it is set.

    Errors propagate on purpose: ``prune`` deletes what the log does not mention, so a log that
    silently lost lines could delete recordings that are in use.
    """
    target = os.environ.get(ENV_USAGE_LOG)
    if not target:
        return
    line = f"{outcome}\t{Path(path).resolve()}\n"
    with _usage_lock, open(target, "a", encoding="utf-8") as fh:
        fh.write(line)


def _now_iso() -> str:
    """This moment in UTC, ISO 8601 to the second: the ``recorder.recorded_at`` of a new file."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.cache
def _sdk_versions() -> dict[str, str]:
    try:
        import openai

        return {"sdk": "openai", "sdk_version": openai.__version__}
    except ImportError:  # pragma: no cover - openai is a dependency
        return {}


def exception_response(exception_data: dict[str, Any], message: str) -> dict[str, Any]:
    """FORMAT.md's ``response`` for a call that raised: no body, the error described instead."""
    return {
        "body": None,
        "is_streaming": False,
        "is_exception": True,
        "exception_data": exception_data,
        "exception_message": message,
    }


# ---------------------------------------------------------------------------------------------
# The call log
# ---------------------------------------------------------------------------------------------


class _CallLog:
    def __init__(self) -> None:
        self._calls: list[Call] = []
        self._lock = threading.Lock()
        self.cell: int | None = None

    def append(self, **fields: Any) -> None:
        with self._lock:
            self._calls.append(Call(index=len(self._calls) + 1, cell=self.cell, **fields))

    def snapshot(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()


_log = _CallLog()


def calls() -> list[Call]:
    """This process's intercepted calls, oldest first: endpoint or tool, model, outcome, file, timing.

    ``kind`` is the call's kind (``"inference"``, ``"embedding"``, ``"model_list"``..., as in the
    README's table of kinds) or ``"tool"``; also ``"realtime"`` for an SDK websocket connection
    (not recorded), and ``"network"`` for a connection that bypassed the hooks inside a recording
    context (``endpoint`` is ``host:port``, ``origin`` the code that opened it, ``outcome``
    ``"unrecorded"`` or ``"blocked"``). ``pandas.DataFrame(nr.calls())`` turns them into a frame.
    """
    return _log.snapshot()


def clear_calls() -> None:
    """Empty the call log."""
    _log.clear()


def set_cell(execution_count: int | None) -> None:
    """Tag the calls that follow with a notebook cell's execution count (the magics do this)."""
    _log.cell = execution_count


# ---------------------------------------------------------------------------------------------
# Which recorder is active
# ---------------------------------------------------------------------------------------------

_state_lock = threading.RLock()
_session: Recorder | None = None
# Open `recording()` blocks. Each thread and asyncio task sees its own (a context variable), so
# concurrent tasks can record under different scopes; code running where no block was opened (a
# worker thread, say) falls back to the most recent block opened anywhere, then to the session.
_blocks: contextvars.ContextVar[tuple[Recorder, ...]] = contextvars.ContextVar("notebook_recorder_blocks", default=())
_stack: list[Recorder] = []  # every open block, in the order they were opened


def active() -> Recorder | None:
    """The recorder that handles calls now: the innermost open ``recording()`` block of this
    thread or task, else the most recent block opened anywhere, else the session's.

    Every wrapped call asks this first, so it takes no lock: reading a context variable, the
    stack's last item or the session global is atomic, and only writers (which hold
    ``_state_lock``) change them.
    """
    for recorder in reversed(_blocks.get()):
        if recorder in _open:
            return recorder
    if _stack:
        try:
            return _stack[-1]
        except IndexError:  # emptied by another thread since the test above
            pass
    return _session


_open: set[Recorder] = set()  # the recorders of blocks not yet closed


def _install_patches(recorder: Recorder) -> None:
    from . import _network
    from .interceptors import openai as openai_hook

    openai_hook.install(recorder.mode)
    _network.install()


def _remove_patches() -> None:
    from . import _network
    from .interceptors import openai as openai_hook

    openai_hook.uninstall()
    _network.uninstall()


def start(
    mode: Mode | str = Mode.RECORD_IF_MISSING,
    dir: str | os.PathLike[str] | None = None,
    scope: str | None = None,
    *,
    block_network: bool = False,
    allow_hosts: Iterable[str] = (),
    ignore: Iterable[str] | str | None = None,
    normalize: NormalizeArg = None,
) -> Recorder:
    """Record or replay every call in this process from now on, until :func:`stop`.

    This is what ``%apirec MODE`` uses. Clients created earlier are covered too.
    ``block_network=True`` stops network connections that bypass the hooks, except to
    ``allow_hosts`` (see :class:`Recorder`). ``ignore`` and ``normalize`` leave volatile parts
    of requests out of their keys (see :class:`Recorder`). ``dir`` defaults to the project's
    (``[tool.notebook-recorder] dir``), else ``recordings``.
    """
    global _session
    recorder = Recorder(
        mode, dir, scope, block_network=block_network, allow_hosts=allow_hosts, ignore=ignore, normalize=normalize
    )
    with _state_lock:
        _session = recorder
        _install_patches(recorder)
    return recorder


def stop() -> None:
    """Go back to live calls and remove the SDK hook (when no ``recording()`` block is open)."""
    global _session
    with _state_lock:
        _session = None
        if not _stack:
            _remove_patches()


def session() -> Recorder | None:
    """The recorder set by :func:`start`, or ``None``."""
    with _state_lock:
        return _session


@contextmanager
def _pushed(recorder: Recorder) -> Iterator[Recorder]:
    token = _blocks.set((*_blocks.get(), recorder))
    with _state_lock:
        _stack.append(recorder)
        _open.add(recorder)
        _install_patches(recorder)
    try:
        yield recorder
    finally:
        blocks = _blocks.get()
        # Blocks opened inside this one and never closed are closed with it: state always unwinds.
        closing = blocks[blocks.index(recorder) :] if recorder in blocks else (recorder,)
        try:
            _blocks.reset(token)
        except ValueError:  # closed in another context than it was opened in (an IPython hook)
            _blocks.set(tuple(r for r in blocks if r not in closing))
        with _state_lock:
            for done in closing:
                _open.discard(done)
                if done in _stack:
                    _stack.remove(done)
            if not _stack and _session is None:
                _remove_patches()


class recording:
    r"""Record or replay the calls made inside a ``with`` block or a decorated function.

    >>> with nr.recording("replay", dir="recordings"):
    ...     client.chat.completions.create(model="gpt-4o", messages=[...])

    As a decorator it works on plain and ``async`` functions. Nested blocks restore the previous
    recorder on exit, also when an exception is raised. ``scope`` is written as ``test_id`` and
    enters the key. ``block_network=True`` makes a network connection that bypasses the hooks
    raise ``NetworkBlockedError`` before any byte is sent, except to ``allow_hosts`` (names or
    addresses, ``"localhost"`` for every loopback address); without it such connections are only
    logged (``kind="network"`` in :func:`calls`). ``ignore`` and ``normalize`` leave volatile
    parts of requests out of their keys: ``ignore=["body.metadata.run_id"]``,
    ``normalize={r"\d{4}-\d{2}-\d{2}": "<date>"}`` or a callable (see :class:`Recorder`).
    """

    def __init__(
        self,
        mode: Mode | str = Mode.RECORD_IF_MISSING,
        dir: str | os.PathLike[str] | None = None,
        scope: str | None = None,
        *,
        block_network: bool = False,
        allow_hosts: Iterable[str] = (),
        ignore: Iterable[str] | str | None = None,
        normalize: NormalizeArg = None,
    ) -> None:
        self._args = (Mode.parse(mode), dir, scope)
        self._network: dict[str, Any] = {
            "block_network": block_network,
            "allow_hosts": tuple(_hosts(allow_hosts)),
            "ignore": tuple([ignore] if isinstance(ignore, str) else ignore or ()),
            "normalize": normalize,
        }
        self._contexts: list[Any] = []
        self._new()  # validate now, not at first use

    def _new(self) -> Recorder:
        return Recorder(*self._args, **self._network)

    def __enter__(self) -> Recorder:
        context = _pushed(self._new())
        self._contexts.append(context)
        return context.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._contexts.pop().__exit__(*exc)

    def __call__(self, fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with _pushed(self._new()):
                    return await fn(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _pushed(self._new()):
                return fn(*args, **kwargs)

        return cast(F, wrapper)


def describe_state() -> dict[str, Any]:
    """The mode, directory and scope in force, and whether the environment overrides them."""
    recorder = active()
    return {
        "active": recorder is not None,
        "mode": (recorder.mode.value if recorder else (env_mode() or Mode.LIVE).value),
        "dir": str(recorder.dir) if recorder else None,
        "scope": recorder.scope if recorder else None,
        "env_mode": os.environ.get(ENV_MODE) or None,
        "env_dir": os.environ.get(ENV_DIR) or None,
    }
