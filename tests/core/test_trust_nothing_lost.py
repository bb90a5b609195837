"""Nothing paid for is lost (issue 22, "Nothing lost").

- A write that fails in ``record`` (here: a real file-size limit, ``RLIMIT_FSIZE``, in a child
  process, so the kernel itself refuses the write) returns the answer, warns naming the file, and
  ``nr.calls()`` says ``unsaved``. A value JSON cannot hold (NaN, infinity, an integer past 64
  bits, a lone surrogate) likewise: never silently ``None`` on replay.
- Two real processes recording the same occurrence at once both keep their answers.
- Tool calls are keyed with their scope (``test_id``), as API calls are, so two tests making the
  same tool call each replay their own answer; files recorded before keep working.
- ``prune`` deletes only inside its directory, and keeps every model list one replay merges.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import nbformat
import orjson
import pytest

import notebook_recorder as nr
from notebook_recorder import NotRecordedWarning, RecordingNotFoundError
from notebook_recorder.core._keys import ToolRequest, record_key

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"


def _env() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(REPO), str(TESTS), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1"}


def _run(script: str, *args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _recordings(directory: Path) -> list[str]:
    """Every entry of ``directory``: recordings, and any temporary or lock file left there."""
    return sorted(p.name for p in directory.iterdir())


# ---------------------------------------------------------------------------------------------
# a failed write
# ---------------------------------------------------------------------------------------------

FILE_TOO_LARGE = """
    import json, os, resource, signal, sys, warnings
    import openai
    import notebook_recorder as nr
    from wire_server import TEST_API_KEY, WireServer

    @nr.tool(provider="demo", name="big")
    def big(n: int) -> dict:
        return {"text": "x" * n}

    directory = sys.argv[1]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    with WireServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key=TEST_API_KEY, max_retries=0)
        ask = [{"role": "user", "content": "Hi"}]
        resource.setrlimit(resource.RLIMIT_FSIZE, (256, 256))  # every recording is larger
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with nr.recording("record", dir=directory):
                answer = client.chat.completions.create(model="gpt-4o", messages=ask).choices[0].message.content
                stream = client.chat.completions.create(model="gpt-4o", messages=ask, stream=True)
                streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
                result = big(10_000)
    print(json.dumps({
        "answer": answer,
        "streamed": streamed,
        "tool": len(result["text"]),
        "warnings": [str(w.message) for w in caught if issubclass(w.category, nr.NotRecordedWarning)],
        "outcomes": [call.outcome for call in nr.calls()],
        "errors": [call.error for call in nr.calls()],
    }))
