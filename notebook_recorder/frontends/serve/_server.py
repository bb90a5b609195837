"""``notebook-recorder serve`` and ``nr.serve()``: a loopback HTTP endpoint that records and replays.

Recording in process covers Python code in this process. A JavaScript notebook, ``!curl``, a
compiled agent, another Python process without the package or a service in a container talk to
the API over HTTP instead: pointed at this server (``OPENAI_BASE_URL=http://127.0.0.1:PORT/v1``,
``ANTHROPIC_BASE_URL=http://127.0.0.1:PORT``), they are recorded and replayed with the same
files, keys, occurrences, secrets rules and missing-recording explanation as the SDK hooks.

- ``replay``: answers from the recordings (JSON, SSE event by event, recorded errors with their
  status and body); a missing recording is a 404 in the API's own error envelope whose message
  is :class:`~notebook_recorder.RecordingNotFoundError`'s (the request, the nearest recorded one,
  the diff). No key is needed, and nothing is sent anywhere.
- ``record`` / ``record-if-missing``: forwards to the upstream (OpenAI's or Anthropic's, by the
  request; or ``upstream``) with the client's own key, streams the answer back as it arrives, and
  writes the file an in-process call of the same request would write (``._wire``). A stream
  cut short (the client left, the upstream failed) is never saved.
- ``live``: forwards and writes nothing.

Occurrences are counted per client session when the client sends ``X-Apirec-Session: NAME``,
per server run otherwise. The server listens on 127.0.0.1 unless told otherwise (with a
warning), never writes a request's headers, refuses bodies over ``max_body`` bytes (413), gives
a stalled upload ``body_timeout`` seconds (408), and a client that disconnects affects only its
own request.

It runs on starlette and uvicorn (the ``serve`` extra), imported only here, and forwards over
httptools (``._upstream``). Front-end layer: the
calls go through the core's :class:`~notebook_recorder.Recorder` (decide, save, log), so
``%apirec status`` and ``nr.calls()`` list them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import ipaddress
import os
import socket
import sys
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from ...core import _pace
from ...core._engine import Tape
from ...core._errors import RecordingNotFoundError
from ...core._modes import REPLAY_KEY_PLACEHOLDER, Mode
from ...core._recorder import Action, Recorder
from ...hooks._network import guard_placeholder
from . import _wire as wire
from ._upstream import Pending, Upstream, UpstreamError
from ._wire import SESSION_HEADER, Answer, Api, answer, api_for, envelope

__all__ = ["DEFAULT_MAX_BODY", "SESSION_HEADER", "ServeApp", "serve"]

DEFAULT_MAX_BODY = 32 * 1024 * 1024
"""The largest request body accepted, in bytes (larger ones get a 413)."""
DEFAULT_BODY_TIMEOUT = 60.0
_RECORD_HINT = (
    "Through notebook-recorder serve: run it with --mode record-if-missing (in a notebook: %apirec serve "
    "record-if-missing) and give the client a real API key."
)
MAX_SESSIONS = 10_000  # client sessions whose occurrence counts are kept at once
LOOPBACK = "127.0.0.1"

# Request headers never forwarded: hop-by-hop, recomputed, or ours.
_DROP_REQUEST = frozenset(
    {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "te", "upgrade",
     "accept-encoding", "proxy-authorization", "proxy-connection", "expect", SESSION_HEADER}
)  # fmt: skip
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
"""The methods the APIs take; another (HEAD, OPTIONS, CONNECT...) gets a 405 in the envelope."""
# Response headers never passed back: hop-by-hop, or recomputed (bodies are passed decoded).
_DROP_RESPONSE = frozenset(
    {"content-length", "connection", "keep-alive", "transfer-encoding", "content-encoding", "date", "server"}
)


def _missing_extra() -> ImportError:
    return ImportError(
        "notebook-recorder serve needs starlette, uvicorn and httptools: pip install 'notebook-recorder[serve]'"
    )


class ServeApp:
    """The ASGI application: one recorder per client session, the upstream client, the handler."""

    def __init__(
        self,
        mode: Mode | str,
        dir: str | os.PathLike[str] | None = None,
        *,
        scope: str | None = None,
        upstream: str | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        pace: float | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        try:
            import httptools  # noqa: F401
            import starlette  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError:
            raise _missing_extra() from None
        self.recorder = Recorder(mode, dir, scope, pace=pace)
        """The recorder of requests without a session header (one count for the server's run)."""
        self._sessions: dict[str, Recorder] = {}
        self._args = (mode, dir, scope)
        self._pace = self.recorder.requested_pace
        self.upstream = upstream.rstrip("/") if upstream else None
        self.max_body = int(max_body)
        self.body_timeout = float(body_timeout)
        self.log = log
        self._client: Upstream | None = None
        self._secrets: dict[int, tuple[Any, str, Any]] = {}  # calls being recorded: what carries keys
        self._saver: concurrent.futures.ThreadPoolExecutor | None = None
        self.asgi = self._build()

    # -- saving streams -------------------------------------------------------------------------

    def save_later(self, save: Callable[[], None]) -> concurrent.futures.Future[None]:
        """Run ``save`` on a worker thread: a recorded stream is parsed and written there, so that
        other clients' requests (and their first chunks) do not wait for it."""
        if self._saver is None:
            self._saver = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="notebook-recorder-serve-save")
        return self._saver.submit(save)

    def wait_for_saves(self) -> None:
        """Block until every stream handed to :meth:`save_later` is written. The server calls it
        once it has stopped: an answer that was paid for is saved even when the server stops (or
        cancels the request's task) right after the client has read it."""
        saver, self._saver = self._saver, None
        if saver is not None:
            saver.shutdown(wait=True)

    # -- recorders ------------------------------------------------------------------------------

    def recorder_for(self, session: str | None) -> Recorder:
        """The recorder of a client session (its own occurrence counts), or the server's."""
        if not session:
            return self.recorder
        recorder = self._sessions.get(session)
        if recorder is None:
            if len(self._sessions) >= MAX_SESSIONS:  # the oldest session's counts are forgotten
                del self._sessions[next(iter(self._sessions))]
            recorder = self._sessions[session] = Recorder(*self._args, pace=self._pace)
        return recorder

    # -- the application ------------------------------------------------------------------------

    def _build(self) -> Any:
        """The ASGI application: every path and method to :meth:`_endpoint`, whose answers are
        starlette responses (or :class:`_Relay`). No router or middleware stack in between: each
        request reaches the handler, and each chunk the client, with the least work."""

        async def asgi(scope: Any, receive: Any, send: Any) -> None:
            kind = scope["type"]
            if kind == "http":
                try:
                    response = await self._endpoint(scope, receive)
                except Exception as exc:  # a bug of ours: this request fails, named; the server goes on
                    self._note(f"{scope.get('method')} {scope.get('path')} -> 500: {exc!r}")
                    api = api_for(scope.get("path", ""), {})
                    response = _response(envelope(api, 500, f"notebook-recorder serve failed: {exc!r}", "api_error"))
                await response(scope, receive, send)
            elif kind == "lifespan":
                await self._lifespan(receive, send)

        return asgi

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._client is not None:
                    await self._client.aclose()
                    self._client = None
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _http(self) -> Upstream:
        if self._client is None:
            self._client = Upstream()
        return self._client

    async def _endpoint(self, scope: Any, receive: Any) -> Any:
        started = time.perf_counter()
        pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]  # names in lower case
        headers = dict(pairs)
        method = scope["method"].upper()
        path = scope["path"]
        api = api_for(path, headers)
        if method not in _METHODS:
            allowed = ", ".join(_METHODS)
            return _response(envelope(api, 405, f"{method} {path}: not an API method (the server takes {allowed})"))
        raw = await self._read_body(receive, headers, api)
        if isinstance(raw, Answer):
            self._note(f"{method} {path} -> {raw.status} (refused)")
            return _response(raw)
        query = scope["query_string"].decode("latin-1")
        endpoint = wire.endpoint_of(path)
        raw_path = scope.get("raw_path")  # as the client sent it: still percent-encoded
        forwarded = wire.endpoint_of(raw_path.decode("latin-1")) if raw_path else endpoint
        url = wire.upstream_url(self.upstream or api.upstream, forwarded, query)
        sent = [(k, v) for k, v in pairs if k not in _DROP_REQUEST]
        call = _Call(api, method, path, query, endpoint, url, raw, headers, sent, started)
        recorder = self.recorder_for(headers.get(SESSION_HEADER))
        placeholder = any(REPLAY_KEY_PLACEHOLDER in value for _, value in sent)
        if not placeholder and recorder.mode in (Mode.RECORD, Mode.LIVE):
            # These modes always forward, whatever the recordings hold: the request goes out first,
            # and it is described, keyed and counted (a few hundred µs) once the answer's first
            # piece is on its way to the client (a stream), or once the answer is read.
            pending = await self._start(call)
            return await self._forward(call, lambda: self._book(call, recorder), pending)
        described = wire.describe(method, path, query, raw, headers.get("content-type", ""), url)
        try:
            decision = recorder.decide(described)
        except RecordingNotFoundError as exc:
            self._note(f"missing {described.summary()} -> 404")
            return _response(envelope(api, 404, f"{exc}\n{_RECORD_HINT}"))
        tape = Tape(decision)
        if decision.action is Action.REPLAY:
            return self._replay(api, tape, described.summary())
        if placeholder:
            reason = (
                "The client sent notebook-recorder's replay placeholder instead of a key, so the call "
                "cannot be made or recorded now: give the client a real key and run again."
            )
            if decision.action is Action.LIVE:
                recorder.finish(decision, "live", error="NetworkBlockedError")
                return _response(envelope(api, 401, f"{described.summary()}: not sent. {reason}"))
            return _response(envelope(api, 404, str(recorder.missing(decision, reason))))
        self._keep_secrets(call, tape)
        try:  # record-if-missing, nothing recorded: forwarded now that it is known to be missing
            return await self._forward(call, lambda: tape, await self._start(call))
        except BaseException:
            self._secrets.pop(id(tape), None)
            raise

    def _book(self, call: _Call, recorder: Recorder) -> Tape:
        """The bookkeeping of a call forwarded before it was decided (``record``, ``live``):
        described, keyed and counted as if that had come first (its clock starts at its arrival)."""
        described = wire.describe(
            call.method, call.path, call.query, call.raw, call.headers.get("content-type", ""), call.url
        )
        decision = recorder.decide(described)
        decision.started = call.started
        tape = Tape(decision)
        self._keep_secrets(call, tape)
        return tape

    def _keep_secrets(self, call: _Call, tape: Tape) -> None:
        decision = tape.decision
        if decision.action is Action.RECORD:
            decision.sdk = {"sdk": "notebook-recorder serve", "client": call.headers.get("user-agent", "")}
            # The credentials it carries: found when it is saved, not before it is forwarded.
            self._secrets[id(tape)] = (call.sent, call.query, getattr(decision.request, "body", None))

    async def _start(self, call: _Call) -> Pending | UpstreamError:
        """The request written to the upstream, or why it could not be."""
        from ...hooks._network import sdk_network

        try:
            with sdk_network():  # the server's own connection: not reported by the network guard
                return await self._http().start(call.method, call.url, call.sent, call.raw)
        except UpstreamError as exc:
            return exc

    async def _read_body(self, receive: Any, headers: dict[str, str], api: Api) -> bytes | Answer:
        limit = self.max_body
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            return envelope(api, 413, f"request body of {length} bytes is larger than the limit ({limit} bytes)")
        pieces: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] != "http.request":  # the client left
                        return envelope(api, 400, "the client disconnected before the end of its request")
                    piece = message.get("body", b"")
                    size += len(piece)
                    if size > limit:
                        return envelope(api, 413, f"request body larger than the limit ({limit} bytes)")
                    pieces.append(piece)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            return envelope(api, 408, f"request body not received within {self.body_timeout:g} s")
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _replay(self, api: Api, tape: Tape, summary: str) -> Any:
        decision = tape.decision
        assert decision.found is not None
        response = decision.recorder.store.replay_response(decision.found, decision.key)
        try:
            reply = answer(api, response)
        except Exception as exc:  # a malformed recording: named, and only this request fails
            tape.end("error", error=f"{type(exc).__name__}: {exc}")
            return _response(envelope(api, 500, f"{decision.found.path}: cannot replay: {exc}", "api_error"))
        error = None
        if response.get("is_exception"):
            error = str((response.get("exception_data") or {}).get("type") or "error")
        due = None
        pace = decision.recorder.pace
        if reply.events is not None and pace is not None:
            due = _pace.schedule(response, pace, decision.found.path)
        tape.end("replayed", streamed=reply.events is not None, error=error)
        paced = "" if due is None else f" at pace {pace:g}"
        self._note(f"replayed {summary} <- {decision.found.path.name}{paced}")
        return _response(reply, due)

    async def _forward(self, call: _Call, book: Callable[[], Tape], pending: Pending | UpstreamError) -> Any:
        """The upstream's answer passed back (a stream piece by piece: :class:`_Relay`) and, unless
        live, recorded. ``book`` gives the call's :class:`Tape` (deciding it if not done yet)."""
        api = call.api
        try:
            if isinstance(pending, UpstreamError):
                raise pending
            from ...hooks._network import sdk_network

            with sdk_network():  # a kept connection found closed is replaced: the server's own too
                upstream = await pending.response()
        except BaseException as exc:
            if isinstance(pending, Pending):
                pending.cancel()
            if not isinstance(exc, UpstreamError):
                raise
            tape = _booked(self, book)
            if tape is not None:
                tape.end("live" if tape.action is Action.LIVE else "error", error=type(exc).__name__)
                self._secrets.pop(id(tape), None)
            summary = _summary(call, tape)
            self._note(f"upstream unreachable for {summary}: {exc}")
            message = f"{summary}: the upstream {call.url} could not be reached: {exc}"
            return _response(envelope(api, 502, message, "api_connection_error"))
        kept = {k.lower(): v for k, v in upstream.headers if k.lower() not in _DROP_RESPONSE}
        kind = upstream.header("content-type").lower()
        if upstream.status_code < 400 and "text/event-stream" in kind:
            return _Relay(self, call, book, upstream, kept)
        try:
            content = await upstream.aread()
        except UpstreamError as exc:
            tape = _booked(self, book)
            if tape is not None:
                tape.end("error", error=f"response cut short: {exc!r}; not saved")
                self._secrets.pop(id(tape), None)
            message = f"{_summary(call, tape)}: the upstream's answer was cut short: {exc!r}"
            return _response(envelope(api, 502, message))
        finally:
            await upstream.aclose()
        status = upstream.status_code
        tape = _booked(self, book)
        if tape is None:
            pass
        elif tape.action is Action.LIVE:
            tape.end("live", error=None if status < 400 else str(status))
        else:
            headers_in = {k.lower(): v for k, v in upstream.headers}
            try:
                if status >= 400:
                    response = wire.error_response(api, call.method, call.url, status, content, headers_in)
                else:
                    response = wire.json_response(api, call.method, call.endpoint, content, headers_in)
            except Exception as exc:  # the answer still goes back to the client: nothing paid for is lost
                self._secrets.pop(id(tape), None)
                tape.end("error", error=f"not saved: {type(exc).__name__}: {exc}")
            else:
                self._save(tape, response)
        self._note(f"{tape.action.value if tape else 'forwarded'} {_summary(call, tape)} -> {status}")
        return _response(Answer(status, kept, content))

    def _save(self, tape: Tape, response: dict[str, Any], *, streamed: bool = False) -> None:
        pending = self._secrets.pop(id(tape), None)
        if pending is not None:
            tape.decision.secrets = wire.secrets(*pending)
        try:
            tape.save(response, streamed=streamed)
        except OSError as exc:  # the answer still goes back: nothing paid for is lost
            tape.end("error", streamed=streamed, error=f"not saved: {exc!r}")

    def _note(self, text: str) -> None:
        if self.log is not None:
            self.log(text)


