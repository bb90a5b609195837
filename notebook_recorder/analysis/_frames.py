"""The four frames, declared as column specs and built from the loader's cached rows.

This is, with ``_jsonarray`` and ``_plot``, where pandas is imported.

Each frame is a list of :class:`Column` specs. A column has a name, a pandas dtype, and an
extractor: the name of a field of the rows that ``_extract`` produces in one pass per file
(fast, cached), or, for :func:`load_recordings`, a function of the recording's parsed JSON::

    temperature = Column("temperature", "float64", lambda rec: rec["request"].get("body", {}).get("temperature"))
    df = nr.load_recordings("recordings", columns=[*RECORDING_COLUMNS, temperature])

Every dtype is a scalar type that survives Parquet: ``str`` (NaN when missing), ``category``
(strings, for low-cardinality columns), ``Int64``, ``float64``, ``bool``, ``datetime``
(``datetime64[ns, UTC]``), ``timedelta`` (``timedelta64[ns]``, from milliseconds) and ``json``
(parsed values in memory, JSON text in Parquet).
"""

from __future__ import annotations

import operator
import os
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson
import pandas as pd

from ..core._terminal import encodable
from ._jsonarray import JSONArray
from ._layout import DATASETS, is_dataset
from ._loader import _CLEAR_HOOKS, Loaded, Source, _key_of, gc_paused, load_entries
from ._rows import CALL_FIELDS, MESSAGE_FIELDS, TOKEN_FIELDS, TOOL_CALL_FIELDS, Extracted, Stream, new_call

try:
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.compute as pc  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - pyarrow is optional; pandas builds the columns then
    pa = pc = None


@dataclass(frozen=True)
class Column:
    """One column of a frame: its name, its pandas dtype, and where its values come from.

    ``extract`` is the name of a field of the extracted rows (see ``*_FIELDS`` in
    ``notebook_recorder.analysis._rows``, plus ``path``, ``size_bytes`` and ``error``), or, for
    :func:`load_recordings` only, a function called with the recording's parsed JSON.
    """

    name: str
    dtype: str
    extract: str | Callable[[Any], Any]
    doc: str = ""


def _c(name: str, dtype: str, doc: str) -> Column:
    return Column(name, dtype, name, doc)


# Human columns first, the 64-hex ``key`` and the ``path`` (named by it) last.
RECORDING_COLUMNS: tuple[Column, ...] = (
    _c(
        "kind",
        "category",
        "inference, embedding, model_list, token_count, tool, http, other or exception (see the README)",
    ),
    _c(
        "endpoint",
        "category",
        "API path, such as /v1/chat/completions (the URL path for http); for a tool, provider/name (tavily/web_search)",
    ),
    _c("model", "category", "the requested model"),
    _c("recorded_at", "datetime", "when the call was recorded (UTC): the file says, else its modification time"),
    _c("test_id", "str", "the scope of the call: a pytest node id, a notebook, or NaN"),
    _c("is_streaming", "bool", "the response was streamed"),
    _c("n_chunks", "Int64", "number of streamed chunks (SSE events for http), 0 when not streamed"),
    _c("text", "str", "the assembled answer of the first choice (the result, for a tool)"),
    _c("finish_reason", "str", "why the answer ended (stop, length, tool_calls, completed, ...)"),
    _c("n_tool_calls", "Int64", "tool calls the model asked for in this answer"),
    _c("prompt_tokens", "Int64", "input tokens, as reported by the provider"),
    _c("completion_tokens", "Int64", "output tokens, as reported by the provider"),
    _c("total_tokens", "Int64", "total tokens, as reported (or prompt + completion)"),
    _c("tool_name", "str", "the tool, for tool recordings"),
    _c("provider", "str", "tool provider, or inference provider when recorded"),
    _c("method", "str", "HTTP method"),
    _c("url", "str", "the URL as recorded"),
    _c("status_code", "Int64", "HTTP status of raw HTTP recordings and of recorded exceptions"),
    _c("exception_type", "str", "the exception class (or HTTP error type) when the call failed"),
    _c("exception_message", "str", "the exception's message"),
    _c("response_model", "str", "the model named in the response (often a dated snapshot)"),
    _c("response_type", "str", "class name of the response (of the first chunk when streamed)"),
    _c("n_messages", "Int64", "messages (or input items) in the request"),
    _c("duration_ms", "float64", "call duration, when recorded (notebook-recorder extension)"),
    _c("sdk", "str", "the SDK that made the call, when recorded"),
    _c("sdk_version", "str", "its version"),
    _c("occurrence", "Int64", "k for the k-th identical request of a recording context; 1 when absent"),
    _c("size_bytes", "Int64", "file size"),
    _c("error", "str", "why the file could not be read; NaN when it was read"),
    _c("key", "str", "the file name without .json (and without an occurrence's -<k>): normally the request hash"),
    _c("path", "str", "the file"),
)

