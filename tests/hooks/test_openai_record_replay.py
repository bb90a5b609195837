"""Every call style of the openai SDK, through the real SDK and real HTTP to the local wire server,
in every mode, sync and async (issue 3).

Replay must give back what recording returned (same types, same ``model_dump()``), streamed through
the SDK's own stream classes, without a single request: the server is stopped before each replay.
"""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
import warnings
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pydantic
import pytest
from openai.types import Completion, CreateEmbeddingResponse, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ParsedChatCompletion
from openai.types.responses import Response
from sdk_values import snap
from wire_server import TEST_API_KEY, WireServer

import notebook_recorder as nr
from notebook_recorder.core import _codec
from notebook_recorder.core._store import forget_indexes

MODES = ["live", "record", "replay", "record-if-missing"]
HI = [{"role": "user", "content": "Hi"}]


class Answer(pydantic.BaseModel):
    answer: str


def strip_ids(value: Any) -> Any:
    """Drop top-level ``id``/``created`` of JSON objects (raw responses carry the live ones)."""
    if isinstance(value, list):
        return [strip_ids(v) for v in value]
    if isinstance(value, dict):
        return {k: strip_ids(v) for k, v in value.items() if k not in ("id", "created")}
    if isinstance(value, tuple):
        return tuple(strip_ids(v) for v in value)
    return value


def files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.json")) if directory.exists() else []


# ---------------------------------------------------------------------------------------------
# The call styles: (sync, async) functions that make the call and return what the caller sees.
# ---------------------------------------------------------------------------------------------


def _stream_class_check(stream: Any, cls: type) -> Any:
    assert isinstance(stream, cls), type(stream)
    return stream


def s_chat(c: openai.OpenAI) -> Any:
    r = c.chat.completions.create(model="gpt-4o", messages=HI)
    assert isinstance(r, ChatCompletion)
    return r


async def a_chat(c: openai.AsyncOpenAI) -> Any:
    r = await c.chat.completions.create(model="gpt-4o", messages=HI)
    assert isinstance(r, ChatCompletion)
    return r


def s_chat_stream(c: openai.OpenAI) -> Any:
    stream = _stream_class_check(c.chat.completions.create(model="gpt-4o", messages=HI, stream=True), openai.Stream)
    chunks = list(stream)
    assert chunks and all(isinstance(x, ChatCompletionChunk) for x in chunks)
    return chunks


async def a_chat_stream(c: openai.AsyncOpenAI) -> Any:
    stream = _stream_class_check(
        await c.chat.completions.create(model="gpt-4o", messages=HI, stream=True), openai.AsyncStream
    )
    chunks = [x async for x in stream]
    assert chunks and all(isinstance(x, ChatCompletionChunk) for x in chunks)
    return chunks


def s_completion(c: openai.OpenAI) -> Any:
    r = c.completions.create(model="llama3.2:3b", prompt="Hi")
    assert isinstance(r, Completion)
    return r


async def a_completion(c: openai.AsyncOpenAI) -> Any:
    r = await c.completions.create(model="llama3.2:3b", prompt="Hi")
    assert isinstance(r, Completion)
    return r


def s_completion_stream(c: openai.OpenAI) -> Any:
    stream = _stream_class_check(c.completions.create(model="llama3.2:3b", prompt="Hi", stream=True), openai.Stream)
    chunks = list(stream)
    assert len(chunks) > 10 and all(isinstance(x, Completion) for x in chunks)
    return chunks


async def a_completion_stream(c: openai.AsyncOpenAI) -> Any:
    stream = await c.completions.create(model="llama3.2:3b", prompt="Hi", stream=True)
    _stream_class_check(stream, openai.AsyncStream)
    chunks = [x async for x in stream]
    assert len(chunks) > 10 and all(isinstance(x, Completion) for x in chunks)
    return chunks


def s_embeddings(c: openai.OpenAI) -> Any:
    r = c.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert isinstance(r, CreateEmbeddingResponse) and len(r.data) == 2
    return r


async def a_embeddings(c: openai.AsyncOpenAI) -> Any:
    r = await c.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert isinstance(r, CreateEmbeddingResponse) and len(r.data) == 2
    return r


def s_models(c: openai.OpenAI) -> Any:
    items = list(c.models.list())
    page = c.models.list()
    assert isinstance(page, openai.pagination.SyncPage)
    pages = [[m.id for m in p.data] for p in page.iter_pages()]
    assert items and all(isinstance(m, Model) for m in items)
    return [page.object, items, pages]


async def a_models(c: openai.AsyncOpenAI) -> Any:
    items = [m async for m in c.models.list()]
    page = await c.models.list()
    assert isinstance(page, openai.pagination.AsyncPage)
    pages = [[m.id for m in p.data] async for p in page.iter_pages()]
    assert items and all(isinstance(m, Model) for m in items)
    return [page.object, items, pages]


def s_responses(c: openai.OpenAI) -> Any:
    r = c.responses.create(model="gpt-4o", input="Hi")
    assert isinstance(r, Response) and r.output_text
    return [r, r.output_text]


async def a_responses(c: openai.AsyncOpenAI) -> Any:
    r = await c.responses.create(model="gpt-4o", input="Hi")
    assert isinstance(r, Response) and r.output_text
    return [r, r.output_text]


def s_responses_stream(c: openai.OpenAI) -> Any:
    stream = _stream_class_check(c.responses.create(model="gpt-4o", input="Hi", stream=True), openai.Stream)
    events = list(stream)
    assert events[-1].type == "response.completed"
    return events


