"""Run every ``benchmarks/bench_*.py`` module in turn: ``python -m benchmarks``.

Each module has a ``main(argv) -> int`` that prints a markdown table and returns non-zero when
one of its goals is missed. The exit status is non-zero when any module missed a goal.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path


def main() -> int:
    names = sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    only = set(sys.argv[1:])
    failed = []
    for name in names:
        if only and name not in only and name.removeprefix("bench_") not in only:
            continue
        print(f"\n## {name}\n", flush=True)
        started = time.perf_counter()
        module = importlib.import_module(f"benchmarks.{name}")
        status = module.main([])
        print(
            f"\n({name}: {'ok' if status == 0 else 'GOAL MISSED'}, {time.perf_counter() - started:.0f} s)", flush=True
        )
        if status:
            failed.append(name)
    if failed:
        print(f"\nGoals missed in: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
