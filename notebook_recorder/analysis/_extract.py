"""One parsed recording in, the rows of all four frames out, in a single pass. No pandas here.

The shapes handled are the ones found in llama-stack's corpus and in our own files (FORMAT.md):

- OpenAI chat completions and completions, streamed (chunks) or not, also when a provider
  recorded chat chunks under ``/v1/completions``
- the Responses API (``openai.types.responses.*``), streamed events or a final ``Response``
- embeddings and model lists
- Ollama's native ``/api/generate``, ``/api/chat``, ``/api/embeddings``, ``/api/ps``
- Gemini ``generate_content`` (raw dicts without ``__type__``)
- raw HTTP recordings (``payload`` / ``status``; streamed bodies are SSE lines), with Anthropic
  messages and Gemini interactions events understood
- tool invocations (``provider`` / ``tool_name`` / ``kwargs``), provider calls
  (``api`` / ``file_id``), and exceptions (``is_exception``)

The response is parsed by its shape, not by its endpoint or its ``__type__``: llama-stack files
sometimes store chat chunks under ``/v1/completions``, and a ``__type__`` may not be importable.
Anything unknown degrades to empty values; only a file that is not a recording at all raises
:class:`NotARecording`.
"""

from __future__ import annotations

import math
import operator
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import orjson

from .._keys import MODEL_LIST_ENDPOINTS as MODEL_LIST_ENDPOINTS, call_kind

NAN = math.nan

# Field order of the rows. The frames' column specs refer to these names.
CALL_FIELDS: tuple[str, ...] = (
    "key",
    "test_id",
    "kind",
    "endpoint",
    "model",
    "is_streaming",
    "n_chunks",
    "text",
    "finish_reason",
    "n_tool_calls",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "tool_name",
    "provider",
    "method",
    "url",
    "status_code",
    "exception_type",
    "exception_message",
    "response_model",
    "response_type",
    "n_messages",
    "duration_ms",
    "sdk",
    "sdk_version",
    "occurrence",
    "recorded_at",
)
MESSAGE_FIELDS: tuple[str, ...] = (
    "index",
    "role",
    "content",
    "tool_call_id",
    "n_tool_calls",
    "name",
    "item_type",
)
TOOL_CALL_FIELDS: tuple[str, ...] = (
    "source",
    "index",
    "call_id",
    "name",
    "arguments",
    "arguments_json",
    "output",
    "message_index",
    "call_type",
    "error",
)
TOKEN_FIELDS: tuple[str, ...] = (
    "chunk_index",
    "delta",
    "role",
    "finish_reason",
    "tool_call_delta",
    "offset_ms",
    "cum_chars",
)


class NotARecording(ValueError):
    """The JSON parsed, but it is not a recording (no ``request`` / ``response`` objects)."""


class Stream(NamedTuple):
    """The chunks of a streamed response, column-wise (one entry per chunk unless noted).

    The chunks' text is kept once, joined, with each chunk's length in characters: a corpus has
    tens of thousands of chunks, and small strings kept from every parsed file cost memory and
    time; most lengths are small ints, which Python does not allocate.
    """

    text: str  # the chunks' text, joined
    lengths: list[int]  # characters each chunk added
    roles: list[Any]
    finish_reasons: list[Any]
    tool_deltas: list[int]  # indexes of the chunks carrying (part of) a tool call
    offsets: list[float] | None  # arrival offsets in ms, when recorded

    @property
    def deltas(self) -> list[str]:
        out = []
        text, start = self.text, 0
        for n in self.lengths:
            out.append(text[start : start + n])
            start += n
        return out

    def rows(self) -> list[tuple[Any, ...]]:
        """One tuple per chunk, in TOKEN_FIELDS order."""
        n = len(self.lengths)
        tcd = [False] * n
        for i in self.tool_deltas:
            tcd[i] = True
        offsets = self.offsets if self.offsets is not None else [NAN] * n
        rows = []
        cum = 0
        for i, d in enumerate(self.deltas):
            cum += len(d)
            rows.append((i, d, self.roles[i], self.finish_reasons[i], tcd[i], offsets[i], cum))
        return rows


def _stream_of(deltas: list[Any], roles: list[Any], finish: list[Any], tool_deltas: list[int], offsets: Any) -> Stream:
    try:
        text = "".join(deltas)
    except TypeError:  # a content given as a list of parts
        deltas = [x if type(x) is str else content_text(x) or "" for x in deltas]
        text = "".join(deltas)
    return Stream(text, list(map(len, deltas)), roles, finish, tool_deltas, offsets)


class Extracted(NamedTuple):
    """Everything the frames need from one file. Rows are tuples in the ``*_FIELDS`` order."""

    call: tuple[Any, ...]
    messages: list[tuple[Any, ...]]
    tool_calls: list[tuple[Any, ...]]
    tokens: Stream | None  # None when the response was not streamed

    def call_dict(self) -> dict[str, Any]:
        return dict(zip(CALL_FIELDS, self.call, strict=True))


