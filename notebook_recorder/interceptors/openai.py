"""The openai SDK hook: one patch on the base clients' ``request`` method, sync and async.

Every resource method of the SDK (chat, completions, embeddings, responses, models, ``.parse()``,
``.stream()`` helpers, ``with_raw_response``, ``with_streaming_response``) ends in
``SyncAPIClient.request`` or ``AsyncAPIClient.request``. Patching those two methods on the
classes covers every endpoint, including ones added later, and clients created before
recording started.

- **Live and record** call the SDK as usual and hand back exactly what it returns, ids and
  timestamps included: record mode is transparent. A stream is handed to the caller as it
  arrives; its chunks are collected on the side and written only when the stream ends. A stream
  that is cut short (``break``, ``close()``, an error) is never saved. Raw responses
  (``with_raw_response``, ``with_streaming_response``) are the SDK's own objects, unread and open:
  their body is tapped where the HTTP library reads it (the response's byte ``stream``, reached
  through a second patch on ``_process_response``) and saved once the caller has read it to the
  end. Response headers that carry no secret (``x-request-id``...) are stored; binary bodies
  (speech audio, file contents) are stored as base64 with their content type.
- **Replay** builds the SDK's own objects from ``__type__``/``__data__`` (strict validation
  first, lenient construction only for data that does not validate), returned through the SDK's
  own stream class. API errors are re-raised by the SDK's own error factory. Raw responses
  (``with_raw_response``, ``with_streaming_response``) and binary bodies are served from a
  synthetic HTTP response, with the recorded headers, so that the SDK parses them itself.

No file I/O happens here: the Recorder decides and writes.

A second, separate patch point covers the SDK's websocket connections (the realtime API), which
do not go through ``request``: see "Websocket connections" below. While the SDK makes its own
network call (``live`` and ``record``), :func:`notebook_recorder._network.sdk_network` marks the
connection as the SDK's, so the network guard does not report it.
"""

from __future__ import annotations

import base64
import contextvars
import functools
import hashlib
import importlib
import os
import sys
import threading
import time
import types
import typing
import warnings
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from types import ModuleType
from typing import Any, cast

import openai
import orjson
import pydantic
from openai import APIStatusError
from openai._base_client import AsyncAPIClient, BaseClient, SyncAPIClient
from openai._constants import RAW_RESPONSE_HEADER
from openai._models import FinalRequestOptions, add_request_id
from openai._streaming import AsyncStream, Stream
from openai._utils import extract_type_arg, is_given

from .._codec import DATA, TYPE, build, decode, encode, to_jsonable, type_name
from .._errors import NotRecordableError, NotRecordedWarning, RecordingFormatError, json_kind
from .._keys import InferenceRequest, canonical_endpoint
from .._modes import Mode
from .._network import sdk_network
from .._placeholder import drop_placeholder_key, set_placeholder_key
from .._secrets import (
    REPLAY_KEY_PLACEHOLDER,
    client_credentials,
    request_secrets,
    scrub,
    scrub_url,
    sent_request_secrets,
)
from .._session import Action, Decision, Recorder, active, exception_response
from .._types import allowed_type

_lock = threading.Lock()
_originals: dict[type, Callable[..., Any]] = {}
_process_originals: dict[type, Callable[..., Any]] = {}
# The call being recorded in this thread or task, while the SDK makes it: the SDK's
# ``_process_response`` hands it the HTTP response before anything reads the body.
_recording: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("notebook_recorder_openai_call", default=None)
_placeholder_key_set = False


# ---------------------------------------------------------------------------------------------
# Installing the hook
# ---------------------------------------------------------------------------------------------


def install(mode: Mode | None = None) -> None:
    """Patch the SDK's base clients (idempotent).

    In a mode that replays (``replay``, ``record-if-missing``) with no ``OPENAI_API_KEY`` set, a
    placeholder key is put in the environment so that ``OpenAI()`` can be constructed. It is never
    sent anywhere: a call that would have to go to the network with it fails with
    ``RecordingNotFoundError`` instead (see :func:`_check_key`).
    """
    global _placeholder_key_set
    with _lock:
        if SyncAPIClient not in _originals:
            _originals[SyncAPIClient] = SyncAPIClient.request
            _originals[AsyncAPIClient] = AsyncAPIClient.request
            SyncAPIClient.request = _sync_request  # type: ignore[method-assign,assignment]
            AsyncAPIClient.request = _async_request  # type: ignore[method-assign,assignment]
            _process_originals[SyncAPIClient] = SyncAPIClient._process_response
            _process_originals[AsyncAPIClient] = AsyncAPIClient._process_response
            SyncAPIClient._process_response = _sync_process_response  # type: ignore[method-assign,assignment]
            AsyncAPIClient._process_response = _async_process_response  # type: ignore[method-assign,assignment]
        _install_websockets()
        if mode is not None and mode.reads and set_placeholder_key():
            _placeholder_key_set = True


def uninstall() -> None:
    """Restore the SDK's own methods and drop the placeholder key, if we set it."""
    global _placeholder_key_set
    with _lock:
        if SyncAPIClient in _originals:
            SyncAPIClient.request = _originals.pop(SyncAPIClient)  # type: ignore[method-assign]
            AsyncAPIClient.request = _originals.pop(AsyncAPIClient)  # type: ignore[method-assign]
            SyncAPIClient._process_response = _process_originals.pop(SyncAPIClient)  # type: ignore[method-assign]
            AsyncAPIClient._process_response = _process_originals.pop(AsyncAPIClient)  # type: ignore[method-assign]
        _uninstall_websockets()
        if _placeholder_key_set:
            drop_placeholder_key()
        _placeholder_key_set = False


def is_installed() -> bool:
    """Whether the SDK is currently patched."""
    return SyncAPIClient in _originals


def _original(cls: type) -> Callable[..., Any]:
    # The patch may be removed while a call is in flight: fall back to the class's own method.
    return _originals.get(cls) or getattr(cls, "request")  # noqa: B009


