"""What ``notebook-recorder serve`` reads from and writes to the wire, and to recordings.

The server (``_serve``) sees HTTP requests, not SDK calls. This module turns one into the same
:class:`~notebook_recorder._keys.InferenceRequest` the SDK hook describes (``interceptors._describe``),
so its key, its file and its occurrences are the ones an in-process call of the same request
gets; and it turns the upstream's answer into the same recorded ``response`` the hook writes
(``interceptors._call``): a JSON body parsed by the SDK's own client into the SDK's own class
and encoded as ``__type__``, a stream parsed by the SDK's own stream class, an error built by the
SDK's own error factory. The other way round, a recorded response becomes the bytes the API
sent: JSON, SSE events (``_rawtap.sse_event``), or the error status and body.

Which class a path returns is the table below (:data:`OPENAI_ROUTES`, :data:`ANTHROPIC_ROUTES`);
a path that is not in it is recorded as the raw JSON it returned, which the SDK hook replays too.
Nothing here does I/O.
"""

from __future__ import annotations

import base64
import functools
import importlib
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson

from ...core._codec import encode
from ...core._keys import InferenceRequest, canonical_endpoint
from ...core._recorder import exception_response
from ...core._secrets import request_secrets, scrub, scrub_url
from ...hooks.sdk import _compat, _decode, _rawtap
from ...hooks.sdk._compat import StainlessSdk

__all__ = [
    "SESSION_HEADER",
    "Api",
    "api_for",
    "describe",
    "envelope",
]

SESSION_HEADER = "x-apirec-session"
"""The request header naming a client session: occurrences are counted per session."""


@dataclass(frozen=True)
class Route:
    """The SDK classes one API path returns: its JSON body, and each chunk of its stream."""

    body: str
    chunk: str | None = None
    page: bool = False  # a simple page (openai's ``models.list()``), stored as its items


# The SDK class (``module:name``) each path returns, as the SDK's resource methods declare it.
OPENAI_ROUTES: dict[tuple[str, str], Route] = {
    ("POST", "/v1/chat/completions"): Route(
        "openai.types.chat:ChatCompletion", "openai.types.chat:ChatCompletionChunk"
    ),
    ("POST", "/v1/completions"): Route("openai.types:Completion", "openai.types:Completion"),
    ("POST", "/v1/embeddings"): Route("openai.types:CreateEmbeddingResponse"),
    ("POST", "/v1/moderations"): Route("openai.types:ModerationCreateResponse"),
    ("POST", "/v1/responses"): Route("openai.types.responses:Response", "openai.types.responses:ResponseStreamEvent"),
    ("GET", "/v1/models"): Route("openai.types:Model", page=True),
    ("GET", "/v1/models/*"): Route("openai.types:Model"),
}
ANTHROPIC_ROUTES: dict[tuple[str, str], Route] = {
    ("POST", "/v1/messages"): Route("anthropic.types:Message", "anthropic.types:RawMessageStreamEvent"),
    ("POST", "/v1/messages/count_tokens"): Route("anthropic.types:MessageTokensCount"),
}


@dataclass(frozen=True)
class Api:
    """One provider's wire conventions: its SDK, where it lives, how its errors look."""

    name: str
    sdk: StainlessSdk
    upstream: str
    routes: Mapping[tuple[str, str], Route]

    @functools.cached_property
    def available(self) -> bool:
        """Whether the SDK is importable (its classes encode bodies; otherwise raw JSON is kept)."""
        try:
            self.sdk.root  # noqa: B018
        except ImportError:
            return False
        return True

    @functools.cached_property
    def client(self) -> Any:
        """An SDK client that never sends anything: its response parsing is what the hook uses."""
        kwargs: dict[str, Any] = {"api_key": "unused-by-notebook-recorder-serve", "base_url": "http://127.0.0.1:9"}
        if self.name == "openai":
            return self.sdk.root.OpenAI(**kwargs)
        return self.sdk.root.Anthropic(**kwargs)

    @property
    def httpx(self) -> Any:
        return _compat.http_library(self.client)

    def route(self, method: str, endpoint: str) -> Route | None:
        found = self.routes.get((method, endpoint))
        if found is None:
            parent, _, _ = endpoint.rpartition("/")
            found = self.routes.get((method, parent + "/*"))
        return found

    def sdk_class(self, dotted: str | None) -> Any:
        if dotted is None or not self.available:
            return None
        module, _, name = dotted.partition(":")
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):  # an SDK release without this class
            return None

    # -- errors in the API's own envelope --------------------------------------------------

    def error_body(self, status: int, message: str, kind: str | None = None) -> bytes:
        """An error the server itself answers (no recording, body too large...), as the API writes
        its errors, so that every client shows the message."""
        if self.name == "anthropic":
            kind = kind or {404: "not_found_error", 413: "request_too_large"}.get(status, "api_error")
            return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})
        code = {404: "recording_not_found", 413: "request_too_large"}.get(status)
        kind = kind or ("invalid_request_error" if status < 500 else "api_error")
        return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


