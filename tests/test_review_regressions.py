"""Regression tests for bugs found in review: each failed before its fix."""

from __future__ import annotations

import json
import os
from pathlib import Path

import openai
import pytest

import notebook_recorder as nr


def _recorded_file(directory: Path, key: str) -> dict:
    return json.loads((directory / f"{key}.json").read_text())


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
    body = _recorded_file(tmp_path, key)["request"]["body"]
    assert body["tools"][0]["function"]["parameters"]["properties"] == properties

    other = {**properties, "key": {"type": "integer"}}
    other_tools = [
        {"type": "function", "function": {"name": "get", "parameters": {"type": "object", "properties": other}}}
    ]
    with nr.recording("record", dir=tmp_path):
        client.chat.completions.create(model="gpt-4o", messages=messages, tools=other_tools)  # type: ignore[arg-type]
    assert nr.calls()[-1].key != key


def test_scrub_still_drops_credential_strings_next_to_kept_mappings() -> None:
    from notebook_recorder._secrets import TOOL_CREDENTIAL_NAMES, scrub

    value = {
        "key": {"type": "string"},
        "auth": {"token": "tok_0123456789abcdef", "api_key": ["sk-1"]},
        "password": "pw",
        "filter": {"key": "region", "token": "t"},  # ambiguous names holding ordinary data
    }
    assert scrub(value) == {"key": {"type": "string"}, "auth": {}, "filter": {"key": "region", "token": "t"}}
    # Tool arguments: `token` always counts as a credential.
    assert scrub({"token": "t", "key": "region"}, TOOL_CREDENTIAL_NAMES) == {"key": "region"}


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


def test_relative_directory_is_fixed_when_recording_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Notebooks change directory (%cd): the recordings directory chosen stays the same one.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()

    @nr.tool(provider="p", name="echo")
    def echo(x: int) -> int:
        return x

    nr.start("record", dir="recs")
    try:
        echo(1)
        os.chdir(tmp_path / "sub")
        echo(2)
    finally:
        nr.stop()
    assert len(list((tmp_path / "recs").glob("*.json"))) == 2
    assert not (tmp_path / "sub" / "recs").exists()

    nr.start("replay", dir="../recs")
    try:
        os.chdir(tmp_path)
        assert echo(2) == 2
    finally:
        nr.stop()


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
    record = _recorded_file(tmp_path, nr.calls()[-1].key)
    assert record["request"]["body"]["filters"] == region
    assert secret not in json.dumps(record)
