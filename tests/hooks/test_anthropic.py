"""The anthropic SDK recorded and replayed like openai's (issue 15).

The real ``anthropic`` SDK talks real HTTP to the loopback Anthropic-wire server
(``tests/anthropic_wire_server.py``); every call is recorded, the server is STOPPED, and the call
is replayed: the caller must see the same objects (types and ``model_dump()``), streams event by
event through the SDK's own ``Stream``, errors as anthropic's own classes, with no request sent and
no key needed. Then the same through ``%%apirec`` in a real kernel, the pytest plugin and
``notebook-recorder run``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

anthropic = pytest.importorskip("anthropic")

import nbformat  # noqa: E402
import openai  # noqa: E402
from anthropic.types import Message, MessageTokensCount, ModelInfo  # noqa: E402
from anthropic_wire_server import (  # noqa: E402
    HELLO,
    LONG_PROMPT,
    MODEL,
    MODELS,
    TEST_API_KEY,
    WEATHER,
    WEATHER_TOOL,
    WORKSPACE_ID,
    AnthropicWireServer,
)
from sdk_values import snap, stream_cut_errors  # noqa: E402
from wire_server import WireServer  # noqa: E402

import notebook_recorder as nr  # noqa: E402

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]


STREAM_CUT_ERRORS = stream_cut_errors(anthropic.APIConnectionError)


def files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.json")) if directory.exists() else []


def records(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in files(directory)]


@pytest.fixture(autouse=True)
def _no_late_calls() -> None:
    """Streams abandoned by earlier tests (of any file) are finalized now, not in the middle of this
    test's call log (see ``test_a_closed_stream_is_logged_in_its_own_context``)."""
    gc.collect()
    nr.clear_calls()


def record_then_replay(
    call: Callable[[], Any], server: AnthropicWireServer, directory: Path, *, requests: int = 1
) -> tuple[Any, Any]:
    """``call`` recorded, then replayed with the server stopped: (recorded, replayed) results.

    Checks on the way: ``requests`` requests and files while recording, none while replaying,
    nothing rewritten, every replayed call's outcome ``replayed``."""
    with nr.recording("record", dir=directory):
        recorded = call()
    assert len(server.requests) == requests
    written = {p: p.read_bytes() for p in files(directory)}
    assert len(written) == requests
    assert [c.outcome for c in nr.calls()] == ["recorded"] * requests
    server.stop()
    nr.clear_calls()
    with nr.recording("replay", dir=directory):
        replayed = call()
    assert len(server.requests) == requests  # not one request more
    assert {p: p.read_bytes() for p in files(directory)} == written
    assert [c.outcome for c in nr.calls()] == ["replayed"] * requests
    return recorded, replayed


# ---------------------------------------------------------------------------------------------
# messages.create, JSON and stream=True
# ---------------------------------------------------------------------------------------------


def test_messages_create_json(claude: Any, anthropic_server: AnthropicWireServer, tmp_path: Path) -> None:
    def call() -> Any:
        return claude.messages.create(model=MODEL, max_tokens=256, messages=HELLO, system="Be brief.")

    recorded, replayed = record_then_replay(call, anthropic_server, tmp_path)
    assert isinstance(replayed, Message)
    assert snap(replayed) == snap(recorded)
    assert replayed.content[0].text == "Hello! It's nice to meet you. How can I help you today?"
    assert replayed.id == recorded.id and replayed.id.startswith("msg_01")  # the server's id, stored as sent

    (record,) = records(tmp_path)
    request = record["request"]
    assert request["method"] == "POST"
    assert request["endpoint"] == "/v1/messages"
    assert request["url"] == f"{anthropic_server.base_url}/v1/messages"
    assert request["model"] == MODEL
    assert request["headers"] == {}
    assert request["body"] == {"model": MODEL, "max_tokens": 256, "messages": HELLO, "system": "Be brief."}
    assert record["test_id"] is None and record["id_normalization_mapping"] == {}
    response = record["response"]
    assert response["is_streaming"] is False
    assert response["body"]["__type__"] == "anthropic.types.message.Message"
    assert response["body"]["__data__"]["id"] == recorded.id
    log = nr.calls()
    assert [(c.endpoint, c.model) for c in log] == [("/v1/messages", MODEL)]
    assert Path(str(log[0].path)).name == f"{log[0].key}.json"