MESSAGE_COLUMNS: tuple[Column, ...] = (
    _c("index", "Int64", "position in the request"),
    _c("role", "category", "system, user, assistant, tool, ..."),
    _c("content", "str", "the text; the text parts joined when the content is a list"),
    _c("tool_call_id", "str", "for a tool result: the call it answers"),
    _c("n_tool_calls", "Int64", "tool calls carried by this (assistant) message"),
    _c("name", "str", "the message's name field, if any"),
    _c(
        "item_type",
        "str",
        "message, a Responses API input item type such as function_call_output, or tool_result (Anthropic)",
    ),
    _c("path", "str", "the recording"),
)

TOOL_CALL_COLUMNS: tuple[Column, ...] = (
    _c(
        "source",
        "category",
        "response (asked for in the answer), request (in the history) or invocation (a tool recording)",
    ),
    _c("index", "Int64", "position of the call in its message or answer"),
    _c("name", "str", "the function or tool name"),
    _c("arguments", "str", "the arguments as the raw string"),
    _c("arguments_json", "json", "the arguments parsed, or None when not valid JSON"),
    _c("output", "str", "the tool's result: the matching tool message, or the invocation's result"),
    _c("message_index", "Int64", "for source=request: the message carrying the call"),
    _c("call_type", "str", "function, tool_use, web_search_call, tool, ..."),
    _c("error", "str", "for invocations: the exception the tool raised, or its error message"),
    _c("call_id", "str", "the tool call id"),
    _c("path", "str", "the recording"),
)

TOKEN_COLUMNS: tuple[Column, ...] = (
    _c("chunk_index", "Int64", "position in the stream"),
    _c("delta", "str", "the text this chunk added ('' when none)"),
    _c("role", "category", "the role, when the chunk carries one"),
    _c("finish_reason", "str", "set on the chunk that ends the answer"),
    _c("tool_call_delta", "bool", "the chunk carries (part of) a tool call"),
    Column("offset", "timedelta", "offset_ms", "arrival time since the request, when recorded; NaT otherwise"),
    _c("offset_ms", "float64", "the same in milliseconds; NaN when not recorded"),
    _c("cum_chars", "Int64", "characters of text so far, this chunk included"),
    _c("path", "str", "the recording"),
)

_FRAME_FIELDS = {
    "recordings": (*CALL_FIELDS, "path", "size_bytes", "error"),
    "messages": (*MESSAGE_FIELDS, "path"),
    "tool_calls": (*TOOL_CALL_FIELDS, "path"),
    "token_stream": (*TOKEN_FIELDS, "path"),
}


class RecordingLoadWarning(UserWarning):
    """Some files could not be read and were left out of a frame."""


# --- turning value lists into typed columns --------------------------------------------------

_STR_DTYPE = pd.StringDtype("pyarrow", na_value=np.nan) if pa is not None else pd.StringDtype("python", np.nan)


_INT64 = pd.Int64Dtype()
_UTC_NS = pd.DatetimeTZDtype("ns", "UTC")


def _str_values(values: Sequence[Any]) -> list[Any]:
    return [v if v is None or type(v) is str else str(v) for v in values]


def _str_array(values: Sequence[Any]) -> Any:
    if pa is None:
        return pd.array(_str_values(values), dtype=_STR_DTYPE)
    try:
        arr = pa.array(values, type=pa.large_string(), from_pandas=True)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        arr = pa.array(_str_values(values), type=pa.large_string(), from_pandas=True)
    except UnicodeEncodeError:  # a lone surrogate: a file name that is not valid UTF-8
        arr = pa.array([_utf8(v) for v in _str_values(values)], type=pa.large_string(), from_pandas=True)
    return _STR_DTYPE.__from_arrow__(arr)