def _offsets(offsets: list[Any] | None, n: int, where: list[int] | None = None) -> list[float] | None:
    """Per-chunk arrival offsets from the ``chunk_offsets_ms`` extension, NaN where unusable."""
    if not offsets:
        return None
    n_off = len(offsets)
    out: list[float] = []
    for i in range(n) if where is None else where:
        v = offsets[i] if i < n_off else NAN
        out.append(float(v) if type(v) is float or type(v) is int else NAN)
    return out


def dumps(value: Any) -> str:
    """Compact JSON text for a value that is not a string already."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def parse_json_arguments(arguments: Any) -> Any:
    """``arguments`` parsed as JSON, or None when it is not valid JSON."""
    if not isinstance(arguments, str) or not arguments:
        return None
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return None


def unwrap(value: Any) -> Any:
    """The raw data of an encoded SDK object; anything else unchanged."""
    if type(value) is dict and "__type__" in value and "__data__" in value:
        return value["__data__"]
    return value


def type_name(value: Any) -> str | None:
    """The short class name of an encoded value (``ChatCompletionChunk``), else None."""
    if type(value) is dict:
        t = value.get("__type__")
        if isinstance(t, str):
            return t.rsplit(".", 1)[-1]
    return None


def content_text(content: Any) -> str | None:
    """Text of a message content: a string, or the text parts of a list joined."""
    if content is None:
        return None
    if type(content) is str:
        return content
    if type(content) is list:
        parts: list[str] = []
        for part in content:
            if type(part) is str:
                parts.append(part)
            elif type(part) is dict:
                t = part.get("text")
                if type(t) is str:
                    parts.append(t)
                elif part.get("type") == "tool_result":  # anthropic
                    inner = content_text(part.get("content"))
                    if inner:
                        parts.append(inner)
        return "".join(parts)
    if type(content) is dict:
        t = content.get("text")
        if type(t) is str:
            return t
        return dumps(content)
    return str(content)


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


def _usage(u: Any) -> tuple[int | None, int | None, int | None]:
    """(prompt, completion, total) tokens from any provider's usage object."""
    if type(u) is not dict:
        return None, None, None
    p = u.get("prompt_tokens")
    if p is None:
        p = u.get("input_tokens")
        if p is None:
            p = u.get("prompt_token_count")  # gemini
            if p is None:
                p = u.get("total_input_tokens")  # gemini interactions
    c = u.get("completion_tokens")
    if c is None:
        c = u.get("output_tokens")
        if c is None:
            c = u.get("candidates_token_count")
            if c is None:
                c = u.get("total_output_tokens")
    t = u.get("total_tokens")
    if t is None:
        t = u.get("total_token_count")
    p, c, t = _int(p), _int(c), _int(t)
    if t is None and p is not None and c is not None:
        t = p + c
    return p, c, t


def _ollama_usage(d: dict[str, Any]) -> tuple[int | None, int | None, int | None]:
    p, c = _int(d.get("prompt_eval_count")), _int(d.get("eval_count"))
    return p, c, (p + c if p is not None and c is not None else p if c is None else None)


_CALL_TEMPLATE: dict[str, Any] = dict.fromkeys(CALL_FIELDS)
_CALL_TEMPLATE.update(is_streaming=False, n_chunks=0, n_tool_calls=0, n_messages=0, duration_ms=NAN)
Call = dict[str, Any]  # one call row being filled in, keys in CALL_FIELDS order


def new_call(key: str) -> Call:
    call = _CALL_TEMPLATE.copy()
    call["key"] = key
    return call


def _set_usage(call: Call, u: tuple[int | None, int | None, int | None]) -> None:
    if u[0] is not None or u[1] is not None or u[2] is not None:
        call["prompt_tokens"], call["completion_tokens"], call["total_tokens"] = u


class _ToolSlot:
    """A tool call being assembled from stream deltas (or given whole)."""

    __slots__ = ("args", "args_obj", "call_id", "call_type", "name")

    def __init__(self) -> None:
        self.call_id: str | None = None
        self.name: str | None = None
        self.args: list[str] = []
        self.args_obj: Any = None  # arguments given as an object (ollama, gemini, anthropic)
        self.call_type: str | None = None

    def add(self, call_id: Any, name: Any, args: Any, call_type: Any = None) -> None:
        if call_id and self.call_id is None:
            self.call_id = str(call_id)
        if name:
            if not self.name:
                self.name = name
            elif name != self.name:
                self.name += name
        if type(args) is str:
            if args:
                self.args.append(args)
        elif args is not None:
            self.args_obj = args
        if call_type and self.call_type is None:
            self.call_type = call_type


def _tool_row(
    source: str,
    index: int,
    call_id: Any,
    name: Any,
    args: Any,
    call_type: Any,
    message_index: int | None = None,
    output: str | None = None,
    error: str | None = None,
) -> list[Any]:
    if type(args) is str:
        arguments: str | None = args
        parsed = parse_json_arguments(args)
    elif args is None:
        arguments, parsed = None, None
    else:
        arguments, parsed = dumps(args), args
    return [
        source,
        index,
        str(call_id) if call_id else None,
        name if isinstance(name, str) else None,
        arguments,
        parsed,
        output,
        message_index,
        call_type,
        error,
    ]


