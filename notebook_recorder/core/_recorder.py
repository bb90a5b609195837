"""The Recorder: mode + store + scope + match rules. The one place that decides replay, record or live.

:mod:`notebook_recorder.core._engine` runs a call's flow (describe, decide, replay or call live,
save) and asks :meth:`Recorder.decide` what to do; :meth:`Recorder.save` writes the recording and
:meth:`Recorder.finish` logs the outcome in the call log (``_calllog``). Magics, the command
line and tests all go through here. Which recorder is active is ``_session``'s business; why a
recording is missing is ``_notfound``'s.

Occurrences (DESIGN.md, "Modes"): each Recorder is one recording context (a session started by
``start``, one entry of a ``recording()`` block) and counts the requests it sees, by directory and
key, in its :class:`Occurrences`. The k-th identical request is recorded as, and replayed from,
occurrence k; past the last recorded one, replay serves the last. ``record`` writes occurrences
1, 2, ... afresh; occurrences beyond this run's count, left by an earlier and longer run, stay on
disk (unused, so ``prune`` lists them): deleting them could lose answers that a partial re-run
simply did not reach. The ``%%apirec`` cells of a notebook count with the session.
"""

from __future__ import annotations

import datetime
import enum
import os
import threading
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._calllog import display_path, log, log_usage
from ._errors import NotRecordedWarning, RecordingNotFoundError
from ._keys import Request, ToolRequest, call_kind, name_occurrence
from ._match import NormalizeArg, Rules
from ._modes import Mode, env_dir, env_dir_out, env_mode, env_pace, parse_pace
from ._notfound import missing_message
from ._secrets import environment_secrets, mask
from ._store import UNCHECKED, Found, Snapshot, Store, Unchecked
from ._version import __version__

DEFAULT_DIR = "recordings"
DEFAULT_HTTP_MAX_BODY = 10 * 1024 * 1024  # bytes


class Action(enum.Enum):
    """What an interceptor must do with one call."""

    LIVE = "live"
    RECORD = "record"
    REPLAY = "replay"


