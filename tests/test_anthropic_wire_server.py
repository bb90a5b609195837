"""The local Anthropic-wire server, exercised through the real anthropic SDK (no recorder at all).

What the SDK parses must be what the server says it sends (``answer_for``), in Anthropic's shapes:
the named SSE event sequence, tool use with ``input_json_delta``, paged models, batches, and
errors as anthropic's own exception classes with the ``request-id`` header.
"""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest

anthropic = pytest.importorskip("anthropic")

from anthropic.types import Message, MessageTokensCount, ModelInfo, RawMessageStreamEvent  # noqa: E402
from anthropic_wire_server import (  # noqa: E402
    BAD_API_KEY,
    ERROR_TYPES,
    HELLO,
    LONG_PROMPT,
    LONG_STREAM_EVENTS,
    MODEL,
    MODELS,
    STREAM_ERROR_MODEL,
    TEST_API_KEY,
    WEATHER_TOOL,
    AnthropicWireServer,
)
from pydantic import TypeAdapter  # noqa: E402

EVENTS: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
ERROR_CLASSES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    413: "ContentTooLargeError",
    429: "RateLimitError",
    500: "InternalServerError",
    529: "OverloadedError",
}


def raw_sse(server: AnthropicWireServer, body: dict[str, Any]) -> tuple[int, dict[str, str], str]:
    """POST ``body`` to /v1/messages with the stdlib (no SDK): status, headers, body text."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(
            "POST",
            "/v1/messages",
            json.dumps(body),
            {"content-type": "application/json", "x-api-key": TEST_API_KEY, "anthropic-version": "2023-06-01"},
        )
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode()
    finally:
        connection.close()


def test_message_json_is_what_the_server_sends(claude: Any, anthropic_server: AnthropicWireServer) -> None:
    message = claude.messages.create(model=MODEL, max_tokens=256, messages=HELLO)
    assert isinstance(message, Message)
    sent = AnthropicWireServer.answer_for({"model": MODEL, "max_tokens": 256, "messages": HELLO})
    assert message.model_dump(mode="json", exclude_none=True) == Message.model_validate(sent).model_dump(
        mode="json", exclude_none=True
    )
    assert message.id.startswith("msg_01") and message.role == "assistant" and message.model == MODEL
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello! It's nice to meet you. How can I help you today?"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert message.usage.service_tier == "standard"
    request = anthropic_server.last_request
    assert (request.method, request.path) == ("POST", "/v1/messages")
    assert request.json == {"model": MODEL, "max_tokens": 256, "messages": HELLO}


def test_the_wire_stream_is_anthropics_event_sequence(anthropic_server: AnthropicWireServer) -> None:
    body = {"model": MODEL, "max_tokens": 64, "messages": HELLO, "stream": True}
    status, headers, text = raw_sse(anthropic_server, body)
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    assert headers["request-id"].startswith("req_01")
    assert "x-request-id" not in headers and "openai-version" not in headers
    events = [block for block in text.split("\n\n") if block.strip()]
    names = [block.split("\n")[0].removeprefix("event: ") for block in events]
    datas = [json.loads(block.split("\n")[1].removeprefix("data: ")) for block in events]
    assert [d["type"] for d in datas] == names  # every event is named by its type
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-4:] == ["content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert "[DONE]" not in text
    assert datas[0]["message"]["content"] == [] and datas[0]["message"]["stop_reason"] is None
    assert datas[-2]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert datas[-2]["usage"]["output_tokens"] > 0
    for data in datas:  # every event but ping is one of the SDK's RawMessageStreamEvent types
        if data["type"] != "ping":
            EVENTS.validate_python(data)


def test_stream_true_yields_the_events_and_adds_up_to_the_json_message(claude: Any) -> None:
    stream = claude.messages.create(model=MODEL, max_tokens=64, messages=HELLO, stream=True)
    assert isinstance(stream, anthropic.Stream)
    events = list(stream)
    assert [e.type for e in events][:2] == ["message_start", "content_block_start"]
    assert "ping" not in [e.type for e in events]  # the SDK skips pings
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text == AnthropicWireServer.answer_text({"messages": HELLO})
    message = claude.messages.create(model=MODEL, max_tokens=64, messages=HELLO)
    assert events[0].message.id == message.id


def test_stream_helper_final_message_equals_the_json_answer(claude: Any) -> None:
    with claude.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 2 and "".join(pieces) == final.content[0].text
    message = claude.messages.create(model=MODEL, max_tokens=64, messages=HELLO)
    assert final.model_dump(exclude={"content"}) == message.model_dump(exclude={"content"})
    assert [b.text for b in final.content] == [b.text for b in message.content]


def test_tool_use_streams_input_json_deltas_then_answers_the_tool_result(claude: Any) -> None:
    question = [{"role": "user", "content": "What is the weather like in San Francisco?"}]
    stream = claude.messages.create(model=MODEL, max_tokens=256, tools=[WEATHER_TOOL], messages=question, stream=True)
    events = list(stream)
    partial = [
        e.delta.partial_json for e in events if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    assert partial[0] == "" and len(partial) > 2
    assert json.loads("".join(partial)) == {"location": "San Francisco, CA"}
    starts = [e.content_block for e in events if e.type == "content_block_start"]
    assert [b.type for b in starts] == ["text", "tool_use"] and starts[1].name == "get_weather"
    assert starts[1].id.startswith("toolu_01") and starts[1].input == {}
    assert events[-2].delta.stop_reason == "tool_use"

    message = claude.messages.create(model=MODEL, max_tokens=256, tools=[WEATHER_TOOL], messages=question)
    call = message.content[-1]
    assert call.type == "tool_use" and call.input == {"location": "San Francisco, CA"} and call.id == starts[1].id
    follow_up = [
        *question,
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in message.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "15 degrees, sunny"}]},
    ]
    answer = claude.messages.create(model=MODEL, max_tokens=256, tools=[WEATHER_TOOL], messages=follow_up)
    assert answer.stop_reason == "end_turn"
    assert "get_weather returned: 15 degrees, sunny" in answer.content[0].text


def test_tool_choice_tool_answers_with_the_call_only(claude: Any) -> None:
    message = claude.messages.create(
        model=MODEL,
        max_tokens=256,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "Paris?"}],
    )
    assert [b.type for b in message.content] == ["tool_use"]


def test_count_tokens(claude: Any, anthropic_server: AnthropicWireServer) -> None:
    counted = claude.messages.count_tokens(model=MODEL, messages=HELLO)
    assert isinstance(counted, MessageTokensCount) and counted.input_tokens > 0
    assert anthropic_server.last_request.path == "/v1/messages/count_tokens"
    longer = claude.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "Hello " * 50}])
    assert longer.input_tokens > counted.input_tokens


def test_models_are_paged_with_first_and_last_ids(claude: Any, anthropic_server: AnthropicWireServer) -> None:
    first = claude.models.list(limit=4)
    assert [m.id for m in first.data] == [m["id"] for m in MODELS[:4]]
    assert all(isinstance(m, ModelInfo) for m in first.data)
    assert (first.has_more, first.first_id, first.last_id) == (True, MODELS[0]["id"], MODELS[3]["id"])
    anthropic_server.reset()
    assert [m.id for m in claude.models.list(limit=4)] == [m["id"] for m in MODELS]  # auto-pagination
    assert [r.query for r in anthropic_server.requests] == [
        {"limit": "4"},
        {"limit": "4", "after_id": MODELS[3]["id"]},
        {"limit": "4", "after_id": MODELS[7]["id"]},
    ]
    before = claude.models.list(limit=2, before_id=MODELS[5]["id"])
    assert [m.id for m in before.data] == [MODELS[3]["id"], MODELS[4]["id"]]
    assert claude.models.retrieve(MODELS[-1]["id"]).display_name == MODELS[-1]["display_name"]
    with pytest.raises(anthropic.NotFoundError):
        claude.models.retrieve("claude-none")


def test_batches_create_retrieve_results_list_cancel(claude: Any) -> None:
    requests = [
        {"custom_id": "hello", "params": {"model": MODEL, "max_tokens": 64, "messages": HELLO}},
        {
            "custom_id": "france",
            "params": {
                "model": MODEL,
                "max_tokens": 64,
                "messages": [{"role": "user", "content": "What is the capital of France?"}],
            },
        },
    ]
    batch = claude.messages.batches.create(requests=requests)
    assert batch.id.startswith("msgbatch_01") and batch.processing_status == "in_progress"
    assert batch.request_counts.processing == 2 and batch.results_url is None
    ended = claude.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and ended.request_counts.succeeded == 2
    results = {r.custom_id: r.result.message.content[0].text for r in claude.messages.batches.results(batch.id)}
    assert results == {
        "hello": AnthropicWireServer.answer_text({"messages": HELLO}),
        "france": "The capital of France is Paris.",
    }
    assert [b.id for b in claude.messages.batches.list()] == [batch.id]
    assert claude.messages.batches.cancel(batch.id).processing_status == "ended"


@pytest.mark.parametrize("status", sorted(ERROR_TYPES))
def test_errors_are_anthropics_classes_with_the_request_id(claude: Any, status: int) -> None:
    with pytest.raises(anthropic.APIStatusError) as caught:
        claude.messages.create(model=f"wire-error-{status}", max_tokens=8, messages=HELLO)
    error = caught.value
    assert type(error).__name__ == ERROR_CLASSES[status] and error.status_code == status
    assert error.body["type"] == "error" and error.body["error"]["type"] == ERROR_TYPES[status][0]
    assert error.request_id and error.request_id == error.response.headers["request-id"] == error.body["request_id"]
    assert error.response.headers["x-should-retry"] == "false"


def test_bad_key_and_missing_fields(anthropic_server: AnthropicWireServer, claude: Any) -> None:
    with anthropic.Anthropic(base_url=anthropic_server.base_url, api_key=BAD_API_KEY, max_retries=0) as bad:
        with pytest.raises(anthropic.AuthenticationError, match="invalid x-api-key"):
            bad.models.list()
    with anthropic.Anthropic(
        base_url=anthropic_server.base_url, api_key=None, default_headers={"x-api-key": TEST_API_KEY}, max_retries=0
    ) as by_header:
        assert by_header.messages.create(model=MODEL, max_tokens=8, messages=HELLO).content
    assert anthropic_server.last_request.headers["x-api-key"] == TEST_API_KEY
    with pytest.raises(anthropic.BadRequestError, match="max_tokens: Field required"):
        claude.messages.create(model=MODEL, messages=HELLO, extra_body={"max_tokens": anthropic.omit}, max_tokens=8)


def test_an_error_event_mid_stream_raises(claude: Any) -> None:
    stream = claude.messages.create(model=STREAM_ERROR_MODEL, max_tokens=8, messages=HELLO, stream=True)
    seen = []
    with pytest.raises(anthropic.APIStatusError, match="overloaded_error"):
        for event in stream:
            seen.append(event.type)
    assert seen[0] == "message_start"


def test_long_stream_and_request_headers(claude: Any, anthropic_server: AnthropicWireServer) -> None:
    events = list(
        claude.messages.create(
            model=MODEL, max_tokens=4096, messages=[{"role": "user", "content": LONG_PROMPT}], stream=True
        )
    )
    assert len(events) == LONG_STREAM_EVENTS
    headers = anthropic_server.last_request.headers
    assert headers["authorization"] == f"Bearer {TEST_API_KEY}" or headers.get("x-api-key") == TEST_API_KEY
    assert "anthropic-version" in headers


async def test_async_client(aclaude: Any) -> None:
    message = await aclaude.messages.create(model=MODEL, max_tokens=64, messages=HELLO)
    stream = await aclaude.messages.create(model=MODEL, max_tokens=64, messages=HELLO, stream=True)
    assert isinstance(stream, anthropic.AsyncStream)
    text = "".join([e.delta.text async for e in stream if e.type == "content_block_delta"])
    assert text == message.content[0].text
    async with aclaude.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as helper:
        assert "".join([t async for t in helper.text_stream]) == text
