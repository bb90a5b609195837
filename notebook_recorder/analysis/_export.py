"""Recordings as four Parquet datasets, written in batches and kept up to date incrementally.

``export(src, to=OUT)`` writes ``OUT/calls/``, ``OUT/messages/``, ``OUT/tool_calls/`` and
``OUT/chunks/``: the frames of :func:`load_frames` (``chunks`` is ``token_stream``), with the same
columns and dtypes (categoricals as dictionary columns, ``recorded_at`` a UTC timestamp), each
partitioned by the day the call was recorded (``day=YYYY-MM-DD/``, Hive style, which DuckDB,
Spark and pyarrow read as a ``day`` column). Every Parquet file carries ``schema_version`` in its
metadata (key ``notebook_recorder``).

- **Batches.** Files are read in batches of at most :data:`BATCH_FILES` files and
  :data:`BATCH_BYTES` bytes, formed as the walk's results are read back from the manifest (no
  list of every file in memory); a batch's frames are written and dropped before the next one.
  Batches are read by this process (in a thread) and by worker processes, one per usable CPU in
  all, each given one batch at a time.
- **Incremental.** ``OUT/_manifest.sqlite`` (see :mod:`._manifest`) lists every exported file
  with its size, modification time and batch. A second export reads only the files that are new
  or changed; the rows of changed and deleted files are removed from the parts that held them.
  A file modified within two seconds of an export is read again next time (its timestamp could
  hide a second edit). The manifest is compared and updated on disk, a row per changed file.
- **One at a time.** An export holds ``flock`` on ``OUT/_export.lock``; a second one waits
  (saying so once on stderr), then finds the work done.
- **Stopped half way** (killed, a full disk): what the manifest records is complete, and the
  next export removes what it does not record and finishes the work: the dataset is then what
  a full export makes.
- **Bad files** are rows of ``calls`` with ``error`` set, as in the frames.
- ``tool_calls.output`` of a call the model asked for comes from a later request of the same
  test, which may be in another batch or another export: each batch matches its own and keeps
  its tool calls unmatched under ``OUT/_state/``, and a small index of the rows that give or
  want an output (``OUT/_state/tool_index.arrow``) tells which ``OUT/tool_calls/`` parts an
  export must write again: those whose matched output changes.

pyarrow and pandas are imported here; DuckDB by :func:`connect` only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import orjson

from ..core._files import Listed
from ._layout import DATASETS, MANIFEST, OLD_MANIFEST, SCHEMA_VERSION, is_dataset
from ._loader import Loaded, _Cached, _read_one, _usable_cpus, gc_paused, iter_listings
from ._manifest import Entry, Manifest, dir_key, row_path
from ._progress import Progress

STATE = "_state"
_RAW_TOOLS = "tool_calls_raw"
_TEST_ID = "__test_id"  # the raw tool calls' extra columns: the file's test_id, and row order
_ROW = "__row"
#: A batch holds at most this many files ...
BATCH_FILES = 2000
#: ... and this many bytes of JSON (its frames weigh a few times more, in one worker).
BATCH_BYTES = 96 << 20
#: Exports of fewer files than this are done in this process, without workers (a worker takes
#: about a second to start: importing pandas and pyarrow).
PARALLEL_MIN_FILES = 5000
#: A worker process reads this many batches at most, then a fresh one takes over (a safety
#: bound: measured, a worker's memory does not grow over 25 batches).
TASKS_PER_WORKER = 50
#: Set to ``0`` to export in this process only.
ENV_EXPORT_WORKERS = "NOTEBOOK_RECORDER_EXPORT_WORKERS"
#: Files per batch, instead of :data:`BATCH_FILES` (smaller batches: more parts, and an export
#: that stops keeps more of its work; tests use it to have many batches).
ENV_BATCH_FILES = "NOTEBOOK_RECORDER_EXPORT_BATCH_FILES"
_META_KEY = b"notebook_recorder"
# Timestamps in microseconds: Spark cannot read Parquet's nanosecond timestamps, and recorded_at
# is never finer (files say seconds or microseconds; a modification time is cut to the second).
_PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "coerce_timestamps": "us",
    "allow_truncated_timestamps": True,
}


@dataclass(frozen=True)
class ExportResult:
    """What one :func:`export` did."""

    out: Path
    files: int  # recording files (and unreadable entries) in the dataset now
    read: int  # files read by this export: new or changed
    removed: int  # files whose rows were removed: changed or deleted
    errors: int  # files of this export that could not be read (rows with ``error`` set)
    seconds: float

    def __str__(self) -> str:
        return (
            f"{self.out}: {self.files} file(s); {self.read} read, {self.removed} removed, "
            f"{self.errors} unreadable, in {self.seconds:.1f} s"
        )


# --- one batch --------------------------------------------------------------------------------


@dataclass
class _Batch:
    """What a worker reports for one batch."""

    batch: int
    stats: dict[str, tuple[int, int]]  # path -> size, mtime_ns (-1 when racy or unreadable)
    errors: int
    raw_parts: list[str]  # the raw tool-call parts written (``day=D/part-N.parquet``)
    index: Any  # their rows of the tool index (a pyarrow Table, None without tool calls)


def _part_name(batch: int) -> str:
    return f"part-{batch:06d}.parquet"


def _schema_metadata(dataset: str) -> dict[bytes, bytes]:
    return {_META_KEY: json.dumps({"schema_version": SCHEMA_VERSION, "dataset": dataset}).encode()}


def _arrow(df: Any) -> Any:
    """``df`` as an Arrow table, converted in this thread: pyarrow's threads, which it starts for
    a frame of more than 100 rows a column, make it three times slower (the columns are mostly
    Arrow already)."""
    import pyarrow as pa  # type: ignore[import-untyped]

    return pa.Table.from_pandas(df, preserve_index=False, nthreads=1)


def _write_table(df: Any, path: Path, dataset: str) -> None:
    _write_arrow(_arrow(df), path, dataset)


def _write_arrow(table: Any, path: Path, dataset: str) -> None:
    _write_parquet(table.replace_schema_metadata({**(table.schema.metadata or {}), **_schema_metadata(dataset)}), path)


def _read_parquet(path: Path, columns: list[str] | None = None) -> Any:
    """One Parquet file as a table (``ParquetFile``: several times faster than ``read_table``,
    which sets up a dataset for every file)."""
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    with pq.ParquetFile(path) as f:
        return f.read(columns=columns)


def _write_by_day(df: Any, days: Any, out: Path, dataset: str, batch: int) -> list[str]:
    """``df`` written as ``out/dataset/day=D/part-<batch>.parquet``, one file per day it has
    (converted to Arrow once, then cut by day); the parts' names (``day=D/part-N.parquet``)."""
    if not len(df):
        return []
    table = _arrow(df)
    names = []
    for day, index in _by_day(days).items():
        name = f"day={day}/{_part_name(batch)}"
        _write_arrow(_rows(table, index), out / dataset / name, dataset)
        names.append(name)
    return names