def _openai() -> Api:
    from ...hooks.sdk.openai_sdk import OPENAI

    return Api("openai", OPENAI, "https://api.openai.com", OPENAI_ROUTES)


def _anthropic() -> Api:
    from ...hooks.sdk.anthropic_sdk import ANTHROPIC

    return Api("anthropic", ANTHROPIC, "https://api.anthropic.com", ANTHROPIC_ROUTES)


@functools.cache
def _apis() -> tuple[Api, Api]:
    return _openai(), _anthropic()


def api_for(path: str, headers: Mapping[str, str]) -> Api:
    """Which API a request is for: anthropic's when its client says so (``anthropic-version``,
    ``x-api-key``) or the path is anthropic's own (``/v1/messages``); openai's otherwise."""
    openai_api, anthropic_api = _apis()
    if "anthropic-version" in headers or "x-api-key" in headers or path.startswith(("/v1/messages", "/v1/complete")):
        return anthropic_api
    return openai_api


def endpoint_of(path: str) -> str:
    """The canonical endpoint of a request path: what the SDK hook keys (``/v1/`` + the SDK's
    path), also for a client whose base URL has no ``/v1``."""
    path = "/" + path.lstrip("/")
    if not path.startswith(("/v1/", "/api/")) and path != "/v1":
        path = "/v1" + path
    return canonical_endpoint(path)


def upstream_url(upstream: str, endpoint: str, query: str) -> str:
    """Where a request goes: the upstream's base URL and the request's path (``/v1`` not doubled)."""
    base = upstream.rstrip("/")
    path = endpoint[3:] if base.endswith("/v1") and endpoint.startswith("/v1/") else endpoint
    return base + path + (f"?{query}" if query else "")


def request_body(raw: bytes, content_type: str) -> Any:
    """A request body as the hook describes it: its JSON; another body as text, or base64."""
    if not raw:
        return None
    if "json" in content_type or not content_type:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(raw).decode("ascii"), "content_type": content_type}


def describe(method: str, path: str, query: str, raw: bytes, content_type: str, url: str) -> InferenceRequest:
    """The request as the SDK hook describes the same call: method, canonical endpoint, the JSON
    body (a ``GET``'s query) with credential-named fields scrubbed, model, the URL without
    credentials."""
    body = request_body(raw, content_type)
    if body is None:
        body = dict(parse_qsl(query, keep_blank_values=True)) if method == "GET" and query else {}
    body = scrub(body)
    model = body.get("model") if isinstance(body, dict) else None
    return InferenceRequest(
        method=method,
        endpoint=endpoint_of(path),
        body=body,
        model=model if isinstance(model, str) else "",
        url=scrub_url(url),
    )


def secrets(headers: Sequence[tuple[str, str]], query: str, body: Any) -> tuple[str, ...]:
    """The credential values a request carries (headers, query, body): masked in what is saved."""
    return request_secrets(headers=list(headers), query=parse_qsl(query, keep_blank_values=True), body=[body])


# ---------------------------------------------------------------------------------------------
# The upstream's answer -> a recorded response (what the SDK hook writes for the same call)
# ---------------------------------------------------------------------------------------------


def kept_headers(api: Api, headers: Mapping[str, str]) -> dict[str, str]:
    """The response headers a recording keeps (the SDK's safe list): never cookies or keys."""
    return _rawtap.kept_headers(api.sdk, _Headers(headers))