def _slot_rows(slots: dict[Any, _ToolSlot]) -> list[list[Any]]:
    rows = []
    for i, s in enumerate(slots.values()):
        args: Any = "".join(s.args) if s.args or s.args_obj is None else s.args_obj
        rows.append(_tool_row("response", i, s.call_id, s.name, args, s.call_type or "function"))
    return rows


def _add_tool_calls(slots: dict[Any, _ToolSlot], tool_calls: Any) -> None:
    """Merge OpenAI/Ollama-style tool calls (whole or deltas) into slots, by their index."""
    if type(tool_calls) is not list:
        return
    for pos, tc in enumerate(tool_calls):
        if type(tc) is not dict:
            continue
        idx = tc.get("index")
        if idx is None:
            idx = len(slots) if tc.get("id") or tc.get("function") else pos
        slot = slots.get(idx)
        if slot is None:
            slot = slots[idx] = _ToolSlot()
        fn = tc.get("function")
        if type(fn) is dict:
            slot.add(tc.get("id"), fn.get("name"), fn.get("arguments"), tc.get("type"))
        else:
            slot.add(tc.get("id"), tc.get("name"), tc.get("arguments"), tc.get("type"))


def _new_slot(slots: dict[Any, _ToolSlot], key: Any) -> _ToolSlot:
    slot = slots.get(key)
    if slot is None:
        slot = slots[key] = _ToolSlot()
    return slot


def _responses_item_call(item: dict[str, Any]) -> tuple[Any, Any, Any, str] | None:
    """(call_id, name, arguments, type) of a Responses API output/input item that is a tool call."""
    t = item.get("type")
    if t == "function_call" or t == "custom_tool_call":
        args = item.get("arguments")
        if args is None:
            args = item.get("input")
        return item.get("call_id") or item.get("id"), item.get("name"), args, t
    if isinstance(t, str) and t.endswith("_call") and not t.endswith("_output"):
        if "arguments" in item:
            args = item.get("arguments")
        elif "action" in item:
            args = item.get("action")
        elif "queries" in item:
            args = {"queries": item.get("queries")}
        else:
            args = None
        name = item.get("name") or t[: -len("_call")]
        return item.get("call_id") or item.get("id"), name, args, t
    return None


def _responses_output(resp: dict[str, Any], call: Call, slots: dict[Any, _ToolSlot]) -> str | None:
    """Text and tool calls of a final Responses API ``Response``."""
    texts: list[str] = []
    output = resp.get("output")
    if type(output) is list:
        for i, item in enumerate(output):
            if type(item) is not dict:
                continue
            if item.get("type") == "message":
                content = item.get("content")
                if type(content) is list:
                    for part in content:
                        if type(part) is dict and part.get("type") == "output_text":
                            t = part.get("text")
                            if type(t) is str:
                                texts.append(t)
            else:
                tc = _responses_item_call(item)
                if tc is not None:
                    _new_slot(slots, ("o", i)).add(*tc)
    status = resp.get("status")
    incomplete = resp.get("incomplete_details")
    if type(incomplete) is dict and incomplete.get("reason"):
        status = f"{status}: {incomplete['reason']}" if status else incomplete["reason"]
    if status:
        call["finish_reason"] = status
    if resp.get("model"):
        call["response_model"] = resp["model"]
    _set_usage(call, _usage(resp.get("usage")))
    return "".join(texts) if texts or output is not None else None


def _gemini_parts(d: dict[str, Any], slots: dict[Any, _ToolSlot]) -> tuple[str, Any, bool]:
    """(text, finish_reason, has_tool_call) of the first candidate of a Gemini response/chunk."""
    cands = d.get("candidates")
    if type(cands) is not list or not cands or type(cands[0]) is not dict:
        return "", None, False
    cand = cands[0]
    texts: list[str] = []
    has_tool = False
    content = cand.get("content")
    if type(content) is dict and type(content.get("parts")) is list:
        for part in content["parts"]:
            if type(part) is not dict:
                continue
            t = part.get("text")
            if type(t) is str and not part.get("thought"):
                texts.append(t)
            fc = part.get("function_call")
            if type(fc) is dict:
                has_tool = True
                _new_slot(slots, len(slots)).add(fc.get("id"), fc.get("name"), fc.get("args"), "function")
    return "".join(texts), cand.get("finish_reason"), has_tool


def _choice0(choices: list[Any]) -> Any:
    ch = choices[0]
    if type(ch) is dict and ch.get("index", 0) not in (0, None):
        for other in choices:
            if type(other) is dict and other.get("index") == 0:
                return other
        return None
    return ch


# --- non-streamed responses ------------------------------------------------------------------