def _by_day(days: Any) -> dict[str, Any]:
    """The rows of each day (``days``: one per row, an array), by day, each ascending. (What
    ``df.groupby(days).indices`` gives, without pandas' checks whether ``days`` names a column,
    which format the whole array as text: several times slower on a small batch.)"""
    import numpy as np
    import pandas as pd

    codes, uniques = pd.factorize(days, sort=True)  # no day is missing ("unknown" is one)
    if not len(codes):
        return {}
    rows = np.argsort(codes, kind="stable")
    return dict(zip(uniques.tolist(), np.split(rows, np.cumsum(np.bincount(codes))[:-1]), strict=True))


def _rows(table: Any, index: Any) -> Any:
    """The rows ``index`` (ascending) of ``table``: the table itself when they are all of them
    (a batch of one day, as an incremental export's often is: no copy)."""
    import pyarrow as pa

    return table if len(index) == table.num_rows else table.take(pa.array(index))


def _loaded(paths: Sequence[str], problems: Sequence[tuple[str, str]], started_ns: int) -> tuple[Loaded, list[int]]:
    entries: list[_Cached] = [_read_one(p, (), started_ns) for p in paths]
    entries += [_Cached((-1, -1, -1, -1), False, problem, {}, None) for _, problem in problems]
    all_paths = [*paths, *(p for p, _ in problems)]
    trusted = [1 if c.trusted else 0 for c in entries]
    return Loaded(
        all_paths, [c.size for c in entries], [c.result for c in entries], [], [c.stat[1] for c in entries]
    ), trusted


def export_batch(batch: int, paths: list[str], problems: list[tuple[str, str]], out: str) -> _Batch:
    """Read ``paths`` (and the unreadable entries ``problems``) and write their rows as part
    ``batch`` of every dataset under ``out``. Runs in a worker process, or in this one."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc  # type: ignore[import-untyped]

    from ._frames import MESSAGE_COLUMNS, RECORDING_COLUMNS, TOKEN_COLUMNS, _child_frame, _recordings_frame
    from ._loader import clear_cache

    root = Path(out)
    started_ns = time.time_ns()
    with gc_paused():
        loaded, trusted = _loaded(paths, problems, started_ns)
        calls = _recordings_frame(loaded, RECORDING_COLUMNS)
        day_of = calls["recorded_at"].dt.strftime("%Y-%m-%d").fillna("unknown")
        names = [row_path(p) for p in loaded.paths]  # as the rows carry them
        known = pa.array(names, pa.large_string())
        days = np.array([*day_of.tolist(), "unknown"], dtype=object)  # the last: a path not found

        def by_path(df: pd.DataFrame) -> Any:
            """The day of each row of ``df``: its file's."""
            found = pc.index_in(pa.array(df["path"], pa.large_string()), value_set=known)
            return days[found.fill_null(len(names)).to_numpy()]

        _write_by_day(calls, day_of.to_numpy(), root, "calls", batch)
        del calls
        for dataset, frame, cols in (
            ("messages", "messages", MESSAGE_COLUMNS),
            ("chunks", "token_stream", TOKEN_COLUMNS),
        ):
            df = _child_frame(frame, loaded, cols)
            _write_by_day(df, by_path(df), root, dataset, batch)
            del df
        raw = _raw_tool_calls(loaded)
        raw_parts, index = _write_tool_parts(raw, by_path(raw), root, batch, names)
        del raw
        clear_cache()  # the frame cache: nothing of this batch stays in memory
    stats: dict[str, tuple[int, int]] = {}
    errors = 0
    for path, size, mtime, result, ok in zip(
        loaded.paths, loaded.sizes, loaded.mtimes_ns, loaded.results, trusted, strict=True
    ):
        stats[path] = (-1 if size is None else size, mtime if ok and not isinstance(result, str) else -1)
        errors += isinstance(result, str)
    return _Batch(batch, stats, errors, raw_parts, index)


