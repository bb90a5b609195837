"""Record mode is transparent, and replay returns what the caller saw (issue 11).

The caller gets exactly what the server sent on every call style while recording: the server's
ids and ``created``, its ``x-request-id``, its binary bodies, and the SDK's own raw response
objects, open and unread, streaming live. The file stores that, and replay (with the server
stopped) gives it back. All through the real SDK and real HTTP to the local wire server.
"""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletion
from wire_server import TEST_API_KEY, WireServer, binary_content

import notebook_recorder as nr

HI = [{"role": "user", "content": "Hi"}]
CHAT = {"model": "gpt-4o", "messages": HI}


def files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.json"))


def stored(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text())["response"] for path in files(directory)]


def request_ids(server: WireServer) -> list[str]:
    return [request.request_id for request in server.requests]


def offline(server: WireServer) -> openai.OpenAI:
    """A client for replay: the server is stopped, so any request would fail."""
    server.stop()
    return openai.OpenAI(base_url=server.base_url, api_key=TEST_API_KEY, max_retries=0)


def async_offline(server: WireServer) -> openai.AsyncOpenAI:
    server.stop()
    return openai.AsyncOpenAI(base_url=server.base_url, api_key=TEST_API_KEY, max_retries=0)


# ---------------------------------------------------------------------------------------------
# Ids, timestamps and request ids are the server's
# ---------------------------------------------------------------------------------------------


def _chat_calls(c: openai.OpenAI) -> list[Any]:
    plain = c.chat.completions.create(**CHAT)
    raw = c.chat.completions.with_raw_response.create(model="gpt-4o", messages=[*HI, *HI])
    with c.chat.completions.with_streaming_response.create(model="gpt-4o", messages=[*HI, *HI, *HI]) as streamed:
        streamed_parsed = streamed.parse()
        streamed_headers = dict(streamed.headers)
    return [
        (plain, plain._request_id),
        (raw.parse(), raw.headers["x-request-id"], raw.request_id),
        (streamed_parsed, streamed_headers["x-request-id"], streamed_parsed._request_id),
    ]


def test_ids_created_and_request_ids_are_the_servers_while_recording_and_in_replay(
    wire_server: WireServer, client: openai.OpenAI, tmp_path: Path
) -> None:
    with nr.recording("record", dir=tmp_path):
        recorded = _chat_calls(client)
    sent = WireServer.answer_for(CHAT)
    assert isinstance(sent, dict)
    plain = recorded[0][0]
    assert isinstance(plain, ChatCompletion)
    assert (plain.id, plain.created) == (sent["id"], sent["created"])  # not rewritten
    served = request_ids(wire_server)
    assert [rest for _, *rest in recorded] == [[served[0]], [served[1]] * 2, [served[2]] * 2]
    bodies = [response["body"]["__data__"] for response in stored(tmp_path)]
    assert sorted((b["id"], b["created"]) for b in bodies) == sorted((r[0].id, r[0].created) for r in recorded)
    for response in stored(tmp_path):
        assert response["headers"]["x-request-id"] in served
        assert response["headers"]["openai-version"] == "2020-10-01"

    with nr.recording("replay", dir=tmp_path), offline(wire_server) as c:
        replayed = _chat_calls(c)
    assert [(r[0].model_dump(), *r[1:]) for r in replayed] == [(r[0].model_dump(), *r[1:]) for r in recorded]


async def test_async_ids_and_request_ids_are_the_servers(
    wire_server: WireServer, async_client: openai.AsyncOpenAI, tmp_path: Path
) -> None:
    async def calls(c: openai.AsyncOpenAI) -> list[Any]:
        plain = await c.chat.completions.create(**CHAT)
        raw = await c.chat.completions.with_raw_response.create(model="gpt-4o", messages=[*HI, *HI])
        parsed = raw.parse()
        return [(plain.id, plain.created, plain._request_id), (parsed.id, raw.headers["x-request-id"])]

    with nr.recording("record", dir=tmp_path):
        recorded = await calls(async_client)
    sent = WireServer.answer_for(CHAT)
    assert isinstance(sent, dict)
    assert recorded[0] == (sent["id"], sent["created"], request_ids(wire_server)[0])
    assert recorded[1][1] == request_ids(wire_server)[1]
    with nr.recording("replay", dir=tmp_path):
        async with async_offline(wire_server) as c:
            assert await calls(c) == recorded


