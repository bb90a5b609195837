"""The ``notebook-recorder`` command.

::

    notebook-recorder run NB... [--mode replay] [--check] [--output PATH] [--timeout S]
    notebook-recorder ls DIR [--sort COLUMN] [--full]
    notebook-recorder show FILE|KEY [--dir DIR] [--max-chars N]
    notebook-recorder verify DIR [--strict] [--allow-type NAME] [--allow-unknown-types]
    notebook-recorder import SRC... DEST [--scope S]
    notebook-recorder prune DIR --used-by NB... [--yes] [--timeout S]

- ``run`` executes notebooks in a real kernel with ``APIREC_MODE`` set (``replay`` unless
  ``--mode`` says otherwise), printing a line per cell and a summary. It exits 1 when a cell
  raises, when a recording is missing (the message names the request, the nearest recorded one
  and how to record it), and with ``--check`` when the outputs differ from the stored ones (a
  unified diff per cell, after the sanitisers documented in :mod:`notebook_recorder._notebooks`).
- ``ls`` prints a table of the recordings in a directory tree.
- ``show`` prints one recording as readable text: the conversation, tool calls, the answer.
- ``verify`` checks a directory: every file parses, every name is its key (and occurrence), no
  key and occurrence twice, every ``__type__`` is on the allowlist that replay builds from
  (checked by name: nothing a file names is imported), no credential-looking strings. It exits 1
  when it finds a problem. Foreign types seen in real corpora (``_types.KNOWN_FOREIGN_TYPES``:
  llama-stack's tool results, ollama's responses) are notes, not problems, unless ``--strict``.
  It notes temporary files that interrupted writes left behind (harmless; not a failure).
- ``import`` copies recordings from another corpus (such as llama-stack's) under their
  canonical names, optionally re-scoped. Running it twice changes nothing.
- ``prune`` runs notebooks in replay mode and lists the recordings none of them used, and stale
  temporary files; it deletes them only with ``--yes``. Entries that are not readable recordings
  are listed and never deleted.

Every command lists and reads files through :mod:`notebook_recorder._files`: a FIFO, a link loop
or a malformed file is named in the output and never stops or hangs the command.

Exit status: 0 success, 1 failure (a check failed, a problem was found), 2 usage error.
Heavy modules (nbclient, pandas) are imported only by the subcommands that need them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import textwrap
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import __version__, _files
from ._codec import DATA, TYPE, dumps, loads
from ._errors import RecordingFormatError
from ._files import valid_type_name
from ._keys import (
    ToolRequest,
    call_kind,
    canonical_endpoint,
    name_occurrence,
    record_key,
    record_occurrence,
    record_rules,
    request_from_record,
)
from ._modes import ENV_DIR, valid_modes
from ._secrets import leaks
from ._types import allowed_type, is_known_foreign

PROG = "notebook-recorder"
MODEL_LIST_NAME = re.compile(r"models-(?P<key>[0-9a-f]{64})-(?P<digest>[0-9a-f]{8})")


class UsageError(Exception):
    """A mistake in the command line that argparse cannot see (a missing file...): exit 2."""


def _out(*lines: str) -> None:
    for line in lines:
        print(line, flush=True)


def _err(*lines: str) -> None:
    """Failures and errors: to stderr, so a script reading stdout (or ``--json``) sees only results."""
    for line in lines:
        print(line, file=sys.stderr, flush=True)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False), flush=True)


# ---------------------------------------------------------------------------------------------
# Reading a directory of recordings
# ---------------------------------------------------------------------------------------------


def _walk(root: Path) -> _files.Walk:
    """The ``*.json`` files under ``root`` (or ``root`` itself), sorted, hidden entries skipped,
    and the entries that cannot be read (FIFOs, link loops...: see :mod:`._files`)."""
    if root.is_file():
        return _files.Walk([str(root)], [], [])
    try:
        return _files.walk(str(root))
    except OSError as exc:
        return _files.Walk([], [_files.Problem(str(root), _files.describe_error(exc))], [])


def _read(path: Path) -> dict[str, Any]:
    try:
        data, _ = _files.read_file(str(path))
    except OSError as exc:
        raise RecordingFormatError(path, _files.describe_error(exc)) from None
    return loads(data, path)


def _name_key(path: Path) -> str:
    """The key a file's name claims: its stem, or the hash part of ``models-<hash>-<digest8>``
    or of an occurrence's ``<key>-<k>``."""
    return _name_key_occurrence(path)[0]


def _name_key_occurrence(path: Path) -> tuple[str, int]:
    """The key and occurrence a file's name claims (FORMAT.md, "Repeated identical requests")."""
    match = MODEL_LIST_NAME.fullmatch(path.stem)
    return (match.group("key"), 1) if match else name_occurrence(path.stem)


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root)) or path.name
    except ValueError:
        return str(path)


