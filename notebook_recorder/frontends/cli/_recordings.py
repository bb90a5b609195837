"""``notebook-recorder ls``, ``show``, ``verify`` and ``import``: ask the recordings
(:mod:`._store`, :mod:`._scan`, :mod:`._verify`) and print the answer, as text or ``--json``."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...core._errors import RecordingFormatError
from ...core._importing import import_into
from ...core._modes import ENV_DIR
from ...core._store import Store, read_recording, relative
from ...core._terminal import one_line, printable
from .._render import human_size, middle_truncate, plural, text_table
from ._common import PROG, CommandLineError, err as _err, existing_dir, out as _out, print_json
from ._scan import STRICT_MATCH, Entry, scan
from ._verify import verify


def out(*lines: str) -> None:
    """Results to stdout, with recorded text made safe for a terminal (``_terminal``)."""
    _out(*map(printable, lines))


def err(*lines: str) -> None:
    """Failures to stderr, with recorded text made safe for a terminal (``_terminal``)."""
    _err(*map(printable, lines))


SORTS: dict[str, Callable[[Entry], Any]] = {
    "key": lambda e: (e.key is None, e.key or "", e.occurrence or 0, e.rel),
    "test_id": lambda e: (e.test_id or "", e.key or "", e.occurrence or 0, e.rel),
    "endpoint": lambda e: (e.label, e.model, e.key or "", e.occurrence or 0, e.rel),
    "size": lambda e: (-e.size, e.rel),
    "path": lambda e: e.rel,
}


def cmd_ls(args: argparse.Namespace) -> int:
    """``ls DIR``: one line per recording."""
    root = existing_dir(args.dir)
    entries = sorted(scan(root), key=SORTS[args.sort])
    if args.json:
        print_json({"dir": args.dir, "recordings": [_ls_json(e) for e in entries]})
        return 0
    if not entries:
        out(f"no recordings in {args.dir}")
        return 0
    header = ["KEY", "OCC", "KIND", "ENDPOINT/TOOL", "MODEL", "STREAM", "CHUNKS", "SIZE", "TEST_ID"]
    if args.full:
        header.append("FILE")
    rows = []
    for e in entries:
        key = (e.key if args.full else e.key[:12]) if e.key else "-"
        if e.stale_name:
            key += "*"
        label = e.label if e.kind != "unreadable" else middle_truncate(e.problem, 40)
        test_id = e.test_id or "-"
        row = [
            key,
            str(e.occurrence) if e.occurrence is not None and e.kind != "unreadable" else "-",
            e.kind,
            label,
            e.model or "-",
            "yes" if e.streaming else "no",
            str(e.chunks) if e.chunks is not None else "-",
            human_size(e.size),
            test_id if args.full else middle_truncate(test_id, 60),
        ]
        if args.full:
            row.append(e.rel)
        rows.append([one_line(cell) for cell in row])
    out(*text_table(header, rows, right=frozenset({1, 6, 7})))
    stale = sum(e.stale_name for e in entries)
    broken = sum(e.kind == "unreadable" for e in entries)
    summary = f"{len(entries)} recordings, {human_size(sum(e.size for e in entries))}"
    if stale:
        summary += f"; * {stale} named other than their key (see `{PROG} verify`)"
    if broken:
        summary += f"; {broken} unreadable"
    out("", summary)
    return 0


def _ls_json(e: Entry) -> dict[str, Any]:
    """One recording in ``ls --json``: the README's "Command line" section documents the shape."""
    return {
        "key": e.key,
        "kind": e.kind,
        "endpoint": e.label or None,
        "model": e.model or None,
        "streaming": e.streaming,
        "chunks": e.chunks,
        "size_bytes": e.size,
        "test_id": e.test_id,
        "file": e.rel,
        "named_by_key": not e.stale_name,
        "problem": e.problem or None,
    }