async def a_responses_stream(c: openai.AsyncOpenAI) -> Any:
    stream = _stream_class_check(await c.responses.create(model="gpt-4o", input="Hi", stream=True), openai.AsyncStream)
    events = [e async for e in stream]
    assert events[-1].type == "response.completed"
    return events


def s_parse(c: openai.OpenAI) -> Any:
    r = c.chat.completions.parse(model="gpt-4o", messages=HI, response_format=Answer)
    assert isinstance(r, ParsedChatCompletion)
    parsed = r.choices[0].message.parsed
    assert isinstance(parsed, Answer) and parsed.answer
    return [r, parsed]


async def a_parse(c: openai.AsyncOpenAI) -> Any:
    r = await c.chat.completions.parse(model="gpt-4o", messages=HI, response_format=Answer)
    assert isinstance(r, ParsedChatCompletion)
    parsed = r.choices[0].message.parsed
    assert isinstance(parsed, Answer) and parsed.answer
    return [r, parsed]


def s_stream_helper(c: openai.OpenAI) -> Any:
    with c.chat.completions.stream(model="gpt-4o", messages=HI, response_format=Answer) as stream:
        events = [(e.type, getattr(e, "delta", None)) for e in stream]
        final = stream.get_final_completion()
    assert isinstance(final.choices[0].message.parsed, Answer)
    assert ("content.done", None) in events
    return [events, final]


async def a_stream_helper(c: openai.AsyncOpenAI) -> Any:
    async with c.chat.completions.stream(model="gpt-4o", messages=HI, response_format=Answer) as stream:
        events = [(e.type, getattr(e, "delta", None)) async for e in stream]
        final = await stream.get_final_completion()
    assert isinstance(final.choices[0].message.parsed, Answer)
    return [events, final]


def s_raw(c: openai.OpenAI) -> Any:
    raw = c.chat.completions.with_raw_response.create(model="gpt-4o", messages=HI)
    assert raw.headers["content-type"].startswith("application/json")
    assert raw.status_code == 200
    r = raw.parse()
    assert isinstance(r, ChatCompletion)
    return [r.model_dump(), json.loads(raw.text)]


async def a_raw(c: openai.AsyncOpenAI) -> Any:
    raw = await c.chat.completions.with_raw_response.create(model="gpt-4o", messages=HI)
    assert raw.headers["content-type"].startswith("application/json")
    r = raw.parse()
    assert isinstance(r, ChatCompletion)
    return [r.model_dump(), json.loads(raw.text)]


def s_raw_stream(c: openai.OpenAI) -> Any:
    raw = c.chat.completions.with_raw_response.create(model="gpt-4o", messages=HI, stream=True)
    stream = _stream_class_check(raw.parse(), openai.Stream)
    return [x.model_dump() for x in stream]


async def a_raw_stream(c: openai.AsyncOpenAI) -> Any:
    raw = await c.chat.completions.with_raw_response.create(model="gpt-4o", messages=HI, stream=True)
    stream = _stream_class_check(raw.parse(), openai.AsyncStream)
    return [x.model_dump() async for x in stream]


def _sse_data(lines: list[str]) -> list[Any]:
    return [json.loads(line[6:]) for line in lines if line.startswith("data: {")]


def s_streaming_response(c: openai.OpenAI) -> Any:
    create = c.chat.completions.with_streaming_response.create
    with create(model="gpt-4o", messages=HI, stream=True) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = list(response.iter_lines())
    with c.chat.completions.with_streaming_response.create(model="gpt-4o", messages=[*HI, *HI]) as response:
        parsed = response.parse()
    assert isinstance(parsed, ChatCompletion)
    assert "data: [DONE]" in lines
    return [_sse_data(lines), parsed.model_dump()]


async def a_streaming_response(c: openai.AsyncOpenAI) -> Any:
    create = c.chat.completions.with_streaming_response.create
    async with create(model="gpt-4o", messages=HI, stream=True) as response:
        lines = [line async for line in response.iter_lines()]
    async with c.chat.completions.with_streaming_response.create(model="gpt-4o", messages=[*HI, *HI]) as response:
        parsed = await response.parse()
    assert isinstance(parsed, ChatCompletion)
    return [_sse_data(lines), parsed.model_dump()]


@dataclass(frozen=True)
class Style:
    name: str
    sync: Callable[[openai.OpenAI], Any]
    async_: Callable[[openai.AsyncOpenAI], Awaitable[Any]]
    requests: int = 1
    files: int = 1
    raw: bool = False  # raw HTTP bodies: recording hands the caller the live ids
    distinct: int | None = None  # different requests, when some are repeated (default: files)

    def __str__(self) -> str:
        return self.name


STYLES = [
    Style("chat", s_chat, a_chat),
    Style("chat_stream", s_chat_stream, a_chat_stream),
    Style("completion", s_completion, a_completion),
    Style("completion_stream", s_completion_stream, a_completion_stream),
    Style("embeddings", s_embeddings, a_embeddings),
    Style("models", s_models, a_models, requests=2, files=2, distinct=1),  # the same list, twice
    Style("responses", s_responses, a_responses),
    Style("responses_stream", s_responses_stream, a_responses_stream),
    Style("parse", s_parse, a_parse),
    Style("stream_helper", s_stream_helper, a_stream_helper),
    Style("with_raw_response", s_raw, a_raw, raw=True),
    Style("with_raw_response_stream", s_raw_stream, a_raw_stream, raw=True),
    Style("with_streaming_response", s_streaming_response, a_streaming_response, requests=2, files=2, raw=True),
]