def test_messages_create_stream_event_by_event(
    claude: Any, anthropic_server: AnthropicWireServer, tmp_path: Path
) -> None:
    def call() -> Any:
        stream = claude.messages.create(model=MODEL, max_tokens=256, messages=HELLO, stream=True)
        assert isinstance(stream, anthropic.Stream)
        return list(stream)

    recorded, replayed = record_then_replay(call, anthropic_server, tmp_path)
    assert [type(e) for e in replayed] == [type(e) for e in recorded]
    assert [e.type for e in replayed] == [e.type for e in recorded]
    assert [e.type for e in replayed][:2] == ["message_start", "content_block_start"]
    assert [e.type for e in replayed][-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert snap(replayed) == snap(recorded)

    (record,) = records(tmp_path)
    assert record["request"]["body"]["stream"] is True
    assert record["response"]["is_streaming"] is True
    chunks = record["response"]["body"]
    assert len(chunks) == len(recorded)
    assert all(chunk["__type__"].startswith("anthropic.types.") for chunk in chunks)
    assert chunks[0]["__type__"] == "anthropic.types.raw_message_start_event.RawMessageStartEvent"
    assert [chunk["__data__"]["type"] for chunk in chunks] == [e.type for e in recorded]


def test_messages_stream_helper(claude: Any, anthropic_server: AnthropicWireServer, tmp_path: Path) -> None:
    def call() -> Any:
        with claude.messages.stream(model=MODEL, max_tokens=256, messages=HELLO) as stream:
            pieces = list(stream.text_stream)
            final = stream.get_final_message()
            text = stream.get_final_text()
        return pieces, final, text

    recorded, replayed = record_then_replay(call, anthropic_server, tmp_path)
    pieces, final, text = replayed
    assert pieces == recorded[0] and len(pieces) > 2
    assert "".join(pieces) == text == recorded[2] == AnthropicWireServer.answer_text({"messages": HELLO})
    assert snap(final) == snap(recorded[1])
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0


def test_tool_use_then_tool_result(claude: Any, anthropic_server: AnthropicWireServer, tmp_path: Path) -> None:
    def call() -> Any:
        with claude.messages.stream(model=MODEL, max_tokens=512, tools=[WEATHER_TOOL], messages=WEATHER) as stream:
            partial = [
                e.partial_json for e in stream if e.type == "input_json"
            ]  # the helper's own events, from input_json_delta
            message = stream.get_final_message()
        (tool_use,) = [b for b in message.content if b.type == "tool_use"]
        follow_up = [
            *WEATHER,
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "15 degrees, sunny"}],
            },
        ]
        answer = claude.messages.create(model=MODEL, max_tokens=512, tools=[WEATHER_TOOL], messages=follow_up)
        return partial, message, tool_use, answer

    recorded, replayed = record_then_replay(call, anthropic_server, tmp_path, requests=2)
    partial, message, tool_use, answer = replayed
    assert partial == recorded[0] and len(partial) > 2
    assert tool_use.name == "get_weather" and tool_use.input == {"location": "San Francisco, CA"}
    assert message.stop_reason == "tool_use"
    assert snap(message) == snap(recorded[1]) and snap(answer) == snap(recorded[3])
    assert "get_weather returned: 15 degrees, sunny" in answer.content[0].text

    second = next(r for r in records(tmp_path) if len(r["request"]["body"]["messages"]) == 3)
    sent = second["request"]["body"]["messages"]
    assert sent[-1]["content"][0] == {"type": "tool_result", "tool_use_id": tool_use.id, "content": "15 degrees, sunny"}
    assert sent[1]["content"][-1]["type"] == "tool_use"


def test_count_tokens(claude: Any, anthropic_server: AnthropicWireServer, tmp_path: Path) -> None:
    def call() -> Any:
        return claude.messages.count_tokens(model=MODEL, messages=HELLO, system="Be brief.")

    recorded, replayed = record_then_replay(call, anthropic_server, tmp_path)
    assert isinstance(replayed, MessageTokensCount) and replayed.input_tokens == recorded.input_tokens > 0
    (record,) = records(tmp_path)
    assert record["request"]["endpoint"] == "/v1/messages/count_tokens"
    assert record["response"]["body"]["__type__"] == "anthropic.types.message_tokens_count.MessageTokensCount"


def test_models_list_with_pagination(claude: Any, anthropic_server: AnthropicWireServer, tmp_path: Path) -> None:
    def call() -> Any:
        page = claude.models.list(limit=4)
        first = (page.has_more, page.first_id, page.last_id, [m.id for m in page.data])
        return first, list(claude.models.list(limit=4))  # auto-pagination: three pages

    recorded, replayed = record_then_replay(call, anthropic_server, tmp_path, requests=4)
    assert replayed[0] == recorded[0] == (True, MODELS[0]["id"], MODELS[3]["id"], [m["id"] for m in MODELS[:4]])
    assert all(isinstance(m, ModelInfo) for m in replayed[1])
    assert [m.id for m in replayed[1]] == [m["id"] for m in MODELS]
    assert snap(replayed[1]) == snap(recorded[1])
    assert {r["request"]["endpoint"] for r in records(tmp_path)} == {"/v1/models"}


def test_with_raw_response_keeps_the_request_id(
    claude: Any, anthropic_server: AnthropicWireServer, tmp_path: Path
) -> None:
    def call() -> Any:
        raw = claude.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=HELLO)
        message = raw.parse()
        return raw.status_code, raw.headers.get("request-id"), message._request_id, message

    recorded, replayed = record_then_replay(call, anthropic_server, tmp_path)
    status, request_id, parsed_id, message = replayed
    assert status == 200 and request_id and request_id.startswith("req_01")
    assert (request_id, parsed_id) == (recorded[1], recorded[2]) and parsed_id == request_id
    assert snap(message) == snap(recorded[3])


