"""notebook_recorder.analysis: the four frames, Recording, plot_token_stream, cache, errors.

Real llama-stack recordings (tests/fixtures/llama-stack) and files in our own format, written
here the way the recorder writes them (the Responses API with the timing extension, tools).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import notebook_recorder as nr
import notebook_recorder.analysis as nra
from notebook_recorder.analysis import _loader, _progress

FIXTURES = Path(__file__).parent.parent / "fixtures" / "llama-stack"
OCT = FIXTURES / "oct2025" / "tests" / "integration"
HEAD = FIXTURES / "head" / "tests" / "integration"

# Named fixture files
KNOWLEDGE_SEARCH_CALL = (
    OCT / "responses/recordings/3aa2233e21470cd1c2667b6e4e31cf680d89b3b3c936882767e4500b0cf6d517.json"
)
KNOWLEDGE_SEARCH_ANSWER = (
    OCT / "responses/recordings/1b0c005eb4b93c22ec7211904cab5145194ec832d8e436fee11599c1c2d80fd8.json"
)
WEB_SEARCH_TURN = HEAD / "responses/recordings/064011776e028eca5829b2a87b728b0e5f8fd6927adf3c1b69a2e40012ade3de.json"
TAVILY_INVOCATION = HEAD / "responses/recordings/661e959c98b894f6daf608d415bbf64f6a5a1af0eef8012354886062b9244f7b.json"
HELLO_STREAM = OCT / "recordings/responses/dbc41d2417e1.json"
HELLO_NOT_STREAMED = OCT / "recordings/responses/f1ea938b0b0d.json"
OLLAMA_CHAT_STREAM = OCT / "recordings/responses/ff7db0102b28.json"
OLLAMA_CHAT = OCT / "recordings/responses/f1592dee71e5.json"
OLLAMA_GENERATE = OCT / "recordings/responses/17253d7cc667.json"
COMPLETION_STREAM = HEAD / "inference/recordings/8567635651a5e7104394951bbbba040e5c7f3ba11084fb6e81328f4905100a65.json"
EXCEPTION = HEAD / "responses/recordings/b1cfdb1438921e88911a03e8cbc0f919b669f6d0c816fc246f00b437d151ef53.json"
GEMINI = HEAD / "responses/recordings/ca28439d6fcf71d68877f4db700e4cab91525426a77c44022010d66622980d55.json"
GEMINI_STREAM_TOOL = HEAD / "responses/recordings/29403c77d6e7142b991201c245a1f863128b74828d02f26e92c7355bd312a831.json"
ANTHROPIC_SSE = HEAD / "messages/recordings/f22657bfd86db6348c0a0d0b17332dcfc038b345d2a7be8da4b880a433d36a52.json"
INTERACTIONS_SSE = (
    HEAD / "interactions/recordings/72df7be9f414b6d04d00f666847edcac8c98baf7e5c79137285c12d0ae85b809.json"
)
HTTP_ERROR = HEAD / "common/recordings/cf0be7f9e2ebfc78903aa4ada30204585952f77bc5acb3ff7702bd7878d44b44.json"
MODEL_LIST = (
    HEAD / "common/recordings/models-3a641f25d65695766fb77e424273f716b852f371e1e87f6e14fd5672b1ab6005-4a65eed3.json"
)
EMBEDDINGS = OCT / "recordings/responses/a410d4840402.json"

REQUIRED_RECORDING_COLUMNS = [
    "kind",
    "endpoint",
    "model",
    "recorded_at",
    "test_id",
    "is_streaming",
    "n_chunks",
    "text",
    "finish_reason",
    "n_tool_calls",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "tool_name",
    "error",
]


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    nra.clear_cache()


def row(df: pd.DataFrame, path: Path) -> pd.Series:
    hits = df[df["path"] == str(path)]
    assert len(hits) == 1, path
    return hits.iloc[0]


def write(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def age(*paths: Path, seconds: float = 60) -> None:
    """Backdate files, as if written a while ago (files modified just now are never trusted)."""
    past = time.time() - seconds
    for p in paths:
        os.utime(p, (past, past))


# --- our own format ------------------------------------------------------------------------------


def _encoded(event: dict[str, Any]) -> dict[str, Any]:
    """An event encoded the way the recorder writes SDK objects, validated by the real SDK."""
    from openai.types.responses import ResponseStreamEvent
    from pydantic import TypeAdapter

    model = TypeAdapter(ResponseStreamEvent).validate_python(event)
    cls = type(model)
    return {"__type__": f"{cls.__module__}.{cls.__qualname__}", "__data__": model.model_dump(mode="json")}


RESPONSE = {
    "id": "rec-0123456789ab",
    "object": "response",
    "created_at": 0,
    "model": "gpt-4o-mini-2024-07-18",
    "status": "completed",
    "output": [
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_abc",
            "name": "web_search",
            "arguments": '{"query":"pandas 3"}',
            "status": "completed",
        },
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Pandas 3 <is> out.", "annotations": []}],
        },
    ],
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
    "usage": {
        "input_tokens": 12,
        "output_tokens": 5,
        "total_tokens": 17,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0},
    },
}


def responses_stream_recording() -> dict[str, Any]:
    """A streamed Responses API call as notebook-recorder writes it, with chunk timing."""
    events = [
        {"type": "response.output_item.added", "output_index": 0, "sequence_number": 1, "item": {
            "type": "function_call", "id": "fc_1", "call_id": "call_abc", "name": "web_search",
            "arguments": "", "status": "in_progress"}},
        {"type": "response.function_call_arguments.delta", "delta": '{"query":', "item_id": "fc_1",
         "output_index": 0, "sequence_number": 2},
        {"type": "response.function_call_arguments.delta", "delta": '"pandas 3"}', "item_id": "fc_1",
         "output_index": 0, "sequence_number": 3},
        {"type": "response.output_text.delta", "delta": "Pandas 3 ", "item_id": "msg_1", "output_index": 1,
         "content_index": 0, "sequence_number": 4, "logprobs": []},
        {"type": "response.output_text.delta", "delta": "<is> out.", "item_id": "msg_1", "output_index": 1,
         "content_index": 0, "sequence_number": 5, "logprobs": []},
        {"type": "response.completed", "response": RESPONSE, "sequence_number": 6},
    ]  # fmt: skip
    return {
        "test_id": "notebooks/demo.ipynb",
        "request": {
            "method": "POST",
            "url": "https://api.openai.com/v1/responses",
            "headers": {},
            "body": {
                "model": "gpt-4o-mini",
                "instructions": "Be brief.",
                "input": [
                    {"role": "user", "content": [{"type": "input_text", "text": "Is pandas 3 out?"}]},
                    {"type": "function_call", "call_id": "call_old", "name": "web_search", "arguments": '{"query":'},
                    {"type": "function_call_output", "call_id": "call_old", "output": "no results"},
                ],
                "stream": True,
            },
            "endpoint": "/v1/responses",
            "model": "gpt-4o-mini",
        },
        "response": {
            "body": [_encoded(e) for e in events],
            "is_streaming": True,
            "chunk_offsets_ms": [120.5, 130.0, 141.25, 300.0, 310.5, 320.0],
            "duration_ms": 321.0,
        },
        "id_normalization_mapping": {},
        "recorder": {"name": "notebook-recorder", "version": "0.1.0", "sdk": "openai", "sdk_version": "3.57.0"},
    }


def responses_plain_recording() -> dict[str, Any]:
    return {
        "test_id": None,
        "request": {
            "method": "POST",
            "url": "https://api.openai.com/v1/responses",
            "headers": {},
            "body": {"model": "gpt-4o-mini", "input": "Is pandas 3 out?"},
            "endpoint": "/v1/responses",
            "model": "gpt-4o-mini",
        },
        "response": {
            "body": {"__type__": "openai.types.responses.response.Response", "__data__": RESPONSE},
            "is_streaming": False,
            "duration_ms": 850.0,
        },
        "id_normalization_mapping": {},
    }


def tool_recording(kwargs: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    return {
        "test_id": None,
        "request": {"test_id": None, "provider": "local", "tool_name": "lookup", "kwargs": kwargs},
        "response": response,
        "id_normalization_mapping": {},
        "recorder": {"name": "notebook-recorder", "version": "0.1.0", "sdk": "openai", "sdk_version": "3.57.0"},
    }


@pytest.fixture
def own_dir(tmp_path: Path) -> Path:
    d = tmp_path / "recordings"
    write(d / "stream.json", responses_stream_recording())
    write(d / "plain.json", responses_plain_recording())
    write(d / "tool_ok.json", tool_recording({"q": "x"}, {"body": {"hits": [1, 2]}, "is_streaming": False}))
    write(
        d / "tool_raised.json",
        tool_recording(
            {"q": "boom"},
            {
                "body": None,
                "is_streaming": False,
                "is_exception": True,
                "exception_data": {"category": "tool", "type": "ValueError", "module": "builtins", "message": "boom"},
                "exception_message": "boom",
            },
        ),
    )
    write(
        d / "tool_generator.json",
        tool_recording(
            {"q": "gen"},
            {"body": ["a", "bc", {"d": 1}], "is_streaming": True, "chunk_offsets_ms": [1.0, 2.0, 3.0]},
        ),
    )
    return d


# --- the llama-stack corpus ----------------------------------------------------------------------


def test_every_fixture_loads_without_error() -> None:
    df = nra.load_recordings(FIXTURES)
    assert len(df) == 125
    assert list(df.columns[: len(REQUIRED_RECORDING_COLUMNS) - 1]) == REQUIRED_RECORDING_COLUMNS[:-1]
    assert "error" in df.columns
    assert df["error"].isna().all(), df.loc[df["error"].notna(), ["path", "error"]].to_string()
    assert set(df["kind"]) == {"inference", "embedding", "model_list", "tool", "http", "exception", "other"}
    assert (df["key"] == df["path"].map(lambda p: Path(p).stem)).all()
    assert df["size_bytes"].sum() == sum(p.stat().st_size for p in FIXTURES.rglob("*.json"))
    # the other frames read every file too
    assert len(nra.messages(df)) > 150
    assert len(nra.token_stream(df)) == df["n_chunks"].sum()


def test_dtypes_are_scalar_and_explicit() -> None:
    df = nra.load_recordings(FIXTURES)
    assert str(df["text"].dtype) == "str"
    assert str(df["prompt_tokens"].dtype) == "Int64"
    assert df["is_streaming"].dtype == bool
    assert df["duration_ms"].dtype == "float64"
    tc = nra.tool_calls(df)
    assert tc["arguments_json"].dtype.name == "json"
    low = ("kind", "endpoint", "model")
    assert {c: str(df[c].dtype) for c in low} == dict.fromkeys(low, "category")
    assert str(df["recorded_at"].dtype) == "datetime64[ns, UTC]" and df["recorded_at"].notna().all()
    assert list(df.columns[-2:]) == ["key", "path"]  # the 64-hex columns come last
    assert str(tc["source"].dtype) == "category" and tc.columns[-1] == "path"
    assert str(nra.messages(df)["role"].dtype) == "category"
    ts = nra.token_stream(df)
    assert str(ts["offset"].dtype) == "timedelta64[ns]" and str(ts["role"].dtype) == "category"


@pytest.mark.parametrize(
    ("path", "kind", "text", "finish_reason", "n_chunks"),
    [
        (HELLO_STREAM, "inference", "Hello! It's nice to meet you. Is there something I", "stop", 25),
        (HELLO_NOT_STREAMED, "inference", "Hello! It's nice to meet you. Is there something I", "stop", 0),
        (OLLAMA_CHAT_STREAM, "inference", "The image features a close-up of a golden retrieve", "stop", 103),
        (OLLAMA_CHAT, "inference", "The image is of a golden retriever puppy. The pupp", "stop", 0),
        (OLLAMA_GENERATE, "inference", "safe", "stop", 0),
        (COMPLETION_STREAM, "inference", "Blue.\n\nMy answer is", "length", 51),
        (GEMINI, "inference", "Okay, here's the CONTEXT CHECKPOINT COMPACTION", "STOP", 0),
        (ANTHROPIC_SSE, "http", "1, 2, 3, 4, 5", "end_turn", 61),
        (INTERACTIONS_SSE, "http", "Hi there! How can I help you today?", "completed", 11),
        (KNOWLEDGE_SEARCH_ANSWER, "inference", "The Llama 4 Maverick model has 128 experts", "stop", 5),
    ],
)
def test_text_is_the_assembled_answer(path: Path, kind: str, text: str, finish_reason: str, n_chunks: int) -> None:
    r = nra.load_recordings(path).iloc[0]
    assert r["kind"] == kind
    assert r["text"].startswith(text)
    assert r["finish_reason"] == finish_reason
    assert r["n_chunks"] == n_chunks
    assert r["is_streaming"] == (n_chunks > 0)


def test_kinds_tokens_and_extras() -> None:
    df = nra.load_recordings(
        [EXCEPTION, TAVILY_INVOCATION, HTTP_ERROR, MODEL_LIST, EMBEDDINGS, WEB_SEARCH_TURN, OLLAMA_GENERATE]
    )
    exc = row(df, EXCEPTION)
    assert (exc["kind"], exc["exception_type"], exc["status_code"]) == ("exception", "BadRequestError", 400)
    assert "Invalid service_tier argument" in exc["exception_message"]
    assert pd.isna(exc["text"])
    tool = row(df, TAVILY_INVOCATION)
    assert (tool["kind"], tool["tool_name"], tool["provider"]) == ("tool", "web_search", "tavily")
    assert json.loads(tool["text"])["query"] == "latest Python version 2023"
    http = row(df, HTTP_ERROR)
    assert (http["kind"], http["endpoint"], http["status_code"]) == ("http", "/v1/messages", 400)
    assert http["exception_type"] == "invalid_request_error"
    assert row(df, MODEL_LIST)["kind"] == "model_list"
    emb = row(df, EMBEDDINGS)
    assert (emb["kind"], emb["endpoint"], emb["prompt_tokens"]) == ("embedding", "/api/embeddings", 6)
    web = row(df, WEB_SEARCH_TURN)
    assert (web["prompt_tokens"], web["completion_tokens"], web["total_tokens"]) == (115, 17, 132)
    assert (web["model"], web["response_model"]) == ("gpt-4o", "gpt-4o-2024-08-06")
    gen = row(df, OLLAMA_GENERATE)
    assert (gen["prompt_tokens"], gen["completion_tokens"], gen["sdk"]) == (212, 2, "ollama") or pd.isna(gen["sdk"])


def test_tool_calls_are_assembled_from_streamed_deltas() -> None:
    tc = nra.tool_calls(KNOWLEDGE_SEARCH_CALL)
    assert len(tc) == 1
    call = tc.iloc[0]
    assert (call["source"], call["name"], call["call_id"]) == (
        "response",
        "knowledge_search",
        "call_FzhOmTdZThRndI5rSASPdAqr",
    )
    assert call["arguments"] == '{"query":"Llama 4 Maverick model number of experts"}'
    assert call["arguments_json"] == {"query": "Llama 4 Maverick model number of experts"}
    df = nra.load_recordings(KNOWLEDGE_SEARCH_CALL)
    assert (df["n_tool_calls"].iloc[0], df["finish_reason"].iloc[0], df["text"].iloc[0]) == (1, "tool_calls", "")
    ts = nra.token_stream(KNOWLEDGE_SEARCH_CALL)
    assert ts["tool_call_delta"].sum() == 15  # every argument fragment is a tool-call chunk
    assert (ts["delta"] == "").all()


def test_web_search_turn_request_and_response_calls() -> None:
    tc = nra.tool_calls(WEB_SEARCH_TURN).set_index("source")
    req, resp = tc.loc["request"], tc.loc["response"]
    assert (req["name"], req["message_index"], req["call_id"]) == ("web_search", 1, "call_Bh9SBhduG20Qd1ALpZpqqiy6")
    assert "tavily_search_api_key" in req["output"]  # the tool message answering it, by tool_call_id
    assert (resp["name"], resp["arguments_json"]) == ("web_search", {"query": "latest version of Python"})


def test_messages_match_tool_outputs_by_tool_call_id() -> None:
    m = nra.messages(KNOWLEDGE_SEARCH_ANSWER)
    assert list(m["role"]) == ["user", "assistant", "tool"]
    assert list(m["index"]) == [0, 1, 2]
    assert list(m["n_tool_calls"]) == [0, 1, 0]
    tool_msg = m.iloc[2]
    assert tool_msg["tool_call_id"] == "call_qzY7B7EArJwpMqLVer8kcAey"
    assert tool_msg["content"].startswith("knowledge_search tool found 1 chunks:\nBEGIN of knowledge_search")
    assert "[1] document_id" in tool_msg["content"]  # the text parts are joined
    tc = nra.tool_calls(KNOWLEDGE_SEARCH_ANSWER)
    assert len(tc) == 1
    assert (tc["source"].iloc[0], tc["call_id"].iloc[0]) == ("request", "call_qzY7B7EArJwpMqLVer8kcAey")
    assert tc["output"].iloc[0] == tool_msg["content"]


def test_response_calls_get_the_output_a_later_request_carried() -> None:
    """The model asked for web_search in one recording; the next turn carried the result."""
    df = nra.load_recordings(FIXTURES)
    tc = nra.tool_calls(df)
    asked = tc[(tc["source"] == "response") & tc["output"].notna()]
    assert len(asked) > 0
    carried = tc[tc["source"] == "request"].set_index("call_id")["output"]
    for _, r in asked.iterrows():
        assert r["output"] in set(carried.loc[[r["call_id"]]])


def test_gemini_and_invocation_tool_calls() -> None:
    tc = nra.tool_calls([GEMINI_STREAM_TOOL, TAVILY_INVOCATION])
    gem = tc[tc["path"] == str(GEMINI_STREAM_TOOL)].iloc[0]
    assert (gem["source"], gem["name"], gem["arguments_json"]) == (
        "response",
        "get_weather",
        {"location": "Paris, France"},
    )
    inv = tc[tc["path"] == str(TAVILY_INVOCATION)].iloc[0]
    assert (inv["source"], inv["name"], inv["arguments_json"]) == (
        "invocation",
        "web_search",
        {"query": "latest Python version 2023"},
    )
    assert inv["output"].startswith('{"query": "latest Python version 2023"')


def test_token_stream_rows() -> None:
    ts = nra.token_stream(HELLO_STREAM)
    df = nra.load_recordings(HELLO_STREAM)
    assert list(ts.columns) == [
        "chunk_index",
        "delta",
        "role",
        "finish_reason",
        "tool_call_delta",
        "offset",
        "offset_ms",
        "cum_chars",
        "path",
    ]
    assert list(ts["chunk_index"]) == list(range(25))
    assert "".join(ts["delta"]) == df["text"].iloc[0]
    assert ts["cum_chars"].iloc[-1] == len(df["text"].iloc[0])
    assert (ts["cum_chars"].diff().fillna(ts["cum_chars"].iloc[0]) == ts["delta"].str.len()).all()
    assert ts["offset_ms"].isna().all()
    assert ts["finish_reason"].iloc[-1] == "stop"
    assert not ts["tool_call_delta"].any()
    assert nra.token_stream(HELLO_NOT_STREAMED).empty


def test_token_stream_of_non_ascii_text(tmp_path: Path) -> None:
    """The delta column is cut out of the joined text by byte offsets: check multi-byte text."""
    data = json.loads(HELLO_STREAM.read_text())
    pieces = ["Grüß ", "dich", " 👋🏽", "", " — ça va?", None]
    for chunk, piece in zip(data["response"]["body"], pieces, strict=False):
        chunk["__data__"]["choices"][0]["delta"]["content"] = piece
    data["response"]["body"] = data["response"]["body"][: len(pieces)]
    write(tmp_path / "unicode.json", data)
    shutil.copy(HELLO_STREAM, tmp_path / "ascii.json")
    ts = nra.token_stream(tmp_path)
    uni = ts[ts["path"] == str(tmp_path / "unicode.json")]
    assert list(uni["delta"]) == ["Grüß ", "dich", " 👋🏽", "", " — ça va?", ""]
    assert list(uni["cum_chars"]) == [5, 9, 12, 12, 21, 21]
    assert nra.load_recordings(tmp_path / "unicode.json")["text"].iloc[0] == "Grüß dich 👋🏽 — ça va?"
    asc = ts[ts["path"] == str(tmp_path / "ascii.json")]
    assert "".join(asc["delta"]).startswith("Hello! It's nice")
    assert [r["delta"] for r in nra.Recording.load(tmp_path / "unicode.json").chunks][:3] == ["Grüß ", "dich", " 👋🏽"]


def test_raw_dict_chunks_content_parts_usage_chunk_and_several_choices(tmp_path: Path) -> None:
    def chunk(content: Any, finish: Any = None, index: int = 0, usage: Any = None) -> dict[str, Any]:
        choices = [] if content is ... else [{"index": index, "delta": {"content": content}, "finish_reason": finish}]
        return {"id": "x", "object": "chat.completion.chunk", "model": "m-1", "choices": choices, "usage": usage}

    request = {
        "method": "POST",
        "url": "http://h/v1/chat/completions",
        "headers": {},
        "endpoint": "/v1/chat/completions",
        "model": "m",
        "body": {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True},
    }

    def recording(req: dict[str, Any], body: list[Any]) -> dict[str, Any]:
        return {"test_id": None, "request": req, "response": {"body": body, "is_streaming": True}}

    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    body = [chunk("Hel"), chunk([{"type": "text", "text": "lo"}]), chunk(None, "stop"), chunk(..., usage=usage)]
    write(tmp_path / "parts.json", recording(request, body))
    several = json.loads(json.dumps(request))
    several["body"]["n"] = 2
    body2 = [chunk("A"), chunk("B", index=1), chunk("a", "stop"), chunk("b", "stop", index=1)]
    write(tmp_path / "n2.json", recording(several, body2))

    df = nra.load_recordings(tmp_path).set_index("key")
    assert (df.loc["parts", "text"], df.loc["parts", "finish_reason"]) == ("Hello", "stop")
    assert (df.loc["parts", "prompt_tokens"], df.loc["parts", "total_tokens"]) == (3, 5)
    assert df.loc["parts", "response_model"] == "m-1"
    assert df.loc["n2", "text"] == "Aa"  # the first choice only
    ts = nra.token_stream(tmp_path / "parts.json")
    assert list(ts["delta"]) == ["Hel", "lo", "", ""]


# --- our own files -------------------------------------------------------------------------------


def test_responses_api_stream_with_timing(own_dir: Path) -> None:
    path = own_dir / "stream.json"
    r = nra.load_recordings(path).iloc[0]
    assert (r["kind"], r["endpoint"], r["model"], r["response_model"]) == (
        "inference",
        "/v1/responses",
        "gpt-4o-mini",
        "gpt-4o-mini-2024-07-18",
    )
    assert r["text"] == "Pandas 3 <is> out."
    assert (r["finish_reason"], r["n_chunks"], r["n_tool_calls"]) == ("completed", 6, 1)
    assert (r["prompt_tokens"], r["completion_tokens"], r["total_tokens"]) == (12, 5, 17)
    assert (r["duration_ms"], r["sdk"], r["sdk_version"]) == (321.0, "openai", "3.57.0")
    assert r["response_type"] == "ResponseOutputItemAddedEvent"

    ts = nra.token_stream(path)
    assert list(ts["offset_ms"]) == [120.5, 130.0, 141.25, 300.0, 310.5, 320.0]
    assert list(ts["delta"]) == ["", "", "", "Pandas 3 ", "<is> out.", ""]
    assert list(ts["cum_chars"]) == [0, 0, 0, 9, 18, 18]
    assert list(ts["tool_call_delta"]) == [True, True, True, False, False, False]
    assert ts["finish_reason"].iloc[-1] == "completed"

    tc = nra.tool_calls(path)
    resp = tc[tc["source"] == "response"].iloc[0]
    assert (resp["call_id"], resp["name"], resp["arguments"]) == ("call_abc", "web_search", '{"query":"pandas 3"}')
    assert resp["arguments_json"] == {"query": "pandas 3"}
    req = tc[tc["source"] == "request"].iloc[0]
    assert (req["call_id"], req["arguments"], req["output"]) == ("call_old", '{"query":', "no results")
    assert req["arguments_json"] is None  # not valid JSON

    m = nra.messages(path)
    assert list(m["role"]) == ["system", "user", "assistant", "tool"]
    assert list(m["item_type"]) == ["instructions", "message", "function_call", "function_call_output"]
    assert list(m["content"].fillna("<NA>")) == ["Be brief.", "Is pandas 3 out?", "<NA>", "no results"]
    assert m["tool_call_id"].iloc[3] == "call_old"


def test_responses_api_not_streamed(own_dir: Path) -> None:
    path = own_dir / "plain.json"
    r = nra.load_recordings(path).iloc[0]
    assert (r["text"], r["finish_reason"], r["n_tool_calls"], r["total_tokens"]) == (
        "Pandas 3 <is> out.",
        "completed",
        1,
        17,
    )
    assert r["duration_ms"] == 850.0
    m = nra.messages(path)
    assert (list(m["role"]), list(m["content"])) == (["user"], ["Is pandas 3 out?"])
    assert nra.tool_calls(path)["arguments_json"].iloc[0] == {"query": "pandas 3"}


def test_tool_recordings_of_our_own(own_dir: Path) -> None:
    df = nra.load_recordings(own_dir).set_index("key")
    assert df.loc["tool_ok", "kind"] == "tool"
    assert json.loads(df.loc["tool_ok", "text"]) == {"hits": [1, 2]}
    assert (df.loc["tool_raised", "kind"], df.loc["tool_raised", "tool_name"]) == ("exception", "lookup")
    assert (df.loc["tool_raised", "exception_type"], df.loc["tool_raised", "exception_message"]) == (
        "ValueError",
        "boom",
    )
    assert (df.loc["tool_generator", "is_streaming"], df.loc["tool_generator", "n_chunks"]) == (True, 3)
    assert df.loc["tool_generator", "text"] == 'abc{"d":1}'

    tc = nra.tool_calls(own_dir)
    inv = tc[tc["source"] == "invocation"].set_index(
        tc[tc["source"] == "invocation"]["path"].map(lambda p: Path(p).stem)
    )
    assert inv.loc["tool_ok", "arguments_json"] == {"q": "x"}
    assert inv.loc["tool_raised", "error"] == "ValueError: boom"
    assert pd.isna(inv.loc["tool_raised", "output"])

    ts = nra.token_stream(own_dir / "tool_generator.json")
    assert list(ts["delta"]) == ["a", "bc", '{"d":1}']
    assert list(ts["offset_ms"]) == [1.0, 2.0, 3.0]


# --- anthropic -----------------------------------------------------------------------------------
# tests/fixtures/anthropic: what the anthropic hook writes (make_fixtures.py builds them with the SDK)

ANTHROPIC = Path(__file__).parent.parent / "fixtures" / "anthropic"
ANTHROPIC_TOOL_USE = next(ANTHROPIC.glob("tool_use-*.json"))
ANTHROPIC_TOOL_RESULTS = next(ANTHROPIC.glob("tool_result_stream-*.json"))
ANTHROPIC_THINKING = next(ANTHROPIC.glob("thinking_stream-*.json"))
ANTHROPIC_COUNT = next(ANTHROPIC.glob("count_tokens-*.json"))
ANTHROPIC_HTTP_JSON = HEAD / "messages/recordings/2a5f7014ddf9a3d359fbf59a195e4762d47ef1768f98b2f1c7af55788e7fe6d8.json"


def test_anthropic_fixtures_are_what_the_sdk_encodes() -> None:
    """The fixture files are the installed SDK's objects, encoded as the recorder encodes them."""
    pytest.importorskip("anthropic")
    sys.path.insert(0, str(ANTHROPIC))
    try:
        import make_fixtures  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(ANTHROPIC))
    made = make_fixtures.records()
    assert sorted(made) == sorted(p.name for p in ANTHROPIC.glob("*.json"))
    for name, record in made.items():
        on_disk = json.loads((ANTHROPIC / name).read_text())
        assert on_disk["request"] == record["request"], name
        assert on_disk["response"] == record["response"], name
    types = {c["__type__"] for c in json.loads(ANTHROPIC_TOOL_RESULTS.read_text())["response"]["body"]}
    assert types == {
        f"anthropic.types.{m}.{c}"
        for m, c in [
            ("raw_message_start_event", "RawMessageStartEvent"),
            ("raw_content_block_start_event", "RawContentBlockStartEvent"),
            ("raw_content_block_delta_event", "RawContentBlockDeltaEvent"),
            ("raw_content_block_stop_event", "RawContentBlockStopEvent"),
            ("raw_message_delta_event", "RawMessageDeltaEvent"),
            ("raw_message_stop_event", "RawMessageStopEvent"),
        ]
    }