@dataclass
class Entry:
    """One file of a recordings directory, as ``ls`` and ``verify`` see it."""

    path: Path
    rel: str
    size: int
    problem: str = ""  # why it could not be read; empty when it could
    key: str | None = None  # recomputed from content
    occurrence: int | None = 1  # from content; None when its `occurrence` field is not valid
    bad_occurrence: str = ""  # the invalid `occurrence` value, as repr
    kind: str = ""
    label: str = ""  # endpoint or provider/tool
    model: str = ""
    streaming: bool = False
    chunks: int | None = None
    test_id: str | None = None
    types: frozenset[str] = frozenset()  # __type__ names used (only for verify)
    leaks: tuple[str, ...] = ()  # credential-looking findings (only for verify)
    match: str = "strict (no rules)"  # the match rules it was keyed under (its `match` field), described
    opaque: bool = False  # keyed with a callable normalizer: its key cannot be recomputed here
    untrusted: bool = False  # keyed with normalize patterns the project does not configure: not run
    bad_match: bool = False  # its `match` field is malformed

    @property
    def stale_name(self) -> bool:
        if self.key is None or self.occurrence is None:
            return False
        return _name_key_occurrence(self.path) != (self.key, self.occurrence)


def _describe(path: Path, root: Path, trusted: frozenset[str], *, deep: bool = False) -> Entry:
    """What ``ls`` shows about one file; with ``deep``, also what ``verify`` checks.

    The parsed recording itself is not kept, so that a directory of thousands of files is fine.
    """
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    entry = Entry(path=path, rel=_rel(path, root), size=size)
    try:
        record = _read(path)
        if deep:
            entry.types = frozenset(_type_names(record))
            malformed = sorted(name for name in entry.types if not valid_type_name(name))
            if malformed:
                raise RecordingFormatError(path, f"malformed __type__ {malformed[0]!r:.80}")
            entry.leaks = tuple(leaks(path, record))
        return _describe_record(entry, record, trusted)
    except RecordingFormatError as exc:
        problem = exc.problem
    except Exception as exc:  # a shape no one foresaw must not stop ls or verify
        problem = f"unexpected content ({type(exc).__name__}: {exc})"
    return Entry(path=path, rel=entry.rel, size=size, problem=problem, kind="unreadable")


def _describe_record(entry: Entry, record: dict[str, Any], trusted: frozenset[str]) -> Entry:
    """``entry`` completed from its parsed recording; ``trusted``: the regexes it may run."""
    request, response = record["request"], record["response"]
    test_id = record.get("test_id")
    entry.test_id = test_id if isinstance(test_id, str) else None
    entry.key = record_key(record, trusted=trusted)
    rules = record_rules(record)
    if rules is None:
        entry.bad_match, entry.match = True, "a malformed match field"
    else:
        entry.match, entry.opaque = rules.describe(), rules.opaque
        entry.untrusted = not rules.opaque and not set(dict(rules.normalize)) <= trusted
    entry.occurrence = record_occurrence(record)
    if entry.occurrence is None:
        entry.bad_occurrence = repr(record.get("occurrence"))[:40]
    parsed = request_from_record(record)
    body = response.get("body")
    entry.streaming = bool(response.get("is_streaming"))
    entry.chunks = len(body) if entry.streaming and isinstance(body, list) else None
    if parsed is None:
        url = str(request.get("url") or "")
        payload = request.get("payload")
        if url:
            entry.kind, entry.label = "http", canonical_endpoint(urlsplit(url).path)
        else:  # e.g. llama-stack's file_processors recordings: provider + api, no request body
            entry.kind = "other"
            entry.label = "/".join(str(request[k]) for k in ("provider", "api") if request.get(k)) or "?"
        entry.model = str(payload.get("model") or "") if isinstance(payload, Mapping) else ""
    else:
        entry.kind = "tool" if isinstance(parsed, ToolRequest) else call_kind(parsed.label)
        entry.label = parsed.label
        entry.model = parsed.model
    if response.get("is_exception"):
        entry.kind = "exception"
    return entry


def _trusted_patterns(root: Path) -> frozenset[str]:
    """The ``normalize`` patterns of the ``pyproject.toml`` nearest ``root``: the only regular
    expressions from a recording file's ``match`` field that are run (a hostile pattern in a file
    could run for ever)."""
    from ._config import project_config

    try:
        return frozenset(dict(project_config(root).rules.normalize))
    except ValueError:
        return frozenset()


def _scan(root: Path, *, deep: bool = False) -> list[Entry]:
    """Every recording under ``root``, and an ``unreadable`` entry for every odd one."""
    walk = _walk(root)
    trusted = _trusted_patterns(root)  # once per scan: it looks for the project's pyproject.toml
    entries = [_describe(Path(path), root, trusted, deep=deep) for path in walk.files]
    for odd in walk.problems:
        path = Path(odd.path)
        entries.append(Entry(path=path, rel=_rel(path, root), size=0, problem=odd.problem, kind="unreadable"))
    return entries


def _existing_dir(value: str) -> Path:
    path = Path(value).expanduser()
    if not path.exists():
        raise UsageError(f"no such directory: {value}")
    if not path.is_dir():
        raise UsageError(f"not a directory: {value}")
    return path


def _human_size(size: int) -> str:
    if size < 1024:
        return f"{size}B"
    value = float(size)
    for unit in ("K", "M", "G"):
        value /= 1024
        if value < 1024 or unit == "G":
            return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"
    return f"{size}B"  # pragma: no cover


def _middle_truncate(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


def _indent(text: str, prefix: str = "    ") -> list[str]:
    """``text`` as lines, each behind ``prefix`` (empty lines without trailing spaces)."""
    return [prefix + line if line else prefix.rstrip() for line in text.splitlines()] or [prefix.rstrip()]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: frozenset[int] = frozenset()) -> list[str]:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [
            str(c).rjust(w) if i in right else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=False))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


# ---------------------------------------------------------------------------------------------
# ls
# ---------------------------------------------------------------------------------------------

