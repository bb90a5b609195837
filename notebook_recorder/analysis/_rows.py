"""The rows that one recording gives the four frames, and the helpers every shape reader shares.

No pandas here. The ``*_FIELDS`` tuples fix the order of each row's values; the frames' column
specs (``_frames``) refer to these names. Shape readers (``_shapes/``) fill in a :data:`Call`
dict, append message and tool-call rows, and collect tool calls in :class:`ToolSlot` objects.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import orjson

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

MessageRow = tuple[Any, ...]  # in MESSAGE_FIELDS order
ToolRow = list[Any]  # in TOOL_CALL_FIELDS order; a list while its output may still be matched
Usage = tuple[int | None, int | None, int | None]  # (prompt, completion, total) tokens
NO_USAGE: Usage = (None, None, None)


# --- plain values --------------------------------------------------------------------------------


def json_text(value: Any) -> str:
    """Compact JSON text of a value that is not a string already (tool arguments, outputs)."""
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


def encoded_class_name(value: Any) -> str | None:
    """The short class name of an encoded value (``ChatCompletionChunk``), else None.

    Not :func:`notebook_recorder.core._types.type_name`, which gives a class's full
    ``<module>.<qualname>``: this reads the ``__type__`` of a value already encoded.
    """
    if type(value) is dict:
        name = value.get("__type__")
        if isinstance(name, str):
            return name.rsplit(".", 1)[-1]
    return None


def content_text(content: Any) -> str | None:
    """Text of a message content: a string, or the text parts of a list joined.

    An Anthropic ``tool_result`` block in the list adds the text of its own content.
    """
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
                text = part.get("text")
                if type(text) is str:
                    parts.append(text)
                elif part.get("type") == "tool_result":
                    inner = content_text(part.get("content"))
                    if inner:
                        parts.append(inner)
        return "".join(parts)
    if type(content) is dict:
        text = content.get("text")
        if type(text) is str:
            return text
        return json_text(content)
    return str(content)


def int_or_none(value: Any) -> int | None:
    return value if type(value) is int else None


def usage_of(usage: Any) -> Usage:
    """(prompt, completion, total) tokens from the usage object of OpenAI and most providers."""
    if type(usage) is not dict:
        return NO_USAGE
    prompt = usage.get("prompt_tokens")
    if prompt is None:
        prompt = usage.get("input_tokens")
        if prompt is None:
            prompt = usage.get("prompt_token_count")  # gemini
            if prompt is None:
                prompt = usage.get("total_input_tokens")  # gemini interactions
    completion = usage.get("completion_tokens")
    if completion is None:
        completion = usage.get("output_tokens")
        if completion is None:
            completion = usage.get("candidates_token_count")
            if completion is None:
                completion = usage.get("total_output_tokens")
    total = usage.get("total_tokens")
    if total is None:
        total = usage.get("total_token_count")
    prompt, completion, total = int_or_none(prompt), int_or_none(completion), int_or_none(total)
    if total is None and prompt is not None and completion is not None:
        total = prompt + completion
    return prompt, completion, total


def chunk_offsets(offsets: list[Any] | None, n: int, where: list[int] | None = None) -> list[float] | None:
    """Per-chunk arrival offsets from the ``chunk_offsets_ms`` extension, NaN where unusable."""
    if not offsets:
        return None
    n_offsets = len(offsets)
    out: list[float] = []
    for i in range(n) if where is None else where:
        value = offsets[i] if i < n_offsets else NAN
        out.append(float(value) if type(value) is float or type(value) is int else NAN)
    return out


# --- the call row --------------------------------------------------------------------------------

_CALL_TEMPLATE: dict[str, Any] = dict.fromkeys(CALL_FIELDS)
_CALL_TEMPLATE.update(is_streaming=False, n_chunks=0, n_tool_calls=0, n_messages=0, duration_ms=NAN)
Call = dict[str, Any]  # one call row being filled in, keys in CALL_FIELDS order


def new_call(key: str) -> Call:
    """An empty call row for the file of ``key``."""
    call = _CALL_TEMPLATE.copy()
    call["key"] = key
    return call


def set_usage(call: Call, usage: Usage) -> None:
    """Set the call's token counts, unless ``usage`` has none."""
    if usage[0] is not None or usage[1] is not None or usage[2] is not None:
        call["prompt_tokens"], call["completion_tokens"], call["total_tokens"] = usage


