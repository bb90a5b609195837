"""The local OpenAI-wire server, exercised through the real openai SDK (sync and async).

Expected texts are read straight from the llama-stack recordings, independently of the server's
own loader, to show that what the SDK receives is the recorded payload.
"""

from __future__ import annotations

import http.client
import json
import math
import socket
import time
from typing import Any

import openai
import pytest
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageParam,
    ChatCompletionMessageToolCallParam,
)
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter
from sdk_values import stream_cut_errors
from wire_server import FIXTURES_DIR, TEST_API_KEY, WireServer

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "What is the latest version of Python?"}]
WEB_SEARCH_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "web_search",
        "description": "Search the web for information",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    },
}
KNOWLEDGE_SEARCH_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "knowledge_search",
        "description": "Search for information in a database.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    },
}
RESPONSE_EVENT_TYPES = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]
EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


STREAM_CUT_ERRORS = stream_cut_errors(openai.APIConnectionError)


# ---------------------------------------------------------------------------- fixture readers


def recording(generation: str, prefix: str) -> dict[str, Any]:
    """Read one llama-stack recording file directly (no wire_server code involved)."""
    (path,) = (FIXTURES_DIR / generation).rglob(f"{prefix}*.json")
    return dict(json.loads(path.read_text()))


def recorded_stream_text(generation: str, prefix: str) -> str:
    """Concatenated content (chat) or text (completions) of a recorded stream."""
    text = ""
    for chunk in recording(generation, prefix)["response"]["body"]:
        for choice in chunk["__data__"]["choices"]:
            text += (choice.get("delta") or {}).get("content") or choice.get("text") or ""
    return text


PYTHON_ANSWER = recorded_stream_text("head", "2331aa9455bc")
MAVERICK_ANSWER = recorded_stream_text("oct2025", "1cc394167676")


# ---------------------------------------------------------------------------- raw HTTP helpers


def raw_request(
    server: WireServer, method: str, path: str, body: dict[str, Any] | None = None
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request with http.client (not the SDK): status, headers and the (de-chunked) body."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        headers = {"Authorization": f"Bearer {TEST_API_KEY}", "Content-Type": "application/json"}
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def parse_sse(data: bytes) -> list[tuple[str | None, str]]:
    """Split an SSE body into (event name, data) pairs."""
    events = []
    for block in data.decode().split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields.get("event"), fields["data"]))
    return events


def chunk_content(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def assemble_tool_calls(chunks: list[ChatCompletionChunk]) -> list[dict[str, str]]:
    """Merge streamed tool-call deltas by index into {id, name, arguments}."""
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += delta.id or ""
                call["name"] += (delta.function.name if delta.function else None) or ""
                call["arguments"] += (delta.function.arguments if delta.function else None) or ""
    return [calls[i] for i in sorted(calls)]


# ---------------------------------------------------------------------------- chat completions


def test_chat_stream_sync_with_usage(client: openai.OpenAI, wire_server: WireServer) -> None:
    stream = client.chat.completions.create(
        model="my-model", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert all(isinstance(chunk, ChatCompletionChunk) for chunk in chunks)
    assert chunk_content(chunks) == PYTHON_ANSWER
    assert {chunk.model for chunk in chunks} == {"my-model"}
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 615  # the recorded usage chunk
    body = {"model": "my-model", "messages": USER, "stream": True, "stream_options": {"include_usage": True}}
    assert len(wire_server.answer_for(body)) == len(chunks)
    assert wire_server.answer_text(body) == PYTHON_ANSWER


async def test_chat_stream_async_without_usage(async_client: openai.AsyncOpenAI) -> None:
    stream = await async_client.chat.completions.create(model="gpt-4o", messages=USER, stream=True)
    chunks = [chunk async for chunk in stream]
    assert all(isinstance(chunk, ChatCompletionChunk) for chunk in chunks)
    assert all(chunk.choices for chunk in chunks), "no usage chunk unless include_usage"
    assert chunk_content(chunks) == PYTHON_ANSWER
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    ("tool", "call_id", "arguments", "answer"),
    [
        (WEB_SEARCH_TOOL, "call_Bh9SBhduG20Qd1ALpZpqqiy6", {"query": "latest version of Python"}, PYTHON_ANSWER),
        (
            KNOWLEDGE_SEARCH_TOOL,
            "call_uy4RL1d6RPGFQ0dV63O5lqgM",
            {"query": "Llama 4 Maverick model number of experts"},
            MAVERICK_ANSWER,
        ),
    ],
)
def test_chat_stream_tool_call_then_answer(
    client: openai.OpenAI,
    tool: ChatCompletionFunctionToolParam,
    call_id: str,
    arguments: dict[str, str],
    answer: str,
) -> None:
    """Tools offered -> a real streamed tool call; after the tool result -> the real answer."""
    name = tool["function"]["name"]
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=USER, tools=[tool], stream=True))
    (call,) = assemble_tool_calls(chunks)
    assert call["id"] == call_id and call["name"] == name
    assert json.loads(call["arguments"]) == arguments
    assert chunks[-1].choices[0].finish_reason == "tool_calls"

    tool_call: ChatCompletionMessageToolCallParam = {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": call["arguments"]},
    }
    follow_up: list[ChatCompletionMessageParam] = [
        *USER,
        {"role": "assistant", "content": "", "tool_calls": [tool_call]},
        {"role": "tool", "tool_call_id": call_id, "content": "search results"},
    ]
    stream = client.chat.completions.create(model="gpt-4o", messages=follow_up, tools=[tool], stream=True)
    assert chunk_content(list(stream)) == answer


