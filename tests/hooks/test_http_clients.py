"""Every HTTP client a notebook uses, recorded and replayed at the HTTP level (issue 21).

Each client talks real HTTP to ``HttpWireServer`` on 127.0.0.1 (Gemini, Cohere v2, Ollama,
OpenAI-compatible chat, a plain JSON search API). The calls are recorded, the server is stopped,
and the same calls are replayed: the whole result must come back, ids and timestamps included
(the server makes fresh ones for every answer, so an equal result was served from the file).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from http_wire_server import HttpWireServer, plain

import notebook_recorder as nr

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


# -- the clients, each a sync and (where the client has one) an async call style --------------


def gemini(url: str) -> Any:
    from google import genai
    from google.genai import types

    client = genai.Client(api_key="test-key-gemini-0000000000", http_options=types.HttpOptions(base_url=url))
    whole = client.models.generate_content(model="gemini-2.0-flash", contents="What is the capital of France?")
    streamed = list(client.models.generate_content_stream(model="gemini-2.0-flash", contents="And of Italy?"))
    return [whole, streamed]


async def agemini(url: str) -> Any:
    from google import genai
    from google.genai import types

    client = genai.Client(api_key="test-key-gemini-0000000000", http_options=types.HttpOptions(base_url=url))
    whole = await client.aio.models.generate_content(model="gemini-2.0-flash", contents="Capital of France?")
    streamed = [
        c async for c in await client.aio.models.generate_content_stream(model="gemini-2.0-flash", contents="Italy?")
    ]
    return [whole, streamed]


def cohere_v2(url: str) -> Any:
    import cohere

    client = cohere.ClientV2(api_key="test-key-cohere-0000000000", base_url=url)
    return [
        client.chat(model="command-a", messages=MESSAGES),
        list(client.chat_stream(model="command-a", messages=MESSAGES)),
    ]


async def acohere_v2(url: str) -> Any:
    import cohere

    client = cohere.AsyncClientV2(api_key="test-key-cohere-0000000000", base_url=url)
    whole = await client.chat(model="command-a", messages=MESSAGES)
    return [whole, [e async for e in client.chat_stream(model="command-a", messages=MESSAGES)]]


def ollama_chat(url: str) -> Any:
    import ollama

    client = ollama.Client(host=url)
    return [
        client.chat(model="llama3.2", messages=MESSAGES),
        list(client.chat(model="llama3.2", messages=MESSAGES, stream=True)),
    ]


async def aollama_chat(url: str) -> Any:
    import ollama

    client = ollama.AsyncClient(host=url)
    whole = await client.chat(model="llama3.2", messages=MESSAGES)
    return [whole, [c async for c in await client.chat(model="llama3.2", messages=MESSAGES, stream=True)]]


def mistral(url: str) -> Any:
    from mistralai.client import Mistral

    client = Mistral(api_key="test-key-mistral-0000000000", server_url=url)
    whole = client.chat.complete(model="mistral-small", messages=MESSAGES)  # type: ignore[arg-type]
    return [whole, list(client.chat.stream(model="mistral-small", messages=MESSAGES))]  # type: ignore[arg-type]


async def amistral(url: str) -> Any:
    from mistralai.client import Mistral

    client = Mistral(api_key="test-key-mistral-0000000000", server_url=url)
    whole = await client.chat.complete_async(model="mistral-small", messages=MESSAGES)  # type: ignore[arg-type]
    stream = await client.chat.stream_async(model="mistral-small", messages=MESSAGES)  # type: ignore[arg-type]
    return [whole, [e async for e in stream]]


def groq_chat(url: str) -> Any:
    import groq

    client = groq.Groq(api_key="test-key-groq-0000000000", base_url=url)
    whole = client.chat.completions.create(model="llama-3.3", messages=MESSAGES)  # type: ignore[arg-type]
    stream = client.chat.completions.create(model="llama-3.3", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    return [whole, list(stream)]


async def agroq_chat(url: str) -> Any:
    import groq

    client = groq.AsyncGroq(api_key="test-key-groq-0000000000", base_url=url)
    whole = await client.chat.completions.create(model="llama-3.3", messages=MESSAGES)  # type: ignore[arg-type]
    stream = await client.chat.completions.create(model="llama-3.3", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    return [whole, [c async for c in stream]]


def together_chat(url: str) -> Any:
    import together

    client = together.Together(api_key="test-key-together-0000000000", base_url=url + "/v1")
    whole = client.chat.completions.create(model="llama", messages=MESSAGES)  # type: ignore[arg-type]
    stream = client.chat.completions.create(model="llama", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    return [whole, list(stream)]


async def atogether_chat(url: str) -> Any:
    import together

    client = together.AsyncTogether(api_key="test-key-together-0000000000", base_url=url + "/v1")
    whole = await client.chat.completions.create(model="llama", messages=MESSAGES)  # type: ignore[arg-type]
    stream = await client.chat.completions.create(model="llama", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    return [whole, [c async for c in stream]]


def llama_stack(url: str) -> Any:
    from llama_stack_client import LlamaStackClient

    client = LlamaStackClient(base_url=url)
    whole = client.chat.completions.create(model="llama", messages=MESSAGES)  # type: ignore[arg-type]
    stream = client.chat.completions.create(model="llama", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    return [whole, list(stream)]


async def allama_stack(url: str) -> Any:
    from llama_stack_client import AsyncLlamaStackClient

    client = AsyncLlamaStackClient(base_url=url)
    whole = await client.chat.completions.create(model="llama", messages=MESSAGES)  # type: ignore[arg-type]
    stream = await client.chat.completions.create(model="llama", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    return [whole, [c async for c in stream]]


def hf_inference(url: str) -> Any:
    from huggingface_hub import InferenceClient

    client = InferenceClient(base_url=url + "/v1", api_key="hf_test0000000000000000")
    whole = client.chat_completion(messages=MESSAGES, model="tgi")
    return [whole, list(client.chat_completion(messages=MESSAGES, model="tgi", stream=True))]


async def ahf_inference(url: str) -> Any:
    from huggingface_hub import AsyncInferenceClient

    client = AsyncInferenceClient(base_url=url + "/v1", api_key="hf_test0000000000000000")
    whole = await client.chat_completion(messages=MESSAGES, model="tgi")
    stream = await client.chat_completion(messages=MESSAGES, model="tgi", stream=True)
    return [whole, [c async for c in stream]]


def plain_requests(url: str) -> Any:
    import requests

    hits = requests.get(url + "/search", params={"q": "paris", "api_key": "test-key-search-0000000000"}).json()
    lines = list(requests.post(url + "/api/chat", json={"model": "llama3.2"}, stream=True).iter_lines())
    return [hits, lines]


def plain_httpx(url: str) -> Any:
    import httpx

    with httpx.Client() as client:
        hits = client.get(url + "/search", params={"q": "paris"}).json()
        with client.stream("POST", url + "/v1/chat/completions", json={"model": "m", "stream": True}) as r:
            lines = list(r.iter_lines())
    return [hits, lines]


async def aplain_httpx(url: str) -> Any:
    import httpx

    async with httpx.AsyncClient() as client:
        hits = (await client.get(url + "/search", params={"q": "paris"})).json()
        async with client.stream("POST", url + "/v1/chat/completions", json={"model": "m", "stream": True}) as r:
            lines = [line async for line in r.aiter_lines()]
    return [hits, lines]


def plain_httpx2(url: str) -> Any:
    import httpx2

    hits = httpx2.get(url + "/search", params={"q": "paris"}).json()
    return [hits, httpx2.post(url + "/api/chat", json={"model": "m", "stream": False}).json()]


async def aplain_aiohttp(url: str) -> Any:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/search", params={"q": "paris"}) as r:
            hits = await r.json()
        async with session.post(url + "/api/chat", json={"model": "m"}) as r:
            lines = [line async for line in r.content]
    return [hits, lines]


SYNC: dict[str, Callable[[str], Any]] = {
    "google-genai": gemini,
    "cohere": cohere_v2,
    "ollama": ollama_chat,
    "mistralai": mistral,
    "groq": groq_chat,
    "together": together_chat,
    "llama-stack-client": llama_stack,
    "huggingface_hub": hf_inference,
    "requests": plain_requests,
    "httpx": plain_httpx,
    "httpx2": plain_httpx2,
}
ASYNC: dict[str, Callable[[str], Awaitable[Any]]] = {
    "google-genai": agemini,
    "cohere": acohere_v2,
    "ollama": aollama_chat,
    "mistralai": amistral,
    "groq": agroq_chat,
    "together": atogether_chat,
    "llama-stack-client": allama_stack,
    "huggingface_hub": ahf_inference,
    "httpx": aplain_httpx,
    "aiohttp": aplain_aiohttp,
}


def _record_stop_replay(tmp_path: Path, work: Callable[[str], Any]) -> tuple[Any, Any, HttpWireServer]:
    server = HttpWireServer()
    try:
        with nr.recording("record", dir=tmp_path):
            recorded = plain(work(server.url))
    finally:
        server.close()
    served = server.requests
    with nr.recording("replay", dir=tmp_path):
        replayed = plain(work(server.url))
    assert server.requests == served
    return recorded, replayed, server


@pytest.mark.parametrize("name", sorted(SYNC))
def test_sync_client_records_and_replays_offline(name: str, tmp_path: Path) -> None:
    recorded, replayed, _ = _record_stop_replay(tmp_path, SYNC[name])
    assert replayed == recorded
    assert list(tmp_path.glob("*.json"))


@pytest.mark.parametrize("name", sorted(ASYNC))
def test_async_client_records_and_replays_offline(name: str, tmp_path: Path) -> None:
    recorded, replayed, _ = _record_stop_replay(tmp_path, lambda url: asyncio.run(ASYNC[name](url)))
    assert replayed == recorded
    assert list(tmp_path.glob("*.json"))


@pytest.mark.parametrize("name", ["groq", "together", "llama-stack-client"])
def test_stainless_clients_get_the_typed_hook(name: str, tmp_path: Path) -> None:
    """groq, together and llama-stack-client are recorded by the Stainless SDK hook: their files
    hold their own ``__type__`` classes and name the SDK, and replay builds their own objects."""
    recorded, replayed, _ = _record_stop_replay(tmp_path, lambda url: SYNC[name](url))
    assert replayed == recorded
    package = name.replace("-", "_")
    for path in tmp_path.glob("*.json"):
        record = json.loads(path.read_text())
        assert record["recorder"]["sdk"] == package
        body = record["response"]["body"]
        first = body[0] if isinstance(body, list) else body
        assert first["__type__"].startswith(f"{package}.types.")


@pytest.mark.parametrize("name", sorted(SYNC))
def test_replay_without_a_recording_raises_before_sending(name: str, tmp_path: Path) -> None:
    """A hooked request with no recording raises RecordingNotFoundError, itself (not a client's
    connection error after retries), and the server that is up receives nothing."""
    with HttpWireServer() as server, nr.recording("replay", dir=tmp_path):
        with pytest.raises(nr.RecordingNotFoundError, match="No recording of"):
            SYNC[name](server.url)
        assert server.requests == 0
