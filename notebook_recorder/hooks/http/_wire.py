"""HTTP messages as FORMAT.md's "HTTP-level recordings", and back: no HTTP library here.

- A **request** (method, URL, headers, body bytes) becomes the ``InferenceRequest`` that is keyed
  and written: the URL without credentials, the endpoint as the URL's path plus its sorted query
  (credential parameters removed), a JSON body as JSON (credential fields scrubbed, so ``ignore=``
  and ``normalize=`` paths work), a form body as a dict, a multipart body by its content (its
  random boundary left out), any other body as text or by content digest. Headers are never
  written; the credential values the request carried are collected to be masked.
- A **response** (status, headers, the body's pieces as they arrived) becomes FORMAT.md's
  ``response``: JSON as JSON, an SSE stream as its list of ``{"event", "data"}`` events, an
  NDJSON stream as its list of objects (each with its arrival offset), other bodies as text or
  base64, the status and the headers that carry no secret.
- :func:`replay_chunks` turns a recorded response back into the bytes the client would have
  received, one chunk per event for a stream, so the client parses them itself. llama-stack's raw
  HTTP recordings (SSE stored as its lines) replay the same way.
"""

from __future__ import annotations

import base64
import bisect
import functools
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from ...core._keys import InferenceRequest, canonical_endpoint, http_endpoint
from ...core._secrets import request_secrets, scrub, scrub_url

# Response headers written with a recording and replayed: ones that carry no secret.
KEPT_HEADERS = frozenset(
    {
        "content-type",
        "x-request-id",
        "request-id",
        "openai-version",
        "openai-model",
        "openai-processing-ms",
        "x-groq-id",
        "x-goog-request-id",
        "server-timing",
    }
)
KEPT_HEADER_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")

#: A request body larger than this is keyed by its digest, not written out.
MAX_WRITTEN_REQUEST_BODY = 64 * 1024
#: The default largest response body that is recorded (``[tool.notebook-recorder] http_max_body``).
DEFAULT_MAX_BODY = 10 * 1024 * 1024

_MODEL_IN_PATH = re.compile(r"/models/([^/:?]+)")
_BOUNDARY = re.compile(r"boundary=\"?([^\";,]+)\"?", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------------


def content_type_of(headers: Iterable[tuple[str, str]]) -> str:
    for name, value in headers:
        if name.lower() == "content-type":
            return value
    return ""


def request_body(content: bytes, content_type: str) -> Any:
    """A request body as it is keyed and written (see the module docstring)."""
    if not content:
        return {}
    kind = content_type.lower()
    if "json" in kind or (not kind and content[:1] in (b"{", b"[")):
        try:
            return scrub(orjson.loads(content))
        except orjson.JSONDecodeError:
            pass
    if "x-www-form-urlencoded" in kind:
        try:
            form: dict[str, Any] = {}
            for name, value in parse_qsl(content.decode(), keep_blank_values=True):
                form[name] = [*_listed(form[name]), value] if name in form else value
            return scrub(form)
        except UnicodeDecodeError:
            pass
    if "multipart/" in kind:
        boundary = _BOUNDARY.search(content_type)
        if boundary:
            content = content.replace(boundary.group(1).encode(), b"BOUNDARY")
        return _digest(content, content_type.split(";", 1)[0].strip())
    if len(content) <= MAX_WRITTEN_REQUEST_BODY:
        try:
            return content.decode()
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(content).decode(), "content_type": content_type}
    return _digest(content, content_type)


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _digest(content: bytes, content_type: str) -> dict[str, Any]:
    return {"content_type": content_type, "sha256": hashlib.sha256(content).hexdigest(), "size": len(content)}


def describe(
    method: str, url: str, headers: Sequence[tuple[str, str]], content: bytes, *, client: str = ""
) -> InferenceRequest:
    """The request as it is keyed and written (FORMAT.md, "HTTP-level recordings"); ``client``
    says who made it, for messages (neither keyed nor written)."""
    body = request_body(content, content_type_of(headers))
    model = body.get("model") if isinstance(body, dict) else None
    if not isinstance(model, str):
        found = _MODEL_IN_PATH.search(urlsplit(url).path)
        model = found.group(1) if found else ""
    return InferenceRequest(
        method=method.upper(),
        endpoint=canonical_endpoint(http_endpoint(url)),
        body=body,
        model=model,
        url=scrub_url(url),
        client=client,
    )


