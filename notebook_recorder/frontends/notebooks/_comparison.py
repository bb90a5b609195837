"""Comparing a notebook's outputs with the stored ones: ``notebook-recorder run --check`` and the
pytest plugin's notebook items.

Comparison (``--check``)
------------------------
Each executed code cell's outputs are compared with the outputs stored in the notebook file:

- stream outputs, the pieces of each stream merged; stdout in its place among the other outputs,
  stderr as one block after them (how stdout and stderr interleave depends on timing);
- rich outputs as text: ``text/html`` converted to text (tags stripped, one line per block or
  table row, cells separated by two spaces) when present, else ``text/plain``, else
  ``text/markdown``; images and other binary data are ignored;
- errors as ``ename: evalue`` (tracebacks are not compared).

A cell tagged ``ignore-output`` (or nbval's ``nbval-ignore-output``) is not compared. Outputs
that the package showed by itself (the magics' notes, the ``%apirec`` state, the status table)
are left out on both sides: they say ``recorded`` in a record run and ``replayed`` in a replay,
and they are not what the notebook's code produced. They are recognised by their output metadata,
``{"notebook_recorder": {...}}`` (:data:`OWN_OUTPUT_KEY`), which Jupyter, JupyterLab and VS Code
keep when they save a notebook; their text does not matter. Before comparing, both sides go
through the sanitiser rules in :data:`RULES`, in that order.
"""

from __future__ import annotations

import difflib
import html.parser
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .._render import OWN_OUTPUT_KEY

IGNORE_OUTPUT_TAGS = frozenset({"ignore-output", "nbval-ignore-output"})
"""Cells tagged with one of these are not compared."""

