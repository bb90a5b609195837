"""Benchmark: ``notebook-recorder serve``, the recording endpoint for non-Python clients.

    python -m benchmarks.bench_serve [--requests N] [--streams N]

1. **Replay throughput.** Requests per second that ``notebook-recorder serve --mode replay``
   answers to 8 concurrent clients (threads with keep-alive connections, in this process; the
   server runs in its own process, as it does for users), for a recorded chat completion and a
   recorded 40-chunk stream. The loopback wire server (``tests/wire_server.py``, a stdlib
   threading server that builds the same answers) is timed alike as a reference.
2. **Time to first chunk while recording.** A streamed chat completion's first SSE event, asked
   directly of a minimal upstream (its own process; the same 28 events each time, the first
   at once, then 20 ms apart) and through ``serve --mode record`` forwarding to it, each on a
   keep-alive connection as SDK clients keep theirs: the server passes every chunk on as it
   arrives, so it may add at most 2 ms (median, against the direct median of the same run;
   the ratio is printed too). Requests are 50 ms apart: each stream's file is parsed and
   written after its end.

It prints a markdown table and exits with status 1 when the goal is missed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import wire_server  # noqa: E402
from wire_server import WireServer  # noqa: E402

# Real API servers send each event at once; the stdlib server behind the wire server would hold a
# small write back until the previous one is acknowledged (Nagle), which a delayed ACK makes
# 40 ms, and would time the TCP stack rather than the recording server.
wire_server._Handler.disable_nagle_algorithm = True

GOAL_FIRST_CHUNK_MS = 2.0
CLIENTS = 8
BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "What is the latest version of Python?"}]}
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer bench-canary-key"}


def _start_server(mode: str, directory: str, upstream: str | None = None) -> tuple[subprocess.Popen[str], str]:
    args = [sys.executable, "-m", "notebook_recorder", "serve", "--mode", mode, "--dir", directory, "--quiet"]
    if upstream:
        args += ["--upstream", upstream]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    assert process.stdout is not None
    line = process.stdout.readline()
    if " at " not in line:
        process.kill()
        raise RuntimeError(f"notebook-recorder serve did not start: {line!r}")
    return process, line.split(" at ", 1)[1].strip()


# A minimal streaming upstream in its own process: it reads a request and answers with the same
# precomputed SSE events every time, the first at once and the rest 20 ms apart, each written at
# once (TCP_NODELAY), as real API servers do. Asked directly and through the recording server, it
# times what the server adds, not how long an upstream takes to think.
_UPSTREAM = r"""
import socket, sys, threading, time
events = open(sys.argv[1], "rb").read().split(b"\n\n\n")
head = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
        b"x-request-id: req_bench\r\n\r\n")

def chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data)

