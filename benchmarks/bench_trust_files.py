"""Benchmark: what the file-trust guarantees of issue 22 cost.

    python -m benchmarks.bench_trust_files [--runs N]

1. **verify runs in linear time.** ``verify`` on a directory holding one recording whose text is
   a 240 KB line built to make a backtracking leak pattern start again at every character
   (``a-a-a-...``, ``eyJa-eyJa-...``, ``a://b:b:b:...``), against the same directory holding a
   240 KB line of ordinary prose (the baseline). Before the patterns were made linear, the
   ``a-a-a-`` line alone took minutes. Goal: every hostile line within 3x the baseline.
2. **Writing refuses NaN, and never replaces another writer's answer.** ``Store.write`` (which
   walks the record for a NaN or an infinity before ``orjson`` would write it as ``null``, and
   takes the directory's write lock) against the write as it was (``orjson``, a temporary file,
   ``fsync``, rename), on a streamed recording of 2,000 chunks (1 MB). Goal: within 3x (a
   recorded call also pays the API's own latency, far larger).

Medians over ``--runs`` runs, as ratios within one run. Prints a markdown table and exits with
status 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from notebook_recorder.core._codec import dumps
from notebook_recorder.core._store import Store
from notebook_recorder.frontends.cli._verify import verify

GOAL_VERIFY_RATIO = 3.0
GOAL_WRITE_RATIO = 3.0
LINE = 240_000

LINES = {
    "prose (baseline)": ("The quick brown fox jumps over the lazy dog. " * (LINE // 45 + 1))[:LINE],
    "a-a-a-...": "a-" * (LINE // 2),
    "eyJa-eyJa-...": "eyJa-" * (LINE // 5),
    "a://b:b:b:...": "a://" + "b:" * (LINE // 2),
    "x://a:x://a:...": "x://a:" * (LINE // 6),
}


def _record(text: str) -> dict[str, Any]:
    return {
        "test_id": None,
        "request": {
            "method": "POST",
            "url": "https://api.openai.com/v1/chat/completions",
            "headers": {},
            "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]},
            "endpoint": "/v1/chat/completions",
            "model": "gpt-4o",
        },
        "response": {"body": {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}},
        "id_normalization_mapping": {},
    }


def _median(fn: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _stream(chunks: int) -> dict[str, Any]:
    record = _record("")
    record["response"] = {
        "body": [
            {
                "__type__": "openai.types.chat.chat_completion_chunk.ChatCompletionChunk",
                "__data__": {
                    "id": "chatcmpl-1",
                    "object": "chat.completion.chunk",
                    "created": 1700000000,
                    "model": "gpt-4o",
                    "choices": [
                        {"index": 0, "delta": {"content": f"tok{i} "}, "logprobs": None, "finish_reason": None}
                    ],
                },
            }
            for i in range(chunks)
        ],
        "is_streaming": True,
        "chunk_offsets_ms": [i * 0.5 for i in range(chunks)],
    }
    return record


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench_trust_files")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    ok = True
    print("| verify, one 240 KB line of | median | ratio to prose | goal |")
    print("|---|---:|---:|---|")
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in LINES.items():
            directory = Path(tmp) / str(len(timings))
            directory.mkdir()
            (directory / "r.json").write_bytes(orjson.dumps(_record(text), option=orjson.OPT_INDENT_2))
            timings[name] = _median(lambda d=directory: verify(d), args.runs)
    baseline = timings["prose (baseline)"]
    for name, seconds in timings.items():
        ratio = seconds / baseline
        met = ratio <= GOAL_VERIFY_RATIO
        ok &= met
        goal = "" if name.startswith("prose") else f"<= {GOAL_VERIFY_RATIO:g}x {'ok' if met else 'MISSED'}"
        print(f"| {name} | {seconds * 1000:.1f} ms | {ratio:.2f}x | {goal} |")

    record = _stream(2000)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)

        def unchecked() -> None:  # the write as it was: orjson, a temporary file, fsync, rename
            data = orjson.dumps(record, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS) + b"\n"
            fd, name = tempfile.mkstemp(dir=tmp, prefix=".bench.", suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(name, os.path.join(tmp, "plain.json"))

        plain = _median(unchecked, args.runs * 4)
        checked = _median(lambda: store.write("ab" * 32, record, expect=store.snapshot("ab" * 32)), args.runs * 4)
        encode_only = _median(lambda: dumps(record), args.runs * 4)
    ratio = checked / plain
    met = ratio <= GOAL_WRITE_RATIO
    ok &= met
    print()
    print("| writing a 2,000-chunk stream (1 MB) | median | ratio | goal |")
    print("|---|---:|---:|---|")
    print(f"| orjson, temporary file, fsync, rename (baseline) | {plain * 1000:.2f} ms | 1.00x | |")
    print(
        f"| `_codec.dumps` alone (refuses NaN/infinity) | {encode_only * 1000:.2f} ms | {encode_only / plain:.2f}x | |"
    )
    print(
        f"| `Store.write` (the check, the directory lock, the write) | {checked * 1000:.2f} ms | {ratio:.2f}x | "
        f"<= {GOAL_WRITE_RATIO:g}x {'ok' if met else 'MISSED'} |"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
