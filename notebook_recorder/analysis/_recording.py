"""One recording, readable: HTML in a notebook, plain text in a terminal. No pandas here."""

from __future__ import annotations

import html
import os
import textwrap
from typing import Any

from ..core._errors import RecordingFormatError
from ..core._terminal import one_line
from ._loader import parse_file
from ._rows import MESSAGE_FIELDS, TOKEN_FIELDS, TOOL_CALL_FIELDS, Extracted

ANSWERLESS = ("model_list", "embedding", "token_count", "other")
"""Kinds whose response is data, not a model's answer: shown by its type when it has no text."""

_ROLE_COLOURS = {
    "system": "#6b7280",
    "developer": "#6b7280",
    "user": "#2563eb",
    "assistant": "#059669",
    "model": "#059669",
    "tool": "#d97706",
}


def _short(text: str | None, limit: int | None) -> str:
    if text is None:
        return ""
    if limit is not None and len(text) > limit:
        return text[:limit] + f"… [{len(text) - limit} more characters]"
    return text


def _pretty_json(value: Any, raw: str | None) -> str:
    if value is None:
        return raw or ""
    import json

    return json.dumps(value, indent=2, ensure_ascii=False)


class Recording:
    """One recording file, shown as a conversation: request messages, tool calls, the answer.

    ``Recording.load(path)`` reads it. In a notebook it renders as HTML; ``repr()`` and
    :meth:`to_text` give plain text. The raw JSON is in :attr:`data`.
    """

    def __init__(self, data: dict[str, Any], extracted: Extracted, path: str | None = None) -> None:
        self.data = data
        self.path = path
        self._x = extracted
        self.call: dict[str, Any] = extracted.call_dict()
        self._rows = extracted.tokens.rows() if extracted.tokens is not None else []

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Recording:
        """Read one recording file. Raises :class:`~notebook_recorder.RecordingFormatError` naming it
        when it cannot."""
        p = os.fspath(path)
        result, data, _ = parse_file(p)
        if isinstance(result, str):
            raise RecordingFormatError(p, result)
        return cls(data, result, p)

    # --- the parts, as plain Python ----------------------------------------------------------

    @property
    def key(self) -> str:
        return str(self.call["key"])

    @property
    def kind(self) -> str:
        return str(self.call["kind"])

    @property
    def text(self) -> str | None:
        """The assembled answer (the result, for a tool recording)."""
        t = self.call["text"]
        return t if isinstance(t, str) else None

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [dict(zip(MESSAGE_FIELDS, m, strict=True)) for m in self._x.messages]

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        return [dict(zip(TOOL_CALL_FIELDS, t, strict=True)) for t in self._x.tool_calls]

    @property
    def chunks(self) -> list[dict[str, Any]]:
        return [dict(zip(TOKEN_FIELDS, t, strict=True)) for t in self._rows]

    def _prompt(self) -> str | None:
        req = self.data.get("request") or {}
        body = req.get("body") if isinstance(req, dict) else None
        if isinstance(body, dict):
            p = body.get("prompt")
            if isinstance(p, str):
                return p
            if isinstance(p, list) and all(isinstance(x, str) for x in p):
                return "\n".join(p)
        return None

    def _header(self) -> list[tuple[str, str]]:
        c = self.call
        rows: list[tuple[str, str]] = []
        if self.path:
            rows.append(("file", self.path))
        if c["test_id"]:
            rows.append(("test_id", str(c["test_id"])))
        if c["kind"] in ("tool",) or c["tool_name"]:
            rows.append(("tool", f"{c['provider'] or '?'} / {c['tool_name']}"))
        if c["endpoint"]:
            rows.append(("endpoint", " ".join(str(x) for x in (c["method"], c["endpoint"]) if x)))
        if c["model"] or c["response_model"]:
            m = str(c["model"] or "")
            if c["response_model"] and c["response_model"] != c["model"]:
                m = f"{m} → {c['response_model']}" if m else str(c["response_model"])
            rows.append(("model", m))
        if c["status_code"] is not None:
            rows.append(("status", str(c["status_code"])))
        if c["prompt_tokens"] is not None or c["total_tokens"] is not None:
            rows.append(
                (
                    "tokens",
                    f"{c['prompt_tokens'] if c['prompt_tokens'] is not None else '?'} prompt + "
                    f"{c['completion_tokens'] if c['completion_tokens'] is not None else '?'} completion"
                    f" = {c['total_tokens'] if c['total_tokens'] is not None else '?'}",
                )
            )
        timing = self._timing()
        if timing:
            rows.append(("timing", timing))
        if c["sdk"]:
            rows.append(("sdk", f"{c['sdk']} {c['sdk_version'] or ''}".strip()))
        return rows

    def _timing(self) -> str:
        parts = []
        offsets = [t[5] for t in self._rows if t[5] == t[5]]  # not NaN
        if offsets:
            first = next((t[5] for t in self._rows if t[1] and t[5] == t[5]), offsets[0])
            parts.append(f"first text after {first:.0f} ms, last chunk at {offsets[-1]:.0f} ms")
        d = self.call["duration_ms"]
        if d == d:  # not NaN
            parts.append(f"duration {d:.0f} ms")
        return "; ".join(parts)

    def _title(self) -> str:
        c = self.call
        what = str(c["kind"])
        if c["is_streaming"]:
            what += f", streamed in {c['n_chunks']} chunks"
        return one_line(f"Recording {self.key} ({what})")

    def _response_tool_calls(self) -> list[dict[str, Any]]:
        return [t for t in self.tool_calls if t["source"] == "response"]

    def _calls_of(self, message_index: int) -> list[dict[str, Any]]:
        return [t for t in self.tool_calls if t["source"] == "request" and t["message_index"] == message_index]

    # --- text ----------------------------------------------------------------------------------

    def to_text(self, max_chars: int | None = 1000) -> str:
        """The recording as plain text. Long contents are cut at ``max_chars`` (None: never)."""
        c = self.call
        out = [self._title()]
        for k, v in self._header():
            out.append(f"  {k + ':':<10}{one_line(v)}")

        def block(text: str, indent: str = "    ") -> None:
            out.extend(textwrap.indent(_short(text, max_chars), indent).splitlines() or [indent])

        def call_line(t: dict[str, Any]) -> str:
            ident = f"  [{t['call_id']}]" if t["call_id"] else ""
            return one_line(f"→ {t['name']}({t['arguments'] or ''}){ident}")

        if c["kind"] in ("tool",) or (c["kind"] == "exception" and c["tool_name"]):
            inv = next((t for t in self.tool_calls if t["source"] == "invocation"), None)
            if inv is not None:
                out.append("")
                out.append(one_line(f"Call: {inv['name']}({inv['arguments'] or ''})"))
                if inv["error"]:
                    out.append(f"Raised: {one_line(inv['error'])}")
                elif inv["output"] is not None:
                    out.append("Result:")
                    block(inv["output"])
            return "\n".join(out)

        msgs = self.messages
        prompt = self._prompt()
        if prompt is not None:
            out.append("")
            out.append("Prompt:")
            block(prompt)
        if msgs:
            out.append("")
            out.append(f"Request ({len(msgs)} messages)")
            for m in msgs:
                head = f"  [{m['index']}] {m['role'] or m['item_type']}"
                if m["tool_call_id"]:
                    head += f" (answers {m['tool_call_id']})"
                out.append(head + ":")
                if m["content"]:
                    block(m["content"])
                for t in self._calls_of(m["index"]):
                    out.append("    " + call_line(t))
        out.append("")
        if c["exception_type"] or c["exception_message"]:
            status = f" ({c['status_code']})" if c["status_code"] is not None else ""
            message = one_line(c["exception_message"] or "")
            out.append(f"Error: {one_line(c['exception_type'] or 'error')}{status}: {message}")
        if c["kind"] in ANSWERLESS and not c["text"]:
            out.append(f"Response: {c['response_type'] or 'data'}")
            return "\n".join(out)
        if c["kind"] == "exception":
            return "\n".join(out)
        fr = f", finish_reason={c['finish_reason']}" if c["finish_reason"] else ""
        out.append(f"Response{fr}:")
        if c["text"]:
            block(c["text"])
        for t in self._response_tool_calls():
            out.append("    " + call_line(t))
            if t["output"] is not None:
                out.append("      result (from a later request): " + _short(t["output"], 200).replace("\n", " "))
        return "\n".join(out)

    def __repr__(self) -> str:
        return self.to_text()

    __str__ = __repr__

    # --- HTML ----------------------------------------------------------------------------------

    def _repr_html_(self) -> str:
        e = html.escape
        c = self.call
        h: list[str] = [
            '<div class="nr-recording" style="font-family:system-ui,sans-serif;font-size:13px;'
            'border:1px solid #d1d5db;border-radius:6px;padding:8px 12px;max-width:960px">',
            f'<div style="font-weight:600;margin-bottom:4px">{e(self._title())}</div>',
            '<table style="border-collapse:collapse;margin-bottom:6px">',
        ]
        for k, v in self._header():
            h.append(
                f'<tr><td style="color:#6b7280;padding:0 8px 0 0;text-align:left">{e(k)}</td>'
                f'<td style="text-align:left"><code>{e(v)}</code></td></tr>'
            )
        h.append("</table>")

        def pre(text: str, limit: int = 4000) -> str:
            body = e(_short(text, limit))
            # Translucent backgrounds over the inherited text colour: readable in light and dark themes.
            style = (
                "white-space:pre-wrap;margin:2px 0;padding:4px 6px;background:rgba(127,127,127,0.1);border-radius:4px"
            )
            if len(text) > 600:
                return (
                    f"<details><summary>{e(text[:120])}… ({len(text)} characters)</summary>"
                    f'<pre style="{style}">{body}</pre></details>'
                )
            return f'<pre style="{style}">{body}</pre>'

        def call_html(t: dict[str, Any]) -> str:
            args = _pretty_json(t["arguments_json"], t["arguments"])
            ident = f' <span style="color:#6b7280">{e(t["call_id"])}</span>' if t["call_id"] else ""
            out = [
                f'<div style="margin:4px 0 4px 12px">🔧 <b>{e(str(t["name"]))}</b>{ident}'
                f'<pre style="white-space:pre-wrap;margin:2px 0;padding:4px 6px;background:rgba(245,158,11,0.14);'
                f'border-radius:4px">{e(args)}</pre>'
            ]
            if t["error"]:
                out.append(f'<div style="color:#b91c1c">raised: {e(t["error"])}</div>')
            elif t["output"] is not None:
                out.append('<div style="color:#6b7280">result:</div>' + pre(t["output"]))
            out.append("</div>")
            return "".join(out)

        def role_badge(role: str) -> str:
            colour = _ROLE_COLOURS.get(role, "#374151")
            return (
                f'<span style="display:inline-block;min-width:64px;color:white;background:{colour};'
                f'border-radius:3px;padding:0 6px;font-size:11px">{e(role)}</span>'
            )

        if c["kind"] == "tool" or (c["kind"] == "exception" and c["tool_name"]):
            for t in self.tool_calls:
                if t["source"] == "invocation":
                    h.append(call_html(t))
            h.append("</div>")
            return "".join(h)

        prompt = self._prompt()
        if prompt is not None:
            h.append(f"<div>{role_badge('prompt')}</div>{pre(prompt)}")
        for m in self.messages:
            role = str(m["role"] or m["item_type"] or "?")
            extra = f' <span style="color:#6b7280">answers {e(m["tool_call_id"])}</span>' if m["tool_call_id"] else ""
            h.append(f'<div style="margin-top:6px">{role_badge(role)}{extra}</div>')
            if m["content"]:
                h.append(pre(m["content"]))
            for t in self._calls_of(m["index"]):
                h.append(call_html(t))

        if c["exception_type"] or c["exception_message"]:
            status = f" ({c['status_code']})" if c["status_code"] is not None else ""
            h.append(
                f'<div style="margin-top:8px;color:#b91c1c"><b>{e(str(c["exception_type"] or "error"))}{status}</b>: '
                f"{e(str(c['exception_message'] or ''))}</div>"
            )
        if c["kind"] != "exception" and not (c["kind"] in ANSWERLESS and not c["text"]):
            fr = f" · finish_reason={c['finish_reason']}" if c["finish_reason"] else ""
            h.append(
                f'<div style="margin-top:8px">{role_badge("answer")}<span style="color:#6b7280">{e(fr)}</span></div>'
            )
            if c["is_streaming"] and self._rows:
                h.append(self._stream_html())
            elif c["text"]:
                h.append(pre(str(c["text"])))
            for t in self._response_tool_calls():
                h.append(call_html(t))
        elif c["kind"] in ANSWERLESS:
            h.append(
                f'<div style="margin-top:8px;color:#6b7280">response: {e(str(c["response_type"] or "data"))}</div>'
            )
        h.append("</div>")
        return "".join(h)

    def _stream_html(self, limit: int = 3000) -> str:
        """The streamed answer with chunk boundaries shaded; hover shows each chunk's timing."""
        spans = []
        for i, t in enumerate(self._rows[:limit]):
            delta = t[1]
            if not delta:
                continue
            bg = "rgba(16,185,129,0.12)" if i % 2 else "rgba(16,185,129,0.28)"  # any theme
            off = f", {t[5]:.0f} ms" if t[5] == t[5] else ""
            spans.append(f'<span title="chunk {t[0]}{off}" style="background:{bg}">{html.escape(delta)}</span>')
        more = ""
        if len(self._rows) > limit:
            more = f'<div style="color:#6b7280">… {len(self._rows) - limit} more chunks</div>'
        return (
            '<div style="white-space:pre-wrap;font-family:ui-monospace,monospace;margin:2px 0;padding:4px 6px;'
            f'border-radius:4px">{"".join(spans)}</div>{more}'
        )