"""


@pytest.mark.timeout(120)
def test_a_write_the_kernel_refuses_returns_the_answer_warns_and_logs_unsaved(tmp_path: Path) -> None:
    directory = tmp_path / "rec"
    directory.mkdir()
    result = _run(FILE_TOO_LARGE, directory)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["answer"] and report["streamed"] and report["tool"] == 10_000
    assert report["outcomes"] == ["unsaved", "unsaved", "unsaved"]
    assert all("File too large" in error for error in report["errors"])
    assert len(report["warnings"]) == 3
    for message in report["warnings"]:
        assert "NOT saved to" in message and ".json" in message and "File too large" in message
    assert "POST /v1/chat/completions" in report["warnings"][0]
    assert "tool demo/big" in report["warnings"][2]
    assert _recordings(directory) == []  # no partial file, no temporary file left behind


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
@pytest.mark.timeout(60)
def test_a_full_disk_returns_the_answer_and_logs_unsaved(tmp_path: Path) -> None:
    full = tmp_path / "full"
    full.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(full)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace')}")
    try:

        @nr.tool(provider="demo", name="big")
        def big(n: int) -> str:
            return "y" * n

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with nr.recording("record", dir=full):
                small = big(10)  # fits
                large = big(64_000)  # the disk is full
        assert small == "y" * 10 and large == "y" * 64_000
        assert [call.outcome for call in nr.calls()] == ["recorded", "unsaved"]
        (message,) = [str(w.message) for w in caught if issubclass(w.category, NotRecordedWarning)]
        assert "No space left on device" in message and "tool demo/big" in message
        assert len(_recordings(full)) == 1
    finally:
        subprocess.run(["umount", str(full)], check=True)


# ---------------------------------------------------------------------------------------------
# values JSON cannot hold
# ---------------------------------------------------------------------------------------------

UNWRITABLE: dict[str, Any] = {
    "nan": {"score": math.nan},
    "infinity": {"scores": [1.0, -math.inf]},
    "int-past-64-bits": {"id": 2**70},
    "lone-surrogate": {"text": "broken \ud800 text"},
}


@pytest.mark.parametrize("case", sorted(UNWRITABLE))
def test_a_result_json_cannot_hold_is_returned_and_never_replayed_as_something_else(case: str, tmp_path: Path) -> None:
    value = UNWRITABLE[case]

    @nr.tool(provider="demo", name="odd")
    def odd(q: str) -> dict[str, Any]:
        return value

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with nr.recording("record", dir=tmp_path):
            assert odd("x") is value  # the live answer, untouched
    (message,) = [str(w.message) for w in caught if issubclass(w.category, NotRecordedWarning)]
    assert "tool demo/odd" in message and "NOT saved to" in message
    where = next(iter(value))
    assert f"response.body.{where}" in message
    (call,) = nr.calls()
    assert call.outcome == "unsaved"
    # never a None (NaN written as null), never a string of another value
    with nr.recording("replay", dir=tmp_path), pytest.raises(RecordingNotFoundError):
        odd("x")


def test_a_nan_in_tool_arguments_is_refused_when_recording(tmp_path: Path) -> None:
    @nr.tool(provider="demo", name="scale")
    def scale(factor: float) -> float:
        return 2.0

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with nr.recording("record", dir=tmp_path):
            assert scale(math.inf) == 2.0
    (message,) = [str(w.message) for w in caught if issubclass(w.category, NotRecordedWarning)]
    assert "request.kwargs.factor is not a finite number" in message
    assert _recordings(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# two processes record the same occurrence at once
# ---------------------------------------------------------------------------------------------

RACER = """
    import json, os, sys, time
    import notebook_recorder as nr

    directory, barrier, name = sys.argv[1], sys.argv[2], sys.argv[3]

    @nr.tool(provider="demo", name="ask")
    def ask(q: str) -> str:
        # Both processes have decided to record occurrence 1 before either answers.
        open(os.path.join(barrier, name), "w").close()
        deadline = time.monotonic() + 60
        while len(os.listdir(barrier)) < 2:
            if time.monotonic() > deadline:
                raise SystemExit("the other process never came")
            time.sleep(0.005)
        return f"answer of {name}"

    with nr.recording("record", dir=directory):
        print(ask("the same question"))
    (call,) = nr.calls()
    print(json.dumps({"outcome": call.outcome, "occurrence": call.occurrence, "path": call.path}))
