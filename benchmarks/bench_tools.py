"""Benchmark: what ``nr.tool`` costs.

    python -m benchmarks.bench_tools [--runs N] [--calls N]

1. **Pass-through.** With no recording active the wrapper only checks ``active()`` and calls the
   function. For each kind (sync function, ``async`` function, generator, async generator) it
   times a trivial function wrapped and unwrapped, as medians over several runs because shared
   machines are noisy, and reports the ratio and the added nanoseconds per call. A trivial
   function is the worst case: any real tool (a web search) takes milliseconds.
2. **Replay and record**, for context: one call of a small sync tool replayed from its file, and
   recorded (which writes one file atomically, with ``fsync``).

It prints a markdown table and exits with status 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import notebook_recorder as nr

GOAL_PASS_THROUGH_NS = 500.0  # a sync pass-through adds at most 0.5 µs per call


# The functions under test: as cheap as possible, so that the wrapper's cost shows.


def plain(query: str, limit: int = 3) -> int:
    return limit


async def coroutine(query: str, limit: int = 3) -> int:
    return limit


def generator(query: str, limit: int = 1) -> Iterator[int]:
    yield limit


async def async_generator(query: str, limit: int = 1) -> AsyncIterator[int]:
    yield limit


def _time_sync(fn: Callable[..., Any], calls: int) -> float:
    """Nanoseconds per call of ``fn("q", limit=1)``."""
    start = time.perf_counter_ns()
    for _ in range(calls):
        fn("q", limit=1)
    return (time.perf_counter_ns() - start) / calls


def _time_generator(fn: Callable[..., Any], calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(calls):
        for _item in fn("q", limit=1):
            pass
    return (time.perf_counter_ns() - start) / calls


def _time_coroutine(fn: Callable[..., Any], calls: int) -> float:
    async def loop() -> float:
        start = time.perf_counter_ns()
        for _ in range(calls):
            await fn("q", limit=1)
        return (time.perf_counter_ns() - start) / calls

    return asyncio.run(loop())


def _time_async_generator(fn: Callable[..., Any], calls: int) -> float:
    async def loop() -> float:
        start = time.perf_counter_ns()
        for _ in range(calls):
            async for _item in fn("q", limit=1):
                pass
        return (time.perf_counter_ns() - start) / calls

    return asyncio.run(loop())


KINDS: list[tuple[str, Callable[..., Any], Callable[[Callable[..., Any], int], float]]] = [
    ("sync function", plain, _time_sync),
    ("async function", coroutine, _time_coroutine),
    ("generator", generator, _time_generator),
    ("async generator", async_generator, _time_async_generator),
]


def pass_through(runs: int, calls: int) -> list[tuple[str, float, float, float, float]]:
    """Per kind: (name, unwrapped ns, wrapped ns, median ratio, added ns), medians over ``runs``."""
    rows = []
    for name, fn, timer in KINDS:
        wrapped = nr.tool(fn, provider="bench", name=name)
        timer(fn, calls // 10)  # warm up
        timer(wrapped, calls // 10)
        bare, wrap, ratios = [], [], []
        for _ in range(runs):
            a = timer(fn, calls)
            b = timer(wrapped, calls)
            bare.append(a)
            wrap.append(b)
            ratios.append(b / a)
        rows.append(
            (
                name,
                statistics.median(bare),
                statistics.median(wrap),
                statistics.median(ratios),
                statistics.median(b - a for a, b in zip(bare, wrap, strict=True)),
            )
        )
    return rows


def replay_and_record(runs: int, calls: int) -> tuple[float, float]:
    """Microseconds per replayed call and per recorded call of a small sync tool (medians)."""

    def search(query: str) -> dict[str, Any]:
        return {"query": query, "results": [{"url": "https://example.com", "score": 0.9}] * 3}

    tool = nr.tool(search, provider="bench", name="search")
    replays, records = [], []
    with tempfile.TemporaryDirectory() as directory:
        with nr.recording("record", dir=directory):
            tool("q")
        for _ in range(runs):
            with nr.recording("replay", dir=directory):
                start = time.perf_counter_ns()
                for _ in range(calls):
                    tool("q")
                replays.append((time.perf_counter_ns() - start) / calls / 1000)
            n = max(calls // 20, 10)
            with nr.recording("record", dir=directory):
                start = time.perf_counter_ns()
                for i in range(n):
                    tool(f"q{i % 10}")
                records.append((time.perf_counter_ns() - start) / n / 1000)
            nr.clear_calls()
    return statistics.median(replays), statistics.median(records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="repetitions; medians are reported (default 7)")
    parser.add_argument("--calls", type=int, default=100_000, help="calls per timing (default 100000)")
    args = parser.parse_args(argv)

    rows = pass_through(args.runs, args.calls)
    replay_us, record_us = replay_and_record(args.runs, max(args.calls // 50, 200))

    print(f"## nr.tool pass-through (no recording active), median of {args.runs} runs x {args.calls} calls\n")
    print("| kind | unwrapped ns/call | wrapped ns/call | ratio | added ns/call |")
    print("|---|---:|---:|---:|---:|")
    for name, bare, wrap, ratio, added in rows:
        print(f"| {name} | {bare:.0f} | {wrap:.0f} | {ratio:.2f}x | {added:.0f} |")
    print("\n## with a recorder active (small sync tool)\n")
    print("| operation | µs/call |")
    print("|---|---:|")
    print(f"| replay (file read, parse, decode) | {replay_us:.1f} |")
    print(f"| record (encode, atomic write with fsync) | {record_us:.1f} |")

    added_sync = rows[0][4]
    ok = added_sync <= GOAL_PASS_THROUGH_NS
    verdict = "met" if ok else "MISSED"
    print(f"\nGoal: sync pass-through adds <= {GOAL_PASS_THROUGH_NS:.0f} ns/call: {verdict} ({added_sync:.0f} ns)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
