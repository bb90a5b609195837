"""Cohere's v2 chat: whole responses (``message.content`` parts, ``finish_reason``, ``usage``
with ``tokens`` and ``billed_units``) and its typed stream events (``content-delta``,
``tool-call-start``, ``tool-call-delta``, ``message-end``). Requests are chat messages
(``openai_chat.read_request``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._rows import NOTHING, content_text, int_or_none, set_usage, slot

if TYPE_CHECKING:
    from .._rows import Call, ChunkInfo, Slots, StreamState, Usage


def usage_of(usage: Any) -> Usage:
    """(prompt, completion, total) from ``usage.tokens`` (else ``usage.billed_units``)."""
    if type(usage) is not dict:
        return None, None, None
    counts = usage.get("tokens") if type(usage.get("tokens")) is dict else usage.get("billed_units")
    if type(counts) is not dict:
        return None, None, None
    prompt, completion = int_or_none(counts.get("input_tokens")), int_or_none(counts.get("output_tokens"))
    total = prompt + completion if prompt is not None and completion is not None else None
    return prompt, completion, total


def _tool_calls(slots: Slots, calls: Any) -> None:
    for i, call in enumerate(calls if type(calls) is list else ()):
        if type(call) is dict:
            function: dict[str, Any] = call["function"] if type(call.get("function")) is dict else {}
            slot(slots, len(slots) + i if call.get("id") is None else call["id"]).add(
                call.get("id"), function.get("name"), function.get("arguments"), call.get("type") or "function"
            )


def is_response(body: dict[str, Any]) -> bool:
    message = body.get("message")
    return type(message) is dict and "finish_reason" in body and "choices" not in body and "done" not in body


def read_response(body: dict[str, Any], call: Call, slots: Slots) -> None:
    message = body["message"]
    call["text"] = content_text(message.get("content"))
    _tool_calls(slots, message.get("tool_calls"))
    call["finish_reason"] = body.get("finish_reason")
    set_usage(call, usage_of(body.get("usage")))


def _delta_message(event: dict[str, Any]) -> dict[str, Any]:
    delta = event.get("delta")
    message = delta.get("message") if type(delta) is dict else None
    return message if type(message) is dict else {}


def message_start(event: dict[str, Any], state: StreamState) -> ChunkInfo:
    return "", _delta_message(event).get("role"), None, False


def content_delta(event: dict[str, Any], state: StreamState) -> ChunkInfo:
    content = _delta_message(event).get("content")
    text = content.get("text") if type(content) is dict else None
    return (text, None, None, False) if type(text) is str else NOTHING


def tool_call_start(event: dict[str, Any], state: StreamState) -> ChunkInfo:
    call = _delta_message(event).get("tool_calls")
    if type(call) is dict:
        function: dict[str, Any] = call["function"] if type(call.get("function")) is dict else {}
        slot(state.slots, event.get("index")).add(
            call.get("id"), function.get("name"), function.get("arguments"), call.get("type") or "function"
        )
        return "", None, None, True
    return NOTHING


def tool_call_delta(event: dict[str, Any], state: StreamState) -> ChunkInfo:
    call = _delta_message(event).get("tool_calls")
    function = call.get("function") if type(call) is dict else None
    if type(function) is dict:
        slot(state.slots, event.get("index")).add(None, None, function.get("arguments"), None)
        return "", None, None, True
    return NOTHING


def message_end(event: dict[str, Any], state: StreamState) -> ChunkInfo:
    delta = event.get("delta")
    if type(delta) is not dict:
        return NOTHING
    state.usage = usage_of(delta.get("usage"))
    return "", None, delta.get("finish_reason"), False
