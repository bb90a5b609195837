"""``notebook-recorder serve`` / ``nr.serve()``: the recording endpoint for clients that are not
Python in this process.

Real clients over real HTTP: the official ``openai`` npm package run with Node, ``curl``, and a
Python subprocess with nothing but the standard library record through the server against the
loopback wire servers (``wire_server.py``, ``anthropic_wire_server.py``), then replay with the
wire server stopped. Files written through the server are the files the in-process hook writes
for the same request (same names, same bodies), and each replays through the other.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest
from anthropic_wire_server import TEST_API_KEY as ANTHROPIC_TEST_KEY, AnthropicWireServer
from wire_server import TEST_API_KEY, WireServer

import notebook_recorder as nr
from notebook_recorder.frontends.serve._server import bind

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = Path(__file__).parent / "serve_clients"
NODE_MODULES = ROOT / ".cache" / "npm" / "node_modules"
NODE_OPENAI = "6.30.1"  # the newest openai npm release that runs on Node 20 (7.x needs Node 22)
CANARY = "sk-test-wire-urllib-canary-0123456789"
QUESTION = "What is the latest version of Python?"
BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": QUESTION}]}


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def node_openai() -> Path:
    """The official openai npm package, installed under .cache/npm (``make`` does it first)."""
    if not (NODE_MODULES / "openai" / "package.json").exists():
        target = NODE_MODULES.parent
        target.mkdir(parents=True, exist_ok=True)
        if not (target / "package.json").exists():
            (target / "package.json").write_text('{"private": true}\n')
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", f"openai@{NODE_OPENAI}"],
            cwd=target,
            check=True,
            timeout=300,
        )
    return NODE_MODULES


def files(directory: Path) -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))}


def request(
    url: str, body: Any = None, *, headers: dict[str, str] | None = None, method: str = "POST", raw: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    sent = {"Content-Type": "application/json", "Authorization": f"Bearer {CANARY}", **(headers or {})}
    req = urllib.request.Request(url, data=data, headers=sent, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def run_urllib_client(base_url: str, question: str = QUESTION, session: str | None = None) -> dict[str, Any]:
    args = [sys.executable, "-I", "-S", str(CLIENTS / "urllib_chat.py"), base_url, question]
    done = subprocess.run([*args, *([session] if session else [])], capture_output=True, text=True, timeout=180)
    assert done.stdout, done.stderr
    return dict(json.loads(done.stdout))


def run_node_client(modules: Path, base_url: str, question: str = QUESTION) -> dict[str, Any]:
    env = {
        "PATH": os.environ["PATH"],
        "NODE_PATH": str(modules),
        "OPENAI_BASE_URL": base_url,
        "OPENAI_API_KEY": TEST_API_KEY,
    }
    done = subprocess.run(
        ["node", str(CLIENTS / "openai_chat.js"), question], capture_output=True, text=True, env=env, timeout=180
    )
    assert done.stdout, done.stderr
    return dict(json.loads(done.stdout.splitlines()[-1]))


def without_volatile(record: dict[str, Any]) -> dict[str, Any]:
    """A recording without what differs between two recordings of the same answer."""
    record = json.loads(json.dumps(record))
    record.pop("recorder", None)
    record["request"].pop("url", None)
    for name in ("duration_ms", "chunk_offsets_ms", "headers"):
        record["response"].pop(name, None)
    return record


@pytest.fixture
def recs(tmp_path: Path) -> Path:
    path = tmp_path / "recs"
    path.mkdir()
    return path


# ---------------------------------------------------------------------------------------------
# Real clients: record through the server, then replay with the upstream stopped
# ---------------------------------------------------------------------------------------------


@pytest.mark.frontend
def test_node_openai_package_records_and_replays_plain_and_streamed(node_openai: Path, recs: Path) -> None:
    with WireServer() as wire, nr.serve("record", recs, upstream=wire.base_url, set_env=False) as server:
        recorded = run_node_client(node_openai, server.url + "/v1")
        assert len(wire.requests) == 2
    assert recorded["plain"] and recorded["streamed"] == recorded["plain"] and recorded["chunks"] > 3
    assert len(files(recs)) == 2
    assert TEST_API_KEY not in "".join(p.read_text() for p in recs.iterdir())  # the key is never written
    with nr.serve("replay", recs, set_env=False) as server:  # no upstream at all now
        assert run_node_client(node_openai, server.url + "/v1") == recorded
        missing = run_node_client(node_openai, server.url + "/v1", "another question")
    assert missing["status"] == 404
    assert "No recording of POST /v1/chat/completions (model gpt-4o)" in missing["message"]
    assert "body.messages[0].content" in missing["message"]  # the nearest recorded request's diff


@pytest.mark.frontend
def test_curl_records_and_replays_plain_and_streamed(recs: Path) -> None:
    def curl(url: str, body: dict[str, Any]) -> str:
        args = ["curl", "-sS", "-N", url + "/v1/chat/completions", "-H", "Content-Type: application/json"]
        args += ["-H", f"Authorization: Bearer {CANARY}", "-d", json.dumps(body)]
        return subprocess.run(args, capture_output=True, text=True, timeout=180, check=True).stdout

    with WireServer() as wire, nr.serve("record-if-missing", recs, upstream=wire.base_url, set_env=False) as server:
        plain, streamed = curl(server.url, BODY), curl(server.url, {**BODY, "stream": True})
    assert json.loads(plain)["choices"][0]["message"]["content"]
    assert streamed.rstrip().endswith("data: [DONE]") and streamed.count("data: ") > 3
    with nr.serve("replay", recs, set_env=False) as server:
        assert json.loads(curl(server.url, BODY)) == json.loads(plain)
        again = curl(server.url, {**BODY, "stream": True})
    events = [json.loads(line[6:]) for line in again.splitlines() if line.startswith("data: {")]
    assert events == [json.loads(line[6:]) for line in streamed.splitlines() if line.startswith("data: {")]
    assert CANARY not in "".join(p.read_text() for p in recs.iterdir())


@pytest.mark.frontend
def test_a_python_subprocess_without_the_package_records_and_replays(recs: Path) -> None:
    with WireServer() as wire, nr.serve("record", recs, upstream=wire.base_url, set_env=False) as server:
        recorded = run_urllib_client(server.url + "/v1")
    assert recorded["plain"] and recorded["streamed"] == recorded["plain"]
    with nr.serve("replay", recs, set_env=False) as server:
        assert run_urllib_client(server.url + "/v1") == recorded
    outcomes = [(c.outcome, c.streamed) for c in nr.calls()]
    assert outcomes == [("recorded", False), ("recorded", True), ("replayed", False), ("replayed", True)]


# ---------------------------------------------------------------------------------------------
# The same files as in process, both ways
# ---------------------------------------------------------------------------------------------


def _openai_calls(client: openai.OpenAI) -> list[Any]:
    messages: Any = BODY["messages"]
    plain = client.chat.completions.create(model="gpt-4o", messages=messages)
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=messages, stream=True))
    embedding = client.embeddings.create(model="text-embedding-3-small", input="hello")
    models = list(client.models.list())
    return [plain, chunks, embedding, models]


def test_files_recorded_through_the_server_are_the_in_process_files(tmp_path: Path) -> None:
    """The openai SDK as a plain HTTP client of the server (no hook in the way) writes, through
    the server, the very files the in-process hook writes: names (keys), requests and bodies."""
    through, inside = tmp_path / "through", tmp_path / "inside"
    with WireServer() as wire:
        with nr.serve("record", through, upstream=wire.base_url, set_env=False) as server:
            with openai.OpenAI(base_url=server.url + "/v1", api_key=TEST_API_KEY, max_retries=0) as client:
                served = _openai_calls(client)
        with openai.OpenAI(base_url=wire.base_url, api_key=TEST_API_KEY, max_retries=0) as client:
            with nr.recording("record", dir=inside):
                recorded = _openai_calls(client)
    assert [type(x).__name__ for x in served] == [type(x).__name__ for x in recorded]
    made_here, made_inside = files(through), files(inside)
    assert sorted(made_here) == sorted(made_inside) and len(made_here) == 4
    for name, record in made_here.items():
        assert without_volatile(record) == without_volatile(made_inside[name]), name
    chunk = next(r for r in made_here.values() if r["response"]["is_streaming"])["response"]["body"][0]
    assert chunk["__type__"] == "openai.types.chat.chat_completion_chunk.ChatCompletionChunk"


def test_a_server_recording_replays_in_process_and_the_reverse(tmp_path: Path) -> None:
    through, inside = tmp_path / "through", tmp_path / "inside"
    with WireServer() as wire:
        with nr.serve("record", through, upstream=wire.base_url, set_env=False) as server:
            with openai.OpenAI(base_url=server.url + "/v1", api_key=TEST_API_KEY, max_retries=0) as client:
                served = _openai_calls(client)
        with openai.OpenAI(base_url=wire.base_url, api_key=TEST_API_KEY, max_retries=0) as client:
            with nr.recording("record", dir=inside):
                recorded = _openai_calls(client)
    dead = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key=TEST_API_KEY, max_retries=0)
    with nr.recording("replay", dir=through):  # the server's files, in process
        assert [_dump(x) for x in _openai_calls(dead)] == [_dump(x) for x in served]
    with nr.serve("replay", inside, set_env=False) as server:  # the in-process files, over HTTP
        with openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0) as client:
            assert [_dump(x) for x in _openai_calls(client)] == [_dump(x) for x in recorded]


def _dump(value: Any) -> Any:
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value.model_dump(mode="json")


def test_anthropic_messages_record_through_the_server_as_in_process(tmp_path: Path) -> None:
    anthropic = pytest.importorskip("anthropic")
    through, inside = tmp_path / "through", tmp_path / "inside"

    def calls(client: Any) -> list[Any]:
        messages = [{"role": "user", "content": "Say hello"}]
        plain = client.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=messages)
        events = list(client.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=messages, stream=True))
        return [plain, events]

    with AnthropicWireServer() as wire:
        with nr.serve("record", through, upstream=wire.base_url, set_env=False) as server:
            with anthropic.Anthropic(base_url=server.url, api_key=ANTHROPIC_TEST_KEY, max_retries=0) as client:
                served = calls(client)
        with anthropic.Anthropic(base_url=wire.base_url, api_key=ANTHROPIC_TEST_KEY, max_retries=0) as client:
            with nr.recording("record", dir=inside):
                calls(client)
    made_here, made_inside = files(through), files(inside)
    assert sorted(made_here) == sorted(made_inside) and len(made_here) == 2
    for name, record in made_here.items():
        assert without_volatile(record) == without_volatile(made_inside[name]), name
    with nr.serve("replay", through, set_env=False) as server:
        with anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0) as client:
            assert [_dump(x) for x in calls(client)] == [_dump(x) for x in served]
        missing = request(
            server.url + "/v1/messages",
            {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": []},
            headers={"anthropic-version": "2023-06-01"},
        )
    assert missing[0] == 404
    body = json.loads(missing[2])
    assert body["type"] == "error" and body["error"]["type"] == "not_found_error"
    assert "No recording of POST /v1/messages" in body["error"]["message"]


def test_recorded_errors_replay_with_their_status_and_body(recs: Path) -> None:
    bad = {**BODY, "model": "wire-error-400"}
    with WireServer() as wire, nr.serve("record", recs, upstream=wire.base_url, set_env=False) as server:
        live = request(server.url + "/v1/chat/completions", bad)
    assert live[0] == 400
    (record,) = files(recs).values()
    assert record["response"]["is_exception"] and record["response"]["exception_data"]["type"] == "BadRequestError"
    with nr.serve("replay", recs, set_env=False) as server:
        replayed = request(server.url + "/v1/chat/completions", bad)
    assert replayed[0] == 400 and json.loads(replayed[2]) == json.loads(live[2])
    with pytest.raises(openai.BadRequestError) as raised:  # and in process, as the SDK's own error
        with nr.recording("replay", dir=recs):
            dead = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key=TEST_API_KEY, max_retries=0)
            dead.chat.completions.create(model="wire-error-400", messages=BODY["messages"])  # type: ignore[arg-type]
    assert raised.value.status_code == 400


def test_live_forwards_and_writes_nothing(recs: Path) -> None:
    with WireServer() as wire, nr.serve("live", recs, upstream=wire.base_url, set_env=False) as server:
        status, _, content = request(server.url + "/v1/chat/completions", BODY)
        assert len(wire.requests) == 1 and wire.requests[0].headers["authorization"] == f"Bearer {CANARY}"
    assert status == 200 and json.loads(content)["choices"]
    assert list(recs.iterdir()) == []


def test_a_stream_read_just_before_the_server_stops_is_saved(recs: Path) -> None:
    """The stream's file is written on a worker thread after the client has read the last chunk;
    stopping the server at once (leaving `nr.serve`) waits for it: an answer paid for is kept."""
    for n in range(3):
        with (
            WireServer(chunk_delay=0.01) as wire,
            nr.serve("record", recs, upstream=wire.base_url, set_env=False) as server,
        ):
            content = request(server.url + "/v1/chat/completions", {**BODY, "stream": True, "n": n + 1})[2]
            assert b"data: [DONE]" in content
        assert len(files(recs)) == n + 1  # written before nr.serve returned
    assert [c.outcome for c in nr.calls()] == ["recorded"] * 3


# ---------------------------------------------------------------------------------------------
# Safe by default
# ---------------------------------------------------------------------------------------------


def send_streamed_request(port: int) -> socket.socket:
    """A streamed chat request sent over a raw socket (read it and close it at will)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    body = json.dumps({**BODY, "stream": True}).encode()
    head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    sock.sendall(f"{head}Authorization: Bearer {CANARY}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    return sock


def test_a_client_leaving_mid_stream_leaves_no_file_and_chunks_pass_through_live(recs: Path) -> None:
    """The first event reaches the client while the upstream still holds the rest (nothing is
    buffered); the client then disconnects: nothing is saved, and the server keeps serving."""
    hold = threading.Event()
    with WireServer() as wire, nr.serve("record", recs, upstream=wire.base_url, set_env=False) as server:
        wire.hold = hold
        sock = send_streamed_request(server.port)
        received = b""
        while b"data: {" not in received:
            received += sock.recv(65536)  # the first event, while the upstream is held
        sock.close()
        time.sleep(0.3)
        hold.set()
        wire.hold = None
        deadline = time.monotonic() + 10
        while not any(c.outcome == "error" for c in nr.calls()) and time.monotonic() < deadline:
            time.sleep(0.02)
        status, _, _ = request(server.url + "/v1/chat/completions", BODY)  # still serving
    assert status == 200
    cut = [c for c in nr.calls() if c.streamed]
    assert cut and cut[0].outcome == "error" and "cut short" in (cut[0].error or "")
    assert [r["response"]["is_streaming"] for r in files(recs).values()] == [False]  # only the later call
    assert not list(recs.glob(".*.tmp"))


def test_a_client_leaving_after_the_last_event_keeps_the_answer(recs: Path) -> None:
    """An SDK closes a stream's response once it has read ``data: [DONE]``, which may be before
    the body's end has arrived: the answer is complete upstream, and it is saved."""
    with WireServer() as wire, nr.serve("record", recs, upstream=wire.base_url, set_env=False) as server:
        wire.end_delay = 0.5  # the body's end comes well after the last event
        sock = send_streamed_request(server.port)
        received = b""
        while b"data: [DONE]" not in received:
            received += sock.recv(65536)
        sock.close()  # before the body's end
    (record,) = files(recs).values()
    assert record["response"]["is_streaming"] and len(record["response"]["body"]) > 1
    assert [c.outcome for c in nr.calls()] == ["recorded"]


def test_an_upstream_failing_mid_stream_is_not_saved(recs: Path) -> None:
    with WireServer(error_after_chunks=3) as wire:
        with nr.serve("record", recs, upstream=wire.base_url, set_env=False) as server:
            try:  # the client sees the broken stream: an error, or a body without its end
                content = request(server.url + "/v1/chat/completions", {**BODY, "stream": True})[2]
            except Exception:  # http.client.IncompleteRead, a reset connection
                content = b""
            assert b"data: [DONE]" not in content
            assert request(server.url + "/v1/chat/completions", BODY)[0] == 200  # still serving
    assert [r["response"]["is_streaming"] for r in files(recs).values()] == [False]
    assert [c.outcome for c in nr.calls()] == ["error", "recorded"]


def test_oversized_and_stalled_requests_are_refused_without_stopping_the_server(recs: Path) -> None:
    with WireServer() as wire:
        with nr.serve("record", recs, upstream=wire.base_url, set_env=False, max_body=2000) as server:
            server.app.body_timeout = 1.0
            big = {**BODY, "messages": [{"role": "user", "content": "x" * 5000}]}
            status, _, content = request(server.url + "/v1/chat/completions", big)
            assert status == 413 and "larger than the limit" in json.loads(content)["error"]["message"]
            chunked = _send_raw(server.port, b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % 3000 + b"y" * 3000)
            assert b" 413 " in chunked.split(b"\r\n", 1)[0]
            stalled = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            stalled.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            assert request(server.url + "/v1/chat/completions", BODY)[0] == 200  # others are served meanwhile
            stalled.settimeout(10)
            assert b" 408 " in stalled.recv(65536).split(b"\r\n", 1)[0]
            stalled.close()
    assert len(wire.requests) == 1
    assert len(files(recs)) == 1


def _send_raw(port: int, rest: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + rest)
        return sock.recv(65536)


def test_replay_needs_no_key_and_the_placeholder_is_never_forwarded(recs: Path) -> None:
    with WireServer() as wire:
        with nr.serve("record", recs, upstream=wire.base_url, set_env=False) as server:
            request(server.url + "/v1/chat/completions", BODY)
            # From another process: this one refuses to send the placeholder at all (_network).
            args = ["curl", "-sS", server.url + "/v1/chat/completions", "-H", "Content-Type: application/json"]
            args += ["-H", "Authorization: Bearer sk-notebook-recorder-replay-placeholder", "-w", "\n%{http_code}"]
            done = subprocess.run([*args, "-d", json.dumps({**BODY, "n": 2})], capture_output=True, text=True)
        assert len(wire.requests) == 1
    content, status = done.stdout.rsplit("\n", 1)
    assert status == "404" and "placeholder" in json.loads(content)["error"]["message"]
    with nr.serve("replay", recs, set_env=False) as server:
        status, _, _ = request(server.url + "/v1/chat/completions", BODY, headers={"Authorization": ""})
    assert status == 200


def test_listening_beyond_loopback_warns() -> None:
    with pytest.warns(UserWarning, match="not only on this machine's loopback"):
        sock = bind("0.0.0.0", 0)
    sock.close()


# ---------------------------------------------------------------------------------------------
# Concurrency and occurrences
# ---------------------------------------------------------------------------------------------


def test_occurrences_are_counted_per_client_session(recs: Path) -> None:
    with WireServer(count_answers=True) as wire:
        with nr.serve("record", recs, upstream=wire.base_url, set_env=False) as server:
            first = [run_urllib_client(server.url + "/v1", session="a")["plain"] for _ in range(2)]
    assert [text[:4] for text in first] == ["[1] ", "[3] "]  # each run asks plainly, then streamed
    assert len(files(recs)) == 4  # two occurrences each of the plain and the streamed request
    with nr.serve("replay", recs, set_env=False) as server:

        def session(name: str) -> list[str]:
            return [run_urllib_client(server.url + "/v1", session=name)["plain"][:4] for _ in range(2)]

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(session, ["b", "c", "d", "e"]))
        assert results == [["[1] ", "[3] "]] * 4  # each session replays occurrence 1, then 2
        no_session = [run_urllib_client(server.url + "/v1")["plain"][:4] for _ in range(3)]
    assert no_session == ["[1] ", "[3] ", "[3] "]  # one count for the server's run; past the last: the last


