"""No key is needed to replay, for any client, and nothing is put in ``os.environ`` (issue 21, item 8).

Each client is recorded with a key against a real loopback server that speaks its wire format,
the server is stopped, and the same code is replayed with no key given and none in the
environment: the client is built (a client that will not be built without a key gets the replay
placeholder at its constructor), the whole result comes back, and ``os.environ`` is the same
before, during and after. A key given explicitly or in the environment is used as given; once
the recorder stops, or under a recorder that does not replay, a client without a key is the
SDK's own error again. The pytest session (module-level clients, ``skipif`` on the key):
``tests/frontends/test_pytest_plugin.py``.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import cohere
import groq
import openai
import pytest
import together
from anthropic_wire_server import TEST_API_KEY as ANTHROPIC_TEST_KEY, AnthropicWireServer
from cohere.core.api_error import ApiError as CohereError
from google import genai
from google.genai import types as genai_types
from http_wire_server import HttpWireServer, plain

import notebook_recorder as nr
from notebook_recorder.core._modes import REPLAY_KEY_PLACEHOLDER

MESSAGES: Any = [{"role": "user", "content": "What is the capital of France?"}]
KEY = "test-key-0000000000000000"

# Every variable these clients read a key or token from.
KEY_VARIABLES = (
    "OPENAI_API_KEY",
    "OPENAI_ADMIN_KEY",
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_AD_TOKEN",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "GROQ_API_KEY",
    "TOGETHER_API_KEY",
    "LLAMA_STACK_API_KEY",
    "LLAMA_STACK_CLIENT_API_KEY",
    "CO_API_KEY",
    "COHERE_API_KEY",
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "MISTRAL_API_KEY",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
)


@pytest.fixture(autouse=True)
def no_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No key anywhere: not in the environment, not in a token file (huggingface_hub's)."""
    for name in KEY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))


# -- each client, given a key or (None) not ---------------------------------------------------


def openai_chat(url: str, key: str | None) -> Any:
    client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
    whole = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    return [whole, list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))]


async def aopenai_chat(url: str, key: str | None) -> Any:
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
    whole = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    return [whole, [chunk async for chunk in stream]]


def azure_chat(url: str, key: str | None) -> Any:
    client = openai.AzureOpenAI(
        base_url=url + "/openai/deployments/gpt-4o", api_version="2024-10-21", api_key=key, max_retries=0
    )
    return client.chat.completions.create(model="gpt-4o", messages=MESSAGES)


async def aazure_chat(url: str, key: str | None) -> Any:
    client = openai.AsyncAzureOpenAI(
        base_url=url + "/openai/deployments/gpt-4o", api_version="2024-10-21", api_key=key, max_retries=0
    )
    return await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)


def groq_chat(url: str, key: str | None) -> Any:
    client = groq.Groq(api_key=key, base_url=url, max_retries=0)
    whole = client.chat.completions.create(model="llama-3.3", messages=MESSAGES)
    return [whole, list(client.chat.completions.create(model="llama-3.3", messages=MESSAGES, stream=True))]


async def agroq_chat(url: str, key: str | None) -> Any:
    client = groq.AsyncGroq(api_key=key, base_url=url, max_retries=0)
    return await client.chat.completions.create(model="llama-3.3", messages=MESSAGES)


def together_chat(url: str, key: str | None) -> Any:
    client = together.Together(api_key=key, base_url=url + "/v1", max_retries=0)
    return client.chat.completions.create(model="llama", messages=MESSAGES)


async def atogether_chat(url: str, key: str | None) -> Any:
    client = together.AsyncTogether(api_key=key, base_url=url + "/v1", max_retries=0)
    return await client.chat.completions.create(model="llama", messages=MESSAGES)


def llama_stack(url: str, key: str | None) -> Any:
    from llama_stack_client import LlamaStackClient

    client = LlamaStackClient(base_url=url, api_key=key, max_retries=0)
    return client.chat.completions.create(model="llama", messages=MESSAGES)


def gemini(url: str, key: str | None) -> Any:
    client = genai.Client(api_key=key, http_options=genai_types.HttpOptions(base_url=url))
    whole = client.models.generate_content(model="gemini-2.0-flash", contents="What is the capital of France?")
    streamed = list(client.models.generate_content_stream(model="gemini-2.0-flash", contents="And of Italy?"))
    return [whole, streamed]


async def agemini(url: str, key: str | None) -> Any:
    client = genai.Client(api_key=key, http_options=genai_types.HttpOptions(base_url=url))
    return await client.aio.models.generate_content(model="gemini-2.0-flash", contents="Capital of France?")


def cohere_v2(url: str, key: str | None) -> Any:
    client = cohere.ClientV2(api_key=key, base_url=url)
    return [
        client.chat(model="command-a", messages=MESSAGES),
        list(client.chat_stream(model="command-a", messages=MESSAGES)),
    ]


