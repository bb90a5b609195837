"""HTTP-level recording has the semantics of SDK recording (issue 21, items 1-4): keys, secrets,
match rules, occurrences, scopes, missing-recording explanations, streams, ignored hosts, large
bodies, and llama-stack's raw HTTP recordings. Real clients, real HTTP, a loopback server."""

from __future__ import annotations

import asyncio
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
import requests
from http_wire_server import HttpWireServer

import notebook_recorder as nr
from notebook_recorder.core._errors import NotRecordedWarning

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures/llama-stack/head/tests/integration"
SECRET = "test-key-very-secret-000000000000"


def _files(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


def test_credentials_never_reach_the_file(tmp_path: Path) -> None:
    """Request headers are never written; credential query parameters and body fields are
    scrubbed from the request; a sent credential echoed back is masked; cookies are not kept."""
    with HttpWireServer() as server, nr.recording("record", dir=tmp_path):
        echoed = httpx2.get(
            server.url + "/search",
            params={"q": "paris", "key": SECRET},
            headers={"Authorization": f"Bearer {SECRET}-bearer", "x-goog-api-key": SECRET + "-goog"},
        ).json()
        requests.post(server.url + "/api/chat", json={"model": "m", "api_key": SECRET + "-body", "stream": False})
    assert SECRET in echoed["query"] or echoed["query"] == "paris"
    text = "".join(p.read_text() for p in tmp_path.glob("*.json"))
    assert SECRET not in text
    assert "wire-cookie-value" not in text and "set-cookie" not in text
    records = _files(tmp_path)
    assert all(r["request"]["headers"] == {} for r in records)
    search = next(r for r in records if r["request"]["endpoint"].startswith("/search"))
    assert search["request"]["endpoint"] == "/search?q=paris"
    assert "key=" not in search["request"]["url"]
    chat = next(r for r in records if r["request"]["endpoint"] == "/api/chat")
    assert chat["request"]["body"] == {"model": "m", "stream": False}
    assert chat["recorder"]["sdk"] == "requests"


def test_json_bodies_are_keyed_as_json_so_ignore_paths_work(tmp_path: Path) -> None:
    body = {
        "model": "m",
        "stream": False,
        "metadata": {"run": "first"},
        "messages": [{"role": "user", "content": "hi"}],
    }
    with HttpWireServer() as server:
        with nr.recording("record", dir=tmp_path, ignore=["body.metadata.run"]):
            recorded = httpx2.post(server.url + "/api/chat", json=body).json()
    body["metadata"] = {"run": "second"}
    with nr.recording("replay", dir=tmp_path, ignore=["body.metadata.run"]):
        assert httpx2.post(server.url + "/api/chat", json=body).json() == recorded
    (record,) = _files(tmp_path)
    assert record["request"]["body"]["messages"] == [{"role": "user", "content": "hi"}]
    assert record["request"]["model"] == "m"


def test_query_order_does_not_matter_and_a_miss_is_explained(tmp_path: Path) -> None:
    with HttpWireServer() as server:
        with nr.recording("record", dir=tmp_path):
            recorded = requests.get(server.url + "/search?q=paris&limit=3").json()
        with nr.recording("replay", dir=tmp_path):
            assert requests.get(server.url + "/search?limit=3&q=paris").json() == recorded
            with pytest.raises(nr.RecordingNotFoundError) as caught:
                requests.get(server.url + "/search?limit=3&q=rome")
        assert server.requests == 1
    message = str(caught.value)
    assert "GET /search?limit=3&q=rome" in message
    assert "Nearest recorded request" in message and "'/search?limit=3&q=paris' -> '/search?limit=3&q=rome'" in message


def test_occurrences_and_scopes(tmp_path: Path) -> None:
    """The k-th identical request replays the k-th answer; a scope enters the key."""
    with HttpWireServer() as server:
        with nr.recording("record", dir=tmp_path, scope="test_a"):
            first = [httpx2.get(server.url + "/search?q=x").json() for _ in range(3)]
    assert len({answer["request_id"] for answer in first}) == 3
    with nr.recording("replay", dir=tmp_path, scope="test_a"):
        assert [httpx2.get(server.url + "/search?q=x").json() for _ in range(3)] == first
    with nr.recording("replay", dir=tmp_path, scope="test_b"), pytest.raises(nr.RecordingNotFoundError):
        httpx2.get(server.url + "/search?q=x")
    assert {r["test_id"] for r in _files(tmp_path)} == {"test_a"}


def test_streams_pass_through_and_are_stored_as_events(tmp_path: Path) -> None:
    """SSE is stored as its events (event name and parsed data) with arrival offsets; NDJSON as
    its objects; replay gives the client the same lines."""
    with HttpWireServer() as server, nr.recording("record", dir=tmp_path):
        with httpx2.stream("POST", server.url + "/v2/chat", json={"model": "c", "stream": True}) as r:
            sse = list(r.iter_lines())
        with httpx2.stream("POST", server.url + "/api/chat", json={"model": "o"}) as r:
            ndjson = list(r.iter_lines())
    with nr.recording("replay", dir=tmp_path):
        with httpx2.stream("POST", server.url + "/v2/chat", json={"model": "c", "stream": True}) as r:
            assert list(r.iter_lines()) == sse
        with httpx2.stream("POST", server.url + "/api/chat", json={"model": "o"}) as r:
            assert list(r.iter_lines()) == ndjson
    records = {r["request"]["endpoint"]: r["response"] for r in _files(tmp_path)}
    cohere = records["/v2/chat"]
    assert cohere["is_streaming"] is True
    assert cohere["body"][0]["event"] == "message-start" and cohere["body"][0]["data"]["type"] == "message-start"
    assert len(cohere["chunk_offsets_ms"]) == len(cohere["body"])
    ollama = records["/api/chat"]
    assert ollama["body"][-1]["done"] is True and ollama["content_type"] == "application/x-ndjson"


def test_a_stream_replayed_again_is_served_from_the_bytes_built_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bytes of a replayed stream are built once per parsed file (the store's cache of
    parsed files): a replay again reads and compares the file and serves them; an edited file is
    converted again, so nothing stale is served."""
    from notebook_recorder.core._store import forget_indexes
    from notebook_recorder.hooks.http import _wire

    forget_indexes()
    body = {"model": "c", "stream": True}
    with HttpWireServer() as server:
        with nr.recording("record", dir=tmp_path), httpx2.stream("POST", server.url + "/v2/chat", json=body) as r:
            recorded = list(r.iter_lines())
        url = server.url
    built = []
    original = _wire.replay_chunks

    def counting(response: dict[str, Any]) -> _wire.Replayed:
        built.append(response)
        return original(response)

    monkeypatch.setattr(_wire, "replay_chunks", counting)
    for _ in range(3):
        with nr.recording("replay", dir=tmp_path), httpx2.stream("POST", url + "/v2/chat", json=body) as r:
            assert list(r.iter_lines()) == recorded
        with nr.recording("replay", dir=tmp_path):
            assert requests.post(url + "/v2/chat", json=body).text.splitlines() == recorded
    assert len(built) == 1
    (path,) = tmp_path.glob("*.json")
    path.write_text(path.read_text().replace('"Paris"', '"Rome"'))
    with nr.recording("replay", dir=tmp_path), httpx2.stream("POST", url + "/v2/chat", json=body) as r:
        assert list(r.iter_lines()) == [line.replace('"Paris"', '"Rome"') for line in recorded] != recorded
    assert len(built) == 2


def test_a_stream_cut_short_is_not_saved(tmp_path: Path) -> None:
    with HttpWireServer() as server, nr.recording("record", dir=tmp_path):
        with httpx2.stream("POST", server.url + "/v2/chat", json={"model": "c", "stream": True}) as r:
            next(r.iter_lines())
    assert not list(tmp_path.glob("*.json"))
    (call,) = nr.calls()
    assert call.outcome == "error" and "cut short" in (call.error or "")


def test_a_request_an_sdk_hook_handles_is_recorded_once(tmp_path: Path, wire_server: Any) -> None:
    import openai

    client = openai.OpenAI(api_key="sk-test", base_url=wire_server.base_url)
    with nr.recording("record", dir=tmp_path):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    (record,) = _files(tmp_path)
    assert record["recorder"]["sdk"] == "openai"
    assert [c.outcome for c in nr.calls()] == ["recorded"]


def test_ignored_hosts_are_left_alone(tmp_path: Path) -> None:
    with HttpWireServer() as server:
        with nr.recording("record", dir=tmp_path, ignore_hosts=["127.0.0.1"]):
            httpx2.get(server.url + "/search?q=x")
        with nr.recording("replay", dir=tmp_path, ignore_hosts=["127.0.0.1"]):
            httpx2.get(server.url + "/search?q=x")  # live: not replayed, not missing
        assert server.requests == 2
    assert not list(tmp_path.glob("*.json"))


def test_ignored_hosts_from_the_project_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.notebook-recorder]\nignore_hosts = ["127.0.0.1"]\n')
    monkeypatch.chdir(tmp_path)
    with HttpWireServer() as server, nr.recording("record", dir="rec"):
        requests.get(server.url + "/search?q=x")
    assert not (tmp_path / "rec").exists() and not (tmp_path / "rec2").exists()


def test_a_body_over_the_limit_is_reported_not_stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.notebook-recorder]\nhttp_max_body = 1000\n")
    monkeypatch.chdir(tmp_path)
    with HttpWireServer() as server, nr.recording("record", dir="rec"):
        with pytest.warns(NotRecordedWarning, match="over http_max_body"):
            assert len(httpx2.get(server.url + "/download?size=5000").content) == 5000
        small = httpx2.get(server.url + "/download?size=500").content
    (record,) = _files(tmp_path / "rec")
    assert record["response"]["body_base64"] and record["response"]["content_type"] == "application/octet-stream"
    with nr.recording("replay", dir="rec"):
        assert httpx2.get("http://127.0.0.1:9/download?size=500").content == small


def test_bad_project_settings_name_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.notebook-recorder]\nhttp_max_body = "big"\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"pyproject.toml \[tool.notebook-recorder\]: http_max_body"):
        nr.recording("record")


def test_aiohttp_and_httpx_async_streams(tmp_path: Path) -> None:
    import aiohttp

    async def work(url: str) -> Any:
        async with aiohttp.ClientSession() as session:
            async with session.post(url + "/v2/chat", json={"stream": True}) as r:
                events = [line async for line in r.content]
            async with session.post(url + "/v1beta/models/g:streamGenerateContent?alt=sse", json={}) as r:
                events += [line async for line in r.content]  # CRLF lines, given back as such
        async with httpx.AsyncClient() as client, client.stream("POST", url + "/api/chat", json={}) as r:
            lines = [line async for line in r.aiter_lines()]
        return events, lines

    with HttpWireServer() as server, nr.recording("record", dir=tmp_path):
        recorded = asyncio.run(work(server.url))
    with nr.recording("replay", dir=tmp_path):
        assert asyncio.run(work(server.url)) == recorded
    assert {r["recorder"]["sdk"] for r in _files(tmp_path)} == {"aiohttp", "httpx"}


def test_llama_stack_raw_http_recordings_replay(tmp_path: Path) -> None:
    """llama-stack's raw HTTP files (``payload``, ``status``, SSE as lines) replay through this layer."""
    stream = FIXTURES / "messages/recordings/f22657bfd86db6348c0a0d0b17332dcfc038b345d2a7be8da4b880a433d36a52.json"
    error = FIXTURES / "common/recordings/cf0be7f9e2ebfc78903aa4ada30204585952f77bc5acb3ff7702bd7878d44b44.json"
    for path in (stream, error):
        shutil.copy(path, tmp_path / path.name)
    streamed = json.loads(stream.read_text())
    with nr.recording("replay", dir=tmp_path, scope=streamed["test_id"]):
        with httpx2.stream("POST", streamed["request"]["url"], json=streamed["request"]["payload"]) as r:
            lines = list(r.iter_lines())
    assert lines[: len(streamed["response"]["body"])] == streamed["response"]["body"]
    failed = json.loads(error.read_text())
    with nr.recording("replay", dir=tmp_path):
        response = requests.post(failed["request"]["url"], json=failed["request"]["payload"])
    assert response.status_code == 400
    assert response.json() == failed["response"]["body"]


def test_no_recorder_means_no_hook_work(tmp_path: Path) -> None:
    with HttpWireServer() as server:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert httpx2.get(server.url + "/search?q=x").status_code == 200
    assert nr.calls() == []


def test_the_ignore_host_flag(ip: Any, tmp_path: Path) -> None:
    """``%apirec MODE --ignore-host HOST`` (session) and in a ``%%apirec`` cell."""
    ip.user_ns["httpx2"] = httpx2
    with HttpWireServer() as server:
        ip.run_line_magic("apirec", "record --dir rec --ignore-host 127.0.0.1")
        from notebook_recorder.core._session import session

        assert "127.0.0.1" in session().ignore_hosts  # type: ignore[union-attr]
        httpx2.get(server.url + "/search?q=x")
        ip.run_line_magic("apirec", "off")
        ip.run_cell_magic("apirec", "record --dir rec2 --ignore-host 127.0.0.1", f"httpx2.get('{server.url}/search')")
        ip.run_line_magic("apirec", "record --dir rec3")
        httpx2.get(server.url + "/search?q=x")
        ip.run_line_magic("apirec", "off")
    assert not (tmp_path / "rec").exists() and not (tmp_path / "rec2").exists()
    assert len(list((tmp_path / "rec3").glob("*.json"))) == 1


def test_text_and_error_bodies_replay_as_sent(tmp_path: Path) -> None:
    with HttpWireServer() as server, nr.recording("record", dir=tmp_path):
        text = requests.get(server.url + "/robots.txt")
        missing = httpx2.get(server.url + "/nowhere")
    with nr.recording("replay", dir=tmp_path):
        again = requests.get(server.url + "/robots.txt")
        assert (again.status_code, again.text, again.headers["content-type"]) == (
            200,
            text.text,
            "text/plain; charset=utf-8",
        )
        assert httpx2.get(server.url + "/nowhere").status_code == missing.status_code == 404
