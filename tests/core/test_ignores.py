"""Requests that change between runs (issue 16): explicit, narrow ignores and normalizers.

Matching stays strict unless a rule says otherwise. Every test records through the real openai
SDK against the loopback wire server, then replays with the server stopped (a replay that
reached the network would fail), after changing the volatile part of the request.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import openai
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from nbformat.v4 import new_code_cell, new_notebook
from wire_server import TEST_API_KEY, WireServer

import notebook_recorder as nr
from notebook_recorder.core import _config
from notebook_recorder.core._match import Rules
from notebook_recorder.core._store import forget_indexes
from notebook_recorder.frontends.cli.main import main

REPO = Path(__file__).resolve().parents[2]
DATE = r"\d{4}-\d{2}-\d{2}"
TIME = r"\d{2}:\d{2}"


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no pyproject.toml above tmp_path unless a test writes one


def ask(client: openai.OpenAI, prompt: str, **extra: Any) -> str:
    answer = (
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": prompt}], **extra)
        .choices[0]
        .message.content
    )
    assert answer
    return answer


def only_file(directory: Path) -> dict[str, Any]:
    (path,) = directory.glob("*.json")
    return dict(json.loads(path.read_text()))


def outcomes() -> list[str]:
    return [call.outcome for call in nr.calls()]


# ---------------------------------------------------------------------------------------------
# Normalizers and ignores
# ---------------------------------------------------------------------------------------------


def test_a_prompt_with_the_time_replays_an_hour_later(
    client: openai.OpenAI, wire_server: WireServer, tmp_path: Path
) -> None:
    rules = {TIME: "<time>", DATE: "<date>"}
    with nr.recording("record", dir="recs", normalize=rules):
        recorded = ask(client, "It is 2026-12-01 10:15. What should I do next?")
    stored = only_file(tmp_path / "recs")
    # The file keeps the request as it was sent, and says which rules keyed it.
    assert stored["request"]["body"]["messages"][0]["content"] == "It is 2026-12-01 10:15. What should I do next?"
    assert stored["match"] == {"normalize": rules}

    wire_server.stop()
    with nr.recording("replay", dir="recs", normalize=rules):
        assert ask(client, "It is 2026-12-01 11:15. What should I do next?") == recorded
        assert ask(client, "It is 2026-12-02 09:05. What should I do next?") == recorded
    assert outcomes() == ["recorded", "replayed", "replayed"]


def test_a_changed_prompt_still_fails_to_replay(client: openai.OpenAI, wire_server: WireServer) -> None:
    with nr.recording("record", dir="recs"):
        ask(client, "It is 10:15. What should I do next?")
    wire_server.stop()
    # Defaults are strict: the time is part of the key.
    with nr.recording("replay", dir="recs"), pytest.raises(nr.RecordingNotFoundError):
        ask(client, "It is 11:15. What should I do next?")
    # A rule is narrow: with the time normalised, a changed word still misses.
    with nr.recording("replay", dir="recs", normalize={TIME: "<time>"}):
        ask(client, "It is 11:15. What should I do next?")
        with pytest.raises(nr.RecordingNotFoundError) as info:
            ask(client, "It is 11:15. What should I do now?")
    assert "matched under these rules: normalize={" in str(info.value)
    assert "look volatile" not in str(info.value)


def test_an_ignored_metadata_run_id(client: openai.OpenAI, wire_server: WireServer, tmp_path: Path) -> None:
    with nr.recording("record", dir="recs", ignore=["body.metadata.run_id"]):
        recorded = ask(client, "Hello", metadata={"run_id": "run-1f2e3d4c", "team": "docs"})
    assert only_file(tmp_path / "recs")["request"]["body"]["metadata"]["run_id"] == "run-1f2e3d4c"
    wire_server.stop()
    with nr.recording("replay", dir="recs", ignore="body.metadata.run_id"):
        assert ask(client, "Hello", metadata={"run_id": "run-99aa88bb", "team": "docs"}) == recorded
        assert ask(client, "Hello", metadata={"team": "docs"}) == recorded  # absent counts as ignored
        with pytest.raises(nr.RecordingNotFoundError) as info:  # only that field
            ask(client, "Hello", metadata={"run_id": "run-99aa88bb", "team": "ops"})
    assert "body.metadata.team: 'docs' -> 'ops'" in str(info.value)


def test_a_wildcard_ignores_a_field_of_every_list_item() -> None:
    rules = Rules.build(["body.messages[*].name", "body.tools[1]"])
    body = {"messages": [{"role": "user", "name": "a"}, {"role": "user", "name": "b"}], "tools": [1, 2, 3]}
    assert rules.apply("body", body) == {"messages": [{"role": "user"}, {"role": "user"}], "tools": [1, "<ignored>", 3]}
    assert body["messages"][0]["name"] == "a"  # the request itself is left alone


def test_a_callable_normalizer(client: openai.OpenAI, wire_server: WireServer, tmp_path: Path) -> None:
    def without_user(body: dict[str, Any]) -> dict[str, Any]:
        body.pop("user", None)
        return body

    with nr.recording("record", dir="recs", normalize=without_user):
        recorded = ask(client, "Hello", user="alice")
    assert only_file(tmp_path / "recs")["match"] == {"normalizer": f"{__name__}.{without_user.__qualname__}"}
    wire_server.stop()
    with nr.recording("replay", dir="recs", normalize=without_user):
        assert ask(client, "Hello", user="bob") == recorded
    # verify cannot run the callable, and says so instead of calling the name wrong.
    assert main(["verify", "recs"]) == 0


def test_tools_use_kwargs_paths_and_the_regex_normalizers(tmp_path: Path) -> None:
    calls: list[str] = []

    @nr.tool(provider="local", name="search")
    def search(query: str, request_id: str = "") -> str:
        calls.append(query)
        return f"results for {query}"

    rules: dict[str, Any] = {"ignore": ["kwargs.request_id"], "normalize": {DATE: "<date>"}}
    with nr.recording("record", dir="recs", **rules):
        search("news of 2026-12-01", request_id="r1")
    with nr.recording("replay", dir="recs", **rules):
        assert search("news of 2026-12-02", request_id="r2") == "results for news of 2026-12-01"
    assert calls == ["news of 2026-12-01"]
    # body. paths do not touch tools: strict on kwargs.
    with nr.recording("replay", dir="recs", ignore=["body.request_id"]), pytest.raises(nr.RecordingNotFoundError):
        search("news of 2026-12-01", request_id="r2")


def test_existing_recordings_are_found_when_a_rule_is_added(client: openai.OpenAI, wire_server: WireServer) -> None:
    with nr.recording("record", dir="recs"):  # recorded strictly, before anyone thought of rules
        recorded = [ask(client, "Summarise the news of 2026-12-01"), ask(client, "Summarise the news of 2026-12-01")]
    wire_server.stop()
    forget_indexes()
    with nr.recording("replay", dir="recs", normalize={DATE: "<date>"}):
        # Keyed under the new rule, the stored requests are found through the content index,
        # occurrences in order.
        assert [ask(client, "Summarise the news of 2026-12-08") for _ in range(2)] == recorded
    with nr.recording("replay", dir="recs"):  # and strictly, by name, as before
        assert ask(client, "Summarise the news of 2026-12-01") == recorded[0]


def test_the_missing_recording_error_teaches_the_rule(client: openai.OpenAI, wire_server: WireServer) -> None:
    with nr.recording("record", dir="recs"):
        ask(client, "Report for 2026-12-01", metadata={"request_id": "4f1c2a9e-1b7d-4e2a-9c3f-0a1b2c3d4e5f"})
    wire_server.stop()
    with nr.recording("replay", dir="recs"), pytest.raises(nr.RecordingNotFoundError) as info:
        ask(client, "Report for 2026-12-02", metadata={"request_id": "0d9e8f7a-6b5c-4d3e-8f2a-1b0c9d8e7f6a"})
    message = str(info.value)
    assert "differs only in strings that look volatile (a date, a UUID)" in message, message
    (line,) = [line.strip() for line in message.splitlines() if line.strip().startswith("nr.recording(..., normalize=")]
    assert "<date>" in line and "<uuid>" in line
    assert "%apirec replay --normalize '" in message
    # An id-like field may be left out instead; a prompt is only ever normalised.
    assert "nr.recording(..., ignore=['body.metadata.request_id'])" in message
    assert "%apirec replay --ignore body.metadata.request_id" in message
    assert "[tool.notebook-recorder.normalize]" in message

    # Following the advice works: the suggested rules find the recording.
    suggested = dict(re.findall(r'r"([^"]+)": "(<\w+>)"', line))
    with nr.recording("replay", dir="recs", normalize=suggested):
        ask(client, "Report for 2026-12-02", metadata={"request_id": "0d9e8f7a-6b5c-4d3e-8f2a-1b0c9d8e7f6a"})


def test_no_hint_when_more_than_volatile_strings_differ(client: openai.OpenAI, wire_server: WireServer) -> None:
    with nr.recording("record", dir="recs"):
        ask(client, "Report for 2026-12-01")
    wire_server.stop()
    with nr.recording("replay", dir="recs"), pytest.raises(nr.RecordingNotFoundError) as info:
        ask(client, "Summary for 2026-12-02")
    assert "volatile" not in str(info.value)


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


def test_an_invalid_regex_is_named() -> None:
    with pytest.raises(ValueError, match=r"normalize pattern '\(unclosed' is not a valid regular expression"):
        nr.recording("record", dir="recs", normalize={"(unclosed": "x"})


@pytest.mark.parametrize("path", ["metadata.run_id", "body..user", "body.messages[x]", "body", "body.a b"])
def test_a_bad_ignore_path_is_named(path: str) -> None:
    with pytest.raises(ValueError) as info:
        nr.recording("record", dir="recs", ignore=[path])
    assert f"ignore path {path!r}" in str(info.value)
    assert "body.metadata.run_id" in str(info.value) and "kwargs." in str(info.value)


def test_normalize_must_be_a_mapping_or_callable() -> None:
    with pytest.raises(TypeError, match="mapping of regular expression to replacement, or a callable"):
        nr.recording("record", dir="recs", normalize=42)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Magics
# ---------------------------------------------------------------------------------------------


def test_magic_flags(ip: InteractiveShell, client: openai.OpenAI, wire_server: WireServer, tmp_path: Path) -> None:
    ip.user_ns.update(c=client, ask=ask)
    flags = "--dir recs --normalize '\\d{2}:\\d{2}=<time>' --ignore body.metadata.run_id"
    ip.run_line_magic("apirec", f"record {flags}  # volatile parts")
    recorded = ip.run_cell("ask(c, 'It is 10:15', metadata={'run_id': 'a'})").result
    assert only_file(tmp_path / "recs")["match"] == {"ignore": ["body.metadata.run_id"], "normalize": {TIME: "<time>"}}
    wire_server.stop()
    ip.run_line_magic("apirec", f"replay {flags}")
    state = ip.magics_manager.registry["ApiRecMagics"].state()
    assert re.search(r"match:\s+ignore=\['body.metadata.run_id'\] normalize=\{", state), state
    result = ip.run_cell("ask(c, 'It is 11:45', metadata={'run_id': 'b'})")
    assert result.error_in_exec is None and result.result == recorded
    # A %%apirec cell adds to its session's rules.
    ip.run_line_magic("apirec", "replay --dir recs --ignore body.metadata.run_id")
    cell = "%%apirec replay --normalize '\\d{2}:\\d{2}=<t2>'\nask(c, 'It is 12:00', metadata={'run_id': 'c'})"
    result = ip.run_cell(cell)
    assert result.error_in_exec is None and result.result == recorded


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("--normalize nothing-to-split", "expected PATTERN=REPLACEMENT"),
        ("--normalize '(=x'", "normalize pattern '(' is not a valid regular expression"),
        ("--ignore run_id", "ignore path 'run_id' is not a request path"),
    ],
)
def test_magic_flag_errors(ip: InteractiveShell, flags: str, expected: str) -> None:
    with pytest.raises(UsageError, match=re.escape(expected)):
        ip.run_line_magic("apirec", f"record --dir recs {flags}")


def test_magic_help_documents_the_flags(ip: InteractiveShell) -> None:
    doc = ip.find_line_magic("apirec").__doc__ or ""
    assert "--ignore PATH" in doc and "--normalize PATTERN=REPLACEMENT" in doc and "[tool.notebook-recorder]" in doc


# ---------------------------------------------------------------------------------------------
# pyproject.toml
# ---------------------------------------------------------------------------------------------

PYPROJECT = """\
[project]
name = "demo"