_SORTS: dict[str, Callable[[Entry], Any]] = {
    "key": lambda e: (e.key is None, e.key or "", e.occurrence or 0, e.rel),
    "test_id": lambda e: (e.test_id or "", e.key or "", e.occurrence or 0, e.rel),
    "endpoint": lambda e: (e.label, e.model, e.key or "", e.occurrence or 0, e.rel),
    "size": lambda e: (-e.size, e.rel),
    "path": lambda e: e.rel,
}


def cmd_ls(args: argparse.Namespace) -> int:
    """``ls DIR``: one line per recording."""
    root = _existing_dir(args.dir)
    entries = sorted(_scan(root), key=_SORTS[args.sort])
    if args.json:
        _print_json({"dir": args.dir, "recordings": [_ls_json(e) for e in entries]})
        return 0
    if not entries:
        _out(f"no recordings in {args.dir}")
        return 0
    header = ["KEY", "OCC", "KIND", "ENDPOINT/TOOL", "MODEL", "STREAM", "CHUNKS", "SIZE", "TEST_ID"]
    if args.full:
        header.append("FILE")
    rows = []
    for e in entries:
        key = (e.key if args.full else e.key[:12]) if e.key else "-"
        if e.stale_name:
            key += "*"
        label = e.label if e.kind != "unreadable" else _middle_truncate(e.problem, 40)
        test_id = e.test_id or "-"
        row = [
            key,
            str(e.occurrence) if e.occurrence is not None and e.kind != "unreadable" else "-",
            e.kind,
            label,
            e.model or "-",
            "yes" if e.streaming else "no",
            str(e.chunks) if e.chunks is not None else "-",
            _human_size(e.size),
            test_id if args.full else _middle_truncate(test_id, 60),
        ]
        if args.full:
            row.append(e.rel)
        rows.append(row)
    _out(*_table(header, rows, right=frozenset({1, 6, 7})))
    stale = sum(e.stale_name for e in entries)
    broken = sum(e.kind == "unreadable" for e in entries)
    summary = f"{len(entries)} recordings, {_human_size(sum(e.size for e in entries))}"
    if stale:
        summary += f"; * {stale} named other than their key (see `{PROG} verify`)"
    if broken:
        summary += f"; {broken} unreadable"
    _out("", summary)
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


# ---------------------------------------------------------------------------------------------
# show
# ---------------------------------------------------------------------------------------------


def _resolve_recording(target: str, directory: str | None) -> Path:
    """A file path, or the file of a key (or unique key prefix) in ``directory``."""
    path = Path(target).expanduser()
    if path.is_file() or (os.path.lexists(path) and not path.is_dir()):
        return path  # a FIFO or a link loop too: reading it reports what it is
    key = target.strip().lower().removesuffix(".json")
    if not re.fullmatch(r"[0-9a-f]{4,64}", key):
        raise UsageError(f"no such file, and not a key (a key or key prefix is 4 to 64 hex digits): {target}")
    dir_name = directory or os.environ.get(ENV_DIR) or "recordings"
    root = Path(dir_name).expanduser()
    if not root.is_dir():
        raise UsageError(f"no such directory: {dir_name} (give the recordings directory with --dir)")
    if len(key) == 64:
        from ._store import Store

        if (root / f"{key}.json").is_file():  # by name: also a file keyed under match rules
            return root / f"{key}.json"
        try:
            found = Store(root).find_latest(key, 1)  # its first occurrence recorded
        except RecordingFormatError as exc:
            raise LookupError(str(exc)) from None
        if found is not None:
            return found.path
        raise LookupError(f"no recording with key {key} in {dir_name}")
    matches: dict[Path, str] = {}
    walk = _walk(root)
    unreadable = [f"  {_rel(Path(odd.path), root)}: {odd.problem}" for odd in walk.problems]
    for file in map(Path, walk.files):
        if _name_key(file).startswith(key):
            matches[file] = _name_key(file)
            continue
        try:
            content_key = record_key(_read(file))
        except RecordingFormatError as exc:
            unreadable.append(f"  {_rel(file, root)}: {exc.problem}")
            continue
        except Exception as exc:  # an odd shape: that file cannot match, the others still can
            unreadable.append(f"  {_rel(file, root)}: unexpected content ({type(exc).__name__})")
            continue
        if content_key is not None and content_key.startswith(key):
            matches[file] = content_key
    if not matches:
        message = f"no recording whose key starts with {key} in {dir_name}"
        if unreadable:
            message += f"\n{len(unreadable)} file(s) there could not be read:\n" + "\n".join(unreadable[:10])
        raise LookupError(message)
    if len(matches) > 1 and len(set(matches.values())) == 1:
        # One request recorded several times (occurrences): show the first.
        first = [p for p in matches if _name_key_occurrence(p)[1] == 1]
        if len(first) == 1:
            return first[0]
    if len(matches) > 1:
        listed = "\n".join(f"  {k[:16]}…  {_rel(p, root)}" for p, k in list(matches.items())[:10])
        raise LookupError(f"{len(matches)} recordings in {dir_name} have keys starting with {key}:\n{listed}")
    return next(iter(matches))