async def acohere_v2(url: str, key: str | None) -> Any:
    client = cohere.AsyncClientV2(api_key=key, base_url=url)
    return await client.chat(model="command-a", messages=MESSAGES)


def mistral(url: str, key: str | None) -> Any:
    from mistralai.client import Mistral

    client = Mistral(api_key=key, server_url=url)
    return client.chat.complete(model="mistral-small", messages=MESSAGES)


def hf_inference(url: str, key: str | None) -> Any:
    from huggingface_hub import InferenceClient

    client = InferenceClient(base_url=url + "/v1", api_key=key)
    return client.chat_completion(messages=MESSAGES, model="tgi")


def anthropic_message(url: str, key: str | None) -> Any:
    client = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0)
    return client.messages.create(
        model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "Hello, Claude"}]
    )


def _async(work: Callable[[str, str | None], Any]) -> Callable[[str, str | None], Any]:
    return lambda url, key: asyncio.run(work(url, key))


CLIENTS: dict[str, Callable[[str, str | None], Any]] = {
    "openai": openai_chat,
    "openai-async": _async(aopenai_chat),
    "azure-openai": azure_chat,
    "azure-openai-async": _async(aazure_chat),
    "groq": groq_chat,
    "groq-async": _async(agroq_chat),
    "together": together_chat,
    "together-async": _async(atogether_chat),
    "llama-stack-client": llama_stack,
    "google-genai": gemini,
    "google-genai-async": _async(agemini),
    "cohere": cohere_v2,
    "cohere-async": _async(acohere_v2),
    "mistralai": mistral,
    "huggingface_hub": hf_inference,
}


@pytest.mark.parametrize("name", sorted(CLIENTS))
def test_replays_without_a_key_and_leaves_the_environment_alone(name: str, tmp_path: Path) -> None:
    work = CLIENTS[name]
    with HttpWireServer() as server, nr.recording("record", dir=tmp_path):
        recorded = plain(work(server.url, KEY))
    served = server.requests
    assert list(tmp_path.glob("*.json"))

    before = dict(os.environ)
    with nr.recording("replay", dir=tmp_path):
        assert dict(os.environ) == before
        assert os.environ.get("OPENAI_API_KEY", "local-key") == "local-key"
        replayed = plain(work(server.url, None))
        assert dict(os.environ) == before
    assert dict(os.environ) == before
    assert replayed == recorded
    assert server.requests == served


def test_anthropic_replays_without_a_key_and_leaves_the_environment_alone(tmp_path: Path) -> None:
    """``Anthropic()`` builds without a key: it is given nothing, and ``ANTHROPIC_API_KEY`` stays unset."""
    with AnthropicWireServer() as server:
        with nr.recording("record", dir=tmp_path):
            recorded = plain(anthropic_message(server.base_url, ANTHROPIC_TEST_KEY))
        served = len(server.requests)
    before = dict(os.environ)
    with nr.recording("replay", dir=tmp_path):
        replayed = plain(anthropic_message(server.base_url, None))
        assert dict(os.environ) == before
    assert replayed == recorded
    assert dict(os.environ) == before
    assert len(server.requests) == served


# -- the clients that will not be built without a key ------------------------------------------

KEYED: dict[str, tuple[Callable[..., Any], type[BaseException], Callable[[Any], Any]]] = {
    "OpenAI": (openai.OpenAI, openai.OpenAIError, lambda c: c.api_key),
    "AsyncOpenAI": (openai.AsyncOpenAI, openai.OpenAIError, lambda c: c.api_key),
    "AzureOpenAI": (
        lambda **kw: openai.AzureOpenAI(azure_endpoint="http://127.0.0.1:9", api_version="2024-10-21", **kw),
        openai.OpenAIError,
        lambda c: c.api_key,
    ),
    "AsyncAzureOpenAI": (
        lambda **kw: openai.AsyncAzureOpenAI(azure_endpoint="http://127.0.0.1:9", api_version="2024-10-21", **kw),
        openai.OpenAIError,
        lambda c: c.api_key,
    ),
    "Groq": (groq.Groq, groq.GroqError, lambda c: c.api_key),
    "AsyncGroq": (groq.AsyncGroq, groq.GroqError, lambda c: c.api_key),
    "Together": (together.Together, together.TogetherError, lambda c: c.api_key),
    "AsyncTogether": (together.AsyncTogether, together.TogetherError, lambda c: c.api_key),
    "cohere.ClientV2": (cohere.ClientV2, CohereError, lambda c: c._client_wrapper._token),
    "cohere.AsyncClientV2": (cohere.AsyncClientV2, CohereError, lambda c: c._client_wrapper._token),
    "cohere.Client": (cohere.Client, CohereError, lambda c: c._client_wrapper._token),
    "genai.Client": (genai.Client, ValueError, lambda c: c._api_client.api_key),
}


