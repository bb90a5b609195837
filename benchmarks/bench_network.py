"""Benchmark: what the network guard costs when nothing is wrong.

    python -m benchmarks.bench_network [--runs N] [--calls N]

1. **The audit hook.** Once a recording context has started, a ``sys.addaudithook`` hook sees every
   audit event of the process for the rest of its life (it cannot be removed). It returns after
   one string comparison for anything but ``socket.connect``; most of what it adds is CPython's
   own cost of calling any Python audit hook (about 0.3-1 µs per event; a replayed chat call
   raises some twenty audit events, mostly ``builtins.id``). Timed on ``sys._getframe()``, a cheap
   audited call, before and after the hook is added.
2. **The placeholder guard.** Once the replay placeholder key has been put in the environment,
   every Python-level socket send is scanned for it. Timed on ``sendall`` of 1 KiB over a
   ``socketpair``, before and after.

Medians over several runs (shared machines are noisy). It prints a markdown table and exits with
status 1 when a goal is missed. Run it in a fresh process: both guards stay once installed.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import notebook_recorder as nr

GOAL_AUDIT_NS = 3_000.0  # an audited call costs at most 3 µs more (CPython's hook call, mostly)
GOAL_SEND_NS = 3_000.0  # a 1 KiB send costs at most 3 µs more


def _per_call(fn: Callable[[], object], calls: int, runs: int) -> float:
    """Median nanoseconds per call of ``fn`` over ``runs`` runs of ``calls`` calls."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter_ns() - start) / calls)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--calls", type=int, default=100_000)
    args = parser.parse_args(argv)

    left, right = socket.socketpair()
    payload = b"x" * 1024

    def send() -> None:
        left.sendall(payload)
        right.recv(2048)

    getframe = sys._getframe
    before = {
        "audited call (sys._getframe)": _per_call(getframe, args.calls, args.runs),
        "1 KiB sendall + recv": _per_call(send, args.calls // 10, args.runs),
    }
    os.environ.pop("OPENAI_API_KEY", None)  # so that replay installs the placeholder and its guard
    with tempfile.TemporaryDirectory() as directory, nr.recording("replay", dir=directory):
        after = {
            "audited call (sys._getframe)": _per_call(getframe, args.calls, args.runs),
            "1 KiB sendall + recv": _per_call(send, args.calls // 10, args.runs),
        }
    left.close()
    right.close()

    goals = {"audited call (sys._getframe)": GOAL_AUDIT_NS, "1 KiB sendall + recv": GOAL_SEND_NS}
    print("| what | without | with the guard | added | goal |")
    print("|---|---:|---:|---:|---:|")
    missed = False
    for name, goal in goals.items():
        added = after[name] - before[name]
        missed |= added > goal
        print(f"| {name} | {before[name]:.0f} ns | {after[name]:.0f} ns | {added:+.0f} ns | <= {goal:.0f} ns |")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