def secrets(url: str, headers: Sequence[tuple[str, str]], content: bytes) -> tuple[str, ...]:
    """The credential values the request carries: credential headers (``Authorization``,
    ``x-goog-api-key``...), credential query parameters, the URL's password and JSON body fields."""
    parts = urlsplit(url)
    body: Any = None
    if content[:1] in (b"{", b"["):
        try:
            body = orjson.loads(content)
        except orjson.JSONDecodeError:
            body = None
    return request_secrets(
        values=[parts.password] if parts.password else (),
        headers=list(headers),
        query=parse_qsl(parts.query, keep_blank_values=True),
        body=body,
    )


# ---------------------------------------------------------------------------------------------
# Responses: recorded
# ---------------------------------------------------------------------------------------------


def kept_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The response headers stored with a recording: none that may carry a secret."""
    return {
        name.lower(): value
        for name, value in headers
        if name.lower() in KEPT_HEADERS or name.lower().startswith(KEPT_HEADER_PREFIXES)
    }


def stream_kind(content_type: str) -> str | None:
    """``"sse"``, ``"ndjson"`` or ``None`` (a body read whole)."""
    kind = content_type.lower()
    if "text/event-stream" in kind:
        return "sse"
    if "ndjson" in kind or "jsonl" in kind or "json-seq" in kind:
        return "ndjson"
    return None


@dataclass
class Body:
    """A response body as it arrived: its pieces and each piece's arrival (ms from the request)."""

    pieces: list[bytes]
    offsets: list[float]

    @property
    def content(self) -> bytes:
        return b"".join(self.pieces)

    def offset_at(self, position: int) -> float:
        """When the byte at ``position`` (exclusive end) had arrived."""
        ends: list[int] = []
        total = 0
        for piece in self.pieces:
            total += len(piece)
            ends.append(total)
        index = min(bisect.bisect_left(ends, position), len(self.offsets) - 1)
        return self.offsets[index] if index >= 0 else 0.0


def _json_or_text(data: str) -> Any:
    if data[:1] in ("{", "[") or data[:1].isdigit() or data in ("true", "false", "null"):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return data


def parse_sse(content: bytes) -> list[tuple[dict[str, Any], int, str]]:
    """SSE events with the position just after each: ``{"event": name or None, "data": ...}``
    (``id`` too when the event has one). Comments and retry lines are dropped."""
    text = content.decode("utf-8", "replace")
    events: list[tuple[dict[str, Any], int, str]] = []
    event: str | None = None
    data: list[str] = []
    ident: str | None = None
    position = 0
    for line in text.splitlines(keepends=True):
        position += len(line.encode("utf-8", "replace"))
        stripped = line.rstrip("\r\n")
        if not stripped:
            if data or event is not None:
                item: dict[str, Any] = {"event": event, "data": _json_or_text("\n".join(data))}
                if ident is not None:
                    item["id"] = ident
                events.append((item, position, "\n".join(data)))
            event, data, ident = None, [], None
            continue
        if stripped.startswith(":"):
            continue
        name, _, value = stripped.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            ident = value
    if data or event is not None:
        item = {"event": event, "data": _json_or_text("\n".join(data))}
        if ident is not None:
            item["id"] = ident
        events.append((item, position, "\n".join(data)))
    return events


def parse_ndjson(content: bytes) -> list[tuple[Any, int, str]] | None:
    """The objects of an NDJSON body with the position after each, or ``None`` if a line is not JSON."""
    objects: list[tuple[Any, int, str]] = []
    position = 0
    for line in content.splitlines(keepends=True):
        position += len(line)
        if not line.strip():
            continue
        try:
            objects.append((orjson.loads(line), position, line.decode("utf-8", "replace").strip()))
        except orjson.JSONDecodeError:
            return None
    return objects


# The last event of a stream, by format: what a client may stop reading after.
TERMINAL_EVENTS = frozenset({"message_stop", "message-end", "response.completed", "done", "error"})