# ---------------------------------------------------------------------------------------------
# Describing a call
# ---------------------------------------------------------------------------------------------


def describe(client: BaseClient[Any, Any], options: FinalRequestOptions) -> InferenceRequest:
    """The canonical request for an SDK call: method, endpoint, JSON body (or query), model."""
    url = _url(client, options.url)
    body: Any = options.json_data
    if isinstance(body, dict) and options.extra_json:
        body = {**body, **options.extra_json}
    if body is None and options.method.lower() == "get":
        body = dict(options.params) if options.params else {}
    body = scrub(_jsonable(body if body is not None else {}))
    if options.files and isinstance(body, dict):
        # Multipart uploads send files outside the JSON body: each enters the body (and so the
        # key) as its name and content digest, never its content.
        body = {**body, **_file_digests(options.files)}
    endpoint = canonical_endpoint("/v1/" + options.url.lstrip("/") if "://" not in options.url else options.url)
    model = body.get("model") if isinstance(body, dict) else None
    return InferenceRequest(
        method=options.method.upper(),
        endpoint=endpoint,
        body=body,
        model=model if isinstance(model, str) else "",
        url=scrub_url(url),
    )


_urls: dict[tuple[int, str], tuple[Any, str]] = {}


def _url(client: BaseClient[Any, Any], path: str) -> str:
    """``client._prepare_url(path)`` as text, cached per base URL (parsing URLs is not free)."""
    base = getattr(client, "_base_url", None)
    cached = _urls.get((id(base), path))
    if cached is not None and cached[0] is base:
        return cached[1]
    url = str(client._prepare_url(path))
    if len(_urls) > 512:
        _urls.clear()
    _urls[(id(base), path)] = (base, url)
    return url


def _file_digests(files: Any) -> dict[str, Any]:
    """``{field: {"filename", "sha256", "size"}}`` for the SDK's multipart ``files``."""
    items = files.items() if isinstance(files, Mapping) else files
    digests: dict[str, Any] = {}
    for field, file in items:
        name, content = (file[0], file[1]) if isinstance(file, tuple) else (getattr(file, "name", None), file)
        if isinstance(content, bytes | bytearray | memoryview):
            data = bytes(content)
        elif isinstance(content, os.PathLike):
            with open(content, "rb") as fh:
                data = fh.read()
        elif not getattr(content, "seekable", lambda: False)():
            data = b""  # a pipe or socket: reading it here would take the content from the SDK
        else:  # a file object: read it, then put it back where the SDK will read it from
            position = content.tell()
            data = content.read()
            content.seek(position)
            if isinstance(data, str):
                data = data.encode()
        described = {
            "filename": os.path.basename(name) if isinstance(name, str) else None,
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
        }
        previous = digests.get(field)
        digests[field] = described if previous is None else [*_as_list(previous), described]
    return digests


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _jsonable(value: Any) -> Any:
    try:
        return orjson.loads(orjson.dumps(value))  # plain JSON already: the usual case, at C speed
    except TypeError:
        pass
    try:
        return to_jsonable(value)
    except TypeError:
        return orjson.loads(orjson.dumps(value, default=str))


def _raw_mode(options: FinalRequestOptions) -> bool:
    """Whether the caller asked for the raw HTTP response (``with_raw_response`` and friends)."""
    headers = options.headers
    return is_given(headers) and headers is not None and bool(headers.get(RAW_RESPONSE_HEADER))


def _without_post_parser(options: FinalRequestOptions) -> FinalRequestOptions:
    # The recording holds what the API returned; `.parse()` helpers and pages re-apply their
    # post-parser to it, live and in replay alike.
    if not is_given(options.post_parser):
        return options
    copy = options.model_copy()
    copy.post_parser = openai.NOT_GIVEN
    return copy


def _post_parse(options: FinalRequestOptions, value: Any) -> Any:
    return options.post_parser(value) if is_given(options.post_parser) else value


def _httpx(client: BaseClient[Any, Any]) -> ModuleType:
    """The HTTP library this client is built on: ``httpx2`` (openai 3.x) or ``httpx``."""
    for cls in type(client._client).__mro__:
        root = cls.__module__.split(".", 1)[0]
        if root in ("httpx", "httpx2"):
            return sys.modules[root]
    raise TypeError(f"unsupported HTTP client {type(client._client)!r}")


# ---------------------------------------------------------------------------------------------
# The patched methods
# ---------------------------------------------------------------------------------------------


def _sync_request(
    self: SyncAPIClient,
    cast_to: Any,
    options: FinalRequestOptions,
    *,
    stream: bool = False,
    stream_cls: Any = None,
) -> Any:
    original = functools.partial(_original(SyncAPIClient), self, cast_to, stream=stream, stream_cls=stream_cls)
    recorder = active()
    if recorder is None:
        return original(options)
    decision = recorder.decide(describe(self, options))
    if decision.action is Action.RECORD:
        decision.secrets = _request_secrets(self, options)
    call = _Call(self, cast_to, options, stream, stream_cls, decision)
    if decision.action is Action.REPLAY:
        return call.replay_sync()
    _check_key(self, decision)
    token = _recording.set(call) if decision.action is Action.RECORD else None
    try:
        with sdk_network():
            result = original(options if decision.action is Action.LIVE or call.raw else call.live_options)
    except BaseException as exc:
        call.failed(exc)
        raise
    finally:
        if token is not None:
            _recording.reset(token)
    return call.finish(result)


