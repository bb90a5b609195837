"""Benchmark: comparing two runs of 10,000 recordings each (``nr.diff``).

    python -m benchmarks.bench_diff [--runs N] [--dir DIR] [--files N]

Two directories of ``--files`` recordings (default 10,000) are built from the llama-stack
fixtures (the files under 64 KB, cycled, each copy with its own ids and ``test_id``, as in
``benchmarks/_corpus.py``). The second is the first re-recorded after a model upgrade: every
file's ids changed (so no file is byte-for-byte equal and every unchanged answer has to be read
to be called ``same``), one in five answers has another text, 1% of the calls are gone and 1%
are new.

It measures, as medians over interleaved rounds, both with the caches cleared:

1. the baseline: loading both directories into the four frames (``load_frames(a)``,
   ``load_frames(b)``);
2. ``nr.diff(a, b)``: the same loads, the pairing and a verdict for every call.

Goal: ``diff`` takes at most 2x the baseline. It prints a markdown table and exits with status 1
when the goal is missed.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from benchmarks._corpus import FIXTURES, _vary

GOAL = 2.0
DEFAULT_DIR = Path(__file__).resolve().parent / "_corpus_diff"
STAMP = ".corpus-diff-v1"


def _upgrade(value: Any, key: str | None = None) -> Any:
    """The same answer re-recorded: fresh ids."""
    if isinstance(value, dict):
        return {k: _upgrade(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_upgrade(v, key) for v in value]
    if isinstance(value, str) and key in ("id", "call_id", "tool_call_id", "response_id"):
        return value + "-rerecorded"
    if key == "created" and isinstance(value, int):
        return value + 86400
    return value


def _reword(value: Any, key: str | None = None) -> Any:
    if isinstance(value, dict):
        return {k: _reword(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_reword(v, key) for v in value]
    if isinstance(value, str) and key in ("content", "text", "delta") and value:
        return value.upper()
    return value


def build(dest: Path, n_files: int) -> tuple[Path, Path]:
    """Write the two runs under ``dest`` (reused when already built with this recipe)."""
    stamp = dest / STAMP
    a, b = dest / "a", dest / "b"
    if stamp.exists() and stamp.read_text() == str(n_files):
        return a, b
    if dest.exists():
        shutil.rmtree(dest)
    sources = [p for p in sorted(FIXTURES.rglob("*.json")) if p.stat().st_size < 64_000]
    originals = [orjson.loads(p.read_bytes()) for p in sources]
    for i in range(n_files):
        data = _vary(originals[i % len(originals)], i)
        name = hashlib.sha256(orjson.dumps([i, data.get("request")])).hexdigest() + ".json"
        group = f"part{i % 20:02d}"
        if i % 100 != 0:  # 1% removed
            _write(a / group / name, data)
        if i % 100 != 1:  # 1% added (b has it, a does not)
            response = {"response": _upgrade(data.get("response"))}
            if i % 5 == 2:  # one in five answers reworded
                response = _reword(response)
            _write(b / group / name, {**data, **response})
    for i in range(n_files // 100):  # keep a the same size: the files b lost
        _write(a / "part99" / f"{i:064x}.json", _vary(originals[i % len(originals)], n_files + i))
    stamp.write_text(str(n_files))
    return a, b


def _write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")


def timed(fn: Callable[[], object], before: Callable[[], None]) -> float:
    before()
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def count(root: Path) -> int:
    return sum(len([f for f in fs if f.endswith(".json")]) for _, _, fs in os.walk(root))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="rounds (median reported)")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="where the two runs are built")
    parser.add_argument("--files", type=int, default=10_000, help="files per run")
    args = parser.parse_args(argv)

    import notebook_recorder.analysis as nra
    from notebook_recorder.analysis import _loader

    t_build = time.time()
    a, b = build(args.dir, args.files)
    newest = max(os.stat(os.path.join(d, f)).st_mtime for d, _, fs in os.walk(args.dir) for f in fs)
    wait = newest + _loader.RACY_WINDOW_NS / 1e9 + 0.5 - time.time()
    if wait > 0:
        time.sleep(wait)
    print(f"runs: {a} ({count(a)} files), {b} ({count(b)} files), ready in {time.time() - t_build:.1f} s")

    def baseline() -> None:
        nra.load_frames(a, progress=False)
        nra.load_frames(b, progress=False)

    result = nra.diff(a, b, progress=False)  # warm the page cache and the imports
    counts = result.summary()
    print("verdicts:", ", ".join(f"{k} {v}" for k, v in counts.items()))

    runs: dict[str, list[float]] = {}
    for _ in range(args.runs):
        t = {
            "baseline": timed(baseline, nra.clear_cache),
            "diff": timed(lambda: nra.diff(a, b, progress=False), nra.clear_cache),
        }
        t["ratio"] = t["diff"] / t["baseline"]
        for k, v in t.items():
            runs.setdefault(k, []).append(v)
    med = {k: statistics.median(v) for k, v in runs.items()}
    ok = med["ratio"] <= GOAL
    print()
    py = sys.version.split()[0]
    print(f"Medians of {args.runs} interleaved rounds; two runs of {args.files} files; Python {py}.")
    print()
    print("| measurement | time | ratio | goal | met |")
    print("|---|---:|---:|---:|:---:|")
    baseline_s = med["baseline"]
    print(f"| load both runs into the four frames (`load_frames` twice) | {baseline_s:.2f} s | 1.00x | | |")
    print(
        f"| `nr.diff(a, b)`, cache cleared | {med['diff']:.2f} s | {med['ratio']:.2f}x | <= {GOAL}x"
        f" | {'yes' if ok else '**NO**'} |"
    )
    print()
    if not ok:
        print("goal missed: diff")
        return 1
    print("all goals met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