def looks_complete(headers: Iterable[tuple[str, str]], content: bytes) -> bool:
    """Whether a stream closed before its end of body had in fact sent its last event: SSE whose
    last event is ``data: [DONE]`` or a terminal event, NDJSON whose last object is ``done``."""
    kind = stream_kind(content_type_of(headers))
    if kind == "sse" and content.rstrip(b"\r\n") != content and content.endswith(b"\n"):
        events = parse_sse(content)
        if not events or not content.replace(b"\r\n", b"\n").endswith(b"\n\n"):
            return False
        last = events[-1][0]
        data = last.get("data")
        kind_name = last.get("event") or (data.get("type") if isinstance(data, dict) else None)
        return data == "[DONE]" or kind_name in TERMINAL_EVENTS
    if kind == "ndjson" and content.endswith(b"\n"):
        objects = parse_ndjson(content)
        final: Any = objects[-1][0] if objects else None
        return isinstance(final, dict) and final.get("done") is True
    return False


def encode_response(status: int, headers: Iterable[tuple[str, str]], body: Body, duration_ms: float) -> dict[str, Any]:
    """FORMAT.md's ``response`` for an HTTP response whose (decoded) body was read to the end."""
    headers = list(headers)
    kept = kept_headers(headers)
    content_type = content_type_of(headers)
    content = body.content
    kind = stream_kind(content_type)
    response: dict[str, Any] = {"status": status}
    items: list[tuple[Any, int, str]] | None = None
    if kind == "sse":
        items = list(parse_sse(content))
    elif kind == "ndjson":
        items = parse_ndjson(content)
    if items is not None:
        response["body"] = [item for item, _, _ in items]
        response["is_streaming"] = True
        response["chunk_offsets_ms"] = [body.offset_at(end) for _, end, _ in items]
        datas = [(item.get("data") if kind == "sse" else item, raw) for item, _, raw in items]
        if kind == "sse" and b"\r\n" in content and b"\n" not in content.replace(b"\r\n", b""):
            response["line_end"] = "\r\n"  # written back as the server wrote it
    else:
        response.update(_whole_body(content, content_type))
        response["is_streaming"] = False
        datas = [(response["body"], content.decode("utf-8", "replace"))] if "body_base64" not in response else []
    style = json_style(datas)
    if style != "compact":
        response["json_style"] = style
    if kept:
        response["headers"] = kept
    response["content_type"] = content_type
    response["duration_ms"] = duration_ms
    return response


JSON_STYLES: dict[str, Any] = {
    "compact": lambda value: orjson.dumps(value).decode(),
    "python": lambda value: json.dumps(value),
    "python-utf8": lambda value: json.dumps(value, ensure_ascii=False),
}
"""How a server wrote its JSON (``response.json_style``, absent for compact): replay writes it
back the same way, so ``response.text`` and raw stream lines match too, not only parsed values."""


def json_style(datas: list[tuple[Any, str]]) -> str:
    """The first of :data:`JSON_STYLES` that writes every parsed JSON value back as its raw text."""
    values = [(value, raw) for value, raw in datas if not isinstance(value, str)]
    for name, dump in JSON_STYLES.items():
        if all(dump(value) == raw for value, raw in values):
            return name
    return "compact"


def _whole_body(content: bytes, content_type: str) -> dict[str, Any]:
    """A body read whole: JSON as JSON, text as text, anything else (or JSON that does not
    parse) as base64, so that replay gives back the same bytes."""
    kind = content_type.lower()
    if not content:
        return {"body": ""}
    if "json" in kind or not kind:
        try:
            return {"body": orjson.loads(content)}
        except orjson.JSONDecodeError:
            pass
    if "json" not in kind and (_textual(kind) or not kind):
        try:
            return {"body": content.decode()}
        except UnicodeDecodeError:
            pass
    return {"body": None, "body_base64": base64.b64encode(content).decode()}


def _textual(kind: str) -> bool:
    return kind.startswith("text/") or "xml" in kind or "javascript" in kind or "urlencoded" in kind


# ---------------------------------------------------------------------------------------------
# Responses: replayed
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Replayed:
    """A recorded response as the client receives it: status, headers, the body in chunks.

    One is built per parsed recording and shared by every replay of it (``_exchange``): users
    copy ``headers`` before changing them, and ``chunks`` is a tuple."""

    status: int
    headers: dict[str, str]
    chunks: Sequence[bytes]
    streamed: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "chunks", tuple(self.chunks))

    @functools.cached_property
    def content(self) -> bytes:
        """The whole body, joined once (the libraries that hand the client one buffer)."""
        return b"".join(self.chunks)