def _raw_tool_calls(loaded: Loaded) -> Any:
    """The ``tool_calls`` frame of ``loaded`` before outputs are matched across files, with the
    file's ``test_id`` and each row's position (what matching needs)."""
    import numpy as np

    from ._frames import _FRAME_FIELDS, TOOL_CALL_COLUMNS, _frame, _repeat_paths, _transpose
    from ._rows import CALL_FIELDS, Extracted

    i_test_id = CALL_FIELDS.index("test_id")
    ok = [(p, r) for p, r in zip(loaded.paths, loaded.results, strict=True) if type(r) is Extracted]
    per_file = [r.tool_calls for _, r in ok]
    rows = list(chain.from_iterable(per_file))
    data = _transpose(rows, _FRAME_FIELDS["tool_calls"][:-1])
    counts = [len(r) for r in per_file]
    data["path"] = _repeat_paths([p for p, _ in ok], counts)
    df = _frame(TOOL_CALL_COLUMNS, data, len(rows), "tool_calls")
    test_ids = [r.call[i_test_id] for _, r in ok]
    df[_TEST_ID] = [None if t is None else str(t) for t in np.repeat(np.array(test_ids, dtype=object), counts)]
    df[_ROW] = np.arange(len(rows), dtype=np.int64)
    return df


def _write_tool_parts(raw: Any, days: Any, out: Path, batch: int, paths: list[str]) -> tuple[list[str], Any]:
    """Write the raw tool calls of a batch (``OUT/_state/tool_calls_raw/``) and its
    ``tool_calls`` parts, with outputs matched within the batch (the export matches them across
    batches afterwards, and writes a part again only when that changes an output); the parts'
    names and their rows of the tool index."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not len(raw):
        return [], None
    table = _arrow(raw)
    parts: dict[str, Any] = {}
    for day, index in _by_day(days).items():
        name = f"day={day}/{_part_name(batch)}"
        parts[name] = part = _rows(table, index)
        _write_arrow(part, out / STATE / _RAW_TOOLS / name, _RAW_TOOLS)
    rows = pa.concat_tables([_index_rows(part, name)[0] for name, part in parts.items()])
    cols = [rows[c].to_pylist() for c in _INDEX_COLUMNS]
    order = {path: i for i, path in enumerate(paths)}
    fills, digests = _fill_plan(cols, _winners(cols, order), set(parts))
    rows = rows.set_column(rows.schema.get_field_index("digest"), "digest", pa.array(digests, pa.binary(16)))
    metadata = pq.read_schema(out / "tool_calls" / "_schema.parquet").metadata
    for name, part in parts.items():
        filled = _filled(part.drop_columns([_TEST_ID, _ROW]), fills.get(name, []), lambda p, i: parts[p]["output"][i])
        _write_parquet(filled.replace_schema_metadata(metadata), out / "tool_calls" / name)
    return list(parts), rows


def _write_parquet(table: Any, path: Path) -> None:
    """``table`` written to ``path`` (through a temporary file: a reader sees the old part or
    the new one)."""
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp, **_PARQUET_OPTIONS)
    os.replace(tmp, path)


Fill = tuple[int, "str | None", int]  # a want's position, and its winner's part and position


def _winners(cols: list[list[Any]], order: dict[str, int]) -> dict[bytes, tuple[tuple[int, int], str, int, bytes]]:
    """The winning output of each match key among the index rows ``cols`` (columns as lists):
    its last one in file order (``order``: a file's place in the walk), then in row order."""
    winners: dict[bytes, tuple[tuple[int, int], str, int, bytes]] = {}
    for part, pos, path, row, key, give, digest in zip(*cols, strict=True):
        if give:
            rank = (order.get(path, -1), row)
            best = winners.get(key)
            if best is None or rank >= best[0]:
                winners[key] = (rank, part, pos, digest)
    return winners


def _fill_plan(
    cols: list[list[Any]], winners: dict[bytes, tuple[tuple[int, int], str, int, bytes]], stale: set[str]
) -> tuple[dict[str, list[Fill]], list[bytes | None]]:
    """What each want among ``cols`` gets (by part: those of a part in ``stale``, written anew,
    and those whose output changes), and every row's digest (a want's: of its output)."""
    no_output = _digest(None)
    fills: dict[str, list[Fill]] = {}
    digests: list[bytes | None] = []
    for part, pos, _, _, key, give, digest in zip(*cols, strict=True):
        if give:
            digests.append(digest)
            continue
        win = winners.get(key)
        new = no_output if win is None else win[3]
        digests.append(new)
        if part in stale or new != digest:
            fills.setdefault(part, []).append((pos, None if win is None else win[1], -1 if win is None else win[2]))
    return fills, digests


def _filled(table: Any, fills: list[Fill], output: Callable[[str, int], Any]) -> Any:
    """``table`` with the outputs ``fills`` set (``output(part, pos)``: a winner's output)."""
    import pyarrow as pa

    if not fills:
        return table
    column = table["output"].to_pylist()
    for pos, win_part, win_pos in fills:
        value = None if win_part is None else output(win_part, win_pos)
        column[pos] = value.as_py() if isinstance(value, pa.Scalar) else value
    i_out = table.schema.get_field_index("output")
    return table.set_column(i_out, table.schema.field(i_out), pa.array(column, table.schema.field(i_out).type))


# --- matching tool outputs across batches -----------------------------------------------------
#
# ``OUT/_state/tool_index.arrow`` lists every row of the raw parts that gives an output (a
# request carrying a tool's result) or wants one (a call the model asked for, without output):
# its part and position, its file and row (for an output: the order that decides which one wins),
# a digest of its match key (test_id, call_id) and a digest: of the output it gives, or of the output it was given in
# ``OUT/tool_calls/``. Its metadata holds each raw part's size and modification time when it was
# indexed. An export reads only the raw parts that changed (or that the index does not know), and
# writes only the ``tool_calls`` parts whose outputs change: matching costs what the change costs,
# not what the corpus holds.

_INDEX = "tool_index.arrow"  # Arrow IPC (Feather V2), with pyarrow.ipc (pyarrow.feather takes 5 ms to import)
_INDEX_VERSION = 1
_INDEX_COLUMNS = ("part", "pos", "path", "row", "key", "give", "digest")


def _digest(value: Any) -> bytes:
    return hashlib.blake2b(orjson.dumps(value), digest_size=16).digest()


def _match_key(test_id: Any, call_id: Any) -> bytes:
    """(test_id, call_id) as 16 bytes: what the index stores and compares."""
    return hashlib.blake2b(orjson.dumps([test_id, call_id]), digest_size=16).digest()


def _index_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("part", pa.string()),
            ("pos", pa.int64()),
            ("path", pa.string()),
            ("row", pa.int64()),
            ("key", pa.binary(16)),
            ("give", pa.bool_()),
            ("digest", pa.binary(16)),
        ]
    )