def cmd_show(args: argparse.Namespace) -> int:
    """``show FILE|KEY``: one recording as readable text (``analysis.Recording.to_text``)."""
    from .analysis import Recording

    try:
        path = _resolve_recording(args.target, args.dir)
    except LookupError as exc:
        _err(f"{PROG} show: {exc.args[0]}")
        return 1
    try:
        _read(path)  # the rules replay and verify apply (nesting depth...), before rendering it
        recording = Recording.load(path)
    except RecordingFormatError as exc:
        _err(f"{PROG} show: {exc}")
        return 1
    _out(recording.to_text(max_chars=args.max_chars or None).rstrip("\n"))
    return 0


# ---------------------------------------------------------------------------------------------
# verify
# ---------------------------------------------------------------------------------------------


def _type_names(value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):
        name = value.get(TYPE)
        if isinstance(name, str):
            yield name
        elif name is not None and DATA in value:
            yield f"<not a name: {name!r:.40}>"
        for v in value.values():
            yield from _type_names(v)
    elif isinstance(value, list):
        for v in value:
            yield from _type_names(v)


def _stale_name_problem(entry: Entry) -> str:
    """Why a file's name is not its key: ``its key is K`` (plus the occurrence when that is what differs)."""
    assert entry.key is not None and entry.occurrence is not None
    name_key, named = _name_key_occurrence(entry.path)
    if name_key == entry.key:
        return f"its occurrence field is {entry.occurrence}, its name says {named}"
    return f"its key is {entry.key}" + (f", occurrence {entry.occurrence}" if entry.occurrence != 1 else "")


def _type_allowed(name: str, allowed: Sequence[str] | None) -> bool:
    """Whether ``verify`` accepts a ``__type__``: named by ``--allow-type`` (``module.*`` for a
    module), a builtin exception, or a model or error class of the SDK. A string check: only the
    SDK's own modules are ever imported, never one that a file names."""
    for pattern in allowed or ():
        if name == pattern or (pattern.endswith(".*") and name.startswith(pattern[:-1])):
            return True
    return allowed_type(name) is not None


def cmd_verify(args: argparse.Namespace) -> int:
    """``verify DIR``: parse every file and report problems, grouped by kind."""
    root = _existing_dir(args.dir)
    entries = _scan(root, deep=True)
    groups: dict[str, list[str]] = {
        "unreadable files": [],
        "names that are not their key": [],
        "invalid occurrence fields": [],
        "invalid match fields": [],
        "duplicate keys": [],
        "unknown __type__s": [],
        "possible leaked credentials": [],
    }
    notes: list[str] = []
    by_key: dict[tuple[str, int], list[Entry]] = defaultdict(list)
    unknown: dict[str, list[str]] = defaultdict(list)
    unkeyable, opaque, untrusted = [], [], []
    rule_sets: dict[str, int] = defaultdict(int)
    for entry in entries:
        if entry.problem:
            groups["unreadable files"].append(f"{entry.rel}: {entry.problem}")
            continue
        rule_sets[entry.match] += 1
        if entry.bad_match:
            groups["invalid match fields"].append(
                f'{entry.rel}: match must be {{"ignore": [PATH...], "normalize": {{PATTERN: REPLACEMENT}}}} '
                "with valid paths and regular expressions"
            )
        elif entry.opaque:
            opaque.append(entry.rel)
        elif entry.untrusted:
            untrusted.append(entry.rel)
        elif entry.occurrence is None:
            groups["invalid occurrence fields"].append(
                f"{entry.rel}: occurrence must be a whole number >= 1, not {entry.bad_occurrence}"
            )
        elif entry.key is None:
            unkeyable.append(entry.rel)
        else:
            by_key[(entry.key, entry.occurrence)].append(entry)
            if entry.stale_name:
                groups["names that are not their key"].append(f"{entry.rel}: {_stale_name_problem(entry)}")
        for name in sorted(entry.types):
            if not _type_allowed(name, args.allow_type):
                unknown[name].append(entry.rel)
        groups["possible leaked credentials"] += [f"{entry.rel}: {finding}" for finding in entry.leaks]
    for (key, occurrence), same in sorted(by_key.items()):
        if len(same) < 2:
            continue
        listed = "".join(f"\n    {e.rel}" for e in same)
        if all(MODEL_LIST_NAME.fullmatch(e.path.stem) for e in same):
            notes.append(f"{len(same)} model lists share key {key[:12]}… (llama-stack merges them):{listed}")
        else:
            which = f" occurrence {occurrence}" if occurrence != 1 else ""
            groups["duplicate keys"].append(f"{key}{which}, in {len(same)} files:{listed}")
    for name, files in sorted(unknown.items()):
        shown = "".join(f"\n    {f}" for f in files[:3]) + (
            f"\n    … and {len(files) - 3} more" if len(files) > 3 else ""
        )
        line = (
            f"{name} is not on the allowlist (never imported; replay returns its raw data); "
            f"used in {len(files)} file(s):{shown}"
        )
        if args.allow_unknown_types:
            notes.append(f"{line}\n    (allowed by --allow-unknown-types)")
        elif is_known_foreign(name) and not args.strict:
            notes.append(f"{line}\n    (a known foreign type: a problem only with --strict)")
        else:
            groups["unknown __type__s"].append(line)
    if opaque:
        notes.append(
            f"{len(opaque)} file(s) were keyed with a callable normalizer, which verify does not run; "
            "their names were not checked"
        )
    if untrusted:
        notes.append(
            f"{len(untrusted)} file(s) were keyed with normalize patterns that the nearest pyproject.toml's "
            "[tool.notebook-recorder.normalize] does not list; verify runs only the project's patterns (one "
            "from a file could be made to run for ever), so their names were not checked"
        )
    if unkeyable:
        notes.append(
            f"{len(unkeyable)} file(s) have no keyable request (raw HTTP and similar recordings); "
            "their names were not checked"
        )
    stale = _stale_temp_files(root)
    if stale:
        notes.append(
            f"{len(stale)} temporary file(s) left by interrupted writes (harmless; the next recording written "
            f"there, or `{PROG} prune ... --yes`, removes them):" + "".join(f"\n    {_rel(p, root)}" for p in stale)
        )

    total = sum(len(items) for items in groups.values())
    if args.json:
        _print_json({"dir": args.dir, "files": len(entries), "ok": not total, "problems": groups, "notes": notes})
        return 1 if total else 0
    _out(f"verify {args.dir}: {len(entries)} files")
    if any(match != "strict (no rules)" for match in rule_sets):
        _out(
            "recorded under match rules: "
            + "; ".join(f"{_plural(count, 'file')} {match}" for match, count in sorted(rule_sets.items()))
        )
    for title, items in groups.items():
        if not items:
            continue
        _out("", f"{title} ({len(items)}):", *[f"  {item}" for item in items])
        if title == "names that are not their key":
            _out(f"  to rename them all: {PROG} import {args.dir} NEW_DIR")
    if notes:
        _out("", "notes:", *[f"  {note}" for note in notes])
    counts = [f"{len(items)} {title}" for title, items in groups.items() if items]
    _out("")
    if total:
        _err(f"FAILED: {total} problem(s) in {len(entries)} files: " + "; ".join(counts))
        return 1
    _out(f"OK: {_plural(len(entries), 'file')}, no problems")
    return 0


