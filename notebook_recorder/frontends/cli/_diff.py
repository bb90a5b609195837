"""``notebook-recorder diff``: compare two runs (two directories, or two git revisions of one).

The comparison is :func:`notebook_recorder.analysis.diff` (pandas, imported here only when the
command runs). This module finds the two sides, prints the verdict counts and the calls that
changed (or ``--json``), and exits 1 when a call's verdict is in ``--fail-on``.

Two revisions of one directory are read with ``git archive`` into a temporary directory: the
user's working tree and index are never touched (no checkout). ``--from REV`` alone compares that
revision with the files on disk.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ...analysis._verdicts import DEFAULT_FAIL_ON, VERDICT_DOCS, VERDICTS, check_verdicts
from .._render import middle_truncate, text_table
from ._common import CommandLineError, err, existing_dir, out, print_json

VERDICT_NAMES = VERDICTS
VERDICT_HELP = VERDICT_DOCS


def parse_fail_on(values: list[str] | None) -> list[str]:
    """``--fail-on`` values (repeatable, or comma-separated) as verdicts; ``none`` means none."""
    if not values:
        return list(DEFAULT_FAIL_ON)
    names = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if [n.lower() for n in names] == ["none"]:
        return []
    try:
        return check_verdicts(names)
    except ValueError as exc:
        raise CommandLineError(f"--fail-on: {exc} (or 'none')") from None


def cmd_diff(args: argparse.Namespace) -> int:
    """``diff A B`` or ``diff DIR --from REV [--to REV]``."""
    fail_on = parse_fail_on(args.fail_on)
    with _sides(args) as (a, b, label_a, label_b):
        from ...analysis._diff import diff

        frame = diff(a, b)
        failing = frame.failing(fail_on) if fail_on else frame.iloc[0:0]
        ok = len(failing) == 0
        if args.json:
            print_json(
                {
                    "a": label_a,
                    "b": label_b,
                    "ok": ok,
                    "fail_on": fail_on,
                    "counts": {str(k): int(v) for k, v in frame.summary().items()},
                    "calls": [_json_row(row, a, b) for row in frame.to_dict("records")],
                }
            )
        else:
            _print_text(frame, label_a, label_b, a, b, fail_on, len(failing), args.all)
    return 0 if ok else 1


def _print_text(
    frame: Any, label_a: str, label_b: str, a: Path, b: Path, fail_on: list[str], n_failing: int, show_all: bool
) -> None:
    counts = frame.summary()
    out(f"a: {label_a}", f"b: {label_b}", "")
    out(*text_table(["VERDICT", "CALLS"], [[str(v), str(n)] for v, n in counts.items()], frozenset({1}), rule=True))
    shown = frame if show_all else frame[~frame["verdict"].isin(["identical", "same"])]
    if len(shown):
        rows = []
        for row in shown.to_dict("records"):
            rows.append(
                [
                    str(row["verdict"]),
                    middle_truncate(_file(row, a, b), 36),
                    middle_truncate(str(_v(row["test_id"]) or "-"), 40),
                    str(_v(row["endpoint"]) or "-"),
                    _delta(row["total_tokens_delta"]),
                    _delta(row["duration_ms_delta"], ".0f"),
                    middle_truncate(str(_v(row["request_diff"]) or _v(row["changes"]) or ""), 70),
                ]
            )
        header = ["VERDICT", "FILE", "TEST_ID", "ENDPOINT", "ΔTOKENS", "ΔMS", "WHAT"]
        out("", *text_table(header, rows, frozenset({4, 5})))
    out("")
    if not fail_on:
        out(f"{len(frame)} calls compared (--fail-on none)")
    elif n_failing:
        err(f"{n_failing} call(s) with a verdict in --fail-on ({', '.join(fail_on)})")
    else:
        out(f"{len(frame)} calls compared; none with a verdict in --fail-on ({', '.join(fail_on)})")


def _v(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        import pandas as pd

        if value is pd.NA:
            return None
    except ImportError:  # pragma: no cover
        pass
    return value


def _delta(value: Any, fmt: str = "d") -> str:
    value = _v(value)
    if value is None:
        return "-"
    return f"{value:+{fmt}}" if fmt != "d" else f"{int(value):+d}"


def _rel(path: Any, root: Path) -> str | None:
    path = _v(path)
    if path is None:
        return None
    try:
        return os.path.relpath(str(path), str(root))
    except ValueError:
        return str(path)


def _file(row: dict[str, Any], a: Path, b: Path) -> str:
    return _rel(row["path_a"], a) or _rel(row["path_b"], b) or "-"


def _json_row(row: dict[str, Any], a: Path, b: Path) -> dict[str, Any]:
    value = {k: _v(v) for k, v in row.items()}
    value["path_a"], value["path_b"] = _rel(row["path_a"], a), _rel(row["path_b"], b)
    for k, v in list(value.items()):
        if v is not None and not isinstance(v, str | int | float | bool):
            value[k] = int(v) if hasattr(v, "__int__") and not isinstance(v, float) else str(v)
    return value


# --- the two sides ---------------------------------------------------------------------------


@contextlib.contextmanager
def _sides(args: argparse.Namespace) -> Iterator[tuple[Path, Path, str, str]]:
    if args.rev_from is None:
        if args.rev_to is not None:
            raise CommandLineError("--to needs --from")
        if args.b is None:
            raise CommandLineError("give two directories (diff A B), or one and --from REV (diff DIR --from REV)")
        yield existing_dir(args.a), existing_dir(args.b), args.a, args.b
        return
    if args.b is not None:
        raise CommandLineError("--from compares two revisions of one directory: give one directory, not two")
    directory = Path(args.a).expanduser()
    with tempfile.TemporaryDirectory(prefix="notebook-recorder-diff-") as tmp:
        a = _archive(directory, args.rev_from, Path(tmp, "a"))
        if args.rev_to is None:
            b, label_b = existing_dir(args.a), f"{args.a} (working tree)"
        else:
            b, label_b = _archive(directory, args.rev_to, Path(tmp, "b")), f"{args.rev_to}:{args.a}"
        yield a, b, f"{args.rev_from}:{args.a}", label_b


def _git(cwd: Path, *argv: str, binary: bool = False) -> Any:
    try:
        done = subprocess.run(["git", *argv], cwd=cwd, capture_output=True, check=False, timeout=300)
    except FileNotFoundError:
        raise CommandLineError("--from/--to need git, which is not installed") from None
    except subprocess.TimeoutExpired:
        raise CommandLineError(f"git {' '.join(argv)} took more than 300 s") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise CommandLineError(f"git {' '.join(argv)}: {message[-1] if message else 'failed'}")
    return done.stdout if binary else done.stdout.decode().strip()


def _archive(directory: Path, rev: str, dest: Path) -> Path:
    """The files of ``directory`` at revision ``rev``, extracted under ``dest`` (``git archive``)."""
    probe = directory if directory.is_dir() else directory.parent
    while not probe.is_dir():  # the directory may not exist in the working tree any more
        probe = probe.parent
    top = Path(_git(probe, "rev-parse", "--show-toplevel"))
    rel = os.path.relpath(directory.resolve() if directory.exists() else probe.resolve() / directory.name, top)
    rel = "." if rel == "." else rel.replace(os.sep, "/")
    try:
        commit = _git(top, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except CommandLineError:
        commit = ""
    if not commit:
        raise CommandLineError(f"--from/--to: no such revision: {rev} (in the git repository {top})")
    listed = _git(top, "ls-tree", "-d", "--name-only", commit, "--", rel) if rel != "." else "."
    if not listed:
        raise CommandLineError(f"{rel} does not exist at revision {rev}")
    data = _git(top, "archive", "--format=tar", commit, "--", rel, binary=True)
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest / rel
