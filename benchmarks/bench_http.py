"""Benchmark: the HTTP-level hooks (httpx2's transport): replay speed, stream latency, idle cost.

    python -m benchmarks.bench_http [--runs N]

1. **Replay of a 400-event SSE stream** through the HTTP-level hook (a recording on disk, the
   client reading and parsing every event) against its **parse floor**: the same client parsing
   the same bytes from memory (``httpx2.MockTransport``, no recorder). Goal: within 1.3x.
2. **Time to first chunk while recording** an SSE stream from a loopback server that sends an
   event every 2 ms, against the same call live. Goal: within 1 ms of live.
3. **CPU cost of the transport hook on a live call with no recorder active** (the patch in
   place, ``active()`` is ``None``): the calling thread's CPU time per call to a loopback server
   (the server's thread left out), with and without the patch, back to back; the result is the
   median of the runs' ratios. Goal: under 2%.

Medians over several runs, each side interleaved with the other (shared machines are noisy); a
ratio (or difference) is the median of the runs' own, each run's two sides measured back to back.
It prints a markdown table and exits with status 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2

import notebook_recorder as nr

GOAL_REPLAY_RATIO = 1.3
GOAL_FIRST_CHUNK_MS = 1.0
GOAL_IDLE_CPU = 0.02
EVENTS = 400


def _event(i: int) -> bytes:
    chunk = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": f" token{i}"}, "finish_reason": None}],
    }
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


BODY = [_event(i) for i in range(EVENTS)] + [b"data: [DONE]\n\n"]


def _parse(response: Any) -> int:
    """What a client does with an SSE stream: every event's JSON parsed."""
    n = 0
    for line in response.iter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            json.loads(line[6:])
            n += 1
    return n


