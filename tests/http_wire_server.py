"""A real local HTTP server for the wire formats that no Stainless SDK speaks, on 127.0.0.1.

Every answer carries fresh ids and timestamps, so a replay that equals the recorded result was
served from the recording, not from this server. Routes:

``POST /v1beta/models/{model}:generateContent``
    Gemini's JSON ``GenerateContentResponse`` (candidates, finishReason, usageMetadata, responseId).
``POST /v1beta/models/{model}:streamGenerateContent?alt=sse``
    The same as SSE, one ``data:`` event per text piece, usage and finishReason on the last.
``POST /v2/chat``
    Cohere v2 chat: JSON, or with ``"stream": true`` its typed SSE events (``message-start``,
    ``content-start``, ``content-delta``..., ``content-end``, ``message-end``), each with an
    ``event:`` line.
``POST /api/chat``
    Ollama: NDJSON by default (``"stream"`` absent or true), one object per piece then a ``done``
    object; JSON with ``"stream": false``.
``POST .../chat/completions``
    OpenAI-compatible chat (any prefix: ``/v1``, ``/openai/v1``, ``/v1/openai/v1``): JSON, or SSE
    chunks and ``data: [DONE]`` (not under llama-stack's ``/v1/openai/v1``, as its server does);
    ``tools`` given gives a tool call.
``GET .../models``
    An OpenAI-style model list.
``GET /search?q=...``
    A plain JSON search API: hits for the query, a fresh ``request_id``.
``GET /robots.txt``
    Plain text, with a fresh id in it.
``GET /download``
    ``size`` bytes of ``application/octet-stream``.

``requests`` counts the requests served, so a test can tell that replay sent nothing.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

WORDS = ["Paris", " is", " the", " capital", " of", " France", "."]


def _fresh_id(prefix: str = "") -> str:
    return prefix + uuid.uuid4().hex[:24]


class HttpWireServer:
    """Serves the routes above on 127.0.0.1 in a thread; ``with HttpWireServer() as s: s.url``."""

    def __init__(self) -> None:
        self.requests = 0
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server._handle(self, b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                server._handle(self, self.rfile.read(length))

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        """Stop serving: a request after this fails to connect."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> HttpWireServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- dispatch -----------------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler, raw: bytes) -> None:
        self.requests += 1
        parts = urlsplit(h.path)
        query = dict(parse_qsl(parts.query))
        self.seen.append((h.command, h.path, {k.lower(): v for k, v in h.headers.items()}, raw))
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        path = parts.path
        if path.endswith(":generateContent"):
            return self._json(h, self._gemini(path, body, final=True, text="".join(WORDS)))
        if path.endswith(":streamGenerateContent"):
            events = [self._gemini(path, body, final=i == len(WORDS) - 1, text=w) for i, w in enumerate(WORDS)]
            return self._sse(h, [(None, e) for e in events], crlf=True)
        if path == "/v2/chat":
            return self._cohere(h, body)
        if path == "/api/chat":
            return self._ollama(h, body)
        if path.endswith("/chat/completions"):  # llama-stack's own server sends no [DONE]
            return self._openai_chat(h, body, done=not path.startswith("/v1/openai/"))
        if path.endswith("/models"):
            created = int(time.time())
            data = [
                {"id": m, "object": "model", "created": created, "owned_by": "wire"} for m in ("m-small", "m-large")
            ]
            return self._json(h, {"object": "list", "data": data})
        if path == "/search":
            hits = [{"title": f"{query.get('q', '')} result {i}", "score": 1.0 / (i + 1)} for i in range(3)]
            return self._json(h, {"request_id": _fresh_id(), "query": query.get("q"), "hits": hits})
        if path == "/robots.txt":
            return self._send(h, 200, "text/plain; charset=utf-8", f"User-agent: *\n# {_fresh_id()}\n".encode())
        if path == "/download":
            size = int(query.get("size", "1024"))
            return self._send(h, 200, "application/octet-stream", bytes(i % 251 for i in range(size)))
        return self._json(h, {"error": f"no route {h.command} {path}"}, status=404)

    # -- responses ----------------------------------------------------------------------------

    def _send(self, h: BaseHTTPRequestHandler, status: int, content_type: str, data: bytes) -> None:
        h.send_response(status)
        h.send_header("content-type", content_type)
        h.send_header("content-length", str(len(data)))
        h.send_header("x-request-id", _fresh_id("req_"))
        h.send_header("set-cookie", "session=wire-cookie-value-123456")
        h.end_headers()
        h.wfile.write(data)

    def _json(self, h: BaseHTTPRequestHandler, value: Any, status: int = 200) -> None:
        self._send(h, status, "application/json", json.dumps(value).encode())

    def _chunked(self, h: BaseHTTPRequestHandler, content_type: str, pieces: list[bytes]) -> None:
        h.send_response(200)
        h.send_header("content-type", content_type)
        h.send_header("transfer-encoding", "chunked")
        h.end_headers()
        for piece in pieces:
            h.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            h.wfile.flush()
        h.wfile.write(b"0\r\n\r\n")

    def _sse(
        self, h: BaseHTTPRequestHandler, events: list[tuple[str | None, Any]], done: bool = False, crlf: bool = False
    ) -> None:
        end = "\r\n" if crlf else "\n"  # Gemini ends its SSE lines with CRLF
        pieces = []
        for name, data in events:
            line = f"event: {name}{end}" if name else ""
            pieces.append(f"{line}data: {json.dumps(data)}{end}{end}".encode())
        if done:
            pieces.append(f"data: [DONE]{end}{end}".encode())
        self._chunked(h, "text/event-stream", pieces)

    # -- Gemini -------------------------------------------------------------------------------

    def _gemini(self, path: str, body: dict[str, Any], *, final: bool, text: str) -> dict[str, Any]:
        model = path.rsplit("/", 1)[-1].split(":", 1)[0]
        candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
        event: dict[str, Any] = {"candidates": [candidate], "modelVersion": model, "responseId": _fresh_id()}
        if final:
            candidate["finishReason"] = "STOP"
            event["usageMetadata"] = {"promptTokenCount": 9, "candidatesTokenCount": 7, "totalTokenCount": 16}
        return event

    # -- Cohere v2 ----------------------------------------------------------------------------

    def _cohere(self, h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        ident = _fresh_id()
        usage = {
            "billed_units": {"input_tokens": 9, "output_tokens": 7},
            "tokens": {"input_tokens": 9, "output_tokens": 7},
        }
        if not body.get("stream"):
            message = {"role": "assistant", "content": [{"type": "text", "text": "".join(WORDS)}]}
            return self._json(h, {"id": ident, "finish_reason": "COMPLETE", "message": message, "usage": usage})
        events: list[tuple[str | None, Any]] = [
            (
                "message-start",
                {
                    "id": ident,
                    "type": "message-start",
                    "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": []}},
                },
            ),
            (
                "content-start",
                {"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}},
            ),
        ]
        for word in WORDS:
            delta = {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": word}}}}
            events.append(("content-delta", delta))
        events.append(("content-end", {"type": "content-end", "index": 0}))
        events.append(("message-end", {"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": usage}}))
        self._sse(h, events)

    # -- Ollama -------------------------------------------------------------------------------

    def _ollama(self, h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        model = body.get("model", "")
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{time.time_ns() % 10**9:09d}Z"
        done = {
            "model": model,
            "created_at": stamp,
            "done": True,
            "done_reason": "stop",
            "total_duration": time.time_ns() % 10**9,
            "prompt_eval_count": 9,
            "eval_count": 7,
        }
        if body.get("stream") is False:
            message = {"role": "assistant", "content": "".join(WORDS)}
            return self._json(h, {**done, "message": message})
        pieces = [
            json.dumps(
                {"model": model, "created_at": stamp, "message": {"role": "assistant", "content": w}, "done": False}
            ).encode()
            + b"\n"
            for w in WORDS
        ]
        pieces.append(json.dumps({**done, "message": {"role": "assistant", "content": ""}}).encode() + b"\n")
        self._chunked(h, "application/x-ndjson", pieces)

    # -- OpenAI-compatible --------------------------------------------------------------------

    def _openai_chat(self, h: BaseHTTPRequestHandler, body: dict[str, Any], done: bool = True) -> None:
        ident, created, model = _fresh_id("chatcmpl-"), int(time.time()), body.get("model", "")
        usage = {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16}
        tool = None
        if body.get("tools"):
            name = body["tools"][0]["function"]["name"]
            tool = {"id": _fresh_id("call_"), "type": "function", "function": {"name": name, "arguments": '{"q": "x"}'}}
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": None if tool else "".join(WORDS)}
            if tool:
                message["tool_calls"] = [tool]
            choice = {"index": 0, "message": message, "finish_reason": "tool_calls" if tool else "stop"}
            return self._json(
                h,
                {
                    "id": ident,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [choice],
                    "usage": usage,
                },
            )

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [choice],
                **extra,
            }

        events: list[tuple[str | None, Any]] = [(None, chunk({"role": "assistant", "content": ""}))]
        if tool:
            events.append((None, chunk({"tool_calls": [{"index": 0, **tool}]})))
        else:
            events += [(None, chunk({"content": w})) for w in WORDS]
        events.append((None, chunk({}, "tool_calls" if tool else "stop", usage=usage)))
        self._sse(h, events, done=done)


def plain(value: Any) -> Any:
    """A client's result as plain data to compare: models dumped, the HTTP response headers that a
    client keeps on its result (google-genai's ``sdk_http_response``) left out."""
    import pydantic

    if isinstance(value, pydantic.BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if k != "sdk_http_response"}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return plain(vars(value))
    return value
