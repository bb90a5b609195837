"""The anthropic hook, end to end: the real anthropic SDK over real HTTP to a tiny loopback server
that speaks Anthropic's wire format (JSON and the SSE event sequence), recorded, then replayed
with the server stopped. Sync, async and streams; errors come back as anthropic's own classes.

(A small server of its own, so that this file proves the hook; the full Anthropic-wire server
and its test suite live elsewhere.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import notebook_recorder as nr

anthropic = pytest.importorskip("anthropic", reason="the anthropic SDK is an optional extra")

KEY = "sk-ant-test-smoke-key-0123456789abcdef"
MODEL = "claude-sonnet-4-5"
HI = [{"role": "user", "content": "Say hello"}]
WORDS = ["Hello", ",", " world", "!"]
TOOLS = [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}]


def _message(content: list[dict[str, Any]], stop: str = "end_turn") -> dict[str, Any]:
    return {
        "id": "msg_smoke_1",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 9, "output_tokens": len(WORDS)},
    }


def _events(tools: bool) -> list[tuple[str, dict[str, Any]]]:
    start = {"type": "message_start", "message": {**_message([]), "stop_reason": None}}
    if tools:
        block = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
        deltas = [{"type": "input_json_delta", "partial_json": part} for part in ('{"city": ', '"Paris"}')]
        stop = "tool_use"
    else:
        block = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": word} for word in WORDS]
        stop = "end_turn"
    events = [
        ("message_start", start),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}),
    ]
    events += [("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": d}) for d in deltas]
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": 4},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, payload: Any, content_type: str = "application/json") -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("request-id", "req_smoke_1")
        self.send_header("x-should-retry", "false")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.server.keys.append(_key(self.headers))
        if self.path.startswith("/v1/models"):
            model = {"type": "model", "id": MODEL, "display_name": "Sonnet", "created_at": "2025-09-29T00:00:00Z"}
            self._send(200, {"data": [model], "has_more": False, "first_id": MODEL, "last_id": MODEL})
        else:
            self._send(404, {"type": "error", "error": {"type": "not_found_error", "message": "no such path"}})

    def do_POST(self) -> None:
        self.server.keys.append(_key(self.headers))
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        if self.path == "/v1/messages/count_tokens":
            self._send(200, {"input_tokens": 9})
        elif body.get("model") == "bad-model":
            error = {"type": "invalid_request_error", "message": "model: bad-model"}
            self._send(400, {"type": "error", "error": error})
        elif body.get("stream"):
            sse = b"".join(
                f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in _events("tools" in body)
            )
            self._send(200, sse, "text/event-stream")
        elif "tools" in body:
            self._send(
                200,
                _message(
                    [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}],
                    "tool_use",
                ),
            )
        else:
            self._send(200, _message([{"type": "text", "text": "".join(WORDS)}]))


def _key(headers: Any) -> str | None:
    """The API key a request carried: ``X-Api-Key``, or a bearer ``Authorization`` (the SDK's 2.x)."""
    bearer = headers.get("authorization") or ""
    return headers.get("x-api-key") or (bearer.removeprefix("Bearer ") if bearer else None)


class _Server(ThreadingHTTPServer):
    keys: list[str | None]


@pytest.fixture
def server() -> Iterator[_Server]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.keys = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _url(httpd: _Server) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}"


def _sync_calls(client: Any) -> dict[str, Any]:
    """What a notebook does with the sync client; each result as comparable data."""
    out: dict[str, Any] = {}
    message = client.messages.create(model=MODEL, max_tokens=64, messages=HI)
    out["create"] = (type(message).__name__, message.content[0].text, message._request_id)
    out["events"] = [e.type for e in client.messages.create(model=MODEL, max_tokens=64, messages=HI, stream=True)]
    with client.messages.stream(model=MODEL, max_tokens=64, messages=HI) as stream:
        out["text_stream"] = list(stream.text_stream)
        out["final"] = stream.get_final_message().model_dump()
    with client.messages.stream(model=MODEL, max_tokens=64, messages=HI, tools=TOOLS) as stream:
        out["tool_input"] = stream.get_final_message().content[0].input
    tool = client.messages.create(model=MODEL, max_tokens=64, messages=HI, tools=TOOLS)
    out["tool_use"] = (tool.stop_reason, tool.content[0].name, tool.content[0].input)
    out["tokens"] = client.messages.count_tokens(model=MODEL, messages=HI).input_tokens
    out["models"] = [m.id for m in client.models.list()]
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=HI)
    out["raw"] = (raw.headers.get("request-id"), raw.parse().content[0].text)
    with pytest.raises(anthropic.BadRequestError) as error:
        client.messages.create(model="bad-model", max_tokens=64, messages=HI)
    out["error"] = (error.value.status_code, error.value.body)
    return out