def expected(style: Style, recorded: Any) -> Any:
    return strip_ids(snap(recorded)) if style.raw else snap(recorded)


def check_mode(mode: str, style: Style, call: Callable[[], Any], server: WireServer, directory: Path) -> None:
    """Run ``call`` in ``mode`` and check requests, files and results."""
    if mode in ("live", "record"):
        with nr.recording(mode, dir=directory):
            call()
        assert len(server.requests) == style.requests
        assert len(files(directory)) == (0 if mode == "live" else style.files)
        assert [c.outcome for c in nr.calls()] == ["live" if mode == "live" else "recorded"] * style.requests
        return
    if mode == "replay":
        with nr.recording("record", dir=directory):
            recorded = call()
    else:  # record-if-missing: the first run records
        with nr.recording("record-if-missing", dir=directory):
            recorded = call()
    requests = len(server.requests)
    # record-if-missing replays a repeated call within the same run
    assert requests == ((style.distinct or style.files) if mode == "record-if-missing" else style.requests)
    written = [(p, p.read_bytes()) for p in files(directory)]
    assert written
    server.stop()
    nr.clear_calls()
    with nr.recording(mode, dir=directory):
        replayed = call()
    assert len(server.requests) == requests  # no request at all
    assert [(p, p.read_bytes()) for p in files(directory)] == written  # nothing rewritten
    assert {c.outcome for c in nr.calls()} == {"replayed"}
    if style.raw:
        assert strip_ids(snap(replayed)) == expected(style, recorded)
    else:
        assert snap(replayed) == snap(recorded)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("style", STYLES, ids=str)
def test_sync_call_styles(
    style: Style, mode: str, wire_server: WireServer, client: openai.OpenAI, tmp_path: Path
) -> None:
    check_mode(mode, style, lambda: style.sync(client), wire_server, tmp_path / "rec")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("style", STYLES, ids=str)
async def test_async_call_styles(
    style: Style, mode: str, wire_server: WireServer, async_client: openai.AsyncOpenAI, tmp_path: Path
) -> None:
    directory = tmp_path / "rec"
    loop = asyncio.get_running_loop()

    def call() -> Any:
        return asyncio.run_coroutine_threadsafe(style.async_(async_client), loop).result(30)

    # check_mode is synchronous: run it in a thread so the loop stays free to run the calls.
    await loop.run_in_executor(None, check_mode, mode, style, call, wire_server, directory)


# ---------------------------------------------------------------------------------------------
# The files
# ---------------------------------------------------------------------------------------------


def test_one_file_per_call_named_by_key_with_the_servers_ids(
    wire_server: WireServer, client: openai.OpenAI, tmp_path: Path
) -> None:
    with nr.recording("record", dir=tmp_path, scope="notebooks/demo.ipynb"):
        r = client.chat.completions.create(model="gpt-4o", messages=HI, temperature=0.7)
        chunks = list(client.chat.completions.create(model="gpt-4o", messages=HI, stream=True))
        client.embeddings.create(model="text-embedding-3-small", input="x")
        response = client.responses.create(model="gpt-4o", input="Hi")
    written = files(tmp_path)
    assert len(written) == 4
    log = nr.calls()
    assert [Path(str(c.path)).name for c in log] == [f"{c.key}.json" for c in log]
    assert {p.name for p in written} == {f"{c.key}.json" for c in log}
    for path in written:
        text = path.read_text()
        assert text.endswith("}\n") and text.startswith('{\n  "test_id": "notebooks/demo.ipynb",\n')
        record = json.loads(text)
        assert _codec.dumps(record) == path.read_bytes()  # 2-space indent, final newline
        assert record["request"]["headers"] == {}
        assert record["id_normalization_mapping"] == {}
        assert nr.Recorder("replay", dir=tmp_path).store.find(path.stem) is not None
    chat_key = log[0].key
    sent = WireServer.answer_for({"model": "gpt-4o", "messages": HI, "temperature": 0.7})
    assert isinstance(sent, dict)
    assert (r.id, r.created) == (sent["id"], sent["created"])  # what the server sent, unchanged
    chat = json.loads((tmp_path / f"{chat_key}.json").read_text())
    assert chat["request"]["endpoint"] == "/v1/chat/completions"
    assert chat["request"]["model"] == "gpt-4o"
    assert chat["request"]["method"] == "POST"
    assert chat["request"]["url"] == f"{wire_server.base_url}/chat/completions"
    assert chat["request"]["body"] == {"model": "gpt-4o", "messages": HI, "temperature": 0.7}
    assert chat["response"]["is_streaming"] is False
    assert chat["response"]["body"]["__type__"] == "openai.types.chat.chat_completion.ChatCompletion"
    assert chat["response"]["body"]["__data__"]["id"] == r.id  # what the caller saw is what is stored
    assert chat["response"]["body"]["__data__"]["created"] == r.created

    stream = json.loads((tmp_path / f"{log[1].key}.json").read_text())["response"]
    assert stream["is_streaming"] is True
    assert len(stream["body"]) == len(chunks)
    assert [c["__data__"]["id"] for c in stream["body"]] == [c.id for c in chunks]
    assert [c["__data__"]["created"] for c in stream["body"]] == [c.created for c in chunks]
    offsets = stream["chunk_offsets_ms"]
    assert len(offsets) == len(chunks) and offsets == sorted(offsets) and offsets[0] >= 0
    assert stream["duration_ms"] >= offsets[-1]

    stored = json.loads((tmp_path / f"{log[3].key}.json").read_text())["response"]["body"]["__data__"]
    assert stored["id"] == response.id