"""


@pytest.mark.timeout(120)
def test_two_processes_recording_the_same_occurrence_both_keep_their_answers(tmp_path: Path) -> None:
    directory, barrier = tmp_path / "rec", tmp_path / "barrier"
    directory.mkdir()
    barrier.mkdir()
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(RACER), str(directory), str(barrier), name],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("A", "B")
    ]
    outputs = [racer.communicate(timeout=100) for racer in racers]
    for racer, (out, err) in zip(racers, outputs, strict=True):
        assert racer.returncode == 0, out + err
    reports = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert sorted(report["occurrence"] for report in reports) == [1, 2]
    assert all(report["outcome"] == "recorded" for report in reports)
    key = ToolRequest("demo", "ask", {"q": "the same question"}).key(None)
    assert _recordings(directory) == [f"{key}-2.json", f"{key}.json"]
    answers = set()
    for name in _recordings(directory):
        record = json.loads((directory / name).read_text())
        assert record_key(record) == key
        assert record.get("occurrence", 1) == (2 if name.endswith("-2.json") else 1)
        answers.add(record["response"]["body"])
    assert answers == {"answer of A", "answer of B"}

    @nr.tool(provider="demo", name="ask")
    def ask(q: str) -> str:
        raise AssertionError("replay must not call the tool")

    with nr.recording("replay", dir=directory):
        assert {ask("the same question"), ask("the same question")} == answers


def test_a_file_written_while_the_call_ran_moves_the_answer_to_the_next_occurrence(tmp_path: Path) -> None:
    """In one process: another recorder writes occurrence 1 of the same call while this one's
    call runs. Neither answer is lost."""

    @nr.tool(provider="demo", name="ask2")
    def ask2(q: str) -> str:
        with nr.recording("record", dir=tmp_path):  # a second recording context, same directory
            assert ask2_inner(q) == "inner"
        return "outer answer"

    @nr.tool(provider="demo", name="ask2")
    def ask2_inner(q: str) -> str:
        return "inner"

    with nr.recording("record", dir=tmp_path):
        assert ask2("same") == "outer answer"
    files = _recordings(tmp_path)
    assert len(files) == 2
    bodies = {json.loads((tmp_path / f).read_text())["response"]["body"] for f in files}
    assert bodies == {"inner", "outer answer"}

    # ``record`` still overwrites what an earlier run left: only a file written since the call
    # was decided moves an answer to the next occurrence.
    with nr.recording("record", dir=tmp_path):
        assert ask2_inner("same") == "inner"
        assert ask2_inner("same") == "inner"
    assert _recordings(tmp_path) == files


def test_a_run_a_step_ahead_in_the_same_directory_keeps_its_answers_and_ours(tmp_path: Path) -> None:
    """Two runs record the same requests into one directory, one a step ahead of the other (two
    `notebook-recorder run`s sharing `APIREC_DIR`): the run behind finds the other's files there
    before its calls begin, yet they were written since it began, so they are not an earlier
    run's to replace. Found by two processes of 15 identical calls each: 15 files of 30, every
    answer of one process lost. Real openai client, real loopback HTTP; the server numbers its
    answers."""
    openai = pytest.importorskip("openai")
    from wire_server import TEST_API_KEY, WireServer

    hi = [{"role": "user", "content": "Hi"}]
    with WireServer(count_answers=True) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key=TEST_API_KEY, max_retries=0)

        def ask() -> str:
            return client.chat.completions.create(model="gpt-4o", messages=hi).choices[0].message.content or ""

        with nr.recording("record", dir=tmp_path):  # the run behind: it begins first...
            with nr.recording("record", dir=tmp_path):  # ...and the other records meanwhile
                ahead = [ask(), ask()]
            behind = [ask(), ask()]
        assert [a[:4] for a in ahead + behind] == ["[1] ", "[2] ", "[3] ", "[4] "]
        files = _recordings(tmp_path)
        assert len(files) == 4, files
        kept = {
            json.loads((tmp_path / f).read_text())["response"]["body"]["__data__"]["choices"][0]["message"]["content"]
            for f in files
        }
        assert kept == set(ahead + behind)

        # A later run replaces what these left, as `record` always has.
        with nr.recording("record", dir=tmp_path):
            later = [ask(), ask()]
        assert _recordings(tmp_path) == files
        with nr.recording("replay", dir=tmp_path):
            assert [ask(), ask(), ask(), ask()] == [*later, *behind]


# ---------------------------------------------------------------------------------------------
# tool calls are keyed with their test_id
# ---------------------------------------------------------------------------------------------


def test_two_scopes_making_the_same_tool_call_each_replay_their_own_answer(tmp_path: Path) -> None:
    answers = {"tests/test_a.py::test_one": "answer one", "tests/test_a.py::test_two": "answer two"}
    current: list[str] = []

    @nr.tool(provider="tavily", name="web_search")
    def search(query: str) -> str:
        return answers[current[0]]

    for scope in answers:
        current[:] = [scope]
        with nr.recording("record", dir=tmp_path, scope=scope):
            assert search("same query") == answers[scope]
    assert len(_recordings(tmp_path)) == 2
    for scope, answer in answers.items():
        with nr.recording("replay", dir=tmp_path, scope=scope):
            assert search("same query") == answer


def test_tool_files_without_a_scope_keep_their_key_and_older_scoped_files_are_found(tmp_path: Path) -> None:
    """No scope: llama-stack's key, unchanged. A file recorded in a scope before tool keys had
    it (named by the old key) is still found by its content; verify says to rename it."""
    request = ToolRequest("tavily", "web_search", {"query": "q"})
    old_key = request.key(None)
    assert old_key == ToolRequest("tavily", "web_search", {"query": "q"}).key(None)
    import hashlib

    llama_key = hashlib.sha256(
        json.dumps({"provider": "tavily", "tool_name": "web_search", "kwargs": {"query": "q"}}, sort_keys=True).encode()
    ).hexdigest()
    assert old_key == llama_key
    scope = "tests/test_a.py::test_old"
    legacy = {
        "test_id": scope,
        "request": {"test_id": scope, "provider": "tavily", "tool_name": "web_search", "kwargs": {"query": "q"}},
        "response": {"body": "the old answer", "is_streaming": False},
        "id_normalization_mapping": {},
    }
    (tmp_path / f"{old_key}.json").write_bytes(orjson.dumps(legacy))

    @nr.tool(provider="tavily", name="web_search")
    def web_search(query: str) -> str:
        raise AssertionError("replay must not call the tool")

    with nr.recording("replay", dir=tmp_path, scope=scope):
        assert web_search("q") == "the old answer"
    assert record_key(legacy) == request.key(scope) != old_key


# ---------------------------------------------------------------------------------------------
# prune
# ---------------------------------------------------------------------------------------------


def _cli(*args: str | Path, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "notebook_recorder.cli", *map(str, args)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _model_list(ids: list[str], body: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """A llama-stack model list (``models-<key>-<digest8>.json``) listing ``ids``; another
    ``body`` makes it another request's."""
    import hashlib

    record: dict[str, Any] = {
        "test_id": None,
        "request": {
            "method": "GET",
            "url": "https://api.openai.com/v1/models",
            "headers": {},
            "body": body or {},
            "endpoint": "/v1/models",
            "model": "",
        },
        "response": {
            "body": [
                {
                    "__type__": "openai.types.model.Model",
                    "__data__": {"id": i, "created": 1, "object": "model", "owned_by": "x"},
                }
                for i in ids
            ],
            "is_streaming": False,
        },
        "id_normalization_mapping": {},
    }
    key = record_key(record)
    assert key is not None
    digest = hashlib.sha256("|".join(sorted(set(ids))).encode()).hexdigest()[:8]
    return f"models-{key}-{digest}.json", record


