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
    from notebook_recorder._keys import scrub

    value = {"key": {"type": "string"}, "auth": {"token": "t", "api_key": ["sk-1"]}, "password": "pw"}
    assert scrub(value) == {"key": {"type": "string"}, "auth": {}}


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
