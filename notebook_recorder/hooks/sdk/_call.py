"""One call of a Stainless SDK, as the engine's :class:`~notebook_recorder.core._engine.Exchange`.

The engine (``_engine``) runs the flow; an :class:`SdkCall` supplies the SDK's pieces: the
request, the credentials it carries, the original call, the result kept (a stream tapped, a
raw body tapped, a plain result encoded), and in replay the SDK's own objects rebuilt. Every
private member of the SDK is reached through ``_compat``; no file I/O happens here.
"""

from __future__ import annotations

import base64
import contextvars
import dataclasses
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from typing import Any

import orjson
import pydantic

from ...core import _pace
from ...core._codec import encode
from ...core._engine import Tape
from ...core._errors import RecordingFormatError, json_kind
from ...core._keys import InferenceRequest
from ...core._recorder import Action, exception_response
from ...core._secrets import scrub_url, sent_request_secrets
from ...core._types import allowed_type
from .._above import above
from .._network import sdk_network
from .._placeholder import REPLAY_KEY_PLACEHOLDER
from . import _compat, _decode, _rawtap
from ._compat import StainlessSdk
from ._describe import credentials, describe, jsonable

_NOT_JSON = object()


class SdkCall:
    """One intercepted SDK call: its arguments, and how to carry out what the engine asks."""

    def __init__(
        self,
        sdk: StainlessSdk,
        client: Any,
        cast_to: Any,
        options: Any,
        stream: bool,
        stream_cls: Any,
        original: Callable[..., Any],
        current: contextvars.ContextVar[weakref.ref[SdkCall] | None],
        given: Any = None,
    ) -> None:
        self.sdk = sdk
        self.client = client
        self.cast_to = cast_to
        self.options = options
        # The options as the SDK's resource method built them, before the client prepared them:
        # the key's body is read from these (see describe()).
        self.given = given if given is not None else options
        self.streamed = stream
        self.sent_stream_cls = stream_cls  # handed to the SDK as the caller gave it
        self.stream_cls: Any = stream_cls or _compat.default_stream_cls(client)
        self.asynchronous = isinstance(client, sdk.clients[1])
        self.raw = bool(_compat.headers_of(sdk, options).get(sdk.raw_response_header))
        self._original = original
        self._current = current
        self.request: InferenceRequest | None = None
        self.tape: Tape | None = None
        self.http: Any = None  # the SDK's HTTP response, once it has one (record mode)
        # The generator a live stream's chunks pass through, held weakly: the call must not keep
        # the caller's stream alive (its frame refers to the call).
        self._stream_tap: weakref.ref[Any] | None = None
        self._seen: _Collected | None = None

    @property
    def sdk_versions(self) -> dict[str, str]:
        return {"sdk": self.sdk.package, "sdk_version": self.sdk.version}

    @property
    def chunk_type(self) -> Any:
        return self.sdk.type_arg(self.stream_cls)

    # -- the exchange: describing ------------------------------------------------------------

    def describe(self) -> InferenceRequest:
        """The request: its URL and method as the SDK prepared them, its body (and so its key) as
        the resource method built it. A client's preparation serializes SDK objects in the body
        (``response.content`` passed back as a message) without their unset fields; keying that
        would change the key of every such call recorded before, and they must keep replaying."""
        self.request = describe(self.sdk, self.client, self.options, body_options=self.given)
        return self.request

    def secrets(self) -> tuple[str, ...]:
        return credentials(self.sdk, self.client, self.options)

    def unavailable(self, action: Action) -> str | None:
        """The placeholder key is never sent, and a call with no credentials at all is not
        recorded: it is missing. In ``live``, a call with no key goes on to the SDK, which raises
        its own error as it does without the hook. Whether a client without a key attribute has
        credentials is asked of the SDK (``_compat.resolves_credentials``): a key the call carries
        in a header (``default_headers={"x-api-key": ...}``), an auth token, a credentials provider
        or profile, ``Authorization`` omitted on purpose, a client class that signs or fills in
        each request itself (Bedrock's SigV4, Vertex's and Google Cloud's access tokens, Azure,
        ``skip_auth``). An SDK that cannot be asked is judged by what the call carries. It is
        asked only when every key attribute is ``None``: openai's ``api_key`` is ``""`` when a key
        provider or workload identity fills in each request while it is prepared (after this
        point), so openai's own error is left to openai."""
        env = self.sdk.env_key
        keys = [getattr(self.client, name, None) for name in self.sdk.auth_attributes]
        placeholder = REPLAY_KEY_PLACEHOLDER in keys
        if action is Action.LIVE:
            if not placeholder:
                return None
            return (
                f"The client was built while replaying, with no key, so it holds notebook-recorder's "
                f"placeholder instead of one: set {env} (or pass api_key=), build the client again and run again."
            )
        if placeholder:
            return f"{env} is not set, so the call cannot be made or recorded now: set it and run again."
        if not self.sdk.needs_key or any(key is not None for key in keys):  # llama-stack's server needs none
            return None
        found = _compat.resolves_credentials(self.client, self.options)
        if found is None:
            found = _compat.authenticates_otherwise(self.sdk, self.client) or bool(self.secrets())
        if found:
            return None
        return (
            f"{env} is not set and the client has no other credentials, so the call cannot be made or "
            f"recorded now: set it and run again."
        )

    # -- the exchange: live and record -------------------------------------------------------

    def call(self, tape: Tape | None) -> Any:
        """The SDK's own ``request`` (a coroutine for an async client)."""
        options = self.options if tape is None or self.raw else _compat.without_post_parser(self.sdk, self.options)
        if self.asynchronous:
            return self._acall(tape, options)
        token = self._current.set(weakref.ref(self)) if tape is not None else None
        self.tape = tape
        try:
            with sdk_network(collect=tape.add_secrets if tape is not None else None), above():
                return self._original(
                    self.client, self.cast_to, options, stream=self.streamed, stream_cls=self.sent_stream_cls
                )
        finally:
            if token is not None:
                self._current.reset(token)

    async def _acall(self, tape: Tape | None, options: Any) -> Any:
        token = self._current.set(weakref.ref(self)) if tape is not None else None
        self.tape = tape
        try:
            with sdk_network(collect=tape.add_secrets if tape is not None else None), above():
                return await self._original(
                    self.client, self.cast_to, options, stream=self.streamed, stream_cls=self.sent_stream_cls
                )
        finally:
            if token is not None:
                self._current.reset(token)

    def failure(self, exc: BaseException, tape: Tape) -> dict[str, Any] | None:
        """API errors are recorded (the request as sent also holds what a token provider gave)."""
        if not isinstance(exc, self.sdk.status_error):
            return None
        tape.add_secrets(sent_request_secrets(getattr(exc, "request", None)))
        self._sent_url(exc)
        return _exception_response(self.sdk, exc)

    def _sent_url(self, sent: Any) -> None:
        """The URL written is the one sent (a client class routes in its own option preparation:
        Bedrock's ``/model/{model}/invoke``, Vertex's and Google Cloud's project paths), without
        credentials."""
        assert self.tape is not None
        decision = self.tape.decision
        try:
            url = str(getattr(sent, "request", sent).url)
        except Exception:  # no request after all
            return
        if isinstance(decision.request, InferenceRequest) and url:
            decision.request = dataclasses.replace(decision.request, url=scrub_url(url))

    def attach(self, http: Any) -> None:
        """The SDK's HTTP response for a call being recorded, before the SDK reads its body.

        Its headers are kept. A raw call's body that is still unread (``with_streaming_response``,
        raw ``stream=True``) is tapped where the HTTP library reads it, so the caller reads it live
        and the recording is saved once it has been read to the end.
        """
        self.http = http
        if self.tape is not None:
            self.tape.add_secrets(sent_request_secrets(http))  # the request as sent: a token provider's too
            self._sent_url(http)
        if http.is_stream_consumed:
            return
        httpx = _compat.http_library(self.client)
        if self.raw:
            http.stream = _rawtap.tap_class(httpx, asynchronous=self.asynchronous)(http.stream, self)
        elif self.streamed:
            # Weakly: a stream dropped unread must be freed at once, with what the SDK hangs on its
            # response (an OpenTelemetry span ends when its body is dropped).
            closing = _rawtap.closing_class(httpx, asynchronous=self.asynchronous)
            http.stream = closing(http.stream, weakref.WeakMethod(self._aclosed if self.asynchronous else self._closed))

    def keep(self, result: Any, tape: Tape) -> Any:
        """Hand a recorded call's result to the caller, as the SDK returned it, and save it
        (streams and unread raw bodies: once they have been read to the end)."""
        sdk = self.sdk
        if self.raw:
            http = self.http
            if http is None:
                tape.end("live", error="raw response not recorded: no HTTP response")
            elif http.is_stream_consumed and not isinstance(http.stream, _rawtap.Tap):
                self.save_body(http.content)  # read by the SDK already (with_raw_response)
            return result
        sync_stream, async_stream = sdk.streams
        if isinstance(result, sync_stream | async_stream):
            self._seen = _Collected(self)
            tap = self._tap_async if isinstance(result, async_stream) else self._tap_sync
            tapped = tap(_compat.stream_iterator(result), self._seen)
            self._stream_tap = weakref.ref(tapped)
            _compat.set_stream_iterator(result, tapped)
            return _compat.post_parse(sdk, self.options, result)  # the SDK post-parses streams too
        if isinstance(result, pydantic.BaseModel | list | dict):
            tape.save(self._with_headers({"body": _decode.encode_body(sdk, result), "is_streaming": False}))
            value = _compat.post_parse(sdk, self.options, result)
            if value is not result and isinstance(value, sdk.base_model):
                # The SDK sets the request id after its post-parser; ours ran after the SDK.
                _compat.set_response_ids(sdk, value, _compat.response_ids(result))
            return value
        http = self.http
        if http is not None and http.is_stream_consumed:
            self.save_body(http.content, binary=True)  # audio, file contents, text
        elif http is not None and not isinstance(http.stream, _rawtap.Tap):
            # A result that reads its body later, as the caller iterates it (anthropic's
            # ``messages.batches.results()``, a ``JSONLDecoder`` over the response's bytes): its
            # body is tapped as a raw one's is, and saved once read to the end; replay gives the
            # SDK the same bytes to decode again.
            http.stream = _rawtap.tap_class(_compat.http_library(self.client), asynchronous=self.asynchronous)(
                http.stream, self
            )
        else:
            tape.end("live", error=f"{type(result).__name__} response not recorded: body unread")
        return result

    def _with_headers(self, response: dict[str, Any]) -> dict[str, Any]:
        headers = _rawtap.kept_headers(self.sdk, self.http)
        return {**response, "headers": headers} if headers else response

    def _tap_sync(self, chunks: Iterator[Any], seen: _Collected) -> Generator[Any]:
        with seen:
            for chunk in chunks:
                yield seen.add(chunk)
            seen.complete = True

    async def _tap_async(self, chunks: AsyncIterator[Any], seen: _Collected) -> AsyncGenerator[Any]:
        with seen:
            async for chunk in chunks:
                yield seen.add(chunk)
            seen.complete = True

    # A stream's HTTP response closed. While the stream's chunks are being read, that is the SDK
    # closing it at the end (the tap is running, and ends itself). Otherwise the caller left the
    # stream early (``break`` then ``close()``, a ``with`` block, a helper's ``close()``): it is
    # ended now, in its own recording context, and not saved.

    def _live_tap(self) -> Any:
        return self._stream_tap() if self._stream_tap is not None else None

    def _closed(self) -> None:
        tap, seen = self._live_tap(), self._seen
        if seen is None or seen.ended or (tap is not None and tap.gi_running):
            return
        if tap is not None:
            tap.close()
        seen.end()

    async def _aclosed(self) -> None:
        tap, seen = self._live_tap(), self._seen
        if seen is None or seen.ended or (tap is not None and tap.ag_running):
            return
        if tap is not None:
            await tap.aclose()
        seen.end()

    def stream_ended(self, seen: _Collected) -> None:
        """A live stream ended: saved when it was read to the end, never when it was cut short."""
        tape = self.tape
        assert tape is not None
        if not seen.complete:
            tape.end("error", streamed=True, error=f"stream cut short after {len(seen.chunks)} chunks; not saved")
            return
        response = {
            "body": [encode(chunk) for chunk in seen.chunks],
            "is_streaming": True,
            "chunk_offsets_ms": seen.offsets,
            "duration_ms": tape.elapsed_ms(),
        }
        tape.save(self._with_headers(response), streamed=True)

    # Raw responses (`with_raw_response`, `with_streaming_response`) are recorded from the bytes
    # the caller read: the body the SDK read already, or the tapped body once it has been read to
    # the end. The SDK's own stream class parses those bytes again, from memory, for the file.

    def tap_failed(self, exc: Exception) -> None:
        assert self.tape is not None
        self.tape.end("error", streamed=self.streamed, error=f"not saved: {exc!r}")

    def tap_ended(self, tap: _rawtap.Tap, complete: bool) -> None:
        """A tapped raw body was read to the end (``complete``) or closed before that."""
        tape = self.tape
        assert tape is not None
        content = _rawtap.tapped_body(_compat.http_library(self.client), self.http, tap.pieces)
        end = self.sdk.stream_end
        if not complete and self.streamed and content is not None and end is not None:
            complete = end in content[-64:]  # the SDK stops reading at the end marker and closes it
        if not complete or content is None:
            what = f"stream cut short after {len(tap.pieces)} reads" if self.streamed else "response body never read"
            tape.end("error" if self.streamed else "live", streamed=self.streamed, error=f"{what}; not saved")
            return
        if self.streamed and _rawtap.is_event_stream(self.http):
            chunks, offsets = self._parse_events(tap)
            response = {
                "body": chunks,
                "is_streaming": True,
                "chunk_offsets_ms": offsets,
                "duration_ms": tape.elapsed_ms(),
            }
            tape.save(self._with_headers(response), streamed=True)
            return
        self.save_body(content)

    def _parse_events(self, tap: _rawtap.Tap) -> tuple[list[Any], list[float]]:
        """The tapped SSE bytes parsed by the SDK's own stream class, each chunk with the arrival
        offset of the bytes that completed it."""
        httpx = _compat.http_library(self.client)
        assert self.tape is not None
        started = self.tape.started
        arrived = [0.0]
        pieces = list(zip(tap.arrivals, tap.pieces, strict=True))

        class _Replayed(httpx.SyncByteStream):  # type: ignore[misc,name-defined]
            def __iter__(self) -> Iterator[bytes]:
                for when, data in pieces:
                    arrived[0] = when
                    yield data

        encoding = {k: v for k, v in self.http.headers.items() if k.lower() == "content-encoding"}
        http = httpx.Response(200, headers=encoding, stream=_Replayed(), request=self.http.request)
        parsed = _compat.sse_stream(self.sdk.streams[0], self.chunk_type, http, self.client, self.options)
        chunks: list[Any] = []
        offsets: list[float] = []
        for chunk in parsed:
            chunks.append(encode(chunk))
            offsets.append(round((arrived[0] - started) * 1000, 3))
        return chunks, offsets

    def save_body(self, content: bytes, *, binary: bool | None = None) -> None:
        """Save a call's body: its JSON as the SDK parses it, or the bytes and their content type
        (FORMAT.md, "Extensions of our own"), replayed byte for byte."""
        tape = self.tape
        assert tape is not None
        if binary is None:
            binary = _decode.is_binary(self.sdk, self.cast_to) or not _rawtap.is_json(self.http)
        if not binary:
            try:
                data = orjson.loads(content)
            except orjson.JSONDecodeError:
                data = _NOT_JSON
            if data is not _NOT_JSON:
                tape.save(self._with_headers({"body": self._parsed_json(data), "is_streaming": False}))
                return
        response = {
            "body": None,
            "is_streaming": False,
            "body_base64": base64.b64encode(content).decode("ascii"),
            "content_type": self.http.headers.get("content-type", "application/octet-stream"),
        }
        tape.save(self._with_headers(response))

    def _parsed_json(self, data: Any) -> Any:
        target = _decode.raw_cast_to(self.sdk, self.cast_to)
        if target is None:
            return data
        # What the SDK raises where a body does not fit its type (strict clients: its own error).
        errors: tuple[type[BaseException], ...] = (TypeError, pydantic.ValidationError)
        try:
            return _decode.encode_body(self.sdk, _compat.process_response_data(self.client, data, target, self.http))
        except errors + _compat.validation_errors(self.sdk):
            return data

    # -- the exchange: replay ----------------------------------------------------------------

    def replay(self, response: dict[str, Any], tape: Tape) -> Any:
        """The SDK's own objects from a recorded response (a coroutine for an async client)."""
        self.tape = tape
        if self.raw or "body_base64" in response:
            return _compat.process_response(self.client, **self._raw_replay_args(response))
        value = self._replay_objects(response)
        return _ready(value) if self.asynchronous else value

    def replay_error(self, response: dict[str, Any]) -> BaseException:
        """The recorded error, re-raised through the SDK's own error factory."""
        data = response.get("exception_data") or {}
        status = data.get("status_code")
        message = str(data.get("message") or response.get("exception_message") or "recorded error")
        if isinstance(status, int):
            text = data.get("response_text")
            if not isinstance(text, str):
                body = data.get("body")
                text = orjson.dumps({"error": body} if isinstance(body, dict) else body).decode()
            return _compat.status_error(self.client, self._synthetic_response(status, text.encode()))
        cls = allowed_type(f"{self.sdk.package}.{data.get('type')}")  # an SDK error class, or nothing
        request = self._synthetic_request()
        if isinstance(cls, type) and issubclass(cls, self.sdk.connection_error):
            return cls(request=request)  # type: ignore[call-arg]
        return self.sdk.api_error(message, request, data.get("body"))

    def _replay_objects(self, response: dict[str, Any]) -> Any:
        body = response.get("body")
        sdk = self.sdk
        if self.streamed:
            chunk_type = self.chunk_type
            http = self._synthetic_response(200, b"", "text/event-stream", response.get("headers"))
            stream = _compat.sse_stream(self.stream_cls, chunk_type, http, self.client, self.options)
            if not isinstance(body, list | dict):
                raise self._format_error(f"the recorded stream is {json_kind(body)}, not a list of chunks")
            chunks = body if isinstance(body, list) else [body]
            due = self._pace_schedule(response)
            if isinstance(stream, sdk.streams[1]):
                iterator: Any = _decode.async_chunks(chunks, chunk_type, self._path)
                if due is not None:
                    iterator = _pace.apaced(iterator, due)
            else:
                iterator = _decode.decoded_chunks(chunks, chunk_type, self._path)
                if due is not None:
                    iterator = _pace.paced(iterator, due)
            _compat.set_stream_iterator(stream, iterator)
            return _compat.post_parse(sdk, self.options, stream)
        try:
            value = _compat.post_parse(sdk, self.options, _decode.decode_result(body, self.cast_to))
        except RecordingFormatError as exc:
            raise self._format_error(exc.problem) from None
        if isinstance(value, sdk.base_model):  # as the SDK does: None when the file has no headers
            _compat.set_response_ids(sdk, value, _compat.recorded_response_ids(sdk, response.get("headers")))
        return value

    def _pace_schedule(self, response: dict[str, Any]) -> list[float] | None:
        """When each chunk is due, when the recorder replays at a pace (``_pace``); else ``None``."""
        pace = self.tape.decision.recorder.pace if self.tape is not None else None
        return None if pace is None else _pace.schedule(response, pace, self._path)

    @property
    def _path(self) -> Any:
        found = self.tape.decision.found if self.tape is not None else None
        return found.path if found is not None else "<recording>"

    def _format_error(self, problem: str) -> RecordingFormatError:
        return RecordingFormatError(
            self._path, f"{problem} (request: {self.options.method.upper()} {self.options.url})"
        )

    def _raw_replay_args(self, response: dict[str, Any]) -> dict[str, Any]:
        body = response.get("body")
        headers = response.get("headers")
        binary = response.get("body_base64")
        if isinstance(binary, str):
            content_type = str(response.get("content_type") or "application/octet-stream")
            http = self._synthetic_response(200, base64.b64decode(binary), content_type, headers)
        elif self.streamed:
            end = self.sdk.stream_end
            content = b"".join(_rawtap.sse_event(self.sdk, _decode.raw_data(chunk)) for chunk in body or [])
            content += end + b"\n\n" if end is not None else b""
            http = self._synthetic_response(200, content, "text/event-stream", headers)
        else:
            http = self._synthetic_response(200, orjson.dumps(_decode.raw_body(body, self.cast_to)), recorded=headers)
        options = _compat.options_copy(self.options)
        cast_to = _compat.override_cast_to(self.client, self.cast_to, options)
        return {
            "cast_to": cast_to,
            "options": options,
            "response": http,
            "stream": self.streamed,
            "stream_cls": self.stream_cls if self.streamed else None,
        }

    def _synthetic_request(self) -> Any:
        # Method, URL and the call's own headers (the SDK reads its raw-response markers there),
        # not the full request: serialising the body again costs more than decoding a long stream.
        httpx = _compat.http_library(self.client)
        options, request = self.options, self.request
        url = request.url if request is not None else _compat.prepare_url(self.client, options.url)
        headers = {k: v for k, v in _compat.headers_of(self.sdk, options).items() if isinstance(v, str)}
        return httpx.Request(options.method.upper(), url, headers=headers)

    def _synthetic_response(
        self, status: int, content: bytes, content_type: str = "application/json", recorded: Any = None
    ) -> Any:
        """An HTTP response holding a recorded body, with the recorded headers (when the file has
        them, FORMAT.md's extension) so that ``_request_id`` and ``response.headers`` match."""
        httpx = _compat.http_library(self.client)
        headers = {"content-type": content_type}
        if isinstance(recorded, dict):
            headers.update(
                {
                    str(k): v
                    for k, v in recorded.items()
                    if isinstance(v, str) and str(k).lower() not in _NOT_REPLAYED_HEADERS
                }
            )
        headers["x-notebook-recorder"] = "replay"
        return httpx.Response(status, headers=headers, content=content, request=self._synthetic_request())