def _single(body: Any, call: Call, slots: dict[Any, _ToolSlot]) -> None:
    """Fill text, finish_reason, usage and tool calls from a non-streamed response body."""
    call["response_type"] = type_name(body)
    b = unwrap(body)
    if type(b) is list:
        call["response_type"] = type_name(b[0]) if b else None
        return
    if type(b) is str:
        call["text"] = b
        return
    if type(b) is not dict:
        return
    if isinstance(b.get("model"), str):
        call["response_model"] = b["model"]
    choices = b.get("choices")
    if type(choices) is list:
        _set_usage(call, _usage(b.get("usage")))
        if not choices:
            return
        ch = _choice0(choices)
        if type(ch) is not dict:
            return
        call["finish_reason"] = ch.get("finish_reason")
        msg = ch.get("message")
        if msg is None:
            msg = ch.get("delta")
        if type(msg) is dict:
            call["text"] = content_text(msg.get("content"))
            _add_tool_calls(slots, msg.get("tool_calls"))
            fc = msg.get("function_call")
            if type(fc) is dict:
                _new_slot(slots, len(slots)).add(None, fc.get("name"), fc.get("arguments"), "function")
        elif "text" in ch:
            call["text"] = ch.get("text")
        return
    if type(b.get("output")) is list and (b.get("object") == "response" or "status" in b):
        call["text"] = _responses_output(b, call, slots)
        return
    if "candidates" in b:
        text, fr, _ = _gemini_parts(b, slots)
        call["text"], call["finish_reason"] = text, fr
        _set_usage(call, _usage(b.get("usage_metadata")))
        return
    msg = b.get("message")
    if type(msg) is dict and ("done" in b or "created_at" in b):  # ollama /api/chat
        call["text"] = content_text(msg.get("content"))
        _add_tool_calls(slots, msg.get("tool_calls"))
        call["finish_reason"] = b.get("done_reason")
        _set_usage(call, _ollama_usage(b))
        return
    if type(b.get("response")) is str and "done" in b:  # ollama /api/generate
        call["text"] = b["response"]
        call["finish_reason"] = b.get("done_reason")
        _set_usage(call, _ollama_usage(b))
        return
    if b.get("type") == "message" and type(b.get("content")) is list:  # anthropic messages
        texts = []
        for i, block in enumerate(b["content"]):
            if type(block) is not dict:
                continue
            if block.get("type") == "text" and type(block.get("text")) is str:
                texts.append(block["text"])
            elif block.get("type") == "tool_use":
                _new_slot(slots, i).add(block.get("id"), block.get("name"), block.get("input"), "tool_use")
        call["text"] = "".join(texts)
        call["finish_reason"] = b.get("stop_reason")
        _set_usage(call, _usage(b.get("usage")))
        return
    if "prompt_eval_count" in b or "eval_count" in b:  # ollama embeddings and the like
        _set_usage(call, _ollama_usage(b))
        return
    if "usage" in b:  # embeddings
        _set_usage(call, _usage(b["usage"]))
        return
    err = b.get("error")
    if err is not None:  # an HTTP error body
        if type(err) is dict:
            call["exception_type"] = err.get("type") or err.get("status") or err.get("code")
            call["exception_message"] = err.get("message")
        else:
            call["exception_message"] = str(err)


# --- streams ---------------------------------------------------------------------------------


def _sse_events(lines: list[Any]) -> tuple[list[Any], list[int]]:
    """Parse SSE lines into (events, line index of each event's data line)."""
    events: list[Any] = []
    where: list[int] = []
    name: str | None = None
    for i, line in enumerate(lines):
        if type(line) is not str:
            events.append(line)
            where.append(i)
            continue
        if line.startswith("data:"):
            data = line[5:].strip()
            event: Any
            if data == "[DONE]":
                event = {"__sse_done__": True}
            else:
                try:
                    event = orjson.loads(data)
                except orjson.JSONDecodeError:
                    event = data
            if name is not None and type(event) is dict and "event_type" not in event and "type" not in event:
                event["type"] = name
            events.append(event)
            where.append(i)
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif not line:
            name = None
    return events, where


class _StreamState:
    """What a stream's chunks accumulate besides their text."""

    __slots__ = ("call", "final_response", "seen_text_delta", "slots", "usage")

    def __init__(self, call: Call, slots: dict[Any, _ToolSlot]) -> None:
        self.call = call
        self.slots = slots
        self.usage: tuple[int | None, int | None, int | None] = (None, None, None)
        self.seen_text_delta = False  # Responses API: deltas seen, the final output is not re-added
        self.final_response: dict[str, Any] | None = None


def _chat_chunk(d: dict[str, Any], st: _StreamState) -> tuple[str, Any, Any, bool]:
    """(delta, role, finish_reason, tool_call_delta) of an OpenAI chat or completion chunk."""
    delta = ""
    role = fr = None
    tcd = False
    choices = d["choices"]
    if choices:
        ch = choices[0]
        if ch.get("index"):  # several choices interleaved: only the first one counts
            ch = _choice0(choices)
        if ch is not None:
            dl = ch.get("delta")
            if dl is not None:
                t = dl.get("content")
                if t:
                    delta = t if type(t) is str else content_text(t) or ""
                role = dl.get("role")
                tc = dl.get("tool_calls")
                if tc:
                    tcd = True
                    _add_tool_calls(st.slots, tc)
            else:
                t = ch.get("text")
                if t and type(t) is str:
                    delta = t
            fr = ch.get("finish_reason")
    u = d.get("usage")
    if u:
        st.usage = _usage(u)
    return delta, role, fr, tcd