def test_chat_non_streaming(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="any-model", messages=USER)
    assert isinstance(completion, ChatCompletion)
    assert completion.model == "any-model"
    assert completion.choices[0].message.content == PYTHON_ANSWER
    assert completion.usage is not None and completion.usage.total_tokens == 615

    with_tools = client.chat.completions.create(model="gpt-4o", messages=USER, tools=[WEB_SEARCH_TOOL])
    (call,) = with_tools.choices[0].message.tool_calls or []
    assert call.function.name == "web_search"  # type: ignore[union-attr]
    assert with_tools.choices[0].finish_reason == "tool_calls"


def test_chat_exact_recording_match(client: openai.OpenAI) -> None:
    """A request equal to a recorded one gets that recording's answer."""
    recorded = recording("head", "bfc8818f4ad2")
    body = recorded["request"]["body"]
    completion = client.chat.completions.create(model=body["model"], messages=body["messages"])
    expected = recorded["response"]["body"]["__data__"]["choices"][0]["message"]["content"]
    assert completion.choices[0].message.content == expected


# ---------------------------------------------------------------------------- completions, embeddings


def test_completions_stream_and_json(client: openai.OpenAI) -> None:
    stream = client.completions.create(
        model="text-model", prompt="Roses are red", stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert all(isinstance(chunk, Completion) for chunk in chunks)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == recorded_stream_text("head", "8567635651a5")
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 50  # derived: one token per recorded text chunk

    completion = client.completions.create(model="text-model", prompt="Say completions")
    recorded = recording("head", "92d49675c903")["response"]["body"]["__data__"]
    assert completion.choices[0].text == recorded["choices"][0]["text"]
    assert completion.model == "text-model"


def test_embeddings(client: openai.OpenAI) -> None:
    inputs = [f"sentence {i}" for i in range(8)]  # more inputs than recorded vectors
    as_floats = client.embeddings.create(model="emb", input=inputs, encoding_format="float")
    assert isinstance(as_floats, CreateEmbeddingResponse)
    assert [item.index for item in as_floats.data] == list(range(8))
    assert {len(item.embedding) for item in as_floats.data} == {1536}

    as_base64 = client.embeddings.create(model="emb", input=inputs)  # the SDK's default: base64
    for a, b in zip(as_floats.data, as_base64.data, strict=True):
        assert a.embedding == pytest.approx(b.embedding, abs=1e-6)

    short = client.embeddings.create(model="emb", input="x", dimensions=256, encoding_format="float")
    assert len(short.data[0].embedding) == 256
    assert math.hypot(*short.data[0].embedding) == pytest.approx(1.0, abs=1e-6)


def test_embeddings_exact_recording(client: openai.OpenAI) -> None:
    recorded = recording("head", "68042c0cf3d9")
    body = recorded["request"]["body"]
    result = client.embeddings.create(model=body["model"], input=body["input"], encoding_format="float")
    assert result.data[0].embedding == recorded["response"]["body"]["__data__"]["data"][0]["embedding"]


# ---------------------------------------------------------------------------- models


def recorded_model_ids() -> set[str]:
    ids = set()
    for path in FIXTURES_DIR.rglob("models-*.json"):
        ids |= {model["__data__"]["id"] for model in json.loads(path.read_text())["response"]["body"]}
    return ids


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    ids = [model.id for model in client.models.list()]
    assert set(ids) == recorded_model_ids() and len(ids) == len(set(ids))
    assert client.models.retrieve(ids[0]).id == ids[0]
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("no-such-model")
    assert info.value.body["code"] == "model_not_found"  # type: ignore[index]


def test_models_raw_pagination(wire_server: WireServer) -> None:
    seen: list[str] = []
    after = ""
    while True:
        status, _, data = raw_request(wire_server, "GET", f"/v1/models?limit=3&after={after}")
        page = json.loads(data)
        assert status == 200 and page["object"] == "list" and len(page["data"]) <= 3
        assert page["first_id"] == page["data"][0]["id"] and page["last_id"] == page["data"][-1]["id"]
        seen += [model["id"] for model in page["data"]]
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert set(seen) == recorded_model_ids() and len(seen) == len(set(seen))
    assert wire_server.requests[0].query == {"limit": "3", "after": ""}


# ---------------------------------------------------------------------------- responses


def test_responses_json(client: openai.OpenAI, wire_server: WireServer) -> None:
    response = client.responses.create(model="resp-model", input="What is the latest version of Python?")
    assert response.output_text == PYTHON_ANSWER
    assert response.model == "resp-model" and response.status == "completed"
    assert response.usage is not None and response.usage.total_tokens == 615

    status, _, data = raw_request(wire_server, "POST", "/v1/responses", {"model": "m", "input": "hi"})
    assert status == 200
    validated = Response.model_validate(json.loads(data))
    assert validated.object == "response" and validated.output_text == PYTHON_ANSWER


def test_responses_stream_sdk(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="resp-model", input="hi", stream=True))
    types = [event.type for event in events]
    assert [t for i, t in enumerate(types) if i == 0 or t != types[i - 1]] == RESPONSE_EVENT_TYPES
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert deltas == PYTHON_ANSWER
    completed = events[-1]
    assert completed.type == "response.completed" and completed.response.output_text == PYTHON_ANSWER


