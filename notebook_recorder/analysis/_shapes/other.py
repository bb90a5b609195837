"""Answers that carry no text: embeddings (their ``usage``), HTTP error bodies, and ``error``
events in any stream. Model lists need nothing beyond the call's kind and ``response_type``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._rows import set_usage, usage_of

if TYPE_CHECKING:
    from .._rows import Call, ChunkInfo, Slots, StreamState


def has_usage(body: dict[str, Any]) -> bool:
    return "usage" in body


def read_usage(body: dict[str, Any], call: Call, slots: Slots) -> None:
    set_usage(call, usage_of(body["usage"]))


def is_error(body: dict[str, Any]) -> bool:
    return body.get("error") is not None


def read_error(body: dict[str, Any], call: Call, slots: Slots) -> None:
    """An HTTP error body: ``{"error": {"type": ..., "message": ...}}`` or ``{"error": "..."}``."""
    error = body["error"]
    if type(error) is dict:
        call["exception_type"] = error.get("type") or error.get("status") or error.get("code")
        call["exception_message"] = error.get("message")
    else:
        call["exception_message"] = str(error)


def read_error_event(event: dict[str, Any], state: StreamState) -> ChunkInfo:
    """An ``error`` event that ended a stream (Anthropic's ``error`` object, or the Responses
    API's ``code`` and ``message``): the call's exception columns say what it was."""
    error = event.get("error")
    if type(error) is dict:
        read_error(event, state.call, state.slots)
    else:
        code, message = event.get("code"), event.get("message")
        state.call["exception_type"] = code if type(code) is str else None
        state.call["exception_message"] = message if type(message) is str else None
    return "", None, None, False