def _event(d: Any, st: _StreamState) -> tuple[str, Any, Any, bool]:
    """(delta, role, finish_reason, tool_call_delta) of any other chunk or event."""
    if type(d) is str:
        return d, None, None, False
    if type(d) is not dict:
        return "", None, None, False
    if d.get("choices") is not None:
        return _chat_chunk(d, st)
    call, slots = st.call, st.slots
    delta = ""
    role = fr = None
    tcd = False
    if "done" in d and ("message" in d or "response" in d):  # ollama
        msg = d.get("message")
        if type(msg) is dict:
            t = msg.get("content")
            if t and type(t) is str:
                delta = t
            role = msg.get("role")
            tc = msg.get("tool_calls")
            if tc:
                tcd = True
                for one in tc if type(tc) is list else ():
                    if type(one) is dict:
                        fn = one.get("function") or {}
                        _new_slot(slots, len(slots)).add(one.get("id"), fn.get("name"), fn.get("arguments"), "function")
        else:
            t = d.get("response")
            if t and type(t) is str:
                delta = t
        if d.get("done"):
            fr = d.get("done_reason")
            st.usage = _ollama_usage(d)
        if call["response_model"] is None:
            call["response_model"] = d.get("model")
        return delta, role, fr, tcd
    if "candidates" in d:  # gemini
        delta, fr, tcd = _gemini_parts(d, slots)
        if d.get("usage_metadata"):
            st.usage = _usage(d["usage_metadata"])
        if call["response_model"] is None:
            call["response_model"] = d.get("model_version")
        return delta, role, fr, tcd
    et = d.get("type") or d.get("event_type")
    if type(et) is not str:
        return delta, role, fr, tcd
    if et.startswith("response."):  # OpenAI Responses API events
        if et == "response.output_text.delta":
            t = d.get("delta")
            if type(t) is str:
                delta = t
                st.seen_text_delta = True
        elif et == "response.function_call_arguments.delta":
            tcd = True
            _new_slot(slots, ("o", d.get("output_index"))).add(None, None, d.get("delta"))
        elif et == "response.function_call_arguments.done":
            slot = _new_slot(slots, ("o", d.get("output_index")))
            if type(d.get("arguments")) is str:
                slot.args = [d["arguments"]]
        elif et in ("response.output_item.added", "response.output_item.done"):
            item = d.get("item")
            if type(item) is dict:
                if item.get("type") == "message" and item.get("role"):
                    role = item["role"]
                tc_item = _responses_item_call(item)
                if tc_item is not None:
                    tcd = True
                    slot = _new_slot(slots, ("o", d.get("output_index")))
                    cid, name, args, ctype = tc_item
                    if et == "response.output_item.done" and type(args) is str:
                        slot.args = []  # the done item carries the full arguments
                    if name and slot.name:
                        name = None  # already known from the added item
                    slot.add(cid, name, args, ctype)
        elif et in _RESPONSE_STATE_EVENTS:
            r = d.get("response")
            if type(r) is dict:
                if r.get("model"):
                    call["response_model"] = r["model"]
                if et not in ("response.created", "response.in_progress"):
                    st.final_response = r
                    fr = r.get("status")
    elif et == "content_block_delta":  # anthropic messages
        dl = d.get("delta")
        if type(dl) is dict:
            if dl.get("type") == "text_delta" and type(dl.get("text")) is str:
                delta = dl["text"]
            elif dl.get("type") == "input_json_delta":
                tcd = True
                _new_slot(slots, d.get("index")).add(None, None, dl.get("partial_json"))
    elif et == "content_block_start":
        cb = d.get("content_block")
        if type(cb) is dict and cb.get("type") == "tool_use":
            tcd = True
            _new_slot(slots, d.get("index")).add(cb.get("id"), cb.get("name"), None, "tool_use")
    elif et == "message_start":
        msg = d.get("message")
        if type(msg) is dict:
            role = msg.get("role")
            if msg.get("model"):
                call["response_model"] = msg["model"]
            p = _usage(msg.get("usage"))[0]
            if p is not None:
                st.usage = (p, st.usage[1], None)
    elif et == "message_delta":
        dl = d.get("delta")
        if type(dl) is dict and dl.get("stop_reason"):
            fr = dl["stop_reason"]
        c = _usage(d.get("usage"))[1]
        if c is not None:
            p = st.usage[0]
            st.usage = (p, c, p + c if p is not None else None)
    elif et == "content.delta":  # gemini interactions
        dl = d.get("delta")
        if type(dl) is dict:
            if dl.get("type") == "text" and type(dl.get("text")) is str:
                delta = dl["text"]
            elif dl.get("type") == "function_call":
                tcd = True
                _new_slot(slots, d.get("index")).add(dl.get("id"), dl.get("name"), dl.get("arguments"), "function")
    elif et == "interaction.complete":
        it = d.get("interaction")
        if type(it) is dict:
            fr = it.get("status")
            st.usage = _usage(it.get("usage"))
    return delta, role, fr, tcd


_RESPONSE_STATE_EVENTS = frozenset(
    {"response.completed", "response.incomplete", "response.failed", "response.created", "response.in_progress"}
)


_get_data = operator.itemgetter("__data__")


