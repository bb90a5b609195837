"""A streamed response body, read in one pass: its chunks column-wise, and the call's totals.

The body is a list of encoded chunks (``{"__type__", "__data__"}``), raw dicts, or, in raw HTTP
recordings, SSE lines. Each chunk is read by the reader of its shape (``_shapes.read_chunk``);
the common chunk, an OpenAI chat chunk with one choice, is read inline here, because it is most
of any corpus.
"""

from __future__ import annotations

import operator
from typing import Any

import orjson

from . import _shapes
from ._rows import Call, Slots, Stream, StreamState, chunk_offsets, encoded_class_name, set_usage, stream_of, usage_of
from ._shapes import openai_chat, openai_responses


def sse_events(lines: list[Any]) -> tuple[list[Any], list[int]]:
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


def _is_sse_event(chunk: Any) -> bool:
    """An HTTP-level recording's SSE event: ``{"event": NAME, "data": ...}`` (FORMAT.md)."""
    return type(chunk) is dict and "data" in chunk and "event" in chunk and len(chunk) <= 3


def _event_datas(events: list[Any]) -> list[Any]:
    """The data of HTTP-level SSE events, typed by their event name when the data says nothing."""
    datas: list[Any] = []
    for event in events:
        if not _is_sse_event(event):
            datas.append(event)
            continue
        data, name = event["data"], event.get("event")
        if data == "[DONE]":
            data = {"__sse_done__": True}
        elif type(name) is str and type(data) is dict and "type" not in data and "event_type" not in data:
            data = {**data, "type": name}
        datas.append(data)
    return datas


_get_data = operator.itemgetter("__data__")


def _datas(chunks: list[Any]) -> list[Any]:
    """The chunks' raw data, without their ``__type__`` envelopes."""
    first = chunks[0] if chunks else None
    if not (type(first) is dict and "__type__" in first):
        return chunks
    try:
        return list(map(_get_data, chunks))
    except (KeyError, TypeError):
        return [c["__data__"] if type(c) is dict and "__type__" in c else c for c in chunks]


def read_stream(chunks: list[Any], offsets: list[Any] | None, call: Call, slots: Slots, one_choice: bool) -> Stream:
    """The chunks column-wise; the call gets its text, finish_reason, usage and n_chunks.

    ``one_choice`` is False when the request asked for several choices, whose chunks
    interleave: then every chunk goes through the choice-aware reader.
    """
    call["response_type"] = encoded_class_name(chunks[0]) if chunks else None
    where: list[int] | None = None
    if chunks and type(chunks[0]) is str:
        chunks, where = sse_events(chunks)
    elif chunks and _is_sse_event(chunks[0]):
        chunks = _event_datas(chunks)
    state = StreamState(call, slots)
    deltas: list[str] = []
    roles: list[Any] = []
    finish: list[Any] = []
    tool_deltas: list[int] = []
    add_delta, add_role, add_finish = deltas.append, roles.append, finish.append
    datas = _datas(chunks)
    if one_choice and datas and type(datas[0]) is dict and "choices" in datas[0]:
        for i, data in enumerate(datas):
            try:
                # the common case, inlined: an OpenAI chat (or completion) chunk with one choice
                choice = data["choices"][0]
                delta = choice.get("delta")
                if delta is not None:
                    text = delta.get("content")
                    role = delta.get("role")
                    tool_calls = delta.get("tool_calls")
                else:  # a completion chunk
                    text = choice["text"]
                    role = tool_calls = None
                finish_reason = choice.get("finish_reason")
            except (LookupError, TypeError, AttributeError):
                text, role, finish_reason, carries_tool = _shapes.read_chunk(data, state)
                tool_calls = None
                if carries_tool:
                    tool_deltas.append(i)
            if tool_calls:
                tool_deltas.append(i)
                openai_chat.merge_tool_calls(slots, tool_calls)
            add_delta(text or "")  # content given as parts is joined by stream_of
            add_role(role)
            add_finish(finish_reason)
        if state.usage == (None, None, None):  # the final usage is in one of the last chunks
            for data in reversed(datas[-3:]):
                usage = data.get("usage") if type(data) is dict else None
                if usage:
                    state.usage = usage_of(usage)
                    break
    else:
        read_chunk = _shapes.read_chunk
        for i, data in enumerate(datas):
            text, role, finish_reason, carries_tool = read_chunk(data, state)
            if carries_tool:
                tool_deltas.append(i)
            add_delta(text)
            add_role(role)
            add_finish(finish_reason)
    last_finish = None
    for finish_reason in reversed(finish):
        if finish_reason is not None:
            last_finish = finish_reason
            break
    if not call["response_model"]:
        for data in datas:
            if type(data) is dict and data.get("model") and type(data["model"]) is str:
                call["response_model"] = data["model"]
                break
    if last_finish == "function_call":
        openai_chat.read_function_call_deltas(chunks, slots, tool_deltas)
    call["n_chunks"] = len(chunks)
    set_usage(call, state.usage)
    call["finish_reason"] = last_finish
    tokens = stream_of(deltas, roles, finish, tool_deltas, chunk_offsets(offsets, len(chunks), where))
    call["text"] = openai_responses.finish_stream(state, tokens.text)
    return tokens
