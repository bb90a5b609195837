"""What the magics and the command line show: the call table, the notes, the state, text tables.

Shared by :mod:`.ipython` (``%apirec status``, the note after a cell, ``%apirec``) and
:mod:`.cli` (its tables and counts). Rendering only: it decides nothing and imports no IPython.

Everything the extension shows by itself is display data tagged with the output metadata
:func:`own_output_metadata` (key :data:`OWN_OUTPUT_KEY`); ``notebook-recorder run --check``
leaves such outputs out of the comparison. The notes carry no timings, and every line starts
with :data:`NOTE_PREFIX`.
"""

from __future__ import annotations

import html
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core._modes import ENV_DIR, ENV_MODE, env_dir, env_mode_source
from ._discovery import default_dir, display_path

if TYPE_CHECKING:
    from ..core._calllog import Call
    from ..core._recorder import Recorder

__all__ = [
    "NOTE_PREFIX",
    "OWN_OUTPUT_KEY",
    "CallTable",
    "cell_note",
    "format_state",
    "human_size",
    "indent",
    "middle_truncate",
    "own_output_metadata",
    "plural",
    "text_table",
]

NOTE_PREFIX = "apirec: "
"""Every line the extension prints by itself starts with this (for reading; ``run --check`` goes by
the outputs' :data:`OWN_OUTPUT_KEY` metadata, not by this text)."""

OWN_OUTPUT_KEY = "notebook_recorder"
"""The output metadata key that marks an output the package showed by itself (the magics put
``{"notebook_recorder": {"role": "note"}}`` on their notes); ``--check`` leaves such outputs out."""


def plural(count: int, noun: str) -> str:
    """``1 call``, ``2 calls``."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def text_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], right: frozenset[int] = frozenset(), *, rule: bool = False
) -> list[str]:
    """Aligned columns two spaces apart, the columns in ``right`` right-aligned; with ``rule``, a
    line of dashes under the header."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        cells = [
            str(c).rjust(w) if i in right else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=False))
        ]
        return "  ".join(cells).rstrip()

    dashes = ["  ".join("-" * width for width in widths)] if rule else []
    return [line(header), *dashes, *(line(row) for row in rows)]


def human_size(size: int) -> str:
    """``512B``, ``3.4K``, ``12M``."""
    if size < 1024:
        return f"{size}B"
    value = float(size)
    for unit in ("K", "M", "G"):
        value /= 1024
        if value < 1024 or unit == "G":
            return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"
    return f"{size}B"  # pragma: no cover