def _stream(
    body: list[Any], offsets: list[Any] | None, call: Call, slots: dict[Any, _ToolSlot], one_choice: bool
) -> Stream:
    """Assemble a streamed response: its chunks column-wise, plus the call's totals.

    The loop has a fast path for the common chunk, an OpenAI chat chunk with one choice, that
    falls back to :func:`_event` for anything else. ``one_choice`` is False when the request asked
    for several choices, whose chunks interleave.
    """
    call["response_type"] = type_name(body[0]) if body else None
    where: list[int] | None = None
    if body and type(body[0]) is str:
        body, where = _sse_events(body)
    st = _StreamState(call, slots)
    deltas: list[str] = []
    roles: list[Any] = []
    finish: list[Any] = []
    tool_deltas: list[int] = []
    add_delta, add_role, add_finish = deltas.append, roles.append, finish.append
    first = body[0] if body else None
    typed = type(first) is dict and "__type__" in first
    if typed:
        try:
            datas = list(map(_get_data, body))
        except (KeyError, TypeError):
            datas = [c["__data__"] if type(c) is dict and "__type__" in c else c for c in body]
    else:
        datas = body
    if one_choice and datas and type(datas[0]) is dict and "choices" in datas[0]:
        for i, d in enumerate(datas):
            try:
                # the common case, inlined: an OpenAI chat (or completion) chunk with one choice
                ch = d["choices"][0]
                dl = ch.get("delta")
                if dl is not None:
                    delta = dl.get("content")
                    role = dl.get("role")
                    tc = dl.get("tool_calls")
                else:  # a completion chunk
                    delta = ch["text"]
                    role = tc = None
                fr = ch.get("finish_reason")
            except (LookupError, TypeError, AttributeError):
                delta, role, fr, tcd = _event(d, st)
                tc = None
                if tcd:
                    tool_deltas.append(i)
            if tc:
                tool_deltas.append(i)
                _add_tool_calls(slots, tc)
            add_delta(delta or "")  # content given as parts is joined after the loop
            add_role(role)
            add_finish(fr)
        if st.usage == (None, None, None):  # the final usage is in one of the last chunks
            for d in reversed(datas[-3:]):
                u = d.get("usage") if type(d) is dict else None
                if u:
                    st.usage = _usage(u)
                    break
    else:
        for i, d in enumerate(datas):
            delta, role, fr, tcd = _event(d, st)
            if tcd:
                tool_deltas.append(i)
            add_delta(delta)
            add_role(role)
            add_finish(fr)
    last_finish = None
    for fr in reversed(finish):
        if fr is not None:
            last_finish = fr
            break
    if not call["response_model"]:
        for d in datas:
            if type(d) is dict and d.get("model") and type(d["model"]) is str:
                call["response_model"] = d["model"]
                break
    if last_finish == "function_call":
        _function_call_deltas(body, slots, tool_deltas)
    call["n_chunks"] = len(body)
    _set_usage(call, st.usage)
    call["finish_reason"] = last_finish
    tokens = _stream_of(deltas, roles, finish, tool_deltas, _offsets(offsets, len(body), where))
    text = tokens.text
    if st.final_response is not None:
        fallback_slots: dict[Any, _ToolSlot] = {}
        final_text = _responses_output(st.final_response, call, fallback_slots)
        if not st.seen_text_delta and final_text:
            text = final_text
        if not slots:
            slots.update(fallback_slots)
    call["text"] = text
    return tokens


def _function_call_deltas(body: list[Any], slots: dict[Any, _ToolSlot], tool_deltas: list[int]) -> None:
    """Legacy ``function_call`` deltas (looked for only when the answer ended with one)."""
    seen = set(tool_deltas)
    for i, chunk in enumerate(body):
        d = chunk["__data__"] if type(chunk) is dict and "__type__" in chunk else chunk
        choices = d.get("choices") if type(d) is dict else None
        if type(choices) is list and choices and type(choices[0]) is dict:
            dl = choices[0].get("delta")
            fc = dl.get("function_call") if type(dl) is dict else None
            if type(fc) is dict:
                _new_slot(slots, "function_call").add(None, fc.get("name"), fc.get("arguments"), "function")
                if i not in seen:
                    tool_deltas.append(i)
    tool_deltas.sort()


# --- requests --------------------------------------------------------------------------------


def _message_calls(
    msg: dict[str, Any], mi: int, tools: list[list[Any]], outputs: dict[str, str]
) -> tuple[int, str | None]:
    """Tool calls carried by one request message: (count, tool_call_id it answers)."""
    n = 0
    answered = msg.get("tool_call_id")
    tcs = msg.get("tool_calls")
    if type(tcs) is list:
        for tc in tcs:
            if type(tc) is not dict:
                continue
            fn = tc.get("function")
            fn = fn if type(fn) is dict else tc
            tools.append(_tool_row("request", n, tc.get("id"), fn.get("name"), fn.get("arguments"), tc.get("type"), mi))
            n += 1
    fc = msg.get("function_call")
    if type(fc) is dict:
        tools.append(_tool_row("request", n, None, fc.get("name"), fc.get("arguments"), "function", mi))
        n += 1
    content = msg.get("content")
    if type(content) is list:  # anthropic blocks
        for block in content:
            if type(block) is not dict:
                continue
            bt = block.get("type")
            if bt == "tool_use":
                tools.append(_tool_row("request", n, block.get("id"), block.get("name"), block.get("input"), bt, mi))
                n += 1
            elif bt == "tool_result":
                tid = block.get("tool_use_id")
                if tid:
                    outputs[str(tid)] = content_text(block.get("content")) or ""
                    answered = answered or tid
    if answered and msg.get("role") == "tool":
        outputs[str(answered)] = content_text(content) or ""
    return n, (str(answered) if answered else None)


