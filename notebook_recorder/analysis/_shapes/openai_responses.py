"""The OpenAI Responses API (``openai.types.responses.*``): a final ``Response``, its stream
events, and the ``input`` items of a request."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._rows import content_text, json_text, match_outputs, set_usage, slot, tool_row, usage_of

if TYPE_CHECKING:
    from .._rows import Call, ChunkInfo, MessageRow, Slots, StreamState, ToolRow


def item_tool_call(item: dict[str, Any]) -> tuple[Any, Any, Any, str] | None:
    """(call_id, name, arguments, type) of an output or input item that is a tool call, else None."""
    item_type = item.get("type")
    if item_type == "function_call" or item_type == "custom_tool_call":
        args = item.get("arguments")
        if args is None:
            args = item.get("input")
        return item.get("call_id") or item.get("id"), item.get("name"), args, item_type
    if isinstance(item_type, str) and item_type.endswith("_call") and not item_type.endswith("_output"):
        if "arguments" in item:
            args = item.get("arguments")
        elif "action" in item:
            args = item.get("action")
        elif "queries" in item:
            args = {"queries": item.get("queries")}
        else:
            args = None
        name = item.get("name") or item_type[: -len("_call")]
        return item.get("call_id") or item.get("id"), name, args, item_type
    return None


# --- a whole response ----------------------------------------------------------------------------


def is_response(body: dict[str, Any]) -> bool:
    return type(body.get("output")) is list and (body.get("object") == "response" or "status" in body)


def read_response(body: dict[str, Any], call: Call, slots: Slots) -> None:
    call["text"] = response_output(body, call, slots)


def response_output(response: dict[str, Any], call: Call, slots: Slots) -> str | None:
    """The text of a final ``Response``; its tool calls, status and usage go to the call."""
    texts: list[str] = []
    output = response.get("output")
    if type(output) is list:
        for i, item in enumerate(output):
            if type(item) is not dict:
                continue
            if item.get("type") == "message":
                content = item.get("content")
                if type(content) is list:
                    for part in content:
                        if type(part) is dict and part.get("type") == "output_text":
                            text = part.get("text")
                            if type(text) is str:
                                texts.append(text)
            else:
                tool_call = item_tool_call(item)
                if tool_call is not None:
                    slot(slots, ("output", i)).add(*tool_call)
    status = response.get("status")
    incomplete = response.get("incomplete_details")
    if type(incomplete) is dict and incomplete.get("reason"):
        status = f"{status}: {incomplete['reason']}" if status else incomplete["reason"]
    if status:
        call["finish_reason"] = status
    if response.get("model"):
        call["response_model"] = response["model"]
    set_usage(call, usage_of(response.get("usage")))
    return "".join(texts) if texts or output is not None else None


# --- stream events -------------------------------------------------------------------------------


def text_delta(event: dict[str, Any], state: StreamState) -> ChunkInfo:
    text = event.get("delta")
    if type(text) is str:
        state.seen_text_delta = True
        return text, None, None, False
    return "", None, None, False


def arguments_delta(event: dict[str, Any], state: StreamState) -> ChunkInfo:
    slot(state.slots, ("output", event.get("output_index"))).add(None, None, event.get("delta"))
    return "", None, None, True


def arguments_done(event: dict[str, Any], state: StreamState) -> ChunkInfo:
    target = slot(state.slots, ("output", event.get("output_index")))
    if type(event.get("arguments")) is str:
        target.args = [event["arguments"]]
    return "", None, None, False


def output_item(event: dict[str, Any], state: StreamState) -> ChunkInfo:
    item = event.get("item")
    role = None
    carries_tool = False
    if type(item) is dict:
        if item.get("type") == "message" and item.get("role"):
            role = item["role"]
        tool_call = item_tool_call(item)
        if tool_call is not None:
            carries_tool = True
            target = slot(state.slots, ("output", event.get("output_index")))
            call_id, name, args, call_type = tool_call
            if event.get("type") == "response.output_item.done" and type(args) is str:
                target.args = []  # the done item carries the full arguments
            if name and target.name:
                name = None  # already known from the added item
            target.add(call_id, name, args, call_type)
    return "", role, None, carries_tool


def response_state(event: dict[str, Any], state: StreamState) -> ChunkInfo:
    """``response.created`` ... ``response.completed``: the response so far, or the final one."""
    response = event.get("response")
    finish_reason = None
    if type(response) is dict:
        if response.get("model"):
            state.call["response_model"] = response["model"]
        if event.get("type") not in ("response.created", "response.in_progress"):
            state.final_response = response
            finish_reason = response.get("status")
    return "", None, finish_reason, False


def finish_stream(state: StreamState, text: str) -> str:
    """The stream's text, completed from its final ``Response`` (tool calls too) when needed."""
    if state.final_response is None:
        return text
    fallback: Slots = {}
    final_text = response_output(state.final_response, state.call, fallback)
    if not state.seen_text_delta and final_text:
        text = final_text
    if not state.slots:
        state.slots.update(fallback)
    return text


# --- the request ---------------------------------------------------------------------------------


def is_request(body: dict[str, Any], endpoint: str) -> bool:
    return "input" in body and "embed" not in endpoint  # an embeddings request has an input too


def read_request(body: dict[str, Any], messages: list[MessageRow], tools: list[ToolRow]) -> None:
    """Rows of ``instructions`` and each ``input`` item; also Gemini interactions' input."""
    outputs: dict[str, str] = {}
    instructions = body.get("instructions")
    if type(instructions) is str:
        messages.append((0, "system", instructions, None, 0, None, "instructions"))
    items = body["input"]
    if type(items) is str:
        messages.append((len(messages), "user", items, None, 0, None, "message"))
    elif type(items) is list:
        for item in items:
            _read_item(item, messages, tools, outputs)
    match_outputs(tools, outputs)


def _read_item(item: Any, messages: list[MessageRow], tools: list[ToolRow], outputs: dict[str, str]) -> None:
    index = len(messages)
    if type(item) is str:
        messages.append((index, "user", item, None, 0, None, "message"))
        return
    if type(item) is not dict:
        return
    item_type = item.get("type") or "message"
    if "role" in item and item_type == "message":
        messages.append((index, item.get("role"), content_text(item.get("content")), None, 0, None, item_type))
        return
    tool_call = item_tool_call(item)
    if tool_call is not None:
        call_id, name, args, call_type = tool_call
        tools.append(tool_row("request", 0, call_id, name, args, call_type, index))
        messages.append((index, "assistant", None, None, 1, name if type(name) is str else None, item_type))
        return
    if item_type.endswith("_output"):
        call_id = item.get("call_id") or item.get("id")
        raw = item.get("output")
        text = raw if isinstance(raw, str) else content_text(raw) if type(raw) is list else None
        if text is None and raw is not None:
            text = json_text(raw)
        if call_id:
            outputs[str(call_id)] = text or ""
        messages.append((index, "tool", text, str(call_id) if call_id else None, 0, None, item_type))
        return
    messages.append((index, item.get("role"), content_text(item.get("content")), None, 0, None, item_type))