def _utf8(value: str | None) -> str | None:
    """``value`` with its lone surrogates escaped (``\\udc9b``), as Arrow stores only UTF-8: a file
    whose name is not valid UTF-8 (each undecodable byte is a surrogate in Python) keeps its row."""
    return value if value is None else encodable(value)


def _array(values: Any, dtype: str) -> Any:
    """``values`` (a list, tuple or numpy array) as a column of ``dtype``."""
    if isinstance(values, pd.api.extensions.ExtensionArray):
        return values
    if dtype == "str":
        return _str_array(values)
    if dtype == "Int64":
        if isinstance(values, np.ndarray) and values.dtype.kind == "i":
            return pd.arrays.IntegerArray(values.astype(np.int64, copy=False), np.zeros(len(values), dtype=bool))
        if pa is not None:
            try:
                return _INT64.__from_arrow__(pa.array(values, type=pa.int64(), from_pandas=True))
            except (pa.ArrowTypeError, pa.ArrowInvalid, TypeError):
                pass
        return pd.array(values, dtype="Int64")
    if dtype == "float64":
        return np.asarray(values, dtype=np.float64)
    if dtype == "bool":
        return np.asarray(values, dtype=bool)
    if dtype == "json":
        return JSONArray(values)
    if dtype == "category":
        return pd.Categorical(_str_array(values))
    if dtype == "datetime":
        return pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="ISO8601").array.astype(_UTC_NS)
    if dtype == "timedelta":
        return pd.to_timedelta(np.asarray(values, dtype=np.float64), unit="ms").astype("timedelta64[ns]").array
    if dtype == "object":
        arr = np.empty(len(values), dtype=object)
        arr[:] = list(values)
        return arr
    return pd.array(list(values), dtype=dtype)


def _repeat_paths(paths: list[str], counts: list[int]) -> Any:
    """The path column of a child frame: each file's path repeated once per row."""
    idx = np.repeat(np.arange(len(paths), dtype=np.int64), counts)
    if pa is None:
        return pd.array(np.array(paths, dtype=object)[idx], dtype=_STR_DTYPE)
    try:
        arr = pa.array(paths, type=pa.large_string())
    except UnicodeEncodeError:  # a file name that is not valid UTF-8
        arr = pa.array([_utf8(p) for p in paths], type=pa.large_string())
    return _STR_DTYPE.__from_arrow__(arr.take(pa.array(idx)))


def _frame(columns: Sequence[Column], data: dict[str, Any], n: int, frame: str) -> pd.DataFrame:
    out: dict[str, Any] = {}
    fields = _FRAME_FIELDS[frame]
    for col in columns:
        if not isinstance(col.extract, str):
            raise TypeError(f"column {col.name!r}: only load_recordings() takes function extractors")
        if col.extract not in data:
            raise KeyError(f"column {col.name!r}: unknown field {col.extract!r}; fields are {', '.join(fields)}")
        out[col.name] = _array(data[col.extract], col.dtype)
    return (pd.DataFrame if pa is not None else _FrameWithoutPyarrow)(out, index=pd.RangeIndex(n), copy=False)


_PARQUET_HINT = "to_parquet needs pyarrow: pip install 'notebook-recorder[parquet]'"


class _FrameWithoutPyarrow(pd.DataFrame):  # type: ignore[misc]
    """The frames' type when pyarrow is absent: ``to_parquet`` then names the ``[parquet]`` extra."""

    @property
    def _constructor(self) -> type[_FrameWithoutPyarrow]:  # frames derived from this one keep the hint
        return _FrameWithoutPyarrow

    def to_parquet(self, *args: Any, **kwargs: Any) -> Any:
        """:meth:`pandas.DataFrame.to_parquet`, with an error naming the extra when no engine is found."""
        try:
            return super().to_parquet(*args, **kwargs)
        except ImportError:
            raise ImportError(_PARQUET_HINT) from None


def _transpose(rows: list[tuple[Any, ...]], fields: Sequence[str]) -> dict[str, Any]:
    if not rows:
        return {f: [] for f in fields}
    return dict(zip(fields, zip(*rows, strict=True), strict=True))


# --- the frame cache --------------------------------------------------------------------------

_FRAME_CACHE: OrderedDict[tuple[Any, ...], tuple[list[str], list[Any], pd.DataFrame]] = OrderedDict()
_FRAME_CACHE_SIZE = 8
_CLEAR_HOOKS.append(_FRAME_CACHE.clear)