#: Recorded response headers a replayed response never carries: the body's own type is set from
#: the file, and the body is stored decoded and whole (no encoding to undo, its own length).
_NOT_REPLAYED_HEADERS = frozenset({"content-type", "content-encoding", "content-length", "transfer-encoding"})


class _Collected:
    """A live stream's chunks as they pass to the caller, each with its arrival offset."""

    def __init__(self, call: SdkCall) -> None:
        assert call.tape is not None
        self.call, self.tape = call, call.tape
        self.chunks: list[Any] = []
        self.offsets: list[float] = []
        self.complete = False
        self.ended = False

    def add(self, chunk: Any) -> Any:
        self.offsets.append(self.tape.elapsed_ms())
        self.chunks.append(chunk)
        return chunk

    def __enter__(self) -> _Collected:
        return self

    def __exit__(self, *exc: object) -> None:
        self.end()

    def end(self) -> None:
        """Save or log the stream, once (its end, or its response closed before it was read)."""
        if not self.ended:
            self.ended = True
            self.call.stream_ended(self)


async def _ready(value: Any) -> Any:
    return value


def _exception_response(sdk: StainlessSdk, exc: Any) -> dict[str, Any]:
    """FORMAT.md's exception form, plus the raw error text so replay rebuilds the exact message."""
    try:
        text: str | None = exc.response.text
    except Exception:  # a streamed error body that was never read
        text = None
    exception_data = {
        "category": "provider_sdk",
        "provider": sdk.package,
        "type": type(exc).__name__,
        "message": exc.message,
        "status_code": exc.status_code,
        "body": jsonable(exc.body),
    }
    if text is not None:
        exception_data["response_text"] = text
    return exception_response(exception_data, str(exc))
