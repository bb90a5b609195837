"""Compare two runs: one row per call, paired across the runs, with a verdict.

``diff(a, b)`` loads both sides with the frames' loader (so a directory already loaded is not read
again), pairs the calls, and says for each pair what changed, in a fixed vocabulary
(:data:`VERDICTS`):

1. Calls are paired by key and occurrence (the same request, the k-th time), within the same
   sub-directory of each side (``recordings/01_quickstart`` with ``new/01_quickstart``).
2. The calls left over, whose requests changed (an edited prompt, another model), are paired by
   their place in the run: same sub-directory, same ``test_id`` (the notebook or test) and the
   same endpoint or tool, in the order they were made (``recorder.sequence``, written by
   notebook-recorder; else by the number of messages, as a conversation grows, then the time they
   were recorded, then the file name). Such a pair is
   ``request changed`` and ``request_diff`` says how (``body.model: 'gpt-4o' -> 'gpt-4.1'``); its
   ``answer`` column says what the answer did. Whatever is still left is ``removed`` (only in
   ``a``) or ``added`` (only in ``b``).
3. A pair's answer is judged in this order: an error on one side only (``error appeared`` /
   ``error gone``), the tool calls the model asked for (``tool calls changed``: names or
   arguments), the keys and value types of a JSON answer (``structure changed``), the finish
   reason (``finish changed``), the text (``text changed``, with ``similarity``), and otherwise
   ``identical`` (the responses are equal, our timing fields aside) or ``same`` (the answer is the
   same; what differs, such as ids, timestamps, fingerprints or usage, is listed in ``changes``).

pandas is imported here, as in the other frame modules; nothing else is.
"""

from __future__ import annotations

import difflib
import html
import math
import os
import re
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from ..core._keys import comparable, diff as request_changes, request_from_record
from ._frames import RecordingLoadWarning, load_recordings, tool_calls
from ._loader import Source
from ._samecheck import VOLATILE_KEYS, check_pairs, compare
from ._verdicts import DEFAULT_FAIL_ON, UNCHANGED, VERDICTS, check_verdicts

_NUMERIC = ("prompt_tokens", "completion_tokens", "total_tokens", "duration_ms", "n_chunks")

#: The columns of the frame :func:`diff` returns, in order.
DIFF_COLUMNS: tuple[str, ...] = (
    "verdict",
    "answer",
    "similarity",
    "changes",
    "request_diff",
    "test_id",
    "kind",
    "endpoint",
    "model_a",
    "model_b",
    "finish_reason_a",
    "finish_reason_b",
    "exception_a",
    "exception_b",
    *(f"{name}_{side}" for name in _NUMERIC for side in ("a", "b", "delta")),
    "text_a",
    "text_b",
    "occurrence_a",
    "occurrence_b",
    "paired_by",
    "key_a",
    "key_b",
    "path_a",
    "path_b",
)


# --- the sides ------------------------------------------------------------------------------


@dataclass
class _Call:
    """One readable call of one side."""

    row: dict[str, Any]
    group: str  # the sub-directory, relative to the side's root
    tools: tuple[tuple[Any, Any], ...]  # the tool calls the answer asked for: (name, arguments)
    record: dict[str, Any] | None = None  # the file, parsed when needed

    @property
    def path(self) -> str:
        return str(self.row["path"])

    def parsed(self) -> dict[str, Any] | None:
        if self.record is None:
            try:
                data = orjson.loads(Path(self.path).read_bytes())
            except (OSError, orjson.JSONDecodeError):
                return None
            self.record = data if isinstance(data, dict) else {}
        return self.record


def _root(src: Source, paths: Sequence[str]) -> str:
    if isinstance(src, str | os.PathLike) and os.path.isdir(src):
        return os.path.abspath(src)
    parents = {os.path.dirname(os.path.abspath(p)) for p in paths}
    return os.path.commonpath(list(parents)) if parents else ""


