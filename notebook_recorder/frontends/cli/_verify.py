"""``notebook-recorder verify``: check a directory of recordings and return a report.

:func:`verify` decides; the command line prints its :class:`VerifyReport` as text or JSON (as
vcrpy's ``errors.py`` explains a miss, the report says what is wrong and how to fix it). Every
file parses, every name is its key (and occurrence), no key and occurrence twice, every
``__type__`` is on the allowlist that replay builds from (checked by name: nothing a file names is
imported), no credential-looking strings. Foreign types seen in real corpora
(``_types.KNOWN_FOREIGN_TYPES``) are notes, not problems, unless ``strict``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...core._store import MODEL_LIST_NAME, name_key_occurrence, relative, stale_temp_files
from ...core._terminal import one_line
from ...core._types import allowed_type, is_known_foreign
from ._scan import Entry, scan

PROBLEM_KINDS = (
    "unreadable files",
    "names that are not their key",
    "invalid occurrence fields",
    "invalid match fields",
    "duplicate keys",
    "unknown __type__s",
    "possible leaked credentials",
)
"""The kinds of problem, in the order the report lists them."""


@dataclass
class VerifyReport:
    """What :func:`verify` found: problems grouped by kind (:data:`PROBLEM_KINDS`), notes that are
    not problems, and how many files were recorded under each set of match rules."""

    files: int
    problems: dict[str, list[str]] = field(default_factory=lambda: {kind: [] for kind in PROBLEM_KINDS})
    notes: list[str] = field(default_factory=list)
    match_rules: dict[str, int] = field(default_factory=dict)  # the rules described -> files

    @property
    def total(self) -> int:
        """How many problems, of every kind."""
        return sum(len(items) for items in self.problems.values())

    @property
    def ok(self) -> bool:
        """Whether there is no problem (notes do not count)."""
        return not self.total

    def as_json(self, directory: str) -> dict[str, Any]:
        """``verify --json``: ``{dir, files, ok, problems, notes}``."""
        return {"dir": directory, "files": self.files, "ok": self.ok, "problems": self.problems, "notes": self.notes}


def verify(
    root: Path, *, allow_types: Sequence[str] | None = None, strict: bool = False, allow_unknown_types: bool = False
) -> VerifyReport:
    """Check every recording under ``root``. ``allow_types``: ``__type__`` names (``module.*`` for a
    module's) accepted besides the allowlist; ``strict``: known foreign types are problems too;
    ``allow_unknown_types``: every unknown type is a note."""
    entries = scan(root, deep=True)
    groups: dict[str, list[str]] = {kind: [] for kind in PROBLEM_KINDS}
    notes: list[str] = []
    by_key: dict[tuple[str, int], list[Entry]] = defaultdict(list)
    unknown: dict[str, list[str]] = defaultdict(list)
    unkeyable, opaque, untrusted = [], [], []
    rule_sets: dict[str, int] = defaultdict(int)
    for entry in entries:
        if entry.problem:
            groups["unreadable files"].append(f"{entry.shown}: {one_line(entry.problem)}")
            continue
        rule_sets[entry.match] += 1
        if entry.bad_match:
            groups["invalid match fields"].append(
                f'{entry.shown}: match must be {{"ignore": [PATH...], "normalize": {{PATTERN: REPLACEMENT}}}} '
                "with valid paths and regular expressions"
            )
        elif entry.opaque:
            opaque.append(entry.shown)
        elif entry.untrusted:
            untrusted.append(entry.shown)
        elif entry.occurrence is None:
            groups["invalid occurrence fields"].append(
                f"{entry.shown}: occurrence must be a whole number >= 1, not {entry.bad_occurrence}"
            )
        elif entry.key is None:
            unkeyable.append(entry.shown)
        else:
            by_key[(entry.key, entry.occurrence)].append(entry)
            if entry.stale_name:
                groups["names that are not their key"].append(f"{entry.shown}: {_stale_name_problem(entry)}")
        for name in sorted(entry.types):
            if not _type_allowed(name, allow_types):
                unknown[name].append(entry.shown)
        groups["possible leaked credentials"] += [f"{entry.shown}: {one_line(finding)}" for finding in entry.leaks]
    for (key, occurrence), same in sorted(by_key.items()):
        if len(same) < 2:
            continue
        listed = "".join(f"\n    {e.shown}" for e in same)
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
        if allow_unknown_types:
            notes.append(f"{line}\n    (allowed by --allow-unknown-types)")
        elif is_known_foreign(name) and not strict:
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
    stale = stale_temp_files(root)
    if stale:
        notes.append(
            f"{len(stale)} temporary file(s) left by interrupted writes (harmless; the next recording written "
            f"there, or `notebook-recorder prune ... --yes`, removes them):"
            + "".join(f"\n    {one_line(relative(p, root))}" for p in stale)
        )

    return VerifyReport(len(entries), groups, notes, dict(rule_sets))


def _stale_name_problem(entry: Entry) -> str:
    """Why a file's name is not its key: ``its key is K`` (plus the occurrence when that is what differs)."""
    assert entry.key is not None and entry.occurrence is not None
    name_key, named = name_key_occurrence(entry.path)
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
