"""One reader per provider shape, and the tables that pick one for a body, a chunk or a request.

A recording is read by the shape of its data, not by its endpoint or its ``__type__``:
llama-stack's files sometimes store chat chunks under ``/v1/completions``, and a ``__type__`` may
not be importable. Each module reads one family:

- :mod:`.openai_chat`: chat completions and text completions (Ollama's chat messages too)
- :mod:`.openai_responses`: the Responses API
- :mod:`.anthropic`: Anthropic Messages
- :mod:`.gemini`: Gemini ``generate_content`` and interactions
- :mod:`.ollama`: Ollama's ``/api/chat``, ``/api/generate`` and token counts
- :mod:`.cohere`: Cohere's v2 chat and its typed stream events
- :mod:`.other`: embeddings' usage, HTTP error bodies and stream error events
- :mod:`.tool_invocations`: tool recordings

A response reader is ``(body, call, slots) -> None``; a request reader is
``(body, messages, tools) -> None``; a chunk or event reader is ``(chunk, state) -> ChunkInfo``.
Each table is tried in order; the first shape that matches reads the data, and anything unknown
degrades to empty values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._rows import NOTHING, Call, ChunkInfo, EventReader, MessageRow, Slots, StreamState, ToolRow
from . import anthropic, cohere, gemini, ollama, openai_chat, openai_responses, other

ResponseReader = Callable[[dict[str, Any], Call, Slots], None]
RequestReader = Callable[[dict[str, Any], list[MessageRow], list[ToolRow]], None]

#: Whole (non-streamed) response bodies, by shape, in the order they are tried.
RESPONSE_READERS: tuple[tuple[Callable[[dict[str, Any]], bool], ResponseReader], ...] = (
    (openai_chat.is_response, openai_chat.read_response),
    (openai_responses.is_response, openai_responses.read_response),
    (gemini.is_response, gemini.read_response),
    (cohere.is_response, cohere.read_response),
    (ollama.is_chat_response, ollama.read_chat_response),
    (ollama.is_generate_response, ollama.read_generate_response),
    (anthropic.is_response, anthropic.read_response),
    (anthropic.is_token_count, anthropic.read_token_count),
    (ollama.has_usage, ollama.read_usage),
    (other.has_usage, other.read_usage),  # embeddings
    (other.is_error, other.read_error),
)

#: Request bodies, by shape (the endpoint helps tell an embeddings ``input`` from a Responses one).
REQUEST_READERS: tuple[tuple[Callable[[dict[str, Any], str], bool], RequestReader], ...] = (
    (anthropic.is_request, anthropic.read_request),
    (openai_chat.is_request, openai_chat.read_request),
    (gemini.is_request, gemini.read_request),
    (openai_responses.is_request, openai_responses.read_request),  # Gemini interactions too
)

#: Typed stream events (with a ``type``, or Gemini's ``event_type``), by that type. Other events
#: (``content_block_stop``, ``ping``, most ``response.*`` events...) add nothing to the frames.
EVENT_READERS: dict[str, EventReader] = {
    # the OpenAI Responses API
    "response.output_text.delta": openai_responses.text_delta,
    "response.function_call_arguments.delta": openai_responses.arguments_delta,
    "response.function_call_arguments.done": openai_responses.arguments_done,
    "response.output_item.added": openai_responses.output_item,
    "response.output_item.done": openai_responses.output_item,
    "response.created": openai_responses.response_state,
    "response.in_progress": openai_responses.response_state,
    "response.completed": openai_responses.response_state,
    "response.incomplete": openai_responses.response_state,
    "response.failed": openai_responses.response_state,
    # Anthropic Messages (RawMessageStreamEvent)
    "message_start": anthropic.message_start,
    "content_block_start": anthropic.block_start,
    "content_block_delta": anthropic.block_delta,
    "message_delta": anthropic.message_delta,
    # Gemini interactions
    "content.delta": gemini.content_delta,
    "interaction.complete": gemini.interaction_complete,
    # Cohere v2 chat
    "message-start": cohere.message_start,
    "content-delta": cohere.content_delta,
    "tool-call-start": cohere.tool_call_start,
    "tool-call-delta": cohere.tool_call_delta,
    "message-end": cohere.message_end,
    # any stream that ends in an error event
    "error": other.read_error_event,
}


def read_response(body: dict[str, Any], call: Call, slots: Slots) -> None:
    """Fill the call from a whole response body of any known shape."""
    for matches, read in RESPONSE_READERS:
        if matches(body):
            read(body, call, slots)
            return


def read_request(body: dict[str, Any], endpoint: str, messages: list[MessageRow], tools: list[ToolRow]) -> None:
    """Message rows and request-side tool call rows of a request body of any known shape."""
    for matches, read in REQUEST_READERS:
        if matches(body, endpoint):
            read(body, messages, tools)
            return


def read_chunk(chunk: Any, state: StreamState) -> ChunkInfo:
    """(delta, role, finish_reason, carries a tool call) of one stream chunk or event of any shape.

    Chunks without a type are told by their keys (``choices``, Ollama's ``done``, Gemini's
    ``candidates``); events by their type, through :data:`EVENT_READERS`.
    """
    if type(chunk) is str:  # an SSE data line that is not JSON
        return chunk, None, None, False
    if type(chunk) is not dict:
        return NOTHING
    if chunk.get("choices") is not None:
        return openai_chat.read_chunk(chunk, state)
    if "done" in chunk and ("message" in chunk or "response" in chunk):
        return ollama.read_chunk(chunk, state)
    if "candidates" in chunk:
        return gemini.read_chunk(chunk, state)
    event_type = chunk.get("type") or chunk.get("event_type")
    reader = EVENT_READERS.get(event_type) if type(event_type) is str else None
    return NOTHING if reader is None else reader(chunk, state)
