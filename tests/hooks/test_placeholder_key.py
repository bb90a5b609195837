"""Without OPENAI_API_KEY, modes that replay still let `OpenAI()` be built, and never send a fake key.

The other clients, os.environ left alone and the pytest session: tests/hooks/test_keyless_replay.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import openai
import pytest
from wire_server import WireServer

import notebook_recorder as nr

MESSAGES = [{"role": "user", "content": "What is the latest version of Python?"}]


def test_record_if_missing_without_a_key_replays_what_exists(wire_server: WireServer, tmp_path: Path) -> None:
    with nr.recording("record", dir=tmp_path):
        live = openai.OpenAI(base_url=wire_server.base_url, api_key="sk-real-key", max_retries=0)
        recorded = live.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
    served = len(wire_server.requests)

    assert "OPENAI_API_KEY" not in os.environ
    with nr.recording("record-if-missing", dir=tmp_path):
        client = openai.OpenAI(base_url=wire_server.base_url, max_retries=0)  # no key anywhere
        replayed = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
        assert replayed == recorded

        with pytest.raises(nr.RecordingNotFoundError, match="OPENAI_API_KEY is not set") as info:
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
        assert "record-if-missing" in str(info.value)

    assert len(wire_server.requests) == served  # the placeholder key was never sent
    assert "OPENAI_API_KEY" not in os.environ  # and never put in the environment
    assert [c.outcome for c in nr.calls()[-2:]] == ["replayed", "missing"]


def test_a_client_built_while_replaying_is_refused_in_live_mode(wire_server: WireServer, tmp_path: Path) -> None:
    """``live`` never sends the placeholder either: it says why, not that a recording is missing."""
    with nr.recording("replay", dir=tmp_path):
        client = openai.OpenAI(base_url=wire_server.base_url, max_retries=0)  # built with the placeholder
    with nr.recording("live", dir=tmp_path), pytest.raises(nr.NetworkBlockedError) as info:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
    assert str(info.value) == (
        f"POST /v1/chat/completions (model gpt-4o): not sent to {info.value.destination}. The client was built "
        "while replaying, with no key, so it holds notebook-recorder's placeholder instead of one: set "
        "OPENAI_API_KEY (or pass api_key=), build the client again and run again."
    )
    assert wire_server.base_url.startswith(f"http://{info.value.destination}/")
    assert wire_server.requests == []
    assert [(c.outcome, c.error) for c in nr.calls()] == [("live", "NetworkBlockedError")]


def test_a_real_key_is_left_alone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-user-key")
    with nr.recording("replay", dir=tmp_path):
        assert os.environ["OPENAI_API_KEY"] == "sk-user-key"
    assert os.environ["OPENAI_API_KEY"] == "sk-user-key"