@pytest.mark.parametrize("name", sorted(KEYED))
def test_a_client_that_needs_a_key_gets_the_placeholder_only_while_replaying(name: str, tmp_path: Path) -> None:
    build, error, key_of = KEYED[name]
    with pytest.raises(error):
        build()  # the SDK as it is
    for mode in ("replay", "record-if-missing"):
        with nr.recording(mode, dir=tmp_path):
            assert key_of(build()) == REPLAY_KEY_PLACEHOLDER
            assert key_of(build(api_key="explicit-key-0000")) == "explicit-key-0000"
            assert REPLAY_KEY_PLACEHOLDER not in os.environ.values()
    for mode in ("record", "live"):
        with nr.recording(mode, dir=tmp_path), pytest.raises(error):
            build()
    with pytest.raises(error):
        build()  # the recorder stopped: the SDK's own error again
    assert REPLAY_KEY_PLACEHOLDER not in os.environ.values()


ENVIRONMENT_KEYS = {
    "OpenAI": "OPENAI_API_KEY",
    "Groq": "GROQ_API_KEY",
    "Together": "TOGETHER_API_KEY",
    "cohere.ClientV2": "CO_API_KEY",
    "genai.Client": "GOOGLE_API_KEY",
}


@pytest.mark.parametrize("name", sorted(ENVIRONMENT_KEYS))
def test_a_key_in_the_environment_is_used_as_given(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build, _, key_of = KEYED[name]
    monkeypatch.setenv(ENVIRONMENT_KEYS[name], "environment-key-0000")
    with nr.recording("replay", dir=tmp_path):
        assert key_of(build()) == "environment-key-0000"
        assert REPLAY_KEY_PLACEHOLDER not in os.environ.values()


def test_a_key_given_positionally_is_used_as_given(tmp_path: Path) -> None:
    with nr.recording("replay", dir=tmp_path):
        assert cohere.Client("positional-key-0000")._client_wrapper._token == "positional-key-0000"
        assert cohere.ClientV2("positional-key-0000")._client_wrapper._token == "positional-key-0000"
        assert REPLAY_KEY_PLACEHOLDER not in os.environ.values()


def test_a_client_that_fails_for_another_reason_raises_the_sdks_own_error(tmp_path: Path) -> None:
    """AzureOpenAI without ``api_version`` fails with or without a key: the error is the one the
    SDK raises without notebook-recorder (its missing credentials), and no placeholder is kept."""
    with pytest.raises(openai.OpenAIError) as unhooked:
        openai.AzureOpenAI(azure_endpoint="http://127.0.0.1:9")
    with nr.recording("replay", dir=tmp_path), pytest.raises(openai.OpenAIError) as replaying:
        assert REPLAY_KEY_PLACEHOLDER not in os.environ.values()
        openai.AzureOpenAI(azure_endpoint="http://127.0.0.1:9")
    assert str(replaying.value) == str(unhooked.value)


def test_record_if_missing_sends_the_users_own_default_key(tmp_path: Path) -> None:
    """The user's code picks its own key when none is set (a local server's): with nothing put in
    the environment it reads its own default, which is sent and the call recorded, then replayed."""
    with HttpWireServer() as server:
        with nr.recording("record-if-missing", dir=tmp_path):
            client = openai.OpenAI(
                base_url=server.url + "/v1", api_key=os.environ.get("OPENAI_API_KEY", "local-key"), max_retries=0
            )
            recorded = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert [headers.get("authorization") for _, _, headers, _ in server.seen] == ["Bearer local-key"]
    with nr.recording("replay", dir=tmp_path):
        client = openai.OpenAI(base_url=server.url + "/v1", max_retries=0)
        assert client.chat.completions.create(model="gpt-4o", messages=MESSAGES) == recorded
    assert [c.outcome for c in nr.calls()] == ["recorded", "replayed"]


def test_a_client_built_in_a_worker_thread_while_replaying_gets_it_too(tmp_path: Path) -> None:
    built: list[Any] = []
    with nr.recording("replay", dir=tmp_path):
        worker = threading.Thread(target=lambda: built.append(openai.OpenAI()))
        worker.start()
        worker.join()
        assert REPLAY_KEY_PLACEHOLDER not in os.environ.values()
    assert built[0].api_key == REPLAY_KEY_PLACEHOLDER


def test_the_innermost_recorder_decides(tmp_path: Path) -> None:
    """A ``record`` block inside a replaying session is the SDK as it is; the session replays again after it."""
    nr.start("replay", dir=tmp_path)
    try:
        with nr.recording("record", dir=tmp_path), pytest.raises(groq.GroqError):
            groq.Groq()
        assert groq.Groq().api_key == REPLAY_KEY_PLACEHOLDER
    finally:
        nr.stop()
    with pytest.raises(groq.GroqError):
        groq.Groq()