@pytest.mark.parametrize(
    ("status", "error_class"),
    [(400, "BadRequestError"), (401, "AuthenticationError"), (429, "RateLimitError"), (529, "OverloadedError")],
)
def test_errors_are_replayed_as_anthropics_classes(
    claude: Any, anthropic_server: AnthropicWireServer, tmp_path: Path, status: int, error_class: str
) -> None:
    def call() -> Any:
        with pytest.raises(anthropic.APIStatusError) as caught:
            claude.messages.create(model=f"wire-error-{status}", max_tokens=8, messages=HELLO)
        return caught.value

    with nr.recording("record", dir=tmp_path):
        recorded = call()
    server_requests = len(anthropic_server.requests)
    anthropic_server.stop()
    with nr.recording("replay", dir=tmp_path):
        replayed = call()
    assert len(anthropic_server.requests) == server_requests
    assert type(replayed) is type(recorded) is getattr(anthropic, error_class)
    assert replayed.status_code == status
    assert replayed.body == recorded.body and replayed.body["error"]["type"] == recorded.body["error"]["type"]
    assert str(replayed) == str(recorded)
    (record,) = records(tmp_path)
    assert record["response"]["is_exception"] is True and record["response"]["body"] is None
    assert record["response"]["exception_data"]["type"] == error_class
    assert record["response"]["exception_data"]["status_code"] == status


async def test_async_client(aclaude: Any, anthropic_server: AnthropicWireServer, tmp_path: Path) -> None:
    async def calls() -> Any:
        message = await aclaude.messages.create(model=MODEL, max_tokens=64, messages=HELLO)
        stream = await aclaude.messages.create(model=MODEL, max_tokens=64, messages=WEATHER, stream=True)
        assert isinstance(stream, anthropic.AsyncStream)
        events = [e async for e in stream]
        async with aclaude.messages.stream(model=MODEL, max_tokens=64, tools=[WEATHER_TOOL], messages=WEATHER) as h:
            final = await h.get_final_message()
        counted = await aclaude.messages.count_tokens(model=MODEL, messages=HELLO)
        models = [m async for m in aclaude.models.list(limit=5)]
        return message, events, final, counted, models

    loop = asyncio.get_running_loop()

    def call() -> Any:
        return asyncio.run_coroutine_threadsafe(calls(), loop).result(30)

    recorded, replayed = await loop.run_in_executor(
        None, lambda: record_then_replay(call, anthropic_server, tmp_path, requests=6)
    )
    assert snap(replayed) == snap(recorded)
    assert [e.type for e in replayed[1]] == [e.type for e in recorded[1]]
    assert replayed[2].content[-1].type == "tool_use"


def test_an_interrupted_stream_is_not_saved(claude: Any, anthropic_server: AnthropicWireServer, tmp_path: Path) -> None:
    with nr.recording("record", dir=tmp_path):
        stream = claude.messages.create(model=MODEL, max_tokens=256, messages=HELLO, stream=True)
        for event in stream:
            if event.type == "content_block_delta":
                break
        stream.close()
        with claude.messages.stream(model=MODEL, max_tokens=256, messages=WEATHER) as helper:
            next(iter(helper.text_stream))  # leaves the block early
    assert files(tmp_path) == []
    anthropic_server.error_after_chunks = 4  # the connection is cut mid-stream
    with nr.recording("record", dir=tmp_path):
        with pytest.raises(STREAM_CUT_ERRORS):
            list(claude.messages.create(model=MODEL, max_tokens=99, messages=HELLO, stream=True))
    assert files(tmp_path) == []
    anthropic_server.stop()
    with nr.recording("replay", dir=tmp_path):
        with pytest.raises(nr.RecordingNotFoundError):
            list(claude.messages.create(model=MODEL, max_tokens=256, messages=HELLO, stream=True))
    del stream, helper


def test_a_closed_stream_is_logged_in_its_own_context(
    claude: Any, anthropic_server: AnthropicWireServer, tmp_path: Path
) -> None:
    """A stream left early is ended when it is closed (``close()``, a helper's ``with`` block),
    in its own recording block, not later when the garbage collector finds it."""
    gc.disable()  # nothing may depend on the collector
    try:
        with nr.recording("record", dir=tmp_path):
            stream = claude.messages.create(model=MODEL, max_tokens=256, messages=HELLO, stream=True)
            for _event in stream:
                break
            stream.close()
            with claude.messages.stream(model=MODEL, max_tokens=256, messages=WEATHER) as helper:
                next(iter(helper.text_stream))
            unread = claude.messages.create(model=MODEL, max_tokens=64, messages=HELLO, stream=True)
            unread.close()  # closed before reading anything
            ended = [(call.outcome, call.error) for call in nr.calls()]
        assert len(ended) == 3
        assert all(outcome == "error" and "cut short" in (error or "") for outcome, error in ended)
        nr.clear_calls()
        with nr.recording("record", dir=tmp_path / "other"):
            del stream, _event, helper, unread
            gc.collect()
            assert nr.calls() == []  # nothing of the earlier block lands in this one
        assert files(tmp_path) == []
    finally:
        gc.enable()


async def test_a_closed_async_stream_is_logged_at_once(aclaude: Any, tmp_path: Path) -> None:
    gc.disable()
    try:
        with nr.recording("record", dir=tmp_path):
            stream = await aclaude.messages.create(model=MODEL, max_tokens=256, messages=HELLO, stream=True)
            async for _event in stream:
                break
            await stream.close()
            ended = [(call.outcome, call.error) for call in nr.calls()]
        assert len(ended) == 1 and ended[0][0] == "error" and "cut short" in (ended[0][1] or "")
        assert files(tmp_path) == []
    finally:
        gc.enable()