def test_anthropic_calls_have_the_openai_call_columns() -> None:
    df = nra.load_recordings([ANTHROPIC, HELLO_STREAM, HELLO_NOT_STREAMED]).set_index("path")
    tool_use = df.loc[str(ANTHROPIC_TOOL_USE)]
    assert (tool_use["kind"], tool_use["endpoint"], tool_use["model"]) == (
        "inference",
        "/v1/messages",
        "claude-sonnet-4-5",
    )
    assert (tool_use["text"], tool_use["finish_reason"], tool_use["n_tool_calls"]) == (
        "I'll check both cities.",
        "tool_use",
        2,
    )
    assert (tool_use["response_model"], tool_use["response_type"]) == ("claude-sonnet-4-5-20250929", "Message")
    # prompt_tokens counts cached input too, as OpenAI's does: 412 + 1024 read from the cache
    assert (tool_use["prompt_tokens"], tool_use["completion_tokens"], tool_use["total_tokens"]) == (1436, 96, 1532)
    assert (tool_use["sdk"], tool_use["sdk_version"], tool_use["n_messages"]) == ("anthropic", "2.15.0", 2)

    streamed = df.loc[str(ANTHROPIC_TOOL_RESULTS)]
    assert streamed["is_streaming"] and streamed["n_chunks"] == 15
    assert streamed["text"] == "Paris is 18°C and sunny. Rome's station is offline; let me find another."
    assert (streamed["finish_reason"], streamed["n_tool_calls"]) == ("tool_use", 2)
    assert (streamed["prompt_tokens"], streamed["completion_tokens"], streamed["total_tokens"]) == (
        530 + 1024 + 64,
        71,
        1689,
    )
    assert streamed["response_model"] == "claude-sonnet-4-5-20250929"

    thinking = df.loc[str(ANTHROPIC_THINKING)]
    assert (thinking["text"], thinking["finish_reason"]) == ("Hello!", "end_turn")  # the thinking is not text
    assert (thinking["prompt_tokens"], thinking["completion_tokens"]) == (12, 25)

    count = df.loc[str(ANTHROPIC_COUNT)]
    assert (count["endpoint"], count["kind"], count["prompt_tokens"]) == (
        "/v1/messages/count_tokens",
        "token_count",
        431,
    )
    assert count["response_type"] == "MessageTokensCount"

    # the same columns are filled for openai and anthropic answers
    filled = ["text", "finish_reason", "prompt_tokens", "completion_tokens", "total_tokens", "response_model"]
    assert (
        df.loc[[str(HELLO_NOT_STREAMED), str(ANTHROPIC_TOOL_USE), str(ANTHROPIC_TOOL_RESULTS)], filled]
        .notna()
        .all()
        .all()
    )
    assert df.loc[[str(HELLO_STREAM), str(ANTHROPIC_TOOL_RESULTS)], filled[:2]].notna().all().all()


