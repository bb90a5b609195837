"""Benchmark: explaining a missing recording in a folder of 30,000 files (issue 28).

    python -m benchmarks.bench_notfound [--files N] [--runs N]

A replay miss raises ``RecordingNotFoundError`` with the nearest recorded request and the diff
(``_notfound.missing_message``). Before issue 28 that search parsed and diffed every recording in
the folder on every miss: with 27,600 files, about 6 s per refused call. Now the folder's requests
are summarized by endpoint and model once per process, and at most ``MAX_COMPARED`` recordings of
the nearest kind are diffed.

The folder: ``--files`` recordings (default 30,000) of chat completions, Messages calls and
embeddings over 12 models, each a few turns long. The miss: a chat completion that differs from
one of them in ``temperature``. Measured, medians over ``--runs``:

- **full scan**: the old search (parse and diff every file), the baseline;
- **first miss**: the explanation with nothing summarized yet (each file is read once, as the
  store's own content index does on a miss);
- **later misses**: the explanation once the folder is summarized (every refused call after the
  first): the goal is well under a second, **under 0.5 s**, and the same nearest recording and
  diff as the full scan.

Prints a markdown table; exits 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / ".cache" / "bench-notfound"
GOAL_SECONDS = 0.5
MODELS = [f"model-{i}" for i in range(12)]
ENDPOINTS = ["/v1/chat/completions", "/v1/messages", "/v1/embeddings"]


def _request(i: int) -> dict[str, Any]:
    endpoint = ENDPOINTS[i % len(ENDPOINTS)]
    model = MODELS[(i // 3) % len(MODELS)]
    if endpoint == "/v1/embeddings":
        body: dict[str, Any] = {"model": model, "input": f"document {i} about topic {i % 97}"}
    else:
        turns = [{"role": "user", "content": f"question {i}: what is {i % 89} times {i % 13}?"}]
        turns += [{"role": "assistant", "content": f"answer {j}"} for j in range(i % 4)]
        body = {"model": model, "messages": turns, "max_tokens": 64 + i % 5, "temperature": 0.5}
    return {"method": "POST", "url": f"https://api.example.com{endpoint}", "endpoint": endpoint, "body": body}


def build(root: Path, files: int) -> Path:
    """``files`` recordings under ``root/<files>`` (reused once built)."""
    from notebook_recorder.core._keys import request_from_record

    folder = root / str(files)
    done = folder / ".complete"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        record = {"test_id": None, "request": _request(i), "response": {"body": {"id": f"r{i}"}, "is_streaming": False}}
        request = request_from_record(record)
        assert request is not None
        (folder / f"{request.key(None)}.json").write_bytes(orjson.dumps(record))
    done.write_text("ok")
    return folder


def _full_scan(recorder: Any, request: Any) -> tuple[Path, list[Any]] | None:
    """The search before issue 28: every file parsed and diffed."""
    from notebook_recorder.core._keys import comparable, diff, request_from_record

    wanted = comparable(request, recorder.scope, recorder.rules)
    best: tuple[tuple[int, float], Path, list[Any]] | None = None
    for path, record in recorder.store.records():
        stored = request_from_record(record)
        if stored is None or type(stored) is not type(request):
            continue
        test_id = record.get("test_id")
        changes = diff(comparable(stored, test_id if isinstance(test_id, str) else None, recorder.rules), wanted)
        rank = (len(changes), sum(change.distance for change in changes))
        if best is None or rank < best[0]:
            best = (rank, path, changes)
    return (best[1], best[2]) if best else None


def _timed(function: Any, *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def main(argv: list[str] | None = None) -> int:
    """Build the folder, time the three searches, print the table; 1 when a goal is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=30_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)

    from notebook_recorder.core import _notfound
    from notebook_recorder.core._keys import InferenceRequest
    from notebook_recorder.core._recorder import Recorder
    from notebook_recorder.core._store import forget_indexes

    folder = build(CORPUS, args.files)
    near = _request(args.files // 6 * 3)  # a chat completion from the middle of the folder
    body = {**near["body"], "temperature": 0.2}
    request = InferenceRequest("POST", near["endpoint"], body, body["model"], near["url"])
    recorder = Recorder("replay", dir=folder)
    key = request.key(None)

    full: list[float] = []
    cold: list[float] = []
    warm: list[float] = []
    expected = None
    messages: set[str] = set()
    for _ in range(args.runs):
        forget_indexes()
        _notfound.forget_summaries()
        seconds, expected = _timed(_full_scan, recorder, request)
        full.append(seconds)
        seconds, message = _timed(_notfound.missing_message, recorder, request, key)
        cold.append(seconds)
        messages.add(message)
        for _ in range(3):
            seconds, message = _timed(_notfound.missing_message, recorder, request, key)
            warm.append(seconds)
            messages.add(message)
    assert expected is not None
    found = _notfound.nearest(recorder, request)
    same = found is not None and found[0] == expected[0] and [str(c) for c in found[1]] == [str(c) for c in expected[1]]
    baseline = statistics.median(full)

    def row(what: str, seconds: float, goal: str) -> str:
        return f"| {what} | {seconds * 1000:,.0f} ms | {baseline / seconds:.0f}x | {goal} |"

    files = sum(1 for name in os.listdir(folder) if name.endswith(".json"))
    print(f"Missing-recording explanation, {files:,} recordings in the folder (medians of {args.runs} runs)\n")
    print("| search | time | faster than the full scan | goal |")
    print("| --- | --- | --- | --- |")
    print(f"| full scan (before issue 28: every file parsed and diffed) | {baseline * 1000:,.0f} ms | 1x | baseline |")
    print(row("first miss (folder summarized now, then the nearest diffed)", statistics.median(cold), "-"))
    warm_median = statistics.median(warm)
    met = warm_median < GOAL_SECONDS
    print(row("later misses (summarized folder)", warm_median, f"< {GOAL_SECONDS:.1f} s: {'met' if met else 'MISSED'}"))
    print(f"\nSame nearest recording and diff as the full scan: {'yes' if same else 'NO'}", end="; ")
    print(f"the same message on every miss: {'yes' if len(messages) == 1 else 'NO'}")
    return 0 if met and same and len(messages) == 1 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