PRUNE_NOTEBOOK = [
    "import openai, notebook_recorder as nr\n"
    "nr.start('replay', dir='recordings')\n"
    "client = openai.OpenAI(base_url='http://127.0.0.1:9/v1', api_key='sk-test-not-used', max_retries=0)\n"
    "print(sorted(m.id for m in client.models.list()))",
]


@pytest.mark.frontend
@pytest.mark.timeout(240)
def test_prune_keeps_every_merged_model_list_and_never_deletes_through_a_link(tmp_path: Path) -> None:
    project = tmp_path / "project"
    recordings = project / "recordings"
    recordings.mkdir(parents=True)
    for ids in (["gpt-4o", "gpt-4o-mini"], ["o3"]):
        name, record = _model_list(ids)
        (recordings / name).write_bytes(orjson.dumps(record, option=orjson.OPT_INDENT_2))
    # a directory link out of the recordings, to files prune must never touch
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    victim = outside / "precious.json"
    name, record = _model_list(["not", "here"], {"page": 2})
    victim.write_bytes(orjson.dumps(record))
    os.symlink(outside, recordings / "linked")
    # and one unused file inside, which prune may delete
    unused = recordings / "unused.json"
    name, record = _model_list(["old"], {"page": 3})
    unused.write_bytes(orjson.dumps(record))

    notebook = project / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in PRUNE_NOTEBOOK]), notebook)
    result = _cli("prune", recordings, "--used-by", notebook, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(list(recordings.glob("models-*.json"))) == 2, result.stdout  # one replay merged both
    assert victim.is_file(), result.stdout
    assert not unused.exists()
    assert "deleted 1 file(s)" in result.stdout
    assert "linked" in result.stdout  # said why it was left alone
