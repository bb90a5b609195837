"""Keys (FORMAT.md, "Keys and file names"), normalisation, scrubbing, endpoints and diffs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import urlsplit

import openai
import pytest

import notebook_recorder as nr
from notebook_recorder.core._keys import (
    Change,
    InferenceRequest,
    ToolRequest,
    canonical_endpoint,
    comparable,
    diff,
    normalize,
    record_key,
    request_from_record,
)
from notebook_recorder.core._secrets import scrub, scrub_url

FIXTURES = Path(__file__).parent.parent / "fixtures" / "llama-stack"


def _sha(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def test_inference_key_is_the_documented_formula() -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}], "temperature": 0.7}
    request = InferenceRequest("POST", "/v1/chat/completions", body, model="gpt-4o")
    expected = _sha({"method": "POST", "endpoint": "/v1/chat/completions", "body": body, "test_id": "t::a"})
    assert request.key("t::a") == expected
    assert len(expected) == 64
    assert request.key("t::b") != expected  # test_id enters the key
    assert request.key(None) != expected


def test_shared_endpoints_ignore_test_id() -> None:
    models = InferenceRequest("GET", "/v1/models", {})
    assert models.key("a") == models.key("b") == models.key(None)
    tags = InferenceRequest("GET", "/api/tags", {})
    assert tags.key("a") == tags.key(None)


def test_float_normalisation_enters_the_key() -> None:
    a = InferenceRequest("POST", "/v1/embeddings", {"x": 0.1234567891, "s": "cost 3.14159265 usd"})
    b = InferenceRequest("POST", "/v1/embeddings", {"x": 0.1234568, "s": "cost 3.141593 usd"})
    assert a.key(None) == b.key(None)
    c = InferenceRequest("POST", "/v1/embeddings", {"x": 0.12346, "s": "cost 3.141592 usd"})
    assert c.key(None) == a.key(None)
    d = InferenceRequest("POST", "/v1/embeddings", {"x": 0.1235, "s": "cost 3.14159265 usd"})
    assert d.key(None) != a.key(None)


def test_normalize() -> None:
    assert normalize(0.123456789) == 0.12346
    assert normalize(-1.0) == -1.0
    assert normalize(3) == 3 and normalize(True) is True and normalize(None) is None
    assert (
        normalize("pi is 3.14159265 and -2.718281 or 1.5 or 1.2345") == "pi is 3.14159 and -2.71828 or 1.5 or 1.23450"
    )
    assert normalize({"a": [0.111111111, {"b": "x 0.99999999"}]}) == {"a": [0.11111, {"b": "x 1.00000"}]}
    assert normalize((1.000001,)) == [1.0]


def test_tool_key_is_the_documented_formula() -> None:
    request = ToolRequest("tavily", "web_search", {"query": "python"})
    # without a scope: llama-stack's formula
    assert request.key(None) == _sha({"provider": "tavily", "tool_name": "web_search", "kwargs": {"query": "python"}})
    # in a scope (a pytest test): the scope is keyed, as for API calls (issue 22)
    assert request.key("scope") == _sha(
        {"provider": "tavily", "tool_name": "web_search", "kwargs": {"query": "python"}, "test_id": "scope"}
    )


def test_llama_stack_names_are_the_same_formula_over_its_doubled_url_path() -> None:
    """Recomputing llama-stack's own key (its URL path, often ``/v1/v1/...``) reproduces the names
    of its files; ours (canonical endpoint) does not. That proves the formula, and shows why
    llama-stack files can only be found by content."""
    reproduced = doubled = 0
    for path in sorted(FIXTURES.rglob("*.json")):
        record = json.loads(path.read_text())
        request = record["request"]
        if "body" not in request or "tool_name" in request:
            continue
        stem = path.stem.split("-")[1] if path.stem.startswith("models-") else path.stem
        url_path = urlsplit(request["url"]).path
        llama_key = _sha(
            {
                "method": request["method"],
                "endpoint": url_path,
                "body": normalize(request["body"]),
                "test_id": record.get("test_id"),
            }
        )
        if llama_key == stem:
            reproduced += 1
            if "/v1/v1/" in url_path:
                doubled += 1
                assert record_key(record) != stem  # canonical endpoint: a different key
    assert reproduced >= 50
    assert doubled >= 40


def test_llama_stack_tool_files_are_named_by_the_unscoped_formula() -> None:
    """llama-stack names a tool file by the key without its test_id; the content key keeps the
    test_id (issue 22), so these files, like its inference files, are found by content."""
    tool_files = [p for p in FIXTURES.rglob("*.json") if "tool_name" in json.loads(p.read_text())["request"]]
    assert tool_files
    for path in tool_files:
        record = json.loads(path.read_text())
        request = record["request"]
        unscoped = ToolRequest(request["provider"], request["tool_name"], request["kwargs"]).key(None)
        assert unscoped == path.stem
        assert record_key(record) == ToolRequest(request["provider"], request["tool_name"], request["kwargs"]).key(
            record["test_id"]
        )


@pytest.mark.parametrize(
    ("endpoint", "url", "expected"),
    [
        ("/v1/chat/completions", "", "/v1/chat/completions"),
        ("/v1/v1/chat/completions", "", "/v1/chat/completions"),
        ("https://api.openai.com/v1/v1/embeddings", "", "/v1/embeddings"),
        ("v1/models?limit=2", "", "/v1/models?limit=2"),  # an HTTP-level endpoint keeps its sorted query
        ("/chat/completions", "http://0.0.0.0:11434/v1/chat/completions", "/v1/chat/completions"),
        ("/chat/completions", "", "/chat/completions"),
        ("/api/generate", "http://0.0.0.0:11434/api/generate", "/api/generate"),
        ("/v1/v1", "", "/v1"),
    ],
)
def test_canonical_endpoint(endpoint: str, url: str, expected: str) -> None:
    assert canonical_endpoint(endpoint, url) == expected


def test_scrub_removes_credential_names_at_any_depth() -> None:
    body = {
        "model": "m",
        "api_key": "sk-1",
        "Access-Token": "t",
        "nested": [{"token": "tok_0123456789abcdef", "keep": 1}, {"client_secret": "y"}],
        "keys": "not a credential name",
        "filter": {"key": "region"},  # `key` and `token` holding ordinary data are kept
    }
    assert scrub(body) == {
        "model": "m",
        "nested": [{"keep": 1}, {}],
        "keys": "not a credential name",
        "filter": {"key": "region"},
    }


def test_scrub_url() -> None:
    url = "https://user:pw@host/v1/x?api_key=sk&key=k&token=t&access_token=a&limit=2"
    assert scrub_url(url) == "https://host/v1/x?limit=2"


def test_request_from_record_reads_each_kind() -> None:
    inference = {
        "test_id": "t",
        "request": {
            "method": "POST",
            "url": "http://0.0.0.0:11434/v1/v1/chat/completions",
            "headers": {},
            "body": {"model": "m"},
            "endpoint": "/v1/chat/completions",
            "model": "m",
        },
    }
    request = request_from_record(inference)
    assert isinstance(request, InferenceRequest)
    assert request.endpoint == "/v1/chat/completions"
    assert record_key(inference) == request.key("t")
    tool = {"test_id": None, "request": {"provider": "p", "tool_name": "t", "kwargs": {"a": 1}}}
    assert isinstance(request_from_record(tool), ToolRequest)
    raw_http = {"request": {"method": "POST", "url": "https://x/v1/messages?b=2&a=1&key=s", "payload": {"m": 1}}}
    found = request_from_record(raw_http)  # llama-stack's raw HTTP recordings are keyed as HTTP-level ones
    assert isinstance(found, InferenceRequest)
    assert (found.endpoint, found.body) == ("/v1/messages?a=1&b=2", {"m": 1})
    assert request_from_record({"request": "nope"}) is None


def test_diff_is_readable_and_minimal() -> None:
    recorded = {"messages": [{"role": "user", "content": "Hi"}], "temperature": 0.7, "seed": 1}
    wanted = {"messages": [{"role": "user", "content": "Hello"}], "temperature": 0.2, "top_p": 1}
    changes = [str(c) for c in diff(recorded, wanted)]
    assert changes == [
        "messages[0].content: 'Hi' -> 'Hello'",
        "temperature: 0.7 -> 0.2",
        "seed: 1 -> (absent)",
        "top_p: (absent) -> 1",
    ]
    assert diff(recorded, recorded) == []
    assert str(Change("x", "a" * 200, "b")).startswith("x: 'aaaa")
    assert len(str(Change("x", "a" * 200, "b"))) < 100


def test_comparable_holds_what_enters_the_key() -> None:
    request = InferenceRequest("POST", "/v1/chat/completions", {"temperature": 0.123456789})
    assert comparable(request, "t") == {
        "method": "POST",
        "endpoint": "/v1/chat/completions",
        "test_id": "t",
        "body": {"temperature": 0.12346},
    }
    assert comparable(InferenceRequest("GET", "/v1/models", {}), "t")["test_id"] is None


def test_uploaded_file_contents_enter_the_key(client: openai.OpenAI, tmp_path: Path) -> None:
    # Multipart uploads (files, audio transcriptions) send the file outside the JSON body:
    # two different files must not share one recording.
    keys = []
    for content in (b"first file", b"second file"):
        with nr.recording("record", dir=tmp_path), pytest.raises(openai.APIStatusError):
            client.audio.transcriptions.create(model="whisper-1", file=("a.wav", content))
        keys.append(nr.calls()[-1].key)
    assert keys[0] != keys[1]
    assert len(list(tmp_path.glob("*.json"))) == 2

    path = tmp_path / "a.wav"
    path.write_bytes(b"first file")
    with nr.recording("replay", dir=tmp_path), pytest.raises(openai.APIStatusError), path.open("rb") as fh:
        client.audio.transcriptions.create(model="whisper-1", file=("a.wav", fh))
    assert nr.calls()[-1].key == keys[0]