def test_structured_parse_keeps_the_request_id(wire_server: WireServer, client: openai.OpenAI, tmp_path: Path) -> None:
    def call(c: openai.OpenAI) -> tuple[str, str | None]:
        parsed = c.chat.completions.parse(model="gpt-4o", messages=HI)
        return parsed.id, parsed._request_id

    live = call(client)
    assert live[1] == request_ids(wire_server)[-1]  # the id the server sent
    with nr.recording("record", dir=tmp_path):
        recorded = call(client)
    assert recorded[1] == request_ids(wire_server)[-1]
    with nr.recording("replay", dir=tmp_path), offline(wire_server) as c:
        assert call(c) == recorded


def test_only_headers_without_secrets_are_stored(
    wire_server: WireServer, client: openai.OpenAI, tmp_path: Path
) -> None:
    with nr.recording("record", dir=tmp_path):
        client.chat.completions.create(**CHAT)
    (response,) = stored(tmp_path)
    assert set(response["headers"]) <= {"x-request-id", "openai-version", "content-type"}
    text = files(tmp_path)[0].read_text().lower()
    assert TEST_API_KEY not in text and "authorization" not in text and "set-cookie" not in text


def test_files_without_headers_replay_as_before(wire_server: WireServer, client: openai.OpenAI, tmp_path: Path) -> None:
    with nr.recording("record", dir=tmp_path):
        recorded = client.chat.completions.create(**CHAT)
    (path,) = files(tmp_path)
    record = json.loads(path.read_text())
    del record["response"]["headers"]
    path.write_text(json.dumps(record))
    with nr.recording("replay", dir=tmp_path), offline(wire_server) as c:
        replayed = c.chat.completions.create(**CHAT)
        raw = c.chat.completions.with_raw_response.create(**CHAT)
    assert replayed.model_dump() == recorded.model_dump()
    assert replayed._request_id is None and raw.headers.get("x-request-id") is None


# ---------------------------------------------------------------------------------------------
# Binary bodies
# ---------------------------------------------------------------------------------------------

SPEECH = {"model": "tts-1", "voice": "alloy", "input": "Hello there"}


def _binary_calls(c: openai.OpenAI) -> list[bytes]:
    speech = c.audio.speech.create(**SPEECH).content  # type: ignore[arg-type]
    with c.audio.speech.with_streaming_response.create(**{**SPEECH, "input": "Bye"}) as response:  # type: ignore[arg-type]
        streamed = b"".join(response.iter_bytes())
    content = c.files.content("file-abc123").content
    raw = c.files.with_raw_response.content("file-def456").content
    return [speech, streamed, content, raw]


def test_binary_bodies_are_recorded_and_replayed_byte_for_byte(
    wire_server: WireServer, client: openai.OpenAI, tmp_path: Path
) -> None:
    with nr.recording("record", dir=tmp_path):
        recorded = _binary_calls(client)
    assert recorded[2] == binary_content("file:file-abc123", 10_000)
    assert recorded[0].startswith(b"ID3") and len(set(recorded[0])) == 256  # not text
    responses = stored(tmp_path)
    assert len(responses) == 4
    assert sorted(base64.b64decode(r["body_base64"]) for r in responses) == sorted(recorded)
    assert {r["content_type"] for r in responses} == {"audio/mpeg", "application/octet-stream"}
    assert all(r["body"] is None and r["is_streaming"] is False for r in responses)
    assert {c.outcome for c in nr.calls()} == {"recorded"}

    nr.clear_calls()
    with nr.recording("replay", dir=tmp_path), offline(wire_server) as c:
        assert _binary_calls(c) == recorded
    assert {c.outcome for c in nr.calls()} == {"replayed"}