def _request(
    body: Any,
    allow_input: bool,
    msgs: list[tuple[Any, ...]],
    tools: list[list[Any]],
) -> None:
    """Message rows and request-side tool call rows of a request body."""
    if type(body) is not dict:
        return
    outputs: dict[str, str] = {}
    messages = body.get("messages")
    contents = body.get("contents")
    if type(messages) is list:
        system = body.get("system")  # anthropic
        if system is not None:
            msgs.append((len(msgs), "system", content_text(system), None, 0, None, "system"))
        for m in messages:
            mi = len(msgs)
            if type(m) is not dict:
                msgs.append((mi, None, content_text(m), None, 0, None, "message"))
                continue
            n, answered = _message_calls(m, mi, tools, outputs)
            name = m.get("name")
            if name is None:
                name = m.get("tool_name")  # ollama tool messages
            msgs.append(
                (
                    mi,
                    m.get("role"),
                    content_text(m.get("content")),
                    answered,
                    n,
                    name if type(name) is str else None,
                    m.get("type") or "message",
                )
            )
    elif type(contents) is list:  # gemini
        for c in contents:
            mi = len(msgs)
            if type(c) is not dict:
                continue
            texts: list[str] = []
            n = 0
            answered = None
            parts = c.get("parts")
            for part in parts if type(parts) is list else ():
                if type(part) is not dict:
                    continue
                t = part.get("text")
                if type(t) is str:
                    texts.append(t)
                fc = part.get("function_call")
                if type(fc) is dict:
                    tools.append(_tool_row("request", n, fc.get("id"), fc.get("name"), fc.get("args"), "function", mi))
                    n += 1
                fr = part.get("function_response")
                if type(fr) is dict:
                    out = dumps(fr.get("response"))
                    texts.append(out)
                    answered = fr.get("id")
                    outputs[str(answered) if answered else "\x00name:" + str(fr.get("name"))] = out
            msgs.append((mi, c.get("role"), "".join(texts), answered, n, None, "content"))
        for row in tools:  # gemini calls without ids are matched by name
            if row[2] is None and row[3] is not None:
                found = outputs.get("\x00name:" + row[3])
                if found is not None:
                    row[6] = found
    elif allow_input and "input" in body:  # Responses API / Gemini interactions
        instructions = body.get("instructions")
        if type(instructions) is str:
            msgs.append((0, "system", instructions, None, 0, None, "instructions"))
        inp = body["input"]
        if type(inp) is str:
            msgs.append((len(msgs), "user", inp, None, 0, None, "message"))
        elif type(inp) is list:
            for item in inp:
                mi = len(msgs)
                if type(item) is str:
                    msgs.append((mi, "user", item, None, 0, None, "message"))
                    continue
                if type(item) is not dict:
                    continue
                itype = item.get("type") or "message"
                if "role" in item and itype == "message":
                    msgs.append((mi, item.get("role"), content_text(item.get("content")), None, 0, None, itype))
                    continue
                tc = _responses_item_call(item)
                if tc is not None:
                    cid, name, args, ctype = tc
                    tools.append(_tool_row("request", 0, cid, name, args, ctype, mi))
                    msgs.append((mi, "assistant", None, None, 1, name if type(name) is str else None, itype))
                    continue
                if itype.endswith("_output"):
                    cid = item.get("call_id") or item.get("id")
                    raw_out = item.get("output")
                    text = (
                        raw_out
                        if isinstance(raw_out, str)
                        else content_text(raw_out)
                        if type(raw_out) is list
                        else None
                    )
                    if text is None and raw_out is not None:
                        text = dumps(raw_out)
                    if cid:
                        outputs[str(cid)] = text or ""
                    msgs.append((mi, "tool", text, str(cid) if cid else None, 0, None, itype))
                    continue
                msgs.append((mi, item.get("role"), content_text(item.get("content")), None, 0, None, itype))
    if outputs:
        for row in tools:
            if row[2] is not None and row[6] is None:
                row[6] = outputs.get(row[2])


# --- tools -----------------------------------------------------------------------------------


def tool_output(value: Any) -> tuple[str | None, str | None]:
    """(output text, error) of a tool result; ToolInvocationResult is understood."""
    v = unwrap(value)
    if v is None:
        return None, None
    if type(v) is str:
        return v, None
    if type(v) is dict and "content" in v and ("error_message" in v or "error_code" in v):
        err = v.get("error_message")
        c = v.get("content")
        text = c if type(c) is str or c is None else content_text(c) if type(c) is list else dumps(c)
        return text, (str(err) if err else None)
    return dumps(v), None


# --- the entry point -------------------------------------------------------------------------