def _na(value: Any) -> Any:
    """None for pandas' missing values, the value otherwise."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


#: The columns of ``load_recordings`` that the comparison reads.
_SIDE_COLUMNS = (
    "key",
    "occurrence",
    "test_id",
    "kind",
    "endpoint",
    "tool_name",
    "model",
    "text",
    "finish_reason",
    "exception_type",
    "exception_message",
    "status_code",
    "recorded_at",
    "n_messages",
    "path",
    *_NUMERIC,
)


def _side(src: Source, strict: bool, progress: bool | None, name: str) -> list[_Call]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RecordingLoadWarning)
        frame = load_recordings(src, strict=strict, progress=progress)
        tools = tool_calls(frame, strict=strict, progress=progress) if len(frame) else None
    bad = frame[frame["error"].notna()]
    if len(bad):
        warnings.warn(
            f"{name}: {len(bad)} of {len(frame)} recording file(s) could not be read and are left out of the diff "
            f"(first: {bad['path'].iloc[0]}: {bad['error'].iloc[0]})",
            RecordingLoadWarning,
            stacklevel=3,
        )
    frame = frame[frame["error"].isna()]
    asked: dict[str, list[tuple[Any, Any]]] = defaultdict(list)
    if tools is not None and len(tools):
        response = tools[tools["source"] == "response"]
        for path, tool, args, parsed in zip(
            response["path"], response["name"], response["arguments"], response["arguments_json"], strict=True
        ):
            asked[path].append((_na(tool), parsed if parsed is not None else _na(args)))
    columns = [c for c in _SIDE_COLUMNS if c in frame.columns]
    values = [[_na(v) for v in frame[c].tolist()] for c in columns]
    paths = frame["path"].tolist()
    root = _root(src, paths)
    calls = []
    groups: dict[str, str] = {}
    for row_values in zip(*values, strict=True):
        row = dict(zip(columns, row_values, strict=True))
        parent = os.path.dirname(row["path"])
        group = groups.get(parent)
        if group is None:
            group = os.path.relpath(os.path.abspath(parent), root) if root else ""
            group = groups[parent] = "" if group == "." else group
        calls.append(_Call(row, group, tuple(asked.get(row["path"], ()))))
    return calls


# --- comparing two answers ------------------------------------------------------------------


def _shape(value: Any, depth: int = 0) -> Any:
    """The keys and value types of a JSON value, recursively (list items merged)."""
    if depth > 50:
        return "..."
    if isinstance(value, dict):
        return {k: _shape(v, depth + 1) for k, v in sorted(value.items())}
    if isinstance(value, list):
        shapes = []
        for item in value:
            s = _shape(item, depth + 1)
            if s not in shapes:
                shapes.append(s)
        return ["list", *shapes]
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _json_answer(text: Any) -> Any:
    """A structured output parsed (an object or a list), or None when the text is not JSON."""
    if not isinstance(text, str):
        return None
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.strip("`").removeprefix("json").strip()
    if not stripped or stripped[0] not in "{[":
        return None
    try:
        value = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict | list) else None


def similarity(a: Any, b: Any) -> float:
    """How much of the text is kept, word by word: 1.0 equal, 0.0 nothing in common."""
    if a == b:
        return 1.0
    wa, wb = str(a or "").split(), str(b or "").split()
    if not wa and not wb:
        return 1.0 if str(a or "") == str(b or "") else 0.0
    return round(difflib.SequenceMatcher(None, wa, wb, autojunk=False).ratio(), 4)


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tool_text(tools: tuple[tuple[Any, Any], ...]) -> str:
    return ", ".join(f"{name}({_short(args)})" for name, args in tools) or "(none)"


#: The verdict of a pair whose answers look the same, until ``_samecheck`` says ``identical`` or ``same``.
PENDING = "(pending)"


def judge(ca: _Call, cb: _Call) -> tuple[str, float, str | None]:
    """The answer's verdict for one pair, its text similarity (NaN when neither has text) and
    what changed, in words; :data:`PENDING` when the answers look the same (the files are then
    compared by ``_samecheck``)."""
    a, b = ca.row, cb.row
    text_a, text_b = a.get("text"), b.get("text")
    sim = similarity(text_a, text_b) if (text_a or text_b) else math.nan
    err_a, err_b = a.get("exception_type"), b.get("exception_type")
    if err_b and not err_a:
        return "error appeared", sim, f"{err_b}: {_short(b.get('exception_message') or '', 120)}"
    if err_a and not err_b:
        return "error gone", sim, f"was {err_a}: {_short(a.get('exception_message') or '', 120)}"
    if err_a and err_b:
        ea = f"{err_a}: {a.get('exception_message') or ''}"
        eb = f"{err_b}: {b.get('exception_message') or ''}"
        if ea != eb or a.get("status_code") != b.get("status_code"):
            return "text changed", similarity(ea, eb), f"error: {_short(ea)} -> {_short(eb)}"
        return PENDING, sim, None
    if ca.tools != cb.tools:
        return "tool calls changed", sim, f"{_tool_text(ca.tools)} -> {_tool_text(cb.tools)}"
    ja, jb = _json_answer(text_a), _json_answer(text_b)
    if (ja is not None or jb is not None) and text_a != text_b:
        if ja is None or jb is None or _shape(ja) != _shape(jb):
            where: list[str] = ["(not JSON)"] if ja is None or jb is None else []
            if not where:
                compare(_shape(ja), _shape(jb), "", set(), where, frozenset())
            return "structure changed", sim, "shape differs at " + ", ".join(where)
    if a.get("finish_reason") != b.get("finish_reason"):
        return "finish changed", sim, f"finish: {a.get('finish_reason')} -> {b.get('finish_reason')}"
    if text_a != text_b:
        return "text changed", sim, f"similarity {sim:.2f}"
    return PENDING, sim, None


# --- pairing --------------------------------------------------------------------------------


def _place(call: _Call) -> tuple[Any, ...]:
    """Where a call sits in its run: its group, test, endpoint or tool."""
    row = call.row
    return call.group, row.get("test_id") or "", row.get("endpoint") or row.get("tool_name") or ""


def _order(call: _Call) -> tuple[Any, ...]:
    record = call.parsed() or {}
    recorder = record.get("recorder")
    sequence = recorder.get("sequence") if isinstance(recorder, dict) else None
    seq = sequence if type(sequence) is int else math.inf
    recorded = call.row.get("recorded_at")
    return seq, call.row.get("n_messages") or 0, str(recorded) if recorded is not None else "", call.path


def _requests(ca: _Call, cb: _Call) -> str | None:
    """How the request of ``b`` differs from that of ``a``; ``None`` when they are equal."""
    ra, rb = ca.parsed() or {}, cb.parsed() or {}
    qa, qb = request_from_record(ra), request_from_record(rb)
    if qa is None or qb is None:
        return "(a request that cannot be compared)"
    ta, tb = ra.get("test_id"), rb.get("test_id")
    changes = request_changes(
        comparable(qa, ta if isinstance(ta, str) else None), comparable(qb, tb if isinstance(tb, str) else None)
    )
    if not changes:
        return None
    # what was asked first; fresh ids (tool-call ids in the history) last
    changes.sort(key=lambda c: re.sub(r"\[\d+\]", "", c.path).rsplit(".", 1)[-1] in VOLATILE_KEYS)
    shown = "; ".join(str(c) for c in changes[:4])
    return shown + (f"; and {len(changes) - 4} more" if len(changes) > 4 else "")


def _pairs(side_a: list[_Call], side_b: list[_Call]) -> list[tuple[_Call | None, _Call | None, str]]:
    by_key: dict[tuple[Any, ...], _Call] = {}
    for c in side_b:
        by_key.setdefault((c.group, c.row["key"], c.row.get("occurrence") or 1), c)
    pairs: list[tuple[_Call | None, _Call | None, str]] = []
    left_a: list[_Call] = []
    for c in side_a:
        other = by_key.pop((c.group, c.row["key"], c.row.get("occurrence") or 1), None)
        if other is None:
            left_a.append(c)
        else:
            pairs.append((c, other, "key"))
    left_b = list(by_key.values())
    places: dict[tuple[Any, ...], tuple[list[_Call], list[_Call]]] = defaultdict(lambda: ([], []))
    for c in left_a:
        places[_place(c)][0].append(c)
    for c in left_b:
        places[_place(c)][1].append(c)
    for only_a, only_b in places.values():
        only_a.sort(key=_order)
        only_b.sort(key=_order)
        for i in range(max(len(only_a), len(only_b))):
            ca = only_a[i] if i < len(only_a) else None
            cb = only_b[i] if i < len(only_b) else None
            pairs.append((ca, cb, "place" if ca is not None and cb is not None else "none"))
    return pairs


# --- the frame ------------------------------------------------------------------------------


def _row(ca: _Call | None, cb: _Call | None, paired_by: str) -> dict[str, Any]:
    a = ca.row if ca is not None else {}
    b = cb.row if cb is not None else {}
    out: dict[str, Any] = dict.fromkeys(DIFF_COLUMNS)
    out["similarity"] = math.nan
    if ca is None:
        out["verdict"] = "added"
    elif cb is None:
        out["verdict"] = "removed"
    else:
        answer, out["similarity"], out["changes"] = judge(ca, cb)
        out["answer"] = answer
        out["verdict"] = answer
        if paired_by == "place":
            out["request_diff"] = _requests(ca, cb)
            if out["request_diff"] is not None:
                out["verdict"] = "request changed"
    first = a or b
    out["test_id"] = first.get("test_id")
    out["kind"] = first.get("kind")
    out["endpoint"] = first.get("endpoint") or first.get("tool_name")
    for name in ("model", "finish_reason", "text", "occurrence", "key", "path"):
        out[f"{name}_a"], out[f"{name}_b"] = a.get(name), b.get(name)
    out["exception_a"], out["exception_b"] = a.get("exception_type"), b.get("exception_type")
    for name in _NUMERIC:
        va, vb = a.get(name), b.get(name)
        out[f"{name}_a"], out[f"{name}_b"] = va, vb
        out[f"{name}_delta"] = vb - va if va is not None and vb is not None else None
    out["paired_by"] = paired_by
    return out


def diff(a: Source, b: Source, *, strict: bool = False, progress: bool | None = None) -> RunDiff:
    """Compare two runs: one row per call, paired across ``a`` and ``b``, with a verdict.

    ``a`` and ``b`` are what :func:`~notebook_recorder.load_recordings` takes: directories of
    recordings (the committed run and a re-recorded one, say), files, or frames. The ``verdict``
    column uses a fixed vocabulary (:data:`VERDICTS`, explained in :data:`VERDICT_DOCS`):
    ``identical``, ``same``, ``text changed`` (``similarity`` from 0 to 1), ``tool calls
    changed``, ``structure changed``, ``finish changed``, ``error appeared``, ``error gone``,
    ``request changed``, ``added`` and ``removed``. ``answer`` is the answer's verdict of every
    pair (for ``request changed`` rows, what the answer did), ``changes`` says what changed in
    words, ``request_diff`` how a request changed. Tokens, latency (``duration_ms``) and chunk
    counts have ``_a``, ``_b`` and ``_delta`` (b - a) columns.

    Rows are sorted with the most significant verdicts first. In a notebook, the frame shows as
    a summary, the changed calls and a side-by-side diff of each answer's text; ``.summary()``
    counts the verdicts. Files that cannot be read are left out with a warning (``strict=True``
    raises instead).
    """
    side_a = _side(a, strict, progress, "a")
    side_b = _side(b, strict, progress, "b")
    rows = [_row(ca, cb, how) for ca, cb, how in _pairs(side_a, side_b)]
    pending = [row for row in rows if row["answer"] == PENDING]
    for row, (verdict, note) in zip(pending, check_pairs([(r["path_a"], r["path_b"]) for r in pending]), strict=True):
        row["answer"], row["changes"] = verdict, note
        if row["verdict"] == PENDING:
            row["verdict"] = verdict
    frame = pd.DataFrame(rows, columns=list(DIFF_COLUMNS))
    rank = {v: i for i, v in enumerate(VERDICTS)}
    frame["_rank"] = frame["verdict"].map(rank)
    frame = frame.sort_values(["_rank", "test_id", "endpoint", "path_a", "path_b"], na_position="last", kind="stable")
    frame = frame.drop(columns="_rank").reset_index(drop=True)
    return RunDiff(_typed(frame))


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    category = pd.CategoricalDtype(list(VERDICTS))
    frame["verdict"] = frame["verdict"].astype(category)
    frame["answer"] = frame["answer"].astype(category)
    frame["similarity"] = frame["similarity"].astype("float64")
    for name in _NUMERIC:
        dtype = "float64" if name == "duration_ms" else "Int64"
        for side in ("a", "b", "delta"):
            col = f"{name}_{side}"
            frame[col] = pd.array([None if _na(v) is None else v for v in frame[col]], dtype=dtype)
    for name in ("occurrence_a", "occurrence_b"):
        frame[name] = pd.array([None if _na(v) is None else v for v in frame[name]], dtype="Int64")
    return frame


class RunDiff(pd.DataFrame):  # type: ignore[misc]
    """The frame :func:`diff` returns: a :class:`pandas.DataFrame` with a readable HTML view.

    Anything derived from it (a filter, a selection of columns) is a plain DataFrame.
    """

    @property
    def _constructor(self) -> type[pd.DataFrame]:
        plain: type[pd.DataFrame] = pd.DataFrame
        return plain

    def summary(self) -> pd.Series:
        """How many calls got each verdict (verdicts with none left out), most significant first."""
        counts = self["verdict"].value_counts(sort=False)
        return counts[counts > 0]

    def failing(self, fail_on: Iterable[str] = DEFAULT_FAIL_ON) -> pd.DataFrame:
        """The rows whose verdict, or whose answer, is in ``fail_on`` (what the command fails on)."""
        wanted = set(check_verdicts(fail_on))
        mask = self["verdict"].isin(wanted) | self["answer"].isin(wanted)
        return pd.DataFrame(self[mask])

    def to_html_report(self, *, max_pairs: int = 50, max_chars: int = 4000) -> str:
        """The HTML view: the verdict counts, the changed calls, then each changed answer side
        by side with its words highlighted (removed in a, added in b)."""
        return render_html(self, max_pairs=max_pairs, max_chars=max_chars)

    def _repr_html_(self) -> str:
        return self.to_html_report()


# --- the HTML view --------------------------------------------------------------------------

_STYLE = """<style>
.nr-diff table{border-collapse:collapse;font-size:12px}
.nr-diff td,.nr-diff th{border:1px solid #ddd;padding:3px 6px;vertical-align:top;text-align:left}
.nr-diff .side{width:50%;white-space:pre-wrap;font-family:monospace}
.nr-diff del{background:#fdd;text-decoration:line-through}
.nr-diff ins{background:#dfd;text-decoration:none}
</style>"""


def _words_html(a: str, b: str) -> tuple[str, str]:
    wa, wb = a.split(" "), b.split(" ")
    left: list[str] = []
    right: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, wa, wb, autojunk=False).get_opcodes():
        sa, sb = html.escape(" ".join(wa[i1:i2])), html.escape(" ".join(wb[j1:j2]))
        if op == "equal":
            left.append(sa)
            right.append(sb)
        else:
            if sa:
                left.append(f"<del>{sa}</del>")
            if sb:
                right.append(f"<ins>{sb}</ins>")
    return " ".join(left), " ".join(right)


def _cell(value: Any) -> str:
    value = _na(value)
    return "" if value is None else html.escape(_short(value if isinstance(value, str) else str(value), 80))


def render_html(frame: pd.DataFrame, *, max_pairs: int = 50, max_chars: int = 4000) -> str:
    """The HTML view of a :func:`diff` frame (see :meth:`RunDiff.to_html_report`)."""
    counts = frame["verdict"].value_counts(sort=False)
    summary = ", ".join(f"<b>{html.escape(str(v))}</b>: {n}" for v, n in counts.items() if n)
    changed = frame[~frame["verdict"].isin(UNCHANGED)]
    parts = [_STYLE, '<div class="nr-diff">', f"<p>{len(frame)} calls: {summary or 'none'}</p>"]
    if len(changed):
        cols = ["verdict", "answer", "test_id", "endpoint", "model_a", "model_b", "changes", "request_diff"]
        deltas = ["total_tokens_delta", "duration_ms_delta", "n_chunks_delta"]
        head = "".join(f"<th>{html.escape(c)}</th>" for c in [*cols, *deltas])
        body = []
        for _, row in changed.head(max_pairs).iterrows():
            cells = [_cell(row[c]) for c in cols]
            cells += [_cell(round(row[c], 1) if _na(row[c]) is not None else None) for c in deltas]
            body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        parts.append(f"<table><tr>{head}</tr>{''.join(body)}</table>")
        for _, row in changed.head(max_pairs).iterrows():
            a, b = _na(row["text_a"]) or "", _na(row["text_b"]) or ""
            if a == b:
                continue
            left, right = _words_html(str(a)[:max_chars], str(b)[:max_chars])
            title = f"{row['verdict']}: {_na(row['test_id']) or ''} {_na(row['endpoint']) or ''}"
            parts.append(
                f"<details open><summary>{html.escape(title)}</summary><table><tr><th>a: "
                f"{_cell(row['path_a'])}</th><th>b: {_cell(row['path_b'])}</th></tr>"
                f'<tr><td class="side">{left}</td><td class="side">{right}</td></tr></table></details>'
            )
        if len(changed) > max_pairs:
            parts.append(f"<p>... and {len(changed) - max_pairs} more changed calls</p>")
    else:
        parts.append("<p>No answer changed.</p>")
    parts.append("</div>")
    return "".join(parts)