@dataclass
class _Call:
    """A request as it came: what forwarding it, and describing it later, need."""

    api: Api
    method: str
    path: str
    query: str
    endpoint: str
    url: str
    raw: bytes
    headers: dict[str, str]
    sent: list[tuple[str, str]]
    started: float

    @property
    def summary(self) -> str:
        return f"{self.method} {self.endpoint}"


def _summary(call: _Call, tape: Tape | None) -> str:
    return tape.decision.request.summary() if tape is not None else call.summary


def _booked(app: ServeApp, book: Callable[[], Tape]) -> Tape | None:
    """The call's tape; ``None`` (noted) if describing or deciding it failed, which must not cost
    the client the answer it is getting."""
    try:
        return book()
    except Exception as exc:
        app._note(f"not recorded: notebook-recorder could not describe the request: {exc!r}")
        return None


def _response(reply: Answer, due: list[float] | None = None) -> Any:
    """The starlette response for an answer; its SSE events ``due[i]`` seconds after the first
    when replayed at a pace (:mod:`notebook_recorder.core._pace`), else at once."""
    from starlette.responses import Response, StreamingResponse

    if reply.events is None:
        return Response(reply.content, status_code=reply.status, headers=reply.headers)
    events = reply.events

    async def each() -> AsyncIterator[bytes]:
        for event in events:
            yield event

    body = each() if due is None else _pace.apaced(each(), due)
    return StreamingResponse(body, status_code=reply.status, headers=reply.headers)