async def _async_request(
    self: AsyncAPIClient,
    cast_to: Any,
    options: FinalRequestOptions,
    *,
    stream: bool = False,
    stream_cls: Any = None,
) -> Any:
    original = functools.partial(_original(AsyncAPIClient), self, cast_to, stream=stream, stream_cls=stream_cls)
    recorder = active()
    if recorder is None:
        return await original(options)
    decision = recorder.decide(describe(self, options))
    if decision.action is Action.RECORD:
        decision.secrets = _request_secrets(self, options)
    call = _Call(self, cast_to, options, stream, stream_cls, decision)
    if decision.action is Action.REPLAY:
        return await call.replay_async()
    _check_key(self, decision)
    token = _recording.set(call) if decision.action is Action.RECORD else None
    try:
        with sdk_network():
            result = await original(options if decision.action is Action.LIVE or call.raw else call.live_options)
    except BaseException as exc:
        call.failed(exc)
        raise
    finally:
        if token is not None:
            _recording.reset(token)
    return call.finish(result)


def _request_secrets(client: BaseClient[Any, Any], options: FinalRequestOptions) -> tuple[str, ...]:
    """The credential values this call sends (client settings, default and extra headers and
    query, body fields under credential names), which its recording must not hold."""
    settings = client_credentials(client)
    headers = options.headers if is_given(options.headers) and options.headers else {}
    params = options.params if isinstance(options.params, Mapping) else {}
    return request_secrets(
        values=settings["values"],
        headers=[*settings["headers"].items(), *headers.items()],
        query=[*settings["query"].items(), *params.items()],
        body=[options.json_data, options.extra_json],
    )


def _sync_process_response(self: SyncAPIClient, **kwargs: Any) -> Any:
    call = _recording.get()
    if call is not None:
        call.attach(kwargs["response"])
    return (_process_originals.get(SyncAPIClient) or SyncAPIClient._process_response)(self, **kwargs)


async def _async_process_response(self: AsyncAPIClient, **kwargs: Any) -> Any:
    call = _recording.get()
    if call is not None:
        call.attach(kwargs["response"])
    return await (_process_originals.get(AsyncAPIClient) or AsyncAPIClient._process_response)(self, **kwargs)


def _check_key(client: BaseClient[Any, Any], decision: Decision) -> None:
    """Never send the placeholder key: a call that must go live without a real key is missing."""
    if getattr(client, "api_key", None) == REPLAY_KEY_PLACEHOLDER:
        raise decision.recorder.missing(
            decision, "OPENAI_API_KEY is not set, so the call cannot be made or recorded now: set it and run again."
        )


# ---------------------------------------------------------------------------------------------
# Websocket connections (the realtime API): not recorded, so never made while replaying
# ---------------------------------------------------------------------------------------------
#
# The second patch point. The SDK's websocket paths (``client.realtime.connect()``,
# ``client.beta.realtime.connect()``, the Responses websocket, and in openai 3.x ``live``,
# ``sideband``, ``forks`` and realtime ``translations``) bypass ``request``. Each is a
# ``...ConnectionManager`` whose ``__enter__`` / ``__aenter__`` (aliased as ``enter``), and whose
# reconnects in 3.x, open the socket through the ``websockets`` package: sync paths call
# ``websockets.sync.client.connect()``, imported at call time; async paths build a
# ``websockets.asyncio.client.connect`` (in 3.x through a subclass of it) and await it. That is
# the one place all of them pass through in both SDK majors, so it is patched there: the sync
# function is replaced, and the async class's ``__init__`` and connecting coroutine are wrapped
# (subclasses inherit them). Patching the sixteen manager classes instead would mean importing
# their modules, 0.5-0.9 s, every time recording starts. Only connections that the ``openai``
# package itself opens are intercepted (the caller's module is checked); anyone else's websocket
# goes through untouched, and the network guard in ``_network`` sees it. Without ``websockets``
# installed the SDK cannot open these connections at all, and nothing is patched.
#
# ``replay`` / ``record-if-missing``: NotRecordableError, before any connection is opened.
# ``record``: a warning, once per recorder, and the connection goes through. ``live``: nothing.

_ws_originals: dict[str, Callable[..., Any]] = {}
_ws_warned: weakref.WeakSet[Recorder] = weakref.WeakSet()
_ws_missing: list[bool] = []  # websockets was looked for and is not installed
_ws_connecting_name: list[str] = []  # the async class's connecting coroutine method
_WS_SDK = "_notebook_recorder_sdk"  # set on an async connect object that the SDK built


def _install_websockets() -> None:
    if _ws_originals or _ws_missing:
        return
    try:
        sync: Any = importlib.import_module("websockets.sync.client")
        aio: Any = importlib.import_module("websockets.asyncio.client")
    except ImportError:
        _ws_missing.append(True)
        return
    connecting = "connect" if "connect" in vars(aio.connect) else "__await_impl__"  # websockets < 14
    _ws_originals.update(sync=sync.connect, init=aio.connect.__init__, connecting=getattr(aio.connect, connecting))
    _ws_connecting_name[:] = [connecting]
    sync.connect = _ws_connect_sync(sync.connect)
    aio.connect.__init__ = _ws_init(aio.connect.__init__)
    setattr(aio.connect, connecting, _ws_connecting(getattr(aio.connect, connecting)))


def _uninstall_websockets() -> None:
    if not _ws_originals:
        return
    sync: Any = sys.modules["websockets.sync.client"]
    aio: Any = sys.modules["websockets.asyncio.client"]
    sync.connect = _ws_originals["sync"]
    aio.connect.__init__ = _ws_originals["init"]
    setattr(aio.connect, _ws_connecting_name[0], _ws_originals["connecting"])
    _ws_originals.clear()


def _ws_recorder(caller: Any) -> Recorder | None:
    """The recorder in force when the SDK (not anyone else) opens a websocket."""
    if not str(caller.f_globals.get("__name__", "")).startswith("openai."):
        return None
    return active()


