"""Anthropic Messages (``/v1/messages``): a ``Message``, its raw stream events, the request's
``system`` and content blocks, and ``count_tokens``.

The frames get the same columns as for OpenAI:

- text: the ``text`` blocks (``text_delta`` events when streamed); thinking is left out, as
  Gemini's thoughts are;
- tool calls: ``tool_use`` blocks (``server_tool_use`` too), their ``input`` assembled from
  ``input_json_delta`` events when streamed; ``call_type`` is the block's type;
- request messages: one row per message, after a ``system`` row when the request has one; a
  message's ``content`` is the text of its text and ``tool_result`` blocks, one line each. A
  user message of ``tool_result`` blocks has ``item_type`` ``tool_result`` and answers the call
  named in ``tool_call_id`` (the first, when it holds several); each result gives its call
  (in ``tool_calls``) its ``output``, and ``error`` when ``is_error``;
- ``finish_reason`` is the ``stop_reason`` as Anthropic says it (``end_turn``, ``tool_use``,
  ``max_tokens``...);
- ``prompt_tokens`` counts every input token, cache reads and writes included
  (``input_tokens + cache_creation_input_tokens + cache_read_input_tokens``), as OpenAI's
  ``prompt_tokens`` does; ``completion_tokens`` is ``output_tokens``.

Raw HTTP recordings (llama-stack's, SSE lines) and the SDK's objects (``__type__`` from
``anthropic.types``) read the same, since the shape is what counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._rows import NO_USAGE, content_text, int_or_none, json_text, match_outputs, set_usage, slot, tool_row

if TYPE_CHECKING:
    from .._rows import Call, ChunkInfo, MessageRow, Slots, StreamState, ToolRow, Usage


def usage_of(usage: Any) -> Usage:
    """(prompt, completion, total) tokens of a ``Usage``, cached input tokens counted in the prompt."""
    if type(usage) is not dict:
        return NO_USAGE
    prompt = int_or_none(usage.get("input_tokens"))
    if prompt is not None:
        for cached in ("cache_creation_input_tokens", "cache_read_input_tokens"):
            n = usage.get(cached)
            if type(n) is int:
                prompt += n
    completion = int_or_none(usage.get("output_tokens"))
    return prompt, completion, prompt + completion if prompt is not None and completion is not None else None


def _is_tool_use(block_type: Any) -> bool:
    return type(block_type) is str and block_type.endswith("tool_use")  # tool_use, server_tool_use


# --- a whole response ----------------------------------------------------------------------------


def is_response(body: dict[str, Any]) -> bool:
    return body.get("type") == "message" and type(body.get("content")) is list


def read_response(body: dict[str, Any], call: Call, slots: Slots) -> None:
    """Text, tool calls, stop_reason and usage of a ``Message``."""
    texts = []
    for i, block in enumerate(body["content"]):
        if type(block) is not dict:
            continue
        block_type = block.get("type")
        if block_type == "text" and type(block.get("text")) is str:
            texts.append(block["text"])
        elif _is_tool_use(block_type):
            slot(slots, i).add(block.get("id"), block.get("name"), block.get("input"), block_type)
    call["text"] = "".join(texts)
    call["finish_reason"] = body.get("stop_reason")
    set_usage(call, usage_of(body.get("usage")))


def is_token_count(body: dict[str, Any]) -> bool:
    """``messages.count_tokens``'s answer: ``{"input_tokens": N}``."""
    return body.keys() == {"input_tokens"}


def read_token_count(body: dict[str, Any], call: Call, slots: Slots) -> None:
    set_usage(call, usage_of(body))


# --- stream events -------------------------------------------------------------------------------


def message_start(event: dict[str, Any], state: StreamState) -> ChunkInfo:
    message = event.get("message")
    if type(message) is not dict:
        return "", None, None, False
    if message.get("model"):
        state.call["response_model"] = message["model"]
    prompt = usage_of(message.get("usage"))[0]  # output_tokens comes with message_delta
    if prompt is not None:
        state.usage = (prompt, state.usage[1], None)
    return "", message.get("role"), None, False