def test_responses_can_be_chained_in_record_and_replay(
    wire_server: WireServer, client: openai.OpenAI, tmp_path: Path
) -> None:
    def conversation() -> list[Any]:
        first = client.responses.create(model="gpt-4o", input="Hi")
        second = client.responses.create(model="gpt-4o", input="And then?", previous_response_id=first.id)
        return [first, second]

    with nr.recording("record", dir=tmp_path):
        recorded = conversation()
    assert json.loads(wire_server.last_request.body)["previous_response_id"] == recorded[0].id
    wire_server.stop()
    with nr.recording("replay", dir=tmp_path):
        assert snap(conversation()) == snap(recorded)


# ---------------------------------------------------------------------------------------------
# Streams while recording
# ---------------------------------------------------------------------------------------------


def test_streams_pass_through_live_while_recording(
    wire_server: WireServer, client: openai.OpenAI, tmp_path: Path
) -> None:
    wire_server.chunk_delay = 0.05
    with nr.recording("record", dir=tmp_path):
        started = time.perf_counter()
        stream = client.completions.create(model="llama3.2:3b", prompt="Hi", stream=True)
        arrivals = []
        for i, _ in enumerate(stream):
            arrivals.append(time.perf_counter() - started)
            if i == 0:
                assert files(tmp_path) == []  # nothing written while the stream runs
            if i == 5:
                assert files(tmp_path) == []
        total = time.perf_counter() - started
    assert len(arrivals) > 40
    assert total > 2.0  # 50 gaps of 50 ms
    assert arrivals[0] < 0.5 < total / 4  # the first chunk came long before the end
    assert arrivals[10] < total / 2
    assert len(files(tmp_path)) == 1


async def test_async_streams_pass_through_live_while_recording(
    wire_server: WireServer, async_client: openai.AsyncOpenAI, tmp_path: Path
) -> None:
    wire_server.chunk_delay = 0.05
    with nr.recording("record", dir=tmp_path):
        started = time.perf_counter()
        stream = await async_client.completions.create(model="llama3.2:3b", prompt="Hi", stream=True)
        first = None
        async for _ in stream:
            if first is None:
                first = time.perf_counter() - started
                assert files(tmp_path) == []
        total = time.perf_counter() - started
    assert first is not None and first < total / 4
    assert len(files(tmp_path)) == 1


def _cut_by_break(stream: Any) -> None:
    for i, _ in enumerate(stream):
        if i == 3:
            break


def _cut_by_close(stream: Any) -> None:
    next(iter(stream))
    stream.close()


def _cut_by_consumer_error(stream: Any) -> None:
    with pytest.raises(KeyError):
        for i, _ in enumerate(stream):
            if i == 3:
                raise KeyError("consumer failed")


def _cut_by_keyboard_interrupt(stream: Any) -> None:
    with pytest.raises(KeyboardInterrupt):
        for i, _ in enumerate(stream):
            if i == 2:
                raise KeyboardInterrupt


def _cut_by_server(stream: Any) -> None:
    with pytest.raises(Exception) as info:
        list(stream)
    assert not isinstance(info.value, AssertionError)


@pytest.mark.parametrize(
    "cut", [_cut_by_break, _cut_by_close, _cut_by_consumer_error, _cut_by_keyboard_interrupt, _cut_by_server]
)
def test_a_stream_cut_short_is_not_saved(
    cut: Any, wire_server: WireServer, client: openai.OpenAI, tmp_path: Path
) -> None:
    if cut is _cut_by_server:
        wire_server.error_after_chunks = 5
    with nr.recording("record", dir=tmp_path):
        stream = client.chat.completions.create(model="gpt-4o", messages=HI, stream=True)
        cut(stream)
        del stream
    # The SDK's Stream and its own generator form a reference cycle, so a stream left unclosed is
    # finalized by the cyclic collector, and its generator then closes the HTTP response. Collect
    # here: if that ran later inside httpcore's connection-pool lock (the next request), the
    # close would wait for that lock forever (seen with openai 2.22 and httpcore).
    gc.collect()
    assert files(tmp_path) == []
    # Nothing was saved as if it were complete: the next run records it again.
    wire_server.error_after_chunks = None
    with nr.recording("record-if-missing", dir=tmp_path):
        chunks = list(client.chat.completions.create(model="gpt-4o", messages=HI, stream=True))
    assert len(wire_server.requests) == 2
    assert len(files(tmp_path)) == 1
    stored = json.loads(files(tmp_path)[0].read_text())["response"]["body"]
    assert len(stored) == len(chunks)


def test_a_closed_stream_is_logged_when_it_is_closed(client: openai.OpenAI, tmp_path: Path) -> None:
    """``break`` then ``close()`` (or a ``with`` block) ends the call at once, in its own block: its
    log entry does not wait for the garbage collector, nor land in a later block."""
    gc.collect()  # streams other tests abandoned without closing them are ended by the collector
    nr.clear_calls()
    gc.disable()
    try:
        with nr.recording("record", dir=tmp_path):
            stream = client.chat.completions.create(model="gpt-4o", messages=HI, stream=True)
            for _chunk in stream:
                break
            stream.close()
            with client.chat.completions.create(model="gpt-4o", messages=HI, stream=True) as left:
                next(iter(left))
            logged = [(call.outcome, call.error) for call in nr.calls()]
        assert [outcome for outcome, _ in logged] == ["error", "error"]
        assert all("cut short" in (error or "") for _, error in logged)
        nr.clear_calls()
        with nr.recording("record", dir=tmp_path / "later"):
            del stream, left, _chunk
            gc.collect()
            assert nr.calls() == []
    finally:
        gc.enable()