async def test_async_binary_bodies_round_trip(
    wire_server: WireServer, async_client: openai.AsyncOpenAI, tmp_path: Path
) -> None:
    async def calls(c: openai.AsyncOpenAI) -> list[bytes]:
        speech = (await c.audio.speech.create(**SPEECH)).content  # type: ignore[arg-type]
        async with c.audio.speech.with_streaming_response.create(**{**SPEECH, "input": "Bye"}) as response:  # type: ignore[arg-type]
            streamed = b"".join([part async for part in response.iter_bytes()])
        content = (await c.files.content("file-abc123")).content
        return [speech, streamed, content]

    with nr.recording("record", dir=tmp_path):
        recorded = await calls(async_client)
    assert len(files(tmp_path)) == 3
    with nr.recording("replay", dir=tmp_path):
        async with async_offline(wire_server) as c:
            assert await calls(c) == recorded


def test_an_unread_streamed_body_is_not_saved(wire_server: WireServer, client: openai.OpenAI, tmp_path: Path) -> None:
    with nr.recording("record", dir=tmp_path):
        with client.audio.speech.with_streaming_response.create(**SPEECH) as response:  # type: ignore[arg-type]
            assert not response.is_closed
        with client.chat.completions.with_streaming_response.create(**CHAT) as response:
            pass
    assert files(tmp_path) == []
    assert [(c.outcome, c.error) for c in nr.calls()] == [("live", "response body never read; not saved")] * 2


# ---------------------------------------------------------------------------------------------
# Raw streams pass through live while recording
# ---------------------------------------------------------------------------------------------


def test_with_streaming_response_streams_live_while_recording(
    wire_server: WireServer, client: openai.OpenAI, tmp_path: Path
) -> None:
    wire_server.hold = held = threading.Event()
    with nr.recording("record", dir=tmp_path):
        with client.chat.completions.with_streaming_response.create(**CHAT, stream=True) as response:
            assert not response.is_closed  # the SDK's own response, open and unread
            lines = response.iter_lines()
            first = next(line for line in lines if line)
            # The server has sent its first event only, and waits: this line came through live.
            assert not held.is_set() and first.startswith("data: {")
            assert files(tmp_path) == []
            held.set()
            recorded_lines = [first, *lines]
    assert recorded_lines[-2:] == ["data: [DONE]", ""] or recorded_lines[-1] == "data: [DONE]"
    (response_record,) = stored(tmp_path)
    events = [line for line in recorded_lines if line.startswith("data: {")]
    assert len(response_record["body"]) == len(events)
    assert [c["__data__"] for c in response_record["body"]] == [json.loads(e[6:]) for e in events]
    offsets = response_record["chunk_offsets_ms"]
    assert len(offsets) == len(events) and offsets == sorted(offsets)
    assert response_record["headers"]["x-request-id"] == request_ids(wire_server)[0]

    with nr.recording("replay", dir=tmp_path), offline(wire_server) as c:
        with c.chat.completions.with_streaming_response.create(**CHAT, stream=True) as replayed:
            assert replayed.headers["x-request-id"] == request_ids(wire_server)[0]
            chunks = list(replayed.parse())
    assert [chunk.model_dump(exclude_unset=True) for chunk in chunks] == [json.loads(e[6:]) for e in events]


async def test_async_with_streaming_response_streams_live_while_recording(
    wire_server: WireServer, async_client: openai.AsyncOpenAI, tmp_path: Path
) -> None:
    wire_server.hold = held = threading.Event()
    with nr.recording("record", dir=tmp_path):
        async with async_client.chat.completions.with_streaming_response.create(**CHAT, stream=True) as response:
            assert not response.is_closed
            stream = await response.parse()
            first = await stream.__anext__()
            assert not held.is_set() and files(tmp_path) == []
            held.set()
            recorded = [first, *[chunk async for chunk in stream]]
    (response_record,) = stored(tmp_path)
    assert [c["__data__"]["id"] for c in response_record["body"]] == [c.id for c in recorded]
    with nr.recording("replay", dir=tmp_path):
        async with async_offline(wire_server) as c:
            async with c.chat.completions.with_streaming_response.create(**CHAT, stream=True) as replayed:
                chunks = [chunk async for chunk in await replayed.parse()]
    assert [c.model_dump() for c in chunks] == [c.model_dump() for c in recorded]


