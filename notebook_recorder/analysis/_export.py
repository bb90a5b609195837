"""Recordings as four Parquet datasets, written in batches and kept up to date incrementally.

``export(src, to=OUT)`` writes ``OUT/calls/``, ``OUT/messages/``, ``OUT/tool_calls/`` and
``OUT/chunks/``: the frames of :func:`load_frames` (``chunks`` is ``token_stream``), with the same
columns and dtypes (categoricals as dictionary columns, ``recorded_at`` a UTC timestamp), each
partitioned by the day the call was recorded (``day=YYYY-MM-DD/``, Hive style, which DuckDB,
Spark and pyarrow read as a ``day`` column). Every Parquet file carries ``schema_version`` in its
metadata (key ``notebook_recorder``).

- **Batches.** Files are read in batches of at most :data:`BATCH_FILES` files and
  :data:`BATCH_BYTES` bytes; a batch's frames are written and dropped before the next one, so
  memory does not grow with the corpus. Batches run in worker processes, one per usable CPU.
- **Incremental.** ``OUT/_manifest.json`` lists every exported file with its size, modification
  time and batch. A second export reads only the files that are new or changed; the rows of
  changed and deleted files are removed from the parts that held them. A file modified within
  two seconds of an export is read again next time (its timestamp could hide a second edit).
- **Bad files** are rows of ``calls`` with ``error`` set, as in the frames.
- ``tool_calls.output`` of a call the model asked for comes from a later request of the same
  test, which may be in another batch or another export: each batch keeps its tool calls
  unmatched under ``OUT/_state/``, and a small index of the rows that give or want an output
  (``OUT/_state/tool_index.arrow``) tells which ``OUT/tool_calls/`` parts an export must write:
  those of its own batches, and those whose matched output changes.

pyarrow and pandas are imported here; DuckDB by :func:`connect` only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import orjson

from ..core import _user_cache
from ._layout import _FORMAT, DATASETS, MANIFEST, SCHEMA_VERSION, is_dataset
from ._loader import Loaded, _Cached, _read_one, _usable_cpus, find_files, gc_paused
from ._progress import Progress

STATE = "_state"
_RAW_TOOLS = "tool_calls_raw"
_TEST_ID = "__test_id"  # the raw tool calls' extra columns: the file's test_id, and row order
_ROW = "__row"
#: A batch holds at most this many files ...
BATCH_FILES = 2000
#: ... and this many bytes of JSON (its frames weigh a few times more, in one worker).
BATCH_BYTES = 96 << 20
#: Exports of fewer files than this are done in this process, without workers.
PARALLEL_MIN_FILES = 1000
#: A worker process reads this many batches at most, then a fresh one takes over.
TASKS_PER_WORKER = 8
#: Set to ``0`` to export in this process only.
ENV_EXPORT_WORKERS = "NOTEBOOK_RECORDER_EXPORT_WORKERS"
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


# --- the manifest -----------------------------------------------------------------------------

Entry = tuple[int, int, int]  # size, mtime_ns (-1: read again next time), batch


def _manifest_path(out: Path) -> Path:
    return out / MANIFEST


def read_manifest(out: Path) -> dict[str, Entry] | None:
    """The files of the dataset at ``out`` (path -> size, mtime_ns, batch), or None when there is
    no valid manifest of this schema version (the dataset is then rebuilt)."""
    try:
        data = orjson.loads(_manifest_path(out).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("format") != _FORMAT or data.get("schema_version") != SCHEMA_VERSION:
        return None
    files = data.get("files")
    if not isinstance(files, dict):
        return None
    out_files: dict[str, Entry] = {}
    for path, entry in files.items():  # one entry per file: kept tight
        if type(entry) is not list or len(entry) != 3:
            return None
        size, mtime, batch = entry
        if type(size) is not int or type(mtime) is not int or type(batch) is not int:
            return None
        out_files[path] = (size, mtime, batch)
    return out_files


def _write_manifest(out: Path, files: dict[str, Entry]) -> None:
    data = {"format": _FORMAT, "schema_version": SCHEMA_VERSION, "datasets": list(DATASETS), "files": files}
    _atomic_write(_manifest_path(out), orjson.dumps(data))


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# --- one batch --------------------------------------------------------------------------------


@dataclass
class _Batch:
    """What a worker reports for one batch."""

    batch: int
    stats: dict[str, tuple[int, int]]  # path -> size, mtime_ns (-1 when racy or unreadable)
    errors: int
    raw_parts: list[str]  # the raw tool-call parts written (``day=D/part-N.parquet``)


def _part_name(batch: int) -> str:
    return f"part-{batch:06d}.parquet"


def _schema_metadata(dataset: str) -> dict[bytes, bytes]:
    return {_META_KEY: json.dumps({"schema_version": SCHEMA_VERSION, "dataset": dataset}).encode()}


def _write_table(df: Any, path: Path, dataset: str) -> None:
    import pyarrow as pa  # type: ignore[import-untyped]

    _write_arrow(pa.Table.from_pandas(df, preserve_index=False), path, dataset)


def _write_arrow(table: Any, path: Path, dataset: str) -> None:
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **_schema_metadata(dataset)})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp, **_PARQUET_OPTIONS)
    os.replace(tmp, path)


def _write_by_day(df: Any, days: Any, out: Path, dataset: str, batch: int) -> list[str]:
    """``df`` written as ``out/dataset/day=D/part-<batch>.parquet``, one file per day it has
    (converted to Arrow once, then cut by day); the parts' names (``day=D/part-N.parquet``)."""
    import pyarrow as pa

    if not len(df):
        return []
    table = pa.Table.from_pandas(df, preserve_index=False)
    names = []
    for day, index in df.groupby(days, sort=True, observed=True).indices.items():
        name = f"day={day}/{_part_name(batch)}"
        _write_arrow(table.take(pa.array(index)), out / dataset / name, dataset)
        names.append(name)
    return names


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
    import pandas as pd

    from ._frames import MESSAGE_COLUMNS, RECORDING_COLUMNS, TOKEN_COLUMNS, _child_frame, _recordings_frame
    from ._loader import clear_cache

    root = Path(out)
    started_ns = time.time_ns()
    with gc_paused():
        loaded, trusted = _loaded(paths, problems, started_ns)
        calls = _recordings_frame(loaded, RECORDING_COLUMNS)
        day_of = calls["recorded_at"].dt.strftime("%Y-%m-%d").fillna("unknown")
        days = dict(zip(loaded.paths, day_of.tolist(), strict=True))

        def by_path(df: pd.DataFrame) -> Any:
            return df["path"].map(days).fillna("unknown").to_numpy()

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
        raw_parts = _write_by_day(raw, by_path(raw), root / STATE, _RAW_TOOLS, batch)
        del raw
        clear_cache()  # the frame cache: nothing of this batch stays in memory
    stats: dict[str, tuple[int, int]] = {}
    errors = 0
    for path, size, mtime, result, ok in zip(
        loaded.paths, loaded.sizes, loaded.mtimes_ns, loaded.results, trusted, strict=True
    ):
        stats[path] = (-1 if size is None else size, mtime if ok and not isinstance(result, str) else -1)
        errors += isinstance(result, str)
    return _Batch(batch, stats, errors, raw_parts)


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