async def test_an_async_stream_cut_short_is_not_saved(
    wire_server: WireServer, async_client: openai.AsyncOpenAI, tmp_path: Path
) -> None:
    with nr.recording("record", dir=tmp_path):
        stream = await async_client.chat.completions.create(model="gpt-4o", messages=HI, stream=True)
        async for _ in stream:
            break
        await stream.close()
        wire_server.error_after_chunks = 4
        stream = await async_client.chat.completions.create(model="gpt-4o", messages=HI, stream=True)
        with pytest.raises(Exception):  # noqa: B017
            async for _ in stream:
                pass
    assert files(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# API errors
# ---------------------------------------------------------------------------------------------

ERRORS = [
    ("wire-error-400", TEST_API_KEY, openai.BadRequestError, 400),
    ("wire-error-401", TEST_API_KEY, openai.AuthenticationError, 401),
    ("wire-error-429", TEST_API_KEY, openai.RateLimitError, 429),
    ("wire-error-500", TEST_API_KEY, openai.InternalServerError, 500),
    ("gpt-4o", "sk-bad", openai.AuthenticationError, 401),
]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("model", "key", "cls", "status"), ERRORS)
def test_api_errors_are_recorded_and_re_raised(
    model: str, key: str, cls: type, status: int, stream: bool, wire_server: WireServer, tmp_path: Path
) -> None:
    client = openai.OpenAI(base_url=wire_server.base_url, api_key=key, max_retries=0)
    with nr.recording("record", dir=tmp_path), pytest.raises(cls) as live:
        client.chat.completions.create(model=model, messages=HI, stream=stream)
    (path,) = files(tmp_path)
    record = json.loads(path.read_text())
    response = record["response"]
    assert response["body"] is None and response["is_exception"] is True
    data = response["exception_data"]
    assert data["type"] == cls.__name__ and data["status_code"] == status
    assert {"category", "provider", "message", "body"} <= set(data)
    # An error that echoes the API key is written with the key redacted.
    assert response["exception_message"] == str(live.value).replace(key, "***")
    assert key not in path.read_text()
    wire_server.stop()
    with nr.recording("replay", dir=tmp_path), pytest.raises(cls) as replayed:
        client.chat.completions.create(model=model, messages=HI, stream=stream)
    assert type(replayed.value) is type(live.value)
    assert replayed.value.status_code == live.value.status_code
    redact: Any = lambda v: json.loads(json.dumps(v).replace(key, "***"))  # noqa: E731
    assert replayed.value.body == redact(live.value.body)
    assert replayed.value.message == redact(live.value.message)
    assert str(replayed.value) == redact(str(live.value))
    assert [c.outcome for c in nr.calls()][-1] == "replayed"


async def test_async_api_errors_are_re_raised(wire_server: WireServer, tmp_path: Path) -> None:
    client = openai.AsyncOpenAI(base_url=wire_server.base_url, api_key=TEST_API_KEY, max_retries=0)
    with nr.recording("record", dir=tmp_path), pytest.raises(openai.RateLimitError) as live:
        await client.chat.completions.create(model="wire-error-429", messages=HI)
    wire_server.stop()
    with nr.recording("replay", dir=tmp_path), pytest.raises(openai.RateLimitError) as replayed:
        await client.chat.completions.create(model="wire-error-429", messages=HI)
    assert (replayed.value.status_code, replayed.value.body) == (live.value.status_code, live.value.body)


def test_a_recorded_real_400_is_re_raised(wire_server: WireServer, client: openai.OpenAI, tmp_path: Path) -> None:
    def call() -> Any:
        return client.chat.completions.create(model="gpt-4o", messages=HI, service_tier="flex")

    with nr.recording("record", dir=tmp_path), pytest.raises(openai.BadRequestError) as live:
        call()
    wire_server.stop()
    with nr.recording("replay", dir=tmp_path), pytest.raises(openai.BadRequestError) as replayed:
        call()
    assert replayed.value.body == live.value.body
    assert "service_tier" in str(replayed.value)


# ---------------------------------------------------------------------------------------------
# Credentials
# ---------------------------------------------------------------------------------------------

CANARY = "sk-canary-7f3a9c0b-do-not-write"


def test_no_credential_is_ever_written(wire_server: WireServer, tmp_path: Path) -> None:
    canaries = {f"{CANARY}-{i}" for i in range(8)}
    c = iter(sorted(canaries))
    clients = [
        openai.OpenAI(base_url=wire_server.base_url, api_key=next(c), max_retries=0),
        openai.OpenAI(
            base_url=wire_server.base_url,
            api_key=next(c),
            default_headers={"api-key": next(c), "X-Custom": "visible"},
            default_query={"api_key": next(c), "key": next(c), "token": next(c), "access_token": next(c)},
            max_retries=0,
        ),
    ]
    body_canary = next(c)
    with nr.recording("record", dir=tmp_path):
        for client in clients:
            client.chat.completions.create(
                model="gpt-4o", messages=HI, extra_body={"api_key": body_canary, "access_token": body_canary}
            )
            list(client.chat.completions.create(model="gpt-4o", messages=HI, stream=True))
            client.embeddings.create(model="text-embedding-3-small", input="x", extra_query={"token": body_canary})
            client.models.list()
            with pytest.raises(openai.BadRequestError):
                client.chat.completions.create(model="wire-error-400", messages=HI)
    # They were all sent...
    sent = b"".join(r.body + json.dumps([r.headers, r.query]).encode() for r in wire_server.requests)
    assert all(canary.encode() in sent for canary in canaries)
    # ...and none was written.
    written = files(tmp_path)
    assert len(written) >= 5
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"sk-canary" not in data, path
            assert b"canary" not in data.lower(), path
    for path in written:
        assert json.loads(path.read_text())["request"]["headers"] == {}


