"""anthropic's clients that authenticate without an API key, recorded and replayed (issue 28).

Real ``AnthropicBedrock`` (SigV4, signed by botocore), ``AnthropicVertex`` (an access token, or a
google-auth ``Credentials`` object) and ``Anthropic(credentials=provider)`` clients talk real HTTP
to the loopback Anthropic-wire server (``tests/anthropic_wire_server.py`` answers Bedrock's and
Vertex's paths as ``/v1/messages``). Each call is recorded, the server is STOPPED, and the call is
replayed by a new client: the caller sees the same objects, and no credential the client sent
(AWS keys, the SigV4 signature, OAuth and provider tokens) is in any file.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

anthropic = pytest.importorskip("anthropic")
pytest.importorskip("botocore")
pytest.importorskip("google.oauth2.credentials")

from anthropic.lib.credentials import AccessToken  # noqa: E402
from anthropic_wire_server import ECHO_AUTH_MODEL, AnthropicWireServer  # noqa: E402
from google.oauth2.credentials import Credentials  # noqa: E402

import notebook_recorder as nr  # noqa: E402
from notebook_recorder.core._secrets import leaks  # noqa: E402

# Canaries shaped like the real things (the leak scan knows AKIA... and ya29. tokens).
AWS_KEY_ID = "AKIAZZZCANARY0000028"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYCANARY28KEY"
AWS_SESSION = "IQoJb3JpZ2luX2VjECANARYSESSIONTOKEN28xyz"
GOOGLE_TOKEN = "ya29.a0CanaryGoogleAccessToken28forVertexTests"
PROVIDER_TOKEN = "sk-ant-oat01-canary-provider-token-28-abcdefgh"
MODEL = "claude-sonnet-4-5"
PROMPT = [{"role": "user", "content": "Hello"}]


def _files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.json"))


def _assert_no_credentials(directory: Path, server: AnthropicWireServer, *secrets: str) -> None:
    """No credential the client sent (as the server received it: SigV4 signatures and tokens
    included) is in any file, and the leak scan finds nothing."""
    sent = {secret for secret in secrets}
    for request in server.requests:
        for name in ("authorization", "x-amz-security-token", "x-api-key"):
            value = request.headers.get(name, "")
            sent.add(value)
            if "Signature=" in value:
                sent.add(value.rsplit("Signature=", 1)[1])
            if value.startswith("Bearer "):
                sent.add(value.removeprefix("Bearer "))
    sent = {secret for secret in sent if len(secret) >= 8}
    assert sent, "the server saw no credential: nothing was tested"
    paths = _files(directory)
    assert paths
    for path in paths:
        text = path.read_text(encoding="utf-8")
        for secret in sent:
            assert secret not in text, f"{path.name} holds a credential the client sent: {secret[:12]}…"
        assert leaks(path, json.loads(text)) == []


def _record_then_replay(
    make: Callable[[str], Any], call: Callable[[Any], Any], server: AnthropicWireServer, directory: Path
) -> tuple[Any, Any]:
    """``call`` on a client from ``make(base_url)``, recorded; then, the server stopped, on a new
    client, replayed: (recorded, replayed)."""
    with nr.recording("record", dir=directory):
        recorded = call(make(server.base_url))
    assert len(server.requests) == 1
    assert len(_files(directory)) == 1
    server.stop()
    with nr.recording("replay", dir=directory):
        replayed = call(make(server.base_url))
    assert [c.outcome for c in nr.calls()][-1] == "replayed"
    return recorded, replayed


def _create(client: Any) -> Any:
    return client.messages.create(model=MODEL, max_tokens=64, messages=PROMPT)


def _bedrock(base_url: str) -> Any:
    return anthropic.AnthropicBedrock(
        aws_access_key=AWS_KEY_ID,
        aws_secret_key=AWS_SECRET,
        aws_session_token=AWS_SESSION,
        aws_region="us-east-1",
        base_url=base_url,
        max_retries=0,
    )


def test_bedrock_sigv4_is_recorded_and_replayed_without_its_credentials(tmp_path: Path) -> None:
    server = AnthropicWireServer().start()
    try:
        recorded, replayed = _record_then_replay(_bedrock, _create, server, tmp_path)
    finally:
        server.stop()
    sent = server.requests[0]
    assert sent.path == f"/model/{MODEL}/invoke"
    assert sent.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=" + AWS_KEY_ID)
    assert type(replayed) is type(recorded)
    assert replayed.model_dump() == recorded.model_dump()
    _assert_no_credentials(tmp_path, server, AWS_KEY_ID, AWS_SECRET, AWS_SESSION)
    record = json.loads(_files(tmp_path)[0].read_text())
    assert record["request"]["url"].endswith(f"/model/{MODEL}/invoke")  # the URL as sent


def test_async_bedrock_is_recorded_and_replayed(tmp_path: Path) -> None:
    def make(base_url: str) -> Any:
        return anthropic.AsyncAnthropicBedrock(
            aws_access_key=AWS_KEY_ID,
            aws_secret_key=AWS_SECRET,
            aws_region="us-east-1",
            base_url=base_url,
            max_retries=0,
        )

    def call(client: Any) -> Any:
        return asyncio.run(client.messages.create(model=MODEL, max_tokens=64, messages=PROMPT))

    server = AnthropicWireServer().start()
    try:
        recorded, replayed = _record_then_replay(make, call, server, tmp_path)
    finally:
        server.stop()
    assert replayed.model_dump() == recorded.model_dump()
    _assert_no_credentials(tmp_path, server, AWS_KEY_ID, AWS_SECRET)


def _vertex(**auth: Any) -> Callable[[str], Any]:
    def make(base_url: str) -> Any:
        return anthropic.AnthropicVertex(
            region="us-east5", project_id="canary-project", base_url=f"{base_url}/v1", max_retries=0, **auth
        )

    return make


def test_vertex_access_token_is_recorded_and_replayed_without_it(tmp_path: Path) -> None:
    server = AnthropicWireServer().start()
    try:
        recorded, replayed = _record_then_replay(_vertex(access_token=GOOGLE_TOKEN), _create, server, tmp_path)
    finally:
        server.stop()
    assert server.requests[0].path.endswith(f"/publishers/anthropic/models/{MODEL}:rawPredict")
    assert server.requests[0].headers["authorization"] == f"Bearer {GOOGLE_TOKEN}"
    assert replayed.model_dump() == recorded.model_dump()
    _assert_no_credentials(tmp_path, server, GOOGLE_TOKEN)


def test_vertex_google_credentials_stream_is_recorded_and_replayed(tmp_path: Path) -> None:
    def stream(client: Any) -> list[Any]:
        with client.messages.stream(model=MODEL, max_tokens=64, messages=PROMPT) as events:
            return [event.model_dump() for event in events]

    make = _vertex(credentials=Credentials(token=GOOGLE_TOKEN))
    server = AnthropicWireServer().start()
    try:
        recorded, replayed = _record_then_replay(make, stream, server, tmp_path)
    finally:
        server.stop()
    assert server.requests[0].path.endswith(":streamRawPredict")
    assert recorded and replayed == recorded
    _assert_no_credentials(tmp_path, server, GOOGLE_TOKEN)


def test_credentials_provider_is_recorded_and_replayed_without_its_token(tmp_path: Path) -> None:
    asked: list[bool] = []

    def provider(*, force_refresh: bool = False) -> AccessToken:
        asked.append(force_refresh)
        return AccessToken(token=PROVIDER_TOKEN, expires_at=None)

    def make(base_url: str) -> Any:
        return anthropic.Anthropic(credentials=provider, base_url=base_url, max_retries=0)

    server = AnthropicWireServer().start()
    try:
        recorded, replayed = _record_then_replay(make, _create, server, tmp_path)
    finally:
        server.stop()
    assert server.requests[0].headers["authorization"] == f"Bearer {PROVIDER_TOKEN}"
    assert asked == [False]  # asked once, while recording; replay sends nothing
    assert replayed.model_dump() == recorded.model_dump()
    _assert_no_credentials(tmp_path, server, PROVIDER_TOKEN)


def test_a_sigv4_signature_echoed_in_an_error_is_masked(tmp_path: Path) -> None:
    """Masking works from the request as sent: a 401 whose message echoes the Authorization
    header the SDK signed (never known before the SDK sent it) is saved without it."""
    server = AnthropicWireServer().start()
    try:
        client = _bedrock(server.base_url)
        with nr.recording("record", dir=tmp_path), pytest.raises(anthropic.AuthenticationError):
            client.messages.create(model=ECHO_AUTH_MODEL, max_tokens=8, messages=PROMPT)
    finally:
        server.stop()
    record = json.loads(_files(tmp_path)[0].read_text())
    assert "invalid credentials: ***" in record["response"]["exception_message"]
    _assert_no_credentials(tmp_path, server, AWS_KEY_ID, AWS_SECRET, AWS_SESSION)
