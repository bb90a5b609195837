"""The hook changes nothing the anthropic SDK does, in live and record (issue 28).

Real ``anthropic`` clients over real HTTP to the loopback Anthropic-wire server: the SDK's own
arguments pass through (``stream_cls=None``), a body is read as the SDK prepares it (a circular
one gets the SDK's own error; one nested deeper than Python's recursion limit allows a recursive
walker is sent, recorded and replayed), a strict client's raw response is recorded as the SDK
returns it, and reading the client's credentials runs nothing blocking on the event loop. The
whole anthropic sdist's suite runs in ``make sdk-suite``; these are the cases in this repo's terms.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
from pathlib import Path
from typing import Any

import pytest

anthropic = pytest.importorskip("anthropic")

from anthropic.types import Message  # noqa: E402
from anthropic_wire_server import MODEL, TEST_API_KEY, AnthropicWireServer  # noqa: E402

import notebook_recorder as nr  # noqa: E402
from notebook_recorder.core import _notfound  # noqa: E402
from notebook_recorder.core._keys import InferenceRequest  # noqa: E402

HELLO = [{"role": "user", "content": "Hello"}]
MODES = ["live", "record"]


def _files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.json"))


def _nested(depth: int) -> Any:
    data: Any = {"leaf": "value"}
    for i in range(depth):
        data = {"k": data} if i % 2 else [data]
    return data


@pytest.mark.parametrize("mode", MODES)
def test_a_stream_without_a_stream_class_is_the_sdks(
    mode: str, anthropic_server: AnthropicWireServer, tmp_path: Path
) -> None:
    """``client.post(..., stream=True)`` with no ``stream_cls``: the SDK's own default stream,
    as without the hook (the hook used to hand the SDK its bare default class instead)."""
    client = anthropic.Anthropic(base_url=anthropic_server.base_url, api_key=TEST_API_KEY, max_retries=0)
    body = {"model": MODEL, "max_tokens": 16, "messages": HELLO, "stream": True}
    with nr.recording(mode, dir=tmp_path):
        stream = client.post("/v1/messages", cast_to=object, body=body, stream=True)
        assert isinstance(stream, anthropic.Stream)
        stream.close()


@pytest.mark.parametrize("mode", MODES)
def test_a_circular_body_raises_the_sdks_own_error(
    mode: str, anthropic_server: AnthropicWireServer, tmp_path: Path
) -> None:
    client = anthropic.Anthropic(base_url=anthropic_server.base_url, api_key=TEST_API_KEY, max_retries=0)
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with nr.recording(mode, dir=tmp_path), pytest.raises(ValueError, match="Circular reference detected"):
        client.messages.create(model=MODEL, max_tokens=16, messages=HELLO, extra_body={"metadata": loop})
    assert anthropic_server.requests == []


def test_a_body_nested_past_the_recursion_limit_is_sent_recorded_and_replayed(
    anthropic_server: AnthropicWireServer, tmp_path: Path
) -> None:
    depth = sys.getrecursionlimit() // 2 - 50  # past orjson's 255 levels; a recursive walk takes 2 frames a level
    client = anthropic.Anthropic(base_url=anthropic_server.base_url, api_key=TEST_API_KEY, max_retries=0)

    def call() -> Any:
        return client.messages.create(model=MODEL, max_tokens=16, messages=HELLO, extra_body={"deep": _nested(depth)})

    with nr.recording("record", dir=tmp_path):
        recorded = call()
    sent = anthropic_server.requests[0].body
    assert sent.endswith(b'{"leaf":"value"}' + b"]}" * (depth // 2) + b"}")  # as the SDK sends it
    [path] = _files(tmp_path)
    assert "__digest__" in path.read_text()  # the depths are described by a digest
    anthropic_server.stop()
    with nr.recording("replay", dir=tmp_path):
        replayed = call()
    assert replayed.model_dump() == recorded.model_dump()


def test_a_strict_clients_raw_response_is_recorded_as_the_sdk_returns_it(
    anthropic_server: AnthropicWireServer, tmp_path: Path
) -> None:
    """A strict client's raw call (what ``with_raw_response`` makes) of a body that is not its
    declared type: the SDK returns the raw response (it validates only on ``parse()``); recording
    neither raises its validation error nor changes that, and stores the body as it came."""
    client = anthropic.Anthropic(
        base_url=anthropic_server.base_url, api_key=TEST_API_KEY, max_retries=0, _strict_response_validation=True
    )
    raw_header = {"X-Stainless-Raw-Response": "raw"}
    body = {"model": MODEL, "messages": HELLO}
    with nr.recording("record", dir=tmp_path):
        raw = client.post("/v1/messages/count_tokens", cast_to=Message, body=body, options={"headers": raw_header})
    assert raw.status_code == 200
    with pytest.raises(anthropic.APIResponseValidationError):
        raw.parse()
    [path] = _files(tmp_path)
    assert json.loads(path.read_text())["response"]["body"]["input_tokens"] >= 1


def test_reading_the_clients_credentials_runs_nothing_blocking_on_the_event_loop(
    anthropic_server: AnthropicWireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK runs ``get_platform()`` in a worker thread (it may block); the hook must not run it
    on the loop by reading ``default_headers``."""
    import anthropic._base_client as base

    threads: list[bool] = []
    original = base.get_platform

    def get_platform() -> Any:
        threads.append(asyncio_running())
        return original()

    def asyncio_running() -> bool:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        return True

    monkeypatch.setattr(base, "get_platform", get_platform)
    base.platform_headers.cache_clear()  # the SDK caches the headers it built with get_platform()

    async def call() -> Any:
        client = anthropic.AsyncAnthropic(base_url=anthropic_server.base_url, api_key=TEST_API_KEY, max_retries=0)
        return await client.messages.create(model=MODEL, max_tokens=16, messages=HELLO)

    with nr.recording("record", dir=tmp_path):
        asyncio.run(call())
    assert threads and not any(threads), "get_platform() ran on the event loop"


