"""Ollama's native API: ``/api/chat`` and ``/api/generate`` (whole or streamed), and the token
counts of ``/api/embeddings`` and the like. Requests to ``/api/chat`` are chat messages
(``openai_chat.read_request``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._rows import content_text, int_or_none, set_usage
from .openai_chat import merge_tool_calls, read_delta

if TYPE_CHECKING:
    from .._rows import Call, ChunkInfo, Slots, StreamState, Usage


def usage_of(body: dict[str, Any]) -> Usage:
    """(prompt, completion, total) tokens from ``prompt_eval_count`` and ``eval_count``."""
    prompt, completion = int_or_none(body.get("prompt_eval_count")), int_or_none(body.get("eval_count"))
    if prompt is not None and completion is not None:
        return prompt, completion, prompt + completion
    return prompt, completion, prompt if completion is None else None


# --- whole responses -----------------------------------------------------------------------------


def is_chat_response(body: dict[str, Any]) -> bool:
    return type(body.get("message")) is dict and ("done" in body or "created_at" in body)


def read_chat_response(body: dict[str, Any], call: Call, slots: Slots) -> None:
    message = body["message"]
    call["text"] = content_text(message.get("content"))
    merge_tool_calls(slots, message.get("tool_calls"))
    call["finish_reason"] = body.get("done_reason")
    set_usage(call, usage_of(body))


def is_generate_response(body: dict[str, Any]) -> bool:
    return type(body.get("response")) is str and "done" in body


def read_generate_response(body: dict[str, Any], call: Call, slots: Slots) -> None:
    call["text"] = body["response"]
    call["finish_reason"] = body.get("done_reason")
    set_usage(call, usage_of(body))


def has_usage(body: dict[str, Any]) -> bool:
    """Embeddings and other answers that carry only token counts."""
    return "prompt_eval_count" in body or "eval_count" in body


def read_usage(body: dict[str, Any], call: Call, slots: Slots) -> None:
    set_usage(call, usage_of(body))


# --- stream chunks -------------------------------------------------------------------------------


def read_chunk(chunk: dict[str, Any], state: StreamState) -> ChunkInfo:
    """(delta, role, finish_reason, carries a tool call) of an ``/api/chat`` or ``/api/generate`` chunk."""
    text = ""
    role = finish_reason = None
    carries_tool = False
    message = chunk.get("message")
    if type(message) is dict:  # /api/chat: whole tool calls, one slot each
        text, role, carries_tool = read_delta(message, state)
    else:
        content = chunk.get("response")
        if content and type(content) is str:
            text = content
    if chunk.get("done"):
        finish_reason = chunk.get("done_reason")
        state.usage = usage_of(chunk)
    if state.call["response_model"] is None:
        state.call["response_model"] = chunk.get("model")
    return text, role, finish_reason, carries_tool