# ---------------------------------------------------------------------------------------------
# Clients: created before recording, custom headers, Azure, threads, tasks
# ---------------------------------------------------------------------------------------------


def test_a_client_created_before_recording_started(wire_server: WireServer, tmp_path: Path) -> None:
    client = openai.OpenAI(base_url=wire_server.base_url, api_key=TEST_API_KEY, max_retries=0)
    before = client.chat.completions.create(model="gpt-4o", messages=HI)  # not recorded
    assert files(tmp_path) == []
    nr.start("record", dir=tmp_path)
    recorded = client.chat.completions.create(model="gpt-4o", messages=HI)
    nr.stop()
    assert len(files(tmp_path)) == 1
    assert recorded.choices[0].message.content == before.choices[0].message.content
    after = client.chat.completions.create(model="gpt-4o", messages=HI)  # live again, hook removed
    assert after.id == before.id
    wire_server.stop()
    nr.start("replay", dir=tmp_path)
    assert snap(client.chat.completions.create(model="gpt-4o", messages=HI)) == snap(recorded)
    nr.stop()


def test_custom_default_headers_and_azure(wire_server: WireServer, tmp_path: Path) -> None:
    custom = openai.OpenAI(
        base_url=wire_server.base_url,
        api_key=TEST_API_KEY,
        default_headers={"X-Team": "research", "OpenAI-Organization": "org-x"},
        max_retries=0,
    )
    azure = openai.AzureOpenAI(
        azure_endpoint=f"http://127.0.0.1:{wire_server.port}",
        api_version="2024-10-21",
        api_key=CANARY,
        max_retries=0,
    )
    with nr.recording("record", dir=tmp_path):
        a = custom.chat.completions.create(model="gpt-4o", messages=HI)
        b = list(azure.chat.completions.create(model="gpt-4o", messages=[*HI, *HI], stream=True))
    assert wire_server.requests[0].headers["x-team"] == "research"
    assert wire_server.requests[1].headers["api-key"] == CANARY
    assert wire_server.requests[1].path == "/openai/deployments/gpt-4o/chat/completions"
    for path in files(tmp_path):
        assert CANARY not in path.read_text()
        assert json.loads(path.read_text())["request"]["endpoint"] == "/v1/chat/completions"
    wire_server.stop()
    with nr.recording("replay", dir=tmp_path):
        assert snap(custom.chat.completions.create(model="gpt-4o", messages=HI)) == snap(a)
        assert snap(list(azure.chat.completions.create(model="gpt-4o", messages=[*HI, *HI], stream=True))) == snap(b)
        # The endpoint is canonical: an Azure recording replays for a plain client too.
        assert snap(list(custom.chat.completions.create(model="gpt-4o", messages=[*HI, *HI], stream=True))) == snap(b)


def _question(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"question {i}"}]


def test_clients_from_many_threads(wire_server: WireServer, client: openai.OpenAI, tmp_path: Path) -> None:
    def work(i: int) -> Any:
        if i % 2:
            return snap(list(client.chat.completions.create(model="gpt-4o", messages=_question(i), stream=True)))
        return snap(client.chat.completions.create(model="gpt-4o", messages=_question(i)))

    with nr.recording("record", dir=tmp_path), ThreadPoolExecutor(8) as pool:
        recorded = list(pool.map(work, range(24)))
    assert len(files(tmp_path)) == 24
    assert len(wire_server.requests) == 24
    wire_server.stop()
    forget_indexes()
    with nr.recording("replay", dir=tmp_path), ThreadPoolExecutor(8) as pool:
        replayed = list(pool.map(work, range(24)))
    assert replayed == recorded
    assert sum(c.outcome == "replayed" for c in nr.calls()) == 24


async def test_async_clients_from_many_tasks(
    wire_server: WireServer, async_client: openai.AsyncOpenAI, tmp_path: Path
) -> None:
    async def work(i: int) -> Any:
        if i % 2:
            stream = await async_client.chat.completions.create(model="gpt-4o", messages=_question(i), stream=True)
            return snap([x async for x in stream])
        return snap(await async_client.chat.completions.create(model="gpt-4o", messages=_question(i)))

    with nr.recording("record", dir=tmp_path):
        recorded = await asyncio.gather(*(work(i) for i in range(16)))
    assert len(files(tmp_path)) == 16
    wire_server.stop()
    with nr.recording("replay", dir=tmp_path):
        replayed = await asyncio.gather(*(work(i) for i in range(16)))
    assert replayed == recorded


# ---------------------------------------------------------------------------------------------
# Missing recordings
# ---------------------------------------------------------------------------------------------