async def _async_calls(client: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    message = await client.messages.create(model=MODEL, max_tokens=64, messages=HI)
    out["create"] = message.content[0].text
    stream = await client.messages.create(model=MODEL, max_tokens=64, messages=HI, stream=True)
    out["events"] = [event.type async for event in stream]
    async with client.messages.stream(model=MODEL, max_tokens=64, messages=HI) as helper:
        out["text_stream"] = [text async for text in helper.text_stream]
        out["final"] = (await helper.get_final_message()).model_dump()
    with pytest.raises(anthropic.BadRequestError):
        await client.messages.create(model="bad-model", max_tokens=64, messages=HI)
    return out


def _files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.json"))


def test_sync_calls_record_then_replay_with_the_server_stopped(server: _Server, tmp_path: Path) -> None:
    with nr.recording("record", dir=tmp_path):
        live = _sync_calls(anthropic.Anthropic(base_url=_url(server), api_key=KEY, max_retries=0))
    assert server.keys and set(server.keys) == {KEY}
    assert live["text_stream"] == WORDS and live["tool_input"] == {"city": "Paris"} and live["models"] == [MODEL]
    files = _files(tmp_path)
    assert len(files) == 9  # one a call; a repeated request is its next occurrence
    for path in files:
        text = path.read_text()
        assert KEY not in text and "x-api-key" not in text.lower() and "authorization" not in text.lower()
    endpoints = {json.loads(p.read_text())["request"]["endpoint"] for p in files}
    assert endpoints == {"/v1/messages", "/v1/messages/count_tokens", "/v1/models"}
    bodies = [json.loads(p.read_text())["response"]["body"] for p in files]
    types = {item.get("__type__") for body in bodies for item in (body if isinstance(body, list) else [body]) if item}
    assert {"anthropic.types.message.Message", "anthropic.types.raw_message_start_event.RawMessageStartEvent"} <= types

    server.shutdown()
    server.server_close()
    server.keys.clear()
    with nr.recording("replay", dir=tmp_path):
        replayed = _sync_calls(anthropic.Anthropic(base_url=_url(server), api_key=None, max_retries=0))
    assert replayed == live
    assert server.keys == []
    assert [c.outcome for c in nr.calls()[-9:]] == ["replayed"] * 9


async def test_async_calls_record_then_replay(server: _Server, tmp_path: Path) -> None:
    with nr.recording("record", dir=tmp_path):
        live = await _async_calls(anthropic.AsyncAnthropic(base_url=_url(server), api_key=KEY, max_retries=0))
    assert live["text_stream"] == WORDS
    assert live["events"][0] == "message_start" and live["events"][-1] == "message_stop"
    server.shutdown()
    server.server_close()
    with nr.recording("replay", dir=tmp_path):
        replayed = await _async_calls(anthropic.AsyncAnthropic(base_url=_url(server), max_retries=0))
    assert replayed == live


def test_a_missing_recording_in_replay_names_the_request(tmp_path: Path) -> None:
    with nr.recording("replay", dir=tmp_path), pytest.raises(nr.RecordingNotFoundError, match="/v1/messages"):
        anthropic.Anthropic(base_url="http://127.0.0.1:9", max_retries=0).messages.create(
            model=MODEL, max_tokens=64, messages=HI
        )


def test_no_key_in_record_if_missing_is_a_missing_recording_not_a_request(server: _Server, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    code = (
        "import anthropic, notebook_recorder as nr\n"
        f"with nr.recording('record-if-missing', dir={str(tmp_path)!r}):\n"
        "    try:\n"
        f"        anthropic.Anthropic(base_url={_url(server)!r}, max_retries=0).messages.create("
        f"model={MODEL!r}, max_tokens=8, messages={HI!r})\n"
        "    except nr.RecordingNotFoundError as exc:\n"
        "        print('missing:', 'ANTHROPIC_API_KEY' in str(exc))\n"
    )
    result = _python(code, env)
    assert result.stdout.strip() == "missing: True"
    assert server.keys == []


def test_anthropic_imported_after_recording_started_is_hooked_too(server: _Server, tmp_path: Path) -> None:
    with nr.recording("record", dir=tmp_path):
        anthropic.Anthropic(base_url=_url(server), api_key=KEY, max_retries=0).messages.create(
            model=MODEL, max_tokens=64, messages=HI
        )
    server.shutdown()
    server.server_close()
    code = (
        "import sys, notebook_recorder as nr\n"
        f"nr.start('replay', dir={str(tmp_path)!r})\n"
        "print('loaded before import:', 'anthropic' in sys.modules)\n"
        "import anthropic\n"
        f"m = anthropic.Anthropic(base_url={_url(server)!r}, max_retries=0).messages.create("
        f"model={MODEL!r}, max_tokens=64, messages={HI!r})\n"
        "print(m.content[0].text, nr.calls()[-1].outcome)\n"
    )
    lines = _python(code, dict(os.environ)).stdout.splitlines()
    assert lines == ["loaded before import: False", f"{''.join(WORDS)} replayed"]


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result