# ---------------------------------------------------------------------------------------------
# Sanitisers
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One sanitiser: every match of ``pattern`` becomes ``replacement`` on both sides."""

    name: str
    pattern: re.Pattern[str]
    replacement: str
    example: str

    def apply(self, text: str) -> str:
        return self.pattern.sub(self.replacement, text)


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")

RULES: tuple[Rule, ...] = (
    Rule(
        "timestamps",
        re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"),
        "<DATETIME>",
        "2025-10-25T14:03:11.52Z -> <DATETIME>  (a date alone is kept)",
    ),
    Rule(
        "clock times",
        re.compile(r"(?<![\d:])\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?(?![\d:])"),
        "<CLOCK>",
        "14:03:11 -> <CLOCK>",
    ),
    Rule(
        "uuids",
        re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"),
        "<UUID>",
        "3f2b...-...-4c1d-...-9e0a1b2c3d4e -> <UUID>",
    ),
    Rule(
        "memory addresses",
        re.compile(r"\b0x[0-9a-fA-F]{4,}\b"),
        "0x<ADDRESS>",
        "<Foo object at 0x7f3a9c2b1d90> -> <Foo object at 0x<ADDRESS>>",
    ),
    Rule(
        "absolute paths",
        re.compile(r"(?<![\w.:/~\\-])/(?:[\w.@+~-]+/)+|\b[A-Za-z]:\\(?:[^\\\s'\"<>|:*?]+\\)+"),
        "<PATH>/",
        "/home/me/proj/recordings/ab12.json -> <PATH>/ab12.json  (the last name is kept; URLs are kept)",
    ),
    Rule(
        "temporary names",
        re.compile(r"\btmp[a-z0-9_]{8}\b"),
        "tmp<RANDOM>",
        "tmpk3j_9x2a -> tmp<RANDOM>",
    ),
    Rule(
        "rates",
        re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s?(?:it/s|s/it)"),
        "<RATE>",
        "12.5it/s -> <RATE>",
    ),
    Rule(
        "durations",
        re.compile(
            r"(?<![\w.])\d+(?:\.\d+)?\s?"
            r"(?:ns|µs|μs|us|ms|s|sec|secs|seconds?|min|mins|minutes?)(?![\w/])"
        ),
        "<DURATION>",
        "12.3 ms, 0.41s, 3 seconds -> <DURATION>",
    ),
)
"""The sanitiser rules, applied in this order to both the stored and the executed text."""


def format_rules() -> str:
    """The sanitiser rules as text, for ``run --help`` and the docs."""
    lines = [
        "ANSI colour codes are removed; a carriage return keeps only what was written after it;",
        "trailing spaces and trailing blank lines are dropped. Then, in this order:",
    ]
    lines += [f"  - {rule.name}: {rule.example}" for rule in RULES]
    return "\n".join(lines)


def sanitize(text: str) -> str:
    """``text`` with its volatile parts normalised (see :data:`RULES`)."""
    text = ANSI.sub("", text).replace("\r\n", "\n")
    lines = [line.rsplit("\r", 1)[-1] for line in text.split("\n")]
    text = "\n".join(line.rstrip() for line in lines).rstrip("\n")
    for rule in RULES:
        text = rule.apply(text)
    return text


# ---------------------------------------------------------------------------------------------
# Outputs as text
# ---------------------------------------------------------------------------------------------

_BLOCK_TAGS = frozenset(
    {"p", "div", "br", "tr", "li", "ul", "ol", "table", "thead", "tbody", "h1", "h2", "h3", "h4", "h5", "h6"}
    | {"pre", "section", "caption", "hr", "dt", "dd", "blockquote"}
)
_CELL_TAGS = frozenset({"td", "th"})
_SKIP_TAGS = frozenset({"style", "script", "head", "title"})


class _HTMLText(html.parser.HTMLParser):
    """Collects the visible text of an HTML fragment: a line per block or table row."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[list[str]] = [[]]
        self._skipping = 0
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in _SKIP_TAGS:
            self._skipping += 1
        elif tag == "pre":
            self._pre += 1
            self._break()
        elif tag in _BLOCK_TAGS:
            self._break()
        elif tag in _CELL_TAGS and self.lines[-1]:
            self.lines[-1].append("  ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skipping = max(0, self._skipping - 1)
        elif tag == "pre":
            self._pre = max(0, self._pre - 1)
            self._break()
        elif tag in _BLOCK_TAGS:
            self._break()

    def handle_data(self, data: str) -> None:
        if self._skipping:
            return
        if self._pre:
            first, *rest = data.split("\n")
            self.lines[-1].append(first)
            for line in rest:
                self.lines.append([line])
            return
        text = " ".join(data.split())
        if text:
            self.lines[-1].append(text)

    def _break(self) -> None:
        if self.lines[-1]:
            self.lines.append([])

    def text(self) -> str:
        return "\n".join("".join(parts).strip() for parts in self.lines if "".join(parts).strip())


def html_to_text(markup: str) -> str:
    """The visible text of ``markup``: tags stripped, one line per block element or table row."""
    parser = _HTMLText()
    parser.feed(markup)
    parser.close()
    return parser.text()


def _joined(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _output_text(output: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(label, text)`` for one output, or ``None`` for outputs that are not compared."""
    kind = output.get("output_type")
    if kind == "stream":
        return str(output.get("name", "stdout")), _joined(output.get("text", ""))
    if kind == "error":
        return "error", f"{output.get('ename', '')}: {output.get('evalue', '')}"
    if kind in ("execute_result", "display_data"):
        data = output.get("data") or {}
        label = "out" if kind == "execute_result" else "display"
        if "text/html" in data:
            return label, html_to_text(_joined(data["text/html"]))
        for mime in ("text/plain", "text/markdown", "text/latex"):
            if mime in data:
                return label, _joined(data[mime])
    return None


def is_own_output(output: Mapping[str, Any]) -> bool:
    """Whether ``output`` is one the package showed by itself (its metadata has :data:`OWN_OUTPUT_KEY`)."""
    metadata = output.get("metadata")
    return isinstance(metadata, Mapping) and OWN_OUTPUT_KEY in metadata


def merge_streams(outputs: Iterable[Any]) -> list[Any]:
    """``outputs`` with consecutive pieces of one stream merged into one output (order kept).

    A streamed answer printed token by token arrives as many stream messages; the notebook file
    and the comparison only care about the text.
    """
    merged: list[Any] = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and output.get("output_type") == "stream"
            and previous.get("output_type") == "stream"
            and previous.get("name") == output.get("name")
        ):
            previous["text"] = _joined(previous.get("text", "")) + _joined(output.get("text", ""))
        else:
            merged.append(output)
    return merged


def output_lines(outputs: Iterable[Mapping[str, Any]]) -> list[str]:
    """A cell's outputs as sanitised lines, each output introduced by ``[stdout]``, ``[out]``...

    The package's own outputs (:func:`is_own_output`) are left out. Pieces of a stream are merged:
    how a stream is split into messages depends on timing (and stdout printed before and after a
    note left out is one piece). For the same reason stderr is compared as one block after the
    other outputs: its interleaving with stdout depends on when each stream was flushed.
    """
    merged: list[tuple[str, str]] = []
    stderr = ""
    for output in outputs:
        if is_own_output(output):
            continue
        item = _output_text(output)
        if item is None:
            continue
        label, text = item
        if label == "stderr":
            stderr += text
        elif merged and label == "stdout" and merged[-1][0] == label:
            merged[-1] = (label, merged[-1][1] + text)
        else:
            merged.append(item)
    if stderr:
        merged.append(("stderr", stderr))
    lines: list[str] = []
    for label, text in merged:
        clean = sanitize(text)
        lines.append(f"[{label}]")
        if clean:
            lines.extend(clean.split("\n"))
    return lines


@dataclass
class CellDiff:
    """A code cell whose sanitised outputs differ from the stored ones."""

    index: int
    execution_count: int | None
    diff: list[str]


# ---------------------------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------------------------


def has_stored_outputs(nb: Any) -> bool:
    """Whether any code cell of ``nb`` carries outputs or an execution count."""
    return any(
        cell.get("outputs") or cell.get("execution_count") is not None for cell in nb.cells if cell.cell_type == "code"
    )


class _CellRun(Protocol):
    @property
    def index(self) -> int: ...

    @property
    def failed(self) -> bool: ...


class NotebookRun(Protocol):
    """What :func:`compare` reads of a run (``_runner.NotebookRun``): both notebooks and how each cell ran."""

    @property
    def stored(self) -> Any: ...

    @property
    def executed(self) -> Any: ...

    @property
    def cells(self) -> Sequence[_CellRun]: ...


def compare(run: NotebookRun, *, context: int = 2, max_lines: int = 60) -> list[CellDiff]:
    """The cells whose sanitised outputs differ between the stored and the executed notebook.

    Only cells that ran are compared; cells tagged ``ignore-output`` are skipped.
    """
    diffs: list[CellDiff] = []
    for cell_run in run.cells:
        if cell_run.failed:
            continue
        stored_cell = run.stored.cells[cell_run.index]
        executed_cell = run.executed.cells[cell_run.index]
        if IGNORE_OUTPUT_TAGS & set(stored_cell.metadata.get("tags", [])):
            continue
        before = output_lines(stored_cell.get("outputs", []))
        after = output_lines(executed_cell.get("outputs", []))
        if before == after:
            continue
        lines = list(
            difflib.unified_diff(before, after, "stored", "executed", lineterm="", n=context),
        )
        if len(lines) > max_lines:
            lines = [*lines[:max_lines], f"… {len(lines) - max_lines} more diff lines"]
        diffs.append(CellDiff(cell_run.index, stored_cell.get("execution_count"), lines))
    return diffs
