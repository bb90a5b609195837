"""A loopback stand-in for the Prism mock server that the SDKs' generated resource tests talk to.

The SDKs' generated resource tests send each call to ``TEST_API_BASE_URL`` (Prism, serving
examples from OpenAPI, on ``127.0.0.1:4010`` by default) and check only that the answer parses as
the declared type, strictly and loosely. This server answers the routes that ``run.py`` selects
with minimal valid objects, so the tests exercise the SDK (and our hook) over real HTTP:

openai (``tests/api_resources/chat``):

* ``POST /chat/completions``: a ``ChatCompletion``, or an SSE stream of chunks when ``stream`` is true
* ``GET /chat/completions``: a page of completions; ``GET|POST|DELETE /chat/completions/{id}``
* ``GET /chat/completions/{id}/messages``: a page of stored messages

anthropic (``tests/api_resources/test_messages.py`` and ``test_models.py``):

* ``POST /v1/messages``: a ``Message``, or its SSE events (``event:`` lines) when ``stream`` is true
* ``POST /v1/messages/count_tokens``: a token count
* ``GET /v1/models``: a page of ``ModelInfo``; ``GET /v1/models/{id}``: one

Every answer carries a fresh ``id`` and the current time, as a real server's do.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

_ids = itertools.count(1)


def _completion(model: str = "gpt-4o") -> dict[str, Any]:
    return {
        "id": f"chatcmpl-standin{next(_ids)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "logprobs": None,
                "message": {"role": "assistant", "content": "string", "refusal": None},
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def _page(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "list", "data": items, "first_id": items[0]["id"], "last_id": items[-1]["id"], "has_more": False}


def _chunks(model: str) -> list[dict[str, Any]]:
    base = {"id": f"chatcmpl-standin{next(_ids)}", "object": "chat.completion.chunk", "created": int(time.time())}
    deltas = [({"role": "assistant", "content": ""}, None), ({"content": "string"}, None), ({}, "stop")]
    return [
        {**base, "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
        for delta, finish in deltas
    ]


def _message(model: str) -> dict[str, Any]:
    return {
        "id": f"msg_standin{next(_ids)}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": "string"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }


def _message_events(model: str) -> bytes:
    start = {**_message(model), "content": [], "stop_reason": None}
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "string"}},
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 1},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events)


def _model_info(model_id: str = "claude-opus-5-5") -> dict[str, Any]:
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"type": "model", "id": model_id, "display_name": model_id, "created_at": created, "lifecycle": "active"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-request-id", f"req_standin{next(_ids)}")
        self.send_header("request-id", f"req_standin{next(_ids)}")
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, model: str, data: bytes | None = None) -> None:
        if data is None:
            data = b"".join(f"data: {json.dumps(chunk)}\n\n".encode() for chunk in _chunks(model)) + b"data: [DONE]\n\n"
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self, method: str) -> None:
        parts = [p for p in urlsplit(self.path).path.split("/") if p]
        if parts and parts[0] == "v1":
            parts = parts[1:]
        body = self._body() if method == "POST" else {}
        if parts[:1] in (["messages"], ["models"]):
            self._anthropic(method, parts, body)
        elif parts[:2] != ["chat", "completions"]:
            self._send(404, {"error": {"message": f"stand-in has no route {method} {self.path}", "type": "not_found"}})
        elif len(parts) == 2 and method == "POST":
            model = str(body.get("model") or "gpt-4o")
            self._stream(model) if body.get("stream") else self._send(200, _completion(model))
        elif len(parts) == 2 and method == "GET":
            self._send(200, _page([_completion()]))
        elif len(parts) == 3 and method in ("GET", "POST"):
            self._send(200, {**_completion(), "id": parts[2]})
        elif len(parts) == 3 and method == "DELETE":
            self._send(200, {"id": parts[2], "object": "chat.completion.deleted", "deleted": True})
        elif len(parts) == 4 and parts[3] == "messages" and method == "GET":
            message = {"id": f"msg-standin{next(_ids)}", "role": "assistant", "content": "string", "refusal": None}
            self._send(200, _page([message]))
        else:
            self._send(404, {"error": {"message": f"stand-in has no route {method} {self.path}", "type": "not_found"}})

    def _anthropic(self, method: str, parts: list[str], body: dict[str, Any]) -> None:
        model = str(body.get("model") or "claude-opus-5-5")
        if parts == ["messages"] and method == "POST":
            self._stream(model, _message_events(model)) if body.get("stream") else self._send(200, _message(model))
        elif parts == ["messages", "count_tokens"] and method == "POST":
            self._send(200, {"input_tokens": 1})
        elif parts == ["models"] and method == "GET":
            info = _model_info()
            self._send(200, {"data": [info], "first_id": info["id"], "last_id": info["id"], "has_more": False})
        elif len(parts) == 2 and parts[0] == "models" and method == "GET":
            self._send(200, _model_info(parts[1]))
        else:
            self._send(
                404,
                {
                    "type": "error",
                    "error": {"type": "not_found_error", "message": f"stand-in has no route {method} {self.path}"},
                },
            )

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up early (tests close streams unread) is not an error here


class PrismStandIn:
    """``with PrismStandIn() as server: server.base_url`` (``http://127.0.0.1:PORT``, a free port)."""

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> PrismStandIn:
        self._thread.start()
        return self

    def __exit__(self, exc: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