def extract(data: Any, key: str) -> Extracted:
    """All rows of one parsed recording file. Raises NotARecording if it is not one."""
    if type(data) is not dict:
        raise NotARecording(f"not a recording: the top level is {type(data).__name__}, not an object")
    req = data.get("request")
    resp = data.get("response")
    if type(req) is not dict:
        raise NotARecording("not a recording: no 'request' object")
    if type(resp) is not dict:
        raise NotARecording("not a recording: no 'response' object")

    call = new_call(key)
    msgs: list[tuple[Any, ...]] = []
    tools: list[list[Any]] = []
    tokens: Stream | None = None
    slots: dict[Any, _ToolSlot] = {}

    tid = data.get("test_id")
    call["test_id"] = tid if tid is not None else req.get("test_id")
    occ = data.get("occurrence")  # FORMAT.md, "Repeated identical requests": absent means 1
    call["occurrence"] = 1 if occ is None else occ if type(occ) is int and occ >= 1 else None
    rec = data.get("recorder")
    if type(rec) is dict:
        call["sdk"], call["sdk_version"] = rec.get("sdk"), rec.get("sdk_version")
        at = rec.get("recorded_at")
        call["recorded_at"] = at if type(at) is str else None
    dur = resp.get("duration_ms")
    if isinstance(dur, (int, float)) and not isinstance(dur, bool):
        call["duration_ms"] = float(dur)
    offsets = resp.get("chunk_offsets_ms")
    if type(offsets) is not list:
        offsets = None
    body = resp.get("body")
    streaming = bool(resp.get("is_streaming"))
    call["is_streaming"] = streaming
    is_exc = bool(resp.get("is_exception"))

    if is_exc:
        ed = resp.get("exception_data")
        ed = ed if type(ed) is dict else {}
        call["exception_type"] = ed.get("type")
        msg = resp.get("exception_message") or ed.get("message")
        call["exception_message"] = msg if msg is None or type(msg) is str else str(msg)
        call["status_code"] = _int(ed.get("status_code"))
        call["provider"] = ed.get("provider")

    if "tool_name" in req:
        call["kind"] = "tool"
        call["tool_name"] = req.get("tool_name")
        call["provider"] = req.get("provider")
        kwargs = req.get("kwargs")
        output: str | None
        error: str | None = None
        if is_exc:
            output = None
            error = (
                f"{call['exception_type']}: {call['exception_message']}"
                if call["exception_type"]
                else (call["exception_message"] or "exception")
            )
        elif streaming and type(body) is list:
            parts = [tool_output(item)[0] or "" for item in body]
            nothing = [None] * len(parts)
            tokens = _stream_of(parts, nothing, nothing, [], _offsets(offsets, len(parts)))
            call["n_chunks"] = len(body)
            output = tokens.text
        else:
            output, error = tool_output(body)
            call["response_type"] = type_name(body)
        call["text"] = output
        tools.append(_tool_row("invocation", 0, None, call["tool_name"], kwargs, "tool", None, output, error))
        call["n_tool_calls"] = 0
        if is_exc:
            call["kind"] = "exception"
    else:
        rbody = req.get("body")
        http = "payload" in req or ("url" in req and "body" not in req and "endpoint" not in req and "api" not in req)
        if http:
            call["kind"] = "http"
            rbody = req.get("payload")
            url = req.get("url")
            call["url"] = url
            call["method"] = req.get("method")
            call["endpoint"] = urlsplit(url).path if type(url) is str else None
            st = resp.get("status")
            call["status_code"] = _int(st)
        elif "body" in req or "endpoint" in req:
            call["kind"] = "inference"
            call["url"] = req.get("url")
            call["method"] = req.get("method")
            ep = req.get("endpoint")
            if not ep and type(call["url"]) is str:
                ep = urlsplit(call["url"]).path
            call["endpoint"] = ep
            pm = req.get("provider_metadata")
            if type(pm) is dict:
                call["provider"] = call["provider"] or pm.get("provider")
                if pm.get("ollama_sdk_version") and call["sdk"] is None:
                    call["sdk"], call["sdk_version"] = "ollama", pm.get("ollama_sdk_version")
        else:
            call["kind"] = "other"
            call["provider"] = req.get("provider")
            call["endpoint"] = req.get("api")
        ep = call["endpoint"] if type(call["endpoint"]) is str else ""
        is_embedding = "embed" in ep
        if call["kind"] == "inference":
            call["kind"] = call_kind(ep)
        model = req.get("model")
        if not model and type(rbody) is dict:
            model = rbody.get("model")
        call["model"] = model if model else None
        _request(rbody, not is_embedding, msgs, tools)
        call["n_messages"] = len(msgs)
        if not is_exc:
            if streaming and type(body) is list:
                n = rbody.get("n") if type(rbody) is dict else None
                tokens = _stream(body, offsets, call, slots, n is None or n == 1)
            else:
                _single(body, call, slots)
        if slots:
            tools.extend(_slot_rows(slots))
        call["n_tool_calls"] = len(slots)
        if is_exc:
            call["kind"] = "exception"

    return Extracted(tuple(call.values()), msgs, [tuple(r) for r in tools], tokens)