_INDEX = "tool_index.arrow"  # Arrow IPC (Feather): read in milliseconds
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
    import pyarrow.feather as feather  # type: ignore[import-untyped]

    empty: tuple[Any, dict[str, tuple[int, int]]] = (_index_schema().empty_table(), {})
    try:
        table = feather.read_table(out / STATE / _INDEX)
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
    return table.replace_schema_metadata(None), parts


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


def _raw_name(part: Path) -> str:
    return f"{part.parent.name}/{part.name}"


def _rebuild_tool_calls(out: Path, order: dict[str, int], touched: set[str]) -> None:
    """See :func:`_update_tool_calls`; when the index leads it astray (a position or part that is
    not there: an index that is not this dataset's), the index is dropped and every part rebuilt."""
    import pyarrow as pa

    try:
        _update_tool_calls(out, order, touched, trust_index=True)
    except (IndexError, FileNotFoundError, pa.ArrowException):
        _update_tool_calls(out, order, touched, trust_index=False)


def _update_tool_calls(out: Path, order: dict[str, int], touched: set[str], *, trust_index: bool) -> None:
    """Bring ``out/tool_calls/`` up to date from the raw parts: a call the model asked for gets
    the output that a request of the same test carried (the last one, in file order), as
    :func:`tool_calls` does. Only the raw parts that changed (``touched``, or whose size or time
    differs from the index's record) are read, and a ``tool_calls`` part is written only when its
    raw part changed or an output matched into it did."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    _write_schema_files(out)
    raw_root = out / STATE / _RAW_TOOLS
    target = out / "tool_calls"
    on_disk: dict[str, tuple[int, int]] = {}
    for part in raw_root.glob("day=*/part-*.parquet"):
        st = part.stat()
        on_disk[_raw_name(part)] = (st.st_size, st.st_mtime_ns)
    written = {_raw_name(p) for p in target.glob("day=*/part-*.parquet")}
    index, known = _read_index(out) if trust_index else (_index_schema().empty_table(), {})
    stale = {n for n, stat in on_disk.items() if known.get(n) != stat or n in touched or n not in written}
    stale |= set(known) - set(on_disk)
    keys: set[bytes] = set()  # whose winning output may change, or whose wants are all filled anew
    if stale:
        gone = pc.is_in(index["part"], value_set=pa.array(sorted(stale), pa.string()))
        keys.update(index.filter(gone)["key"].to_pylist())
        pieces = [index.filter(pc.invert(gone))]
        for name in sorted(stale & set(on_disk)):
            rows, part_keys = _index_rows(
                pq.read_table(raw_root / name, columns=["source", "call_id", "output", "path", _TEST_ID, _ROW]), name
            )
            pieces.append(rows)
            keys |= part_keys
        index = pa.concat_tables(pieces)
    selected = pc.is_in(index["key"], value_set=pa.array(sorted(keys), pa.binary(16)))
    rest, need = index.filter(pc.invert(selected)), index.filter(selected)
    # the winner of each key: its last output, in file order
    winners: dict[bytes, tuple[tuple[int, int], str, int, bytes]] = {}
    cols = [need[c].to_pylist() for c in _INDEX_COLUMNS]
    for part, pos, path, row, key, give, digest in zip(*cols, strict=True):
        if give:
            rank = (order.get(path, -1), row)
            best = winners.get(key)
            if best is None or rank >= best[0]:
                winners[key] = (rank, part, pos, digest)
    # what each want of those keys gets; a part is written when a want's output changes
    no_output = _digest(None)
    fills: dict[str, list[tuple[int, str | None, int]]] = {}  # part -> (pos, winner part, pos)
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
    need = need.set_column(need.schema.get_field_index("digest"), "digest", pa.array(digests, pa.binary(16)))
    schema = pq.read_schema(target / "_schema.parquet")
    outputs = _OutputCache(raw_root)
    for name in sorted((stale | set(fills)) & set(on_disk)):
        if name in stale:
            table = pq.read_table(raw_root / name).drop_columns([_TEST_ID, _ROW])
        else:
            table = pq.read_table(target / name)
        changes = fills.get(name, [])
        if changes:
            column = table["output"].to_pylist()
            for pos, win_part, win_pos in changes:
                column[pos] = None if win_part is None else outputs.get(win_part, win_pos)
            i_out = table.schema.get_field_index("output")
            table = table.set_column(i_out, table.schema.field(i_out), pa.array(column, table.schema.field(i_out).type))
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        pq.write_table(table.replace_schema_metadata(schema.metadata), tmp, **_PARQUET_OPTIONS)  # the frame's dtypes
        os.replace(tmp, path)
    for name in written - set(on_disk):
        (target / name).unlink()  # its raw part is gone: every row of it was removed
    meta = {"index_version": _INDEX_VERSION, "parts": {n: list(s) for n, s in sorted(on_disk.items())}}
    index = pa.concat_tables([rest, need]).replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})
    (out / STATE).mkdir(exist_ok=True)
    tmp = out / STATE / f".{_INDEX}.{os.getpid()}.tmp"
    feather.write_feather(index, tmp, compression="uncompressed")  # read and written in milliseconds
    os.replace(tmp, out / STATE / _INDEX)
    (out / STATE / "tool_fills.json").unlink(missing_ok=True)  # what an earlier version kept


class _OutputCache:
    """The ``output`` column of the last few raw parts read (winning outputs are mostly in the
    part being written, or in one of the same test's)."""

    def __init__(self, root: Path, size: int = 8) -> None:
        self.root, self.size = root, size
        self.columns: dict[str, Any] = {}

    def get(self, part: str, pos: int) -> Any:
        import pyarrow.parquet as pq

        column = self.columns.pop(part, None)
        if column is None:
            column = pq.read_table(self.root / part, columns=["output"])["output"]
            if len(self.columns) >= self.size:
                del self.columns[next(iter(self.columns))]
        self.columns[part] = column
        return column[pos].as_py()


# --- the export -------------------------------------------------------------------------------


def _batches(paths: Sequence[str], sizes: Sequence[int]) -> list[list[str]]:
    batches: list[list[str]] = []
    current: list[str] = []
    total = 0
    for path, size in zip(paths, sizes, strict=True):
        if current and (len(current) >= BATCH_FILES or total + size > BATCH_BYTES):
            batches.append(current)
            current, total = [], 0
        current.append(path)
        total += max(size, 0)
    if current:
        batches.append(current)
    return batches


def _remove_rows(out: Path, batches: set[int], gone: set[str]) -> set[str]:
    """Drop the rows of the files ``gone`` from the parts of ``batches`` (a part left empty is
    deleted); the raw tool-call parts changed (``day=D/part-N.parquet``)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    dirs = [out / d for d in DATASETS if d != "tool_calls"] + [out / STATE / _RAW_TOOLS]
    touched: set[str] = set()
    values = pa.array(sorted(gone), pa.string())
    for batch in sorted(batches):
        name = _part_name(batch)
        for d in dirs:
            for part in d.glob(f"day=*/{name}"):
                paths = pq.read_table(part, columns=["path"])["path"]  # most parts hold none of them
                keep = pc.invert(pc.is_in(paths, value_set=values.cast(paths.type)))
                if pc.all(keep).as_py():
                    continue
                kept = pq.read_table(part).filter(keep)
                if d.name == _RAW_TOOLS:
                    touched.add(f"{part.parent.name}/{part.name}")
                if kept.num_rows == 0:
                    part.unlink()
                    continue
                tmp = part.with_name(f".{part.name}.{os.getpid()}.tmp")
                pq.write_table(kept, tmp, **_PARQUET_OPTIONS)
                os.replace(tmp, part)
    return touched


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
        return max(0, workers)
    if n_files < PARALLEL_MIN_FILES or os.environ.get(ENV_EXPORT_WORKERS) == "0":
        return 0
    cpus = _usable_cpus()
    return cpus if cpus > 1 else 0


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
    is created; an existing directory must be an earlier export (its ``_manifest.json``) or empty.
    ``workers``: worker processes (default: one per usable CPU for large exports; ``0``: none).
    """
    started = time.perf_counter()
    out = Path(to)
    manifest = read_manifest(out)
    fresh = manifest is None
    if manifest is None:
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            if not is_dataset(out) and not _manifest_path(out).exists():
                raise FileExistsError(
                    f"{str(out)!r} exists and is not a notebook-recorder dataset (no {MANIFEST}): "
                    "export to a new or empty directory"
                )
        for d in (*DATASETS, STATE):  # an older schema or a damaged manifest: rebuilt whole
            shutil.rmtree(out / d, ignore_errors=True)
        manifest = {}
    out.mkdir(parents=True, exist_ok=True)
    paths, _, problems = find_files(src)
    current: dict[str, tuple[int, int]] = {}
    for path in paths:
        try:
            st = os.stat(path)
            current[path] = (st.st_size, st.st_mtime_ns)
        except OSError:
            current[path] = (-1, -1)
    odd = {p.path: p.problem for p in problems if p.path not in current}
    for path in odd:
        current[path] = (-1, -1)
    order = {path: i for i, path in enumerate(current)}
    changed = [
        p
        for p, (size, mtime) in current.items()
        if (e := manifest.get(p)) is None or e[1] == -1 or e[:2] != (size, mtime)
    ]
    gone = {p for p in manifest if p not in current}
    removed = gone | {p for p in changed if p in manifest}
    touched: set[str] = set()
    if removed:
        touched = _remove_rows(out, {manifest[p][2] for p in removed}, removed)
        for p in removed:
            del manifest[p]
    next_batch = max((e[2] for e in manifest.values()), default=-1) + 1
    todo = _batches(changed, [current[p][0] for p in changed])
    tasks = [
        (next_batch + i, [p for p in batch if p not in odd], [(p, odd[p]) for p in batch if p in odd], str(out))
        for i, batch in enumerate(todo)
    ]
    errors = 0
    bar = Progress(len(changed), progress, "Exporting recordings")
    try:
        for result in _run(tasks, _workers(len(changed), workers)):
            for path, (size, mtime) in result.stats.items():
                manifest[path] = (size, mtime, result.batch)
            errors += result.errors
            touched.update(result.raw_parts)
            bar.advance(len(result.stats))
    finally:
        bar.close()
    if changed or removed or not (out / "tool_calls").exists():
        _rebuild_tool_calls(out, order, touched)
    if changed or removed or fresh:
        _write_manifest(out, manifest)
    return ExportResult(out, len(manifest), len(changed), len(removed), errors, time.perf_counter() - started)


def _run(tasks: list[tuple[int, list[str], list[tuple[str, str]], str]], workers: int) -> Any:
    """The batches' results as they complete: in worker processes, or here."""
    if workers and len(tasks) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawn: a fresh interpreter, whatever threads this process runs (a kernel, a server);
        # each worker holds one batch at a time, and a fresh pool takes over every
        # TASKS_PER_WORKER batches a worker (what a long-lived worker's memory keeps stays
        # bounded). Not max_tasks_per_child: on Python 3.11 the pool hangs once its first workers
        # retire, every task having been submitted.
        per_pool = workers * TASKS_PER_WORKER
        for start in range(0, len(tasks), per_pool):
            group = tasks[start : start + per_pool]
            with ProcessPoolExecutor(min(workers, len(group)), mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = [pool.submit(export_batch, *task) for task in group]
                for future in as_completed(futures):
                    yield future.result()
        return
    for task in tasks:
        yield export_batch(*task)


# --- DuckDB -----------------------------------------------------------------------------------


def default_dataset_dir(src: str | os.PathLike[str]) -> Path:
    """Where :func:`connect` exports a recordings directory: ``datasets/`` under the user's cache
    directory (``APIREC_CACHE_DIR``, else ``$XDG_CACHE_HOME/notebook-recorder``; with the cache
    turned off, the latter: the dataset is needed), one dataset per source directory."""
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