def middle_truncate(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters in the middle, with ``…``."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


def indent(text: str, prefix: str = "    ") -> list[str]:
    """``text`` as lines, each behind ``prefix`` (empty lines without trailing spaces)."""
    return [prefix + line if line else prefix.rstrip() for line in text.splitlines()] or [prefix.rstrip()]


def own_output_metadata(role: str) -> dict[str, Any]:
    """The output metadata of an output the extension shows by itself: ``{"notebook_recorder":
    {"role": role}}``, with ``role`` one of ``note``, ``state``, ``status``, ``warning``. ``notebook-recorder run
    --check`` leaves outputs carrying it out of the comparison."""
    return {OWN_OUTPUT_KEY: {"role": role}}


# ---------------------------------------------------------------------------------------------
# The call table and the notes
# ---------------------------------------------------------------------------------------------

_COLUMNS = ("#", "cell", "kind", "endpoint / tool", "model", "outcome", "occurrence", "file", "time")
_NUMERIC = frozenset({"#", "cell", "occurrence", "time"})
_OUTCOMES = ("replayed", "recorded", "unsaved", "live", "missing", "error", "unrecorded", "blocked")


@dataclass(frozen=True)
class CallTable:
    """This session's calls as a table: aligned text in a terminal, HTML in a notebook."""

    calls: Sequence[Call]

    def rows(self) -> list[tuple[str, ...]]:
        """One tuple of strings per call, in :data:`_COLUMNS` order."""
        return [
            (
                str(call.index),
                "" if call.cell is None else str(call.cell),
                call.kind,
                f"{call.endpoint} ({call.client})" if call.client else call.endpoint,
                call.model or "",
                _outcome(call),
                str(call.occurrence),  # the k-th identical request of its recording context
                call.path or call.origin or "",
                f"{call.ms:.1f} ms",  # with its unit, so `run --check` reads it as a duration
            )
            for call in self.calls
        ]

    def summary(self) -> str:
        """``3 calls: 2 replayed, 1 recorded``."""
        if not self.calls:
            return "no calls in this session yet"
        return f"{plural(len(self.calls), 'call')}: {_counts(self.calls)}"

    def __repr__(self) -> str:
        if not self.calls:
            return NOTE_PREFIX + self.summary()
        right = frozenset(i for i, column in enumerate(_COLUMNS) if column in _NUMERIC)
        table = text_table(_COLUMNS, self.rows(), right, rule=True)
        return "\n".join([*table, "", self.summary()])

    def _repr_html_(self) -> str:
        if not self.calls:
            return f"<p>{html.escape(NOTE_PREFIX + self.summary())}</p>"

        def cell(tag: str, column: str, text: str, title: str = "") -> str:
            align = "right" if column in _NUMERIC else "left"
            tip = f' title="{html.escape(title)}"' if title else ""
            return f'<{tag} style="text-align: {align}; white-space: nowrap"{tip}>{html.escape(text)}</{tag}>'

        head = "".join(cell("th", column, column) for column in _COLUMNS)
        file_at = _COLUMNS.index("file")

        def row_html(row: tuple[str, ...]) -> str:
            cells = [
                cell("td", column, _short_path(text), text) if i == file_at else cell("td", column, text)
                for i, (column, text) in enumerate(zip(_COLUMNS, row, strict=True))
            ]
            return "<tr>" + "".join(cells) + "</tr>"

        body = "\n".join(row_html(row) for row in self.rows())
        return (
            '<table class="apirec-status">\n'
            f"<caption>apirec: {html.escape(self.summary())}</caption>\n"
            f"<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"
        )


def _short_path(path: str) -> str:
    """``recordings/x/3c8462613af4…json`` as ``x/3c8462613af4…``: the directory and the key's start.

    The status table shows this; the full path is the cell's tooltip.
    """
    if not path:
        return ""
    parent, _, name = path.replace("\\", "/").rpartition("/")
    stem = name.removesuffix(".json")
    if len(stem) > 16:
        stem = stem[:12] + "…"
    folder = parent.rpartition("/")[2]
    return f"{folder}/{stem}" if folder else stem


def _outcome(call: Call) -> str:
    if call.error and call.outcome != "missing":
        return f"{call.outcome} ({call.error})"
    return call.outcome


def _counts(calls: Sequence[Call]) -> str:
    counted = Counter(call.outcome for call in calls)
    ordered = [*_OUTCOMES, *sorted(set(counted) - set(_OUTCOMES))]
    return ", ".join(f"{counted[outcome]} {outcome}" for outcome in ordered if counted[outcome])


def cell_note(calls: Sequence[Call]) -> str | None:
    """The note printed after a cell, e.g. ``apirec: replayed 2 calls from recordings/quickstart``.

    ``None`` when the cell neither replayed nor recorded anything and opened no network
    connection outside the hooks. Deterministic: no timings.
    """
    network = _network_note(calls)
    counted = Counter(call.outcome for call in calls if call.kind != "network")
    replayed, recorded = counted["replayed"], counted["recorded"]
    if not replayed and not recorded:
        return network
    parts = []
    if replayed:
        parts.append(f"replayed {plural(replayed, 'call')}")
    if recorded:
        parts.append(f"recorded {plural(recorded, 'call')}")
    if counted["missing"]:
        parts.append(f"{counted['missing']} missing")
    if counted["error"]:
        parts.append(f"{counted['error']} failed")
    directories = sorted(
        {Path(call.path).parent.as_posix() for call in calls if call.path and call.outcome in ("replayed", "recorded")}
    )
    preposition = "in" if replayed and recorded else ("from" if replayed else "to")
    where = f" {preposition} {', '.join(directories)}" if directories else ""
    note = f"{NOTE_PREFIX}{', '.join(parts)}{where}"
    return f"{note}\n{network}" if network else note


def _network_note(calls: Sequence[Call]) -> str | None:
    """``apirec: 2 network connections not recorded: host:443 (google-genai via httpx2, from x.py:3)``:
    each names the library that opened it, when known, and the user's line."""
    network = [call for call in calls if call.kind == "network"]
    if not network:
        return None
    lines = []
    for outcome, verb in (("unrecorded", "not recorded"), ("blocked", "blocked")):
        chosen = [call for call in network if call.outcome == outcome]
        if not chosen:
            continue
        places = dict.fromkeys(_place(call) for call in chosen)
        shown = ", ".join(list(places)[:3]) + (f" and {len(places) - 3} more" if len(places) > 3 else "")
        noun = plural(len(chosen), "network connection")
        lines.append(f"{NOTE_PREFIX}{noun} {verb}: {shown}")
    return "\n".join(lines) or None


def _place(call: Call) -> str:
    """``host:443 (google-genai via httpx2, from x.py:3)``, ``host:443 (from x.py:3)``."""
    who = [call.client] if call.client else []
    if call.origin:
        who.append(f"from {call.origin}")
    return f"{call.endpoint} ({', '.join(who)})" if who else call.endpoint


# ---------------------------------------------------------------------------------------------
# The state (``%apirec`` without arguments)
# ---------------------------------------------------------------------------------------------


def format_state(recorder: Recorder | None, set_by: str, user_ns: dict[str, Any] | None = None) -> str:
    """What ``%apirec`` prints: the mode, directory and scope in force (``set_by``: what started
    ``recorder``), and the overrides from the environment."""
    forced_mode, forced_dir = os.environ.get(ENV_MODE) or None, os.environ.get(ENV_DIR) or None
    if recorder is None:
        default = default_dir(user_ns)
        rows = [
            ("mode", "live (no recorder: calls go to the API, the openai SDK is not patched)"),
            ("dir", f"{display_path(default.path)} (the default for %apirec MODE)"),
            ("scope", "none"),
            ("set by", "nothing yet: %apirec MODE starts a recorder"),
        ]
    else:
        rows = [
            ("mode", recorder.mode.value),
            ("dir", display_path(recorder.dir)),
            ("scope", recorder.scope if recorder.scope is not None else "none"),
            ("set by", set_by),
        ]
        if recorder.rules:
            project = recorder.project.path
            origin = f" (with {display_path(project)})" if project is not None and recorder.project.rules else ""
            rows.append(("match", recorder.rules.summary() + origin))
        if recorder.block_network:
            allowed = ", ".join(sorted(recorder.allow_hosts)) or "nothing"
            rows.append(("network", f"blocked unless a hook records the call (allowed: {allowed})"))
    if forced_mode is None:
        rows.append((ENV_MODE, "not set"))
    else:
        by_run = " (set by `run --mode`)" if env_mode_source().startswith("run ") else ""
        if recorder is not None and recorder.mode is not recorder.requested_mode:
            rows.append((ENV_MODE, f"{forced_mode}{by_run} (overrides {recorder.requested_mode})"))
        else:
            rows.append((ENV_MODE, f"{forced_mode}{by_run} (overrides any mode chosen here)"))
    if forced_dir is None:
        rows.append((ENV_DIR, "not set"))
    elif recorder is not None and env_dir() != recorder.requested_dir:
        rows.append((ENV_DIR, f"{forced_dir} (overrides {display_path(recorder.requested_dir)})"))
    else:
        rows.append((ENV_DIR, f"{forced_dir} (overrides any directory chosen here)"))
    width = max(len(name) for name, _ in rows) + 1
    return "\n".join(f"{name + ':':<{width}} {value}" for name, value in rows)