class Occurrences:
    """How many times each request was made in one recording context: thread-safe counts by
    recordings directory and key. Recorders that share one count together."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], int] = {}
        self._calls = 0
        self._lock = threading.Lock()
        # When the context began (wall clock, as file times are): a recording file modified
        # since was written by another run going on beside this one, never left by an earlier
        # run, so ``record`` keeps its own answer beside it rather than over it (Store.write).
        self.began_ns = time.time_ns()

    def next(self, directory: Path, key: str) -> int:
        """Count one more request of ``key`` in ``directory``: 1 for the first, then 2, 3, ..."""
        with self._lock:
            count = self._counts[str(directory), key] = self._counts.get((str(directory), key), 0) + 1
        return count

    def sequence(self) -> int:
        """Count one more call of this context, whatever its key: its place in the run (1, 2, ...),
        written as ``recorder.sequence`` so that ``nr.diff`` can pair calls whose request changed."""
        with self._lock:
            self._calls += 1
            return self._calls


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
    sequence: int = 0  # the call's place among every call of this recording context (1, 2, ...)
    # The credential values the request carried (``_secrets.request_secrets``): the engine sets
    # them when it records, and :meth:`Recorder.save` masks them in what it writes.
    secrets: tuple[str, ...] = ()
    # The SDK that made the call (``{"sdk": "openai", "sdk_version": ...}``), written in ``recorder``.
    sdk: dict[str, str] = field(default_factory=dict)
    # What the file of this occurrence was when a recorded call was decided (``Store.snapshot``):
    # a write finding another answer there since keeps its own under the next free occurrence.
    before: Snapshot | Unchecked = UNCHECKED

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

    ``dir_out`` re-records into another directory and leaves ``dir`` untouched: every recording
    this recorder writes goes to ``dir_out``. ``record`` reads nothing; ``replay`` and
    ``record-if-missing`` look in ``dir_out`` first, then in ``dir``, and ``record-if-missing``
    copies each answer it replays from ``dir`` into ``dir_out`` too, so that ``dir_out`` ends up
    holding the whole run (``notebook-recorder diff DIR DIR_OUT`` then compares every call).
    ``replay`` never writes. ``APIREC_DIR_OUT`` overrides it.

    ``pace`` replays streams at their recorded pace: each chunk waits the recorded gap since the
    one before it (``response.chunk_offsets_ms``), divided by ``pace`` (``2.0`` is twice as fast).
    ``None`` (the default) replays at once. ``APIREC_PACE`` overrides it.

    Requests that no typed SDK hook handles are recorded at the HTTP library (httpx, httpx2,
    requests, aiohttp), except to ``ignore_hosts`` (names as in the URL; the project's
    ``ignore_hosts`` too), and except a response body over ``http_max_body`` bytes (default 10 MiB,
    or the project's), which is reported rather than stored.
    """

    record_command: str | None = None
    """The command that records this recorder's missing calls, shown first when one is missing
    (the pytest plugin sets ``pytest --apirec-mode=record-if-missing NODEID``)."""

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
        dir_out: str | os.PathLike[str] | None = None,
        pace: float | None = None,
        ignore_hosts: Iterable[str] = (),
        http_max_body: int | None = None,
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
        self.allow_hosts = parse_hosts(allow_hosts)
        self.ignore_hosts = parse_hosts([*self.project.ignore_hosts, *parse_hosts(ignore_hosts)])
        """Hosts whose HTTP requests are neither recorded nor replayed (the project's too)."""
        if http_max_body is None:
            http_max_body = self.project.http_max_body
        if http_max_body is not None and (type(http_max_body) is not int or http_max_body < 0):
            raise ValueError(f"http_max_body must be a number of bytes (an int >= 0), not {http_max_body!r}")
        self.http_max_body = DEFAULT_HTTP_MAX_BODY if http_max_body is None else http_max_body
        """The largest HTTP response body recorded at the HTTP level; a larger one is reported."""
        self.explicit_rules = Rules.build(ignore, normalize)
        """The rules given to this recorder, without the project's."""
        self.rules = self.project.rules.merged(self.explicit_rules)
        """The match rules in force: the project's and the explicit ones (``_match.Rules``)."""
        self.requested_dir_out = Path(dir_out) if dir_out is not None else None
        self.requested_pace = parse_pace(pace)
        self._store: Store | None = None
        self._store_dir: Path | None = None
        self._out: Store | None = None
        self._out_dir: Path | None = None
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
    def dir_out(self) -> Path | None:
        """Where recordings are written instead of :attr:`dir`: ``APIREC_DIR_OUT`` if set, else
        the ``dir_out`` asked for, else ``None`` (they go to :attr:`dir`)."""
        return env_dir_out() or self.requested_dir_out

    @property
    def pace(self) -> float | None:
        """The replay pace in force: ``APIREC_PACE`` if set, else the one asked for (``None``: instant)."""
        return env_pace() or self.requested_pace

    @property
    def store_out(self) -> Store:
        """The store new recordings are written to: :attr:`dir_out`'s, else :attr:`store`."""
        directory = self.dir_out
        if directory is None:
            return self.store
        if self._out is None or self._out_dir != directory:
            self._out, self._out_dir = Store(Path(self._cwd, directory.expanduser()), self.rules), directory
        return self._out

    @property
    def store(self) -> Store:
        directory = self.dir
        if self._store is None or self._store_dir != directory:
            self._store, self._store_dir = Store(Path(self._cwd, directory.expanduser()), self.rules), directory
        return self._store

    def check(self) -> None:
        """Fail early on settings that cannot work. A replay from a directory that does not exist
        is not one of them: it is an empty directory, where each call is a missing recording,
        explained (a notebook whose recordings were never made or committed)."""

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
        decision.sequence = self.occurrences.sequence()
        if mode is Mode.LIVE:
            return decision
        if mode.reads:
            found = self._lookup(key, occurrence)
            if found is not None:
                decision.action, decision.found = Action.REPLAY, found
                if mode is Mode.RECORD_IF_MISSING and self.dir_out is not None:
                    self._copy_out(decision, found)
                return decision
            if mode is Mode.REPLAY:
                raise self.missing(decision)
        decision.action = Action.RECORD
        decision.before = self.store_out.snapshot(key, occurrence)
        return decision

    def _lookup(self, key: str, occurrence: int) -> Found | None:
        """The recording to replay: with a ``dir_out``, that occurrence there, else what ``dir``
        has, else the latest ``dir_out`` has."""
        if self.dir_out is None:
            return self.store.find_latest(key, occurrence)
        out = self.store_out
        return out.find(key, occurrence) or self.store.find_latest(key, occurrence) or out.find_latest(key, occurrence)

    def _copy_out(self, decision: Decision, found: Found) -> None:
        """``record-if-missing`` with a ``dir_out``: the answer replayed from ``dir`` is this
        run's answer too, so ``dir_out`` gets it as this call's occurrence."""
        out = self.store_out
        if found.path.parent == out.root or out.root in found.path.parents:
            return
        record = {k: v for k, v in found.record.items() if k != "occurrence"}
        if decision.occurrence > 1:
            record = {"test_id": record.get("test_id"), "occurrence": decision.occurrence, **record}
        try:
            out.write(decision.key, record)
        except (OSError, ValueError, TypeError) as exc:  # the replay goes on; dir_out lacks this call
            warnings.warn(f"could not copy {found.path} into {self.dir_out}: {exc}", stacklevel=2)

    def missing(self, decision: Decision, reason: str | None = None) -> RecordingNotFoundError:
        """Log a call that has no recording and cannot be made now, and build its error.

        ``reason`` says why it cannot be recorded, when that is not replay mode itself.
        """
        self.finish(decision, "missing", error="RecordingNotFoundError")
        message = missing_message(self, decision.request, decision.key)
        if reason:
            message = f"{message}\n{reason}"
        return RecordingNotFoundError(message, key=decision.key, request=decision.request, directory=self.dir)

    def save(self, decision: Decision, response: dict[str, Any], *, streamed: bool = False) -> Path | None:
        """Write the recording for a recorded call, and log it.

        The response is written as the caller saw it, ids and timestamps included (FORMAT.md,
        "What is stored is what the caller saw"), with every credential value masked first,
        wherever it is echoed: error messages and bodies, ``response_text``, results, stream
        chunks, and the request itself (a key pasted into a prompt). The credential values are
        ``decision.secrets`` (the client's settings and the request as it was sent) and the values
        of credential environment variables (``_secrets.environment_secrets``). The file keeps
        its name, the key of the request as it was sent; when masking changed the request, the
        file says ``"masked": true`` and is found by its name alone.

        Nothing paid for is lost (DESIGN.md, "Trust"): when the file cannot be written (disk
        full, file too large, no permission) or the answer cannot be written as JSON (a NaN, an
        integer past 64 bits, a lone surrogate), the caller still gets the answer; a
        :class:`~notebook_recorder.NotRecordedWarning` names the call, the file not written and
        why, the call is logged as ``unsaved``, and ``None`` is returned. When another process
        recorded the same occurrence meanwhile, or since this recording context began (two runs
        recording into one directory at once), this answer is kept under the next free one
        (``Store.write``).
        """
        secrets = decision.secrets + environment_secrets()
        response = dict(mask(response, secrets))
        if "duration_ms" not in response:  # streams time themselves; a plain call ends here
            response["duration_ms"] = round((time.perf_counter() - decision.started) * 1000, 3)
        if response.get("is_exception"):
            response["body"] = None
        sent = decision.request.to_json(self.scope)
        request = mask(sent, secrets)
        record: dict[str, Any] = {
            "test_id": self.scope,
            "request": request,
            "response": response,
            "id_normalization_mapping": {},
            "recorder": {
                "name": "notebook-recorder",
                "version": __version__,
                "recorded_at": _now_iso(),
                **({"sequence": decision.sequence} if decision.sequence else {}),
                **({} if isinstance(decision.request, ToolRequest) else decision.sdk),
            },
        }
        if request is not sent:  # a credential in the request itself: the name is the key of what was sent
            record["masked"] = True
        if self.rules:  # which rules the key was computed under (FORMAT.md, "Extensions of our own")
            record["match"] = self.rules.to_json()
        if decision.occurrence > 1:  # FORMAT.md, "Repeated identical requests"
            record = {"test_id": self.scope, "occurrence": decision.occurrence, **record}
        try:
            path = self.store_out.write(
                decision.key, record, expect=decision.before, others_since_ns=self.occurrences.began_ns
            )
        except (OSError, ValueError, TypeError) as exc:
            self._unsaved(decision, exc, streamed=streamed)
            return None
        saved = name_occurrence(path.stem)[1]
        if saved != decision.occurrence:  # another writer took this occurrence meanwhile
            decision.occurrence = saved
        error = (response.get("exception_data") or {}).get("type") if response.get("is_exception") else None
        self.finish(decision, "recorded", path=path, streamed=streamed, error=error)
        return path

    def _unsaved(self, decision: Decision, exc: BaseException, *, streamed: bool) -> None:
        """A recorded call whose file could not be written: warn, naming it, and log it ``unsaved``."""
        target = display_path(self.store_out.path_for(decision.key, decision.occurrence))
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        warnings.warn(
            f"{decision.request.summary()}: the answer was returned but NOT saved to {target}: {reason}. "
            "Replaying this call will find no recording; record it again once this is fixed.",
            NotRecordedWarning,
            stacklevel=2,
        )
        self.finish(decision, "unsaved", streamed=streamed, error=f"{type(exc).__name__}: {reason}")

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
        log.append(
            kind="tool" if isinstance(request, ToolRequest) else call_kind(request.label),
            endpoint=request.label,
            model=request.model,
            mode=self.mode.value,
            outcome=outcome,
            path=display_path(path) if path else None,
            key=decision.key,
            test_id=self.scope,
            ms=(time.perf_counter() - decision.started) * 1000,
            streamed=streamed,
            error=error,
            occurrence=occurrence,
            client=getattr(request, "client", "") or None,
        )
        if path is not None:
            log_usage(outcome, path)
            if outcome == "replayed" and decision.found is not None and decision.found.path.name.startswith("models-"):
                # llama-stack's model lists: one replay serves the union of every list recorded
                # for the request (``Store.replay_response``), so each of them is in use (prune).
                for other in self.store.find_all(decision.key, decision.found.occurrence)[1:]:
                    log_usage("merged", other.path)

    def log_event(
        self,
        kind: str,
        endpoint: str,
        outcome: str,
        *,
        error: str | None = None,
        origin: str | None = None,
        client: str | None = None,
    ) -> None:
        """Log something that is not a recordable request: a network connection that bypassed the
        hooks (``kind="network"``, with the ``client`` that opened it) or a realtime connection
        (``kind="realtime"``)."""
        log.append(
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
            client=client,
        )


def parse_hosts(hosts: Iterable[str] | str) -> frozenset[str]:
    """``allow_hosts`` as lower-case names; a string may list several, separated by commas."""
    if isinstance(hosts, str):
        hosts = [hosts]
    names = {part.strip().lower().strip("[]") for host in hosts for part in str(host).split(",")}
    return frozenset(name for name in names if name)


def _now_iso() -> str:
    """This moment in UTC, ISO 8601 to the second: the ``recorder.recorded_at`` of a new file."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def exception_response(exception_data: dict[str, Any], message: str) -> dict[str, Any]:
    """FORMAT.md's ``response`` for a call that raised: no body, the error described instead."""
    return {
        "body": None,
        "is_streaming": False,
        "is_exception": True,
        "exception_data": exception_data,
        "exception_message": message,
    }
