"""Benchmark: explaining a missing recording in a folder of 30,000 files (issue 28).

    python -m benchmarks.bench_notfound [--files N] [--runs N] [--full-scan]

A replay miss raises ``RecordingNotFoundError`` with the nearest recorded request and the diff
(``_notfound.missing_message``). Before issue 28 that search parsed and diffed every recording in
the folder on every miss: with 27,600 files, about 6 s per refused call. Now each recording is
summarized (endpoint, model, a digest of each leaf of its request) once, a large folder's
summaries are kept in the user's cache directory for the next process, and at most
``MAX_COMPARED`` recordings of the nearest kind are diffed.

The folder: ``--files`` recordings (default 30,000) of chat completions, Messages calls and
embeddings over 12 models, each a few turns long. The miss: a chat completion that differs from
one of them in ``temperature``. The baseline: the same kind of miss in a folder of 100 such
recordings, in a new process. Each "new process" row is measured in a fresh interpreter (the
time of the explanation only, not of the imports), medians over ``--runs``:

- **first miss of a new process**, the folder's summaries cached on disk by an earlier process:
  the goal is **under 0.5 s**;
- **later misses** in the same process;
- **first miss ever** (no cache on disk: every file is read once, then the cache is written);
- the **whole replay miss of a new process**: the store's lookup (which, on a miss by name, builds
  its content index of every file's key) and then the explanation. With the folder seen before
  (the content index and the summaries cached on disk: ``core/_index_cache.py``) the goal is
  **under 1 s**; the first time ever, each file is parsed once (the summaries are built from the
  content index's parse) and both caches are written.

Every run checks that each explanation is the same message; ``--full-scan`` also checks that it
names the same nearest recording and diff as the search before issue 28 (every file diffed;
minutes at 30,000 files on a loaded machine). The cache directory is private to the benchmark
(``.cache/bench-notfound/xdg``). Prints a markdown table; exits 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / ".cache" / "bench-notfound"
XDG = CORPUS / "xdg"  # the benchmark's own user cache directory
BASELINE_FILES = 100
GOAL_SECONDS = 0.5
WHOLE_GOAL_SECONDS = 1.0
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


def _miss(folder: Path, files: int) -> tuple[Any, Any]:
    """The recorder of ``folder`` and the request it misses: a chat completion of the folder's
    middle with another ``temperature``."""
    from notebook_recorder.core._keys import InferenceRequest
    from notebook_recorder.core._recorder import Recorder

    near = _request(files // 6 * 3)
    body = {**near["body"], "temperature": 0.2}
    request = InferenceRequest("POST", near["endpoint"], body, body["model"], near["url"])
    return Recorder("replay", dir=folder), request


def child(folder: Path, files: int, lookup: bool) -> dict[str, Any]:
    """In a fresh interpreter: the first miss's explanation (after the store's lookup, timed
    apart, with ``lookup``), then three later ones."""
    from notebook_recorder.core import _notfound

    recorder, request = _miss(folder, files)
    key = request.key(None)
    lookup_seconds = 0.0
    if lookup:
        lookup_seconds, found = _timed(recorder.store.find_latest, key, 1)
        assert found is None
    first, message = _timed(_notfound.missing_message, recorder, request, key)
    later = []
    messages = {message}
    for _ in range(3):
        seconds, message = _timed(_notfound.missing_message, recorder, request, key)
        later.append(seconds)
        messages.add(message)
    return {"lookup": lookup_seconds, "first": first, "later": later, "messages": sorted(messages)}


def _in_new_process(folder: Path, files: int, *, lookup: bool = False) -> dict[str, Any]:
    env = {**os.environ, "XDG_CACHE_HOME": str(XDG), "PYTHONPATH": str(ROOT)}
    env.pop("APIREC_CACHE_DIR", None)  # the benchmark's own cache directory: $XDG_CACHE_HOME/notebook-recorder
    argv = [sys.executable, "-m", "benchmarks.bench_notfound", "--child", str(folder), "--files", str(files)]
    done = subprocess.run(
        [*argv, *(["--lookup"] if lookup else [])], env=env, cwd=ROOT, capture_output=True, check=True
    )
    result: dict[str, Any] = orjson.loads(done.stdout.splitlines()[-1])
    return result


def _timed(function: Any, *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def main(argv: list[str] | None = None) -> int:
    """Build the folders, time the misses in fresh processes, print the table; 1 when a goal is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=30_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--full-scan", action="store_true", help="also check against the search before issue 28")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--lookup", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(orjson.dumps(child(args.child, args.files, args.lookup)).decode())
        return 0

    from notebook_recorder.core import _user_cache

    folder, small = build(CORPUS, args.files), build(CORPUS, BASELINE_FILES)
    saved = {name: os.environ.pop(name, None) for name in ("XDG_CACHE_HOME", "APIREC_CACHE_DIR")}
    os.environ["XDG_CACHE_HOME"] = str(XDG)  # this process's searches too (--full-scan)
    try:
        caches = [_user_cache.cache_path(part, folder.resolve()) for part in ("nearest", "index")]
        return _measure(args, folder, small, [cache for cache in caches if cache is not None])
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _measure(args: argparse.Namespace, folder: Path, small: Path, caches: list[Path]) -> int:
    """The rows of the table (see the module's docstring)."""

    def forget() -> None:
        for cache in caches:
            cache.unlink(missing_ok=True)

    messages: set[str] = set()
    baseline, cold, warm, later, whole_cold, whole_warm, lookups = [], [], [], [], [], [], []
    for _ in range(args.runs):
        baseline.append(_in_new_process(small, BASELINE_FILES)["first"])
        forget()
        result = _in_new_process(folder, args.files)  # no cache on disk: every file read, then cached
        cold.append(result["first"])
        messages.update(result["messages"])
        result = _in_new_process(folder, args.files)  # the cache written by the run before
        warm.append(result["first"])
        later += result["later"]
        messages.update(result["messages"])
        forget()
        result = _in_new_process(folder, args.files, lookup=True)  # the whole miss, the first time ever
        whole_cold.append(result["lookup"] + result["first"])
        messages.update(result["messages"])
        result = _in_new_process(folder, args.files, lookup=True)  # and in the next process
        whole_warm.append(result["lookup"] + result["first"])
        lookups.append(result["lookup"])
        messages.update(result["messages"])
    same = "not checked (--full-scan)"
    if args.full_scan:
        from notebook_recorder.core import _notfound

        recorder, request = _miss(folder, args.files)
        expected = _full_scan(recorder, request)
        found = _notfound.nearest(recorder, request)
        assert expected is not None and found is not None
        match = found[0] == expected[0] and [str(c) for c in found[1]] == [str(c) for c in expected[1]]
        same = "yes" if match else "NO"

    median = statistics.median
    reference = median(baseline)

    def row(what: str, seconds: float, goal: str = "") -> str:
        return f"| {what} | {seconds * 1000:,.0f} ms | {seconds / reference:.1f}x | {goal} |"

    files = sum(1 for name in os.listdir(folder) if name.endswith(".json"))
    warm_median, whole_median = statistics.median(warm), statistics.median(whole_warm)
    met = warm_median < GOAL_SECONDS and whole_median < WHOLE_GOAL_SECONDS
    print(f"Missing-recording explanation, {files:,} recordings in the folder (medians of {args.runs} runs)\n")
    print("| miss | time | vs. 100 files | goal |")
    print("| --- | ---: | ---: | ---: |")
    print(row(f"baseline: first miss of a new process, {BASELINE_FILES} recordings", reference, "1x"))
    print(row("first miss of a new process, summaries cached on disk", warm_median, _goal(warm, GOAL_SECONDS)))
    print(row("later misses in the same process", statistics.median(later)))
    print(row("first miss ever (no cache: every file read once, then cached)", statistics.median(cold)))
    print(
        row(
            "whole replay miss of a new process (lookup and explanation), folder seen before",
            whole_median,
            _goal(whole_warm, WHOLE_GOAL_SECONDS),
        )
    )
    print(row("... of which the store's lookup (content index from the cache)", statistics.median(lookups)))
    print(
        row("whole replay miss, the first time ever (no cache: each file parsed once)", statistics.median(whole_cold))
    )
    one = len(messages) == 1
    print(
        f"\nThe same message on every miss: {'yes' if one else 'NO'}; the same nearest and diff as a full scan: {same}"
    )
    return 0 if met and one and same != "NO" else 1


def _goal(times: list[float], goal: float) -> str:
    return f"< {goal:.1f} s: {'met' if statistics.median(times) < goal else 'MISSED'}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