def _stale_temp_files(root: Path) -> list[Path]:
    """Temporary files that killed writes left anywhere under ``root`` (see :mod:`._files`)."""
    return [Path(p) for directory in _walk(root).dirs for p in _files.stale_temp_files(directory)]


# ---------------------------------------------------------------------------------------------
# import
# ---------------------------------------------------------------------------------------------


def _scope_value(raw: str | None) -> tuple[bool, str | None]:
    """``(given, value)`` for ``--scope``: ``''``, ``none`` and ``null`` mean ``None``."""
    if raw is None:
        return False, None
    return True, None if raw.strip().lower() in ("", "none", "null") else raw


def _rescoped(record: dict[str, Any], scope: str | None) -> dict[str, Any]:
    record = {**record, "test_id": scope}
    request = record["request"]
    if "tool_name" in request:
        record["request"] = {**request, "test_id": scope}
    return record


def _with_canonical_endpoint(record: dict[str, Any]) -> dict[str, Any]:
    request = record["request"]
    parsed = request_from_record(record)
    if parsed is None or "tool_name" in request or request.get("endpoint") == parsed.label:
        return record
    return {**record, "request": {**request, "endpoint": parsed.label}}


def cmd_import(args: argparse.Namespace) -> int:
    """``import SRC... DEST``: copy recordings under their canonical names, idempotently."""
    from ._store import Store

    dest = Path(args.dest).expanduser()
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"DEST must be a directory: {args.dest}")
    sources = []
    for src in args.src:
        path = Path(src).expanduser()
        if not path.exists():
            raise UsageError(f"no such file or directory: {src}")
        sources.append(path)
    scoped, scope = _scope_value(args.scope)
    dest_resolved = dest.resolve()
    files: list[Path] = []
    odd: list[_files.Problem] = []
    for source in sources:
        walk = _walk(source)
        odd += walk.problems
        for file in map(Path, walk.files):
            if file.resolve().parent == dest_resolved and source.resolve() != file.resolve():
                continue  # DEST inside SRC: its own files are not sources
            files.append(file)

    store = Store(dest)
    trusted = _trusted_patterns(dest)
    counts = {"imported": 0, "updated": 0, "unchanged": 0, "skipped": 0}
    for problem in odd:
        counts["skipped"] += 1
        _out(f"skipped    {problem.path}: {problem.problem}")
    written: dict[tuple[str, int], Path] = {}
    for file in files:
        try:
            record = _read(file)
        except RecordingFormatError as exc:
            counts["skipped"] += 1
            _out(f"skipped    {file}: {exc.problem}")
            continue
        if scoped:
            record = _rescoped(record, scope)
        try:
            key, occurrence = record_key(record, trusted=trusted), record_occurrence(record)
        except Exception as exc:  # an odd shape: skip this file, import the others
            counts["skipped"] += 1
            _out(f"skipped    {file}: cannot compute its key ({type(exc).__name__})")
            continue
        if key is None:
            counts["skipped"] += 1
            why = "no keyable request (a raw HTTP or similar recording)"
            if request_from_record(record) is not None:
                rules = record_rules(record)
                why = (
                    f"keyed under match rules this project cannot re-run ({rules.describe() if rules else 'malformed'})"
                )
            _out(f"skipped    {file}: {why}")
            continue
        if occurrence is None:
            counts["skipped"] += 1
            _out(f"skipped    {file}: occurrence must be a whole number >= 1, not {record.get('occurrence')!r}")
            continue
        if (key, occurrence) in written:
            counts["skipped"] += 1
            same = "same key" if occurrence == 1 else f"same key and occurrence ({occurrence})"
            _out(f"skipped    {file}: {same} as {written[key, occurrence]}")
            continue
        written[key, occurrence] = file
        record = _with_canonical_endpoint(record)
        target = store.path_for(key, occurrence)
        data = dumps(record)
        if target.is_file():
            if target.read_bytes() == data:
                counts["unchanged"] += 1
                continue
            status = "updated"
        else:
            status = "imported"
        store.write(key, record)
        counts[status] += 1
        _out(f"{status:<10} {_rel(target, Path.cwd())}  <- {file}")
    _out(", ".join(f"{n} {what}" for what, n in counts.items()))
    return 0


