"""Benchmark: large corpora (issue 24): export to Parquet, DuckDB, and replay at 100,000 files.

    python -m benchmarks.bench_scale [--files N] [--runs R]     # default N = 10,000
    python -m benchmarks.bench_scale --files 100000             # the full size (heavy: ~3 GB)
    python -m benchmarks.bench_scale --corpus /tmp/c --delete-corpus   # build it there, delete it after

Corpora come from :func:`benchmarks._corpus.build_files` (the llama-stack fixtures, varied), kept
under ``benchmarks/_corpus-N`` between runs (``--corpus DIR`` elsewhere). Every measurement that
needs a fresh process (an export, a load, the first replay) runs in one, timed inside it; peak RSS
is ``ru_maxrss`` of that process and of its workers (the largest one: each holds one batch at a
time).

1. **Export** of N files with ``nr.export`` (both cores) against ``nr.load_recordings`` of the same
   files (one process plus its helper), each from a cold process: files per second.
2. **Peak RSS of the export**: bounded by the batch size, whatever N (goal: under 1 GB).
3. **Incremental re-export** after adding 1% more files (median of three rounds): time against the
   full export (goal: < 5%),
   both timed after pandas and pyarrow are imported (as in a notebook that uses the frames; the
   import, a fixed cost of about half a second, is reported apart), and a re-export with nothing
   changed (one ``stat`` per file and the manifest read), and one after deleting them again.
4. **DuckDB aggregate** (``select model, sum(total_tokens) ... group by 1`` over ``calls``) against
   the same aggregate in pandas after ``load_recordings`` of the recordings.
5. **Replay at N files**: the first replayed call in a fresh process, N recordings against 10
   (goal: <= 1.25x); a miss once the content index is built (no walk of the tree); memory the
   content index keeps per file (goal: < 1 KB).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

GOAL_RSS_MB = 1024
GOAL_INCREMENTAL = 0.05
GOAL_FIRST_REPLAY = 1.25
GOAL_BYTES_PER_FILE = 1024
INCREMENTAL_ROUNDS = 3
EXPORT_ROUNDS = 3
GOAL_EXPORT_RATIO = 3.0


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median ``seconds``."""
    return sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]


def _in_fresh_process(code: str) -> dict[str, Any]:
    """Run ``code`` (which sets ``result``, a dict) in a new interpreter; its result, plus its
    peak RSS and its children's (MB)."""
    script = (
        "import json, resource, sys, time\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "result = {}\n" + code + "\n"
        "result['rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "result['children_rss_mb'] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print('RESULT' + json.dumps(result))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=7200)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark process failed:\n{done.stderr[-3000:]}")
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT"))
    return json.loads(line[6:])  # type: ignore[no-any-return]


def corpus(n: int, where: Path | None = None) -> Path:
    from benchmarks._corpus import build_files

    return build_files(where or ROOT / "benchmarks" / f"_corpus-{n}", n)


# pandas and pyarrow imported before the clock starts, their import timed apart
_IMPORTS = (
    "t = time.perf_counter()\nimport pandas, pyarrow.parquet\nresult['import_seconds'] = time.perf_counter() - t\n"
)


# --- 1-4: export, incremental, DuckDB ---------------------------------------------------------