def test_responses_stream_raw_events_validate(wire_server: WireServer) -> None:
    """Every raw SSE event has a matching ``event:`` line and validates as ResponseStreamEvent."""
    status, headers, data = raw_request(
        wire_server, "POST", "/v1/responses", {"model": "m", "input": "hi", "stream": True}
    )
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = parse_sse(data)
    for number, (name, payload) in enumerate(events):
        event = EVENT_ADAPTER.validate_python(json.loads(payload))
        assert event.type == name and event.sequence_number == number
    Response.model_validate(json.loads(events[-1][1])["response"])


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "api_key", "error", "status"),
    [
        ({"model": "wire-error-400"}, TEST_API_KEY, openai.BadRequestError, 400),
        ({"model": "gpt-4o", "service_tier": "flex"}, TEST_API_KEY, openai.BadRequestError, 400),
        ({"model": "gpt-4o"}, "sk-bad", openai.AuthenticationError, 401),
        ({"model": "wire-error-401"}, TEST_API_KEY, openai.AuthenticationError, 401),
        ({"model": "wire-error-429"}, TEST_API_KEY, openai.RateLimitError, 429),
        ({"model": "wire-error-500"}, TEST_API_KEY, openai.InternalServerError, 500),
    ],
)
def test_errors(
    wire_server: WireServer, kwargs: dict[str, Any], api_key: str, error: type[openai.APIStatusError], status: int
) -> None:
    # Default retries on purpose: the server's x-should-retry: false keeps this fast.
    with openai.OpenAI(base_url=wire_server.base_url, api_key=api_key) as client:
        with pytest.raises(error) as info:
            client.chat.completions.create(messages=USER, **kwargs)
    assert info.value.status_code == status
    assert isinstance(info.value.body, dict) and set(info.value.body) == {"message", "type", "param", "code"}
    assert info.value.response.headers["x-request-id"].startswith("req_")
    assert len(wire_server.requests) == 1