def _cached_frame(
    frame: str,
    columns: Sequence[Column],
    loaded: Loaded,
    build: Callable[[], pd.DataFrame],
) -> pd.DataFrame:
    """A copy of the frame built from exactly these files' rows, building it only when needed.

    Files are compared by identity of their extracted rows, which are new objects whenever a file
    is read again, so a cached frame is served only when every file is unchanged.
    """
    key = (frame, tuple(columns))
    hit = _FRAME_CACHE.get(key)
    if hit is not None:
        paths, results, df = hit
        if paths == loaded.paths and all(map(operator.is_, results, loaded.results)):
            _FRAME_CACHE.move_to_end(key)
            return df.copy()
    with gc_paused():
        df = build()
    _FRAME_CACHE[key] = (loaded.paths, loaded.results, df)
    while len(_FRAME_CACHE) > _FRAME_CACHE_SIZE:
        _FRAME_CACHE.popitem(last=False)
    return df.copy()


def _warn_unreadable(loaded: Loaded, what: str) -> None:
    bad = sum(1 for r in loaded.results if isinstance(r, str))
    if bad:
        warnings.warn(
            f"{bad} of {len(loaded.results)} recording file(s) could not be read and are left out of {what}; "
            "load_recordings() shows why in its 'error' column (or pass strict=True to raise)",
            RecordingLoadWarning,
            stacklevel=3,
        )


def _child_frame(frame: str, loaded: Loaded, columns: Sequence[Column]) -> pd.DataFrame:
    def build() -> pd.DataFrame:
        ok = [(p, r) for p, r in zip(loaded.paths, loaded.results, strict=True) if type(r) is Extracted]
        if frame == "token_stream":
            data, n = _token_data([p for p, r in ok if r.tokens], [r.tokens for _, r in ok if r.tokens])
            return _frame(columns, data, n, frame)
        per_file: list[list[tuple[Any, ...]]] = [getattr(r, frame) for _, r in ok]
        rows = list(chain.from_iterable(per_file))
        if frame == "tool_calls":
            rows = _match_outputs(rows, per_file, [r.call[_I_TEST_ID] for _, r in ok])
        data = _transpose(rows, _FRAME_FIELDS[frame][:-1])
        data["path"] = _repeat_paths([p for p, _ in ok], [len(r) for r in per_file])
        return _frame(columns, data, len(rows), frame)

    return _cached_frame(frame, columns, loaded, build)


def _token_data(paths: list[str], streams: list[Stream]) -> tuple[dict[str, Any], int]:
    """The token_stream columns, computed with numpy / pyarrow from each stream's columns."""
    counts = [len(s.lengths) for s in streams]
    n = sum(counts)
    starts = np.zeros(len(streams), dtype=np.int64)
    if len(streams) > 1:
        np.cumsum(counts[:-1], out=starts[1:])
    file_of = np.repeat(np.arange(len(streams), dtype=np.int64), counts)
    lengths = np.fromiter(chain.from_iterable(s.lengths for s in streams), dtype=np.int64, count=n)
    deltas: Any = None
    if pa is not None:
        try:
            deltas = _STR_DTYPE.__from_arrow__(_delta_array(streams, n))
        except UnicodeEncodeError:
            pass
    if deltas is None:
        deltas = _str_array(list(chain.from_iterable(s.deltas for s in streams)))
    cum = np.cumsum(lengths)
    before = (cum - lengths)[starts] if n else starts  # characters before each stream starts
    tool_delta = np.zeros(n, dtype=bool)
    tool_delta[[start + i for start, s in zip(starts.tolist(), streams, strict=True) for i in s.tool_deltas]] = True
    offsets = np.full(n, np.nan)
    for start, s in zip(starts.tolist(), streams, strict=True):
        if s.offsets is not None:
            offsets[start : start + len(s.offsets)] = s.offsets
    data = {
        "chunk_index": np.arange(n, dtype=np.int64) - starts[file_of],
        "delta": deltas,
        "role": list(chain.from_iterable(s.roles for s in streams)),
        "finish_reason": list(chain.from_iterable(s.finish_reasons for s in streams)),
        "tool_call_delta": tool_delta,
        "offset_ms": offsets,
        "cum_chars": cum - before[file_of],
        "path": _repeat_paths(paths, counts),
    }
    return data, n