def _read_index(out: Path) -> tuple[Any, dict[str, tuple[int, int]]]:
    """The index and the raw parts it describes (name -> size, mtime_ns); an empty index when
    there is none that this version wrote (every raw part is then read again)."""
    import pyarrow as pa

    empty: tuple[Any, dict[str, tuple[int, int]]] = (_index_schema().empty_table(), {})
    try:
        table = pa.ipc.open_file(pa.py_buffer((out / STATE / _INDEX).read_bytes())).read_all()
        meta = json.loads((table.schema.metadata or {})[_META_KEY])
    except (OSError, KeyError, ValueError, pa.ArrowException):
        return empty
    if (
        not isinstance(meta, dict)
        or meta.get("index_version") != _INDEX_VERSION
        or not isinstance(meta.get("parts"), dict)
    ):
        return empty
    if not table.schema.remove_metadata().equals(_index_schema()):
        return empty
    parts: dict[str, tuple[int, int]] = {}
    for name, stat in meta["parts"].items():
        if not (isinstance(stat, list) and len(stat) == 2 and all(type(v) is int for v in stat)):
            return empty
        parts[name] = (stat[0], stat[1])
    # one chunk (a table of many is filtered ten times slower)
    return table.replace_schema_metadata(None).combine_chunks(), parts


def _index_rows(table: Any, name: str) -> tuple[Any, set[bytes]]:
    """The index rows of the raw part ``name`` (its table), and the match keys of its rows."""
    import pyarrow as pa
    import pyarrow.compute as pc  # type: ignore[import-untyped]

    source = table["source"].cast(pa.string())
    has_id = pc.and_(pc.is_valid(table["call_id"]), pc.not_equal(table["call_id"], ""))
    give = pc.fill_null(pc.and_(pc.and_(pc.equal(source, "request"), pc.is_valid(table["output"])), has_id), False)
    want = pc.fill_null(pc.and_(pc.and_(pc.equal(source, "response"), pc.is_null(table["output"])), has_id), False)
    taken = pc.indices_nonzero(pc.or_(give, want)).cast(pa.int64())
    gives = give.take(taken).to_pylist()
    outputs = table["output"].take(taken).to_pylist()
    keys = [
        _match_key(t, c)
        for t, c in zip(table[_TEST_ID].take(taken).to_pylist(), table["call_id"].take(taken).to_pylist(), strict=True)
    ]
    digests = [_digest(o) if g else None for g, o in zip(gives, outputs, strict=True)]
    rows = pa.table(
        {
            "part": pa.array([name] * len(keys), pa.string()),
            "pos": taken,
            "path": pc.if_else(give.take(taken), table["path"].take(taken).cast(pa.string()), None),  # gives' only
            "row": table[_ROW].take(taken).cast(pa.int64()),
            "key": pa.array(keys, pa.binary(16)),
            "give": pa.array(gives, pa.bool_()),
            "digest": pa.array(digests, pa.binary(16)),
        },
        schema=_index_schema(),
    )
    return rows, set(keys)


def _parts(root: Path) -> dict[str, os.DirEntry[str]]:
    """The parts under ``root`` by name (``day=D/part-N.parquet``: what ``root.glob`` with that
    pattern finds, listed with ``scandir``, several times faster)."""
    parts: dict[str, os.DirEntry[str]] = {}
    try:
        with os.scandir(root) as it:
            days = [d for d in it if d.name.startswith("day=") and d.is_dir()]
    except FileNotFoundError:
        return parts
    for day in days:
        try:
            with os.scandir(day.path) as it:
                for e in it:
                    if e.name.startswith("part-") and e.name.endswith(".parquet"):
                        parts[f"{day.name}/{e.name}"] = e
        except FileNotFoundError:  # removed since it was listed: as if it had not been
            continue
    return parts


def _rebuild_tool_calls(
    out: Path,
    order_of: Callable[[Iterable[str]], dict[str, int]],
    touched: set[str],
    new_rows: list[Any],
    *,
    trust_index: bool = True,
) -> None:
    """See :func:`_update_tool_calls`; when the index leads it astray (a position or part that is
    not there: an index that is not this dataset's), the index is dropped and every part rebuilt."""
    import pyarrow as pa

    try:
        _update_tool_calls(out, order_of, touched, new_rows, trust_index=trust_index)
    except (IndexError, FileNotFoundError, pa.ArrowException):
        if not trust_index and not new_rows:
            raise
        _update_tool_calls(out, order_of, touched, [], trust_index=False)


