"""``notebook-recorder import``: copy recordings from another corpus (such as llama-stack's) into a
:class:`~._store.Store` under their canonical names, optionally re-scoped. Running it twice
changes nothing. :func:`import_into` is the way in (``notebook-recorder import``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._codec import dumps
from ._errors import RecordingFormatError
from ._keys import record_key, record_occurrence, record_rules, request_from_record
from ._store import Store, read_recording, trusted_patterns, walk_recordings


@dataclass(frozen=True)
class Imported:
    """What :func:`import_into` did with one file: ``imported``, ``updated``, ``unchanged``
    or ``skipped`` (then ``why``)."""

    status: str
    source: str
    target: Path | None = None
    why: str = ""


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


def import_into(
    store: Store, sources: Sequence[Path], *, rescope: bool = False, scope: str | None = None
) -> Iterator[Imported]:
    """Copy the recordings in ``sources`` (files or trees) into ``store`` under their canonical
    names (:meth:`Store.write`), with ``rescope`` their ``test_id`` set to ``scope`` first. One
    :class:`Imported` per file; a file that cannot be keyed is skipped, never stops the others.
    Importing twice changes nothing."""
    files: list[Path] = []
    for source in sources:
        walk = walk_recordings(source)
        for problem in walk.problems:
            yield Imported("skipped", problem.path, why=problem.problem)
        for file in map(Path, walk.files):
            if file.resolve().parent == store.root and source.resolve() != file.resolve():
                continue  # DEST inside SRC: its own files are not sources
            files.append(file)
    trusted = trusted_patterns(store.root)
    written: dict[tuple[str, int], Path] = {}
    for file in files:
        try:
            record = read_recording(file)
        except RecordingFormatError as exc:
            yield Imported("skipped", str(file), why=exc.problem)
            continue
        if rescope:
            record = _rescoped(record, scope)
        try:
            key, occurrence = record_key(record, trusted=trusted), record_occurrence(record)
        except Exception as exc:  # an odd shape: skip this file, import the others
            yield Imported("skipped", str(file), why=f"cannot compute its key ({type(exc).__name__})")
            continue
        why = ""
        if key is None:
            why = "no keyable request (a raw HTTP or similar recording)"
            if request_from_record(record) is not None:
                rules = record_rules(record)
                described = rules.summary() if rules else "malformed"
                why = f"keyed under match rules this project cannot re-run ({described})"
        elif occurrence is None:
            why = f"occurrence must be a whole number >= 1, not {record.get('occurrence')!r}"
        elif (key, occurrence) in written:
            same = "same key" if occurrence == 1 else f"same key and occurrence ({occurrence})"
            why = f"{same} as {written[key, occurrence]}"
        if why or key is None or occurrence is None:
            yield Imported("skipped", str(file), why=why)
            continue
        written[key, occurrence] = file
        record = _with_canonical_endpoint(record)
        target = store.path_for(key, occurrence)
        status = "imported"
        if target.is_file():
            if target.read_bytes() == dumps(record):
                yield Imported("unchanged", str(file), target)
                continue
            status = "updated"
        store.write(key, record)
        yield Imported(status, str(file), target)
