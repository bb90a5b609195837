"""Benchmark: what the pytest plugin adds to a session that does not use it.

    python -m benchmarks.bench_pytest_plugin [--rounds N] [--tests N]

The plugin is loaded by every pytest session where the package is installed, so it must cost
nothing noticeable when no test is marked. This generates a session of 200 plain tests (10
modules, plain and parametrized tests, a fixture) in a temporary directory and times the whole
``python -m pytest`` run, in a subprocess, with the plugin and without it (``-p
no:notebook_recorder``). Runs alternate, with and without, so that a machine getting busier
affects both; the result is the ratio of the medians, of wall time and of CPU time (user and
system, which other processes on a shared machine disturb less: the goal is checked on it).
``OPENAI_API_KEY`` is unset, so the plugin installs its replay placeholder key at configure, as in CI.

It prints a markdown table and exits with status 1 when the goal is missed.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import entry_points
from pathlib import Path

GOAL_RATIO = 1.05  # the plugin adds at most 5% to a session that does not use it

MODULE = """
import pytest


@pytest.fixture
def numbers():
    return list(range(10))


@pytest.mark.parametrize("n", range({params}))
def test_param(n, numbers):
    assert numbers[n % 10] == n % 10
"""


def write_session(root: Path, tests: int, modules: int = 10) -> None:
    """``tests`` plain tests in ``modules`` modules: parametrized tests and plain ones."""
    per_module = tests // modules
    params = per_module // 2
    plain = per_module - params
    for number in range(modules):
        body = MODULE.format(params=params)
        body += "".join(f"\n\ndef test_plain_{i}():\n    assert {i} + 1 == {i + 1}\n" for i in range(plain))
        (root / f"test_module_{number:02}.py").write_text(body)
    (root / "pytest.ini").write_text("[pytest]\n")


def _registered() -> bool:
    return any(ep.name == "notebook_recorder" for ep in entry_points(group="pytest11"))


def _time_session(root: Path, flags: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one session, in seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *flags],
        cwd=root,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=11, help="sessions with and without the plugin (default 11)")
    parser.add_argument("--tests", type=int, default=200, help="tests in the session (default 200)")
    args = parser.parse_args(argv)

    if _registered():
        with_plugin, without_plugin = [], ["-p", "no:notebook_recorder"]
    else:  # installed before the entry point existed: load the plugin by name
        with_plugin, without_plugin = ["-p", "notebook_recorder.pytest_plugin"], []
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "APIREC_MODE", "APIREC_DIR")}
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH")])
    )

    times: dict[str, list[tuple[float, float]]] = {"with": [], "without": []}
    with tempfile.TemporaryDirectory(prefix="bench-pytest-plugin-") as tmp:
        root = Path(tmp)
        write_session(root, args.tests)
        _time_session(root, with_plugin, env)  # warm the file cache and the .pyc files
        _time_session(root, without_plugin, env)
        for number in range(args.rounds):
            order = [("with", with_plugin), ("without", without_plugin)]
            for name, flags in order if number % 2 == 0 else reversed(order):
                times[name].append(_time_session(root, flags, env))

    def median(name: str, column: int) -> float:
        return statistics.median(run[column] for run in times[name])

    wall, cpu = (median("with", 0) / median("without", 0)), (median("with", 1) / median("without", 1))
    # The goal is checked on CPU time, which other processes on a shared machine disturb less.
    ok = cpu <= GOAL_RATIO
    print(
        f"A session of {args.tests} unmarked tests, whole `python -m pytest` runs, medians of {args.rounds} rounds:\n"
    )
    print("| session | wall time | CPU time | ratio (wall) | ratio (CPU) | goal |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, label in (("without", "without the plugin (`-p no:notebook_recorder`)"), ("with", "with the plugin")):
        ratios = "1.00x | 1.00x | " if name == "without" else f"{wall:.3f}x | {cpu:.3f}x | <= {GOAL_RATIO:.2f}x (CPU)"
        print(f"| {label} | {median(name, 0) * 1000:.0f} ms | {median(name, 1) * 1000:.0f} ms | {ratios} |")
    added = (median("with", 1) - median("without", 1)) * 1000
    print(f"\n{'ok' if ok else 'GOAL MISSED'}: the plugin adds {added:+.0f} ms of CPU time")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
