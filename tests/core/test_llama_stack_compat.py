"""Acceptance (issue 3): llama-stack's own recordings replay through the real openai SDK.

For each OpenAI recording in ``tests/fixtures/llama-stack``, point ``nr.recording("replay")`` at
its folder with its ``test_id`` as the scope, re-issue the recorded ``request.body`` through the
SDK's resource methods, and compare what comes back with the recorded response. Recorded errors
must be re-raised with their class and status. The client points at a closed port: any request
that reached the network would fail.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import openai
import pytest

import notebook_recorder as nr
from notebook_recorder.core._keys import canonical_endpoint, record_key

FIXTURES = Path(__file__).parent.parent / "fixtures" / "llama-stack"
OPENAI_ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models")


def _openai_recordings() -> list[Path]:
    paths = []
    for path in sorted(FIXTURES.rglob("*.json")):
        request = json.loads(path.read_text())["request"]
        if "body" not in request or "tool_name" in request:
            continue
        endpoint = canonical_endpoint(str(request.get("endpoint") or ""), str(request.get("url") or ""))
        if endpoint in OPENAI_ENDPOINTS:
            paths.append(path)
    return paths


RECORDINGS = _openai_recordings()


def _id(path: Path) -> str:
    return f"{path.relative_to(FIXTURES).parts[0]}/{path.parent.parent.name}/{path.name[:16]}"


@pytest.fixture(scope="module")
def client() -> openai.OpenAI:
    return openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="sk-unused", max_retries=0)


def _split(method: Any, body: dict[str, Any]) -> dict[str, Any]:
    """The recorded body as keyword arguments of an SDK method; what it does not take goes in
    extra_body, and a literal ``extra_body`` (llama-stack stored the SDK's keyword arguments) is
    passed as the ``extra_body`` it was."""
    params = inspect.signature(method).parameters
    literal = body["extra_body"] if isinstance(body.get("extra_body"), dict) else None
    known = {k: v for k, v in body.items() if k in params and k not in ("extra_body", "extra_headers")}
    extra = {k: v for k, v in body.items() if k not in known and not (k == "extra_body" and literal is not None)}
    if literal is not None:
        return {**known, "extra_body": {**extra, **literal}}
    return {**known, "extra_body": extra} if extra else known


def _call(client: openai.OpenAI, endpoint: str, body: dict[str, Any], recorded: Any) -> Any:
    if endpoint == "/v1/models":
        return list(client.models.list())
    if endpoint == "/v1/completions" and "messages" in body:
        # llama-stack filed some chat requests under /v1/completions; they replay through the SDK
        # call that made them.
        endpoint = "/v1/chat/completions"
    method = {
        "/v1/chat/completions": client.chat.completions.create,
        "/v1/completions": client.completions.create,
        "/v1/embeddings": client.embeddings.create,
    }[endpoint]
    result = method(**_split(method, body))
    if body.get("stream"):
        assert isinstance(result, openai.Stream)
        return list(result)
    return result


def _dump(value: Any) -> Any:
    return value.model_dump(mode="json", exclude_unset=True, warnings=False)


def _recorded_data(value: Any) -> Any:
    return value["__data__"] if isinstance(value, dict) and "__data__" in value else value


@pytest.mark.parametrize("path", RECORDINGS, ids=_id)
def test_llama_stack_recording_replays_through_the_sdk(path: Path, client: openai.OpenAI) -> None:
    record = json.loads(path.read_text())
    request, response = record["request"], record["response"]
    endpoint = canonical_endpoint(str(request.get("endpoint") or ""), str(request.get("url") or ""))
    nr.clear_calls()
    with nr.recording("replay", dir=path.parent, scope=record.get("test_id")):
        if response.get("is_exception"):
            data = response["exception_data"]
            with pytest.raises(openai.APIStatusError) as info:
                _call(client, endpoint, request["body"], None)
            assert type(info.value).__name__ == data["type"]
            assert info.value.status_code == data["status_code"]
            assert info.value.body == data["body"]
            assert data["body"]["message"] in str(info.value)  # the wording around it is the SDK's
            return
        result = _call(client, endpoint, request["body"], response["body"])
    (call,) = nr.calls()
    assert call.outcome == "replayed"
    if endpoint == "/v1/models":
        # All the model lists recorded for this request are merged, as llama-stack does.
        # A model listed by two servers is replayed as one of its recorded forms.
        replayed = {m.id: _dump(m) for m in result}
        lists = [json.loads(p.read_text()) for p in path.parent.glob("models-*.json")]
        forms = [_recorded_data(item) for r in lists if record_key(r) == call.key for item in r["response"]["body"]]
        assert sorted(replayed) == sorted({form["id"] for form in forms})
        for item in response["body"]:
            assert replayed[_recorded_data(item)["id"]] in forms
        return
    if Path(str(call.path)).resolve() != path.resolve():
        # A few llama-stack folders hold several files for one request (recorded by different
        # tests of an older generation, whose test_id was only the file name): any of them is
        # the recorded answer to that request. The others of the group are checked by their own case.
        same_request = [p for p in path.parent.glob("*.json") if record_key(json.loads(p.read_text())) == call.key]
        assert path in same_request and len(same_request) > 1
        return
    recorded = response["body"]
    if request["body"].get("stream"):
        assert len(result) == len(recorded)
        for chunk, data in zip(result, recorded, strict=True):
            assert _dump(chunk) == _recorded_data(data)
        return
    assert _dump(result) == _recorded_data(recorded)


def test_the_sample_covers_every_kind() -> None:
    kinds: dict[str, int] = {}
    for path in RECORDINGS:
        record = json.loads(path.read_text())
        request, response = record["request"], record["response"]
        endpoint = canonical_endpoint(str(request.get("endpoint") or ""), str(request.get("url") or ""))
        kind = (
            "error" if response.get("is_exception") else endpoint + (" stream" if request["body"].get("stream") else "")
        )
        kinds[kind] = kinds.get(kind, 0) + 1
    assert set(kinds) >= {
        "/v1/chat/completions",
        "/v1/chat/completions stream",
        "/v1/completions",
        "/v1/completions stream",
        "/v1/embeddings",
        "/v1/models",
        "error",
    }, kinds
    assert len(RECORDINGS) >= 90


# llama-stack's literal extra_body (FORMAT.md): some stored bodies hold the SDK's `extra_body`
# keyword argument as it was passed, where the SDK merges it into the JSON it sends.
LITERAL_EXTRA_BODY = FIXTURES / "oct2025/tests/integration/recordings/responses/ecae140151d1.json"


def test_the_sample_has_literal_extra_bodies() -> None:
    literal = [p for p in FIXTURES.rglob("*.json") if '"extra_body"' in p.read_text()]
    assert LITERAL_EXTRA_BODY in literal and len(literal) >= 5


@pytest.mark.parametrize("extra_body", [{}, None], ids=["extra_body={}", "no extra_body"])
def test_a_literal_empty_extra_body_replays_the_sdk_call(
    client: openai.OpenAI, extra_body: dict[str, Any] | None, tmp_path: Path
) -> None:
    record = json.loads(LITERAL_EXTRA_BODY.read_text())
    assert record["request"]["body"]["extra_body"] == {}
    # Alone: its folder holds other answers to the same request, without the literal extra_body.
    copy = tmp_path / LITERAL_EXTRA_BODY.name
    copy.write_bytes(LITERAL_EXTRA_BODY.read_bytes())
    nr.clear_calls()
    with nr.recording("replay", dir=tmp_path):
        completion = client.completions.create(
            model="llama3.2:3b-instruct-fp16", prompt="Say completions", max_tokens=20, extra_body=extra_body
        )
    assert completion.choices[0].text.startswith("Sure, I'd be happy to provide some definitions")
    (call,) = nr.calls()
    assert Path(str(call.path)).resolve() == copy.resolve()


def test_a_literal_extra_body_with_fields_is_merged_into_the_key(client: openai.OpenAI, tmp_path: Path) -> None:
    # As WatsonX's project_id and vLLM's guided_choice were stored: the call sends them top-level.
    record = json.loads(LITERAL_EXTRA_BODY.read_text())
    extra = {"guided_choice": ["yes", "no"], "project_id": "p-123"}
    record["request"]["body"]["extra_body"] = extra
    (tmp_path / "0123456789ab.json").write_text(json.dumps(record))
    with nr.recording("replay", dir=tmp_path):
        completion = client.completions.create(
            model="llama3.2:3b-instruct-fp16", prompt="Say completions", max_tokens=20, extra_body=extra
        )
        assert completion.choices[0].finish_reason == "length"
        with pytest.raises(nr.RecordingNotFoundError):  # the fields are part of the request
            client.completions.create(model="llama3.2:3b-instruct-fp16", prompt="Say completions", max_tokens=20)
    stored = nr.load_recordings(tmp_path)
    assert stored["error"].isna().all()