# ---------------------------------------------------------------------------------------------
# run and prune
# ---------------------------------------------------------------------------------------------


def _notebook_paths(values: Sequence[str]) -> list[Path]:
    paths = []
    for value in values:
        path = Path(value).expanduser()
        if not path.is_file():
            raise UsageError(f"no such notebook: {value}")
        if path.suffix != ".ipynb":
            raise UsageError(f"not a notebook (expected .ipynb): {value}")
        paths.append(path)
    return paths


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {value!r}")
    return number


def _progress(cell: Any, total: int) -> None:
    status = {"ok": "ok", "expected-error": "ok (raised, as tagged)"}.get(cell.status, f"FAILED: {cell.status}")
    hint = _middle_truncate(cell.first_line, 60)
    _out(f"[{cell.number}/{total}] cell {cell.index + 1} {status} ({cell.seconds:.1f}s)  {hint}")


def _execute(path: Path, args: argparse.Namespace, mode: str) -> Any:
    from ._notebooks import execute

    _out(f"{path} (mode {mode})")
    return execute(path, mode=mode, timeout=args.timeout, kernel_name=args.kernel, on_cell=_progress)


def _failure_lines(run: Any) -> list[str]:
    from ._notebooks import summarize_traceback

    cell = run.failure
    where = f"cell {cell.index + 1}"
    if cell.status == "missing-recording":
        return [
            f"FAILED {run.path.name}, {where}: a call has no recording",
            *_indent(cell.evalue, "  "),
            "  To record the missing call (needs an API key), run the notebook once with:",
            f"    {PROG} run {run.path} --mode record-if-missing",
        ]
    if cell.status in ("timeout", "dead-kernel"):
        return [f"FAILED {run.path.name}, {where}: {cell.ename}: {cell.evalue}"]
    lines = [f"FAILED {run.path.name}, {where} raised {cell.ename}: {cell.evalue}"]
    return lines + _indent("\n".join(summarize_traceback(cell.traceback)), "  | ")


def _summary(run: Any, verdict: str) -> str:
    outcomes = run.outcomes()
    total = sum(outcomes.values())
    if not total:
        calls = "no recorded calls"
    elif len(outcomes) == 1:
        (outcome,) = outcomes
        calls = f"{_plural(total, 'call')} {outcome}"
    else:
        calls = f"{_plural(total, 'call')} (" + ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())) + ")"
    if total:
        calls += f" from {_plural(len(run.files_used()), 'file')}"
    ran = len(run.cells)
    cells = f"{ran} code cells" if ran == run.code_cells else f"{ran} of {run.code_cells} code cells"
    return f"{run.path.name}: {cells}, {calls}, {run.seconds:.1f}s: {verdict}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _output_targets(paths: list[Path], output: str | None) -> dict[Path, Path]:
    if output is None:
        return {}
    target = Path(output).expanduser()
    if len(paths) == 1 and not target.is_dir() and not output.endswith(("/", os.sep)):
        return {paths[0]: target}
    names = [p.name for p in paths]
    if len(set(names)) != len(names):
        raise UsageError("--output DIR needs notebooks with different file names")
    if target.exists() and not target.is_dir():
        raise UsageError(f"--output must be a directory when running several notebooks: {output}")
    return {p: target / p.name for p in paths}


def cmd_run(args: argparse.Namespace) -> int:
    """``run NB...``: execute notebooks, optionally checking their outputs."""
    paths = _notebook_paths(args.notebooks)
    targets = _output_targets(paths, args.output)
    if args.json:  # the progress and the report go to stderr, the JSON alone to stdout
        results: list[dict[str, Any]] = []
        with contextlib.redirect_stdout(sys.stderr):
            status = _run_all(args, paths, targets, results)
        _print_json({"ok": status == 0, "notebooks": results})
        return status
    return _run_all(args, paths, targets, [])


def _run_all(
    args: argparse.Namespace, paths: list[Path], targets: dict[Path, Path], results: list[dict[str, Any]]
) -> int:
    from ._notebooks import NotebookError, compare, has_stored_outputs, write_notebook

    failed: list[str] = []
    for number, path in enumerate(paths):
        if number:
            _out("")
        try:
            run = _execute(path, args, args.mode)
        except NotebookError as exc:
            _err(f"FAILED {exc}")
            failed.append(path.name)
            results.append({"notebook": str(path), "ok": False, "error": str(exc)})
            continue
        ok = run.failure is None
        diffs: list[Any] = []
        if not ok:
            _err(*_failure_lines(run))
        if ok and args.check:
            if not has_stored_outputs(run.stored):
                _err(
                    f"FAILED {path.name}: the notebook has no stored outputs to check against",
                    f"  store them with: {PROG} run {path} --output {path}",
                )
                ok = False
            else:
                diffs = compare(run)
                for diff in diffs:
                    count = f", execution count {diff.execution_count}" if diff.execution_count else ""
                    _out(f"cell {diff.index + 1}{count}: outputs differ", *_indent("\n".join(diff.diff), "  "))
                if diffs:
                    if any(_only_untagged_notes(diff.diff) for diff in diffs):
                        _out(
                            "  the stored outputs hold notebook-recorder's notes as plain output (saved by an older",
                            "  version), and notes are no longer compared; store the outputs again with:",
                            f"  {PROG} run {path} --output {path}",
                        )
                    _err(f"FAILED {path.name}: {len(diffs)} cell(s) with different outputs")
                    ok = False
        if path in targets:
            write_notebook(run.executed, targets[path])
            _out(f"wrote {targets[path]}")
        verdict = "failed" if not ok else ("outputs match" if args.check else "ok")
        _out(_summary(run, verdict))
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
                "output": str(targets[path]) if path in targets else None,
            }
        )
    if len(paths) > 1:
        _out("", f"{len(paths)} notebooks: {len(paths) - len(failed)} passed, {len(failed)} failed")
        if failed:
            _err("failed: " + ", ".join(failed))
    return 1 if failed else 0


