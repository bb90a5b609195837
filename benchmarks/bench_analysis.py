"""Benchmark: loading a corpus of recordings into the four analysis frames.

    python -m benchmarks.bench_analysis [--runs N] [--dir DIR]

On a synthetic corpus (``benchmarks/_corpus.py``: the llama-stack fixtures copied with varied
content, about 3,400 files and 90 MB) it measures, as medians over interleaved rounds because
shared machines are noisy:

1. the floor: list the directory, read every file and parse it with orjson, nothing else;
2. the first load into all four frames with ``load_frames``, the cache cleared before each run;
3. the reload of the unchanged directory (same call, the cache is used);
4. the peak RSS of a fresh process doing the full load, against the corpus size on disk (plus
   the peak of the helper process that a large load starts, see ``_loader._Helper``).

A load of over a thousand new files uses a helper process on a second CPU (``_loader._Helper``);
the first load without it is reported too, for information. So are the same four frames built
with four separate calls (``load_recordings``, then ``messages``, ``tool_calls`` and
``token_stream`` of its result): each call checks every file's stat again, which is what keeps
them from ever serving stale rows.

It prints a markdown table and exits with status 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from benchmarks._corpus import DEFAULT_DIR, build, files_and_bytes

GOAL_FIRST_VS_FLOOR = 1.5  # first load takes at most 1.5x the floor
GOAL_RELOAD_SPEEDUP = 10.0  # reload at least 10x faster than the first load
GOAL_RSS_VS_DISK = 3.0  # peak RSS at most 3x the corpus on disk


def floor(root: str) -> int:
    """Read and parse every recording, keeping nothing: what any loader has to pay."""
    n = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            if name.endswith(".json"):
                with open(os.path.join(dirpath, name), "rb") as f:
                    orjson.loads(f.read())
                n += 1
    return n


def full_load(root: str) -> tuple[int, int, int, int]:
    """All four frames with one call: ``load_frames`` (one look at the files, one snapshot)."""
    import notebook_recorder.analysis as nra

    frames = nra.load_frames(root, progress=False)
    return tuple(len(f) for f in frames)  # type: ignore[return-value]


def separate_calls(root: str) -> tuple[int, int, int, int]:
    """The same four frames the long way: ``load_recordings`` then the other three on its result."""
    import notebook_recorder.analysis as nra

    df = nra.load_recordings(root, progress=False)
    m = nra.messages(df, progress=False)
    t = nra.tool_calls(df, progress=False)
    s = nra.token_stream(df, progress=False)
    return len(df), len(m), len(t), len(s)


def one_process(root: str) -> tuple[int, int, int, int]:
    """``full_load`` without the helper process that large loads get (see ``_loader._Helper``)."""
    from notebook_recorder.analysis import _loader

    was = _loader.PARALLEL_MIN_FILES
    _loader.PARALLEL_MIN_FILES = sys.maxsize
    try:
        return full_load(root)
    finally:
        _loader.PARALLEL_MIN_FILES = was


def timed(fn: Callable[[], object], before: Callable[[], None] | None = None) -> float:
    if before is not None:
        before()
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


_RSS_SCRIPT = """
import json, resource, sys

def peak_kb(pid="self"):
    # VmHWM is a process's own peak. ru_maxrss is not: on Linux it carries over the parent's
    # peak through fork and exec, which would charge the benchmark's own memory to the child.
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss if pid == "self" else 0

import pandas, pyarrow  # imported before the baseline: the fixed cost of any pandas session
import notebook_recorder.analysis as nra
from notebook_recorder.analysis import _loader
nra.load_recordings  # resolve the lazy import
base = peak_kb()

# A large load runs a helper process (see _loader._Helper): its peak, taken just before it is
# stopped, counts too, as if both peaks were reached at the same time.
helpers = []
stop = _loader._Helper.stop
def measured_stop(self):
    helpers.append(peak_kb(self.proc.pid))
    stop(self)
_loader._Helper.stop = measured_stop

