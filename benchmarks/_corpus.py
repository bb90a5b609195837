"""A synthetic corpus of recordings for the benchmarks: the llama-stack fixtures, copied with
varied content until it has about 3,000 files and 90 MB, like a real llama-stack corpus.

Each copy changes the ids, the ``test_id`` and part of the text, so that no two files are equal;
shapes, sizes and the mix of kinds stay those of the fixtures.

    python -m benchmarks._corpus [DIR]      # default: benchmarks/_corpus (gitignored)
    python -m benchmarks._corpus DIR N      # N files exactly (10000, 100000: bench_scale's corpora)

:func:`build_files` writes exactly N files the same way, in folders of 1,000 (as CI runs and
evaluations leave them), each copy recorded on one of 30 days (``recorder.recorded_at``) so that
exports partition as real corpora do.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "llama-stack"
DEFAULT_DIR = Path(__file__).resolve().parent / "_corpus"
STAMP = ".corpus-v1"  # bump when the recipe changes
TEXT_KEYS = frozenset({"content", "text", "response", "delta", "thinking"})


def _vary(value: Any, copy: int, key: str | None = None) -> Any:
    """``value`` with its ids and some of its text changed, deterministically per copy."""
    if isinstance(value, dict):
        return {k: _vary(v, copy, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_vary(v, copy, key) for v in value]
    if isinstance(value, str) and value:
        if key in ("id", "call_id", "tool_call_id", "response_id"):
            return f"{value}-{copy}"
        if key == "test_id":
            return f"{value}[copy{copy}]"
        if key in TEXT_KEYS and (len(value) + copy) % 3 == 0:
            return value.swapcase()
    return value


def build(dest: Path = DEFAULT_DIR, copies: int = 27) -> Path:
    """Write the corpus into ``dest`` (reused when already built with this recipe)."""
    stamp = dest / STAMP
    if stamp.exists() and stamp.read_text() == str(copies):
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    sources = sorted(FIXTURES.rglob("*.json"))
    originals = [(p.relative_to(FIXTURES).parent, orjson.loads(p.read_bytes())) for p in sources]
    for copy in range(copies):
        for rel, data in originals:
            varied = _vary(data, copy)
            body = orjson.dumps(varied, option=orjson.OPT_INDENT_2) + b"\n"
            out = dest / f"copy{copy:02d}" / rel / f"{hashlib.sha256(body).hexdigest()}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(body)
    stamp.write_text(str(copies))
    return dest


FILES_STAMP = ".corpus-files-v1"


def build_files(dest: Path, n: int) -> Path:
    """Write ``n`` varied recordings under ``dest`` (reused when already built with this recipe)."""
    stamp = dest / FILES_STAMP
    if stamp.exists() and stamp.read_text() == str(n):
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    sources = sorted(FIXTURES.rglob("*.json"))
    originals = [orjson.loads(p.read_bytes()) for p in sources]
    for i in range(n):
        copy, which = divmod(i, len(originals))
        varied = _vary(originals[which], copy)
        if isinstance(varied, dict):
            recorder = varied.get("recorder") if isinstance(varied.get("recorder"), dict) else {}
            when = f"2026-11-{1 + copy % 30:02d}T{copy % 24:02d}:{copy // 720 % 60:02d}:00Z"
            varied["recorder"] = {**recorder, "recorded_at": when}
        body = orjson.dumps(varied, option=orjson.OPT_INDENT_2) + b"\n"
        out = dest / f"batch{i // 1000:04d}" / f"{hashlib.sha256(body).hexdigest()}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(body)
    stamp.write_text(str(n))
    return dest


def files_and_bytes(root: Path) -> tuple[int, int]:
    n = size = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            if name.endswith(".json"):
                n += 1
                size += os.path.getsize(os.path.join(dirpath, name))
    return n, size


if __name__ == "__main__":
    if len(sys.argv) > 2:
        where = build_files(Path(sys.argv[1]), int(sys.argv[2]))
    else:
        where = build(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR)
    n, size = files_and_bytes(where)
    print(f"{where}: {n} files, {size / 1e6:.1f} MB")