def test_anthropic_messages_have_system_tool_use_and_tool_results() -> None:
    m = nra.messages(ANTHROPIC_TOOL_RESULTS)
    assert m["index"].tolist() == [0, 1, 2, 3]
    assert m["role"].tolist() == ["system", "user", "assistant", "user"]
    assert m["item_type"].tolist() == ["system", "message", "message", "tool_result"]
    assert m["content"].tolist() == [
        "You are a weather assistant.",
        "What is the weather in Paris and in Rome?",
        "I'll check both cities.",
        "18°C, sunny\nstation offline",
    ]
    assert m["n_tool_calls"].tolist() == [0, 0, 2, 0]
    assert m["tool_call_id"].iloc[3] == "toolu_01Paris"
    assert m["tool_call_id"].iloc[:3].isna().all()
    thinking = nra.messages(ANTHROPIC_THINKING)  # content given as text blocks, no system
    assert (thinking["role"].tolist(), thinking["content"].tolist()) == (["user"], ["Say hello."])


def test_anthropic_tool_calls_are_assembled() -> None:
    tc = (
        nra.tool_calls([ANTHROPIC_TOOL_USE, ANTHROPIC_TOOL_RESULTS]).set_index(["path", "source", "index"]).sort_index()
    )
    asked = tc.loc[str(ANTHROPIC_TOOL_USE), "response"]  # from a Message's tool_use blocks
    assert asked["name"].tolist() == ["get_weather", "get_weather"]
    assert asked["call_id"].tolist() == ["toolu_01Paris", "toolu_02Rome"]
    assert asked["arguments_json"].tolist() == [{"city": "Paris"}, {"city": "Rome"}]
    assert set(asked["call_type"]) == {"tool_use"}
    # ... answered in the next request of the same run (no test_id), error included
    assert asked["output"].tolist() == ["18°C, sunny", "station offline"]

    history = tc.loc[str(ANTHROPIC_TOOL_RESULTS), "request"]  # tool_use blocks sent back
    assert history["call_id"].tolist() == ["toolu_01Paris", "toolu_02Rome"]
    assert history["message_index"].tolist() == [2, 2]
    assert history["output"].tolist() == ["18°C, sunny", "station offline"]
    assert history["error"].isna().tolist() == [True, False]
    assert history["error"].iloc[1] == "station offline"  # is_error: true

    streamed = tc.loc[str(ANTHROPIC_TOOL_RESULTS), "response"]  # input_json_delta events joined
    assert streamed["name"].tolist() == ["list_stations", "get_weather"]
    assert streamed["call_id"].tolist() == ["toolu_03Stations", "toolu_04Rome"]
    assert streamed["arguments"].tolist() == ["{}", '{"city": "Rome Ciampino"}']
    assert streamed["arguments_json"].tolist() == [{}, {"city": "Rome Ciampino"}]


