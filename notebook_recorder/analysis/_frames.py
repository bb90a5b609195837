"""The four frames, declared as column specs and built from the loader's cached rows.

This is, with ``_jsonarray`` and ``_plot``, where pandas is imported.

Each frame is a list of :class:`Column` specs. A column has a name, a pandas dtype, and an
extractor: the name of a field of the rows that ``_extract`` produces in one pass per file
(fast, cached), or, for :func:`load_recordings`, a function of the recording's parsed JSON::

    temperature = Column("temperature", "float64", lambda rec: rec["request"]["body"].get("temperature"))
    df = nr.load_recordings("recordings", columns=[*RECORDING_COLUMNS, temperature])

Every dtype is a scalar type that survives Parquet: ``str`` (NaN when missing), ``Int64``,
``float64``, ``bool``, and ``json`` (parsed values in memory, JSON text in Parquet).
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import pandas as pd

from ._extract import CALL_FIELDS, MESSAGE_FIELDS, TOKEN_FIELDS, TOOL_CALL_FIELDS, Extracted
from ._jsonarray import JSONArray
from ._loader import _CLEAR_HOOKS, Entry, Source, _key_of, load_entries

try:
    import pyarrow as pa  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - pyarrow is optional; pandas builds the columns then
    pa = None


@dataclass(frozen=True)
class Column:
    """One column of a frame: its name, its pandas dtype, and where its values come from.

    ``extract`` is the name of a field of the extracted rows (see ``*_FIELDS`` in
    ``notebook_recorder.analysis._extract``, plus ``path``, ``size_bytes`` and ``error``), or, for
    :func:`load_recordings` only, a function called with the recording's parsed JSON.
    """

    name: str
    dtype: str
    extract: str | Callable[[Any], Any]
    doc: str = ""


def _c(name: str, dtype: str, doc: str) -> Column:
    return Column(name, dtype, name, doc)


RECORDING_COLUMNS: tuple[Column, ...] = (
    _c("path", "str", "the file"),
    _c("key", "str", "the file name without .json: normally the request hash"),
    _c("test_id", "str", "the scope of the call: a pytest node id, a notebook, or NaN"),
    _c("kind", "str", "inference, embedding, model_list, tool, http, exception or other"),
    _c("endpoint", "str", "API path, such as /v1/chat/completions (the URL path for http)"),
    _c("model", "str", "the requested model"),
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
    _c("size_bytes", "Int64", "file size"),
    _c("error", "str", "why the file could not be read; NaN when it was read"),
)

MESSAGE_COLUMNS: tuple[Column, ...] = (
    _c("path", "str", "the recording"),
    _c("index", "Int64", "position in the request"),
    _c("role", "str", "system, user, assistant, tool, ..."),
    _c("content", "str", "the text; the text parts joined when the content is a list"),
    _c("tool_call_id", "str", "for a tool result: the call it answers"),
    _c("n_tool_calls", "Int64", "tool calls carried by this (assistant) message"),
    _c("name", "str", "the message's name field, if any"),
    _c("item_type", "str", "message, or a Responses API input item type, such as function_call_output"),
)

TOOL_CALL_COLUMNS: tuple[Column, ...] = (
    _c("path", "str", "the recording"),
    _c(
        "source", "str", "response (asked for in the answer), request (in the history) or invocation (a tool recording)"
    ),
    _c("index", "Int64", "position of the call in its message or answer"),
    _c("call_id", "str", "the tool call id"),
    _c("name", "str", "the function or tool name"),
    _c("arguments", "str", "the arguments as the raw string"),
    _c("arguments_json", "json", "the arguments parsed, or None when not valid JSON"),
    _c("output", "str", "the tool's result: the matching tool message, or the invocation's result"),
    _c("message_index", "Int64", "for source=request: the message carrying the call"),
    _c("call_type", "str", "function, tool_use, web_search_call, tool, ..."),
    _c("error", "str", "for invocations: the exception the tool raised, or its error message"),
)

TOKEN_COLUMNS: tuple[Column, ...] = (
    _c("path", "str", "the recording"),
    _c("chunk_index", "Int64", "position in the stream"),
    _c("delta", "str", "the text this chunk added ('' when none)"),
    _c("role", "str", "the role, when the chunk carries one"),
    _c("finish_reason", "str", "set on the chunk that ends the answer"),
    _c("tool_call_delta", "bool", "the chunk carries (part of) a tool call"),
    _c("offset_ms", "float64", "arrival time since the request, when recorded; NaN otherwise"),
    _c("cum_chars", "Int64", "characters of text so far, this chunk included"),
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


def _str_values(values: Sequence[Any]) -> list[Any]:
    return [v if v is None or type(v) is str else str(v) for v in values]


def _str_array(values: Sequence[Any]) -> Any:
    if pa is None:
        return pd.array(_str_values(values), dtype=_STR_DTYPE)
    try:
        arr = pa.array(values, type=pa.large_string(), from_pandas=True)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        arr = pa.array(_str_values(values), type=pa.large_string(), from_pandas=True)
    return _STR_DTYPE.__from_arrow__(arr)


def _array(values: Sequence[Any], dtype: str) -> Any:
    if dtype == "str":
        return _str_array(values)
    if dtype == "Int64":
        return pd.array(values, dtype="Int64")
    if dtype == "float64":
        return np.array(values, dtype=np.float64)
    if dtype == "bool":
        return np.array(values, dtype=bool)
    if dtype == "json":
        return JSONArray(values)
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
    return _STR_DTYPE.__from_arrow__(pa.array(paths, type=pa.large_string()).take(pa.array(idx)))


def _frame(columns: Sequence[Column], data: dict[str, Any], n: int, frame: str) -> pd.DataFrame:
    out: dict[str, Any] = {}
    fields = _FRAME_FIELDS[frame]
    for col in columns:
        if not isinstance(col.extract, str):
            raise TypeError(f"column {col.name!r}: only load_recordings() takes function extractors")
        if col.extract not in data:
            raise KeyError(f"column {col.name!r}: unknown field {col.extract!r}; fields are {', '.join(fields)}")
        values = data[col.extract]
        out[col.name] = values if not isinstance(values, (list, tuple)) else _array(values, col.dtype)
    return pd.DataFrame(out, index=pd.RangeIndex(n), copy=False)


def _transpose(rows: list[tuple[Any, ...]], fields: Sequence[str]) -> dict[str, Any]:
    if not rows:
        return {f: [] for f in fields}
    return dict(zip(fields, zip(*rows, strict=True), strict=True))


# --- the frame cache --------------------------------------------------------------------------

_FRAME_CACHE: OrderedDict[tuple[Any, ...], tuple[list[tuple[str, Any]], pd.DataFrame]] = OrderedDict()
_FRAME_CACHE_SIZE = 8
_CLEAR_HOOKS.append(_FRAME_CACHE.clear)


def _cached_frame(
    frame: str,
    columns: Sequence[Column],
    entries: list[Entry],
    build: Callable[[], pd.DataFrame],
) -> pd.DataFrame:
    """A copy of the frame built from exactly these entries, building it only when needed.

    Entries are compared by identity of their extracted rows, which change whenever a file is
    read again, so a cached frame is served only when every file is unchanged.
    """
    key = (frame, tuple(columns))
    sig = [(e.path, e.result) for e in entries]
    hit = _FRAME_CACHE.get(key)
    if hit is not None:
        old, df = hit
        if len(old) == len(sig) and all(a[1] is b[1] and a[0] == b[0] for a, b in zip(old, sig, strict=True)):
            _FRAME_CACHE.move_to_end(key)
            return df.copy()
    df = build()
    _FRAME_CACHE[key] = (sig, df)
    while len(_FRAME_CACHE) > _FRAME_CACHE_SIZE:
        _FRAME_CACHE.popitem(last=False)
    return df.copy()


def _child_warning(entries: list[Entry], what: str) -> None:
    bad = sum(1 for e in entries if isinstance(e.result, str))
    if bad:
        warnings.warn(
            f"{bad} of {len(entries)} recording file(s) could not be read and are left out of {what}; "
            "load_recordings() shows why in its 'error' column (or pass strict=True to raise)",
            RecordingLoadWarning,
            stacklevel=3,
        )


def _child_frame(
    frame: str, attr: str, src: Source, columns: Sequence[Column], strict: bool, progress: bool | None
) -> pd.DataFrame:
    entries, _ = load_entries(src, strict=strict, progress=progress)
    _child_warning(entries, f"{frame}()")

    def build() -> pd.DataFrame:
        ok = [e for e in entries if not isinstance(e.result, str)]
        per_file: list[list[tuple[Any, ...]]] = [getattr(e.result, attr) for e in ok]
        rows = list(chain.from_iterable(per_file))
        if frame == "tool_calls":
            rows = _match_outputs(rows, per_file, [e.result.call[_I_TEST_ID] for e in ok])  # type: ignore[union-attr]
        data = _transpose(rows, _FRAME_FIELDS[frame][:-1])
        data["path"] = _repeat_paths([e.path for e in ok], [len(r) for r in per_file])
        return _frame(columns, data, len(rows), frame)

    return _cached_frame(frame, columns, entries, build)


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


# --- the public functions ---------------------------------------------------------------------


def load_recordings(
    src: Source,
    *,
    columns: Sequence[Column] | None = None,
    strict: bool = False,
    progress: bool | None = None,
) -> pd.DataFrame:
    """One row per recording file.

    ``src`` is a file, a directory (searched recursively for ``*.json``), a list of them, or a
    frame with a ``path`` column. A file that cannot be read becomes a row with ``error`` set;
    with ``strict=True`` it raises :class:`RecordingLoadError` naming the file instead.
    ``columns`` defaults to :data:`RECORDING_COLUMNS`; add your own :class:`Column` specs, whose
    extractor may be a function of the recording's parsed JSON. ``progress`` shows a tqdm bar
    (``None``: only when loading takes over a second, in a terminal or notebook, and not in CI).
    """
    cols = tuple(RECORDING_COLUMNS if columns is None else columns)
    funcs = [c.extract for c in cols if callable(c.extract)]
    entries, extra_values = load_entries(src, strict=strict, progress=progress, extras=funcs)

    def build() -> pd.DataFrame:
        rows: list[tuple[Any, ...]] = []
        errors: list[str | None] = []
        empty: tuple[Any, ...] | None = None
        for e in entries:
            if isinstance(e.result, Extracted):
                rows.append(e.result.call)
                errors.append(None)
            else:
                if empty is None:
                    empty = _empty_call()
                rows.append((_key_of(e.path), *empty[1:]))
                errors.append(e.result)
        data = _transpose(rows, CALL_FIELDS)
        data["path"] = [e.path for e in entries]
        data["size_bytes"] = [e.size for e in entries]
        data["error"] = errors
        plain = [c for c in cols if isinstance(c.extract, str)]
        df = _frame(plain, data, len(entries), "recordings")
        for c in cols:
            if callable(c.extract):
                values = []
                for i, ev in enumerate(extra_values):
                    v = ev.get(c.extract)
                    if isinstance(v, Exception):
                        msg = f"column {c.name!r}: {type(v).__name__}: {v}"
                        errors[i] = msg if errors[i] is None else f"{errors[i]}; {msg}"
                        v = None
                    values.append(v)
                df[c.name] = _array(values, c.dtype)
        if funcs and any(c.name == "error" for c in plain):
            df["error"] = _array(errors, "str")
        return df[[c.name for c in cols]]

    return _cached_frame("recordings", cols, entries, build)


def _empty_call() -> tuple[Any, ...]:
    from ._extract import _Call

    return _Call("").row()


def messages(src: Source, *, strict: bool = False, progress: bool | None = None) -> pd.DataFrame:
    """One row per message (or Responses API input item) in each recording's request."""
    return _child_frame("messages", "messages", src, MESSAGE_COLUMNS, strict, progress)


def tool_calls(src: Source, *, strict: bool = False, progress: bool | None = None) -> pd.DataFrame:
    """One row per tool call: asked for in an answer, carried in a request, or a tool recording.

    Streamed tool-call deltas are assembled into the full name and arguments. ``output`` is the
    tool message answering the call in the same request, or, for a call the model asked for, in
    any later request of ``src``; for an invocation it is the tool's result.
    """
    return _child_frame("tool_calls", "tool_calls", src, TOOL_CALL_COLUMNS, strict, progress)


def token_stream(src: Source, *, strict: bool = False, progress: bool | None = None) -> pd.DataFrame:
    """One row per streamed chunk, with its text delta, arrival offset and running length."""
    return _child_frame("token_stream", "tokens", src, TOKEN_COLUMNS, strict, progress)