_END_GRACE = 2.0
"""Seconds the upstream is still read, after a client that had the last event left, for its end."""


class _Relay:
    """A live stream passed to the client piece by piece as the upstream sends it, and recorded
    when (and only when) it was read to its end and delivered: a client that disconnects, or an
    upstream that fails midway, leaves no file. The call is described and decided (``book``)
    once its first piece is on its way to the client, if that was not done before forwarding."""

    def __init__(
        self, app: ServeApp, call: _Call, book: Callable[[], Tape], upstream: Any, headers: dict[str, str]
    ) -> None:
        self.app, self.call, self.book = app, call, book
        self.tape: Tape | None = None
        self.upstream = upstream
        self.headers = headers
        self.pieces: list[tuple[float, bytes]] = []
        self.complete = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        relay = asyncio.current_task()
        assert relay is not None
        left = False

        async def watch() -> None:
            nonlocal left
            while (await receive())["type"] != "http.disconnect":
                pass
            left = True
            if self._has_last_event():
                # The client left once it had the stream's last event (an SDK closes the
                # response there): the upstream's end is on its way, and with it the whole
                # answer, which is saved. Only a stalled upstream is cut, after a grace.
                await asyncio.sleep(_END_GRACE)
            relay.cancel()  # the client left: stop reading the upstream

        watcher = asyncio.get_running_loop().create_task(watch())
        try:
            await self._relay(send)
        except asyncio.CancelledError:
            if not left:  # the server is stopping
                raise
            relay.uncancel()
        finally:
            watcher.cancel()
            if self.tape is None:
                self.tape = _booked(self.app, self.book)
            await self._end()

    def _has_last_event(self) -> bool:
        """Whether the pieces relayed so far end with the stream's last event (OpenAI's
        ``data: [DONE]``, Anthropic's ``message_stop``)."""
        sdk = self.call.api.sdk
        end = sdk.stream_end or sdk.last_event
        if end is None:  # the API's stream has no mark of its end
            return False
        tail = b"".join(piece for _, piece in self.pieces[-2:])
        return end in tail[-(len(end) + 256) :]

    async def _relay(self, send: Any) -> None:
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]
        await send({"type": "http.response.start", "status": self.upstream.status_code, "headers": headers})
        pieces = self.pieces
        try:
            async for piece in self.upstream.aiter_bytes():
                pieces.append((time.perf_counter(), piece))
                await send({"type": "http.response.body", "body": piece, "more_body": True})
                if self.tape is None:  # the first piece is out: now the bookkeeping
                    self.tape = _booked(self.app, self.book)
        except UpstreamError as exc:
            # The upstream broke off: returning without the body's end makes the server close
            # the connection, so the client sees a broken stream too (never a complete one).
            self.app._note(f"the upstream broke off {_summary(self.call, self.tape)}: {exc!r}")
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        self.complete = True

    async def _end(self) -> None:
        # The save is handed to the app's worker thread before anything here can be cancelled
        # (the server stopping): from then on it completes, and the server waits for it.
        saving = self._finish()
        try:
            await self.upstream.aclose()
        finally:
            if saving is not None:
                await asyncio.wrap_future(saving)

    def _finish(self) -> concurrent.futures.Future[None] | None:
        """End the call's tape: not saved (cut short, or live), or its save started."""
        tape = self.tape
        if tape is None:  # not described: passed on, not recorded
            return None
        summary = tape.decision.request.summary()
        if not self.complete:
            tape.end("error", streamed=True, error=f"stream cut short after {len(self.pieces)} reads; not saved")
            self.app._secrets.pop(id(tape), None)
            self.app._note(f"cut short {summary}: not saved")
            return None
        if tape.action is Action.LIVE:
            tape.end("live", streamed=True)
            self.app._note(f"live {summary} (stream)")
            return None
        # Parsing the stream with the SDK and writing the file take a few ms.
        return self.app.save_later(functools.partial(self._save, tape))

    def _save(self, tape: Tape) -> None:
        summary = tape.decision.request.summary()
        headers = {k.lower(): v for k, v in self.upstream.headers}
        call = self.call
        try:
            response = wire.stream_response(call.api, call.method, call.endpoint, self.pieces, tape.started, headers)
        except Exception as exc:  # an error event in the stream: the hook does not save it either
            tape.end("error", streamed=True, error=f"{type(exc).__name__}: {exc}; not saved")
            self.app._secrets.pop(id(tape), None)
            self.app._note(f"not saved {summary}: {exc!r}")
            return
        self.app._save(tape, response, streamed=True)
        self.app._note(f"recorded {summary} (stream of {len(response['body'])} chunks)")