def test_the_key_never_reaches_a_file(anthropic_server: AnthropicWireServer, tmp_path: Path) -> None:
    bearer, header = "sk-ant-api03-BEARERsecret0123456789", "sk-ant-api03-HEADERsecret9876543210"
    with nr.recording("record", dir=tmp_path):
        with anthropic.Anthropic(base_url=anthropic_server.base_url, api_key=bearer, max_retries=0) as by_key:
            by_key.messages.create(model=MODEL, max_tokens=64, messages=HELLO)
            list(by_key.messages.create(model=MODEL, max_tokens=64, messages=WEATHER, stream=True))
            by_key.models.list(limit=2)
            with pytest.raises(anthropic.RateLimitError):
                by_key.messages.create(model="wire-error-429", max_tokens=8, messages=HELLO)
        with anthropic.Anthropic(
            base_url=anthropic_server.base_url,
            api_key=None,
            default_headers={"x-api-key": header},
            max_retries=0,
        ) as by_header:
            by_header.messages.count_tokens(model=MODEL, messages=HELLO, extra_headers={"x-api-key": header})
    sent = [r.headers for r in anthropic_server.requests]
    assert any(h.get("authorization") == f"Bearer {bearer}" for h in sent)  # the keys did go out...
    assert any(h.get("x-api-key") == header for h in sent)
    written = files(tmp_path)
    assert len(written) == 5
    for path in written:  # ...and never into a file
        data = path.read_text()
        assert bearer not in data and header not in data
        assert '"x-api-key"' not in data.lower() and '"authorization"' not in data.lower()
        assert json.loads(data)["request"]["headers"] == {}


def test_replay_needs_no_key(anthropic_server: AnthropicWireServer, tmp_path: Path) -> None:
    with anthropic.Anthropic(base_url=anthropic_server.base_url, api_key=TEST_API_KEY, max_retries=0) as keyed:
        with nr.recording("record", dir=tmp_path):
            recorded = keyed.messages.create(model=MODEL, max_tokens=64, messages=HELLO)
    anthropic_server.stop()
    assert "ANTHROPIC_API_KEY" not in os.environ
    with nr.recording("replay", dir=tmp_path):
        client = anthropic.Anthropic(base_url=anthropic_server.base_url, max_retries=0)
        replayed = client.messages.create(model=MODEL, max_tokens=64, messages=HELLO)
        assert snap(replayed) == snap(recorded)
        with pytest.raises(nr.RecordingNotFoundError):  # a miss says so, never a key or connection error
            client.messages.create(model=MODEL, max_tokens=65, messages=HELLO)


def test_live_without_a_key_is_the_sdks_own_error_even_for_a_client_built_while_replaying(
    anthropic_server: AnthropicWireServer, tmp_path: Path
) -> None:
    """``live`` is the SDK as if unhooked: a client with no key raises anthropic's own error, not a
    missing recording. ``Anthropic()`` builds without a key, so one built while replaying is given
    nothing (no placeholder, nothing in ``ANTHROPIC_API_KEY``): in ``live`` it is the same keyless
    client, and nothing is sent."""
    keyless = anthropic.Anthropic(base_url=anthropic_server.base_url, max_retries=0)

    def refusal(client: Any = keyless) -> str:
        with pytest.raises(TypeError, match="Could not resolve authentication method") as info:
            client.messages.create(model=MODEL, max_tokens=8, messages=HELLO)
        return str(info.value)

    unhooked = refusal()
    with nr.recording("live", dir=tmp_path):
        assert refusal() == unhooked
    assert [(c.outcome, c.error) for c in nr.calls()] == [("live", "TypeError")]

    with nr.recording("replay", dir=tmp_path):
        built_while_replaying = anthropic.Anthropic(base_url=anthropic_server.base_url, max_retries=0)
        assert "ANTHROPIC_API_KEY" not in os.environ
    assert built_while_replaying.api_key is None
    with nr.recording("live", dir=tmp_path):
        assert refusal(built_while_replaying) == unhooked
    assert anthropic_server.requests == []


def _credentials_file_profile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """A ``user_oauth`` profile on disk, chosen by ``ANTHROPIC_PROFILE`` (anthropic >= 2.14)."""
    config = tmp_path / "anthropic-config"
    (config / "configs").mkdir(parents=True)
    (config / "credentials").mkdir()
    (config / "configs" / "work.json").write_text(json.dumps({"authentication": {"type": "user_oauth"}}))
    token = config / "credentials" / "work.json"
    token.write_text(json.dumps({"access_token": "sk-ant-oat-from-a-file", "expires_at": None}))
    token.chmod(0o600)
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(config))
    monkeypatch.setenv("ANTHROPIC_PROFILE", "work")
    return {}


def _token_provider(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    from anthropic.lib.credentials import AccessToken

    return {"credentials": lambda force_refresh=False: AccessToken("sk-ant-oat-from-a-provider")}


def _auth_token_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "sk-ant-token-from-the-environment")
    return {}