def test_missing_recording_says_what_and_how(wire_server: WireServer, client: openai.OpenAI, tmp_path: Path) -> None:
    with nr.recording("record", dir=tmp_path, scope="nb.ipynb"):
        client.chat.completions.create(model="gpt-4o", messages=HI, temperature=0.7)
        client.embeddings.create(model="text-embedding-3-small", input="far away")
    wire_server.stop()
    with nr.recording("replay", dir=tmp_path, scope="nb.ipynb"):
        with pytest.raises(nr.RecordingNotFoundError) as info:
            client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "Hello"}], temperature=0.2
            )
    message = str(info.value)
    assert "/v1/chat/completions" in message
    assert "gpt-4o" in message
    (chat_file,) = [p for p in files(tmp_path) if "chat" in json.loads(p.read_text())["request"]["endpoint"]]
    assert chat_file.name in message
    assert "messages[0].content: 'Hi' -> 'Hello'" in message
    assert "temperature: 0.7 -> 0.2" in message
    assert "record-if-missing" in message
    assert isinstance(info.value, LookupError)
    assert len(wire_server.requests) == 2
    assert nr.calls()[-1].outcome == "missing"


def test_missing_recording_in_an_empty_directory(client: openai.OpenAI, tmp_path: Path) -> None:
    with nr.recording("replay", dir=tmp_path), pytest.raises(nr.RecordingNotFoundError, match="record-if-missing"):
        client.models.list()


def test_apirec_mode_forces_replay(
    monkeypatch: pytest.MonkeyPatch, wire_server: WireServer, client: openai.OpenAI, tmp_path: Path
) -> None:
    monkeypatch.setenv("APIREC_MODE", "replay")
    with nr.recording("record-if-missing", dir=tmp_path), pytest.raises(nr.RecordingNotFoundError) as info:
        client.chat.completions.create(model="gpt-4o", messages=HI)
    assert "APIREC_MODE=replay" in str(info.value)
    assert wire_server.requests == []


def test_apirec_dir_overrides_the_directory(
    monkeypatch: pytest.MonkeyPatch, wire_server: WireServer, client: openai.OpenAI, tmp_path: Path
) -> None:
    monkeypatch.setenv("APIREC_DIR", str(tmp_path / "env"))
    with nr.recording("record", dir=tmp_path / "code"):
        client.chat.completions.create(model="gpt-4o", messages=HI)
    assert len(files(tmp_path / "env")) == 1
    assert not (tmp_path / "code").exists()


# ---------------------------------------------------------------------------------------------
# Contexts, decorators, bad files
# ---------------------------------------------------------------------------------------------


def test_nested_contexts_restore_state_even_on_errors(
    wire_server: WireServer, client: openai.OpenAI, tmp_path: Path
) -> None:
    from notebook_recorder.core._session import active
    from notebook_recorder.hooks.sdk import openai_sdk as hook

    outer_dir, inner_dir = tmp_path / "outer", tmp_path / "inner"
    assert active() is None and not hook.is_installed()
    with nr.recording("record", dir=outer_dir) as outer:
        assert active() is outer and hook.is_installed()
        with pytest.raises(RuntimeError):
            with nr.recording("record", dir=inner_dir, scope="inner") as inner:
                assert active() is inner
                client.chat.completions.create(model="gpt-4o", messages=HI)
                raise RuntimeError("boom")
        assert active() is outer
        client.chat.completions.create(model="gpt-4o", messages=HI)
    assert active() is None and not hook.is_installed()
    assert len(files(inner_dir)) == 1 and len(files(outer_dir)) == 1
    assert json.loads(files(inner_dir)[0].read_text())["test_id"] == "inner"
    assert json.loads(files(outer_dir)[0].read_text())["test_id"] is None

    session = nr.start("live", dir=tmp_path)
    with nr.recording("record", dir=inner_dir):
        assert active() is not session
    assert active() is session and hook.is_installed()
    nr.stop()
    assert active() is None and not hook.is_installed()


def test_decorator_form_sync_and_async(wire_server: WireServer, client: openai.OpenAI, tmp_path: Path) -> None:
    @nr.recording("record", dir=tmp_path, scope="decorated")
    def ask() -> Any:
        return client.chat.completions.create(model="gpt-4o", messages=HI)

    recorded = ask()
    recorded_again = ask()  # reusable
    assert snap(recorded) == snap(recorded_again)
    wire_server.stop()

    aclient = openai.AsyncOpenAI(base_url=wire_server.base_url, api_key=TEST_API_KEY, max_retries=0)

    @nr.recording("replay", dir=tmp_path, scope="decorated")
    async def ask_async() -> Any:
        return await aclient.chat.completions.create(model="gpt-4o", messages=HI)

    assert asyncio.iscoroutinefunction(ask_async)
    assert snap(asyncio.run(ask_async())) == snap(recorded)
    assert ask.__name__ == "ask"


def test_unknown_type_in_a_file_gives_raw_data_and_one_warning(
    wire_server: WireServer, client: openai.OpenAI, tmp_path: Path
) -> None:
    with nr.recording("record", dir=tmp_path):
        client.embeddings.create(model="text-embedding-3-small", input="x")
    (path,) = files(tmp_path)
    record = json.loads(path.read_text())
    record["response"]["body"]["__data__"]["data"][0] = {
        "__type__": "some_provider.types.Vector",
        "__data__": {"embedding": [0.5], "index": 0, "object": "embedding"},
    }
    path.write_text(json.dumps(record))
    forget_indexes()
    _codec._warned.discard("some_provider.types.Vector")
    wire_server.stop()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with nr.recording("replay", dir=tmp_path):
            r1 = client.embeddings.create(model="text-embedding-3-small", input="x")
            r2 = client.embeddings.create(model="text-embedding-3-small", input="x")
    assert r1.data[0].embedding == [0.5] == r2.data[0].embedding
    unknown = [w for w in caught if issubclass(w.category, _codec.UnknownTypeWarning)]
    assert len(unknown) == 1 and "some_provider.types.Vector" in str(unknown[0].message)