def _sse_bytes(event: Any, dump: Any, end: bytes = b"\n") -> bytes:
    if not isinstance(event, dict):
        return b"data: " + _data_text(event, dump).encode() + end + end
    out = b""
    name = event.get("event")
    if isinstance(name, str):
        out += f"event: {name}".encode() + end
    if isinstance(event.get("id"), str):
        out += f"id: {event['id']}".encode() + end
    if "data" in event:
        for line in _data_text(event["data"], dump).split("\n"):
            out += b"data: " + line.encode() + end
    return out + end


def _compact_sse(body: list[Any]) -> list[bytes]:
    """:func:`_sse_bytes` for the usual stream (compact JSON, LF lines), in one tight loop: the
    hot path of an HTTP-level replay."""
    dumps = orjson.dumps
    chunks: list[bytes] = []
    add = chunks.append
    for event in body:
        if type(event) is dict and "data" in event and "id" not in event:
            data, name = event["data"], event.get("event")
            if type(data) is str:
                if "\n" in data:
                    add(_sse_bytes(event, JSON_STYLES["compact"]))
                    continue
                payload = data.encode()
            else:
                payload = dumps(data)
            add((b"event: " + name.encode() + b"\ndata: " if type(name) is str else b"data: ") + payload + b"\n\n")
        else:
            add(_sse_bytes(event, JSON_STYLES["compact"]))
    return chunks


def _data_text(data: Any, dump: Any) -> str:
    return data if isinstance(data, str) else str(dump(data))


def _sse_line_events(lines: list[Any]) -> list[bytes]:
    """llama-stack's SSE lines (``"event: x"``, ``"data: {...}"``, ``""``), one chunk per event."""
    chunks: list[bytes] = []
    current = b""
    for line in lines:
        current += str(line).encode() + b"\n"
        if line == "":
            chunks.append(current)
            current = b""
    if current:
        chunks.append(current + b"\n")
    return chunks


def replay_chunks(response: dict[str, Any]) -> Replayed:
    """The bytes a client receives for a recorded response (FORMAT.md, "HTTP-level recordings")."""
    status = response.get("status")
    status = status if type(status) is int and 100 <= status <= 999 else 200
    recorded = response.get("headers")
    headers = (
        {str(k).lower(): v for k, v in recorded.items() if isinstance(v, str)} if isinstance(recorded, dict) else {}
    )
    content_type = response.get("content_type")
    if isinstance(content_type, str) and content_type:
        headers["content-type"] = content_type
    body = response.get("body")
    binary = response.get("body_base64")
    dump = JSON_STYLES.get(str(response.get("json_style", "compact")), JSON_STYLES["compact"])
    if isinstance(binary, str):
        headers.setdefault("content-type", "application/octet-stream")
        return Replayed(status, headers, [base64.b64decode(binary)], False)
    kind = stream_kind(headers.get("content-type", ""))
    if response.get("is_streaming") and isinstance(body, list):
        if kind is None:
            kind = "sse" if all(isinstance(item, str) for item in body) or _all_events(body) else "ndjson"
            headers["content-type"] = "text/event-stream" if kind == "sse" else "application/x-ndjson"
        if kind == "sse":
            if all(isinstance(item, str) for item in body):
                return Replayed(status, headers, _sse_line_events(body), True)
            end = b"\r\n" if response.get("line_end") == "\r\n" else b"\n"
            if dump is JSON_STYLES["compact"] and end == b"\n":
                return Replayed(status, headers, _compact_sse(body), True)
            return Replayed(status, headers, [_sse_bytes(event, dump, end) for event in body], True)
        return Replayed(status, headers, [dump(item).encode() + b"\n" for item in body], True)
    if isinstance(body, str) and "json" not in headers.get("content-type", ""):
        return Replayed(status, headers, [body.encode()], False)
    headers.setdefault("content-type", "application/json")
    if isinstance(body, str) and not body and "json" in headers["content-type"]:
        return Replayed(status, headers, [b""], False)
    return Replayed(status, headers, [dump(body).encode()], False)


def _all_events(body: list[Any]) -> bool:
    return bool(body) and all(
        isinstance(item, dict) and "data" in item and set(item) <= {"event", "data", "id"} for item in body
    )
