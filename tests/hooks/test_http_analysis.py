"""The frames read HTTP-level recordings (issue 21, item 10): Gemini, Cohere, Mistral, Ollama and
OpenAI-compatible clients fill text, tokens, chunks and finish reason; a plain HTTP call is
``kind="http"`` with its method, URL and status."""

from __future__ import annotations

from pathlib import Path

import pytest
from http_wire_server import WORDS, HttpWireServer
from test_http_clients import SYNC

import notebook_recorder as nr

ANSWER = "".join(WORDS)


@pytest.mark.parametrize(
    ("name", "finish"),
    [
        ("google-genai", "STOP"),
        ("cohere", "COMPLETE"),
        ("mistralai", "stop"),
        ("ollama", "stop"),
        ("huggingface_hub", "stop"),
        ("together", "stop"),
    ],
)
def test_llm_clients_fill_the_frames(name: str, finish: str, tmp_path: Path) -> None:
    with HttpWireServer() as server, nr.recording("record", dir=tmp_path):
        SYNC[name](server.url)
    calls = nr.load_recordings(tmp_path)
    assert len(calls) == 2 and set(calls["kind"]) == {"inference"}
    assert list(calls["text"]) == [ANSWER, ANSWER]
    assert list(calls["finish_reason"]) == [finish, finish]
    assert list(calls["prompt_tokens"]) == [9, 9] and list(calls["completion_tokens"]) == [7, 7]
    streamed = calls[calls["is_streaming"]]
    assert len(streamed) == 1 and streamed["n_chunks"].iloc[0] >= len(WORDS)
    tokens = nr.token_stream(tmp_path)
    assert "".join(tokens["delta"].fillna("")) == ANSWER
    assert tokens["offset_ms"].notna().all()


def test_tool_calls_of_an_openai_compatible_http_recording(tmp_path: Path) -> None:
    import httpx2

    tool = {"type": "function", "function": {"name": "web_search", "parameters": {"type": "object"}}}
    with HttpWireServer() as server, nr.recording("record", dir=tmp_path):
        httpx2.post(
            server.url + "/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "search"}], "tools": [tool], "stream": True},
        ).read()
    (row,) = nr.load_recordings(tmp_path).itertuples()
    assert row.n_tool_calls == 1 and row.finish_reason == "tool_calls"
    calls = nr.tool_calls(tmp_path)
    assert list(calls[calls["source"] == "response"]["name"]) == ["web_search"]


def test_a_plain_http_call_is_kind_http(tmp_path: Path) -> None:
    with HttpWireServer() as server, nr.recording("record", dir=tmp_path):
        SYNC["requests"](server.url)
    calls = nr.load_recordings(tmp_path).set_index("endpoint")
    search = calls.loc["/search?q=paris"]
    assert search["kind"] == "http" and search["method"] == "GET" and search["status_code"] == 200
    assert search["url"].startswith("http://127.0.0.1:") and "api_key" not in search["url"]
    assert calls.loc["/api/chat", "kind"] == "inference"
