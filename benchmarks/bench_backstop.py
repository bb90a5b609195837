"""Benchmark: what the trust backstops cost a replayed call and a live call.

    python -m benchmarks.bench_backstop [--runs N] [--calls N]

Two backstops sit below the SDK hooks (``notebook_recorder.hooks._network``): in ``replay`` a hooked
SDK's own code opens no connection and sends nothing, and while a call is recorded every HTTP/1.x
request head it sends is read for the credentials it carried (``_secrets.sent_bytes_secrets``).
Both live in the Python-level socket send methods, which are wrapped once for the life of the
process. This benchmark times, in one process and one run, each row with the wrapped send
methods and with the original ones put back (``__wrapped__``), alternating, and reports the
median ratio:

1. a chat call replayed from a recording (no byte is sent: the cost is the checks around it);
2. a live chat call to a local server on 127.0.0.1 with no recording context;
3. the same call recorded (``record`` mode): the request head is read for credentials.

Goal: each ratio within noise, at most 1.05. Medians over several runs.
"""

from __future__ import annotations

import argparse
import socket
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the local OpenAI-wire server

GOAL_RATIO = 1.05
_SEND_METHODS = (
    (socket.socket, ("send", "sendall", "sendto", "sendmsg")),
    (ssl.SSLSocket, ("send", "sendall")),
    (ssl.SSLObject, ("write",)),
)


@contextmanager
def unguarded() -> Iterator[None]:
    """The socket send methods as they were before notebook-recorder wrapped them."""
    wrapped = {(cls, name): getattr(cls, name) for cls, names in _SEND_METHODS for name in names}
    try:
        for (cls, name), method in wrapped.items():
            setattr(cls, name, getattr(method, "__wrapped__", method))
        yield
    finally:
        for (cls, name), method in wrapped.items():
            setattr(cls, name, method)


def _timed(fn: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def _ratio(fn: Callable[[], Any], calls: int, runs: int) -> tuple[float, float, float]:
    """Median seconds per call without and with the backstops, alternating runs, and the median ratio."""
    without, with_, ratios = [], [], []
    for _ in range(runs):
        with unguarded():
            bare = _timed(fn, calls)
        guarded = _timed(fn, calls)
        without.append(bare)
        with_.append(guarded)
        ratios.append(guarded / bare)
    return statistics.median(without), statistics.median(with_), statistics.median(ratios)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--calls", type=int, default=60)
    args = parser.parse_args(argv)

    import openai
    from wire_server import TEST_API_KEY, WireServer

    import notebook_recorder as nr
    from notebook_recorder.hooks import _network

    server = WireServer().start()
    client = openai.OpenAI(base_url=server.base_url, api_key=TEST_API_KEY, max_retries=0)
    body: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hi"}]}
    rows: list[tuple[str, float, float, float]] = []
    try:
        with tempfile.TemporaryDirectory() as directory:
            with nr.recording("record", dir=directory):
                client.chat.completions.create(**body)
            assert _network._sends_guarded  # the backstops are in place from here on

            def replayed() -> None:
                with nr.recording("replay", dir=directory):
                    client.chat.completions.create(**body)

            def live() -> None:
                client.chat.completions.create(**body)

            def recorded() -> None:
                with nr.recording("record", dir=directory):
                    client.chat.completions.create(**body)

            for name, fn in (
                ("replayed chat call", replayed),
                ("live chat call, no recording", live),
                ("recorded chat call (request head read)", recorded),
            ):
                fn()  # warm
                rows.append((name, *_ratio(fn, args.calls, args.runs)))
    finally:
        server.stop()

    print("| call | without the backstops | with them | ratio (median) | goal |")
    print("|---|---:|---:|---:|---:|")
    missed = False
    for name, bare, guarded, ratio in rows:
        missed |= ratio > GOAL_RATIO
        print(f"| {name} | {bare * 1e6:.0f} µs | {guarded * 1e6:.0f} µs | {ratio:.3f}x | <= {GOAL_RATIO}x |")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
