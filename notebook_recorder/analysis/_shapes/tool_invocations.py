"""Tool recordings (``provider`` / ``tool_name`` / ``kwargs``): ``nr.tool`` calls and
llama-stack's tool invocations, whose results may be ``ToolInvocationResult`` objects."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._rows import chunk_offsets, content_text, encoded_class_name, json_text, stream_of, tool_row, unwrap

if TYPE_CHECKING:
    from .._rows import Call, Stream, ToolRow


def tool_output(value: Any) -> tuple[str | None, str | None]:
    """(output text, error) of a tool result; ToolInvocationResult is understood."""
    result = unwrap(value)
    if result is None:
        return None, None
    if type(result) is str:
        return result, None
    if type(result) is dict and "content" in result and ("error_message" in result or "error_code" in result):
        error = result.get("error_message")
        content = result.get("content")
        if type(content) is str or content is None:
            text = content
        else:
            text = content_text(content) if type(content) is list else json_text(content)
        return text, (str(error) if error else None)
    return json_text(result), None


def read_invocation(
    request: dict[str, Any], response: dict[str, Any], call: Call, tools: list[ToolRow]
) -> Stream | None:
    """Fill the call row of a tool recording and add its one ``invocation`` row; its stream, if any."""
    call["kind"] = "tool"
    call["tool_name"] = request.get("tool_name")
    call["provider"] = request.get("provider")
    # Where a reader of the frame looks first, as `ls`, `nr.calls()` and `%apirec status` show it.
    name = "/".join(str(part) for part in (call["provider"], call["tool_name"]) if part)
    call["endpoint"] = name or None
    body = response.get("body")
    tokens: Stream | None = None
    output: str | None
    error: str | None = None
    if response.get("is_exception"):  # the call's exception columns are filled in already
        output = None
        error = (
            f"{call['exception_type']}: {call['exception_message']}"
            if call["exception_type"]
            else (call["exception_message"] or "exception")
        )
    elif call["is_streaming"] and type(body) is list:  # a generator tool: one chunk per item
        parts = [tool_output(item)[0] or "" for item in body]
        nothing = [None] * len(parts)
        offsets = response.get("chunk_offsets_ms")
        tokens = stream_of(
            parts, nothing, nothing, [], chunk_offsets(offsets if type(offsets) is list else None, len(parts))
        )
        call["n_chunks"] = len(body)
        output = tokens.text
    else:
        output, error = tool_output(body)
        call["response_type"] = encoded_class_name(body)
    call["text"] = output
    tools.append(tool_row("invocation", 0, None, call["tool_name"], request.get("kwargs"), "tool", None, output, error))
    return tokens