def test_error_bodies(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="gpt-4o", messages=USER, service_tier="flex")
    assert bad.value.body["message"] == "Invalid service_tier argument"  # type: ignore[index]
    with pytest.raises(openai.AuthenticationError) as auth:
        client.with_options(api_key="sk-bad").models.list()
    assert auth.value.code == "invalid_api_key" and "Incorrect API key" in auth.value.message


async def test_error_before_async_stream(async_client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.RateLimitError):
        await async_client.chat.completions.create(model="wire-error-429", messages=USER, stream=True)


def test_unknown_path_is_openai_404(wire_server: WireServer) -> None:
    status, headers, data = raw_request(wire_server, "GET", "/v1/nowhere")
    assert status == 404 and headers["x-request-id"]
    assert json.loads(data)["error"]["message"] == "Invalid URL (GET /v1/nowhere)"


# ---------------------------------------------------------------------------- timing, cuts, stop


def test_chunk_delay_spreads_the_stream(client: openai.OpenAI, wire_server: WireServer) -> None:
    wire_server.chunk_delay = 0.02
    started = time.perf_counter()
    first = None
    count = 0
    for _ in client.chat.completions.create(model="gpt-4o", messages=USER, stream=True):
        first = first if first is not None else time.perf_counter() - started
        count += 1
    total = time.perf_counter() - started
    assert first is not None and total >= 0.02 * (count - 1)
    assert first < total / 4


def test_error_after_chunks_breaks_sync_stream(client: openai.OpenAI, wire_server: WireServer) -> None:
    wire_server.error_after_chunks = 3
    received: list[ChatCompletionChunk] = []
    with pytest.raises(STREAM_CUT_ERRORS):
        for chunk in client.chat.completions.create(model="gpt-4o", messages=USER, stream=True):
            received.append(chunk)
    assert len(received) == 3


async def test_error_after_chunks_breaks_async_responses_stream(
    async_client: openai.AsyncOpenAI, wire_server: WireServer
) -> None:
    wire_server.error_after_chunks = 5
    received = []
    with pytest.raises(STREAM_CUT_ERRORS):
        async for event in await async_client.responses.create(model="m", input="hi", stream=True):
            received.append(event)
    assert len(received) == 5


def test_stop_refuses_later_connections(client: openai.OpenAI, wire_server: WireServer) -> None:
    assert client.models.list().data  # a pooled keep-alive connection now exists
    wire_server.stop()
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4o", messages=USER)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", wire_server.port), timeout=2).close()


async def test_stop_refuses_later_async_connections(async_client: openai.AsyncOpenAI, wire_server: WireServer) -> None:
    await async_client.chat.completions.create(model="gpt-4o", messages=USER)
    wire_server.stop()
    with pytest.raises(openai.APIConnectionError):
        await async_client.chat.completions.create(model="gpt-4o", messages=USER)


# ---------------------------------------------------------------------------- request log


def test_request_log_and_reset(client: openai.OpenAI, wire_server: WireServer) -> None:
    client.chat.completions.create(model="gpt-4o", messages=USER)
    client.models.list()
    first, second = wire_server.requests
    assert (first.method, first.path, second.method, second.path) == (
        "POST",
        "/v1/chat/completions",
        "GET",
        "/v1/models",
    )
    assert first.headers["authorization"] == f"Bearer {TEST_API_KEY}"
    assert first.json == {"model": "gpt-4o", "messages": USER}
    assert json.loads(first.body) == first.json and second.json is None
    wire_server.reset()
    assert wire_server.requests == []


def test_context_manager_and_settings() -> None:
    with WireServer(chunk_delay=0.0, error_after_chunks=2) as server:
        with openai.OpenAI(base_url=server.base_url, api_key=TEST_API_KEY, max_retries=0) as client:
            stream = client.completions.create(model="m", prompt="p", stream=True)
            with pytest.raises(STREAM_CUT_ERRORS):
                list(stream)
    assert not server.running