@pytest.mark.parametrize(
    "credentials",
    [
        lambda monkeypatch, tmp_path: {"auth_token": "sk-ant-token-given"},
        _auth_token_env,
        _token_provider,
        _credentials_file_profile,
        lambda monkeypatch, tmp_path: {"default_headers": {"x-api-key": "sk-ant-key-in-a-header"}},
        lambda monkeypatch, tmp_path: {"default_headers": {"Authorization": anthropic.Omit()}},
    ],
    ids=["auth_token", "ANTHROPIC_AUTH_TOKEN", "credentials provider", "profile file", "key header", "auth omitted"],
)
def test_every_credential_the_sdk_would_use_is_a_key(
    credentials: Callable[..., dict[str, Any]],
    anthropic_server: AnthropicWireServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A missing call is made (and recorded) with whatever credentials the SDK itself would send,
    not only ``ANTHROPIC_API_KEY``: the rule asks the SDK. With none at all, it is missing."""
    try:
        extra = credentials(monkeypatch, tmp_path)
        client = anthropic.Anthropic(base_url=anthropic_server.base_url, max_retries=0, **extra)
    except (ImportError, TypeError) as exc:  # an older anthropic without that way
        pytest.skip(f"anthropic {anthropic.__version__}: {exc}")
    # Sent as the SDK would send it, even with no credentials in it (a proxy may add them; here, a 401).
    sent = contextlib.suppress(anthropic.AuthenticationError)
    with nr.recording("record-if-missing", dir=tmp_path / "rec"):
        with sent:
            client.messages.count_tokens(model=MODEL, messages=HELLO)
        # Authorization omitted by the call itself.
        other = [{"role": "user", "content": "Another question"}]
        with sent:
            client.messages.count_tokens(model=MODEL, messages=other, extra_headers={"Authorization": anthropic.Omit()})
    assert len(anthropic_server.requests) == 2
    assert [c.outcome for c in nr.calls()] == ["recorded", "recorded"]  # an API error is recorded too


def test_no_credentials_at_all_is_a_missing_recording(anthropic_server: AnthropicWireServer, tmp_path: Path) -> None:
    client = anthropic.Anthropic(base_url=anthropic_server.base_url, max_retries=0)
    with nr.recording("record-if-missing", dir=tmp_path), pytest.raises(nr.RecordingNotFoundError) as info:
        client.messages.count_tokens(model=MODEL, messages=HELLO)
    assert "ANTHROPIC_API_KEY is not set and the client has no other credentials" in str(info.value)
    assert anthropic_server.requests == []


def test_openai_and_anthropic_in_one_recording_block(
    claude: Any,
    anthropic_server: AnthropicWireServer,
    client: openai.OpenAI,
    wire_server: WireServer,
    tmp_path: Path,
) -> None:
    def both() -> Any:
        gpt = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
        chunks = list(
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}], stream=True)
        )
        message = claude.messages.create(model=MODEL, max_tokens=64, messages=HELLO)
        events = list(claude.messages.create(model=MODEL, max_tokens=64, messages=HELLO, stream=True))
        return gpt, chunks, message, events

    with nr.recording("record", dir=tmp_path, scope="notebooks/both.ipynb"):
        recorded = both()
    assert [c.endpoint for c in nr.calls()] == ["/v1/chat/completions"] * 2 + ["/v1/messages"] * 2, nr.calls()
    assert len(files(tmp_path)) == 4
    assert {r["test_id"] for r in records(tmp_path)} == {"notebooks/both.ipynb"}
    wire_server.stop()
    anthropic_server.stop()
    nr.clear_calls()
    with nr.recording("replay", dir=tmp_path, scope="notebooks/both.ipynb"):
        replayed = both()
    assert snap(replayed) == snap(recorded)
    assert {c.outcome for c in nr.calls()} == {"replayed"}
    types = sorted(
        (b["__type__"] if isinstance(b, dict) else b[0]["__type__"]).split(".")[0]
        for b in (r["response"]["body"] for r in records(tmp_path))
    )
    assert types == ["anthropic", "anthropic", "openai", "openai"]


def test_batches_create_and_retrieve(claude: Any, anthropic_server: AnthropicWireServer, tmp_path: Path) -> None:
    requests = [{"custom_id": "hello", "params": {"model": MODEL, "max_tokens": 64, "messages": HELLO}}]

    def call() -> Any:
        batch = claude.messages.batches.create(requests=requests)
        ended = claude.messages.batches.retrieve(batch.id)
        return batch, ended

    recorded, replayed = record_then_replay(call, anthropic_server, tmp_path, requests=2)
    assert snap(replayed) == snap(recorded)
    assert replayed[1].processing_status == "ended"
    assert sorted(r["request"]["endpoint"] for r in records(tmp_path)) == [
        "/v1/messages/batches",
        f"/v1/messages/batches/{recorded[0].id}",
    ]


def test_batch_results_are_recorded_and_replayed(
    claude: Any, anthropic_server: AnthropicWireServer, tmp_path: Path
) -> None:
    """``messages.batches.results()`` returns a ``JSONLDecoder`` that reads the response as the
    caller iterates it: it went through live, logged "body unread", no file, and replay was a
    missing recording. (``results()`` retrieves the batch first, then GETs its ``results_url``.)"""
    requests = [
        {"custom_id": f"q{i}", "params": {"model": MODEL, "max_tokens": 64, "messages": HELLO}} for i in range(2)
    ]

    def call() -> Any:
        batch = claude.messages.batches.create(requests=requests)
        claude.messages.batches.retrieve(batch.id)  # ended
        return [(r.custom_id, r.result.type, r.result.message) for r in claude.messages.batches.results(batch.id)]

    recorded, replayed = record_then_replay(call, anthropic_server, tmp_path, requests=4)
    assert [r[:2] for r in recorded] == [("q0", "succeeded"), ("q1", "succeeded")]
    assert snap(replayed) == snap(recorded)
    assert isinstance(replayed[0][2], Message)
    assert [r["request"]["endpoint"].rsplit("/", 1)[-1] for r in records(tmp_path)].count("results") == 1


async def test_async_batch_results_are_recorded_and_replayed(
    anthropic_server: AnthropicWireServer, tmp_path: Path
) -> None:
    requests = [{"custom_id": "q", "params": {"model": MODEL, "max_tokens": 64, "messages": HELLO}}]
    client = anthropic.AsyncAnthropic(base_url=anthropic_server.base_url, api_key=TEST_API_KEY, max_retries=0)

    async def call() -> Any:
        batch = await client.messages.batches.create(requests=requests)
        await client.messages.batches.retrieve(batch.id)
        return [(r.custom_id, r.result.message) async for r in await client.messages.batches.results(batch.id)]

    with nr.recording("record", dir=tmp_path):
        recorded = await call()
    assert [c.outcome for c in nr.calls()] == ["recorded"] * 4
    anthropic_server.stop()
    nr.clear_calls()
    with nr.recording("replay", dir=tmp_path):
        replayed = await call()
    assert [c.outcome for c in nr.calls()] == ["replayed"] * 4
    assert snap(replayed) == snap(recorded) and recorded[0][0] == "q"
    await client.close()


def test_the_tool_runner_replays(claude: Any, anthropic_server: AnthropicWireServer, tmp_path: Path) -> None:
    """anthropic 2.17's tool runner reads ``_workspace_id`` back from each reply, which the SDK
    sets beside ``_request_id`` on every top-level model: replay set only ``_request_id``, so the
    runner raised ``AttributeError: 'BetaMessage' object has no attribute '_workspace_id'``."""
    if not hasattr(claude.beta.messages, "tool_runner"):
        pytest.skip("this anthropic has no tool runner")

    @anthropic.beta_tool
    def get_weather(location: str) -> str:
        """The weather for a location."""
        return f"Sunny in {location}"

    ask = [{"role": "user", "content": "What is the weather in Paris?"}]

    def call() -> Any:
        runner = claude.beta.messages.tool_runner(model=MODEL, max_tokens=256, tools=[get_weather], messages=ask)
        replies = list(runner)
        streamed = claude.beta.messages.tool_runner(
            model=MODEL, max_tokens=256, tools=[get_weather], messages=ask, stream=True
        )
        return replies, [s.get_final_message() for s in streamed]

    (recorded, recorded_streamed), (replayed, replayed_streamed) = record_then_replay(
        call, anthropic_server, tmp_path, requests=4
    )
    assert [m.stop_reason for m in replayed] == ["tool_use", "end_turn"]
    assert snap(replayed) == snap(recorded) and snap(replayed_streamed) == snap(recorded_streamed)
    assert [(m._request_id, m._workspace_id) for m in replayed] == [(m._request_id, m._workspace_id) for m in recorded]
    assert recorded[0]._workspace_id == WORKSPACE_ID


def test_a_long_stream_replays_every_event(claude: Any, anthropic_server: AnthropicWireServer, tmp_path: Path) -> None:
    def call() -> Any:
        messages = [{"role": "user", "content": LONG_PROMPT}]
        return list(claude.messages.create(model=MODEL, max_tokens=4096, messages=messages, stream=True))

    recorded, replayed = record_then_replay(call, anthropic_server, tmp_path)
    assert len(replayed) == len(recorded) == 473
    assert snap(replayed) == snap(recorded)


# ---------------------------------------------------------------------------------------------
# %%apirec in a real kernel, the pytest plugin, notebook-recorder run
# ---------------------------------------------------------------------------------------------

NOTEBOOK_CELLS = [
    "%load_ext notebook_recorder",
    "import anthropic\nclaude = anthropic.Anthropic(max_retries=0)",
    (
        "%%apirec record-if-missing --dir recordings/claude\n"
        "message = claude.messages.create(\n"
        f"    model={MODEL!r}, max_tokens=128, messages=[{{'role': 'user', 'content': 'Hello, Claude'}}]\n"
        ")\n"
        "print(message.content[0].text)"
    ),
    (
        "%%apirec record-if-missing --dir recordings/claude\n"
        "with claude.messages.stream(\n"
        f"    model={MODEL!r}, max_tokens=128,\n"
        "    messages=[{'role': 'user', 'content': 'What is the capital of France?'}],\n"
        ") as stream:\n"
        "    for text in stream.text_stream:\n"
        "        print(text, end='|')\n"
        "print()\n"
        "print(stream.get_final_message().usage.output_tokens)"
    ),
    "import notebook_recorder as nr\nprint([(c.endpoint, c.outcome) for c in nr.calls()])",
]


def _kernel_env(**extra: str) -> dict[str, str]:
    hidden = ("APIREC_MODE", "APIREC_DIR", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")
    env = {k: v for k, v in os.environ.items() if k not in hidden}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def _stdout(nb: Any) -> list[str]:
    return [
        "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        for cell in nb.cells
        if cell.cell_type == "code"
    ]


@pytest.mark.frontend
@pytest.mark.timeout(180)
def test_apirec_cell_magic_in_a_real_kernel(anthropic_server: AnthropicWireServer, tmp_path: Path) -> None:
    from nbclient import NotebookClient

    path = tmp_path / "claude.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in NOTEBOOK_CELLS]), path)

    def execute(**env: str) -> Any:
        nb = nbformat.read(path, as_version=4)
        client = NotebookClient(nb, kernel_name="python3", timeout=180, resources={"metadata": {"path": str(tmp_path)}})
        return client.execute(env=_kernel_env(**env))

    online = execute(ANTHROPIC_BASE_URL=anthropic_server.base_url, ANTHROPIC_API_KEY=TEST_API_KEY)
    out = _stdout(online)
    assert out[2] == "Hello! It's nice to meet you. How can I help you today?\n"
    assert out[3].startswith("The capital|") and out[3].count("|") > 2
    assert out[4].strip() == "[('/v1/messages', 'recorded'), ('/v1/messages', 'recorded')]"
    assert len(files(tmp_path / "recordings" / "claude")) == 2
    served = len(anthropic_server.requests)
    assert served == 2
    anthropic_server.stop()

    offline = execute(ANTHROPIC_BASE_URL=anthropic_server.base_url)  # no key, the server stopped
    replayed = _stdout(offline)
    assert replayed[2:4] == out[2:4]
    assert replayed[4].strip() == "[('/v1/messages', 'replayed'), ('/v1/messages', 'replayed')]"
    assert len(anthropic_server.requests) == served


PYTEST_FILE = f"""
import anthropic
import pytest

claude = anthropic.Anthropic(max_retries=0)  # at import time: in replay, no key is set


@pytest.mark.apirec
def test_claude():
    message = claude.messages.create(
        model={MODEL!r}, max_tokens=64, messages=[{{"role": "user", "content": "Hello, Claude"}}]
    )
    assert message.content[0].text.startswith("Hello!")


@pytest.mark.apirec
def test_claude_stream():
    with claude.messages.stream(
        model={MODEL!r}, max_tokens=64, messages=[{{"role": "user", "content": "What is the capital of France?"}}]
    ) as stream:
        assert "".join(stream.text_stream) == "The capital of France is Paris."
"""


@pytest.mark.frontend
@pytest.mark.timeout(300)
def test_pytest_plugin_marker(
    pytester: pytest.Pytester, anthropic_server: AnthropicWireServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_claude=PYTEST_FILE)
    monkeypatch.setenv("ANTHROPIC_API_KEY", TEST_API_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", anthropic_server.base_url)
    # Sessions in this process, as most of test_pytest_plugin's (the options quiet pytest-asyncio).
    options = ("-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function")
    result = pytester.runpytest_inprocess(*options, "--apirec-mode=record")
    result.assert_outcomes(passed=2)
    directory = pytester.path / "recordings" / "test_claude"
    assert sorted(r["test_id"] for r in records(directory)) == [
        "test_claude.py::test_claude",
        "test_claude.py::test_claude_stream",
    ]
    anthropic_server.stop()
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    result = pytester.runpytest_inprocess(*options)  # replay, the default
    result.assert_outcomes(passed=2)
    assert len(anthropic_server.requests) == 2


@pytest.mark.frontend
@pytest.mark.timeout(300)
def test_cli_run_records_then_checks_offline(anthropic_server: AnthropicWireServer, tmp_path: Path) -> None:
    path = tmp_path / "claude.ipynb"
    # the last cell prints the outcomes (recorded, then replayed): not a cell to --check
    cells = [NOTEBOOK_CELLS[0], "%apirec record-if-missing", *NOTEBOOK_CELLS[1:-1]]
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells]), path)

    def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "notebook_recorder.cli", *args],
            env=_kernel_env(**env),
            capture_output=True,
            text=True,
            timeout=240,
        )

    online = {"ANTHROPIC_BASE_URL": anthropic_server.base_url, "ANTHROPIC_API_KEY": TEST_API_KEY}
    result = cli("run", str(path), "--mode", "record", "--output", str(path), **online)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 calls recorded" in result.stdout
    anthropic_server.stop()
    result = cli("run", str(path), "--mode", "replay", "--check", ANTHROPIC_BASE_URL=anthropic_server.base_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "outputs match" in result.stdout
    assert len(anthropic_server.requests) == 2


def test_recording_from_threads(claude: Any, anthropic_server: AnthropicWireServer, tmp_path: Path) -> None:
    """Two threads recording different questions at once: two files, each its own answer."""
    questions = ["Hello, Claude", "What is the capital of France?"]
    results: dict[str, str] = {}

    def ask(question: str) -> None:
        message = claude.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": question}])
        results[question] = message.content[0].text

    with nr.recording("record", dir=tmp_path):
        threads = [threading.Thread(target=ask, args=(q,)) for q in questions]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert len(files(tmp_path)) == 2
    assert results["What is the capital of France?"] == "The capital of France is Paris."


# ---------------------------------------------------------------------------------------------
# anthropic is optional: never imported by us, hooked even when imported after recording starts
# ---------------------------------------------------------------------------------------------


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=_kernel_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_recording_does_not_import_anthropic(tmp_path: Path) -> None:
    code = f"""
        import sys
        import notebook_recorder as nr
        loaded = ["anthropic" in sys.modules]
        with nr.recording("record", dir={str(tmp_path)!r}):
            loaded.append("anthropic" in sys.modules)
        nr.start("replay", dir={str(tmp_path)!r})
        loaded.append("anthropic" in sys.modules)
        print(loaded)
    """
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[False, False, False]"


@pytest.mark.frontend
def test_anthropic_imported_after_recording_started(anthropic_server: AnthropicWireServer, tmp_path: Path) -> None:
    code = f"""
        import notebook_recorder as nr
        nr.start(MODE, dir={str(tmp_path)!r})
        import anthropic  # only now, as a notebook cell after %apirec would
        claude = anthropic.Anthropic(max_retries=0)
        message = claude.messages.create(model={MODEL!r}, max_tokens=64, messages={HELLO!r})
        print(message.content[0].text)
        print([call.outcome for call in nr.calls()])
    """
    online = {"ANTHROPIC_BASE_URL": anthropic_server.base_url, "ANTHROPIC_API_KEY": TEST_API_KEY}
    recorded = _python(code.replace("MODE", "'record'"), **online)
    assert recorded.returncode == 0, recorded.stderr
    assert recorded.stdout.splitlines()[1] == "['recorded']"
    assert len(files(tmp_path)) == 1
    anthropic_server.stop()
    replayed = _python(code.replace("MODE", "'replay'"), ANTHROPIC_BASE_URL=anthropic_server.base_url)
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout.splitlines() == [recorded.stdout.splitlines()[0], "['replayed']"]
    assert len(anthropic_server.requests) == 1


@pytest.mark.frontend
@pytest.mark.parametrize("already_recording", [False, True], ids=["recording starts", "recording stops and starts"])
def test_anthropic_imported_in_one_thread_while_another_starts_or_stops_recording(
    tmp_path: Path, already_recording: bool
) -> None:
    """``import anthropic`` in one thread while another starts (or stops and starts again)
    recording: both succeed, and the hook is in place afterwards. Installing the hook imported
    anthropic's private modules while the other thread was still importing them: each saw the
    other's half-run modules, and both failed ("partially initialized module"), every time."""
    code = f"""
        import faulthandler, sys, threading
        import notebook_recorder as nr
        faulthandler.dump_traceback_later(60, exit=True)  # a deadlock fails the test, not the suite
        errors, importing, imported = [], threading.Event(), threading.Event()

        def importer():
            importing.wait()
            try:
                import anthropic  # noqa: F401
            except Exception as exc:
                errors.append(f"import: {{exc!r}}")
            imported.set()

        def recorder():
            try:
                recording = nr.recording("replay", dir={str(tmp_path)!r})
                if {already_recording!r}:
                    recording.__enter__()
                importing.set()
                while not imported.is_set():
                    if {already_recording!r}:
                        recording.__exit__(None, None, None)
                    recording = nr.recording("replay", dir={str(tmp_path)!r})
                    recording.__enter__()
                    if not {already_recording!r}:
                        break
                recording.__exit__(None, None, None)
            except Exception as exc:
                errors.append(f"recording: {{exc!r}}")
                importing.set()

        threads = [threading.Thread(target=importer), threading.Thread(target=recorder)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        import anthropic
        with nr.recording("replay", dir={str(tmp_path)!r}):
            claude = anthropic.Anthropic(api_key="sk-ant-unused", base_url="http://127.0.0.1:9", max_retries=0)
            try:
                claude.messages.create(model={MODEL!r}, max_tokens=8, messages={HELLO!r})
            except nr.RecordingNotFoundError:
                errors.append("hooked")
        print(errors)
    """
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['hooked']", done.stdout


def test_the_stored_body_is_the_json_that_was_sent(
    claude: Any, anthropic_server: AnthropicWireServer, tmp_path: Path
) -> None:
    """FORMAT.md: ``request.body`` is the JSON sent, so the key is the same in every process (no
    SDK sentinel such as ``Omit`` may reach it)."""
    with nr.recording("record", dir=tmp_path):
        claude.messages.create(model=MODEL, max_tokens=64, messages=HELLO)
        list(claude.messages.create(model=MODEL, max_tokens=64, messages=HELLO, stream=True))
        with claude.messages.stream(model=MODEL, max_tokens=64, tools=[WEATHER_TOOL], messages=WEATHER) as stream:
            stream.get_final_message()
        claude.messages.count_tokens(model=MODEL, messages=HELLO)
        claude.messages.batches.create(
            requests=[{"custom_id": "a", "params": {"model": MODEL, "max_tokens": 8, "messages": HELLO}}]
        )
    sent = {json.dumps(r.json, sort_keys=True) for r in anthropic_server.requests}
    stored = {json.dumps(r["request"]["body"], sort_keys=True) for r in records(tmp_path)}
    assert stored == sent