def test_malformed_recording_is_named_and_others_keep_working(
    wire_server: WireServer, client: openai.OpenAI, tmp_path: Path
) -> None:
    with nr.recording("record", dir=tmp_path):
        good = client.chat.completions.create(model="gpt-4o", messages=HI)
        client.chat.completions.create(model="gpt-4o", messages=[*HI, *HI])
    bad = next(p for p in files(tmp_path) if len(json.loads(p.read_text())["request"]["body"]["messages"]) == 2)
    bad.write_text(bad.read_text()[:100])
    (tmp_path / "junk.json").write_text("not json at all")
    forget_indexes()
    wire_server.stop()
    with nr.recording("replay", dir=tmp_path):
        with pytest.raises(nr.RecordingFormatError) as info:
            client.chat.completions.create(model="gpt-4o", messages=[*HI, *HI])
        assert bad.name in str(info.value)
        assert snap(client.chat.completions.create(model="gpt-4o", messages=HI)) == snap(good)
        with pytest.raises(nr.RecordingNotFoundError) as missing:
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "new"}])
    assert "junk.json" in str(missing.value)


def test_live_mode_writes_nothing_and_logs_calls(
    wire_server: WireServer, client: openai.OpenAI, tmp_path: Path
) -> None:
    with nr.recording("live", dir=tmp_path):
        client.chat.completions.create(model="gpt-4o", messages=HI)
        list(client.chat.completions.create(model="gpt-4o", messages=HI, stream=True))
    assert not tmp_path.joinpath("x").exists() and files(tmp_path) == []
    assert [c.outcome for c in nr.calls()] == ["live", "live"]


def test_replay_never_sends_a_placeholder_key(wire_server: WireServer, tmp_path: Path, monkeypatch: Any) -> None:
    with nr.recording("record", dir=tmp_path):
        openai.OpenAI(base_url=wire_server.base_url, api_key="k", max_retries=0).models.list()
    wire_server.stop()
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with nr.recording("replay", dir=tmp_path):
        models = openai.OpenAI(base_url=wire_server.base_url, max_retries=0).models.list()  # no key needed
    assert models.data
    assert "OPENAI_API_KEY" not in __import__("os").environ


def test_threads_see_the_recording_of_the_block(wire_server: WireServer, client: openai.OpenAI, tmp_path: Path) -> None:
    result: list[Any] = []
    with nr.recording("record", dir=tmp_path):
        thread = threading.Thread(
            target=lambda: result.append(client.chat.completions.create(model="gpt-4o", messages=HI))
        )
        thread.start()
        thread.join()
    assert len(files(tmp_path)) == 1


def test_stream_chunks_of_a_type_unknown_here_are_built_as_the_sdk_expects(
    wire_server: WireServer, client: openai.OpenAI, tmp_path: Path
) -> None:
    with nr.recording("record", dir=tmp_path):
        recorded = list(client.chat.completions.create(model="gpt-4o", messages=HI, stream=True))
    (path,) = files(tmp_path)
    record = json.loads(path.read_text())
    for chunk in record["response"]["body"]:
        chunk["__type__"] = "other_sdk.types.StreamChunk"
    path.write_text(json.dumps(record))
    forget_indexes()
    wire_server.stop()
    with nr.recording("replay", dir=tmp_path):
        replayed = list(client.chat.completions.create(model="gpt-4o", messages=HI, stream=True))
    assert all(type(c) is ChatCompletionChunk for c in replayed)
    assert snap(replayed) == snap(recorded)


def test_to_dict_and_to_json_print_the_same_in_replay(
    wire_server: WireServer, client: openai.OpenAI, tmp_path: Path
) -> None:
    """The SDK's ``to_dict``/``to_json`` leave unset fields out: replay sets exactly what the API
    sent, so a notebook printing them shows the same text in record and replay."""

    def call() -> list[str]:
        r = client.chat.completions.create(model="gpt-4o", messages=HI)
        chunks = list(client.chat.completions.create(model="gpt-4o", messages=HI, stream=True))
        e = client.embeddings.create(model="text-embedding-3-small", input="x")
        return [r.to_json(), *(c.to_json() for c in chunks), json.dumps(e.to_dict())]

    with nr.recording("record", dir=tmp_path):
        recorded = call()
    wire_server.stop()
    with nr.recording("replay", dir=tmp_path):
        assert call() == recorded


def test_new_files_say_when_and_tools_carry_no_sdk(tmp_path: Path, wire_server: WireServer) -> None:
    import openai

    @nr.tool(provider="local", name="add")
    def add(a: int, b: int) -> int:
        return a + b

    client = openai.OpenAI(base_url=wire_server.base_url, api_key=TEST_API_KEY, max_retries=0)
    with nr.recording("record", dir=tmp_path):
        add(1, 2)
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    records = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*.json"))]
    tool = next(r for r in records if "tool_name" in r["request"])
    chat = next(r for r in records if "tool_name" not in r["request"])
    assert "sdk" not in tool["recorder"] and chat["recorder"]["sdk"] == "openai"
    assert all(r["recorder"]["recorded_at"].endswith("Z") for r in records)
    assert chat["response"]["duration_ms"] > 0  # a plain (not streamed) call is timed too
    frame = nr.load_recordings(tmp_path)
    assert frame["duration_ms"].notna().all()
    stated = frame["recorded_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ").tolist()
    assert sorted(stated) == sorted(r["recorder"]["recorded_at"] for r in records)
    assert frame.loc[frame["kind"] == "tool", "sdk"].isna().all()