def json_response(api: Api, method: str, endpoint: str, content: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """A non-streamed answer as the hook records it: the JSON built into the SDK's class and
    encoded (``__type__``), raw JSON for a path the table does not know, bytes otherwise."""
    kept = kept_headers(api, headers)
    response: dict[str, Any]
    data: Any = _NOT_JSON
    if _rawtap.is_json(_Headers(headers)):
        try:
            data = orjson.loads(content)
        except orjson.JSONDecodeError:
            data = _NOT_JSON
    if data is _NOT_JSON:
        response = {
            "body": None,
            "is_streaming": False,
            "body_base64": base64.b64encode(content).decode("ascii"),
            "content_type": headers.get("content-type", "application/octet-stream"),
        }
    else:
        response = {"body": typed_body(api, method, endpoint, data), "is_streaming": False}
    return {**response, "headers": kept} if kept else response


_NOT_JSON = object()


class _Headers:
    def __init__(self, headers: Mapping[str, str]) -> None:
        self.headers = headers


def typed_body(api: Api, method: str, endpoint: str, data: Any) -> Any:
    """JSON as the SDK's object, encoded as the hook encodes it (raw JSON when there is none)."""
    route = api.route(method, endpoint)
    cls = api.sdk_class(route.body) if route is not None else None
    if cls is None or route is None:
        return data
    try:
        if route.page:
            items = data.get("data") if isinstance(data, dict) else None
            if not isinstance(items, list):
                return data
            return [encode(_compat.process_response_data(api.client, item, cls, None)) for item in items]
        return _decode.encode_body(api.sdk, _compat.process_response_data(api.client, data, cls, None))
    except Exception:  # data the SDK cannot build: kept as it came, as the hook keeps it
        return data


def stream_response(
    api: Api,
    method: str,
    endpoint: str,
    pieces: Sequence[tuple[float, bytes]],
    started: float,
    headers: Mapping[str, str],
) -> dict[str, Any]:
    """A streamed answer read to its end, as the hook records it: the SSE bytes parsed by the
    SDK's own stream class into its chunk type (each chunk with the arrival of the bytes that
    completed it). Raises what the SDK's stream raises (an ``error`` event): not saved then."""
    route = api.route(method, endpoint)
    chunk_type = api.sdk_class(route.chunk if route is not None else None)
    chunks: list[Any] = []
    offsets: list[float] = []
    for when, chunk in _parsed_events(api, chunk_type, pieces):
        chunks.append(encode(chunk))
        offsets.append(round((when - started) * 1000, 3))
    response: dict[str, Any] = {
        "body": chunks,
        "is_streaming": True,
        "chunk_offsets_ms": offsets,
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
    }
    kept = kept_headers(api, headers)
    return {**response, "headers": kept} if kept else response


def _parsed_events(api: Api, chunk_type: Any, pieces: Sequence[tuple[float, bytes]]) -> Iterator[tuple[float, Any]]:
    if not api.available:
        yield from _plain_events(pieces)
        return
    httpx = api.httpx
    arrived = [0.0]

    class _Replayed(httpx.SyncByteStream):  # type: ignore[misc,name-defined]
        def __iter__(self) -> Iterator[bytes]:
            for when, data in pieces:
                arrived[0] = when
                yield data

    request = httpx.Request("POST", "http://127.0.0.1:9/")
    http = httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=_Replayed(), request=request)
    stream = _compat.sse_stream(api.sdk.streams[0], chunk_type or object, http, api.client, None)
    for chunk in stream:
        yield arrived[0], chunk


def _plain_events(pieces: Sequence[tuple[float, bytes]]) -> Iterator[tuple[float, Any]]:
    """SSE events' JSON data without an SDK to parse them (``[DONE]`` and pings left out)."""
    buffer = b""
    for when, data in pieces:
        buffer += data.replace(b"\r\n", b"\n")
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
            lines = block.split(b"\n")
            event = next((line[6:].strip() for line in lines if line.startswith(b"event:")), b"")
            payload = b"\n".join(line[5:].lstrip() for line in lines if line.startswith(b"data:"))
            if not payload or payload.startswith(b"[DONE]") or event == b"ping":
                continue
            yield when, orjson.loads(payload)