def test_anthropic_token_stream() -> None:
    ts = nra.token_stream(ANTHROPIC_TOOL_RESULTS)
    assert len(ts) == 15  # one row per raw event
    assert "".join(ts["delta"]) == nra.load_recordings(ANTHROPIC_TOOL_RESULTS)["text"].iloc[0]
    assert ts["delta"].iloc[2:5].tolist() == [
        "Paris is 18°C and sunny.",
        " Rome's station is offline;",
        " let me find another.",
    ]
    assert ts["role"].iloc[0] == "assistant" and ts["role"].iloc[1:].isna().all()
    # the tool_use block starts and their input_json_delta events carry the tool calls
    assert ts.index[ts["tool_call_delta"]].tolist() == [6, 8, 9, 10, 11]
    assert ts["finish_reason"].dropna().tolist() == ["tool_use"]  # on the message_delta event
    assert ts["finish_reason"].iloc[13] == "tool_use"
    assert ts["offset_ms"].iloc[0] == 180.0 and ts["offset"].is_monotonic_increasing
    thinking = nra.token_stream(ANTHROPIC_THINKING)
    assert "".join(thinking["delta"]) == "Hello!"  # thinking_delta and signature_delta add no text
    assert thinking["cum_chars"].iloc[-1] == 6


def test_a_stream_that_ends_in_an_error_event_says_so(tmp_path: Path) -> None:
    recorded = json.loads(ANTHROPIC_THINKING.read_text())
    events = recorded["response"]["body"][:7]  # up to the first text delta
    events.append({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    recorded["response"]["body"] = events
    r = nra.load_recordings(write(tmp_path / "cut.json", recorded)).iloc[0]
    assert (r["text"], r["n_chunks"]) == ("Hello", 8)
    assert (r["exception_type"], r["exception_message"]) == ("overloaded_error", "Overloaded")
    assert pd.isna(r["finish_reason"])


def test_llama_stack_anthropic_http_recordings() -> None:
    df = nra.load_recordings([ANTHROPIC_SSE, ANTHROPIC_HTTP_JSON]).set_index("path")
    sse = df.loc[str(ANTHROPIC_SSE)]
    assert (sse["kind"], sse["endpoint"], sse["text"], sse["finish_reason"]) == (
        "http",
        "/v1/messages",
        "1, 2, 3, 4, 5",
        "end_turn",
    )
    # message_delta's usage is cumulative: its input_tokens (79) is the final count, not message_start's (10)
    assert (sse["prompt_tokens"], sse["completion_tokens"], sse["total_tokens"]) == (79, 64, 143)
    whole = df.loc[str(ANTHROPIC_HTTP_JSON)]
    assert (whole["text"], whole["finish_reason"], whole["prompt_tokens"], whole["completion_tokens"]) == (
        "",
        "max_tokens",
        68,
        16,
    )
    assert nra.messages(ANTHROPIC_HTTP_JSON)[["role", "content"]].values.tolist() == [["user", "Hi"]]


def test_anthropic_recordings_render() -> None:
    rec = nra.Recording.load(ANTHROPIC_TOOL_RESULTS)
    text = rec.to_text()
    assert "list_stations" in text and "Rome Ciampino" in text and "station offline" in text
    assert rec._repr_html_().startswith("<div")


# --- sources -------------------------------------------------------------------------------------


def test_sources_path_list_frame_and_recursion(tmp_path: Path) -> None:
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    shutil.copy(HELLO_STREAM, nested / HELLO_STREAM.name)
    shutil.copy(OLLAMA_CHAT, tmp_path / OLLAMA_CHAT.name)
    (tmp_path / "notes.txt").write_text("not a recording")
    (tmp_path / ".hidden").mkdir()
    shutil.copy(OLLAMA_GENERATE, tmp_path / ".hidden" / OLLAMA_GENERATE.name)  # skipped
    (tmp_path / ".partial.json").write_text("{")  # an atomic write in progress: skipped

    by_dir = nra.load_recordings(tmp_path)
    assert sorted(Path(p).name for p in by_dir["path"]) == sorted([HELLO_STREAM.name, OLLAMA_CHAT.name])
    by_list = nra.load_recordings([nested / HELLO_STREAM.name, str(tmp_path / OLLAMA_CHAT.name)])
    assert len(by_list) == 2
    by_frame = nra.messages(by_dir)
    assert set(by_frame["path"]) == set(by_dir["path"])
    assert len(nra.load_recordings(by_dir[by_dir["kind"] == "inference"].head(1))) == 1
    with pytest.raises(FileNotFoundError):
        nra.load_recordings(tmp_path / "missing")
    with pytest.raises(ValueError, match="path"):
        nra.messages(pd.DataFrame({"x": [1]}))


def test_an_unreadable_subdirectory_does_not_stop_a_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(HELLO_STREAM, tmp_path / "a.json")
    (tmp_path / "locked").mkdir()
    shutil.copy(OLLAMA_CHAT, tmp_path / "locked" / "b.json")
    scandir = os.scandir

    def refusing(path: Any) -> Any:
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    frame = nra.load_recordings(tmp_path).set_index("key")
    assert list(frame.index) == ["a", "locked"]  # the directory is reported, not silently skipped
    assert pd.isna(frame.loc["a", "error"])
    assert frame.loc["locked", "error"] == "cannot list this directory: permission denied; skipped"


def test_load_frames_gives_all_four_from_one_snapshot(own_dir: Path) -> None:
    frames = nra.load_frames(own_dir)
    assert isinstance(frames, nra.Frames)
    pd.testing.assert_frame_equal(frames.recordings, nra.load_recordings(own_dir))
    pd.testing.assert_frame_equal(frames.messages, nra.messages(own_dir))
    pd.testing.assert_frame_equal(frames.tool_calls, nra.tool_calls(own_dir))
    pd.testing.assert_frame_equal(frames.token_stream, nra.token_stream(own_dir))


# --- errors --------------------------------------------------------------------------------------


def test_bad_files_become_error_rows(tmp_path: Path) -> None:
    shutil.copy(HELLO_STREAM, tmp_path / "good.json")
    good = (tmp_path / "good.json").read_text()
    (tmp_path / "truncated.json").write_text(good[: len(good) // 2])
    (tmp_path / "garbage.json").write_bytes(b"\x00\xffnot json")
    (tmp_path / "empty.json").write_text("")
    write(tmp_path / "not_a_recording.json", {"hello": "world"})
    write(tmp_path / "a_list.json", [1, 2])

    df = nra.load_recordings(tmp_path).set_index("key")
    assert pd.isna(df.loc["good", "error"])
    assert df.loc["good", "text"].startswith("Hello!")
    for key in ("truncated", "garbage", "empty"):
        assert df.loc[key, "error"].startswith("invalid JSON"), df.loc[key, "error"]
    assert "no 'request' object" in df.loc["not_a_recording", "error"]
    assert "top level is list" in df.loc["a_list", "error"]
    assert df.loc["truncated", "size_bytes"] == len(good[: len(good) // 2])

    with pytest.warns(nra.RecordingLoadWarning, match="5 of 6"):
        ts = nra.token_stream(tmp_path)
    assert set(ts["path"]) == {str(tmp_path / "good.json")}


def test_strict_raises_naming_the_file(tmp_path: Path) -> None:
    shutil.copy(HELLO_STREAM, tmp_path / "good.json")
    (tmp_path / "bad.json").write_text('{"request": ')
    with pytest.raises(nr.RecordingFormatError, match=r"bad\.json: invalid JSON") as info:
        nra.load_recordings(tmp_path, strict=True)
    assert info.value.path == str(tmp_path / "bad.json")
    with pytest.raises(nr.RecordingFormatError, match=r"bad\.json"):
        nra.messages(tmp_path, strict=True)
    with pytest.raises(nr.RecordingFormatError, match=r"bad\.json"):
        nra.Recording.load(tmp_path / "bad.json")


def test_a_file_that_is_no_recording_is_a_format_error_naming_it(tmp_path: Path) -> None:
    write(tmp_path / "odd.json", {"request": {"body": {}}, "answer": 42})
    with pytest.raises(nr.RecordingFormatError, match=r"odd\.json: not a recording: no 'response' object") as info:
        nra.Recording.load(tmp_path / "odd.json")
    assert info.value.path == str(tmp_path / "odd.json")
    with pytest.raises(nr.RecordingFormatError, match=r"odd\.json"):
        nra.tool_calls(tmp_path, strict=True)


def test_recording_load_error_is_a_deprecated_alias_of_the_format_error(tmp_path: Path) -> None:
    """One error type for a bad file: code written against 0.1's RecordingLoadError still catches it."""
    assert nr.RecordingLoadError is nr.RecordingFormatError is nra.RecordingLoadError
    (tmp_path / "bad.json").write_text("[]")
    with pytest.raises(nr.RecordingLoadError, match=r"bad\.json: not a recording: the top level is list"):
        nra.load_recordings(tmp_path, strict=True)


def test_a_file_deleted_after_loading_is_an_error_row(tmp_path: Path) -> None:
    shutil.copy(HELLO_STREAM, tmp_path / "a.json")
    shutil.copy(OLLAMA_CHAT, tmp_path / "b.json")
    df = nra.load_recordings(tmp_path)
    (tmp_path / "b.json").unlink()
    again = nra.load_recordings(df).set_index("key")
    assert "no such file" in again.loc["b", "error"]
    assert pd.isna(again.loc["b", "size_bytes"])


# --- columns -------------------------------------------------------------------------------------


def test_custom_columns_from_the_raw_json() -> None:
    temperature = nra.Column("stream_flag", "boolean", lambda rec: rec["request"].get("body", {}).get("stream"))
    broken = nra.Column("broken", "str", lambda rec: rec["nope"])
    cols = [c for c in nra.RECORDING_COLUMNS if c.name in ("path", "kind", "error")]
    df = nra.load_recordings([HELLO_STREAM, OLLAMA_GENERATE], columns=[*cols, temperature, broken])
    assert list(df.columns) == ["kind", "error", "path", "stream_flag", "broken"]
    assert str(df["stream_flag"].dtype) == "boolean"
    assert df["stream_flag"].iloc[0]
    assert df["error"].str.contains("column 'broken': KeyError").all()
    with pytest.raises(nr.RecordingFormatError, match=r"column function <lambda>: KeyError"):
        nra.load_recordings(HELLO_STREAM, columns=[*cols, broken], strict=True)


def test_column_specs_document_every_column() -> None:
    for spec in (nra.RECORDING_COLUMNS, nra.MESSAGE_COLUMNS, nra.TOOL_CALL_COLUMNS, nra.TOKEN_COLUMNS):
        assert all(c.doc for c in spec)
        assert len({c.name for c in spec}) == len(spec)
    assert list(nra.load_recordings(HELLO_STREAM).columns) == [c.name for c in nra.RECORDING_COLUMNS]
    assert list(nra.messages(HELLO_STREAM).columns) == [c.name for c in nra.MESSAGE_COLUMNS]
    assert list(nra.tool_calls(HELLO_STREAM).columns) == [c.name for c in nra.TOOL_CALL_COLUMNS]
    assert list(nra.token_stream(HELLO_STREAM).columns) == [c.name for c in nra.TOKEN_COLUMNS]


# --- cache ---------------------------------------------------------------------------------------


def test_reload_uses_the_cache_and_sees_every_change(tmp_path: Path) -> None:
    for p in (HELLO_STREAM, OLLAMA_CHAT, OLLAMA_GENERATE):
        shutil.copy(p, tmp_path / p.name)
    age(*tmp_path.iterdir())
    first = nra.load_recordings(tmp_path)
    reads = _count_reads()
    again = nra.load_recordings(tmp_path)
    assert reads() == 0
    pd.testing.assert_frame_equal(first, again)
    again.loc[0, "text"] = "mutated"  # a returned frame is the caller's own copy
    assert nra.load_recordings(tmp_path)["text"].iloc[0] != "mutated"

    # change one file, keeping its size and its mtime: the inode / ctime still tell
    target = tmp_path / OLLAMA_GENERATE.name
    st = target.stat()
    data = target.read_text().replace('"response": "safe"', '"response": "SAFE"')
    assert len(data) == st.st_size
    target.write_text(data)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    changed = nra.load_recordings(tmp_path).set_index("key")
    assert reads() == 1
    assert changed.loc[OLLAMA_GENERATE.stem, "text"] == "SAFE"

    # new and removed files
    (tmp_path / OLLAMA_CHAT.name).unlink()
    shutil.copy(HELLO_NOT_STREAMED, tmp_path / HELLO_NOT_STREAMED.name)
    keys = set(nra.load_recordings(tmp_path)["key"])
    assert keys == {HELLO_STREAM.stem, OLLAMA_GENERATE.stem, HELLO_NOT_STREAMED.stem}


def test_files_written_just_now_are_read_again(tmp_path: Path) -> None:
    """A second write in the same timestamp tick would not change the stat: do not trust it."""
    shutil.copy(HELLO_STREAM, tmp_path / "a.json")
    nra.load_recordings(tmp_path)
    reads = _count_reads()
    nra.load_recordings(tmp_path)
    assert reads() == 1
    age(tmp_path / "a.json")
    nra.load_recordings(tmp_path)
    nra.load_recordings(tmp_path)
    assert reads() == 2


def test_directory_listings_are_cached_and_see_new_removed_and_renamed_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    for p in (HELLO_STREAM, OLLAMA_CHAT):
        shutil.copy(p, sub / p.name)
    shutil.copy(OLLAMA_GENERATE, tmp_path / OLLAMA_GENERATE.name)
    age(*sub.iterdir(), sub, *tmp_path.iterdir(), tmp_path)
    first = nra.load_recordings(tmp_path)
    listed: list[str] = []
    scandir = os.scandir

    def counting(path: Any) -> Any:
        listed.append(os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", counting)
    pd.testing.assert_frame_equal(nra.load_recordings(tmp_path), first)
    assert listed == []  # nothing changed: no directory is listed again

    shutil.copy(EMBEDDINGS, sub / EMBEDDINGS.name)  # a new file changes its directory's stat
    assert set(nra.load_recordings(tmp_path)["key"]) == {
        HELLO_STREAM.stem,
        OLLAMA_CHAT.stem,
        OLLAMA_GENERATE.stem,
        EMBEDDINGS.stem,
    }
    assert listed == [str(sub)]
    (sub / HELLO_STREAM.name).rename(sub / "renamed.json")
    (tmp_path / OLLAMA_GENERATE.name).unlink()
    assert set(nra.load_recordings(tmp_path)["key"]) == {"renamed", OLLAMA_CHAT.stem, EMBEDDINGS.stem}


def _many_files(root: Path, n: int) -> None:
    sources = sorted(FIXTURES.rglob("*.json"))
    for i in range(n):
        src = sources[i % len(sources)]
        target = root / f"d{i % 3}" / f"{i:03d}-{src.name}"
        target.parent.mkdir(exist_ok=True)
        shutil.copy(src, target)
    (root / "d1" / "broken.json").write_text("{not json")


def test_a_helper_process_reads_large_loads_with_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not _loader._Helper.possible():
        pytest.skip("no helper process on this machine (one CPU, or not POSIX)")
    _many_files(tmp_path, 60)
    monkeypatch.setattr(_loader, "PARALLEL_MIN_FILES", 10**9)
    alone = nra.load_frames(tmp_path)
    nra.clear_cache()

    monkeypatch.setattr(_loader, "PARALLEL_MIN_FILES", 1)
    here: list[str] = []
    read_one = _loader._read_one

    def slow(path: str, *args: Any) -> Any:  # this process only: the helper has its own
        here.append(path)
        time.sleep(0.05)  # so that the helper, however slow to start, gets to read some files
        return read_one(path, *args)

    monkeypatch.setattr(_loader, "_read_one", slow)
    helped = nra.load_frames(tmp_path)
    assert 0 < len(here) < 61  # both processes read files
    assert len(set(here)) == len(here)
    for a, b in zip(alone, helped, strict=True):
        pd.testing.assert_frame_equal(a, b)  # same rows, same order
    assert nra.load_recordings(tmp_path)["error"].notna().sum() == 1


def test_a_failing_helper_process_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _many_files(tmp_path, 12)
    alone = nra.load_frames(tmp_path)
    nra.clear_cache()
    monkeypatch.setattr(_loader, "PARALLEL_MIN_FILES", 1)
    monkeypatch.setattr(sys, "executable", shutil.which("false") or "/bin/false")  # exits at once
    for a, b in zip(alone, nra.load_frames(tmp_path), strict=True):
        pd.testing.assert_frame_equal(a, b)


def test_the_helper_process_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_loader.ENV_LOAD_HELPER, "0")
    assert not _loader._Helper.possible()


def _count_reads() -> Any:
    calls = []
    original = _loader.parse_file

    def counting(path: str) -> Any:
        calls.append(path)
        return original(path)

    _loader.parse_file = counting  # type: ignore[assignment]

    def count() -> int:
        return len(calls)

    _PATCHES.append(lambda: setattr(_loader, "parse_file", original))
    return count


_PATCHES: list[Any] = []


@pytest.fixture(autouse=True)
def _undo_patches() -> Any:
    yield
    while _PATCHES:
        _PATCHES.pop()()


# --- parquet -------------------------------------------------------------------------------------


def test_all_four_frames_survive_parquet(tmp_path: Path, own_dir: Path) -> None:
    pytest.importorskip("pyarrow")
    frames = nra.load_frames([FIXTURES, own_dir])
    for name, df in frames._asdict().items():
        target = tmp_path / f"{name}.parquet"
        df.to_parquet(target)
        back = pd.read_parquet(target)
        pd.testing.assert_frame_equal(df, back)
    tc = pd.read_parquet(tmp_path / "tool_calls.parquet")
    assert tc["arguments_json"].map(type).isin([dict, type(None)]).all()


def test_parquet_json_is_text_for_other_readers(tmp_path: Path) -> None:
    """JSON columns are JSON text in Parquet; a reader without notebook-recorder gets that text."""
    pq = pytest.importorskip("pyarrow.parquet")
    target = tmp_path / "tc.parquet"
    nra.tool_calls(KNOWLEDGE_SEARCH_CALL).to_parquet(target)
    field = pq.read_schema(target).field("arguments_json")
    assert str(field.type.storage_type) == "string"
    code = textwrap.dedent(
        """
        import sys, json
        import pandas as pd
        df = pd.read_parquet(sys.argv[1])
        assert "notebook_recorder" not in sys.modules
        print(json.dumps([str(df["arguments_json"].dtype), df["arguments_json"].iloc[0]]))
        """
    )
    out = subprocess.run([sys.executable, "-c", code, str(target)], check=True, capture_output=True, text=True)
    dtype, value = json.loads(out.stdout)
    assert dtype == "str"
    assert json.loads(value) == {"query": "Llama 4 Maverick model number of experts"}


# --- Recording -----------------------------------------------------------------------------------


def test_recording_text_and_html() -> None:
    rec = nra.Recording.load(KNOWLEDGE_SEARCH_ANSWER)
    text = rec.to_text()
    assert text == repr(rec) == str(rec)
    assert "Request (3 messages)" in text
    assert "→ knowledge_search" in text
    assert "The Llama 4 Maverick model has 128 experts" in text
    assert rec.kind == "inference"
    assert rec.text is not None and rec.text.startswith("The Llama 4")
    assert [m["role"] for m in rec.messages] == ["user", "assistant", "tool"]
    assert len(rec.chunks) == 5

    html = rec._repr_html_()
    assert "knowledge_search" in html
    assert "&lt;|file-1|&gt;" in html  # escaped
    assert "<|file-1|>" not in html


def test_recording_of_our_stream_shows_timing_and_escapes(own_dir: Path) -> None:
    rec = nra.Recording.load(own_dir / "stream.json")
    html = rec._repr_html_()
    assert "&lt;is&gt; out." in html and "<is>" not in html
    assert "web_search" in html and "pandas 3" in html
    assert "300 ms" in html  # chunk timing in the hover titles
    text = rec.to_text()
    assert "first text after 300 ms" in text
    assert "web_search" in text


@pytest.mark.parametrize("path", [TAVILY_INVOCATION, EXCEPTION, MODEL_LIST, ANTHROPIC_SSE, OLLAMA_GENERATE, EMBEDDINGS])
def test_recording_renders_every_kind(path: Path) -> None:
    rec = nra.Recording.load(path)
    assert rec.to_text().startswith(f"Recording {path.stem}")
    assert rec._repr_html_().startswith("<div")
    assert rec.to_text(max_chars=None).startswith(f"Recording {path.stem}")


def test_recording_truncates_long_content() -> None:
    rec = nra.Recording.load(TAVILY_INVOCATION)
    assert "more characters]" in rec.to_text(max_chars=50)
    assert "more characters]" not in rec.to_text(max_chars=None)


# --- plot ----------------------------------------------------------------------------------------


def test_plot_token_stream(own_dir: Path) -> None:
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    ax = nra.plot_token_stream([HELLO_STREAM, COMPLETION_STREAM])
    assert ax.get_xlabel() == "chunk index"
    assert len(ax.get_lines()) == 2
    plt.close("all")

    fig, ax2 = plt.subplots()
    out = nra.plot_token_stream(nra.token_stream(own_dir / "stream.json"), ax=ax2)
    assert out is ax2
    assert ax2.get_xlabel() == "time since request (ms)"
    xs = ax2.get_lines()[0].get_xdata()
    assert list(xs) == [120.5, 130.0, 141.25, 300.0, 310.5, 320.0]
    plt.close(fig)


def test_plot_without_matplotlib_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install 'notebook-recorder\[plot\]'"):
        nra.plot_token_stream(HELLO_STREAM)


# --- progress ------------------------------------------------------------------------------------


def test_progress_true_shows_the_bar_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(40):
        shutil.copy(HELLO_STREAM, tmp_path / f"{i:02d}.json")
    nra.load_recordings(tmp_path, progress=True)  # fast, but asked for: shown
    err = capsys.readouterr().err
    assert "Loading recordings" in err and "40/40" in err

    nra.clear_cache()
    nra.load_recordings(tmp_path, progress=False)
    assert "Loading recordings" not in capsys.readouterr().err

    nra.clear_cache()
    nra.load_recordings(tmp_path)  # auto, not a terminal: silent
    assert "Loading recordings" not in capsys.readouterr().err


def test_automatic_progress_waits_for_a_slow_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "0")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    bar = _progress.Progress(10, None, "x")
    try:
        assert bar.bar is not None and bar.bar.delay == _progress.PROGRESS_DELAY_S > 0
    finally:
        bar.close()
    bar = _progress.Progress(10, True, "x")
    try:
        assert bar.bar is not None and bar.bar.delay == 0
    finally:
        bar.close()


def test_progress_is_silent_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert _progress.Progress(10, None, "x").enabled is False
    monkeypatch.setenv("CI", "0")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert _progress.Progress(10, None, "x").enabled is True


# --- imports -------------------------------------------------------------------------------------


def test_pandas_is_imported_only_by_the_frames() -> None:
    code = textwrap.dedent(
        """
        import sys
        import notebook_recorder.analysis as nra
        rec = nra.Recording.load(sys.argv[1])
        rec.to_text(); rec._repr_html_()
        assert "pandas" not in sys.modules, "pandas imported"
        assert "tqdm" not in sys.modules, "tqdm imported"
        assert "matplotlib" not in sys.modules, "matplotlib imported"
        nra.load_recordings(sys.argv[1])
        assert "pandas" in sys.modules
        assert "matplotlib" not in sys.modules
        """
    )
    root = str(Path(__file__).parents[2])
    subprocess.run(
        [sys.executable, "-c", code, str(HELLO_STREAM)],
        check=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": root},
    )


def test_nan_semantics() -> None:
    df = nra.load_recordings(HELLO_STREAM)
    assert math.isnan(df["duration_ms"].iloc[0])
    assert pd.isna(df["error"].iloc[0])


def test_to_parquet_without_pyarrow_names_the_extra(tmp_path: Path) -> None:
    """Without pyarrow (made unimportable in a fresh interpreter) the error says what to install."""
    code = textwrap.dedent(
        """
        import importlib.util, sys
        for name in ("pyarrow", "fastparquet"):  # as if neither were installed (where one is)
            if importlib.util.find_spec(name) is not None:
                sys.modules[name] = None
        import notebook_recorder as nr
        df = nr.tool_calls(sys.argv[1])
        for frame in (df, df[df["name"].notna()].head(1)):  # the frame and one derived from it
            try:
                frame.to_parquet(sys.argv[2])
            except ImportError as e:
                print(e)
        """
    )
    root = str(Path(__file__).parents[2])
    out = subprocess.run(
        [sys.executable, "-c", code, str(KNOWLEDGE_SEARCH_CALL), str(tmp_path / "tc.parquet")],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": root},
    )
    assert out.returncode == 0, out.stderr
    hint = "to_parquet needs pyarrow: pip install 'notebook-recorder[parquet]'"
    assert out.stdout.splitlines() == [hint, hint]
    assert not (tmp_path / "tc.parquet").exists()


def test_recorded_at_falls_back_to_the_file_time(tmp_path: Path) -> None:
    target = tmp_path / KNOWLEDGE_SEARCH_ANSWER.name
    shutil.copy(KNOWLEDGE_SEARCH_ANSWER, target)  # a llama-stack file: it does not say when
    os.utime(target, (1_700_000_000, 1_700_000_000))
    frame = nra.load_recordings(tmp_path)
    assert str(frame["recorded_at"].dtype) == "datetime64[ns, UTC]"
    assert frame["recorded_at"].iloc[0].isoformat() == "2023-11-14T22:13:20+00:00"


def test_recording_html_is_readable_in_dark_themes() -> None:
    """A background the card sets is translucent (over the theme's text colour) or comes with its
    own text colour: an opaque light box under a dark theme's white text cannot be read."""
    import re

    for path in (KNOWLEDGE_SEARCH_ANSWER, HELLO_STREAM, TAVILY_INVOCATION, EXCEPTION):
        page = nra.Recording.load(path)._repr_html_()
        styles = re.findall(r'style="([^"]*background[^"]*)"', page)
        assert styles, path
        for style in styles:
            background = re.search(r"background:([^;]+)", style)
            assert background, style
            assert background.group(1).startswith("rgba(") or re.search(r"(^|;)color:", style), (path.name, style)