def export_rows(n: int, where: Path | None = None, rounds: int = EXPORT_ROUNDS) -> dict[str, Any]:
    from benchmarks._corpus import _vary, files_and_bytes

    src = corpus(n, where)
    files, size = files_and_bytes(src)
    tmp = Path(tempfile.mkdtemp(prefix="nr-bench-scale-"))
    try:
        out = tmp / "dataset"
        exports, loads = [], []
        for _ in range(rounds):  # interleaved: a burst of load on the machine hits both
            shutil.rmtree(out, ignore_errors=True)
            exports.append(
                _in_fresh_process(
                    "import notebook_recorder as nr\n" + _IMPORTS + "t = time.perf_counter()\n"
                    f"r = nr.export({str(src)!r}, to={str(out)!r}, progress=False)\n"
                    "result['seconds'] = time.perf_counter() - t; result['files'] = r.files\n"
                )
            )
            loads.append(
                _in_fresh_process(
                    "import notebook_recorder as nr\n"
                    "t = time.perf_counter()\n"
                    f"df = nr.load_recordings({str(src)!r}, progress=False)\n"
                    "result['seconds'] = time.perf_counter() - t\n"
                    "t = time.perf_counter()\n"
                    "totals = df.groupby('model', observed=True)['total_tokens'].sum()\n"
                    "result['groupby_seconds'] = time.perf_counter() - t\n"
                )
            )
        print(
            "export rounds (s): "
            + ", ".join(f"{e['seconds']:.2f} vs {ld['seconds']:.2f}" for e, ld in zip(exports, loads, strict=False)),
            file=sys.stderr,
        )
        export, load = _median_run(exports), _median_run(loads)
        ratios = sorted(e["seconds"] / ld["seconds"] for e, ld in zip(exports, loads, strict=True))
        export["ratio"] = ratios[len(ratios) // 2]  # the median of each round's ratio
        export["peak_main_mb"] = max(e["rss_mb"] for e in exports)
        export["peak_worker_mb"] = max(e["children_rss_mb"] for e in exports)
        # +1%: new, distinct files in a new folder (median of INCREMENTAL_ROUNDS rounds)
        import orjson

        fixtures = sorted((ROOT / "tests" / "fixtures" / "llama-stack").rglob("*.json"))
        originals = [orjson.loads(p.read_bytes()) for p in fixtures]
        extra = src / "zz-added"
        added = max(1, n // 100)
        again = (
            "import notebook_recorder as nr\n" + _IMPORTS + "t = time.perf_counter()\n"
            f"r = nr.export({str(src)!r}, to={str(out)!r}, progress=False)\n"
            "result['seconds'] = time.perf_counter() - t; result['read'] = r.read; result['removed'] = r.removed\n"
        )
        rounds: dict[str, list[dict[str, Any]]] = {"incremental": [], "unchanged": [], "deleted": []}
        for _ in range(INCREMENTAL_ROUNDS):  # add 1%, export, export again, delete them, export
            extra.mkdir()
            try:
                for i in range(added):
                    body = orjson.dumps(_vary(originals[i % len(originals)], 10_000 + i), option=orjson.OPT_INDENT_2)
                    (extra / f"added-{i}.json").write_bytes(body)
                    hour_ago = time.time() - 3600  # not "racy" (just written): read once, not again
                    os.utime(extra / f"added-{i}.json", (hour_ago, hour_ago))
                rounds["incremental"].append(_in_fresh_process(again))
                rounds["unchanged"].append(_in_fresh_process(again))
            finally:
                shutil.rmtree(extra)
            rounds["deleted"].append(_in_fresh_process(again))
        incremental, unchanged, deleted = (_median_run(rounds[k]) for k in ("incremental", "unchanged", "deleted"))
        duck = _in_fresh_process(
            "import notebook_recorder as nr\n"
            "t = time.perf_counter()\n"
            f"con = nr.connect({str(out)!r})\n"
            "rows = con.execute('select model, sum(total_tokens) from calls group by 1').fetchall()\n"
            "result['seconds'] = time.perf_counter() - t\n"
        )
        sliced = _in_fresh_process(
            "import notebook_recorder as nr\n"
            "t = time.perf_counter()\n"
            f"df = nr.load_recordings({str(out)!r}, columns=['model', 'total_tokens'])\n"
            "df.groupby('model', observed=True)['total_tokens'].sum()\n"
            "result['seconds'] = time.perf_counter() - t\n"
        )
        return {
            "files": files,
            "bytes": size,
            "export": export,
            "load": load,
            "incremental": incremental,
            "unchanged": unchanged,
            "deleted": deleted,
            "added": added,
            "duckdb": duck,
            "pandas_slice": sliced,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- 5: replay at N files ---------------------------------------------------------------------


def replay_rows(n: int, runs: int) -> dict[str, Any]:
    from benchmarks.bench_replay import make_directory

    tmp = Path(tempfile.mkdtemp(prefix="nr-bench-replay-scale-"))
    try:
        small, large, misnamed = tmp / "small", tmp / "large", tmp / "misnamed"
        make_directory(small, 10)
        make_directory(large, n)
        first = (
            "import notebook_recorder as nr\n"
            "from benchmarks.bench_replay import _client\n"
            "client = _client()\n"
            "t = time.perf_counter()\n"
            "messages = [{{'role': 'user', 'content': 'question 0'}}]\n"
            "with nr.recording('replay', dir={dir!r}):\n"
            "    client.chat.completions.create(model='gpt-4o', messages=messages)\n"
            "result['ms'] = (time.perf_counter() - t) * 1000\n"
        )
        times: dict[str, list[float]] = {"10": [], "N": []}
        for _ in range(runs):
            times["10"].append(_in_fresh_process(first.format(dir=str(small)))["ms"])
            times["N"].append(_in_fresh_process(first.format(dir=str(large)))["ms"])
        shutil.rmtree(large)
        make_directory(misnamed, n, named_by_key=False)
        index = _in_fresh_process(
            "import gc, tracemalloc\n"
            "from notebook_recorder.core._store import Store\n"
            "from notebook_recorder.core._keys import InferenceRequest\n"
            f"store = Store({str(misnamed)!r})\n"
            "def key(i):\n"
            "    body = {'model': 'gpt-4o', 'messages': [{'role': 'user', 'content': f'question {i}'}]}\n"
            "    return InferenceRequest('POST', '/v1/chat/completions', body).key(None)\n"
            "tracemalloc.start()\n"
            "t = time.perf_counter()\n"
            "assert store.find(key(0)) is not None\n"
            "result['build_s'] = time.perf_counter() - t\n"
            "from notebook_recorder.core import _store\n"
            "_store._parsed.clear(); gc.collect()\n"
            "result['retained'] = tracemalloc.get_traced_memory()[0]\n"
            "tracemalloc.stop()\n"
            "misses = []\n"
            "for i in range(50):\n"
            "    t = time.perf_counter(); store.find(key(-1 - i)); misses.append(time.perf_counter() - t)\n"
            "hits = []\n"
            "for i in range(1, 51):\n"
            "    t = time.perf_counter(); store.find(key(i * 7)); hits.append(time.perf_counter() - t)\n"
            "import statistics\n"
            "result['miss_ms'] = statistics.median(misses) * 1000\n"
            "result['hit_ms'] = statistics.median(hits) * 1000\n"
        )
        return {
            "first_10": statistics.median(times["10"]),
            "first_N": statistics.median(times["N"]),
            "index": index,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000, help="corpus size (default 10,000)")
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per first-replay median (default 5)")
    parser.add_argument(
        "--export-rounds", type=int, default=EXPORT_ROUNDS, help=f"export/load pairs (default {EXPORT_ROUNDS})"
    )
    parser.add_argument("--only", choices=["export", "replay"], help="measure only these rows")
    parser.add_argument("--corpus", type=Path, help="where to build the corpus (default benchmarks/_corpus-N)")
    parser.add_argument("--delete-corpus", action="store_true", help="delete the corpus afterwards")
    args = parser.parse_args(argv)
    n = args.files
    rows: list[tuple[str, str, str, str]] = []
    missed: list[str] = []

    def row(what: str, value: str, goal: str, ok: bool | None) -> None:
        rows.append((what, value, goal, "" if ok is None else "yes" if ok else "**NO**"))
        if ok is False:
            missed.append(what)

    if args.only != "replay":
        try:
            _export_table(export_rows(n, args.corpus, args.export_rounds), row)
        finally:
            if args.delete_corpus:
                shutil.rmtree(args.corpus or ROOT / "benchmarks" / f"_corpus-{n}", ignore_errors=True)
    if args.only != "export":
        _replay_table(replay_rows(n, args.runs), n, row)
    print("| measurement (medians) | result | goal | met |")
    print("|---|---|---|---|")
    for cells in rows:
        print("| " + " | ".join(cells) + " |")
    if missed:
        print(f"\nGoals missed: {'; '.join(missed)}")
    return 1 if missed else 0


Row = Any


def _export_table(e: dict[str, Any], row: Row) -> None:
    files, mb = e["files"], e["bytes"] / 1e6
    ex, load = e["export"], e["load"]
    row(
        f"export of {files:,} files ({mb:,.0f} MB) vs load_recordings, cold processes (both on every core)",
        f"{ex['seconds']:.1f} s = {files / ex['seconds']:,.0f} files/s vs {load['seconds']:.1f} s "
        f"= {files / load['seconds']:,.0f} files/s: {ex['ratio']:.2f}x",
        f"<= {GOAL_EXPORT_RATIO}x",
        ex["ratio"] <= GOAL_EXPORT_RATIO,
    )
    peak = max(ex["peak_main_mb"], ex["peak_worker_mb"])
    row(
        f"peak RSS of the export, {files:,} files: the main process (reads batches too), the largest worker",
        f"main {ex['peak_main_mb']:,.0f} MB, worker {ex['peak_worker_mb']:,.0f} MB; "
        f"load_recordings: {max(load['rss_mb'], load['children_rss_mb']):,.0f} MB",
        f"< {GOAL_RSS_MB} MB, flat",
        peak < GOAL_RSS_MB,
    )
    inc, same = e["incremental"], e["unchanged"]
    ratio = inc["seconds"] / ex["seconds"]
    cold = (inc["seconds"] + inc["import_seconds"]) / (ex["seconds"] + ex["import_seconds"])
    row(
        f"re-export after adding 1% ({e['added']:,} files), against the full export ({ex['seconds']:.1f} s)",
        f"{inc['seconds']:.2f} s = {ratio:.1%} ({inc['read']:,} files read); with the import of pandas and "
        f"pyarrow ({inc['import_seconds']:.2f} s) in both, {cold:.1%}",
        f"< {GOAL_INCREMENTAL:.0%}",
        ratio < GOAL_INCREMENTAL,
    )
    row(
        "  re-export with nothing changed",
        f"{same['seconds']:.2f} s = {same['seconds'] / ex['seconds']:.1%} ({same['read']:,} files read)",
        "",
        None,
    )
    gone = e["deleted"]
    row(
        "  re-export after deleting them again",
        f"{gone['seconds']:.2f} s = {gone['seconds'] / ex['seconds']:.1%} ({gone['removed']:,} files removed)",
        "",
        None,
    )
    duck, sliced = e["duckdb"], e["pandas_slice"]
    pandas_total = load["seconds"] + load["groupby_seconds"]
    row(
        "tokens by model: DuckDB over the dataset vs pandas after load_recordings, cold processes",
        f"{duck['seconds'] * 1000:,.0f} ms ({duck['rss_mb']:,.0f} MB) vs {pandas_total:.1f} s "
        f"({load['rss_mb']:,.0f} MB) = {pandas_total / duck['seconds']:,.0f}x faster",
        "",
        None,
    )
    row(
        "  the same in pandas from the dataset, two columns read (load_recordings(OUT, columns=...))",
        f"{sliced['seconds'] * 1000:,.0f} ms ({sliced['rss_mb']:,.0f} MB)",
        "",
        None,
    )


def _replay_table(r: dict[str, Any], n: int, row: Row) -> None:
    ratio = r["first_N"] / r["first_10"]
    row(
        f"first replayed call in a fresh process: {n:,} recordings vs 10",
        f"{r['first_N']:.2f} ms vs {r['first_10']:.2f} ms = {ratio:.2f}x",
        f"<= {GOAL_FIRST_REPLAY}x",
        ratio <= GOAL_FIRST_REPLAY,
    )
    idx = r["index"]
    per_file = idx["retained"] / n
    row(
        f"content index of {n:,} misnamed recordings: built once, then a miss and a hit",
        f"built in {idx['build_s']:.1f} s; a miss {idx['miss_ms']:.3f} ms, a hit {idx['hit_ms']:.3f} ms",
        "no walk on a miss",
        None,
    )
    row(
        f"memory the content index keeps, {n:,} recordings",
        f"{idx['retained'] / 1e6:.1f} MB = {per_file:.0f} B per file",
        f"< {GOAL_BYTES_PER_FILE} B per file",
        per_file < GOAL_BYTES_PER_FILE,
    )


if __name__ == "__main__":
    sys.exit(main())