def _only_untagged_notes(diff: list[str]) -> bool:
    """Whether a cell's diff only removes stored lines that look like the magics' notes: outputs
    stored before the notes were tagged in their metadata."""
    removed = [line[1:] for line in diff if line.startswith("-") and not line.startswith("---")]
    added = [line for line in diff if line.startswith("+") and not line.startswith("+++")]
    notes = [line for line in removed if line.startswith("apirec: ")]
    return bool(notes) and not added and all(line in notes or line == "[stdout]" for line in removed)


def cmd_prune(args: argparse.Namespace) -> int:
    """``prune DIR --used-by NB...``: list (and with ``--yes`` delete) recordings no notebook uses."""
    from ._notebooks import NotebookError

    root = _existing_dir(args.dir)
    paths = _notebook_paths(args.used_by)
    used: set[Path] = set()
    for path in paths:
        try:
            run = _execute(path, args, "replay")
        except NotebookError as exc:
            _out(f"FAILED {exc}")
            return 1
        if run.failure is not None:
            _out(*_failure_lines(run))
            _out("prune: nothing deleted, because a notebook failed (its recordings in use are unknown)")
            return 1
        _out(_summary(run, "ok"))
        used |= {p.resolve() for p in run.files_used()}
    walk = _walk(root)
    files = [Path(f) for f in walk.files]
    unused = [f for f in files if f.resolve() not in used]
    bad = [(Path(odd.path), odd.problem) for odd in walk.problems]
    for file in list(unused):
        try:
            _read(file)
        except RecordingFormatError as exc:  # not ours to judge: listed, never deleted
            bad.append((file, exc.problem))
            unused.remove(file)
            files.remove(file)
    stale = [Path(p) for directory in walk.dirs for p in _files.stale_temp_files(directory)]
    _out("")
    if bad:
        _out(f"{len(bad)} entries in {args.dir} are not readable recordings (left alone):")
        _out(*[f"  {_rel(path, root)}: {problem}" for path, problem in sorted(bad)])
    if stale:
        _out(f"{len(stale)} temporary file(s) left by interrupted writes:", *[f"  {_rel(p, root)}" for p in stale])
    if not unused:
        _out(f"all {len(files)} recordings in {args.dir} are used")
    else:
        _out(f"{len(unused)} of {len(files)} recordings in {args.dir} are not used by these notebooks:")
        _out(*[f"  {_rel(f, root)}" for f in unused])
    doomed = unused + stale
    if not doomed:
        return 0
    if not args.yes:
        _out(f"nothing deleted; run again with --yes to delete these {len(doomed)} file(s)")
        return 0
    for file in doomed:
        file.unlink(missing_ok=True)
    _out(f"deleted {len(doomed)} file(s)")
    return 0