def _resolve_recording(target: str, directory: str | None) -> Path:
    """A file path, or the file of a key (or unique key prefix) in ``directory``."""
    path = Path(target).expanduser()
    if path.is_file() or (os.path.lexists(path) and not path.is_dir()):
        return path  # a FIFO or a link loop too: reading it reports what it is
    key = target.strip().lower().removesuffix(".json")
    if not re.fullmatch(r"[0-9a-f]{4,64}", key):
        raise CommandLineError(f"no such file, and not a key (a key or key prefix is 4 to 64 hex digits): {target}")
    dir_name = directory or os.environ.get(ENV_DIR) or "recordings"
    root = Path(dir_name).expanduser()
    if not root.is_dir():
        raise CommandLineError(f"no such directory: {dir_name} (give the recordings directory with --dir)")
    store = Store(root)
    return root / store.find_prefix(key, shown=dir_name).relative_to(store.root)


def cmd_show(args: argparse.Namespace) -> int:
    """``show FILE|KEY``: one recording as readable text (``analysis.Recording.to_text``)."""
    from ...analysis import Recording

    try:
        path = _resolve_recording(args.target, args.dir)
    except LookupError as exc:
        err(f"{PROG} show: {exc.args[0]}")
        return 1
    try:
        read_recording(path)  # the rules replay and verify apply (nesting depth...), before rendering it
        recording = Recording.load(path)
    except RecordingFormatError as exc:
        err(f"{PROG} show: {one_line(exc)}")
        return 1
    out(recording.to_text(max_chars=args.max_chars or None).rstrip("\n"))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """``verify DIR``: parse every file and report problems, grouped by kind."""
    root = existing_dir(args.dir)
    report = verify(root, allow_types=args.allow_type, strict=args.strict, allow_unknown_types=args.allow_unknown_types)
    total, groups, files = report.total, report.problems, report.files
    if args.json:
        print_json(report.as_json(args.dir))
        return 1 if total else 0
    out(f"verify {args.dir}: {files} files")
    if any(match != STRICT_MATCH for match in report.match_rules):
        out(
            "recorded under match rules: "
            + "; ".join(f"{plural(count, 'file')} {match}" for match, count in sorted(report.match_rules.items()))
        )
    for title, items in groups.items():
        if not items:
            continue
        out("", f"{title} ({len(items)}):", *[f"  {item}" for item in items])
        if title == "names that are not their key":
            out(f"  to rename them all: {PROG} import {args.dir} NEW_DIR")
    if report.notes:
        out("", "notes:", *[f"  {note}" for note in report.notes])
    counts = [f"{len(items)} {title}" for title, items in groups.items() if items]
    out("")
    if total:
        err(f"FAILED: {total} problem(s) in {files} files: " + "; ".join(counts))
        return 1
    out(f"OK: {plural(files, 'file')}, no problems")
    return 0


def _scope_value(raw: str | None) -> tuple[bool, str | None]:
    """``(given, value)`` for ``--scope``: ``''``, ``none`` and ``null`` mean ``None``."""
    if raw is None:
        return False, None
    return True, None if raw.strip().lower() in ("", "none", "null") else raw


def cmd_import(args: argparse.Namespace) -> int:
    """``import SRC... DEST``: copy recordings under their canonical names, idempotently."""
    dest = Path(args.dest).expanduser()
    if dest.exists() and not dest.is_dir():
        raise CommandLineError(f"DEST must be a directory: {args.dest}")
    sources = []
    for src in args.src:
        path = Path(src).expanduser()
        if not path.exists():
            raise CommandLineError(f"no such file or directory: {src}")
        sources.append(path)
    scoped, scope = _scope_value(args.scope)
    counts = dict.fromkeys(("imported", "updated", "unchanged", "skipped"), 0)
    for item in import_into(Store(dest), sources, rescope=scoped, scope=scope):
        counts[item.status] += 1
        if item.status == "skipped":
            out(f"skipped    {item.source}: {item.why}")
        elif item.status != "unchanged" and item.target is not None:
            out(f"{item.status:<10} {relative(item.target, Path.cwd())}  <- {item.source}")
    out(", ".join(f"{n} {what}" for what, n in counts.items()))
    return 0