def block_start(event: dict[str, Any], state: StreamState) -> ChunkInfo:
    block = event.get("content_block")
    if type(block) is not dict:
        return "", None, None, False
    block_type = block.get("type")
    if block_type == "text":
        text = block.get("text")
        return (text if type(text) is str else ""), None, None, False
    if _is_tool_use(block_type):
        args = block.get("input")  # {} here; the arguments come as input_json_delta events
        slot(state.slots, event.get("index")).add(
            block.get("id"), block.get("name"), args if type(args) is dict else None, block_type
        )
        return "", None, None, True
    return "", None, None, False


def block_delta(event: dict[str, Any], state: StreamState) -> ChunkInfo:
    delta = event.get("delta")
    if type(delta) is dict:
        delta_type = delta.get("type")
        if delta_type == "text_delta" and type(delta.get("text")) is str:
            return delta["text"], None, None, False
        if delta_type == "input_json_delta":
            slot(state.slots, event.get("index")).add(None, None, delta.get("partial_json"))
            return "", None, None, True
    return "", None, None, False  # thinking, signature and citations deltas add no text


def message_delta(event: dict[str, Any], state: StreamState) -> ChunkInfo:
    delta = event.get("delta")
    stop_reason = delta.get("stop_reason") if type(delta) is dict else None
    prompt, completion, _ = usage_of(event.get("usage"))  # output_tokens: the total so far
    if prompt is None:
        prompt = state.usage[0]
    if completion is not None:
        state.usage = (prompt, completion, prompt + completion if prompt is not None else None)
    return "", None, stop_reason or None, False


# --- the request ---------------------------------------------------------------------------------


def is_request(body: dict[str, Any], endpoint: str) -> bool:
    """A ``messages`` request with Anthropic's marks: its endpoint, a ``system``, or its tools
    (``input_schema``, or a server tool's ``type``, where OpenAI's have a ``function``)."""
    if type(body.get("messages")) is not list:
        return False
    if "/v1/messages" in endpoint or "system" in body:
        return True
    tools = body.get("tools")
    if type(tools) is not list or not tools or type(tools[0]) is not dict:
        return False
    return "input_schema" in tools[0] or ("function" not in tools[0] and "custom" not in tools[0])


def read_request(body: dict[str, Any], messages: list[MessageRow], tools: list[ToolRow]) -> None:
    """A ``system`` row, then one row per message; a tool_calls row per ``tool_use`` block."""
    outputs: dict[str, str] = {}  # tool_result text by the tool_use id it answers
    errors: dict[str, str] = {}  # the same, for results marked is_error
    text: str | None
    system = body.get("system")
    if system is not None:
        if type(system) is list:  # text blocks, one line each
            text = "\n".join(b["text"] for b in system if type(b) is dict and type(b.get("text")) is str)
        else:
            text = content_text(system)
        messages.append((len(messages), "system", text, None, 0, None, "system"))
    for message in body["messages"]:
        index = len(messages)
        if type(message) is not dict:
            messages.append((index, None, content_text(message), None, 0, None, "message"))
            continue
        content = message.get("content")
        n_calls = 0
        answered = None
        item_type = "message"
        texts: list[str] = []  # of the text and tool_result blocks, one line each
        for block in content if type(content) is list else ():
            if type(block) is str:
                texts.append(block)
                continue
            if type(block) is not dict:
                continue
            block_type = block.get("type")
            if type(block.get("text")) is str:
                texts.append(block["text"])
            elif _is_tool_use(block_type):
                tools.append(
                    tool_row(
                        "request", n_calls, block.get("id"), block.get("name"), block.get("input"), block_type, index
                    )
                )
                n_calls += 1
            elif type(block_type) is str and block_type.endswith("tool_result"):
                if block_type == "tool_result":
                    item_type = block_type
                result = block.get("content")
                output = content_text(result) if result is None or type(result) in (str, list) else json_text(result)
                if output:
                    texts.append(output)
                call_id = block.get("tool_use_id")
                if call_id:
                    outputs[str(call_id)] = output or ""
                    if block.get("is_error"):
                        errors[str(call_id)] = output or "error"
                    answered = answered or call_id
        text = "\n".join(texts) if type(content) is list else content_text(content)
        messages.append(
            (index, message.get("role"), text, str(answered) if answered else None, n_calls, None, item_type)
        )
    match_outputs(tools, outputs)
    for row in tools:
        if row[2] in errors:
            row[9] = errors[row[2]]