def test_raw_stream_true_streams_live_while_recording(
    wire_server: WireServer, client: openai.OpenAI, tmp_path: Path
) -> None:
    """litellm's path for every stream: ``with_raw_response.create(..., stream=True)``."""
    wire_server.hold = held = threading.Event()
    with nr.recording("record", dir=tmp_path):
        raw = client.chat.completions.with_raw_response.create(**CHAT, stream=True)
        assert not raw.http_response.is_closed
        stream = raw.parse()
        first = next(iter(stream))
        assert not held.is_set() and files(tmp_path) == []
        held.set()
        recorded = [first, *stream]
    (response_record,) = stored(tmp_path)
    assert response_record["is_streaming"] is True
    assert len(response_record["chunk_offsets_ms"]) == len(recorded)
    with nr.recording("replay", dir=tmp_path), offline(wire_server) as c:
        replayed = list(c.chat.completions.with_raw_response.create(**CHAT, stream=True).parse())
    assert [c.model_dump() for c in replayed] == [c.model_dump() for c in recorded]


async def test_async_raw_stream_true_streams_live_while_recording(
    wire_server: WireServer, async_client: openai.AsyncOpenAI, tmp_path: Path
) -> None:
    wire_server.hold = held = threading.Event()
    with nr.recording("record", dir=tmp_path):
        raw = await async_client.chat.completions.with_raw_response.create(**CHAT, stream=True)
        stream = raw.parse()
        first = await stream.__anext__()
        assert not held.is_set() and files(tmp_path) == []
        held.set()
        recorded = [first, *[chunk async for chunk in stream]]
    assert len(stored(tmp_path)) == 1
    with nr.recording("replay", dir=tmp_path):
        async with async_offline(wire_server) as c:
            replayed = [
                chunk
                async for chunk in (await c.chat.completions.with_raw_response.create(**CHAT, stream=True)).parse()
            ]
    assert [c.model_dump() for c in replayed] == [c.model_dump() for c in recorded]


def test_responses_api_raw_stream_is_recorded_from_its_named_events(
    wire_server: WireServer, client: openai.OpenAI, tmp_path: Path
) -> None:
    with nr.recording("record", dir=tmp_path):
        with client.responses.with_streaming_response.create(model="gpt-4o", input="Hi", stream=True) as response:
            recorded = list(response.parse())
    (response_record,) = stored(tmp_path)
    assert [e["__data__"]["type"] for e in response_record["body"]] == [e.type for e in recorded]
    with nr.recording("replay", dir=tmp_path), offline(wire_server) as c:
        replayed = list(c.responses.create(model="gpt-4o", input="Hi", stream=True))
    assert [e.model_dump() for e in replayed] == [e.model_dump() for e in recorded]


def _cut_raw_lines(c: openai.OpenAI) -> None:
    with c.chat.completions.with_streaming_response.create(**CHAT, stream=True) as response:
        for line in response.iter_lines():
            if line:
                break


def _cut_raw_parse(c: openai.OpenAI) -> None:
    stream = c.chat.completions.with_raw_response.create(**CHAT, stream=True).parse()
    next(iter(stream))
    stream.close()


def _cut_raw_by_server(c: openai.OpenAI) -> None:
    with c.chat.completions.with_streaming_response.create(**CHAT, stream=True) as response:
        with pytest.raises(Exception) as info:
            list(response.iter_lines())
        assert not isinstance(info.value, AssertionError)


