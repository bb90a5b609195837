"""Benchmark: ``notebook-recorder serve``, the recording endpoint for non-Python clients.

    python -m benchmarks.bench_serve [--requests N] [--streams N]

1. **Replay throughput.** Requests per second that ``notebook-recorder serve --mode replay``
   answers to 8 concurrent clients (threads with keep-alive connections, in this process; the
   server runs in its own process, as it does for users), for a recorded chat completion and a
   recorded 40-chunk stream. The loopback wire server (``tests/wire_server.py``, a stdlib
   threading server that builds the same answers) is timed alike as a reference.
2. **Time to first chunk while recording.** A streamed chat completion's first SSE event, asked
   directly of the wire server and through ``serve --mode record`` forwarding to it: the server
   passes every chunk on as it arrives, so it may add at most 2 ms (median). Requests are 0.1 s
   apart: each stream's file is parsed and written after its end, which is not this request's wait.

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
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench-0123456789abcdef"}


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


def _first_chunk_ms(base: str) -> float:
    """Milliseconds from sending a streamed request (new connection) to its first SSE event."""
    split = urlsplit(base)
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
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1600, help="replayed requests per measurement")
    parser.add_argument("--streams", type=int, default=41, help="streams timed per path")
    args = parser.parse_args(argv)

    rows: list[tuple[str, str, str, str]] = []
    missed = False
    with tempfile.TemporaryDirectory() as directory, WireServer() as wire:
        record, record_url = _start_server("record", directory, wire.base_url)
        try:
            conn = http.client.HTTPConnection("127.0.0.1", urlsplit(record_url).port, timeout=60)
            _post(conn, "/v1/chat/completions", BODY)
            _post(conn, "/v1/chat/completions", {**BODY, "stream": True})
            conn.close()
            # 2. time to first chunk: direct and through the recording server, interleaved
            direct: list[float] = []
            through: list[float] = []
            for _ in range(args.streams):
                direct.append(_first_chunk_ms(wire.base_url))
                time.sleep(0.1)
                through.append(_first_chunk_ms(record_url + "/v1"))
                time.sleep(0.1)  # the recording of a stream is parsed and saved after its end
        finally:
            record.terminate()
            record.wait(timeout=30)
        added = statistics.median(through) - statistics.median(direct)
        missed |= added > GOAL_FIRST_CHUNK_MS
        rows.append(
            (
                "time to first chunk, recording (median)",
                f"{statistics.median(direct):.2f} ms direct",
                f"{statistics.median(through):.2f} ms through serve (+{added:.2f} ms)",
                f"≤ +{GOAL_FIRST_CHUNK_MS:g} ms {'ok' if added <= GOAL_FIRST_CHUNK_MS else 'MISSED'}",
            )
        )
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