def test_a_stream_dropped_unread_while_recording_is_freed_at_once(
    anthropic_server: AnthropicWireServer, tmp_path: Path
) -> None:
    """What the SDK hangs on a response (an OpenTelemetry span ends when its body is dropped)
    goes when the caller drops the stream: nothing of the recording keeps it alive."""
    import weakref

    client = anthropic.Anthropic(base_url=anthropic_server.base_url, api_key=TEST_API_KEY, max_retries=0)

    async def make() -> Any:
        aclient = anthropic.AsyncAnthropic(base_url=anthropic_server.base_url, api_key=TEST_API_KEY, max_retries=0)
        stream = await aclient.messages.create(model=MODEL, max_tokens=16, messages=HELLO, stream=True)
        body = weakref.ref(stream.response.stream)
        del stream
        gc.collect()
        for _ in range(10):
            await asyncio.sleep(0)
        return body

    with nr.recording("record", dir=tmp_path):
        stream = client.messages.create(model=MODEL, max_tokens=16, messages=HELLO, stream=True)
        body = weakref.ref(stream.response.stream)
        del stream
        gc.collect()
        assert body() is None
        assert asyncio.run(make())() is None


def test_the_missing_recording_search_compares_a_bounded_number_of_files(tmp_path: Path) -> None:
    """A folder with many recordings of other endpoints and models: the explanation diffs at most
    ``MAX_COMPARED`` of them, those of the same endpoint and model first, and names the nearest."""
    _notfound.forget_summaries()
    url = "http://127.0.0.1/v1/messages"
    with nr.recording("record", dir=tmp_path) as recorder:
        for i in range(_notfound.MAX_COMPARED + 40):
            endpoint, model = ("/v1/embeddings", f"other-{i % 3}") if i % 2 else ("/v1/messages", f"m-{i % 5}")
            body = {"model": model, "max_tokens": i, "messages": HELLO}
            request = InferenceRequest("POST", endpoint, body, model, url)
            key = request.key(None)
            recorder.store.write(key, {"test_id": None, "request": request.to_json(None), "response": {"body": {}}})
    wanted = InferenceRequest(
        "POST", "/v1/messages", {"model": "m-2", "max_tokens": 1000, "messages": HELLO}, "m-2", url
    )
    summaries = _notfound._summarized(recorder.store.root)
    candidates = _notfound._candidates(wanted, None, summaries)
    assert len(summaries) > len(candidates) == _notfound.MAX_COMPARED
    same = [p for p in candidates if summaries[p] is not None and summaries[p].model == "m-2"]  # type: ignore[union-attr]
    assert same == candidates[: len(same)] and len(same) > 1
    path, changes = _notfound.nearest(recorder, wanted) or (None, [])
    assert path is not None and [c.path for c in changes] == ["body.max_tokens"]
    # A recording added since is found by the next search (the folder is listed again).
    added = recorder.store.write(wanted.key(None), {"test_id": None, "request": wanted.to_json(None), "response": {}})
    assert _notfound.nearest(recorder, wanted) == (added, [])