def serve(conn):
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    file = conn.makefile("rb")
    while True:
        length = 0
        line = file.readline()
        if not line:
            return
        while line not in (b"\r\n", b"\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
            line = file.readline()
        file.read(length)
        conn.sendall(head + chunk(events[0]))
        for event in events[1:]:
            time.sleep(0.02)
            conn.sendall(chunk(event))
        conn.sendall(chunk(b""))

listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""


def _start_upstream(directory: str) -> tuple[subprocess.Popen[str], str]:
    chunks = wire_server.chat_payload({**BODY, "stream": True})
    assert isinstance(chunks, list)
    events = [b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]
    path = Path(directory, "events.bin")
    path.write_bytes(b"\n\n\n".join(e.replace(b"\n\n\n", b"\n\n") for e in events))
    process = subprocess.Popen([sys.executable, "-c", _UPSTREAM, str(path)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    return process, f"http://127.0.0.1:{process.stdout.readline().strip()}/v1"


def _post(conn: http.client.HTTPConnection, path: str, body: dict[str, object]) -> bytes:
    conn.request("POST", path, body=json.dumps(body), headers=HEADERS)
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"{response.status}: {data[:300]!r}")
    return data


def _throughput(base: str, body: dict[str, object], total: int) -> float:
    """Requests per second from CLIENTS threads, each on its own keep-alive connection."""
    split = urlsplit(base)
    path = split.path.rstrip("/") + "/chat/completions"
    per_client = total // CLIENTS
    barrier = threading.Barrier(CLIENTS + 1)
    errors: list[BaseException] = []

    def client() -> None:
        conn = http.client.HTTPConnection(split.hostname or "127.0.0.1", split.port, timeout=60)
        try:
            _post(conn, path, body)  # warm the connection
            barrier.wait()
            for _ in range(per_client):
                _post(conn, path, body)
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return per_client * CLIENTS / elapsed


def _first_chunk_ms(base: str, conn: http.client.HTTPConnection | None = None) -> float:
    """Milliseconds from sending a streamed request to its first SSE event (on ``conn``, a
    keep-alive connection as SDK clients keep, or a new one)."""
    split = urlsplit(base)
    own = conn is None
    if conn is None:
        conn = http.client.HTTPConnection(split.hostname or "127.0.0.1", split.port, timeout=60)
    try:
        started = time.perf_counter()
        path = split.path.rstrip("/") + "/chat/completions"
        conn.request("POST", path, json.dumps({**BODY, "stream": True}), HEADERS)
        response = conn.getresponse()
        seen = b""
        while b"data: " not in seen:
            piece = response.read1(65536)
            if not piece:
                raise RuntimeError("the stream ended before its first event")
            seen += piece
        elapsed = (time.perf_counter() - started) * 1000
        response.read()  # read to the end, so that the recording is saved as users' are
        return elapsed
    finally:
        if own:
            conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1600, help="replayed requests per measurement")
    parser.add_argument("--streams", type=int, default=41, help="streams timed per path")
    args = parser.parse_args(argv)

    rows: list[tuple[str, str, str, str]] = []
    missed = False
    with tempfile.TemporaryDirectory() as directory, WireServer() as wire:
        upstream, upstream_url = _start_upstream(directory)
        record, record_url = _start_server("record", str(Path(directory, "live")), upstream_url)
        try:
            # 2. time to first chunk: direct and through the recording server, interleaved
            to_upstream = http.client.HTTPConnection("127.0.0.1", urlsplit(upstream_url).port, timeout=60)
            to_server = http.client.HTTPConnection("127.0.0.1", urlsplit(record_url).port, timeout=60)
            for _ in range(3):  # warm both paths (imports, the SDK's client for saving)
                _first_chunk_ms(upstream_url, to_upstream)
                _first_chunk_ms(record_url + "/v1", to_server)
            direct: list[float] = []
            through: list[float] = []
            for _ in range(args.streams):
                direct.append(_first_chunk_ms(upstream_url, to_upstream))
                time.sleep(0.05)
                through.append(_first_chunk_ms(record_url + "/v1", to_server))
                time.sleep(0.05)  # the recording of a stream is parsed and saved after its end
            to_upstream.close()
            to_server.close()
        finally:
            record.terminate()
            record.wait(timeout=30)
            upstream.terminate()
            upstream.wait(timeout=30)
        added = statistics.median(through) - statistics.median(direct)
        missed |= added > GOAL_FIRST_CHUNK_MS
        rows.append(
            (
                "time to first chunk, recording (median)",
                f"{statistics.median(direct):.2f} ms direct",
                f"{statistics.median(through):.2f} ms through serve (+{added:.2f} ms, "
                f"{statistics.median(through) / statistics.median(direct):.1f}x)",
                f"≤ +{GOAL_FIRST_CHUNK_MS:g} ms {'ok' if added <= GOAL_FIRST_CHUNK_MS else 'MISSED'}",
            )
        )
        record, record_url = _start_server("record", directory, wire.base_url)
        try:
            conn = http.client.HTTPConnection("127.0.0.1", urlsplit(record_url).port, timeout=60)
            _post(conn, "/v1/chat/completions", BODY)
            _post(conn, "/v1/chat/completions", {**BODY, "stream": True})
            conn.close()
        finally:
            record.terminate()
            record.wait(timeout=30)
        # 1. replay throughput from 8 concurrent clients
        replay, replay_url = _start_server("replay", directory)
        try:
            for label, body in (("chat completion", BODY), ("40-chunk stream", {**BODY, "stream": True})):
                served = statistics.median(_throughput(replay_url + "/v1", body, args.requests) for _ in range(3))
                reference = statistics.median(_throughput(wire.base_url, body, args.requests) for _ in range(3))
                rows.append(
                    (
                        f"replayed {label}s, {CLIENTS} concurrent clients",
                        f"{reference:,.0f} req/s wire server",
                        f"{served:,.0f} req/s serve --mode replay",
                        "(reported)",
                    )
                )
        finally:
            replay.terminate()
            replay.wait(timeout=30)

    print("| what | reference | notebook-recorder serve | goal |")
    print("|---|---:|---:|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