# ---------------------------------------------------------------------------------------------
# Running it: in the foreground (the command line) or on a background thread (nr.serve)
# ---------------------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or ``localhost``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (``port`` 0: a free one); a warning for a host that is
    not loopback, which exposes the recordings, and the keys clients send, to the network."""
    if not is_loopback(host):
        warnings.warn(
            f"notebook-recorder serve listens on {host}, not only on this machine's loopback: anyone who "
            "can reach it can replay the recordings, and in record mode spend the keys clients send",
            stacklevel=3,
        )
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    return sock


def uvicorn_server(app: ServeApp) -> Any:
    """A uvicorn server for ``app``, quiet (no access log, no logging configuration of its own)."""
    try:
        import uvicorn
    except ImportError:
        raise _missing_extra() from None
    config = uvicorn.Config(
        app.asgi,
        loop="asyncio",
        http="httptools",  # the serve extra's C parser (llhttp), which ._upstream uses too
        ws="none",  # no websockets: an upgrade request is an HTTP request like the others
        proxy_headers=False,  # X-Forwarded-* are not trusted (and cost a middleware per request)
        lifespan="on",
        log_config=None,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
        timeout_keep_alive=30,
    )
    return uvicorn.Server(config)


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class serve:
    """Record or replay the API calls of other processes: an HTTP endpoint on 127.0.0.1.

    >>> with nr.serve("replay", dir="recordings") as server:
    ...     subprocess.run(["node", "agent.js"])   # OPENAI_BASE_URL points at the server

    It starts at once, on a background thread, and runs until :meth:`stop` (or the end of the
    ``with`` block). ``port=0`` picks a free port (``server.port``, ``server.url``). While it runs,
    ``OPENAI_BASE_URL`` (``server.url + "/v1"``) and ``ANTHROPIC_BASE_URL`` are set in
    ``os.environ`` for subprocesses (``set_env=False`` leaves them), and in ``replay`` an unset
    ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY`` gets notebook-recorder's placeholder so that the
    subprocesses' clients construct (it is never forwarded, and this process never sends it).
    ``upstream`` is where ``record``/``live`` forward (default: OpenAI's or Anthropic's API, by
    the request). ``scope`` enters every key as
    ``test_id``. Clients that send ``X-Apirec-Session: NAME`` get their own occurrence counts.
    ``pace`` replays streams at their recorded pace, ``pace`` times as fast (``1.0``: as
    recorded; ``None``, the default: at once), as ``nr.recording(..., pace=...)`` does in
    process; ``APIREC_PACE`` overrides it. Listening on another address than loopback needs
    ``host=`` and warns.
    """

    def __init__(
        self,
        mode: Mode | str = Mode.REPLAY,
        dir: str | os.PathLike[str] | None = None,
        *,
        port: int = 0,
        host: str = LOOPBACK,
        upstream: str | None = None,
        scope: str | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        pace: float | None = None,
        set_env: bool = True,
    ) -> None:
        self.app = ServeApp(mode, dir, scope=scope, upstream=upstream, max_body=max_body, pace=pace)
        self._server = uvicorn_server(self.app)
        self._socket = bind(host, port)
        self.url: str = url_of(self._socket)
        """The server's address, ``http://127.0.0.1:PORT``."""
        self.port: int = int(self._socket.getsockname()[1])
        self._env: dict[str, str | None] = {}
        self._placeholders: list[str] = []
        self._thread = threading.Thread(target=self._run, name=f"notebook-recorder-serve-{self.port}", daemon=True)
        self._failure: BaseException | None = None
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        if not self._server.started:
            self._socket.close()
            raise RuntimeError(f"notebook-recorder serve did not start on {self.url}: {self._failure!r}")
        if set_env:
            self._set_env()

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:
            self._failure = exc

    @property
    def mode(self) -> Mode:
        """The mode in force (``APIREC_MODE`` overrides the one asked for)."""
        return self.app.recorder.mode

    @property
    def dir(self) -> Path:
        """The recordings directory in force."""
        return self.app.recorder.dir

    @property
    def pace(self) -> float | None:
        """The replay pace in force (``APIREC_PACE`` overrides the one asked for; ``None``: at once)."""
        return self.app.recorder.pace

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def base_urls(self) -> dict[str, str]:
        """The base-URL environment variables that point clients here."""
        return {"OPENAI_BASE_URL": f"{self.url}/v1", "ANTHROPIC_BASE_URL": self.url}

    def _set_env(self) -> None:
        for name, value in self.base_urls.items():
            self._env[name] = os.environ.get(name)
            os.environ[name] = value
        if self.mode is Mode.REPLAY:
            # For the processes it starts, which nothing of this one can reach (``node agent.js``):
            # the one place notebook-recorder puts its placeholder in the environment.
            for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
                if not os.environ.get(name):
                    os.environ[name] = REPLAY_KEY_PLACEHOLDER
                    self._placeholders.append(name)
            if self._placeholders:
                guard_placeholder()

    def _restore_env(self) -> None:
        for name, value in self._env.items():
            if os.environ.get(name) == self.base_urls[name]:
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        self._env.clear()
        for name in self._placeholders:
            if os.environ.get(name) == REPLAY_KEY_PLACEHOLDER:
                del os.environ[name]
        self._placeholders.clear()

    def stop(self) -> None:
        """Stop serving (requests in progress get two seconds) and restore the environment."""
        self._restore_env()
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()
        self.app.wait_for_saves()

    close = stop

    def __enter__(self) -> serve:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        if self.pace is not None:
            state += f", pace {self.pace:g}"
        return f"<notebook_recorder.serve {self.mode.value} {str(self.dir)!r} at {self.url} ({state})>"


def run_forever(
    mode: Mode | str,
    dir: str | os.PathLike[str] | None,
    *,
    port: int,
    host: str,
    upstream: str | None,
    scope: str | None,
    max_body: int,
    quiet: bool,
    pace: float | None = None,
) -> Iterator[str]:
    """The command line's server: yields its URL once listening, then serves until interrupted."""
    log = None if quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    app = ServeApp(mode, dir, scope=scope, upstream=upstream, max_body=max_body, pace=pace, log=log)
    server = uvicorn_server(app)
    sock = bind(host, port)
    try:
        yield url_of(sock)
        server.run(sockets=[sock])
    finally:
        sock.close()
        app.wait_for_saves()