def test_many_concurrent_clients_are_served(recs: Path) -> None:
    with WireServer() as wire, nr.serve("record", recs, upstream=wire.base_url, set_env=False) as server:
        request(server.url + "/v1/chat/completions", BODY)
        request(server.url + "/v1/chat/completions", {**BODY, "stream": True})
    with nr.serve("replay", recs, set_env=False) as server:

        def one(i: int) -> int:
            body = {**BODY, "stream": True} if i % 2 else BODY
            return request(server.url + "/v1/chat/completions", body)[0]

        with ThreadPoolExecutor(16) as pool:
            assert set(pool.map(one, range(64))) == {200}


# ---------------------------------------------------------------------------------------------
# Front ends: the command line, and %apirec serve in a kernel
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def serve_command(recs: Path, *options: str) -> Iterator[tuple[str, subprocess.Popen[str], list[str]]]:
    """``notebook-recorder serve --mode replay --dir RECS OPTIONS`` as a command: its URL (from
    its first line), the process, and (filled once it has stopped) what it wrote to stderr."""
    cli = shutil.which("notebook-recorder", path=str(Path(sys.executable).parent))
    assert cli is not None
    process = subprocess.Popen(
        [cli, "serve", "--mode", "replay", "--dir", str(recs), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    err: list[str] = []
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("notebook-recorder serve: replay at http://127.0.0.1:"), first
        yield first.split(" at ", 1)[1].strip(), process, err
    finally:
        process.terminate()
        err.append(process.communicate(timeout=20)[1])


@pytest.mark.frontend
def test_the_command_line_serves_until_stopped(recs: Path) -> None:
    with WireServer() as wire, nr.recording("record", dir=recs):
        with openai.OpenAI(base_url=wire.base_url, api_key=TEST_API_KEY, max_retries=0) as client:
            client.chat.completions.create(model="gpt-4o", messages=BODY["messages"])  # type: ignore[arg-type]
    with serve_command(recs, "--port", "0") as (url, process, err):
        assert process.stdout is not None
        assert process.stdout.readline().strip() == f"export OPENAI_BASE_URL={url}/v1"
        assert run_urllib_client(url + "/v1")["status"] == 404  # the streamed request was not recorded
        status, _, content = request(url + "/v1/chat/completions", BODY)
        assert status == 200 and json.loads(content)["choices"][0]["message"]["content"]
    assert "replayed POST /v1/chat/completions (model gpt-4o)" in err[0]


def test_the_command_line_refuses_a_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from notebook_recorder.cli import main

    assert main(["serve", "--mode", "replay", "--dir", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.frontend
def test_apirec_serve_in_a_session(ip: Any, recs: Path) -> None:
    with WireServer() as wire, nr.recording("record", dir=recs):
        with openai.OpenAI(base_url=wire.base_url, api_key=TEST_API_KEY, max_retries=0) as client:
            client.chat.completions.create(model="gpt-4o", messages=BODY["messages"])  # type: ignore[arg-type]
    nr.clear_calls()
    ip.run_line_magic("apirec", f"serve replay --dir {recs}")
    try:
        base = os.environ["OPENAI_BASE_URL"]
        assert base.startswith("http://127.0.0.1:") and base.endswith("/v1")
        assert os.environ["ANTHROPIC_BASE_URL"] == base[: -len("/v1")]
        status, _, _ = request(base + "/chat/completions", BODY)
        assert status == 200
        assert [(c.outcome, c.endpoint) for c in nr.calls()] == [("replayed", "/v1/chat/completions")]
    finally:
        ip.run_line_magic("apirec", "serve off")
    assert "OPENAI_BASE_URL" not in os.environ and "ANTHROPIC_BASE_URL" not in os.environ
    with pytest.raises(Exception, match="unknown mode 'sideways'"):
        ip.run_line_magic("apirec", "serve sideways")


def test_a_compressed_upstream_stream_is_passed_on_decoded_and_recorded(recs: Path) -> None:
    with WireServer() as wire:
        wire.gzip_streams = True
        with nr.serve("record", recs, upstream=wire.base_url, set_env=False) as server:
            status, headers, content = request(server.url + "/v1/chat/completions", {**BODY, "stream": True})
    assert status == 200 and "content-encoding" not in {k.lower() for k in headers}
    assert content.rstrip().endswith(b"data: [DONE]")
    (record,) = files(recs).values()
    assert record["response"]["is_streaming"] and len(record["response"]["body"]) > 3


def test_an_unreachable_upstream_is_a_502_in_the_envelope(recs: Path) -> None:
    with nr.serve("record", recs, upstream="http://127.0.0.1:9", set_env=False) as server:
        status, _, content = request(server.url + "/v1/chat/completions", BODY)
    assert status == 502 and "could not be reached" in json.loads(content)["error"]["message"]
    assert files(recs) == {}


def test_a_key_the_upstream_echoes_is_masked_in_the_file(recs: Path) -> None:
    """The client's key is only forwarded: an error that quotes it is saved with it masked."""
    with WireServer() as wire, nr.serve("record", recs, upstream=wire.base_url, set_env=False) as server:
        status, _, content = request(
            server.url + "/v1/chat/completions", BODY, headers={"Authorization": "Bearer sk-bad"}
        )
    assert status == 401 and b"sk-bad" in content  # the client sees the answer as it was
    (path,) = recs.glob("*.json")
    text = path.read_text()
    assert "sk-bad" not in text and json.loads(text)["response"]["exception_data"]["status_code"] == 401


# ---------------------------------------------------------------------------------------------
# Paced replay: streams arrive with their recorded gaps
# ---------------------------------------------------------------------------------------------


def _timed_stream(base_url: str) -> tuple[list[float], str]:
    """A streamed chat completion through the openai SDK (a plain HTTP client of the server):
    each chunk's arrival, in seconds after the request was sent, and the text."""
    with openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0) as client:
        sent = time.perf_counter()
        arrivals, text = [], ""
        for chunk in client.chat.completions.create(model="gpt-4o", messages=BODY["messages"], stream=True):  # type: ignore[arg-type]
            arrivals.append(time.perf_counter() - sent)
            text += "".join(c.delta.content or "" for c in chunk.choices)
    return arrivals, text


def test_paced_replay_spaces_the_chunks_as_recorded(recs: Path) -> None:
    """With a pace, chunk i leaves the server (offset[i] - offset[0]) / pace seconds after the
    first, which left after the request was sent: each arrival is at least that late. Without a
    pace the whole stream comes at once. (Lower bounds only: a loaded machine makes it later.)"""
    with WireServer(chunk_delay=0.04) as wire, nr.serve("record", recs, upstream=wire.base_url, set_env=False) as s:
        _, recorded = _timed_stream(s.url + "/v1")
    (record,) = files(recs).values()
    offsets = record["response"]["chunk_offsets_ms"]
    due = [(ms - offsets[0]) / 1000 for ms in offsets]
    span = due[-1]
    assert len(due) > 10 and span > 0.5  # recorded with the upstream's gaps
    with nr.serve("replay", recs, set_env=False, pace=1.0) as server:
        assert server.pace == 1.0 and "pace 1" in repr(server)
        paced, text = _timed_stream(server.url + "/v1")
    assert text == recorded and len(paced) == len(due)
    assert all(arrived >= wait - 0.002 for arrived, wait in zip(paced, due, strict=True)), (paced, due)
    with nr.serve("replay", recs, set_env=False, pace=2.0) as server:
        twice, _ = _timed_stream(server.url + "/v1")
    assert all(arrived >= wait / 2 - 0.002 for arrived, wait in zip(twice, due, strict=True)), (twice, due)
    with nr.serve("replay", recs, set_env=False) as server:
        instant, text = _timed_stream(server.url + "/v1")
    assert text == recorded and instant[-1] < span / 2  # far from the recorded span


def test_pace_reaches_the_server_from_the_command_line_and_the_magic(
    ip: Any, recs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from notebook_recorder.cli import main

    for bad, why in (("fast", "not a number: 'fast' (give a factor such as 1 or 2)"), ("0", "must be a positive")):
        assert main(["serve", "--mode", "replay", "--dir", str(recs), "--pace", bad]) == 2
        assert f"argument --pace: {why}" in capsys.readouterr().err
    with pytest.raises(Exception, match="--pace: must be a positive number, not '-1'"):
        ip.run_line_magic("apirec", f"serve replay --dir {recs} --pace -1")
    magics = ip.magics_manager.registry["ApiRecMagics"]
    ip.run_line_magic("apirec", f"serve replay --dir {recs} --pace 2")
    try:
        assert magics._server.pace == 2.0
        ip.run_line_magic("apirec", f"serve replay --dir {recs} --pace")  # alone: as recorded
        assert magics._server.pace == 1.0
        ip.run_line_magic("apirec", f"serve replay --dir {recs}")
        assert magics._server.pace is None
    finally:
        ip.run_line_magic("apirec", "serve off")


def test_the_command_line_names_a_port_in_use(recs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from notebook_recorder.cli import main

    with nr.serve("replay", recs, set_env=False) as server:
        assert main(["serve", "--mode", "replay", "--dir", str(recs), "--port", str(server.port)]) == 2
    assert f"--port {server.port}: already in use on 127.0.0.1" in capsys.readouterr().err


def test_methods_the_apis_do_not_take_get_a_405_in_the_envelope(recs: Path) -> None:
    with nr.serve("replay", recs, set_env=False) as server:
        status, _, content = request(server.url + "/v1/chat/completions", method="OPTIONS")
    assert status == 405 and "not an API method" in json.loads(content)["error"]["message"]


@pytest.mark.frontend
def test_the_command_line_replays_at_the_pace_asked(recs: Path) -> None:
    with WireServer(chunk_delay=0.01) as wire, nr.recording("record", dir=recs):
        with openai.OpenAI(base_url=wire.base_url, api_key=TEST_API_KEY, max_retries=0) as client:
            list(client.chat.completions.create(model="gpt-4o", messages=BODY["messages"], stream=True))  # type: ignore[arg-type]
    with serve_command(recs, "--pace", "2") as (url, _, err):
        status, _, content = request(url + "/v1/chat/completions", {**BODY, "stream": True})
        assert status == 200 and content.rstrip().endswith(b"data: [DONE]")
    assert "replayed streams arrive at their recorded pace x2" in err[0]
    assert "replayed POST /v1/chat/completions (model gpt-4o)" in err[0] and "at pace 2" in err[0]