def _ws_check(recorder: Recorder, url: Any) -> None:
    """Refuse the connection while replaying; warn once while recording."""
    mode = recorder.mode
    if mode is Mode.LIVE:
        return
    url = str(url or "").split("?", 1)[0]
    what = f"a realtime (websocket) connection to {url}" if url else "a realtime (websocket) connection"
    if mode.reads:
        recorder.log_event("realtime", url, "error", error="NotRecordableError")
        raise NotRecordableError(
            f"{what} cannot be replayed: notebook-recorder does not record the realtime API "
            f"(client.realtime.connect() and the SDK's other websocket connections), and {mode.value} mode "
            "never reaches the network, so no connection was opened. Run this part live, outside the "
            'recording (nr.recording("live") or a %%apirec live cell), or leave it out of replayed runs.',
            what=what,
        )
    recorder.log_event("realtime", url, "live", error="realtime calls are not recorded")
    if recorder not in _ws_warned:
        _ws_warned.add(recorder)
        warnings.warn(
            f"notebook-recorder: {what} goes through but is not recorded: the realtime API is not "
            "recorded, so a replay of this code will raise NotRecordableError.",
            NotRecordedWarning,
            stacklevel=4,
        )


def _ws_connect_sync(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def connect(*args: Any, **kwargs: Any) -> Any:
        recorder = _ws_recorder(sys._getframe(1))
        if recorder is None:
            return original(*args, **kwargs)
        _ws_check(recorder, args[0] if args else kwargs.get("uri"))
        with sdk_network():
            return original(*args, **kwargs)

    return connect


def _ws_init(original: Callable[..., Any]) -> Callable[..., Any]:
    # The SDK awaits the object it builds (``await connect(...)``): a refusal is raised when it is
    # built, before anything is awaited.
    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        recorder = _ws_recorder(sys._getframe(1))
        if recorder is not None:
            _ws_check(recorder, args[0] if args else kwargs.get("uri"))
        original(self, *args, **kwargs)
        setattr(self, _WS_SDK, recorder is not None)

    return __init__


def _ws_connecting(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def connecting(self: Any) -> Any:
        if not getattr(self, _WS_SDK, False):
            return await original(self)
        with sdk_network():
            return await original(self)

    return connecting


# ---------------------------------------------------------------------------------------------
# One call
# ---------------------------------------------------------------------------------------------


class _Call:
    """One intercepted SDK call: what the Recorder decided, and how to carry it out."""

    def __init__(
        self,
        client: BaseClient[Any, Any],
        cast_to: Any,
        options: FinalRequestOptions,
        stream: bool,
        stream_cls: Any,
        decision: Decision,
    ) -> None:
        self.client = client
        self.cast_to = cast_to
        self.options = options
        self.stream = stream
        self.stream_cls: Any = stream_cls or client._default_stream_cls
        self.decision = decision
        self.raw = _raw_mode(options)
        self.http: Any = None  # the SDK's HTTP response, once it has one (record mode)

    @property
    def recorder(self) -> Recorder:
        return self.decision.recorder

    @property
    def live_options(self) -> FinalRequestOptions:
        return _without_post_parser(self.options)

    @property
    def chunk_type(self) -> Any:
        try:
            return extract_type_arg(self.stream_cls, 0)
        except (RuntimeError, TypeError, AttributeError):
            return None

    # -- live and record ----------------------------------------------------------------------

    def failed(self, exc: BaseException) -> None:
        """The SDK raised. API errors are recorded in record mode; everything is logged."""
        decision = self.decision
        if decision.action is Action.RECORD and isinstance(exc, APIStatusError):
            # The request as sent also holds what a token provider gave (Azure AD).
            decision.secrets += sent_request_secrets(getattr(exc, "request", None))
            self.recorder.save(decision, _exception_response(exc))
        else:
            outcome = "live" if decision.action is Action.LIVE else "error"
            self.recorder.finish(decision, outcome, error=type(exc).__name__)

    def attach(self, http: Any) -> None:
        """The SDK's HTTP response for a call being recorded, before the SDK reads its body.

        Its headers are kept. A raw call's body that is still unread (``with_streaming_response``,
        raw ``stream=True``) is tapped where the HTTP library reads it, so the caller reads it live
        and the recording is saved once it has been read to the end.
        """
        self.http = http
        self.decision.secrets += sent_request_secrets(http)  # the request as sent: a token provider's too
        if self.raw and not http.is_stream_consumed:
            http.stream = _tap_class(_httpx(self.client), asynchronous=not isinstance(self.client, SyncAPIClient))(
                http.stream, self
            )

    def finish(self, result: Any) -> Any:
        """Hand a live result to the caller, as the SDK returned it; in record mode, save it
        (streams and unread raw bodies: once they have been read to the end)."""
        decision = self.decision
        if decision.action is Action.LIVE:
            self.recorder.finish(decision, "live", streamed=self.stream)
            return result
        if self.raw:
            http = self.http
            if http is None:
                self.recorder.finish(decision, "live", error="raw response not recorded: no HTTP response")
            elif http.is_stream_consumed and not isinstance(http.stream, _Tap):
                self.save_raw_body(http.content)  # read by the SDK already (with_raw_response)
            return result
        if isinstance(result, Stream):
            result._iterator = self._tap_sync(result._iterator)
            return _post_parse(self.options, result)  # the SDK post-parses streams too (agents)
        if isinstance(result, AsyncStream):
            result._iterator = self._tap_async(result._iterator)
            return _post_parse(self.options, result)
        if isinstance(result, pydantic.BaseModel | list | dict):
            self.recorder.save(decision, self._with_headers({"body": _encode_body(result), "is_streaming": False}))
            value = _post_parse(self.options, result)
            if value is not result and isinstance(value, openai.BaseModel):
                # The SDK sets the request id after its post-parser; ours ran after the SDK.
                add_request_id(value, getattr(result, "_request_id", None))
            return value
        if self.http is not None and self.http.is_stream_consumed:
            self.save_raw_body(self.http.content, binary=True)  # audio, file contents, text
        else:
            self.recorder.finish(decision, "live", error=f"{type(result).__name__} response not recorded: body unread")
        return result

    def _with_headers(self, response: dict[str, Any]) -> dict[str, Any]:
        headers = _kept_headers(self.http)
        return {**response, "headers": headers} if headers else response

    def _tap_sync(self, chunks: Iterator[Any]) -> Iterator[Any]:
        collected: list[Any] = []
        offsets: list[float] = []
        started = self.decision.started
        complete = False
        try:
            for chunk in chunks:
                offsets.append(round((time.perf_counter() - started) * 1000, 3))
                collected.append(chunk)
                yield chunk
            complete = True
        finally:
            self._stream_ended(complete, collected, offsets)

    async def _tap_async(self, chunks: AsyncIterator[Any]) -> AsyncIterator[Any]:
        collected: list[Any] = []
        offsets: list[float] = []
        started = self.decision.started
        complete = False
        try:
            async for chunk in chunks:
                offsets.append(round((time.perf_counter() - started) * 1000, 3))
                collected.append(chunk)
                yield chunk
            complete = True
        finally:
            self._stream_ended(complete, collected, offsets)

    def _stream_ended(self, complete: bool, chunks: list[Any], offsets: list[float]) -> None:
        if not complete:
            self.recorder.finish(
                self.decision,
                "error",
                streamed=True,
                error=f"stream cut short after {len(chunks)} chunks; not saved",
            )
            return
        response = {
            "body": [encode(chunk) for chunk in chunks],
            "is_streaming": True,
            "chunk_offsets_ms": offsets,
            "duration_ms": round((time.perf_counter() - self.decision.started) * 1000, 3),
        }
        self.recorder.save(self.decision, self._with_headers(response), streamed=True)

    # Raw responses (`with_raw_response`, `with_streaming_response`) are recorded from the bytes
    # the caller read: the body the SDK read already, or the tapped body once it has been read to
    # the end. The SDK's own stream class parses those bytes again, from memory, for the file.

    def tap_ended(self, tap: _Tap, complete: bool) -> None:
        """A tapped raw body was read to the end (``complete``) or closed before that."""
        content = _tapped_body(self.client, self.http, tap.pieces)
        if not complete and self.stream and content is not None:
            # The SDK stops reading an SSE stream at ``data: [DONE]`` and closes it.
            complete = b"data: [DONE]" in content[-64:]
        if not complete or content is None:
            what = f"stream cut short after {len(tap.pieces)} reads" if self.stream else "response body never read"
            outcome = "error" if self.stream else "live"
            self.recorder.finish(self.decision, outcome, streamed=self.stream, error=f"{what}; not saved")
            return
        if self.stream and _is_event_stream(self.http):
            chunks, offsets = self._parse_events(tap)
            response = {
                "body": chunks,
                "is_streaming": True,
                "chunk_offsets_ms": offsets,
                "duration_ms": round((time.perf_counter() - self.decision.started) * 1000, 3),
            }
            self.recorder.save(self.decision, self._with_headers(response), streamed=True)
            return
        self.save_raw_body(content)

    def _parse_events(self, tap: _Tap) -> tuple[list[Any], list[float]]:
        """The tapped SSE bytes parsed by the SDK's own stream class, each chunk with the arrival
        offset of the bytes that completed it."""
        httpx = _httpx(self.client)
        started = self.decision.started
        arrived = [0.0]
        pieces = list(zip(tap.arrivals, tap.pieces, strict=True))

        class _Replayed(httpx.SyncByteStream):  # type: ignore[misc,name-defined]
            def __iter__(self) -> Iterator[bytes]:
                for when, data in pieces:
                    arrived[0] = when
                    yield data

        encoding = {k: v for k, v in self.http.headers.items() if k.lower() == "content-encoding"}
        http = httpx.Response(200, headers=encoding, stream=_Replayed(), request=self.http.request)
        parsed = Stream(cast_to=self.chunk_type, response=http, client=self.client, options=self.options)  # type: ignore[arg-type]
        chunks: list[Any] = []
        offsets: list[float] = []
        for chunk in parsed:
            chunks.append(encode(chunk))
            offsets.append(round((arrived[0] - started) * 1000, 3))
        return chunks, offsets

    def save_raw_body(self, content: bytes, *, binary: bool | None = None) -> None:
        """Save a call's body: its JSON as the SDK parses it, or the bytes and their content type
        (FORMAT.md, "Extensions of our own"), replayed byte for byte."""
        response: dict[str, Any]
        if binary is None:
            binary = _is_binary(self.cast_to) or not _is_json(self.http)
        if not binary:
            try:
                data = orjson.loads(content)
            except orjson.JSONDecodeError:
                data = _MISSING
            if data is not _MISSING:
                response = {"body": self._parsed_json(data), "is_streaming": False}
                self.recorder.save(self.decision, self._with_headers(response))
                return
        content_type = self.http.headers.get("content-type", "application/octet-stream")
        response = {
            "body": None,
            "is_streaming": False,
            "body_base64": base64.b64encode(content).decode("ascii"),
            "content_type": content_type,
        }
        self.recorder.save(self.decision, self._with_headers(response))

    def _parsed_json(self, data: Any) -> Any:
        target = _raw_cast_to(self.cast_to)
        if target is None:
            return data
        try:
            return _encode_body(self.client._process_response_data(data=data, cast_to=target, response=self.http))
        except (TypeError, pydantic.ValidationError):
            return data

    # -- replay -------------------------------------------------------------------------------

    def replay_sync(self) -> Any:
        response = self.decision.record["response"]
        if response.get("is_exception"):
            self._replayed()
            raise self._recorded_exception(response)
        if self.raw or "body_base64" in response:
            self._replayed()
            return cast(SyncAPIClient, self.client)._process_response(**self._raw_replay_args(response))
        return self._replay_objects(response)

    async def replay_async(self) -> Any:
        response = self.decision.record["response"]
        if response.get("is_exception"):
            self._replayed()
            raise self._recorded_exception(response)
        if self.raw or "body_base64" in response:
            self._replayed()
            return await cast(AsyncAPIClient, self.client)._process_response(**self._raw_replay_args(response))
        return self._replay_objects(response)

    def _recorded_body(self, response: dict[str, Any]) -> Any:
        body = response.get("body")
        found = self.decision.found
        if isinstance(body, list) and found is not None and found.path.name.startswith("models-"):
            # llama-stack wrote one model list per server it listed, all for the same request:
            # like llama-stack, replay their union.
            merged: dict[Any, Any] = {}
            for other in self.recorder.store.find_all(self.decision.key):
                items = other.record["response"].get("body")
                for item in items if isinstance(items, list) else []:
                    data = _raw_data(item)
                    merged.setdefault(data.get("id") if isinstance(data, dict) else repr(data), item)
            return list(merged.values()) or body
        return body

    def _replayed(self) -> None:
        self.recorder.finish(self.decision, "replayed", streamed=self.stream)

    def _replay_objects(self, response: dict[str, Any]) -> Any:
        body = self._recorded_body(response)
        if self.stream:
            chunk_type = self.chunk_type
            stream = self.stream_cls(
                cast_to=chunk_type,
                response=self._synthetic_response(200, b"", "text/event-stream", response.get("headers")),
                client=self.client,
                options=self.options,
            )
            if not isinstance(body, list | dict):
                raise self._format_error(f"the recorded stream is {json_kind(body)}, not a list of chunks")
            chunks = body if isinstance(body, list) else [body]
            if isinstance(stream, AsyncStream):
                stream._iterator = _async_chunks(chunks, chunk_type, self._path)
            else:
                stream._iterator = _decoded_chunks(chunks, chunk_type, self._path)
            self._replayed()
            return _post_parse(self.options, stream)
        try:
            value = _post_parse(self.options, _decode_result(body, self.cast_to))
        except RecordingFormatError as exc:
            raise self._format_error(exc.problem) from None
        if isinstance(value, openai.BaseModel):  # as the SDK does: None when the file has no headers
            headers = response.get("headers")
            request_id = headers.get("x-request-id") if isinstance(headers, dict) else None
            add_request_id(value, request_id if isinstance(request_id, str) else None)
        self._replayed()
        return value

    @property
    def _path(self) -> Any:
        found = self.decision.found
        return found.path if found is not None else "<recording>"

    def _format_error(self, problem: str) -> RecordingFormatError:
        return RecordingFormatError(
            self._path, f"{problem} (request: {self.options.method.upper()} {self.options.url})"
        )

    def _raw_replay_args(self, response: dict[str, Any]) -> dict[str, Any]:
        body = self._recorded_body(response)
        headers = response.get("headers")
        binary = response.get("body_base64")
        if isinstance(binary, str):
            content_type = str(response.get("content_type") or "application/octet-stream")
            http = self._synthetic_response(200, base64.b64decode(binary), content_type, headers)
        elif self.stream:
            content = b"".join(_sse_event(_raw_data(chunk)) for chunk in body or []) + b"data: [DONE]\n\n"
            http = self._synthetic_response(200, content, "text/event-stream", headers)
        else:
            http = self._synthetic_response(200, orjson.dumps(_raw_body(body, self.cast_to)), recorded=headers)
        options = self.options.model_copy()
        cast_to = self.client._maybe_override_cast_to(self.cast_to, options)
        return {
            "cast_to": cast_to,
            "options": options,
            "response": http,
            "stream": self.stream,
            "stream_cls": self.stream_cls if self.stream else None,
        }

    def _recorded_exception(self, response: dict[str, Any]) -> Exception:
        data = response.get("exception_data") or {}
        status = data.get("status_code")
        message = str(data.get("message") or response.get("exception_message") or "recorded error")
        if isinstance(status, int):
            text = data.get("response_text")
            if not isinstance(text, str):
                body = data.get("body")
                text = orjson.dumps({"error": body} if isinstance(body, dict) else body).decode()
            http = self._synthetic_response(status, text.encode())
            return self.client._make_status_error_from_response(http)
        cls = allowed_type(f"openai.{data.get('type')}")  # an SDK error class, or nothing
        request = self._synthetic_request()
        if isinstance(cls, type) and issubclass(cls, openai.APIConnectionError):
            return cls(request=request)
        return openai.APIError(message, request, body=data.get("body"))

    def _synthetic_request(self) -> Any:
        # Method, URL and the call's own headers (the SDK reads its raw-response markers there),
        # not the full request: serialising the body again costs more than decoding a long stream.
        httpx = _httpx(self.client)
        options, request = self.options, self.decision.request
        url = request.url if isinstance(request, InferenceRequest) else str(self.client._prepare_url(options.url))
        headers = {k: v for k, v in options.headers.items() if isinstance(v, str)} if is_given(options.headers) else {}
        return httpx.Request(options.method.upper(), url, headers=headers)

    def _synthetic_response(
        self, status: int, content: bytes, content_type: str = "application/json", recorded: Any = None
    ) -> Any:
        """An HTTP response holding a recorded body, with the recorded headers (when the file has
        them, FORMAT.md's extension) so that ``_request_id`` and ``response.headers`` match."""
        httpx = _httpx(self.client)
        headers = {"content-type": content_type}
        if isinstance(recorded, dict):
            headers.update({str(k): v for k, v in recorded.items() if isinstance(v, str) and str(k) != "content-type"})
        headers["x-notebook-recorder"] = "replay"
        return httpx.Response(status, headers=headers, content=content, request=self._synthetic_request())


# ---------------------------------------------------------------------------------------------
# Tapping a raw response's body as the caller reads it
# ---------------------------------------------------------------------------------------------


class _Tap:
    """A response body stream that passes every read through and keeps a copy, with its time.

    It replaces the HTTP response's ``stream`` (the lowest level the SDK and the caller read
    from: ``iter_bytes``, ``iter_lines``, ``parse()``, ``read()`` all go through it). Reading it to
    the end, or closing it, tells the call.
    """

    def __init__(self, inner: Any, call: _Call) -> None:
        self._inner = inner
        self._call: _Call | None = call
        self.pieces: list[bytes] = []
        self.arrivals: list[float] = []

    def _keep(self, data: bytes) -> None:
        self.pieces.append(data)
        self.arrivals.append(time.perf_counter())

    def _end(self, complete: bool) -> None:
        call, self._call = self._call, None
        if call is None:
            return
        try:
            call.tap_ended(self, complete)
        except Exception as exc:  # recording must never break what the caller is reading
            call.recorder.finish(call.decision, "error", streamed=call.stream, error=f"not saved: {exc!r}")

    def __getattr__(self, name: str) -> Any:  # ``elapsed`` and the like, from the real stream
        return getattr(self._inner, name)


class _SyncTapMixin(_Tap):
    def __iter__(self) -> Iterator[bytes]:
        for data in self._inner:
            self._keep(data)
            yield data
        self._end(True)

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._end(False)


class _AsyncTapMixin(_Tap):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for data in self._inner:
            self._keep(data)
            yield data
        self._end(True)

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._end(False)


@functools.lru_cache(maxsize=8)
def _tap_class(httpx: ModuleType, *, asynchronous: bool) -> type[_Tap]:
    """The tap as a stream class of the client's HTTP library (which checks ``isinstance``)."""
    if asynchronous:
        return type("_AsyncTap", (_AsyncTapMixin, httpx.AsyncByteStream), {})
    return type("_SyncTap", (_SyncTapMixin, httpx.SyncByteStream), {})


def _tapped_body(client: BaseClient[Any, Any], http: Any, pieces: list[bytes]) -> bytes | None:
    """The tapped body as the caller read it: raw bytes with any ``content-encoding`` undone."""
    encoding = http.headers.get("content-encoding")
    content = b"".join(pieces)
    if not encoding or encoding == "identity":
        return content
    try:
        return bytes(_httpx(client).Response(200, headers={"content-encoding": encoding}, content=content).content)
    except Exception:  # a body cut short in the middle of a compressed block
        return None


# Response headers stored with a recording and replayed: the ones the SDK exposes that carry no
# secret. Never cookies, authorization or anything else credential-like.
KEPT_HEADERS = frozenset({"x-request-id", "openai-processing-ms", "openai-version", "openai-model", "content-type"})
KEPT_HEADER_PREFIXES = ("x-ratelimit-",)


def _kept_headers(http: Any) -> dict[str, str]:
    if http is None:
        return {}
    return {
        name.lower(): value
        for name, value in http.headers.items()
        if name.lower() in KEPT_HEADERS or name.lower().startswith(KEPT_HEADER_PREFIXES)
    }


def _content_type(http: Any) -> str:
    return str(http.headers.get("content-type", "")).lower() if http is not None else ""


def _is_json(http: Any) -> bool:
    content_type = _content_type(http)
    return not content_type or "json" in content_type


def _is_event_stream(http: Any) -> bool:
    return "text/event-stream" in _content_type(http) or not _content_type(http)


def _is_binary(cast_to: Any) -> bool:
    """Whether the SDK hands this call's body over as bytes or text rather than parsing JSON."""
    from openai._legacy_response import HttpxBinaryResponseContent

    target = _raw_cast_to(cast_to)
    return isinstance(target, type) and issubclass(target, HttpxBinaryResponseContent | str | bytes)


# ---------------------------------------------------------------------------------------------
# Encoding results and decoding them back
# ---------------------------------------------------------------------------------------------


def _is_page(value: Any) -> bool:
    from openai.pagination import AsyncPage, SyncPage

    return isinstance(value, SyncPage | AsyncPage)


def _encode_body(result: Any) -> Any:
    """A result as FORMAT.md's body. Simple pages (``models.list()``) are stored as the list of
    their items, as llama-stack does; cursor pages keep their ``has_more`` and ids."""
    if _is_page(result):
        return [encode(item) for item in result.data]
    return encode(result)


def _target(cast_to: Any) -> Any:
    origin = getattr(cast_to, "__pydantic_generic_metadata__", {}).get("origin") or cast_to
    return origin


def _members(target: Any) -> tuple[Any, ...]:
    """The classes a response type stands for: itself, or each member of a union."""
    args = typing.get_args(target)
    if typing.get_origin(target) is typing.Annotated:
        return _members(args[0])
    if args and typing.get_origin(target) in (typing.Union, types.UnionType):
        return tuple(m for arg in args for m in _members(arg))
    return (target,)


def _fits(cls: type, target: Any) -> bool:
    """Whether an instance of ``cls`` is what a call returning ``target`` may return."""
    members = _members(target)
    if not all(isinstance(m, type) for m in members):
        return True  # a type we cannot compare against: trust the SDK's own class
    return any(issubclass(cls, _target(m)) for m in members)


def _expects_object(target: Any) -> bool:
    """Whether the SDK builds ``target`` from a JSON object only (models and unions of them)."""
    members = _members(target)
    return all(isinstance(m, type) and issubclass(m, pydantic.BaseModel) for m in members)


def _decode_result(body: Any, cast_to: Any) -> Any:
    """A recorded non-streamed body as the object the SDK would have returned.

    A body that cannot be that object (a number, a string, a list where an object belongs,
    ``null``) raises ``RecordingFormatError``; the caller adds the file's name.
    """
    is_model = isinstance(cast_to, type) and issubclass(cast_to, pydantic.BaseModel)
    if is_model and isinstance(body, list) and "data" in cast_to.model_fields:
        # A page stored as its items (our files and llama-stack's model lists).
        return build(cast_to, {"data": decode(body), "object": "list"})
    if _expects_object(cast_to) and not isinstance(body, dict):
        raise RecordingFormatError(
            "<recording>", f"the recorded body is {json_kind(body)}, but the call returns {_type_label(cast_to)}"
        )
    if isinstance(body, dict):
        name = body.get(TYPE)
        typed = name is not None and DATA in body
        if is_model and typed and name == type_name(_target(cast_to)):
            return build(cast_to, body[DATA])  # keeps generic parameters such as SyncCursorPage[T]
        cls = allowed_type(name) if typed else None
        if cls is not None and _fits(cls, cast_to):
            return decode(body)
        # Raw data, a foreign type (another provider's SDK) or a type that is not the call's:
        # built as the type the call returns, as the SDK builds the JSON it receives.
        data = body[DATA] if typed else body
        if is_model:
            return build(cast_to, data)
        if _expects_object(cast_to):
            if not isinstance(data, dict):
                raise RecordingFormatError("<recording>", f"the recorded __data__ is {json_kind(data)}, not an object")
            return _adapter(cast_to).validate_python(decode(data))
    if isinstance(cast_to, type) and cast_to is not object and not isinstance(body, dict | list):
        if not isinstance(body, cast_to):
            raise RecordingFormatError(
                "<recording>", f"the recorded body is {json_kind(body)}, but the call returns {_type_label(cast_to)}"
            )
    return decode(body)


def _type_label(target: Any) -> str:
    return " | ".join(m.__name__ if isinstance(m, type) else str(m) for m in _members(target))


def _decode_as(chunk: Any, chunk_type: Any, path: Any = "<recording>") -> Any:
    """One recorded stream chunk as an SDK object.

    Raw-dict chunks, and chunks whose ``__type__`` is not on the allowlist (another provider's
    SDK) or is not the stream's chunk type, are built as the chunk type the SDK expects, as live
    parsing would. A chunk that is not an object raises ``RecordingFormatError`` naming the file.
    """
    if isinstance(chunk, dict):
        data = chunk
        name = chunk.get(TYPE)
        if name is not None and DATA in chunk:
            cls = allowed_type(name)
            if cls is not None and (chunk_type is None or _fits(cls, chunk_type)):
                return _decoded(chunk, path)
            data = chunk[DATA]
            if not isinstance(data, dict):
                raise RecordingFormatError(
                    path, f"a recorded stream chunk's __data__ is {json_kind(data)}, not an object"
                )
        if isinstance(chunk_type, type) and issubclass(chunk_type, pydantic.BaseModel):
            return build(chunk_type, data)
        if chunk_type is not None and not isinstance(chunk_type, type):
            # A union of event types (the Responses API): let pydantic pick the member.
            return _adapter(chunk_type).validate_python(data)
    elif chunk_type is not None and _expects_object(chunk_type):
        raise RecordingFormatError(path, f"a recorded stream chunk is {json_kind(chunk)}, not an object")
    return _decoded(chunk, path)


def _decoded(value: Any, path: Any) -> Any:
    try:
        return decode(value)
    except RecordingFormatError as exc:
        raise RecordingFormatError(path, exc.problem) from None


@functools.lru_cache(maxsize=64)
def _adapter(tp: Any) -> pydantic.TypeAdapter[Any]:
    return pydantic.TypeAdapter(tp)


def _decoded_chunks(chunks: list[Any], chunk_type: Any, path: Any = "<recording>") -> Iterator[Any]:
    """Recorded stream chunks as SDK objects, decoded one at a time as the caller iterates.

    This is replay's hot loop. Once a chunk of a ``__type__`` has been built, later chunks of the
    same type go straight to that class's validator; anything else takes the general path.
    """
    fast_type: Any = _MISSING  # equal to no chunk's type until one has been built
    validate: Any = None
    for chunk in chunks:
        try:
            if chunk.get(TYPE) == fast_type:
                yield validate(chunk[DATA])
                continue
        except (AttributeError, KeyError, pydantic.ValidationError):
            pass  # not a dict, or non-compliant data: the general path builds it leniently
        value = _decode_as(chunk, chunk_type, path)
        if isinstance(value, pydantic.BaseModel) and isinstance(chunk, dict) and TYPE in chunk:
            fast_type, validate = chunk[TYPE], type(value).__pydantic_validator__.validate_python
        yield value


_MISSING = object()


async def _async_chunks(chunks: list[Any], chunk_type: Any, path: Any = "<recording>") -> AsyncIterator[Any]:
    for chunk in _decoded_chunks(chunks, chunk_type, path):
        yield chunk


def _raw_data(value: Any) -> Any:
    if isinstance(value, dict) and TYPE in value and DATA in value:
        return value[DATA]
    if isinstance(value, list):
        return [_raw_data(v) for v in value]
    return value


def _raw_body(body: Any, cast_to: Any) -> Any:
    """The JSON the API sent, rebuilt from a recorded body (pages stored as lists get their envelope)."""
    if isinstance(body, list) and isinstance(cast_to, type) and "data" in getattr(cast_to, "model_fields", {}):
        return {"object": "list", "data": _raw_data(body)}
    return _raw_data(body)


def _raw_cast_to(cast_to: Any) -> Any:
    target = getattr(cast_to, "__origin__", None) or cast_to
    from openai._legacy_response import LegacyAPIResponse
    from openai._response import BaseAPIResponse

    if isinstance(target, type) and issubclass(target, BaseAPIResponse | LegacyAPIResponse):
        try:
            return extract_type_arg(cast_to, 0)
        except (RuntimeError, TypeError):
            return None
    return cast_to


def _sse_event(data: Any) -> bytes:
    event = data.get("type") if isinstance(data, dict) else None
    prefix = f"event: {event}\n".encode() if isinstance(event, str) and "." in event else b""
    return prefix + b"data: " + orjson.dumps(data) + b"\n\n"


def _exception_response(exc: APIStatusError) -> dict[str, Any]:
    """FORMAT.md's exception form, plus the raw error text so replay rebuilds the exact message."""
    try:
        text: str | None = exc.response.text
    except Exception:  # a streamed error body that was never read
        text = None
    exception_data = {
        "category": "provider_sdk",
        "provider": "openai",
        "type": type(exc).__name__,
        "message": exc.message,
        "status_code": exc.status_code,
        "body": _jsonable(exc.body),
    }
    if text is not None:
        exception_data["response_text"] = text
    return exception_response(exception_data, str(exc))