def error_response(api: Api, method: str, url: str, status: int, content: bytes, headers: Mapping[str, str]) -> Any:
    """An error answer as the hook records it: the SDK's own error (from its one factory),
    described in FORMAT.md's exception form."""
    text = content.decode("utf-8", "replace")
    if api.available:
        from ...hooks.sdk._call import _exception_response

        httpx = api.httpx
        request = httpx.Request(method, url)
        kept = {k: v for k, v in headers.items() if k.lower() in ("content-type", api.sdk.request_id_header)}
        http = httpx.Response(status, headers=kept, content=content, request=request)
        return _exception_response(api.sdk, _compat.status_error(api.client, http))
    try:
        body: Any = orjson.loads(content)
    except orjson.JSONDecodeError:
        body = text or None
    data = {
        "category": "provider_sdk",
        "provider": api.name,
        "type": "APIStatusError",
        "message": f"Error code: {status} - {body}",
        "status_code": status,
        "body": body,
        "response_text": text,
    }
    return exception_response(data, data["message"])


# ---------------------------------------------------------------------------------------------
# A recorded response -> what goes back on the wire
# ---------------------------------------------------------------------------------------------


@dataclass
class Answer:
    """A replayed answer: status, headers, and the body (bytes) or the SSE events (bytes each)."""

    status: int
    headers: dict[str, str]
    content: bytes = b""
    events: list[bytes] | None = None


def recorded_headers(response: Mapping[str, Any]) -> dict[str, str]:
    headers = response.get("headers")
    if not isinstance(headers, dict):
        return {}
    skip = ("content-type", "content-length", "content-encoding", "transfer-encoding", "connection")
    return {str(k): v for k, v in headers.items() if isinstance(v, str) and str(k).lower() not in skip}


def answer(api: Api, response: Mapping[str, Any]) -> Answer:
    """The bytes the API sent for a recorded response (a recording made in process, or here)."""
    headers = {**recorded_headers(response), "x-notebook-recorder": "replay"}
    if response.get("is_exception"):
        return _error_answer(api, response, headers)
    binary = response.get("body_base64")
    body = response.get("body")
    if isinstance(binary, str):
        headers["content-type"] = str(response.get("content_type") or "application/octet-stream")
        return Answer(200, headers, base64.b64decode(binary))
    if response.get("is_streaming"):
        chunks = body if isinstance(body, list) else [body]
        events = [_rawtap.sse_event(api.sdk, _decode.raw_data(chunk)) for chunk in chunks]
        if api.sdk.stream_end is not None:
            events.append(api.sdk.stream_end + b"\n\n")
        headers["content-type"] = "text/event-stream; charset=utf-8"
        headers["cache-control"] = "no-cache"
        return Answer(200, headers, events=events)
    if isinstance(body, list) and api.name == "openai":  # a page stored as its items
        data: Any = {"object": "list", "data": _decode.raw_data(body)}
    else:
        data = _decode.raw_data(body)
    headers["content-type"] = "application/json"
    return Answer(200, headers, orjson.dumps(data))


def _error_answer(api: Api, response: Mapping[str, Any], headers: dict[str, str]) -> Answer:
    data = response.get("exception_data") or {}
    status = data.get("status_code") if isinstance(data, dict) else None
    headers["content-type"] = "application/json"
    headers["x-should-retry"] = "false"
    if not isinstance(status, int) or not 400 <= status <= 599:
        message = str(data.get("message") or response.get("exception_message") or "recorded error")
        return Answer(502, headers, api.error_body(502, f"recorded connection error: {message}", "api_error"))
    text = data.get("response_text")
    if isinstance(text, str):
        return Answer(status, headers, text.encode())
    body = data.get("body")
    if api.name == "openai":
        return Answer(status, headers, orjson.dumps({"error": body} if isinstance(body, dict) else body))
    return Answer(status, headers, orjson.dumps(body))


def envelope(api: Api, status: int, message: str, kind: str | None = None) -> Answer:
    """An error of the server's own, in the API's error envelope; clients do not retry it."""
    headers = {"content-type": "application/json", "x-should-retry": "false", "x-notebook-recorder": "error"}
    return Answer(status, headers, api.error_body(status, message, kind))
