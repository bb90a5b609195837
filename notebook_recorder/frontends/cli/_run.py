"""``notebook-recorder run`` and ``prune``: execute notebooks (:mod:`._notebooks`) and print what
happened, a line per cell and a summary per notebook."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...core._errors import RecordingFormatError
from ...core._modes import Mode
from ...core._store import read_recording, relative, stale_temp_files, walk_recordings
from .._render import indent, middle_truncate, plural
from ._common import PROG, CommandLineError, err, existing_dir, out, print_json


def _notebook_paths(values: Sequence[str]) -> list[Path]:
    paths = []
    for value in values:
        path = Path(value).expanduser()
        if not path.is_file():
            raise CommandLineError(f"no such notebook: {value}")
        if path.suffix != ".ipynb":
            raise CommandLineError(f"not a notebook (expected .ipynb): {value}")
        paths.append(path)
    return paths


def _progress(cell: Any, total: int) -> None:
    status = {"ok": "ok", "expected-error": "ok (raised, as tagged)"}.get(cell.status, f"FAILED: {cell.status}")
    hint = middle_truncate(cell.first_line, 60)
    out(f"[{cell.number}/{total}] cell {cell.index + 1} {status} ({cell.seconds:.1f}s)  {hint}")


def _execute(path: Path, args: argparse.Namespace, mode: str) -> Any:
    from ..notebooks._runner import execute

    out(f"{path} (mode {mode})")
    return execute(path, mode=mode, timeout=args.timeout, kernel_name=args.kernel, on_cell=_progress)


def failure_lines(run: Any) -> list[str]:
    """What ``run`` says about the cell that stopped a notebook (the pytest plugin says it too)."""
    from ..notebooks._runner import summarize_traceback

    cell = run.failure
    where = f"cell {cell.index + 1}"
    if cell.status == "missing-recording":
        return [
            f"FAILED {run.path.name}, {where}: a call has no recording",
            *indent(cell.evalue, "  "),
            "  To record the missing call (needs an API key), run the notebook once with:",
            f"    {PROG} run {run.path} --mode record-if-missing",
        ]
    if cell.status in ("timeout", "dead-kernel"):
        return [f"FAILED {run.path.name}, {where}: {cell.ename}: {cell.evalue}"]
    lines = [f"FAILED {run.path.name}, {where} raised {cell.ename}: {cell.evalue}"]
    return lines + indent("\n".join(summarize_traceback(cell.traceback)), "  | ")


def _summary(run: Any, verdict: str) -> str:
    outcomes = run.outcomes()
    total = sum(outcomes.values())
    if not total:
        calls = "no recorded calls"
    elif len(outcomes) == 1:
        (outcome,) = outcomes
        calls = f"{plural(total, 'call')} {outcome}"
    else:
        calls = f"{plural(total, 'call')} (" + ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())) + ")"
    if total:
        calls += f" from {plural(len(run.files_used()), 'file')}"
    ran = len(run.cells)
    cells = f"{ran} code cells" if ran == run.code_cells else f"{ran} of {run.code_cells} code cells"
    return f"{run.path.name}: {cells}, {calls}, {run.seconds:.1f}s: {verdict}"


def _output_targets(paths: list[Path], output: str | None) -> dict[Path, Path]:
    if output is None:
        return {}
    target = Path(output).expanduser()
    if len(paths) == 1 and not target.is_dir() and not output.endswith(("/", os.sep)):
        return {paths[0]: target}
    names = [p.name for p in paths]
    if len(set(names)) != len(names):
        raise CommandLineError("--output DIR needs notebooks with different file names")
    if target.exists() and not target.is_dir():
        raise CommandLineError(f"--output must be a directory when running several notebooks: {output}")
    return {p: target / p.name for p in paths}


def cmd_run(args: argparse.Namespace) -> int:
    """``run NB...``: execute notebooks, optionally checking their outputs.

    In the record modes a notebook that runs without error gets its outputs written back
    (``--no-store`` keeps the file as it was; ``--output`` writes elsewhere): the recordings and
    the outputs they produce are stored together, and the next ``run NB --check`` passes.
    """
    paths = _notebook_paths(args.notebooks)
    if args.no_store and args.output is not None:
        raise CommandLineError("--no-store and --output contradict each other: give one of them")
    targets = _output_targets(paths, args.output)
    store_back = set(paths) if args.output is None and not args.no_store and Mode.parse(args.mode).writes else set()
    if args.json:  # the progress and the report go to stderr, the JSON alone to stdout
        results: list[dict[str, Any]] = []
        with contextlib.redirect_stdout(sys.stderr):
            status = _run_all(args, paths, targets, store_back, results)
        print_json({"ok": status == 0, "notebooks": results})
        return status
    return _run_all(args, paths, targets, store_back, [])


def _run_all(
    args: argparse.Namespace,
    paths: list[Path],
    targets: dict[Path, Path],
    store_back: set[Path],
    results: list[dict[str, Any]],
) -> int:
    from ..notebooks._comparison import compare, has_stored_outputs
    from ..notebooks._runner import NotebookError, write_notebook

    failed: list[str] = []
    for number, path in enumerate(paths):
        if number:
            out("")
        try:
            run = _execute(path, args, args.mode)
        except NotebookError as exc:
            err(f"FAILED {exc}")
            failed.append(path.name)
            results.append({"notebook": str(path), "ok": False, "error": str(exc)})
            continue
        ok = run.failure is None
        diffs: list[Any] = []
        if not ok:
            err(*failure_lines(run))
        if ok and args.check:
            if not has_stored_outputs(run.stored):
                err(
                    f"FAILED {path.name}: the notebook has no stored outputs to check against",
                    f"  store them with: {PROG} run {path} --output {path}",
                )
                ok = False
            else:
                diffs = compare(run)
                for diff in diffs:
                    count = f", execution count {diff.execution_count}" if diff.execution_count else ""
                    out(f"cell {diff.index + 1}{count}: outputs differ", *indent("\n".join(diff.diff), "  "))
                if diffs:
                    if any(_only_untagged_notes(diff.diff) for diff in diffs):
                        out(
                            "  the stored outputs hold notebook-recorder's notes as plain output (saved by an older",
                            "  version), and notes are no longer compared; store the outputs again with:",
                            f"  {PROG} run {path} --output {path}",
                        )
                    err(f"FAILED {path.name}: {len(diffs)} cell(s) with different outputs")
                    ok = False
        written: Path | None = None
        if path in targets:
            written = targets[path]
            write_notebook(run.executed, written)
            out(f"wrote {written}")
        elif path in store_back:
            if run.failure is None:
                written = path
                write_notebook(run.executed, path)
                out(f"stored the outputs in {path} (--no-store keeps the file as it was)")
            else:  # a partial run never replaces the outputs a notebook has
                out(f"{path} left as it was: a cell failed")
        verdict = "failed" if not ok else ("outputs match" if args.check else "ok")
        out(_summary(run, verdict))
        if not ok:
            failed.append(path.name)
        results.append(
            {
                "notebook": str(path),
                "ok": ok,
                "verdict": verdict,
                "cells_run": len(run.cells),
                "calls": run.outcomes(),
                "seconds": round(run.seconds, 3),
                "failed_cell": None if run.failure is None else run.failure.index + 1,
                "differing_cells": [diff.index + 1 for diff in diffs],
                "output": str(written) if written is not None else None,
            }
        )
    if len(paths) > 1:
        out("", f"{len(paths)} notebooks: {len(paths) - len(failed)} passed, {len(failed)} failed")
        if failed:
            err("failed: " + ", ".join(failed))
    return 1 if failed else 0


def _only_untagged_notes(diff: list[str]) -> bool:
    """Whether a cell's diff only removes stored lines that look like the magics' notes: outputs
    stored before the notes were tagged in their metadata."""
    removed = [line[1:] for line in diff if line.startswith("-") and not line.startswith("---")]
    added = [line for line in diff if line.startswith("+") and not line.startswith("+++")]
    notes = [line for line in removed if line.startswith("apirec: ")]
    return bool(notes) and not added and all(line in notes or line == "[stdout]" for line in removed)


def _inside(root: Path, files: list[Path]) -> tuple[list[Path], list[Path]]:
    """``files`` split into those whose directory really is ``root`` or below it, and those
    reached through a directory link out of it: ``prune`` deletes only inside the directory it
    was given (a link itself is inside: deleting it leaves its target alone)."""
    real_root = Path(os.path.realpath(root))
    inside: list[Path] = []
    outside: list[Path] = []
    for file in files:
        real_dir = Path(os.path.realpath(file.parent))
        (inside if real_dir == real_root or real_root in real_dir.parents else outside).append(file)
    return inside, outside


def cmd_prune(args: argparse.Namespace) -> int:
    """``prune DIR --used-by NB...``: list (and with ``--yes`` delete) recordings no notebook uses."""
    from ..notebooks._runner import NotebookError

    root = existing_dir(args.dir)
    paths = _notebook_paths(args.used_by)
    used: set[Path] = set()
    for path in paths:
        try:
            run = _execute(path, args, "replay")
        except NotebookError as exc:
            out(f"FAILED {exc}")
            return 1
        if run.failure is not None:
            out(*failure_lines(run))
            out("prune: nothing deleted, because a notebook failed (its recordings in use are unknown)")
            return 1
        out(_summary(run, "ok"))
        used |= {p.resolve() for p in run.files_used()}
    walk = walk_recordings(root)
    inside, outside = _inside(root, [Path(f) for f in walk.files])
    files = inside
    unused = [f for f in files if f.resolve() not in used]
    bad = [(Path(odd.path), odd.problem) for odd in walk.problems]
    for file in list(unused):
        try:
            read_recording(file)
        except RecordingFormatError as exc:  # not ours to judge: listed, never deleted
            bad.append((file, exc.problem))
            unused.remove(file)
            files.remove(file)
    stale = _inside(root, stale_temp_files(root))[0]
    out("")
    if bad:
        out(f"{len(bad)} entries in {args.dir} are not readable recordings (left alone):")
        out(*[f"  {relative(path, root)}: {problem}" for path, problem in sorted(bad)])
    if outside:
        out(
            f"{len(outside)} file(s) reached through a link out of {args.dir} "
            "(left alone: prune deletes only inside it):"
        )
        out(*[f"  {relative(path, root)}" for path in sorted(outside)])
    if stale:
        out(f"{len(stale)} temporary file(s) left by interrupted writes:", *[f"  {relative(p, root)}" for p in stale])
    if not unused:
        out(f"all {len(files)} recordings in {args.dir} are used")
    else:
        out(f"{len(unused)} of {len(files)} recordings in {args.dir} are not used by these notebooks:")
        out(*[f"  {relative(f, root)}" for f in unused])
    doomed = unused + stale
    if not doomed:
        return 0
    if not args.yes:
        out(f"nothing deleted; run again with --yes to delete these {len(doomed)} file(s)")
        return 0
    for file in doomed:
        file.unlink(missing_ok=True)
    out(f"deleted {len(doomed)} file(s)")
    return 0
