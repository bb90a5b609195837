"""No secret on disk (DESIGN.md, "Trust"): every credential a request carried is masked wherever
it comes back, and ``verify`` finds what slips through.

A loopback server echoes every header, query value and body field it receives, in a 401's
message and error body, in a 200's content, and in each chunk of a stream. Calls carry a unique
canary in every place a credential can travel; every byte written is then searched for every
canary.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import openai
import pytest
from hypothesis import given, settings, strategies as st

import notebook_recorder as nr
from notebook_recorder.core import _secrets
from notebook_recorder.core._secrets import leaks, mask, request_secrets, scrub
from notebook_recorder.frontends.cli.main import main

# ---------------------------------------------------------------------------------------------
# A server that echoes the request
# ---------------------------------------------------------------------------------------------


class _EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _EchoServer

    def do_POST(self) -> None:
        self._reply()

    def do_GET(self) -> None:
        self._reply()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"raw": raw.decode("latin-1")}
        echo = {
            "headers": dict(self.headers.items()),
            "query": parse_qsl(urlsplit(self.path).query, keep_blank_values=True),
            "body": body,
        }
        self.server.seen.append(echo)
        text = json.dumps(echo)
        model = str(body.get("model") or "")
        if model.startswith("echo-401"):
            error = {
                "message": f"Incorrect API key provided. You sent: {text}",
                "type": "invalid_request_error",
                "code": "invalid_api_key",
                "echo": echo,
            }
            self._send(401, "application/json", json.dumps({"error": error}).encode())
        elif body.get("stream"):
            chunks = [
                {
                    "id": "chatcmpl-echo",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": model,
                    "choices": [{"index": 0, "delta": {"role": "assistant", "content": part}, "finish_reason": None}],
                }
                for part in (text[: len(text) // 2], text[len(text) // 2 :], text)
            ]
            sse = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
            self._send(200, "text/event-stream", sse)
        else:
            completion = {
                "id": "chatcmpl-echo",
                "object": "chat.completion",
                "created": 1,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "echo": echo,
            }
            self._send(200, "application/json", json.dumps(completion).encode())

    def _send(self, status: int, content_type: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _EchoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _EchoHandler)
        self.seen: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def echo_server() -> Iterator[_EchoServer]:
    server = _EchoServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class Canaries:
    """Unique strings, one per place a credential travels; ``all`` lists every one handed out."""

    def __init__(self) -> None:
        self.all: list[str] = []

    def __call__(self, label: str) -> str:
        value = f"cnry-{label}-{uuid.uuid4().hex[:16]}"
        self.all.append(value)
        return value


def _written(directory: Path) -> bytes:
    data = b""
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            data += path.read_bytes()
    return data


def _assert_none_written(directory: Path, canaries: Canaries) -> None:
    data = _written(directory)
    assert data, "nothing was recorded"
    leaked = [c for c in canaries.all if c.encode() in data]
    assert leaked == []


def _request_options(c: Canaries) -> dict[str, Any]:
    """Per-call credentials: extra headers, query and body fields, in every casing and shape."""
    return {
        "extra_headers": {"Proxy-Authorization": f"Basic {c('proxy-auth')}", "X-Goog-Api-Key": c("goog-header")},
        "extra_query": {"api_key": c("query-api-key"), "key": c("query-key")},
        "extra_body": {
            "api_key": c("body-api-key"),
            "apiKey": c("body-apiKey"),
            "auth": {"nested": [{"access_token": c("nested-access-token")}]},
            "secret_key": c("body-secret-key"),
            "credentials": {"username": "someone", "pw": c("credentials-mapping")},
            "headers": [["Authorization", f"Bearer {c('header-pair')}"]],
            "forward": [{"name": "X-Api-Key", "value": c("header-pair-dict")}],
        },
    }


def _clients(server: _EchoServer, c: Canaries, *, asynchronous: bool) -> list[Any]:
    openai_cls = openai.AsyncOpenAI if asynchronous else openai.OpenAI
    azure_cls = openai.AsyncAzureOpenAI if asynchronous else openai.AzureOpenAI
    azure = {"azure_endpoint": server.url, "api_version": "2024-06-01", "max_retries": 0}
    return [
        openai_cls(
            base_url=server.url + "/v1",
            api_key=c("api-key"),
            organization=c("organization"),
            project=c("project"),
            default_headers={"X-Api-Key": c("default-header")},
            max_retries=0,
        ),
        azure_cls(azure_ad_token=c("azure-ad-token"), **azure),
        azure_cls(api_key=c("azure-api-key"), **azure),
    ]


HI = [{"role": "user", "content": "hi"}]


def _call_sync(client: Any, c: Canaries, model: str, stream: bool) -> Any:
    result = client.chat.completions.create(model=model, messages=HI, stream=stream, **_request_options(c))
    return "".join(chunk.choices[0].delta.content or "" for chunk in result) if stream else result


async def _call_async(client: Any, c: Canaries, model: str, stream: bool) -> Any:
    result = await client.chat.completions.create(model=model, messages=HI, stream=stream, **_request_options(c))
    if stream:
        return "".join([chunk.choices[0].delta.content or "" async for chunk in result])
    return result


# ---------------------------------------------------------------------------------------------
# openai: 401s and 200s that echo the request
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_an_error_that_echoes_every_credential_writes_none(
    echo_server: _EchoServer, tmp_path: Path, stream: bool
) -> None:
    c = Canaries()
    errors = []
    for scope, client in enumerate(_clients(echo_server, c, asynchronous=False)):
        with (
            nr.recording("record", dir=tmp_path, scope=str(scope)),
            pytest.raises(openai.AuthenticationError) as raised,
        ):
            _call_sync(client, c, "echo-401", stream)
        errors.append(raised.value)
    # Every canary was sent, and the server echoed it back to the caller...
    sent = json.dumps(echo_server.seen)
    assert [x for x in c.all if x not in sent] == []
    assert [x for x in c.all if x not in "".join(map(str, errors))] == []
    # ...and none of them is on disk.
    _assert_none_written(tmp_path, c)
    assert len(list(tmp_path.glob("*.json"))) == 3
    for path in tmp_path.glob("*.json"):
        data = json.loads(path.read_text())["response"]["exception_data"]
        assert "***" in data["message"] and "***" in data["response_text"]
        assert data["body"]["echo"]["body"]["model"] == "echo-401"  # the rest of the body is intact
    assert main(["verify", str(tmp_path)]) == 0  # what was masked is not reported

    # Replay re-raises the masked error, with nothing to send.
    echo_server.seen.clear()
    for scope, client in enumerate(_clients(echo_server, Canaries(), asynchronous=False)):
        with nr.recording("replay", dir=tmp_path, scope=str(scope)):
            with pytest.raises(openai.AuthenticationError, match=r"\*\*\*") as replayed:
                _call_sync(client, Canaries(), "echo-401", stream)
            assert replayed.value.status_code == 401
    assert echo_server.seen == []


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_result_that_echoes_every_credential_writes_none(
    echo_server: _EchoServer, tmp_path: Path, stream: bool
) -> None:
    c = Canaries()
    live = []
    for scope, client in enumerate(_clients(echo_server, c, asynchronous=False)):
        with nr.recording("record", dir=tmp_path, scope=str(scope)):
            live.append(_call_sync(client, c, "echo-200", stream))
    texts = [r if stream else r.choices[0].message.content for r in live]
    assert [x for x in c.all if x not in "".join(texts)] == []  # the caller sees the echo as sent
    _assert_none_written(tmp_path, c)
    assert len(list(tmp_path.glob("*.json"))) == 3
    assert main(["verify", str(tmp_path)]) == 0

    for scope, client in enumerate(_clients(echo_server, Canaries(), asynchronous=False)):
        with nr.recording("replay", dir=tmp_path, scope=str(scope)):
            replayed = _call_sync(client, Canaries(), "echo-200", stream)
        text = replayed if stream else replayed.choices[0].message.content
        assert "***" in text and '"model": "echo-200"' in text


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_async_calls_write_no_credential(echo_server: _EchoServer, tmp_path: Path, stream: bool) -> None:
    c = Canaries()

    async def record() -> None:
        for scope, client in enumerate(_clients(echo_server, c, asynchronous=True)):
            with nr.recording("record", dir=tmp_path, scope=str(scope)):
                await _call_async(client, c, "echo-200", stream)
                with pytest.raises(openai.AuthenticationError):
                    await _call_async(client, c, "echo-401", stream)

    asyncio.run(record())
    assert len(list(tmp_path.glob("*.json"))) == 6
    _assert_none_written(tmp_path, c)


def test_a_token_provider_is_masked_in_errors(echo_server: _EchoServer, tmp_path: Path) -> None:
    # The token a provider gives is read from the request that was sent.
    c = Canaries()
    token = c("provider-token")
    client = openai.AzureOpenAI(
        azure_endpoint=echo_server.url, api_version="2024-06-01", azure_ad_token_provider=lambda: token, max_retries=0
    )
    with nr.recording("record", dir=tmp_path), pytest.raises(openai.AuthenticationError, match=token):
        client.chat.completions.create(model="echo-401", messages=HI)  # type: ignore[arg-type]
    _assert_none_written(tmp_path, c)


def test_short_values_are_not_masked(echo_server: _EchoServer, tmp_path: Path) -> None:
    # Replacing a five-character value everywhere would destroy data: such a value is not masked.
    client = openai.OpenAI(base_url=echo_server.url + "/v1", api_key="sk-long-enough-key", max_retries=0)
    with nr.recording("record", dir=tmp_path):
        client.chat.completions.create(model="echo-200", messages=HI, extra_body={"password": "hello"})  # type: ignore[arg-type]
    text = _written(tmp_path).decode()
    assert "sk-long-enough-key" not in text
    assert "hello" in text  # kept: too short to be masked
    # The request in the file never holds it, as before.
    [record] = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert "password" not in record["request"]["body"]


def test_function_schemas_with_credential_like_property_names_are_recorded(
    client: openai.OpenAI, tmp_path: Path
) -> None:
    # A tool parameter called "key", "token" or "password" is a schema (a mapping), not a secret.
    properties = {"key": {"type": "string"}, "token": {"type": "integer"}, "password": {"type": "string"}}
    tools = [
        {"type": "function", "function": {"name": "get", "parameters": {"type": "object", "properties": properties}}}
    ]
    messages = [{"role": "user", "content": "hi"}]
    with nr.recording("record", dir=tmp_path):
        client.chat.completions.create(model="gpt-4o", messages=messages, tools=tools)  # type: ignore[arg-type]
    key = nr.calls()[-1].key
    body = json.loads((tmp_path / f"{key}.json").read_text())["request"]["body"]
    assert body["tools"][0]["function"]["parameters"]["properties"] == properties

    other = {**properties, "key": {"type": "integer"}}
    other_tools = [
        {"type": "function", "function": {"name": "get", "parameters": {"type": "object", "properties": other}}}
    ]
    with nr.recording("record", dir=tmp_path):
        client.chat.completions.create(model="gpt-4o", messages=messages, tools=other_tools)  # type: ignore[arg-type]
    assert nr.calls()[-1].key != key


def test_a_body_field_called_key_is_kept_but_a_query_key_is_dropped(client: openai.OpenAI, tmp_path: Path) -> None:
    secret = "AIzaSyD-0123456789-abcdefghij"
    region = {"type": "eq", "key": "region", "value": "us"}
    with nr.recording("record", dir=tmp_path):
        client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"filters": region},
            extra_query={"key": secret},
        )
    record = json.loads((tmp_path / f"{nr.calls()[-1].key}.json").read_text())
    assert record["request"]["body"]["filters"] == region
    assert secret not in json.dumps(record)


# ---------------------------------------------------------------------------------------------
# nr.tool
# ---------------------------------------------------------------------------------------------


def test_tools_write_no_credential_from_arguments_results_or_exceptions(tmp_path: Path) -> None:
    c = Canaries()
    key, token, password = c("tool-api-key"), c("tool-token"), c("tool-password")
    secret_key, nested, pair = c("tool-secret-key"), c("tool-nested"), c("tool-header-pair")
    camel = c("tool-apiKey")

    def everything(**kwargs: Any) -> str:
        return json.dumps(kwargs)

    @nr.tool(provider="p", name="fetch")
    def fetch(query: str, api_key: str, token: str, options: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"query": query, "echo": everything(api_key=api_key, token=token, options=options, extra=extra)}

    @nr.tool(provider="p", name="fail")
    def fail(query: str, password: str, options: dict[str, Any]) -> None:
        raise PermissionError(f"denied for {query}: {everything(password=password, options=options)}")

    @nr.tool(provider="p", name="pages")
    def pages(query: str, api_key: str) -> Iterator[str]:
        yield f"page 1 for {api_key}"
        yield f"page 2 for {query}"

    options = {"secret_key": secret_key, "credentials": {"u": "x", "pw": nested}, "headers": [["X-Api-Key", pair]]}
    with nr.recording("record", dir=tmp_path):
        result = fetch("q", key, token, options, apiKey=camel)
        assert all(x in result["echo"] for x in (key, token, secret_key, nested, pair, camel))
        with pytest.raises(PermissionError, match=password):  # the caller still sees the real message
            fail("q", password, options)
        assert list(pages("q", api_key=key)) == [f"page 1 for {key}", "page 2 for q"]
    _assert_none_written(tmp_path, c)
    assert len(list(tmp_path.glob("*.json"))) == 3
    assert main(["verify", str(tmp_path)]) == 0

    with nr.recording("replay", dir=tmp_path):
        options = {"secret_key": "x", "headers": [["X-Api-Key", "other-key"]]}
        replayed = fetch("q", "other-key-0000", "other-token-000", options, apiKey="y")
        assert replayed["query"] == "q" and "***" in replayed["echo"]
        with pytest.raises(PermissionError, match=r"denied for q: .*\*\*\*"):
            fail("q", "other-password", options)
        assert list(pages("q", api_key="whatever-key")) == ["page 1 for ***", "page 2 for q"]


def test_tool_exception_messages_do_not_leak_credential_arguments(tmp_path: Path) -> None:
    secret = "sk-very-secret-0123456789"

    @nr.tool(provider="p", name="search")
    def search(query: str, api_key: str, options: dict | None = None) -> str:
        raise ValueError(f"invalid key {api_key} for {query}; options {options}")

    with nr.recording("record", dir=tmp_path):
        with pytest.raises(ValueError, match=secret):  # the caller still sees the real exception
            search("q", api_key=secret, options={"auth": {"token": "tok-abcdef-123"}})
    text = "".join(p.read_text() for p in tmp_path.glob("*.json"))
    assert secret not in text
    assert "tok-abcdef-123" not in text
    assert "invalid key *** for q" in text

    with nr.recording("replay", dir=tmp_path):
        with pytest.raises(ValueError, match=r"invalid key \*\*\* for q"):
            search("q", api_key="other", options={"auth": {"token": "x"}})


def test_a_tool_argument_called_key_is_data_unless_it_looks_like_a_secret(tmp_path: Path) -> None:
    calls: list[str] = []

    @nr.tool(provider="kv", name="get")
    def get(key: str) -> int:
        calls.append(key)
        return {"a": 1, "b": 2}.get(key, 0)

    with nr.recording("record", dir=tmp_path):
        get("a")
        get(key="b")
        get("AIzaSyD-0123456789-abcdefghij")  # looks like an API key: never written
    with nr.recording("replay", dir=tmp_path):
        assert get("a") == 1
        assert get("b") == 2
    assert calls == ["a", "b", "AIzaSyD-0123456789-abcdefghij"]
    written = b"".join(path.read_bytes() for path in tmp_path.glob("*.json"))
    assert b"AIzaSyD" not in written


# ---------------------------------------------------------------------------------------------
# The rules, one by one
# ---------------------------------------------------------------------------------------------


def test_scrub_drops_new_names_casings_and_header_lists_but_keeps_schemas() -> None:
    body = {
        "secret_key": "s",
        "secretKey": "s",
        "Client-Secret": "s",
        "credentials": {"user": "u", "pass": "p"},
        "headers": [["Authorization", "Bearer x"], ["Accept", "json"]],
        "forward": [{"name": "X-Api-Key", "value": "v"}, {"key": "region", "value": "us"}],
        "schema": {"properties": {"password": {"type": "string"}, "credentials": {}}},
        "enum": ["password", "otp"],
        "filter": {"key": "region"},
    }
    assert scrub(body) == {
        "headers": [["Accept", "json"]],
        "forward": [{"key": "region", "value": "us"}],
        "schema": {"properties": {"password": {"type": "string"}, "credentials": {}}},
        "enum": ["password", "otp"],
        "filter": {"key": "region"},
    }


def test_scrub_still_drops_credential_strings_next_to_kept_mappings() -> None:
    from notebook_recorder.core._secrets import TOOL_CREDENTIAL_NAMES, scrub

    value = {
        "key": {"type": "string"},
        "auth": {"token": "tok_0123456789abcdef", "api_key": ["sk-1"]},
        "password": "pw",
        "filter": {"key": "region", "token": "t"},  # ambiguous names holding ordinary data
    }
    assert scrub(value) == {"key": {"type": "string"}, "auth": {}, "filter": {"key": "region", "token": "t"}}
    # Tool arguments: `token` always counts as a credential.
    assert scrub({"token": "t", "key": "region"}, TOOL_CREDENTIAL_NAMES) == {"key": "region"}


def test_request_secrets_collects_each_place_and_the_forms_it_is_echoed_in() -> None:
    found = request_secrets(
        values=["sk-client-key-1", None, "tiny"],
        headers={
            "Authorization": "Bearer tok-bearer-123",
            "User-Agent": "OpenAI/Python",
            "Cookie": "a=1; s=sess-cookie-9",
        },
        query=[("key", "q-key-value"), ("limit", "100000")],
        body={"model": "gpt-4o", "deep": [{"accessToken": "acc/tok+en=="}], "get": {"key": "region-name"}},
    )
    assert "sk-client-key-1" in found and "tiny" not in found
    assert {"Bearer tok-bearer-123", "tok-bearer-123", "sess-cookie-9", "q-key-value", "acc/tok+en=="} <= set(found)
    assert "acc%2Ftok%2Ben%3D%3D" in found  # as a URL echoes it
    assert "OpenAI/Python" not in found and "100000" not in found and "region-name" not in found
    assert "gpt-4o" not in found
    assert list(found) == sorted(found, key=len, reverse=True)


def test_mask_replaces_values_and_keys_and_leaves_clean_data_alone() -> None:
    clean = {"a": ["b", {"c": 1}]}
    assert mask(clean, ["secret-value"]) is clean
    value = {"message": "bad key secret-value-long", "secret-value-long": ["x secret-value-long y"]}
    assert mask(value, ["secret-value", "secret-value-long"]) == {"message": "bad key ***", "***": ["x *** y"]}


def test_verify_flags_credentials_that_slipped_through(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    @nr.tool(provider="p", name="echo")
    def echo(text: str) -> dict[str, Any]:
        return {"text": text}

    with nr.recording("record", dir=tmp_path):
        echo("hello")
    assert main(["verify", str(tmp_path)]) == 0
    capsys.readouterr()
    [path] = tmp_path.glob("*.json")
    record = json.loads(path.read_text())
    planted = {
        "github": "ghp_" + "a1B2c3D4e5" * 4,
        "aws": "AKIA" + "ABCDEFGHIJ234567",
        "slack": "xoxb-1234567890-abcdefghij",
        "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcdefghijklmnop",
        "proj": "sk-proj-" + "Z9y8X7w6V5" * 3,
    }
    record["response"]["body"]["text"] = " ".join(planted.values())
    record["response"]["body"]["nested"] = {"apiKey": "plain-credential-value"}
    record["response"]["body"]["masked"] = {"api_key": "***"}  # masked: not a finding
    path.write_text(json.dumps(record))
    assert main(["verify", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    for what in ("GitHub token", "AWS access key id", "Slack token", "JSON web token", "OpenAI-style API key"):
        assert what in out
    assert "response.body.nested.apiKey holds a value under a credential name" in out
    assert "masked" not in out
    assert all(secret not in out for secret in planted.values())  # findings are shown masked


def test_leak_scan_ignores_schemas_masks_and_the_placeholder(tmp_path: Path) -> None:
    record = {
        "request": {
            "headers": {},
            "body": {"tools": [{"parameters": {"properties": {"password": {"type": "string"}}}}], "api_key": "***"},
        },
        "response": {"body": {"choices": [{"logprobs": {"content": [{"token": "Supercalifragilistic"}]}}]}},
    }
    path = tmp_path / "x.json"
    path.write_text(json.dumps(record))
    assert leaks(path, record) == []


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=100, deadline=None)
@given(value=_json, secret=st.text(min_size=6, max_size=24), where=st.integers(0, 3))
def test_mask_leaves_no_occurrence_of_a_secret(value: Any, secret: str, where: int) -> None:
    planted = [value, f"x{secret}y", {secret: value}, {"k": [secret, value]}][where]
    masked = mask(planted, request_secrets(values=[secret]))
    # Every string (keys included) is checked. Not the JSON text: a secret of digits can stand in
    # a number (000000 in 125000000), or one of punctuation in the JSON syntax, which is no echo.
    assert not [text for text in _strings(masked) if secret in text]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


@settings(max_examples=100, deadline=None)
@given(value=_json)
def test_scrub_is_idempotent(value: Any) -> None:
    once = scrub(value)
    assert scrub(once) == once


# -- issue 28: tool and MCP server definitions, cloud credentials --------------------------------


def test_mcp_server_and_connector_tokens_are_scrubbed() -> None:
    token = "mcp-canary-token-0123456789abcdef"
    body = {
        "mcp_servers": [
            {"type": "url", "url": "https://mcp.example.com/sse", "name": "n", "authorization_token": token}
        ],
        "tools": [{"type": "x", "aws_secret_access_key": "canary/AWS/secret/key/0123456789", "oauth_token": token}],
    }
    scrubbed = _secrets.scrub(body)
    assert token not in json.dumps(scrubbed) and "canary/AWS" not in json.dumps(scrubbed)
    assert scrubbed["mcp_servers"][0] == {"type": "url", "url": "https://mcp.example.com/sse", "name": "n"}
    assert token in _secrets.request_secrets(body=body)


def test_a_sigv4_authorization_gives_its_key_id_and_signature_to_mask() -> None:
    header = (
        "AWS4-HMAC-SHA256 Credential=AKIAZZZCANARY0000028/20261207/us-east-1/bedrock/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=0123456789abcdef0123456789abcdef"
    )
    found = _secrets.request_secrets(headers={"Authorization": header})
    assert {"AKIAZZZCANARY0000028", "0123456789abcdef0123456789abcdef", header} <= set(found)
    masked = _secrets.mask({"message": "bad signature 0123456789abcdef0123456789abcdef"}, found)
    assert masked == {"message": "bad signature ***"}


def test_presigned_url_parts_are_dropped_from_urls() -> None:
    url = "https://bucket.s3.amazonaws.com/f?X-Amz-Credential=AKIA%2Fscope&X-Amz-Signature=abc123&part=1"
    assert _secrets.scrub_url(url) == "https://bucket.s3.amazonaws.com/f?part=1"


def test_the_leak_scan_knows_google_access_tokens_and_sigv4(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    echo = "ya29.a0CanaryGoogleAccessToken28forTests AWS4-HMAC-SHA256 Credential=AKIAZZZ/20261207/x"
    record = {"response": {"body": {"echo": echo}}}
    path.write_text(json.dumps(record))
    kinds = " ".join(_secrets.leaks(path, record))
    assert "Google OAuth access token" in kinds and "AWS SigV4 signature" in kinds


@pytest.mark.parametrize(
    ("what", "pattern", "clues"), _secrets.SECRET_PATTERNS, ids=[what for what, _, _ in _secrets.SECRET_PATTERNS]
)
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_every_match_of_a_leak_pattern_holds_one_of_its_clues(what: str, pattern: Any, clues: Any, data: Any) -> None:
    """The scan runs a pattern only on text that holds one of its clues: a clue must be in every
    string the pattern matches, or a leak would go unseen."""
    match = data.draw(st.from_regex(pattern, fullmatch=True))
    assert any(clue in match for clue in clues), (what, match)


def test_a_file_without_clues_is_not_scanned_line_by_line_but_one_with_them_is(tmp_path: Path) -> None:
    """A leak in the last line of a large file is found, in a file that holds other clues too."""
    path = tmp_path / "r.json"
    lines = ["word " * 20] * 20_000 + ["ghost hf_ and eyJ but no token", "Bearer abcdefgh12345678"]
    path.write_text("\n".join(lines))
    found = _secrets.leaks(path, {})
    assert found == [f"line {len(lines)}: Bearer token Bearer … (23 chars)"], found
    path.write_text("\n".join(lines[:-1]))
    assert _secrets.leaks(path, {}) == []


# ---------------------------------------------------------------------------------------------
# The backstop: what was actually sent, the environment, tool headers and URLs
# ---------------------------------------------------------------------------------------------


def test_http_basic_auth_of_a_custom_http_client_is_masked(echo_server: _EchoServer, tmp_path: Path) -> None:
    # The credentials are added by the HTTP library's own auth flow, after the SDK built the
    # request: only the request as it left the process holds them.
    httpx_module = pytest.importorskip("httpx2" if openai.__version__.startswith("3.") else "httpx")
    c = Canaries()
    password = c("basic-password")
    http_client = httpx_module.Client(auth=("someone", password))
    client = openai.OpenAI(base_url=echo_server.url + "/v1", api_key="sk-basic-test-key", http_client=http_client)
    with nr.recording("record", dir=tmp_path), pytest.raises(openai.AuthenticationError):
        client.with_options(max_retries=0).chat.completions.create(model="echo-401", messages=HI)  # type: ignore[arg-type]
    assert "basic" in str(echo_server.seen[-1]["headers"]).lower()  # it was sent
    _assert_none_written(tmp_path, c)


def test_base_url_user_info_is_masked(echo_server: _EchoServer, tmp_path: Path) -> None:
    c = Canaries()
    password = c("userinfo-password")
    url = echo_server.url.replace("http://", f"http://someone:{password}@") + "/v1"
    client = openai.OpenAI(base_url=url, api_key="sk-userinfo-test-key", max_retries=0)
    with nr.recording("record", dir=tmp_path), pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="echo-401", messages=HI)  # type: ignore[arg-type]
    _assert_none_written(tmp_path, c)


def test_a_key_pasted_into_a_prompt_is_masked_and_the_call_still_replays(
    echo_server: _EchoServer, tmp_path: Path
) -> None:
    key = f"sk-pasted-{uuid.uuid4().hex}"
    client = openai.OpenAI(base_url=echo_server.url + "/v1", api_key=key, max_retries=0)
    messages = [{"role": "user", "content": f"why does {key} not work?"}]
    with nr.recording("record", dir=tmp_path):
        recorded = client.chat.completions.create(model="echo-200", messages=messages)  # type: ignore[arg-type]
    assert key.encode() not in _written(tmp_path)
    [record] = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert record["masked"] is True and "***" in record["request"]["body"]["messages"][0]["content"]
    with nr.recording("replay", dir=tmp_path):  # found by its name, the key of what was sent
        replayed = client.chat.completions.create(model="echo-200", messages=messages)  # type: ignore[arg-type]
    assert replayed.id == recorded.id and key not in (replayed.choices[0].message.content or "")


def test_credential_environment_variables_are_masked_in_tool_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = Canaries()
    search_key, db_password = c("env-search-key"), c("env-db-password")
    monkeypatch.setenv("MYSEARCH_API_KEY", search_key)
    monkeypatch.setenv("WAREHOUSE_PASSWORD", db_password)
    monkeypatch.setenv("FEATURE_TOKEN", "enabled")  # a plain word is no credential

    @nr.tool(provider="p", name="lookup")
    def lookup(query: str) -> dict[str, Any]:
        return {"query": query, "debug": f"key={search_key} dsn=pg://u:{db_password}@db", "flag": "enabled"}

    with nr.recording("record", dir=tmp_path):
        assert search_key in lookup("q")["debug"]
    _assert_none_written(tmp_path, c)
    assert b"enabled" in _written(tmp_path)


def test_tool_header_arguments_and_urls_are_scrubbed_and_masked(tmp_path: Path) -> None:
    c = Canaries()
    subscription, rapid, private, api_secret = c("sub"), c("rapid"), c("private"), c("api-secret")
    url_password, url_key = c("url-password"), c("url-key")
    headers = {
        "X-Subscription-Token": subscription,
        "X-RapidAPI-Key": rapid,
        "PRIVATE-TOKEN": private,
        "X-Api-Secret": api_secret,
        "Accept": "application/json",
    }
    url = f"https://someone:{url_password}@search.example/v1?q=x&api_key={url_key}"

    @nr.tool(provider="p", name="get")
    def get(url: str, headers: dict[str, str]) -> str:
        return f"fetched {url} with {json.dumps(headers)}"

    with nr.recording("record", dir=tmp_path):
        assert rapid in get(url, headers)
    _assert_none_written(tmp_path, c)
    [record] = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert record["request"]["kwargs"]["headers"] == {"Accept": "application/json"}  # dropped, as SDK headers are
    assert record["request"]["kwargs"]["url"] == "https://search.example/v1?q=x"
    with nr.recording("replay", dir=tmp_path):  # other credentials, the same call
        assert get(url.replace(url_key, "another-key-123"), {**headers, "X-RapidAPI-Key": "other"}).startswith(
            "fetched"
        )


def test_sent_bytes_secrets_reads_a_request_head() -> None:
    from notebook_recorder.core._secrets import sent_bytes_secrets

    head = (
        b"POST /v1/chat?api_key=query-secret-1&q=x HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer bearer-secret-2\r\n"
        b"X-Custom-Token: custom-secret-3\r\nContent-Length: 2\r\n\r\n{}"
    )
    found = sent_bytes_secrets(head)
    assert {"query-secret-1", "bearer-secret-2", "custom-secret-3"} <= set(found)
    assert sent_bytes_secrets(b"\x16\x03\x01 tls record") == ()
    assert sent_bytes_secrets(b'{"a": 1}') == ()