def _update_tool_calls(
    out: Path,
    order_of: Callable[[Iterable[str]], dict[str, int]],
    touched: set[str],
    new_rows: list[Any],
    *,
    trust_index: bool,
) -> None:
    """Bring ``out/tool_calls/`` up to date from the raw parts: a call the model asked for gets
    the output that a request of the same test carried (the last one, in file order), as
    :func:`tool_calls` does. The batches of this export wrote their parts with outputs matched
    within the batch, and their index rows (``new_rows``); of the other raw parts, only those
    that changed (``touched``, or whose size or time differs from the index's record) are read.
    A ``tool_calls`` part is written when its raw part changed or an output matched into it did."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    _write_schema_files(out)
    raw_root = out / STATE / _RAW_TOOLS
    target = out / "tool_calls"
    on_disk: dict[str, tuple[int, int]] = {}
    for name, entry in _parts(raw_root).items():
        st = entry.stat()
        on_disk[name] = (st.st_size, st.st_mtime_ns)
    written = set(_parts(target))
    index, known = _read_index(out) if trust_index else (_index_schema().empty_table(), {})
    fresh = {name for rows in new_rows for name in rows["part"].unique().to_pylist()} & set(on_disk) & written
    stale = {n for n, stat in on_disk.items() if known.get(n) != stat or n in touched or n not in written} - fresh
    stale |= set(known) - set(on_disk)
    keys: set[bytes] = set()  # whose winning output may change, or whose wants are all filled anew
    if stale or fresh:
        gone = pc.is_in(index["part"], value_set=pa.array(sorted(stale | fresh), pa.string()))
        keys.update(index.filter(gone)["key"].to_pylist())
        pieces = [index.filter(pc.invert(gone))]
        for name in sorted(stale & set(on_disk)):
            rows, part_keys = _index_rows(
                _read_parquet(raw_root / name, ["source", "call_id", "output", "path", _TEST_ID, _ROW]), name
            )
            pieces.append(rows)
            keys |= part_keys
        for rows in new_rows:
            pieces.append(rows.filter(pc.is_in(rows["part"], value_set=pa.array(sorted(fresh), pa.string()))))
        index = pa.concat_tables(pieces).combine_chunks()
        if fresh:
            # a key of this export's batches is matched again when it is in more than one part
            # (in one part only, its batch matched it already): mostly none of them. (Not with
            # a group_by: importing and starting Acero costs more than an incremental export.)
            in_fresh = pc.is_in(index["part"], value_set=pa.array(sorted(fresh), pa.string()))
            mine = index.filter(in_fresh)
            others = index.filter(pc.invert(in_fresh))["key"].combine_chunks()
            candidates = mine["key"]
            keys.update(candidates.filter(pc.is_in(candidates, value_set=others)).unique().to_pylist())
            first_part: dict[bytes, str] = {}  # in two parts of this export's batches
            for key, part in zip(candidates.to_pylist(), mine["part"].to_pylist(), strict=True):
                if first_part.setdefault(key, part) != part:
                    keys.add(key)
    selected = pc.is_in(index["key"], value_set=pa.array(sorted(keys), pa.binary(16)))
    rest, need = index.filter(pc.invert(selected)), index.filter(selected)
    cols = [need[c].to_pylist() for c in _INDEX_COLUMNS]
    order = order_of({path for path, give in zip(cols[2], cols[5], strict=True) if give})  # looked up on disk
    fills, digests = _fill_plan(cols, _winners(cols, order), stale)
    need = need.set_column(need.schema.get_field_index("digest"), "digest", pa.array(digests, pa.binary(16)))
    metadata = pq.read_schema(target / "_schema.parquet").metadata  # the frame's dtypes
    outputs = _OutputCache(raw_root)
    for name in sorted((stale | set(fills)) & set(on_disk)):
        if name in stale:
            table = _read_parquet(raw_root / name).drop_columns([_TEST_ID, _ROW])
        else:
            table = _read_parquet(target / name)
        here = table["output"]  # a give's output is the same in the raw part and in tool_calls

        def output(part: str, pos: int, name: str = name, here: Any = here) -> Any:
            return here[pos] if part == name else outputs.get(part, pos)

        _write_parquet(_filled(table, fills.get(name, []), output).replace_schema_metadata(metadata), target / name)
    for name in written - set(on_disk):
        (target / name).unlink()  # its raw part is gone: every row of it was removed
    meta = {"index_version": _INDEX_VERSION, "parts": {n: list(s) for n, s in sorted(on_disk.items())}}
    index = pa.concat_tables([rest, need]).combine_chunks()
    index = index.replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})
    (out / STATE).mkdir(exist_ok=True)
    tmp = out / STATE / f".{_INDEX}.{os.getpid()}.tmp"
    with pa.ipc.new_file(str(tmp), index.schema) as writer:  # Feather (V2), uncompressed: read in milliseconds
        writer.write_table(index)
    os.replace(tmp, out / STATE / _INDEX)
    (out / STATE / "tool_fills.json").unlink(missing_ok=True)  # what an earlier version kept


class _OutputCache:
    """The ``output`` column of the last few raw parts read (winning outputs are mostly in the
    part being written, or in one of the same test's)."""

    def __init__(self, root: Path, size: int = 8) -> None:
        self.root, self.size = root, size
        self.columns: dict[str, Any] = {}

    def get(self, part: str, pos: int) -> Any:

        column = self.columns.pop(part, None)
        if column is None:
            column = _read_parquet(self.root / part, ["output"])["output"]
            if len(self.columns) >= self.size:
                del self.columns[next(iter(self.columns))]
        self.columns[part] = column
        return column[pos]


# --- the export -------------------------------------------------------------------------------

Task = tuple[int, list[str], list[tuple[str, str]], str]  # batch, paths, unreadable entries, out
LOCK = "_export.lock"


def _walk(src: Any) -> Iterator[tuple[str | None, list[Entry]]]:
    """The files of ``src`` as :func:`find_files` finds them, as it goes, one directory's listing
    at a time (nothing kept), for :meth:`Manifest.compare`: (the directory's key, its entries),
    or (None, [entry]) for a file named directly or an entry that cannot be examined. An entry
    is (path, size, mtime_ns, None), or (path, -1, -1, problem) for one that cannot be read; a
    file that cannot be stat'ed has size and time -1 (it is read, which says why)."""
    stat = os.stat
    for item in iter_listings(src):
        if type(item) is Listed:
            entries: list[Entry] = []
            append = entries.append
            for path in item.listing.files:
                try:
                    st = stat(path)
                except OSError:
                    append((path, -1, -1, None))
                    continue
                append((path, st.st_size, st.st_mtime_ns, None))
            entries += [(p.path, -1, -1, p.problem) for p in item.listing.problems]
            yield dir_key(item.path), entries
        elif type(item) is str:
            try:
                st = stat(item)
            except OSError:
                yield None, [(item, -1, -1, None)]
                continue
            yield None, [(item, st.st_size, st.st_mtime_ns, None)]
        else:
            yield None, [(item.path, -1, -1, item.problem)]  # type: ignore[union-attr]


def _batch_files(n_files: int, workers: int) -> int:
    """Files per batch: at most :data:`BATCH_FILES`, and as many batches as keep every worker
    busy to the end (a multiple of ``workers``)."""
    try:
        most = int(os.environ.get(ENV_BATCH_FILES) or BATCH_FILES)
    except ValueError:
        most = BATCH_FILES
    batches = -(-n_files // max(1, most))
    if workers > 1:
        batches = -(-batches // workers) * workers
    return max(1, -(-n_files // max(1, batches)))


def _tasks(todo: Iterator[tuple[str, int, str | None]], first: int, per_batch: int, out: Path) -> Iterator[Task]:
    """Batches of the files to read, formed as they are read from the manifest."""
    batch = first
    paths: list[str] = []
    problems: list[tuple[str, str]] = []
    total = 0
    for path, size, problem in todo:
        if (paths or problems) and (len(paths) + len(problems) >= per_batch or total + size > BATCH_BYTES):
            yield batch, paths, problems, str(out)
            batch, paths, problems, total = batch + 1, [], [], 0
        if problem is None:
            paths.append(path)
        else:
            problems.append((path, problem))
        total += max(size, 0)
    if paths or problems:
        yield batch, paths, problems, str(out)


def _remove_rows(out: Path, batch: int, gone: list[str]) -> set[str]:
    """Drop the rows of the files ``gone`` from the parts of ``batch`` (a part left empty is
    deleted); the raw tool-call parts changed (``day=D/part-N.parquet``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    dirs = [out / d for d in DATASETS if d != "tool_calls"] + [out / STATE / _RAW_TOOLS]
    touched: set[str] = set()
    values = pa.array(sorted(gone), pa.string())
    name = _part_name(batch)
    for d in dirs:
        for part in d.glob(f"day=*/{name}"):
            paths = _read_parquet(part, ["path"])["path"]  # most parts hold none of them
            keep = pc.invert(pc.is_in(paths, value_set=values.cast(paths.type)))
            if pc.all(keep).as_py():
                continue
            kept = _read_parquet(part).filter(keep)
            if d.name == _RAW_TOOLS:
                touched.add(f"{part.parent.name}/{part.name}")
            if kept.num_rows == 0:
                part.unlink()
                continue
            _write_parquet(kept, part)
    return touched


def _remove_orphans(out: Path, known: set[int]) -> None:
    """Delete the parts of batches the manifest does not know (an export stopped while writing
    them), and temporary files left behind."""
    for d in [out / d for d in DATASETS] + [out / STATE / _RAW_TOOLS]:
        for part in d.glob("day=*/*"):
            name = part.name
            if name.startswith("."):
                part.unlink(missing_ok=True)  # a part being written when the export stopped
            elif name.startswith("part-") and name.endswith(".parquet"):
                try:
                    batch = int(name[5:-8])
                except ValueError:
                    continue
                if batch not in known:
                    part.unlink(missing_ok=True)


def _write_schema_files(out: Path) -> None:
    """``out/<dataset>/_schema.parquet``: no rows, the columns and dtypes (what :func:`connect`
    shows for a dataset with no rows yet; readers skip ``_`` files)."""
    import pandas as pd

    from ._frames import MESSAGE_COLUMNS, RECORDING_COLUMNS, TOKEN_COLUMNS, TOOL_CALL_COLUMNS, _array

    for dataset, cols in (
        ("calls", RECORDING_COLUMNS),
        ("messages", MESSAGE_COLUMNS),
        ("tool_calls", TOOL_CALL_COLUMNS),
        ("chunks", TOKEN_COLUMNS),
    ):
        path = out / dataset / "_schema.parquet"
        if path.exists():
            continue
        empty = pd.DataFrame({c.name: _array([], c.dtype) for c in cols})
        _write_table(empty, path, dataset)


def _workers(n_files: int, workers: int | None) -> int:
    if workers is not None:
        return max(0, workers) if os.name == "posix" else 0
    if n_files < PARALLEL_MIN_FILES or os.environ.get(ENV_EXPORT_WORKERS) == "0" or os.name != "posix":
        return 0  # (the workers' pipes are watched with select(), which takes sockets only on Windows)
    cpus = _usable_cpus()
    return cpus if cpus > 1 else 0


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[int]:
    """Hold the export lock of ``out`` (``flock`` on ``OUT/_export.lock``): a second export of
    the same dataset waits, saying so once on stderr. The descriptor is passed to the workers,
    so an export killed while they finish a batch holds the lock until they are gone."""
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock
            yield fd
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"notebook-recorder: {out} is being exported by another process; waiting for it", file=sys.stderr)
            sys.stderr.flush()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # releases the lock (the workers, when still alive, hold it until they end)


def export(
    src: Any,
    to: str | os.PathLike[str],
    *,
    progress: bool | None = None,
    workers: int | None = None,
) -> ExportResult:
    """Write the recordings of ``src`` as four Parquet datasets under ``to``, or bring an earlier
    export up to date (only new and changed files are read; rows of deleted files are removed).

    ``src`` is what :func:`load_recordings` takes: a directory, a file, or a list of them. ``to``
    is created; an existing directory must be an earlier export (its manifest) or empty.
    ``workers``: processes that read the files, this one included (default: one per usable CPU
    for large exports; ``0`` or ``1``: this one only).
    Two exports to the same ``to`` run one after the other (the second waits for the first).
    """
    started = time.perf_counter()
    out = Path(to)
    if out.exists() and not is_dataset(out) and not any(os.path.lexists(out / m) for m in (MANIFEST, OLD_MANIFEST)):
        if not out.is_dir() or any(p.name != LOCK for p in out.iterdir()):  # a damaged manifest: rebuilt
            raise FileExistsError(
                f"{str(out)!r} exists and is not a notebook-recorder dataset (no {MANIFEST}): "
                "export to a new or empty directory"
            )
    out.mkdir(parents=True, exist_ok=True)
    with _locked(out) as lock:
        try:
            return _export(src, out, progress, workers, started, lock, rebuild=False)
        except sqlite3.DatabaseError as e:
            if isinstance(e, sqlite3.OperationalError):  # a full disk, a read-only directory...
                raise
            # the manifest is damaged in a way its check did not see: rebuilt whole
            return _export(src, out, progress, workers, started, lock, rebuild=True)


def _export(
    src: Any, out: Path, progress: bool | None, workers: int | None, started: float, lock: int, *, rebuild: bool
) -> ExportResult:
    manifest = None if rebuild else Manifest.open(out)
    fresh = manifest is None
    if manifest is None:  # none, an older layout, damaged: the dataset is rebuilt whole
        for d in (*DATASETS, STATE):
            shutil.rmtree(out / d, ignore_errors=True)
        (out / OLD_MANIFEST).unlink(missing_ok=True)
        manifest = Manifest.create(out)
    try:
        manifest.compare(_walk(src))
        n_todo, n_stale, n_bytes = manifest.counts()
        dirty = manifest.dirty
        if not (n_todo or n_stale or dirty):
            manifest.remember()  # the digests of directories that had none
            return ExportResult(out, manifest.files(), 0, 0, 0, time.perf_counter() - started)
        manifest.begin()
        if dirty and not fresh:  # the last export stopped half way: its unrecorded batches go
            _remove_orphans(out, manifest.batches())
        touched: set[str] = set()
        for batch, paths in manifest.stale_by_batch():
            touched |= _remove_rows(out, batch, paths)
        manifest.drop_stale()
        n_workers = _workers(n_todo, workers)
        per_batch = _batch_files(n_todo, n_workers)
        tasks = _tasks(manifest.todo(), manifest.next_batch(), per_batch, out)
        if -(-n_todo // per_batch) <= 1 and n_bytes <= BATCH_BYTES:
            n_workers = 0  # one batch: read here
        errors = 0
        new_rows: list[Any] = []  # the tool index's rows of this export's batches
        _write_schema_files(out)
        bar = Progress(n_todo, progress, "Exporting recordings")
        try:
            for result in _run(tasks, n_workers, lock):
                manifest.add(result.batch, [(p, size, mtime) for p, (size, mtime) in result.stats.items()])
                errors += result.errors
                if result.index is not None:
                    new_rows.append(result.index)
                bar.advance(len(result.stats))
        finally:
            bar.close()
        _rebuild_tool_calls(out, manifest.order_of, touched, new_rows, trust_index=not dirty)
        manifest.finish()
        return ExportResult(out, manifest.files(), n_todo, n_stale, errors, time.perf_counter() - started)
    finally:
        manifest.close()


# --- worker processes ---------------------------------------------------------------------------
#
# Fresh interpreters (``python -I -c``, as the loader's helper): not forked (a kernel or a server
# runs threads), and not multiprocessing's spawn, which runs the caller's ``__main__`` again (a
# script calling ``nr.export`` at its top level would export in every worker). Each takes one
# batch at a time over a pipe (pickled), and answers with its :class:`_Batch`; at most one batch
# per worker is in flight, formed when a worker is free.

_WORKER_CODE = """\
import pickle, sys
sys.path[:] = pickle.load(sys.stdin.buffer)
from notebook_recorder.analysis._export import _worker_main
_worker_main()
"""


def _worker_main() -> None:
    """A worker process: read tasks on stdin until it closes, answer each on stdout."""
    import pickle
    import traceback

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            task = pickle.load(stdin)
        except EOFError:
            return
        try:
            answer: tuple[str, Any] = ("ok", export_batch(*task))
        except BaseException as e:
            answer = ("error", f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
        pickle.dump(answer, stdout, protocol=pickle.HIGHEST_PROTOCOL)
        stdout.flush()


class _Worker:
    def __init__(self, lock: int) -> None:
        import pickle
        import subprocess

        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", _WORKER_CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            pass_fds=(lock,),
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        pickle.dump(sys.path, self.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        self.done = 0

    def send(self, task: Task) -> None:
        import pickle

        pickle.dump(task, self.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        self.stdin.flush()

    def receive(self) -> _Batch:
        import pickle

        try:
            status, value = pickle.load(self.stdout)
        except EOFError:
            raise RuntimeError(f"an export worker ended unexpectedly (exit code {self.proc.wait()})") from None
        if status != "ok":
            raise RuntimeError(f"an export worker failed: {value}")
        self.done += 1
        return value  # type: ignore[no-any-return]

    def close(self, *, kill: bool = False) -> None:
        if kill:
            self.proc.kill()
        try:
            self.stdin.close()
        except OSError:
            pass
        self.proc.wait()
        self.stdout.close()


def _run(tasks: Iterator[Task], workers: int, lock: int) -> Iterator[_Batch]:
    """The batches' results as they complete, read by ``workers`` processes: this one (in a
    thread, while the first worker processes start) and ``workers - 1`` worker processes; or
    all here, one after the other. A worker that has read :data:`TASKS_PER_WORKER` batches is
    replaced by a fresh one (what a long-lived process's allocator keeps stays bounded)."""
    if workers <= 1:
        for task in tasks:
            yield export_batch(*task)
        return
    import select
    import threading

    idle: list[_Worker] = []
    busy: dict[int, _Worker] = {}
    wake_r, wake_w = os.pipe()  # the thread reading a batch here says it is done
    here: dict[str, Any] = {}
    thread: threading.Thread | None = None

    def read_here(task: Task) -> None:
        try:
            here["result"] = export_batch(*task)
        except BaseException as e:
            here["error"] = e
        finally:
            os.write(wake_w, b".")

    more = True
    try:
        while True:
            if more and thread is None:
                next_task = next(tasks, None)
                if next_task is None:
                    more = False
                else:
                    thread = threading.Thread(target=read_here, args=(next_task,), daemon=True)
                    thread.start()
            while more and len(busy) < workers - 1:
                next_task = next(tasks, None)
                if next_task is None:
                    more = False
                    break
                worker = idle.pop() if idle else _Worker(lock)
                worker.send(next_task)
                busy[worker.stdout.fileno()] = worker
            if not busy and thread is None:
                return
            ready, _, _ = select.select([wake_r, *busy], [], [])
            for fd in ready:
                if fd == wake_r:
                    os.read(wake_r, 1)
                    assert thread is not None
                    thread.join()
                    thread = None
                    if "error" in here:
                        raise here.pop("error")
                    yield here.pop("result")
                    continue
                worker = busy.pop(fd)
                result = worker.receive()
                if worker.done >= TASKS_PER_WORKER:
                    worker.close()
                else:
                    idle.append(worker)
                yield result
    finally:
        for worker in idle:
            worker.close()
        for worker in busy.values():
            worker.close(kill=True)
        if thread is not None:
            thread.join()
        os.close(wake_r)
        os.close(wake_w)


# --- DuckDB -----------------------------------------------------------------------------------


def default_dataset_dir(src: str | os.PathLike[str]) -> Path:
    """Where :func:`connect` exports a recordings directory: ``datasets/`` under the user's cache
    directory (``APIREC_CACHE_DIR``, else ``$XDG_CACHE_HOME/notebook-recorder``; with the cache
    turned off, the latter: the dataset is needed), one dataset per source directory."""
    from ..core import _user_cache

    base = (_user_cache.cache_root() or _user_cache.default_root()) / "datasets"
    resolved = str(Path(src).expanduser().resolve())
    return base / f"{Path(resolved).name}-{hashlib.sha256(resolved.encode()).hexdigest()[:16]}"


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def connect(
    src: str | os.PathLike[str],
    *,
    to: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
    database: str = ":memory:",
) -> Any:
    """A DuckDB connection with the views ``calls``, ``messages``, ``tool_calls`` and ``chunks``
    over an exported dataset (``src``), or over a recordings directory, exported first (to ``to``,
    default :func:`default_dataset_dir`; later calls bring it up to date).

    >>> con = connect("dataset/")
    >>> con.sql("select model, sum(total_tokens) from calls group by 1").df()
    """
    try:
        import duckdb  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise ImportError("connect() needs DuckDB: pip install 'notebook-recorder[duckdb]'") from None
    if is_dataset(src):
        out = Path(src)
    else:
        if not Path(src).exists():
            raise FileNotFoundError(f"{str(src)!r}: no such recordings directory or dataset")
        out = Path(to) if to is not None else default_dataset_dir(src)
        export(src, out, progress=progress)
    con = duckdb.connect(database)
    for dataset in DATASETS:
        root = out / dataset
        if any(root.glob("day=*/part-*.parquet")):
            pattern = str(root / "day=*" / "part-*.parquet")
            source = f"read_parquet({_sql_string(pattern)}, hive_partitioning = true, union_by_name = true)"
        else:
            source = f"(select *, null::varchar as day from read_parquet({_sql_string(str(root / '_schema.parquet'))}))"
        con.execute(f"create or replace view {dataset} as select * from {source}")
    return con