[tool.notebook-recorder]
dir = "recorded"
ignore = ["body.metadata.run_id"]

[tool.notebook-recorder.normalize]
'\\d{2}:\\d{2}' = "<time>"
"""


def test_the_project_table_is_honoured_in_process(
    client: openai.OpenAI, wire_server: WireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")  # found by walking up
    with nr.recording("record"):  # no dir: the project's
        recorded = ask(client, "It is 10:15", metadata={"run_id": "one"})
    expected = {"ignore": ["body.metadata.run_id"], "normalize": {TIME: "<time>"}}
    assert only_file(tmp_path / "recorded")["match"] == expected
    wire_server.stop()
    # Explicit rules add to the project's.
    with nr.recording("replay"):
        assert ask(client, "It is 23:59", metadata={"run_id": "three"}) == recorded
    # Explicit rules add to the project's.
    with nr.recording("replay", normalize={"noon": "<time>"}) as recorder:
        assert recorder.rules.ignore == ("body.metadata.run_id",)
        assert recorder.rules.normalize == ((TIME, "<time>"), ("noon", "<time>"))
        assert ask(client, "It is noon", metadata={"run_id": "four"}) == recorded
    out = subprocess.run(
        [sys.executable, "-m", "notebook_recorder.cli", "verify", str(tmp_path / "recorded")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    ).stdout
    rules = "ignore=['body.metadata.run_id'] normalize={'\\\\d{2}:\\\\d{2}': '<time>'}"
    assert f"recorded under match rules: 1 file {rules}" in out
    assert "OK: 1 file, no problems" in out


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('ignores = ["body.user"]', "unknown key(s) ignores; valid keys: dir, ignore, normalize"),
        ('ignore = ["user"]', "ignore path 'user' is not a request path"),
        ("[tool.notebook-recorder.normalize]\n'(' = 'x'", "normalize pattern '(' is not a valid regular expression"),
        ('normalize = ["x"]', "normalize must be a table of 'PATTERN' = \"REPLACEMENT\""),
    ],
)
def test_a_malformed_project_table_names_the_file(tmp_path: Path, table: str, expected: str) -> None:
    (tmp_path / "pyproject.toml").write_text(f"[tool.notebook-recorder]\n{table}\n")
    with pytest.raises(ValueError) as info:
        nr.recording("record")
    assert str(tmp_path / "pyproject.toml") in str(info.value) and expected in str(info.value)


def test_the_project_config_is_cached_by_mtime(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.notebook-recorder]\nignore = ["body.user"]\n')
    assert _config.project_config(tmp_path).rules.ignore == ("body.user",)
    pyproject.write_text('[tool.notebook-recorder]\nignore = ["body.metadata"]\n')
    os.utime(pyproject, ns=(1, 1))
    assert _config.project_config(tmp_path).rules.ignore == ("body.metadata",)
    assert _config.project_config(tmp_path) is _config.project_config(tmp_path / "nested" / "x")


NOTEBOOK_CELLS = [
    "%load_ext notebook_recorder\n%apirec record-if-missing",
    "import os\nimport openai\n"
    "client = openai.OpenAI(base_url=os.environ['WIRE_BASE_URL'], api_key=os.environ['WIRE_API_KEY'], max_retries=0)",
    "prompt = f\"It is {os.environ['WHEN']}. What next?\"\n"
    "print(client.chat.completions.create(model='gpt-4o', messages=[{'role': 'user', 'content': prompt}])"
    ".choices[0].message.content[:20])",
]


@pytest.mark.frontend
@pytest.mark.timeout(300)
def test_the_project_table_is_honoured_by_notebook_recorder_run(wire_server: WireServer, tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    (tmp_path / "notebooks").mkdir()
    notebook = tmp_path / "notebooks" / "clock.ipynb"
    nb = new_notebook()
    nb.cells = [new_code_cell(source) for source in NOTEBOOK_CELLS]
    nbformat.write(nb, notebook)

    def run(mode: str, when: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("APIREC_MODE", "APIREC_DIR", "OPENAI_API_KEY")}
        env.update(PYTHONPATH=str(REPO), WIRE_BASE_URL=wire_server.base_url, WIRE_API_KEY=TEST_API_KEY, WHEN=when)
        return subprocess.run(
            [sys.executable, "-m", "notebook_recorder.cli", "run", str(notebook), "--mode", mode],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )

    result = run("record", "10:15")
    assert result.returncode == 0, result.stdout + result.stderr
    # The project's dir, per notebook, as recordings/<stem>/ would be.
    stored = only_file(tmp_path / "recorded" / "clock")
    assert stored["request"]["body"]["messages"][0]["content"] == "It is 10:15. What next?"
    wire_server.stop()
    result = run("replay", "11:15")
    assert result.returncode == 0, result.stdout + result.stderr
    result = run("replay", "11:15 tomorrow")  # not only the time: strict again
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Requests are matched under these rules: ignore=['body.metadata.run_id']" in result.stderr  # failures
    assert "No recording of POST /v1/chat/completions" in result.stderr


def test_a_cell_keeps_the_session_callable_and_adds_its_flags(
    ip: InteractiveShell, client: openai.OpenAI, wire_server: WireServer
) -> None:
    def without_user(body: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in body.items() if k != "user"}

    with nr.recording("record", dir="recs"):
        recorded = ask(client, "It is 10:15", user="alice")
    wire_server.stop()
    nr.start("replay", dir="recs", normalize=without_user)
    ip.user_ns.update(c=client, ask=ask)
    result = ip.run_cell("%%apirec replay --normalize '\\d{2}:\\d{2}=<t>'\nask(c, 'It is 11:15', user='bob')")
    assert result.error_in_exec is None and result.result == recorded


def test_verify_reports_a_malformed_match_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with nr.recording("record", dir="recs"):
        nr.tool(lambda q: q, provider="p", name="echo")(q="x")
    (path,) = (tmp_path / "recs").glob("*.json")
    path.write_text(json.dumps({**json.loads(path.read_text()), "match": {"ignore": ["nope"]}}))
    assert main(["verify", "recs"]) == 1
    assert "invalid match fields (1):" in capsys.readouterr().out
    # Replay does not read a file's rules: it keys stored requests under the rules in force.
    with nr.recording("replay", dir="recs"):
        assert nr.tool(lambda q: q, provider="p", name="echo")(q="x") == "x"


def test_verify_never_runs_a_pattern_that_comes_from_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hostile = "(a+)+$"  # catastrophic backtracking on "aaaa...!"
    with nr.recording("record", dir="recs"):
        nr.tool(lambda q: q, provider="p", name="echo")(q="a" * 60 + "!")
    (path,) = (tmp_path / "recs").glob("*.json")
    path.write_text(json.dumps({**json.loads(path.read_text()), "match": {"normalize": {hostile: "x"}}}))
    assert main(["verify", "recs"]) == 0  # returns at once: the pattern is not run
    out = capsys.readouterr().out
    assert "1 file(s) were keyed with normalize patterns that the nearest pyproject.toml's" in out
    # The project's own patterns are run, and the names checked.
    (tmp_path / "pyproject.toml").write_text("[tool.notebook-recorder.normalize]\n'\\d+' = '<n>'\n")
    with nr.recording("record", dir="recs2"):
        nr.tool(lambda q: q, provider="p", name="echo")(q="take 5")
    (path,) = (tmp_path / "recs2").glob("*.json")
    path.rename(path.with_name("0" * 64 + ".json"))
    assert main(["verify", "recs2"]) == 1
    assert "names that are not their key (1)" in capsys.readouterr().out