@pytest.mark.parametrize("cut", [_cut_raw_lines, _cut_raw_parse, _cut_raw_by_server])
def test_a_raw_stream_cut_short_is_not_saved(
    cut: Any, wire_server: WireServer, client: openai.OpenAI, tmp_path: Path
) -> None:
    if cut is _cut_raw_by_server:
        wire_server.error_after_chunks = 3
    with nr.recording("record", dir=tmp_path):
        cut(client)
    assert files(tmp_path) == []
    (call,) = nr.calls()
    assert call.outcome == "error" and "not saved" in str(call.error)
    # The next run records it again, in full.
    wire_server.error_after_chunks = None
    with nr.recording("record-if-missing", dir=tmp_path):
        with client.chat.completions.with_streaming_response.create(**CHAT, stream=True) as response:
            chunks = list(response.parse())
    assert len(stored(tmp_path)[0]["body"]) == len(chunks)


async def test_an_async_raw_stream_cut_short_is_not_saved(
    wire_server: WireServer, async_client: openai.AsyncOpenAI, tmp_path: Path
) -> None:
    with nr.recording("record", dir=tmp_path):
        async with async_client.chat.completions.with_streaming_response.create(**CHAT, stream=True) as response:
            async for line in response.iter_lines():
                if line:
                    break
    assert files(tmp_path) == []
    assert nr.calls()[0].outcome == "error"


# ---------------------------------------------------------------------------------------------
# A post-parser on a stream (the agents helpers wrap their event stream this way)
# ---------------------------------------------------------------------------------------------


class Wrapped:
    def __init__(self, stream: Any) -> None:
        self.stream = stream


def _post_parsed_stream(c: openai.OpenAI) -> Any:
    from openai import Stream
    from openai._base_client import make_request_options
    from openai.types.chat import ChatCompletionChunk

    return c.post(
        "/chat/completions",
        body={**CHAT, "stream": True},
        cast_to=ChatCompletion,
        options=make_request_options(post_parser=Wrapped),
        stream=True,
        stream_cls=Stream[ChatCompletionChunk],
    )


@pytest.mark.parametrize("mode", ["live", "record"])
def test_a_streams_post_parser_runs_while_recording_and_in_replay(
    mode: str, wire_server: WireServer, client: openai.OpenAI, tmp_path: Path
) -> None:
    with nr.recording(mode, dir=tmp_path):
        result = _post_parsed_stream(client)
        assert isinstance(result, Wrapped)
        recorded = [chunk.model_dump() for chunk in result.stream]
    if mode == "live":
        return
    with nr.recording("replay", dir=tmp_path), offline(wire_server) as c:
        replayed = _post_parsed_stream(c)
        assert isinstance(replayed, Wrapped)
        assert [chunk.model_dump() for chunk in replayed.stream] == recorded


# ---------------------------------------------------------------------------------------------
# A compressed stream is stored as the caller read it, decompressed
# ---------------------------------------------------------------------------------------------


def test_a_gzip_stream_is_recorded_decoded(wire_server: WireServer, client: openai.OpenAI, tmp_path: Path) -> None:
    wire_server.gzip_streams = True
    with nr.recording("record", dir=tmp_path):
        with client.chat.completions.with_streaming_response.create(**CHAT, stream=True) as response:
            assert response.headers["content-encoding"] == "gzip"
            lines = [line for line in response.iter_lines() if line.startswith("data: {")]
        sent = [json.loads(line[6:]) for line in lines]
        assert sent == WireServer.answer_for({**CHAT, "stream": True})
        (raw_record,) = stored(tmp_path)
        assert [c["__data__"] for c in raw_record["body"]] == sent
        assert "content-encoding" not in raw_record["headers"]
        plain = list(client.chat.completions.create(**{**CHAT, "messages": [*HI, *HI]}, stream=True))
    assert len(files(tmp_path)) == 2
    with nr.recording("replay", dir=tmp_path), offline(wire_server) as c:
        with c.chat.completions.with_streaming_response.create(**CHAT, stream=True) as replayed:
            assert [chunk.model_dump(exclude_unset=True) for chunk in replayed.parse()] == sent
        again = list(c.chat.completions.create(**{**CHAT, "messages": [*HI, *HI]}, stream=True))
    assert [chunk.model_dump() for chunk in again] == [chunk.model_dump() for chunk in plain]
