"""OpenAI chat completions and text completions: responses, stream chunks, request messages.

Also the shapes that copy them: Ollama's ``/api/chat`` messages use the same tool call objects
and a ``tool_name`` on tool messages, and providers that record chat chunks under
``/v1/completions``. The stream loop (``_stream``) reads the common chunk inline; an odd one
comes here through :func:`read_chunk`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._rows import content_text, match_outputs, set_usage, slot, tool_row, unwrap, usage_of

if TYPE_CHECKING:
    from .._rows import Call, ChunkInfo, MessageRow, Slots, StreamState, ToolRow


def first_choice(choices: list[Any]) -> Any:
    """The choice of index 0 (choices of several answers may interleave), or None."""
    choice = choices[0]
    if type(choice) is dict and choice.get("index", 0) not in (0, None):
        for other in choices:
            if type(other) is dict and other.get("index") == 0:
                return other
        return None
    return choice


def merge_tool_calls(slots: Slots, tool_calls: Any) -> None:
    """Merge OpenAI-style tool calls (whole, or stream deltas) into ``slots``, by their index."""
    if type(tool_calls) is not list:
        return
    for position, tool_call in enumerate(tool_calls):
        if type(tool_call) is not dict:
            continue
        index = tool_call.get("index")
        if index is None:
            index = len(slots) if tool_call.get("id") or tool_call.get("function") else position
        target = slot(slots, index)
        function = tool_call.get("function")
        if type(function) is dict:
            target.add(tool_call.get("id"), function.get("name"), function.get("arguments"), tool_call.get("type"))
        else:
            target.add(tool_call.get("id"), tool_call.get("name"), tool_call.get("arguments"), tool_call.get("type"))


# --- a whole response ----------------------------------------------------------------------------


def is_response(body: dict[str, Any]) -> bool:
    return type(body.get("choices")) is list


def read_response(body: dict[str, Any], call: Call, slots: Slots) -> None:
    """Text, finish_reason, usage and tool calls of a ``ChatCompletion`` or ``Completion``."""
    set_usage(call, usage_of(body.get("usage")))
    choices = body["choices"]
    if not choices:
        return
    choice = first_choice(choices)
    if type(choice) is not dict:
        return
    call["finish_reason"] = choice.get("finish_reason")
    message = choice.get("message")
    if message is None:
        message = choice.get("delta")
    if type(message) is dict:
        call["text"] = content_text(message.get("content"))
        merge_tool_calls(slots, message.get("tool_calls"))
        function_call = message.get("function_call")
        if type(function_call) is dict:
            slot(slots, len(slots)).add(None, function_call.get("name"), function_call.get("arguments"), "function")
    elif "text" in choice:  # a text completion
        call["text"] = choice.get("text")


# --- stream chunks -------------------------------------------------------------------------------


def read_chunk(chunk: dict[str, Any], state: StreamState) -> ChunkInfo:
    """(delta, role, finish_reason, carries a tool call) of a chat or completion chunk."""
    text = ""
    role = finish_reason = None
    carries_tool = False
    choices = chunk["choices"]
    if choices:
        choice = choices[0]
        if choice.get("index"):  # several choices interleaved: only the first one counts
            choice = first_choice(choices)
        if choice is not None:
            delta = choice.get("delta")
            if delta is not None:
                text, role, carries_tool = read_delta(delta, state)
            else:
                content = choice.get("text")
                if content and type(content) is str:
                    text = content
            finish_reason = choice.get("finish_reason")
    usage = chunk.get("usage")
    if usage:
        state.usage = usage_of(usage)
    return text, role, finish_reason, carries_tool


def read_delta(delta: dict[str, Any], state: StreamState) -> tuple[str, Any, bool]:
    """(text, role, carries a tool call) of a chunk's ``delta`` (or of an Ollama chunk's
    ``message``, which has the same fields); its tool calls go to ``state.slots``."""
    content = delta.get("content")
    text = "" if not content else content if type(content) is str else content_text(content) or ""
    tool_calls = delta.get("tool_calls")
    if tool_calls:
        merge_tool_calls(state.slots, tool_calls)
    return text, delta.get("role"), bool(tool_calls)


def read_function_call_deltas(chunks: list[Any], slots: Slots, tool_deltas: list[int]) -> None:
    """Legacy ``function_call`` deltas (looked for only when the answer ended with one)."""
    seen = set(tool_deltas)
    for i, chunk in enumerate(chunks):
        data = unwrap(chunk)
        choices = data.get("choices") if type(data) is dict else None
        if type(choices) is list and choices and type(choices[0]) is dict:
            delta = choices[0].get("delta")
            function_call = delta.get("function_call") if type(delta) is dict else None
            if type(function_call) is dict:
                slot(slots, "function_call").add(
                    None, function_call.get("name"), function_call.get("arguments"), "function"
                )
                if i not in seen:
                    tool_deltas.append(i)
    tool_deltas.sort()


# --- the request ---------------------------------------------------------------------------------


def is_request(body: dict[str, Any], endpoint: str) -> bool:
    return type(body.get("messages")) is list


def read_request(body: dict[str, Any], messages: list[MessageRow], tools: list[ToolRow]) -> None:
    """One row per request message, and a tool_calls row per call an assistant message carries."""
    outputs: dict[str, str] = {}  # tool output by the call id it answers
    for message in body["messages"]:
        index = len(messages)
        if type(message) is not dict:
            messages.append((index, None, content_text(message), None, 0, None, "message"))
            continue
        n_calls = _message_tool_calls(message, index, tools)
        answered = message.get("tool_call_id")
        if answered and message.get("role") == "tool":
            outputs[str(answered)] = content_text(message.get("content")) or ""
        name = message.get("name")
        if name is None:
            name = message.get("tool_name")  # ollama tool messages
        messages.append(
            (
                index,
                message.get("role"),
                content_text(message.get("content")),
                str(answered) if answered else None,
                n_calls,
                name if type(name) is str else None,
                message.get("type") or "message",
            )
        )
    match_outputs(tools, outputs)


def _message_tool_calls(message: dict[str, Any], index: int, tools: list[ToolRow]) -> int:
    """Append the tool calls an assistant message carries; return how many."""
    n = 0
    tool_calls = message.get("tool_calls")
    if type(tool_calls) is list:
        for tool_call in tool_calls:
            if type(tool_call) is not dict:
                continue
            function = tool_call.get("function")
            function = function if type(function) is dict else tool_call
            tools.append(
                tool_row(
                    "request",
                    n,
                    tool_call.get("id"),
                    function.get("name"),
                    function.get("arguments"),
                    tool_call.get("type"),
                    index,
                )
            )
            n += 1
    function_call = message.get("function_call")
    if type(function_call) is dict:
        tools.append(
            tool_row("request", n, None, function_call.get("name"), function_call.get("arguments"), "function", index)
        )
        n += 1
    return n
