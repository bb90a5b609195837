"""A minimal function-calling loop: the model asks for ``web_search``, the tool runs, the model answers.

This is the example of the tools tutorial; copy it into a notebook as it is. Wrap the search
function with ``nr.tool`` and run the loop inside ``nr.recording(...)`` (or after ``%apirec``):
the model's turns and the tool's results are then recorded together, and the whole conversation
replays offline, with no API key and no search service::

    search = nr.tool(tavily_client.search, provider="tavily", name="web_search")
    with nr.recording("record-if-missing", dir="recordings"):
        conversation = run_agent(client, "What is the latest Python version?", search)
    print(conversation[-1]["content"])

The loop keeps every message as a plain dict, so each request it sends is exactly what was
recorded, and so is each replay.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

WEB_SEARCH_TOOL: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "web_search",
        "description": "Search the web for up-to-date information.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "description": "What to search for."}},
            "required": ["query"],
        },
    },
}


def run_agent(
    client: openai.OpenAI,
    question: str,
    search_tool: Callable[..., Any],
    *,
    model: str = "gpt-4o",
    max_turns: int = 5,
) -> list[ChatCompletionMessageParam]:
    """Answer ``question`` with ``model``, calling ``search_tool`` whenever the model asks for it.

    Returns the whole conversation as plain dicts: the user's question, each assistant turn
    (with its ``tool_calls``), each tool result, and last the assistant's answer, so
    ``run_agent(...)[-1]["content"]`` is the answer. ``search_tool`` is called with the
    arguments the model chose (``query=...``); a result that is not a string is sent back as JSON.
    """
    messages: list[Any] = [{"role": "user", "content": question}]  # plain dicts, as the API takes them
    for _ in range(max_turns):
        completion = client.chat.completions.create(model=model, messages=messages, tools=[WEB_SEARCH_TOOL])
        message = completion.choices[0].message
        turn: dict[str, Any] = {"role": "assistant", "content": message.content}
        calls = [call for call in message.tool_calls or [] if call.type == "function"]
        if calls:
            turn["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
                for call in calls
            ]
        messages.append(turn)
        if not calls:
            return messages
        for call in calls:
            if call.function.name != "web_search":
                content = f"unknown tool {call.function.name!r}"
            else:
                result = search_tool(**json.loads(call.function.arguments or "{}"))
                content = result if isinstance(result, str) else json.dumps(result)
            messages.append({"role": "tool", "tool_call_id": call.id, "content": content})
    raise RuntimeError(f"no answer after {max_turns} model turns")