def _delta_array(streams: list[Stream], n: int) -> Any:
    """The delta column as an Arrow string array, cut out of each stream's joined text.

    No string per chunk is made: the UTF-8 bytes of the texts become the array's data buffer,
    and the chunks' byte lengths its offsets (the character lengths, when a text is ASCII).
    """
    blobs: list[bytes] = []
    byte_lengths: list[list[int]] = []
    for s in streams:
        b = s.text.encode()
        blobs.append(b)
        byte_lengths.append(s.lengths if len(b) == len(s.text) else [len(d.encode()) for d in s.deltas])
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.fromiter(chain.from_iterable(byte_lengths), dtype=np.int64, count=n), out=offsets[1:])
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(b"".join(blobs)))


_I_TEST_ID = CALL_FIELDS.index("test_id")
_I_SOURCE, _I_CALL_ID, _I_OUTPUT = (TOOL_CALL_FIELDS.index(f) for f in ("source", "call_id", "output"))


def _match_outputs(
    rows: list[tuple[Any, ...]], per_file: list[list[tuple[Any, ...]]], test_ids: list[Any]
) -> list[tuple[Any, ...]]:
    """Give a call the model asked for the result that a later request of the same test carried.

    Call ids are matched within one ``test_id`` only: replayed test suites reuse ids.
    """
    src, cid, out_i = _I_SOURCE, _I_CALL_ID, _I_OUTPUT
    outputs: dict[tuple[Any, str], Any] = {}
    for file_rows, tid in zip(per_file, test_ids, strict=True):
        for r in file_rows:
            if r[src] == "request" and r[cid] and r[out_i] is not None:
                outputs[(tid, r[cid])] = r[out_i]
    if not outputs:
        return rows
    out: list[tuple[Any, ...]] = []
    for file_rows, tid in zip(per_file, test_ids, strict=True):
        for r in file_rows:
            if r[src] == "response" and r[out_i] is None and r[cid]:
                found = outputs.get((tid, r[cid]))
                if found is not None:
                    r = (*r[:out_i], found, *r[out_i + 1 :])
            out.append(r)
    return out


def _recorded_at(stated: Sequence[str | None], mtimes_ns: Sequence[int]) -> Any:
    """``recorded_at`` as UTC datetimes: what the file says, else the file's modification time."""
    ns = np.asarray(mtimes_ns, dtype=np.int64)
    mtimes = pd.to_datetime(ns - ns % 1_000_000_000, unit="ns", utc=True)  # to the second, as files say
    mtimes = mtimes.where(ns >= 0)
    if not any(stated):
        return mtimes.array.astype(_UTC_NS)
    said = pd.to_datetime(pd.Series(stated, dtype=object), utc=True, format="ISO8601", errors="coerce")
    return said.fillna(pd.Series(mtimes)).array.astype(_UTC_NS)


def _recordings_frame(loaded: Loaded, cols: tuple[Column, ...]) -> pd.DataFrame:
    def build() -> pd.DataFrame:
        rows: list[tuple[Any, ...]] = []
        errors: list[str | None] = []
        empty: tuple[Any, ...] | None = None
        for path, r in zip(loaded.paths, loaded.results, strict=True):
            if type(r) is Extracted:
                rows.append(r.call)
                errors.append(None)
            else:
                if empty is None:
                    empty = tuple(new_call("").values())
                rows.append((_key_of(path), *empty[1:]))
                errors.append(r)  # type: ignore[arg-type]
        data = _transpose(rows, CALL_FIELDS)
        data["path"] = loaded.paths
        data["size_bytes"] = loaded.sizes
        data["error"] = errors
        data["recorded_at"] = _recorded_at(data["recorded_at"], loaded.mtimes_ns)
        funcs = [c for c in cols if not isinstance(c.extract, str)]
        for c in funcs:
            values = []
            for i, ev in enumerate(loaded.extras):
                v = ev.get(c.extract)  # type: ignore[arg-type]
                if isinstance(v, Exception):
                    msg = f"column {c.name!r}: {type(v).__name__}: {v}"
                    errors[i] = msg if errors[i] is None else f"{errors[i]}; {msg}"
                    v = None
                values.append(v)
            data[f"\x00{c.name}"] = values
        spec = [c if isinstance(c.extract, str) else Column(c.name, c.dtype, f"\x00{c.name}", c.doc) for c in cols]
        return _frame(spec, data, len(rows), "recordings")

    return _cached_frame("recordings", cols, loaded, build)