class _Server:
    """Loopback: ``/stream`` sends BODY's events ``gap`` seconds apart; ``/ping`` a small JSON."""

    def __init__(self, gap: float = 0.002) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out at once: no 40 ms delayed ACK

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.path == "/ping":
                    data = b'{"ok": true}'
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                for piece in BODY[:20]:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.flush()
                    time.sleep(gap)
                self.wfile.write(b"0\r\n\r\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _replay_vs_floor(runs: int) -> tuple[float, float, float]:
    """Medians of the floor and of the replay (ms), and the median of each run's ratio (its two
    sides measured back to back, so the machine's load drifting cancels out)."""
    directory = Path(tempfile.mkdtemp(prefix="bench_http_"))
    request = {"model": "m", "stream": True}

    class Chunks(httpx2.SyncByteStream):
        def __iter__(self) -> Any:
            yield from BODY  # one chunk per event, as a replay gives them

    def memory(req: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, stream=Chunks())

    floor_client = httpx2.Client(transport=httpx2.MockTransport(memory))
    # The recording: made once through the hook, from the same bytes served over loopback.
    server = _Server(gap=0.0)
    try:
        live = httpx2.Client()
        saved = BODY  # the server sends the first 20 events; the full stream is written below
        with nr.recording("record", dir=directory):
            with live.stream("POST", server.url + "/stream", json=request) as r:
                r.read()
    finally:
        server.close()
    # Rewrite the recording with all 400 events (the server above sends 20 to keep it short).
    (path,) = directory.glob("*.json")
    record = json.loads(path.read_text())
    record["response"]["body"] = [{"event": None, "data": json.loads(e[6:])} for e in saved[:-1]]
    record["response"]["body"].append({"event": None, "data": "[DONE]"})
    record["response"]["chunk_offsets_ms"] = [0.0] * len(record["response"]["body"])
    path.write_text(json.dumps(record))
    client = httpx2.Client()
    floor, replay = [], []
    for _ in range(runs):
        start = time.perf_counter()
        with floor_client.stream("POST", "http://bench/stream", json=request) as r:
            assert _parse(r) == EVENTS
        floor.append(time.perf_counter() - start)
        with nr.recording("replay", dir=directory):
            start = time.perf_counter()
            with client.stream("POST", server.url + "/stream", json=request) as r:
                assert _parse(r) == EVENTS
            replay.append(time.perf_counter() - start)
    ratios = [r / f for f, r in zip(floor, replay, strict=True)]
    return statistics.median(floor) * 1000, statistics.median(replay) * 1000, statistics.median(ratios)


def _first_chunk(runs: int) -> tuple[float, float, float]:
    """Medians of the time to first chunk live and while recording (ms), and the median of each
    run's difference (its two sides measured back to back)."""
    server = _Server()
    client = httpx2.Client()
    directory = tempfile.mkdtemp(prefix="bench_http_ttfc_")

    def first() -> float:
        start = time.perf_counter()
        with client.stream("POST", server.url + "/stream", json={"n": time.perf_counter_ns()}) as r:
            lines = r.iter_lines()
            for line in lines:
                if line:
                    elapsed = time.perf_counter() - start
                    break
            for _ in lines:
                pass
        return elapsed * 1000

    live, recording = [], []
    try:
        for _ in range(runs):
            live.append(first())
            with nr.recording("record", dir=directory):
                recording.append(first())
    finally:
        server.close()
    delays = [r - x for x, r in zip(live, recording, strict=True)]
    return statistics.median(live), statistics.median(recording), statistics.median(delays)


def _idle_cost(runs: int, calls: int) -> tuple[float, float, float]:
    """Medians of the CPU per call without and with the hook, and the median of each run's ratio
    (its two sides measured back to back, so the machine's load drifting cancels out)."""
    from notebook_recorder.hooks.http import _httpx

    server = _Server()
    client = httpx2.Client()

    def cpu() -> float:
        # The calling thread's CPU: the client's work, hook included; not the server thread's.
        start = time.thread_time()
        for _ in range(calls):
            client.post(server.url + "/ping", json={}).read()
        return (time.thread_time() - start) / calls * 1e6

    def with_hook() -> float:
        _httpx.install("httpx2")
        try:
            return cpu()
        finally:
            _httpx.uninstall("httpx2")

    bare, hooked = [], []
    try:
        for _ in range(3):
            cpu()  # warm up
        for i in range(runs):  # each side first in every other run
            if i % 2:
                hooked.append(with_hook())
                bare.append(cpu())
            else:
                bare.append(cpu())
                hooked.append(with_hook())
    finally:
        server.close()
    ratios = [h / b for b, h in zip(bare, hooked, strict=True)]
    return statistics.median(bare), statistics.median(hooked), statistics.median(ratios)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)
    floor_ms, replay_ms, ratio = _replay_vs_floor(args.runs * 4)  # a few ms each: more runs
    live_ms, recording_ms, delay = _first_chunk(args.runs)
    bare_us, hooked_us, idle_ratio = _idle_cost(args.runs, 200)
    idle = idle_ratio - 1
    rows = [
        (
            f"HTTP-level replay, {EVENTS}-event SSE stream (httpx2)",
            f"{replay_ms:.2f} ms vs parse floor {floor_ms:.2f} ms",
            f"{ratio:.2f}x",
            f"<= {GOAL_REPLAY_RATIO}x",
            ratio <= GOAL_REPLAY_RATIO,
        ),
        (
            "time to first chunk while recording",
            f"{recording_ms:.2f} ms vs live {live_ms:.2f} ms",
            f"{delay:+.2f} ms",
            f"<= {GOAL_FIRST_CHUNK_MS} ms",
            delay <= GOAL_FIRST_CHUNK_MS,
        ),
        (
            "CPU of a live call, transport hook in place, no recorder",
            f"{hooked_us:.0f} µs vs {bare_us:.0f} µs",
            f"{idle * 100:+.1f}%",
            f"< {GOAL_IDLE_CPU * 100:.0f}%",
            idle < GOAL_IDLE_CPU,
        ),
    ]
    print("| measure | times (median) | result | goal | ok |")
    print("|---|---|---|---|---|")
    for name, times, result, goal, ok in rows:
        print(f"| {name} | {times} | {result} | {goal} | {'yes' if ok else 'NO'} |")
    return 0 if all(row[-1] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