# ---------------------------------------------------------------------------------------------
# The parser
# ---------------------------------------------------------------------------------------------


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one subparser per command."""
    from ._notebooks import IGNORE_OUTPUT_TAGS, describe_rules

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Record and replay OpenAI SDK calls and tool calls; run notebooks against the recordings.",
        epilog=f"Run `{PROG} COMMAND --help` for the options of a command.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    sub.required = True

    ignore_tags = " or ".join(sorted(IGNORE_OUTPUT_TAGS))
    run = sub.add_parser(
        "run",
        help="execute notebooks in a real kernel, replaying their recordings; --check compares outputs",
        description=textwrap.dedent(
            """\
            Execute each notebook in a fresh kernel (cwd: the notebook's directory), with
            APIREC_MODE=<mode> and NOTEBOOK_RECORDER_NOTEBOOK=<notebook path> so that %apirec
            finds recordings/<notebook stem>/ beside the notebook. Prints a line per cell and a
            summary. Exits 1 when a cell raises (unless tagged raises-exception), when a recording
            is missing, or, with --check, when outputs differ from the stored ones.
            """
        ),
        epilog=(
            "--check compares each code cell's outputs with the stored ones: stdout, stderr (as one block), rich\n"
            "outputs as text (HTML with its tags stripped, else text/plain), errors as 'ename: evalue';\n"
            f"images are ignored, and so are cells tagged {ignore_tags}, and the outputs notebook-recorder\n"
            "showed by itself (its notes and status tables, marked in their output metadata).\n"
            "Sanitisers applied to both sides first:\n" + describe_rules()
        ),
        formatter_class=_Formatter,
    )
    run.add_argument("notebooks", nargs="+", metavar="NB", help="notebook files (.ipynb)")
    run.add_argument(
        "--mode",
        choices=valid_modes(),
        default="replay",
        help="APIREC_MODE for the kernel, which overrides the modes the notebook chooses "
        "(default: replay; the record modes need an API key)",
    )
    run.add_argument("--check", action="store_true", help="fail when outputs differ from the stored ones")
    run.add_argument(
        "--json", action="store_true", help="print JSON to stdout: {ok, notebooks: [...]}; progress goes to stderr"
    )
    run.add_argument(
        "--output",
        metavar="PATH",
        help="write the executed notebook here (a directory when running several)",
    )
    _add_kernel_options(run)
    run.set_defaults(parser=run, handler=cmd_run)

    ls = sub.add_parser(
        "ls",
        help="list the recordings in a directory",
        description="A table of the recordings under DIR: key (* = the file name is not the key), kind, "
        "endpoint or tool, model, streaming, chunks, size, test_id.",
    )
    ls.add_argument("dir", metavar="DIR", help="a directory of recordings (searched recursively)")
    ls.add_argument("--sort", choices=sorted(_SORTS), default="key", help="sort order (default: key)")
    ls.add_argument("--full", action="store_true", help="full keys and test ids, and the file column")
    ls.add_argument("--json", action="store_true", help="print JSON: {dir, recordings: [...]} (see the README)")
    ls.set_defaults(parser=ls, handler=cmd_ls)

    show = sub.add_parser(
        "show",
        help="print one recording as readable text",
        description="Print a recording: the request, the conversation, the tool calls and the (streamed) "
        "answer. TARGET is a file, or a key or unique key prefix looked up in --dir.",
    )
    show.add_argument("target", metavar="FILE|KEY", help="a recording file, a key, or a unique key prefix")
    show.add_argument("--dir", metavar="DIR", help=f"where to look keys up (default: ${ENV_DIR} or ./recordings)")
    show.add_argument(
        "--max-chars",
        type=int,
        default=1000,
        metavar="N",
        help="cut each message or answer after N characters (default: 1000; 0: no limit)",
    )
    show.set_defaults(parser=show, handler=cmd_show)

    verify = sub.add_parser(
        "verify",
        help="check a directory of recordings; exit 1 on problems",
        description="Check that every file parses, is named by its key, has a unique key and only "
        "__type__s that replay may build (the SDK's models and errors, builtin exceptions; checked by "
        "name, nothing a file names is imported), and holds nothing that looks like a credential "
        "(sk-..., Bearer ..., AKIA..., ghp_..., xoxb-..., JWTs, request headers, values under credential "
        "names). Foreign types known from real corpora (llama-stack tool results, ollama responses) are "
        "notes. Exits 1 when it finds a problem.",
    )
    verify.add_argument("dir", metavar="DIR", help="a directory of recordings (searched recursively)")
    verify.add_argument("--json", action="store_true", help="print JSON: {dir, files, ok, problems, notes}")
    verify.add_argument(
        "--strict",
        action="store_true",
        help="report known foreign __type__s (llama-stack's, ollama's) as problems too",
    )
    verify.add_argument(
        "--allow-type",
        action="append",
        metavar="NAME",
        help="accept this __type__ (your tools' result types, registered types); 'module.*' accepts a "
        "module's; repeatable",
    )
    verify.add_argument(
        "--allow-unknown-types",
        action="store_true",
        help="list every __type__ not on the allowlist as a note, not a problem (replay returns their raw data)",
    )
    verify.set_defaults(parser=verify, handler=cmd_verify)

    imp = sub.add_parser(
        "import",
        help="copy recordings from another corpus under canonical names",
        description="Copy recordings (llama-stack's layout: any tree of *.json) into DEST as <key>.json, "
        "the key recomputed from the content. Files that cannot be keyed are skipped with a note. "
        "Running it twice changes nothing.",
    )
    imp.add_argument("src", nargs="+", metavar="SRC", help="recording files or directories")
    imp.add_argument("dest", metavar="DEST", help="the directory to write to")
    imp.add_argument(
        "--scope",
        metavar="S",
        help="set test_id (the scope) to S before keying; '' or 'none' means null",
    )
    imp.set_defaults(parser=imp, handler=cmd_import)

    prune = sub.add_parser(
        "prune",
        help="list (and with --yes delete) recordings that no given notebook replays",
        description="Run each notebook in replay mode, collect the recording files it used, and list the "
        "files under DIR that none used, and temporary files left by interrupted writes. Deletes them only "
        "with --yes; deletes nothing if a notebook fails. Entries that are not readable recordings are listed, "
        "never deleted.",
    )
    prune.add_argument("dir", metavar="DIR", help="the recordings directory to prune")
    prune.add_argument("--used-by", nargs="+", required=True, metavar="NB", help="the notebooks that use DIR")
    prune.add_argument("--yes", action="store_true", help="really delete the unused recordings")
    _add_kernel_options(prune)
    prune.set_defaults(parser=prune, handler=cmd_prune)
    return parser


def _add_kernel_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=300.0,
        metavar="S",
        help="seconds each cell may take (default: 300)",
    )
    parser.add_argument(
        "--kernel",
        default="python3",
        metavar="NAME",
        help="kernel to run (default: python3, the Python running this command)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 failure, 2 usage error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, and usage errors
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    try:
        status: int = args.handler(args)
        return status
    except UsageError as exc:
        args.parser.print_usage(sys.stderr)
        print(f"{args.parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
