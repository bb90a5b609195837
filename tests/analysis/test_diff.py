"""Comparing two runs (``nr.diff``, ``notebook-recorder diff``) and re-recording into a new
directory (``dir_out``).

The runs are real: the same script is recorded twice against the loopback wire server through
the real openai SDK, the second time against a server whose answers changed in the ways a model
upgrade changes them (another text, another tool call, an error, a stream cut by ``length``, a
structured output of another shape, fresh ids), with one prompt edited, one call added and one
tool call left out. The llama-stack sample is compared with an edited copy, and two git revisions
of one directory are compared in a temporary repository.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pandas as pd
import pytest
from wire_server import FIXTURES_DIR, TEST_API_KEY, ReceivedRequest, Reply, WireServer, error_for_status, stamp_answer

import notebook_recorder as nr
from notebook_recorder import cli
from notebook_recorder.analysis import DEFAULT_FAIL_ON, VERDICT_DOCS, VERDICTS, RunDiff, clear_cache

SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "answer",
        "schema": {"type": "object", "properties": {"name": {"type": "string"}, "count": {"type": "integer"}}},
    },
}


def _first_message(body: Any) -> str:
    messages = body.get("messages") if isinstance(body, dict) else None
    return str(messages[0]["content"]) if messages else ""


class ChangedServer(WireServer):
    """The wire server after a "model upgrade": the same routes, some answers changed."""

    def handle(self, request: ReceivedRequest) -> Reply:
        body = request.json if isinstance(request.json, dict) else {}
        prompt = _first_message(body)
        if prompt == "Fail now":
            return Reply(500, error_for_status(500, str(body.get("model", ""))), headers={"x-should-retry": "false"})
        reply = super().handle(request)
        payload: Any = reply.events if reply.events is not None else reply.body
        if prompt == "Say hello":
            stamp_answer(payload, "Well, ")
        elif prompt == "Search the web":
            for chunk in payload:
                for choice in chunk.get("choices") or []:
                    for call in (choice.get("delta") or {}).get("tool_calls") or []:
                        if call["function"].get("arguments") == "latest":
                            call["function"]["arguments"] = "newest"
        elif prompt == "Write a long answer":
            cut = copy.deepcopy(payload[:6])
            cut[-1]["choices"][0]["finish_reason"] = "length"
            reply.events = cut
        elif prompt == "Give JSON":
            message = payload["choices"][0]["message"]
            message["content"] = json.dumps({"name": json.loads(message["content"])["name"], "count": "zero"})
        elif prompt == "Same again":
            payload.update(id="chatcmpl-fresh-id", created=payload.get("created", 0) + 99, system_fingerprint="fp_new")
        return reply


@nr.tool(provider="local", name="lookup")
def lookup(term: str) -> dict[str, str]:
    return {"term": term, "found": "yes"}


def chat(client: openai.OpenAI, prompt: str, **extra: Any) -> str:
    messages = [{"role": "user", "content": prompt}]
    if extra.pop("stream", False):
        stream = client.chat.completions.create(model="gpt-4o", messages=messages, stream=True, **extra)  # type: ignore[arg-type]
        return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    answer = client.chat.completions.create(model="gpt-4o", messages=messages, **extra)  # type: ignore[arg-type]
    return answer.choices[0].message.content or ""


WEB_SEARCH = [{"type": "function", "function": {"name": "web_search", "parameters": {"type": "object"}}}]


def the_run(client: openai.OpenAI, *, second: bool) -> None:
    """The script recorded twice: the second time one prompt is edited, one call is added and
    one tool call is left out."""
    chat(client, "Say hello", stream=True)
    chat(client, "Search the web", stream=True, tools=WEB_SEARCH)
    try:
        chat(client, "Fail now")
    except openai.InternalServerError:
        assert second
    chat(client, "Write a long answer", stream=True)
    chat(client, "Give JSON", response_format=SCHEMA)
    chat(client, "Same again")
    chat(client, "Unchanged", stream=True)
    chat(client, "Tell me a good joke" if second else "Tell me a joke")
    if second:
        chat(client, "One more thing")
    else:
        lookup("a term")


def record_run(server: WireServer, directory: Path, **kwargs: Any) -> None:
    with (
        openai.OpenAI(base_url=server.base_url, api_key=TEST_API_KEY, max_retries=0) as client,
        nr.recording("record", dir=directory, scope="the_run", **kwargs),
    ):
        the_run(client, second=isinstance(server, ChangedServer))


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, dict[str, float]]]:
    """Run A recorded into ``a``; run B re-recorded with ``dir_out=b``, leaving ``a`` untouched."""
    root = tmp_path_factory.mktemp("runs")
    a, b = root / "a", root / "b"
    with WireServer() as server:
        record_run(server, a)
    before = {p.name: p.stat().st_mtime_ns for p in a.iterdir()}
    with ChangedServer() as server:
        record_run(server, a, dir_out=b)
    yield a, b, before
    clear_cache()


def prompt_of(row: pd.Series) -> str:
    path = row["path_a"] if isinstance(row["path_a"], str) else row["path_b"]
    record = json.loads(Path(path).read_text())
    request = record["request"]
    return str(request.get("kwargs", {}).get("term") or _first_message(request.get("body")))


def by_prompt(frame: pd.DataFrame) -> dict[str, pd.Series]:
    return {prompt_of(row): row for _, row in frame.iterrows()}


# --- re-recording into a new directory ------------------------------------------------------


def test_record_with_dir_out_writes_there_and_leaves_the_committed_directory_alone(
    two_runs: tuple[Path, Path, dict[str, float]],
) -> None:
    a, b, before = two_runs
    assert {p.name: p.stat().st_mtime_ns for p in a.iterdir()} == before  # nothing written, nothing removed
    assert len(before) == 9  # 8 API calls and a tool call (the failed call is recorded once, in b)
    assert len(list(b.glob("*.json"))) == 9
    sequences = sorted(json.loads(p.read_text())["recorder"]["sequence"] for p in b.glob("*.json"))
    assert sequences == list(range(1, 10))


def test_record_if_missing_with_dir_out_copies_what_it_replays(tmp_path: Path, wire_server: WireServer) -> None:
    committed, new = tmp_path / "committed", tmp_path / "new"
    with (
        openai.OpenAI(base_url=wire_server.base_url, api_key=TEST_API_KEY, max_retries=0) as client,
        nr.recording("record", dir=committed),
    ):
        chat(client, "Say hello")
    (old,) = committed.glob("*.json")
    seen = len(wire_server.requests)
    with (
        openai.OpenAI(base_url=wire_server.base_url, api_key=TEST_API_KEY, max_retries=0) as client,
        nr.recording("record-if-missing", dir=committed, dir_out=new),
    ):
        chat(client, "Say hello")  # replayed from committed, copied to new
        chat(client, "Say hello")  # its second occurrence replays the first (copied as occurrence 2)
        chat(client, "Unchanged")  # missing: recorded, into new only
    assert len(wire_server.requests) == seen + 1
    assert sorted(p.name for p in committed.glob("*.json")) == [old.name]
    names = sorted(p.name for p in new.glob("*.json"))
    assert len(names) == 3 and old.name in names and old.name.replace(".json", "-2.json") in names
    assert nr.diff(committed, new)["verdict"].tolist() == ["added", "added", "identical"]
    # replay reads dir_out first, then dir, and writes nothing
    with (
        openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key=TEST_API_KEY, max_retries=0) as client,
        nr.recording("replay", dir=committed, dir_out=tmp_path / "empty"),
    ):
        assert chat(client, "Say hello")
    assert not (tmp_path / "empty").exists()


def test_apirec_dir_out_overrides_the_dir_out_in_code(
    tmp_path: Path, wire_server: WireServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APIREC_DIR_OUT", str(tmp_path / "forced"))
    with (
        openai.OpenAI(base_url=wire_server.base_url, api_key=TEST_API_KEY, max_retries=0) as client,
        nr.recording("record", dir=tmp_path / "committed", dir_out=tmp_path / "asked"),
    ):
        chat(client, "Say hello")
    assert len(list((tmp_path / "forced").glob("*.json"))) == 1
    assert not (tmp_path / "committed").exists() and not (tmp_path / "asked").exists()


# --- nr.diff on two real runs -----------------------------------------------------------------


def test_diff_gives_each_call_its_verdict(two_runs: tuple[Path, Path, dict[str, float]]) -> None:
    a, b, _ = two_runs
    frame = nr.diff(a, b)
    assert isinstance(frame, RunDiff) and isinstance(frame, pd.DataFrame)
    rows = by_prompt(frame)
    verdicts = {prompt: str(row["verdict"]) for prompt, row in rows.items()}
    assert verdicts == {
        "Say hello": "text changed",
        "Search the web": "tool calls changed",
        "Fail now": "error appeared",
        "Write a long answer": "finish changed",
        "Give JSON": "structure changed",
        "Same again": "same",
        "Unchanged": "identical",
        "Tell me a joke": "request changed",
        "One more thing": "added",
        "a term": "removed",
    }
    assert set(frame["verdict"].cat.categories) == set(VERDICTS) == set(VERDICT_DOCS)
    # most significant first
    assert frame["verdict"].tolist()[:2] == ["error appeared", "removed"]
    assert frame["verdict"].tolist()[-1] == "identical"


def test_diff_says_what_changed(two_runs: tuple[Path, Path, dict[str, float]]) -> None:
    a, b, _ = two_runs
    rows = by_prompt(nr.diff(a, b))
    hello = rows["Say hello"]
    assert hello["text_b"] == "Well, " + hello["text_a"]
    assert 0.5 < hello["similarity"] < 1.0
    assert "latest" in rows["Search the web"]["changes"] and "newest" in rows["Search the web"]["changes"]
    assert rows["Fail now"]["exception_b"] == "InternalServerError" and pd.isna(rows["Fail now"]["exception_a"])
    cut = rows["Write a long answer"]
    assert (cut["finish_reason_a"], cut["finish_reason_b"]) == ("stop", "length")
    assert cut["n_chunks_b"] == 6 and cut["n_chunks_delta"] == 6 - cut["n_chunks_a"] < 0
    assert "count" in rows["Give JSON"]["changes"]
    assert "id" in rows["Same again"]["changes"] and "system_fingerprint" in rows["Same again"]["changes"]
    joke = rows["Tell me a joke"]
    assert joke["request_diff"] == "body.messages[0].content: 'Tell me a joke' -> 'Tell me a good joke'"
    assert joke["answer"] in ("identical", "same") and joke["paired_by"] == "place"
    unchanged = rows["Unchanged"]
    assert unchanged["paired_by"] == "key" and unchanged["similarity"] == 1.0
    assert unchanged["duration_ms_delta"] == unchanged["duration_ms_b"] - unchanged["duration_ms_a"]
    assert str(rows["a term"]["answer"]) == "nan" or pd.isna(rows["a term"]["answer"])


def test_identical_runs_are_identical(two_runs: tuple[Path, Path, dict[str, float]]) -> None:
    a, _, _ = two_runs
    frame = nr.diff(a, a)
    assert set(frame["verdict"]) == {"identical"} and len(frame) == 9
    assert frame.failing().empty


def test_a_helper_process_checks_half_of_many_pairs_with_the_same_result(
    two_runs: tuple[Path, Path, dict[str, float]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from notebook_recorder.analysis import _loader, _samecheck

    a, b, _ = two_runs
    monkeypatch.setenv("NOTEBOOK_RECORDER_LOAD_HELPER", "0")
    alone = nr.diff(a, b)
    monkeypatch.delenv("NOTEBOOK_RECORDER_LOAD_HELPER")
    monkeypatch.setattr(_samecheck, "PARALLEL_MIN_PAIRS", 1)
    if not _loader._Helper.possible():
        pytest.skip("one CPU: no helper process")
    started = []
    real_popen = subprocess.Popen

    def popen(*args: Any, **kwargs: Any) -> Any:
        started.append(args[0])
        return real_popen(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", popen)  # counts the helper processes started
    helped = nr.diff(a, b)
    assert len(started) == 1
    pd.testing.assert_frame_equal(pd.DataFrame(alone), pd.DataFrame(helped))


def test_diff_takes_frames_too(two_runs: tuple[Path, Path, dict[str, float]]) -> None:
    a, b, _ = two_runs
    old, new = nr.load_recordings(a), nr.load_recordings(b)
    assert nr.diff(old, new)["verdict"].tolist() == nr.diff(a, b)["verdict"].tolist()


def test_the_html_view_shows_changed_calls_first_side_by_side(two_runs: tuple[Path, Path, dict[str, float]]) -> None:
    a, b, _ = two_runs
    frame = nr.diff(a, b)
    page = frame._repr_html_()
    assert page.index("error appeared") < page.index("text changed")
    assert "<ins>Well,</ins>" in page  # the word added in b, highlighted on b's side
    assert page.count('class="side"') >= 2 * 3
    assert "Unchanged" not in page  # identical calls are counted, not shown
    assert isinstance(frame[frame["verdict"] == "identical"], pd.DataFrame)
    assert frame.summary()["identical"] == 1


def test_failing_uses_the_answer_of_request_changed_pairs(two_runs: tuple[Path, Path, dict[str, float]]) -> None:
    a, b, _ = two_runs
    frame = nr.diff(a, b)
    assert sorted(map(str, frame.failing()["verdict"])) == sorted(
        ["tool calls changed", "structure changed", "error appeared", "removed"]
    )
    assert list(frame.failing(["request changed"])["verdict"]) == ["request changed"]
    with pytest.raises(ValueError, match="unknown verdict 'bogus'; valid verdicts are: added, error appeared"):
        frame.failing(["bogus"])


# --- the command ------------------------------------------------------------------------------


def test_the_command_prints_a_summary_and_fails_on_the_default_verdicts(
    two_runs: tuple[Path, Path, dict[str, float]], capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, _ = two_runs
    assert cli.main(["diff", str(a), str(b)]) == 1
    captured = capsys.readouterr()
    assert "error appeared" in captured.out and "tool calls changed" in captured.out
    assert "4 call(s) with a verdict in --fail-on" in captured.err
    assert "Tell me a good joke" in captured.out  # the request diff of the edited prompt
    assert cli.main(["diff", str(a), str(a)]) == 0
    assert cli.main(["diff", str(a), str(b), "--fail-on", "none"]) == 0
    assert cli.main(["diff", str(a), str(b), "--fail-on", "finish changed"]) == 1
    assert set(DEFAULT_FAIL_ON) == {"tool calls changed", "structure changed", "error appeared", "removed"}


def test_the_command_prints_json(
    two_runs: tuple[Path, Path, dict[str, float]], capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, _ = two_runs
    assert cli.main(["diff", str(a), str(b), "--json", "--fail-on", "text changed,finish changed"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["fail_on"] == ["text changed", "finish changed"]
    assert report["counts"]["identical"] == 1 and report["counts"]["added"] == 1
    assert len(report["calls"]) == 10
    first = report["calls"][0]
    assert first["verdict"] == "error appeared" and first["path_a"].endswith(".json") and "/" not in first["path_a"]


def test_an_unknown_verdict_lists_the_valid_ones(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.main(["diff", str(tmp_path), str(tmp_path), "--fail-on", "regression"]) == 2
    message = capsys.readouterr().err
    assert "unknown verdict 'regression'" in message
    for verdict in VERDICTS:
        assert verdict in message


def test_diff_help_documents_every_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["diff", "--help"]) == 0
    out = capsys.readouterr().out
    for verdict, meaning in VERDICT_DOCS.items():
        assert f"  {verdict}" in out and meaning[:30] in " ".join(out.split())
    assert "--fail-on defaults to: tool calls changed, structure changed, error appeared, removed" in out


def test_the_command_needs_two_sides(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.main(["diff", str(tmp_path)]) == 2
    assert "give two directories" in capsys.readouterr().err
    assert cli.main(["diff", str(tmp_path), str(tmp_path / "nope")]) == 2
    assert "no such directory" in capsys.readouterr().err


# --- the llama-stack sample against an edited copy --------------------------------------------


def _edit(path: Path, change: Any) -> None:
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record, indent=2))


def test_llama_stack_sample_against_an_edited_copy(tmp_path: Path) -> None:
    edited = tmp_path / "edited"
    shutil.copytree(FIXTURES_DIR, edited)
    frame = nr.load_recordings(FIXTURES_DIR)
    answered = (frame["finish_reason"] == "stop") & frame["text"].str.len().gt(20)
    plain = frame[(frame["kind"] == "inference") & ~frame["is_streaming"] & answered]
    text_file, error_file, id_file = (Path(p) for p in plain["path"].iloc[:3])
    asked = nr.tool_calls(frame)
    tool_file = Path(asked[(asked["source"] == "response")]["path"].iloc[0])
    removed_file = Path(frame[frame["kind"] == "embedding"]["path"].iloc[0])

    def in_copy(path: Path) -> Path:
        return edited / path.relative_to(FIXTURES_DIR)

    def message(record: dict[str, Any]) -> dict[str, Any]:
        return record["response"]["body"]["__data__"]["choices"][0]["message"]

    _edit(in_copy(text_file), lambda r: message(r).update(content=message(r)["content"] + " Also, hello."))
    _edit(in_copy(id_file), lambda r: r["response"]["body"]["__data__"].update(id="rec-another-id", created=12))

    def to_error(record: dict[str, Any]) -> None:
        record["response"] = {
            "body": None,
            "is_exception": True,
            "exception_data": {"type": "RateLimitError", "message": "slow down", "status_code": 429, "body": {}},
            "exception_message": "slow down",
        }

    _edit(in_copy(error_file), to_error)

    def other_tool_call(record: dict[str, Any]) -> None:
        text = json.dumps(record["response"])
        record["response"] = json.loads(text.replace('"name": "', '"name": "other_', 1))

    _edit(in_copy(tool_file), other_tool_call)
    in_copy(removed_file).unlink()

    result = nr.diff(FIXTURES_DIR, edited)
    assert len(result) == len(frame)
    verdicts = {str(p): str(v) for p, v in zip(result["path_a"], result["verdict"], strict=True)}
    assert len(verdicts) == len(frame)
    assert verdicts.pop(str(text_file)) == "text changed"
    assert verdicts.pop(str(id_file)) == "same"
    assert verdicts.pop(str(error_file)) == "error appeared"
    assert verdicts.pop(str(tool_file)) == "tool calls changed"
    assert verdicts.pop(str(removed_file)) == "removed"
    assert set(verdicts.values()) == {"identical"}


# --- two git revisions of one directory -------------------------------------------------------


def git(cwd: Path, *argv: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "commit.gpgsign=false", *argv],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def test_diff_of_two_git_revisions(
    two_runs: tuple[Path, Path, dict[str, float]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    a, b, _ = two_runs
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    shutil.copytree(a, repo / "recordings" / "nb")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first run")
    shutil.rmtree(repo / "recordings" / "nb")
    shutil.copytree(b, repo / "recordings" / "nb")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "second run")
    (repo / "recordings" / "nb" / next(iter(os.listdir(repo / "recordings" / "nb")))).unlink()  # uncommitted
    monkeypatch.chdir(repo)
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout

    assert cli.main(["diff", "recordings", "--from", "HEAD~1", "--to", "HEAD", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    expected = nr.diff(a, b).summary()
    assert report["counts"] == {str(k): int(v) for k, v in expected.items()}
    assert report["a"] == "HEAD~1:recordings" and report["b"] == "HEAD:recordings"

    assert cli.main(["diff", "recordings", "--from", "HEAD", "--json", "--fail-on", "none"]) == 0
    against_disk = json.loads(capsys.readouterr().out)
    assert against_disk["counts"] == {"removed": 1, "identical": 8}
    assert subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout == status

    assert cli.main(["diff", "recordings", "--from", "no-such-rev"]) == 2
    assert "no such revision: no-such-rev" in capsys.readouterr().err