from benchmarks.bench_analysis import full_load
rows = full_load(sys.argv[1])
helper = max(helpers, default=0)
print(json.dumps({"base_kb": base, "peak_kb": peak_kb() + helper, "helper_kb": helper, "rows": rows}))
"""


def peak_rss(root: str) -> dict[str, int]:
    repo = str(Path(__file__).resolve().parent.parent)
    out = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, root],
        check=True,
        capture_output=True,
        text=True,
        cwd=repo,
        env={**os.environ, "PYTHONPATH": repo},
    ).stdout
    result: dict[str, int] = orjson.loads(out.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="runs per measurement (median reported)")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="where the synthetic corpus lives")
    args = parser.parse_args(argv)

    import notebook_recorder.analysis as nra
    from notebook_recorder.analysis import _loader

    t_build = time.time()
    root = str(build(args.dir))
    n_files, n_bytes = files_and_bytes(Path(root))
    # Files written less than RACY_WINDOW_NS ago are never trusted from the cache (see _loader);
    # a corpus is normally older than that, so let a freshly built one age past the window.
    newest = max(os.stat(os.path.join(d, f)).st_mtime for d, _, fs in os.walk(root) for f in fs)
    wait = newest + _loader.RACY_WINDOW_NS / 1e9 + 0.5 - time.time()
    if wait > 0:
        time.sleep(wait)
    print(f"corpus: {root}: {n_files} files, {n_bytes / 1e6:.1f} MB (ready in {time.time() - t_build:.1f} s)")

    floor(root)  # warm the page cache: every measurement below reads from memory
    rows = full_load(root)
    assert separate_calls(root) == rows
    print(f"frames: {rows[0]} recordings, {rows[1]} messages, {rows[2]} tool calls, {rows[3]} chunks")

    # Rounds interleave every measurement, so that a slow patch of a noisy machine hits them all;
    # ratios are taken within a round, then the median over rounds is reported.
    runs: dict[str, list[float]] = {}
    for _ in range(args.runs):
        t = {
            "floor": timed(lambda: floor(root), nra.clear_cache),  # same heap as the first load
            "first": timed(lambda: full_load(root), nra.clear_cache),
            "reload": timed(lambda: full_load(root)),
            "first_one_process": timed(lambda: one_process(root), nra.clear_cache),
            "first_separate": timed(lambda: separate_calls(root), nra.clear_cache),
            "reload_separate": timed(lambda: separate_calls(root)),
            "first_recordings": timed(lambda: nra.load_recordings(root, progress=False), nra.clear_cache),
            "reload_recordings": timed(lambda: nra.load_recordings(root, progress=False)),
        }
        t["r_first"] = t["first"] / t["floor"]
        t["r_reload"] = t["first"] / t["reload"]
        t["r_first_one_process"] = t["first_one_process"] / t["floor"]
        t["r_first_separate"] = t["first_separate"] / t["floor"]
        t["r_reload_separate"] = t["first_separate"] / t["reload_separate"]
        t["r_recordings"] = t["first_recordings"] / t["reload_recordings"]
        for k, v in t.items():
            runs.setdefault(k, []).append(v)
    med = {k: statistics.median(v) for k, v in runs.items()}
    rss = peak_rss(root)
    peak_mb = rss["peak_kb"] * 1024 / 1e6  # KiB
    base_mb = rss["base_kb"] * 1024 / 1e6
    helper_mb = rss["helper_kb"] * 1024 / 1e6
    disk_mb = n_bytes / 1e6

    r_rss = peak_mb / disk_mb
    ok_first = med["r_first"] <= GOAL_FIRST_VS_FLOOR
    ok_reload = med["r_reload"] >= GOAL_RELOAD_SPEEDUP
    ok_rss = r_rss <= GOAL_RSS_VS_DISK

    def mark(ok: bool) -> str:
        return "yes" if ok else "**NO**"

    ms = 1000
    first, reload_, floor_ms = med["first"] * ms, med["reload"] * ms, med["floor"] * ms
    print()
    py = sys.version.split()[0]
    print(f"Medians of {args.runs} interleaved rounds; {n_files} files, {disk_mb:.1f} MB; Python {py}.")
    print()
    print("| measurement | time | ratio | goal | met |")
    print("|---|---:|---:|---:|:---:|")
    print(f"| floor: list the directory, read and `orjson.loads` every file | {floor_ms:.0f} ms | 1.00x | | |")
    print(
        f"| first load into all four frames (`load_frames`, cache cleared) | {first:.0f} ms"
        f" | {med['r_first']:.2f}x floor | <= {GOAL_FIRST_VS_FLOOR}x | {mark(ok_first)} |"
    )
    print(
        f"| reload of the unchanged directory (`load_frames`) | {reload_:.1f} ms"
        f" | {med['r_reload']:.1f}x faster | >= {GOAL_RELOAD_SPEEDUP:.0f}x | {mark(ok_reload)} |"
    )
    print(
        f"| peak RSS of a full load, fresh process | {peak_mb:.0f} MB | {r_rss:.2f}x disk"
        f" | <= {GOAL_RSS_VS_DISK}x | {mark(ok_rss)} |"
    )
    print(
        f"| (info) first load in one process (no helper process) | {med['first_one_process'] * ms:.0f} ms"
        f" | {med['r_first_one_process']:.2f}x floor | | |"
    )
    print(
        f"| (info) four separate calls, first load | {med['first_separate'] * ms:.0f} ms"
        f" | {med['r_first_separate']:.2f}x floor | | |"
    )
    print(
        f"| (info) four separate calls, reload | {med['reload_separate'] * ms:.1f} ms"
        f" | {med['r_reload_separate']:.1f}x faster | | |"
    )
    print(
        f"| (info) `load_recordings` alone: first, reload | {med['first_recordings'] * ms:.0f} ms,"
        f" {med['reload_recordings'] * ms:.1f} ms | {med['r_recordings']:.0f}x faster | | |"
    )
    print(f"| (info) RSS after importing pandas and pyarrow, before loading | {base_mb:.0f} MB | | | |")
    print(f"| (info) of the peak RSS, the helper process's (see `_loader._Helper`) | {helper_mb:.0f} MB | | | |")
    print()
    missed = [name for name, ok in (("first load", ok_first), ("reload", ok_reload), ("memory", ok_rss)) if not ok]
    if missed:
        print(f"goals missed: {', '.join(missed)}")
        return 1
    print("all goals met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