# --- tool calls ----------------------------------------------------------------------------------


class ToolSlot:
    """A tool call being assembled from stream deltas (or given whole)."""

    __slots__ = ("args", "args_obj", "call_id", "call_type", "name")

    def __init__(self) -> None:
        self.call_id: str | None = None
        self.name: str | None = None
        self.args: list[str] = []  # argument text, in pieces
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


Slots = dict[Any, ToolSlot]  # the response's tool calls, by their index (or another key)


def slot(slots: Slots, key: Any) -> ToolSlot:
    """The tool call at ``key``, created when new."""
    found = slots.get(key)
    if found is None:
        found = slots[key] = ToolSlot()
    return found


def tool_row(
    source: str,
    index: int,
    call_id: Any,
    name: Any,
    args: Any,
    call_type: Any,
    message_index: int | None = None,
    output: str | None = None,
    error: str | None = None,
) -> ToolRow:
    """One tool_calls row; ``args`` is the raw argument text or an object."""
    if type(args) is str:
        arguments: str | None = args
        parsed = parse_json_arguments(args)
    elif args is None:
        arguments, parsed = None, None
    else:
        arguments, parsed = json_text(args), args
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


def slot_rows(slots: Slots) -> list[ToolRow]:
    """The response's tool calls as rows, in the order they appeared."""
    rows = []
    for i, s in enumerate(slots.values()):
        args: Any = "".join(s.args) if s.args or s.args_obj is None else s.args_obj
        rows.append(tool_row("response", i, s.call_id, s.name, args, s.call_type or "function"))
    return rows


def match_outputs(tools: list[ToolRow], outputs: dict[str, str]) -> None:
    """Give request tool calls the output of the message that answers them, by call id."""
    if outputs:
        for row in tools:
            if row[2] is not None and row[6] is None:
                row[6] = outputs.get(row[2])


# --- streams -------------------------------------------------------------------------------------

ChunkInfo = tuple[str, Any, Any, bool]  # (text delta, role, finish_reason, carries a tool call)
NOTHING: ChunkInfo = ("", None, None, False)


class StreamState:
    """What a stream's chunks accumulate besides their text: usage, tool calls, the final object."""

    __slots__ = ("call", "final_response", "seen_text_delta", "slots", "usage")

    def __init__(self, call: Call, slots: Slots) -> None:
        self.call = call
        self.slots = slots
        self.usage: Usage = NO_USAGE
        self.seen_text_delta = False  # Responses API: deltas seen, the final output is not re-added
        self.final_response: dict[str, Any] | None = None


#: Reads one typed stream event (a dict with a ``type``) into the state; see ``_shapes``.
EventReader = Callable[[dict[str, Any], StreamState], ChunkInfo]


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
        carries_tool = [False] * n
        for i in self.tool_deltas:
            carries_tool[i] = True
        offsets = self.offsets if self.offsets is not None else [NAN] * n
        rows = []
        cum = 0
        for i, delta in enumerate(self.deltas):
            cum += len(delta)
            rows.append((i, delta, self.roles[i], self.finish_reasons[i], carries_tool[i], offsets[i], cum))
        return rows


def stream_of(
    deltas: list[Any], roles: list[Any], finish: list[Any], tool_deltas: list[int], offsets: list[float] | None
) -> Stream:
    """A :class:`Stream` from its columns; a delta given as a list of content parts is joined."""
    try:
        text = "".join(deltas)
    except TypeError:
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