# --- the public functions ---------------------------------------------------------------------


def _from_dataset(src: Source, frame: str, columns: Sequence[Column | str] | None, filters: Any) -> pd.DataFrame | None:
    """The frame read from an exported dataset (``nr.export``) when ``src`` is one, else None."""
    if is_dataset(src):
        names = None if columns is None else [c if isinstance(c, str) else c.name for c in columns]
        return read_dataset(src, frame, columns=names, filters=filters)  # type: ignore[no-any-return]
    if filters is not None:
        raise ValueError(f"filters= applies to a dataset written by nr.export(), and {src!r} is not one")
    return None


def load_recordings(
    src: Source,
    *,
    columns: Sequence[Column] | None = None,
    strict: bool = False,
    progress: bool | None = None,
    filters: Any = None,
) -> pd.DataFrame:
    """One row per recording file.

    ``src`` is a file, a directory (searched recursively for ``*.json``), a list of them, or a
    frame with a ``path`` column. A file that cannot be read becomes a row with ``error`` set;
    with ``strict=True`` it raises :class:`~notebook_recorder.RecordingFormatError` naming the file
    instead.
    ``columns`` defaults to :data:`RECORDING_COLUMNS`; add your own :class:`Column` specs, whose
    extractor may be a function of the recording's parsed JSON. ``progress`` shows a tqdm bar
    (``None``: only when loading takes over a second, in a terminal or notebook, and not in CI).

    ``src`` may also be a dataset written by :func:`~notebook_recorder.export`: then only the
    ``columns`` named (names or specs of :data:`RECORDING_COLUMNS`) and the rows that ``filters``
    selects (pyarrow's filters, such as ``[("model", "=", "gpt-4o")]``) are read from disk.
    """
    if (df := _from_dataset(src, "recordings", columns, filters)) is not None:
        return df
    cols = tuple(RECORDING_COLUMNS if columns is None else columns)
    funcs = [c.extract for c in cols if not isinstance(c.extract, str)]
    loaded = load_entries(src, strict=strict, progress=progress, extras=funcs)
    return _recordings_frame(loaded, cols)


def _child_frame_of(
    src: Source,
    name: str,
    cols: Sequence[Column],
    strict: bool,
    progress: bool | None,
    columns: Sequence[str] | None,
    filters: Any,
) -> pd.DataFrame:
    """The frame ``name`` (``messages``, ``tool_calls``, ``token_stream``) of ``src``: read from a
    dataset (``columns``, ``filters`` pushed down), or built from the recordings."""
    if (df := _from_dataset(src, name, columns, filters)) is not None:
        return df
    if columns is not None:
        raise ValueError("columns= applies to a dataset written by nr.export()")
    loaded = load_entries(src, strict=strict, progress=progress)
    _warn_unreadable(loaded, f"{name}()")
    return _child_frame(name, loaded, cols)


def messages(
    src: Source,
    *,
    strict: bool = False,
    progress: bool | None = None,
    columns: Sequence[str] | None = None,
    filters: Any = None,
) -> pd.DataFrame:
    """One row per message (or Responses API input item) in each recording's request."""
    return _child_frame_of(src, "messages", MESSAGE_COLUMNS, strict, progress, columns, filters)


def tool_calls(
    src: Source,
    *,
    strict: bool = False,
    progress: bool | None = None,
    columns: Sequence[str] | None = None,
    filters: Any = None,
) -> pd.DataFrame:
    """One row per tool call: asked for in an answer, carried in a request, or a tool recording.

    Streamed tool-call deltas are assembled into the full name and arguments. ``output`` is the
    tool message answering the call in the same request, or, for a call the model asked for, in
    a later request of the same test; for an invocation it is the tool's result.
    """
    return _child_frame_of(src, "tool_calls", TOOL_CALL_COLUMNS, strict, progress, columns, filters)


def token_stream(
    src: Source,
    *,
    strict: bool = False,
    progress: bool | None = None,
    columns: Sequence[str] | None = None,
    filters: Any = None,
) -> pd.DataFrame:
    """One row per streamed chunk, with its text delta, arrival offset and running length."""
    return _child_frame_of(src, "token_stream", TOKEN_COLUMNS, strict, progress, columns, filters)


class Frames(NamedTuple):
    """The four frames of one load: ``recordings, messages, tool_calls, token_stream = ...``."""

    recordings: pd.DataFrame
    messages: pd.DataFrame
    tool_calls: pd.DataFrame
    token_stream: pd.DataFrame


