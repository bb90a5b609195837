"""Google Gemini: ``generate_content`` (raw dicts without ``__type__``: ``candidates`` answers,
``contents`` requests; the SDK's snake_case names, or the wire's camelCase in HTTP-level
recordings) and the stream events of the interactions API, whose requests have an
``input`` read as the Responses API's (``openai_responses.read_request``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._rows import json_text, match_outputs, set_usage, slot, tool_row, usage_of

if TYPE_CHECKING:
    from .._rows import Call, ChunkInfo, MessageRow, Slots, StreamState, ToolRow


def _first_candidate(body: dict[str, Any], slots: Slots) -> tuple[str, Any, bool]:
    """(text, finish_reason, has a tool call) of the first candidate of a response or chunk."""
    candidates = body.get("candidates")
    if type(candidates) is not list or not candidates or type(candidates[0]) is not dict:
        return "", None, False
    candidate = candidates[0]
    texts: list[str] = []
    has_tool = False
    content = candidate.get("content")
    if type(content) is dict and type(content.get("parts")) is list:
        for part in content["parts"]:
            if type(part) is not dict:
                continue
            text = part.get("text")
            if type(text) is str and not part.get("thought"):
                texts.append(text)
            function_call = part.get("function_call") or part.get("functionCall")
            if type(function_call) is dict:
                has_tool = True
                slot(slots, len(slots)).add(
                    function_call.get("id"), function_call.get("name"), function_call.get("args"), "function"
                )
    return "".join(texts), candidate.get("finish_reason") or candidate.get("finishReason"), has_tool


def is_response(body: dict[str, Any]) -> bool:
    return "candidates" in body


def _usage_metadata(body: dict[str, Any]) -> Any:
    """``usage_metadata`` (the SDK's names), or the wire's ``usageMetadata`` in snake_case."""
    usage = body.get("usage_metadata")
    if usage is None and type(body.get("usageMetadata")) is dict:
        usage = {_snake(k): v for k, v in body["usageMetadata"].items()}
    return usage


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def read_response(body: dict[str, Any], call: Call, slots: Slots) -> None:
    call["text"], call["finish_reason"], _ = _first_candidate(body, slots)
    set_usage(call, usage_of(_usage_metadata(body)))


def read_chunk(chunk: dict[str, Any], state: StreamState) -> ChunkInfo:
    text, finish_reason, has_tool = _first_candidate(chunk, state.slots)
    usage = _usage_metadata(chunk)
    if usage:
        state.usage = usage_of(usage)
    if state.call["response_model"] is None:
        state.call["response_model"] = chunk.get("model_version") or chunk.get("modelVersion")
    return text, None, finish_reason, has_tool


# --- interactions stream events ------------------------------------------------------------------


def content_delta(event: dict[str, Any], state: StreamState) -> ChunkInfo:
    delta = event.get("delta")
    if type(delta) is dict:
        if delta.get("type") == "text" and type(delta.get("text")) is str:
            return delta["text"], None, None, False
        if delta.get("type") == "function_call":
            slot(state.slots, event.get("index")).add(
                delta.get("id"), delta.get("name"), delta.get("arguments"), "function"
            )
            return "", None, None, True
    return "", None, None, False


def interaction_complete(event: dict[str, Any], state: StreamState) -> ChunkInfo:
    interaction = event.get("interaction")
    if type(interaction) is dict:
        state.usage = usage_of(interaction.get("usage"))
        return "", None, interaction.get("status"), False
    return "", None, None, False


# --- the request ---------------------------------------------------------------------------------


def is_request(body: dict[str, Any], endpoint: str) -> bool:
    return type(body.get("contents")) is list


def read_request(body: dict[str, Any], messages: list[MessageRow], tools: list[ToolRow]) -> None:
    """One row per content; function calls and responses matched by id, else by name."""
    outputs: dict[str, str] = {}
    for content in body["contents"]:
        index = len(messages)
        if type(content) is not dict:
            continue
        texts: list[str] = []
        n_calls = 0
        answered = None
        parts = content.get("parts")
        for part in parts if type(parts) is list else ():
            if type(part) is not dict:
                continue
            text = part.get("text")
            if type(text) is str:
                texts.append(text)
            function_call = part.get("function_call") or part.get("functionCall")
            if type(function_call) is dict:
                tools.append(
                    tool_row(
                        "request",
                        n_calls,
                        function_call.get("id"),
                        function_call.get("name"),
                        function_call.get("args"),
                        "function",
                        index,
                    )
                )
                n_calls += 1
            function_response = part.get("function_response") or part.get("functionResponse")
            if type(function_response) is dict:
                output = json_text(function_response.get("response"))
                texts.append(output)
                answered = function_response.get("id")
                outputs[str(answered) if answered else _by_name(function_response.get("name"))] = output
        messages.append((index, content.get("role"), "".join(texts), answered, n_calls, None, "content"))
    for row in tools:  # calls without ids are matched by name
        if row[2] is None and row[3] is not None:
            found = outputs.get(_by_name(row[3]))
            if found is not None:
                row[6] = found
    match_outputs(tools, outputs)


def _by_name(name: Any) -> str:
    return "\x00name:" + str(name)