def load_frames(src: Source, *, strict: bool = False, progress: bool | None = None) -> Frames:
    """All four frames from one look at the files: a consistent snapshot, and the fastest way.

    Same arguments as :func:`load_recordings`; unreadable files are rows of ``recordings`` with
    ``error`` set, and are absent from the other three. ``src`` may be an exported dataset.
    """
    if is_dataset(src):
        return Frames(*(read_dataset(src, f) for f in ("recordings", "messages", "tool_calls", "token_stream")))
    loaded = load_entries(src, strict=strict, progress=progress)
    return Frames(
        _recordings_frame(loaded, RECORDING_COLUMNS),
        _child_frame("messages", loaded, MESSAGE_COLUMNS),
        _child_frame("tool_calls", loaded, TOOL_CALL_COLUMNS),
        _child_frame("token_stream", loaded, TOKEN_COLUMNS),
    )


# --- reading the datasets back as frames ------------------------------------------------------


def _columns_of(frame: str) -> tuple[Any, ...]:
    return {
        "recordings": RECORDING_COLUMNS,
        "messages": MESSAGE_COLUMNS,
        "tool_calls": TOOL_CALL_COLUMNS,
        "token_stream": TOKEN_COLUMNS,
    }[frame]


def _restore(df: Any, frame: str, extra: Sequence[str] = ()) -> Any:
    """The columns of ``df`` (read from Parquet) in the frames' dtypes and order."""
    import pandas as pd

    out: dict[str, Any] = {}
    for col in _columns_of(frame):
        if col.name not in df.columns:
            continue
        values = df[col.name]
        if col.dtype == "category":
            out[col.name] = pd.Categorical(_array(values.astype(object).where(values.notna(), None).tolist(), "str"))
        elif col.dtype == "json":
            arr = values.array
            out[col.name] = arr if isinstance(arr, JSONArray) else _array([_json_value(v) for v in values], "json")
        elif col.dtype == "datetime":
            out[col.name] = values.array.astype(pd.DatetimeTZDtype("ns", "UTC"))
        elif col.dtype == "timedelta":
            out[col.name] = values.array.astype("timedelta64[ns]")
        elif col.dtype in ("str", "Int64"):
            out[col.name] = _array(values.astype(object).where(values.notna(), None).tolist(), col.dtype)
        else:
            out[col.name] = values.to_numpy(dtype=col.dtype)
    for name in extra:
        out[name] = df[name].to_numpy()
    return pd.DataFrame(out, index=pd.RangeIndex(len(df)))


def _json_value(v: Any) -> Any:
    if v is None or (isinstance(v, float) and v != v):
        return None
    return orjson.loads(v) if isinstance(v, str) else v


def read_dataset(
    out: str | os.PathLike[str],
    frame: str,
    *,
    columns: Sequence[str] | None = None,
    filters: Any = None,
) -> Any:
    """One frame of an exported dataset as pandas, with the frame's dtypes; ``columns`` and
    ``filters`` (pyarrow's: ``[("model", "=", "gpt-4o")]`` or an expression) are pushed down to
    the Parquet reader, so only what they select is read."""
    import pyarrow.dataset as ds  # type: ignore[import-untyped]

    dataset = {v: k for k, v in DATASETS.items()}[frame]
    names = [c.name for c in _columns_of(frame)]
    if columns is not None:
        unknown = [c for c in columns if c not in names and c != "day"]
        if unknown:
            raise KeyError(
                f"unknown column(s) {', '.join(map(repr, unknown))} of {frame}; columns are {', '.join(names)}"
            )
    root = Path(out, dataset)
    if any(root.glob("day=*/part-*.parquet")):
        source = ds.dataset(root, format="parquet", partitioning="hive")
    else:  # no rows yet (no streamed call, say): the columns, from the schema file
        source = ds.dataset(root / "_schema.parquet", format="parquet")
    expression = _filter_expression(filters)
    wanted = [c for c in names if columns is None or c in columns]
    table = source.to_table(columns=wanted, filter=expression)
    df = table.to_pandas()
    return _restore(df, frame)


def _filter_expression(filters: Any) -> Any:
    if filters is None:
        return None
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    if isinstance(filters, list):
        return pq.filters_to_expression(filters)
    return filters
