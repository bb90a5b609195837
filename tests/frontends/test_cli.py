"""The ``notebook-recorder`` command, through its real entry points.

Quick subcommands run in-process through ``main([...])`` with captured output; ``--help``, a usage
error and everything that starts a kernel (``run``, ``prune``) run as real subprocesses
(``python -m notebook_recorder.cli``), with ``PYTHONPATH`` set so that kernels import the package.
"""

from __future__ import annotations

import json
import os
import pprint
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from wire_server import TEST_API_KEY, WireServer

import notebook_recorder as nr
from notebook_recorder.core._codec import dumps, loads
from notebook_recorder.core._keys import record_key
from notebook_recorder.frontends.cli.main import main
from notebook_recorder.frontends.notebooks._comparison import sanitize

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "llama-stack"
RESPONSES_HEAD = FIXTURES / "head" / "tests" / "integration" / "responses" / "recordings"
RESPONSES_OCT = FIXTURES / "oct2025" / "tests" / "integration" / "responses" / "recordings"
# A streamed gpt-4o chat completion: "The latest stable version of Python is Python 3.14.2."
CHAT = RESPONSES_HEAD / "a0f44dc55467d39c2ec99aac1fae3ba013304ede01a28ab1fa685d11d580f0ef.json"
CHAT_ANSWER = "The latest stable version of Python is Python 3.14.2."
# Another streamed gpt-4o chat completion (the knowledge_search conversation).
CHAT_2 = RESPONSES_OCT / "1b0c005eb4b93c22ec7211904cab5145194ec832d8e436fee11599c1c2d80fd8.json"
# A tavily web_search tool recording (its result type is llama-stack's, unknown here).
TOOL = RESPONSES_OCT / "42c357284497af596ae6c9341b0c189daa31e88b25d0381a985f24203b7a5a38.json"
# An API error recording (400 BadRequestError).
ERROR = RESPONSES_HEAD / "b1cfdb1438921e88911a03e8cbc0f919b669f6d0c816fc246f00b437d151ef53.json"
# A raw HTTP recording (no request body to key).
RAW = (
    FIXTURES
    / "head/tests/integration/messages/recordings/2a5f7014ddf9a3d359fbf59a195e4762d47ef1768f98b2f1c7af55788e7fe6d8.json"
)
VOLATILE = REPO / "tests" / "notebooks_cli" / "volatile.ipynb"

SUBCOMMANDS = ("run", "ls", "show", "verify", "import", "prune", "diff")


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def cli(
    *args: str | Path, cwd: Path | None = None, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The command as a subprocess; kernels it starts import this checkout too. ``env`` adds variables."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "notebook_recorder.cli", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_main(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    """``main([...])`` in this process: (exit status, stdout, stderr)."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def import_files(capsys: pytest.CaptureFixture[str], dest: Path, *files: Path, scope: str | None = None) -> None:
    extra = ["--scope", scope] if scope is not None else []
    code, out, _ = run_main(capsys, "import", *files, dest, *extra)
    assert code == 0, out


def chat_notebook(path: Path, request_file: Path = CHAT) -> Path:
    """A notebook that re-issues exactly the request of ``request_file`` and prints the stream."""
    body = loads(request_file.read_bytes())["request"]["body"]
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("A streamed chat completion, replayed."),
        # no --dir: `run` tells the magic which notebook this is, so it uses recordings/demo/
        nbformat.v4.new_code_cell("%load_ext notebook_recorder\n%apirec record-if-missing --scope demo"),
        nbformat.v4.new_code_cell("import openai\n\nimport notebook_recorder as nr"),
        nbformat.v4.new_code_cell("body = " + pprint.pformat(body, width=100)),
        nbformat.v4.new_code_cell(
            "client = openai.OpenAI()\n"
            "for chunk in client.chat.completions.create(**body):\n"
            "    if chunk.choices and chunk.choices[0].delta.content:\n"
            '        print(chunk.choices[0].delta.content, end="", flush=True)\n'
            "print()"
        ),
        nbformat.v4.new_code_cell("[call.outcome for call in nr.calls()]"),
    ]
    nbformat.write(nb, path)
    return path


def assert_usage_error(code: int, err: str) -> None:
    assert code == 2
    assert "usage: notebook-recorder" in err
    assert "Traceback" not in err


# ---------------------------------------------------------------------------------------------
# help and usage errors
# ---------------------------------------------------------------------------------------------


def test_help_lists_every_subcommand() -> None:
    result = cli("--help")
    assert result.returncode == 0
    for name in SUBCOMMANDS:
        assert f"\n    {name} " in result.stdout


def test_run_help_documents_the_sanitisers(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "run", "--help")
    assert code == 0
    for rule in ("memory addresses", "durations", "absolute paths", "uuids", "timestamps", "ignore-output"):
        assert rule in out


def test_no_subcommand_is_a_usage_error_without_traceback() -> None:
    result = cli()
    assert_usage_error(result.returncode, result.stderr)
    result = cli("ls", "/no/such/directory")
    assert_usage_error(result.returncode, result.stderr)
    assert "no such directory" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["frobnicate"],
        ["ls"],
        ["ls", "{missing}"],
        ["ls", "{file}"],
        ["ls", "{dir}", "--sort", "colour"],
        ["show"],
        ["show", "not-a-key!"],
        ["show", "abcd", "--dir", "{missing}"],
        ["verify"],
        ["verify", "{missing}"],
        ["import", "{dir}"],
        ["import", "{missing}", "{dir}"],
        ["import", "{dir}", "{file}"],
        ["prune", "{dir}"],
        ["prune", "{dir}", "--used-by", "{missing}.ipynb"],
        ["run"],
        ["run", "{missing}.ipynb"],
        ["run", "{file}"],
        ["run", "{nb}", "--mode", "sometimes"],
        ["run", "{nb}", "--timeout", "-1"],
        ["run", "{nb}", "--timeout", "soon"],
    ],
)
def test_bad_arguments_are_usage_errors(args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file.json").write_text("{}")
    (tmp_path / "nb.ipynb").write_text(nbformat.writes(nbformat.v4.new_notebook()))
    values = {
        "missing": str(tmp_path / "missing"),
        "file": str(tmp_path / "file.json"),
        "dir": str(tmp_path),
        "nb": str(tmp_path / "nb.ipynb"),
    }
    code, _, err = run_main(capsys, *[a.format(**values) for a in args])
    assert_usage_error(code, err)


# ---------------------------------------------------------------------------------------------
# ls and show
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A copy of the llama-stack sample."""
    return Path(shutil.copytree(FIXTURES, tmp_path / "llama-stack"))


def test_ls_lists_the_llama_stack_sample(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "ls", corpus)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["KEY", "OCC", "KIND", "ENDPOINT/TOOL", "MODEL", "STREAM", "CHUNKS", "SIZE", "TEST_ID"]
    total = len(list(corpus.rglob("*.json")))
    rows = lines[1 : 1 + total]
    assert all(len(row.split()) >= 9 for row in rows)
    assert lines[1 + total] == ""
    assert lines[-1].startswith(f"{total} recordings")
    assert "named other than their key" in lines[-1]
    keys = [row.split()[0].rstrip("*") for row in rows if not row.startswith("-")]
    assert keys == sorted(keys)
    text = "\n".join(rows)
    for expected in (
        "/v1/chat/completions",
        "gpt-4o",
        "tavily/web_search",
        "http",
        "exception",
        "model_list",
        "/v1/models",
    ):
        assert expected in text
    chat_row = next(row for row in rows if row.startswith(record_key(loads(CHAT.read_bytes()))[:12]))
    assert chat_row.split()[1:7] == ["1", "inference", "/v1/chat/completions", "gpt-4o", "yes", "18"]


def test_ls_sort_and_full(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "ls", corpus / "head", "--sort", "size", "--full")
    assert code == 0
    rows = [line for line in out.splitlines()[1:] if line and not line[0].isdigit()]
    assert rows[0].split()[-1].endswith(".json")  # the FILE column
    key = record_key(loads(CHAT.read_bytes()))
    assert key in out  # full keys


def test_ls_of_an_empty_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "ls", tmp_path)
    assert code == 0
    assert "no recordings" in out


def test_show_a_file_prints_the_conversation_and_the_streamed_answer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_main(capsys, "show", CHAT_2)
    assert code == 0
    assert "How many experts does the Llama 4 Maverick model have?" in out
    assert "knowledge_search" in out  # the tool call
    assert "The Llama 4 Maverick model has 128 experts" in out  # the streamed answer


def test_show_by_key_and_prefix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "recordings"
    import_files(capsys, dest, CHAT, CHAT_2, TOOL, ERROR)
    key = record_key(loads(CHAT.read_bytes()))
    code, out, _ = run_main(capsys, "show", key, "--dir", dest)
    assert code == 0 and CHAT_ANSWER in out
    code, out, _ = run_main(capsys, "show", key[:8], "--dir", dest)
    assert code == 0 and CHAT_ANSWER in out
    tool_key = record_key(loads(TOOL.read_bytes()))
    code, out, _ = run_main(capsys, "show", tool_key[:10], "--dir", dest)
    assert code == 0 and "web_search" in out and "Llama 4 Maverick model experts" in out
    error_key = record_key(loads(ERROR.read_bytes()))
    code, out, _ = run_main(capsys, "show", error_key[:10], "--dir", dest)
    assert code == 0 and "BadRequestError" in out
    code, out, err = run_main(capsys, "show", "ffffffffffff", "--dir", dest)
    assert code == 1 and "no recording" in err and not out  # errors go to stderr
    code, out, _ = run_main(capsys, "show", f"{key}.json", "--dir", dest)  # a file name works too
    assert code == 0 and CHAT_ANSWER in out


def test_show_ambiguous_prefix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = CHAT.read_bytes()
    (tmp_path / f"abcd1{'0' * 59}.json").write_bytes(data)
    (tmp_path / f"abcd2{'0' * 59}.json").write_bytes(data)
    code, _, err = run_main(capsys, "show", "abcd", "--dir", tmp_path)
    assert code == 1
    assert "2 recordings" in err and "abcd1" in err and "abcd2" in err
    code, out, _ = run_main(capsys, "show", "abcd2", "--dir", tmp_path)
    assert code == 0 and CHAT_ANSWER in out


# ---------------------------------------------------------------------------------------------
# verify
# ---------------------------------------------------------------------------------------------


def test_verify_reports_the_llama_stack_samples_stale_names(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "verify", corpus)
    assert code == 1
    assert "names that are not their key" in out
    stale = CHAT.relative_to(FIXTURES)
    assert f"{stale}: its key is {record_key(loads(CHAT.read_bytes()))}" in out
    assert "duplicate keys" in out  # the same request recorded in both generations
    assert "ollama._types.GenerateResponse is not on the allowlist" in out  # a known foreign type: a note
    assert "model lists share key" in out  # a note, not a problem
    assert err.startswith("FAILED:")


def test_verify_notes_known_foreign_types_and_strict_fails_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import_files(capsys, tmp_path, TOOL)  # its result is a llama_stack type, known and never imported
    code, out, _ = run_main(capsys, "verify", tmp_path)
    assert code == 0, out
    assert "llama_stack.apis.tools.tools.ToolInvocationResult is not on the allowlist" in out
    assert "a known foreign type" in out
    assert out.rstrip().splitlines()[-1] == "OK: 1 file, no problems"
    code, out, _ = run_main(capsys, "verify", tmp_path, "--strict")
    assert code == 1 and "unknown __type__s (1):" in out
    code, out, _ = run_main(capsys, "verify", tmp_path, "--strict", "--allow-unknown-types")
    assert code == 0
    assert out.rstrip().splitlines()[-1] == "OK: 1 file, no problems"
    code, out, _ = run_main(capsys, "verify", tmp_path, "--strict", "--allow-type", "llama_stack.apis.*")
    assert code == 0 and "ToolInvocationResult" not in out


def test_verify_passes_on_an_imported_directory_and_reports_planted_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean = tmp_path / "clean"
    import_files(capsys, clean, CHAT, CHAT_2, ERROR)
    code, out, _ = run_main(capsys, "verify", clean)
    assert code == 0, out
    assert out.rstrip().splitlines()[-1] == "OK: 3 files, no problems"

    base = loads(CHAT.read_bytes())

    def plant(record: dict, name: str | None = None) -> None:
        key = record_key(record)
        (clean / f"{name or key}.json").write_bytes(dumps(record))

    secret = "sk-" + "A1b2C3d4E5" * 3
    leaked = json.loads(json.dumps(base))
    leaked["request"]["body"]["messages"][0]["content"] = f"my key is {secret}"
    plant(leaked)
    headers = json.loads(json.dumps(base))
    headers["request"]["body"]["messages"][0]["content"] = "with headers"
    headers["request"]["headers"] = {"Authorization": "Bearer abcdefgh12345678"}
    plant(headers)
    credential = json.loads(json.dumps(base))
    credential["request"]["body"]["api_key"] = "hunter2-hunter2"
    plant(credential)
    unknown = json.loads(json.dumps(base))
    unknown["test_id"] = "unknown-type"
    unknown["response"]["body"][0]["__type__"] = "nowhere.to_be.Found"
    plant(unknown)
    plant(base, name="0" * 64)  # a name that is not its key, and a second file with that key
    (clean / "broken.json").write_text("{not json")

    code, out, err = run_main(capsys, "verify", clean)
    assert code == 1
    sections = out.split("\n\n")
    titles = [section.splitlines()[0] for section in sections[1:-1]]
    assert titles == [
        "unreadable files (1):",
        "names that are not their key (1):",
        "duplicate keys (1):",
        "unknown __type__s (1):",
        "possible leaked credentials (4):",
    ]
    assert "nowhere.to_be.Found" in out
    assert "OpenAI-style API key sk-A1b2" in out and secret not in out  # masked
    assert "request.headers is not empty (Authorization)" in out
    assert "Bearer token" in out
    assert "request.body.api_key holds a value under a credential name" in out
    assert err.startswith("FAILED: 8 problem(s) in 9 files")


# ---------------------------------------------------------------------------------------------
# import
# ---------------------------------------------------------------------------------------------


def test_import_twice_is_idempotent(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "imported"
    code, out, _ = run_main(capsys, "import", corpus, dest)
    assert code == 0
    summary = out.splitlines()[-1]
    imported = int(summary.split()[0])
    assert imported > 80
    assert "skipped" in summary and "no keyable request" in out and "same key as" in out
    files = sorted(dest.iterdir())
    snapshot = {f.name: f.read_bytes() for f in files}
    assert len(files) == imported
    for file in files:
        assert file.name == f"{record_key(loads(file.read_bytes()))}.json"
        assert file.read_bytes().startswith(b'{\n  "')  # 2-space indented JSON

    code, out, _ = run_main(capsys, "import", corpus, dest)
    assert code == 0
    assert out.splitlines()[-1].startswith(f"0 imported, 0 updated, {imported} unchanged,")
    assert {f.name: f.read_bytes() for f in sorted(dest.iterdir())} == snapshot

    code, out, _ = run_main(capsys, "verify", dest)
    assert "names that are not their key" not in out
    assert "duplicate keys" not in out


def test_import_with_scope(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "scoped"
    import_files(capsys, dest, CHAT, TOOL, scope="notebooks/demo.ipynb")
    records = [loads(f.read_bytes()) for f in sorted(dest.iterdir())]
    assert len(records) == 2
    assert {r["test_id"] for r in records} == {"notebooks/demo.ipynb"}
    tool = next(r for r in records if "tool_name" in r["request"])
    assert tool["request"]["test_id"] == "notebooks/demo.ipynb"
    chat = next(r for r in records if "body" in r["request"])
    assert chat["request"]["endpoint"] == "/v1/chat/completions"
    assert record_key(chat) != record_key(loads(CHAT.read_bytes()))  # the scope is in the key

    unscoped = tmp_path / "unscoped"
    import_files(capsys, unscoped, CHAT, scope="none")
    (only,) = unscoped.iterdir()
    assert loads(only.read_bytes())["test_id"] is None


def test_import_notes_what_it_skips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("[1, 2")
    code, out, _ = run_main(capsys, "import", RAW, broken, CHAT, tmp_path / "dest")
    assert code == 0
    assert f"skipped    {RAW}" not in out  # a raw HTTP recording is keyed as an HTTP-level one now
    assert f"skipped    {broken}: not valid JSON" in out
    assert out.splitlines()[-1] == "2 imported, 0 updated, 0 unchanged, 1 skipped"


# ---------------------------------------------------------------------------------------------
# run and prune: real kernels
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def replay_notebook(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A notebook beside recordings/demo/, which holds the one recording it replays."""
    import_files(capsys, tmp_path / "recordings" / "demo", CHAT, scope="demo")
    return chat_notebook(tmp_path / "demo.ipynb")


@pytest.mark.frontend
def test_run_check_passes_then_fails_on_changed_output_then_on_missing_recording(replay_notebook: Path) -> None:
    nb_path = replay_notebook
    result = cli("run", nb_path, "--output", nb_path)  # store the outputs
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[1/5] cell 2 ok" in result.stdout
    assert "[4/5] cell 5 ok" in result.stdout
    assert "demo.ipynb: 5 code cells, 1 call replayed from 1 file" in result.stdout
    stored = nbformat.read(nb_path, as_version=4)
    # one merged stream output; the magic's note, tagged as its own, shows it found
    # recordings/<notebook stem>/
    assert stored.cells[4].outputs == [
        {"name": "stdout", "output_type": "stream", "text": f"{CHAT_ANSWER}\n"},
        {
            "output_type": "display_data",
            "data": {"text/plain": "apirec: replayed 1 call from recordings/demo"},
            "metadata": {"notebook_recorder": {"role": "note"}},
        },
    ]
    assert stored.cells[5].outputs[0]["data"]["text/plain"] == "['replayed']"

    result = cli("run", nb_path, "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("outputs match")

    stored.cells[4].outputs[0]["text"] = "The latest stable version of Python is Python 2.7.\n"
    nbformat.write(stored, nb_path)
    result = cli("run", nb_path, "--check")
    assert result.returncode == 1
    assert "cell 5, execution count 4: outputs differ" in result.stdout
    assert "  -The latest stable version of Python is Python 2.7." in result.stdout
    assert f"  +{CHAT_ANSWER}" in result.stdout
    assert "FAILED demo.ipynb: 1 cell(s) with different outputs" in result.stderr

    for recording in (nb_path.parent / "recordings" / "demo").iterdir():
        recording.unlink()
    result = cli("run", nb_path, "--check")
    assert result.returncode == 1
    out = result.stdout + result.stderr
    assert "[4/5] cell 5 FAILED: missing-recording" in result.stdout
    assert "FAILED demo.ipynb, cell 5: a call has no recording" in out
    assert "No recording of POST /v1/chat/completions (model gpt-4o)" in out
    assert "record-if-missing" in out
    assert f"notebook-recorder run {nb_path} --mode record-if-missing" in out
    assert "[5/5]" not in out  # the run stops at the failing cell
    assert "Traceback" not in result.stderr


# A notebook as the README has it: the session in record-if-missing (with a trailing comment), a
# plain call, a %%apirec cell that streams, the status table and the state.
RECORDED_NOTEBOOK = [
    "%load_ext notebook_recorder",
    "%apirec record-if-missing   # the whole session: record what is missing, replay the rest",
    "import openai\n\nclient = openai.OpenAI(max_retries=0)",
    "reply = client.chat.completions.create(\n"
    '    model="gpt-4o", messages=[{"role": "user", "content": "What is the latest Python?"}]\n)\n'
    "print(reply.choices[0].message.content)",
    "%%apirec record-if-missing  # this cell only\n"
    "stream = client.chat.completions.create(\n"
    '    model="gpt-4o", messages=[{"role": "user", "content": "Say it token by token"}], stream=True\n)\n'
    "for chunk in stream:\n"
    "    if chunk.choices:\n"
    '        print(chunk.choices[0].delta.content or "", end="")\n'
    "print()",
    "%apirec status",
    "%apirec",
]


@pytest.mark.frontend
def test_a_notebook_saved_from_any_mode_passes_a_replay_check(tmp_path: Path) -> None:
    """`run --mode record --output`, then `run --mode replay --check` with no server and no key;
    likewise for record-if-missing and replay. The notes and tables that say recorded in one run
    and replayed in the other are no difference; a changed output of the user's code is."""
    from wire_server import TEST_API_KEY, WireServer

    notebooks = {name: tmp_path / name / "nb.ipynb" for name in ("record", "rim", "replay")}
    for path in notebooks.values():
        path.parent.mkdir()
        nbformat.write(nbformat.v4.new_notebook(cells=list(map(nbformat.v4.new_code_cell, RECORDED_NOTEBOOK))), path)

    with WireServer() as server:
        online = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": TEST_API_KEY}
        result = cli("run", notebooks["record"], "--mode", "record", "--output", notebooks["record"], env=online)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "nb.ipynb: 7 code cells, 2 calls recorded from 2 files" in result.stdout
        recordings = sorted((tmp_path / "record" / "recordings" / "nb").iterdir())
        assert len(recordings) == 2
        # record-if-missing with one of the two already recorded: it replays one, records one.
        (tmp_path / "rim" / "recordings" / "nb").mkdir(parents=True)
        shutil.copy(recordings[0], tmp_path / "rim" / "recordings" / "nb")
        result = cli("run", notebooks["rim"], "--mode", "record-if-missing", "--output", notebooks["rim"], env=online)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "2 calls (1 recorded, 1 replayed)" in result.stdout
        served = len(server.requests)
        assert served == 3
        shutil.copytree(tmp_path / "record" / "recordings", tmp_path / "replay" / "recordings")
    assert not server.running
    offline = {"OPENAI_BASE_URL": server.base_url}  # stopped: a call that is not replayed fails
    result = cli("run", notebooks["replay"], "--output", notebooks["replay"], env=offline)
    assert result.returncode == 0, result.stdout + result.stderr

    stored = nbformat.read(notebooks["record"], as_version=4)
    notes = [o for cell in stored.cells for o in cell.outputs if "notebook_recorder" in o.get("metadata", {})]
    assert any("recorded 1 call" in o.data["text/plain"] for o in notes)
    assert any("apirec-status" in o.data.get("text/html", "") for o in notes)
    assert not any("apirec:" in o.get("text", "") for cell in stored.cells for o in cell.outputs)

    # JupyterLab and VS Code keep output metadata but may rewrite the rest: a saved round trip.
    saved = tmp_path / "replay" / "saved.ipynb"
    nbformat.write(nbformat.reads(json.dumps(json.loads(notebooks["replay"].read_text())), as_version=4), saved)
    (tmp_path / "replay" / "recordings" / "saved").symlink_to("nb")

    result = cli("run", *notebooks.values(), saved, "--check", env=offline)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert out.count("outputs match") == 4
    assert "4 notebooks: 4 passed, 0 failed" in out

    # Outputs stored by an older version, with the notes as stdout: the check says what to do.
    legacy = nbformat.read(notebooks["replay"], as_version=4)
    for cell in legacy.cells:
        cell.outputs = [
            nbformat.v4.new_output("stream", name="stdout", text=o.data["text/plain"] + "\n")
            if o.get("metadata", {}).get("notebook_recorder", {}).get("role") == "note"
            else o
            for o in cell.outputs
        ]
    nbformat.write(legacy, notebooks["replay"])
    result = cli("run", notebooks["replay"], "--check", env=offline)
    assert result.returncode == 1
    assert "  -apirec: replayed 1 call from recordings/nb" in result.stdout
    assert "the stored outputs hold notebook-recorder's notes as plain output" in result.stdout
    assert f"notebook-recorder run {notebooks['replay']} --output {notebooks['replay']}" in result.stdout

    # A real difference in the user's own output still fails, with a diff of that cell alone.
    cell = stored.cells[3]
    (stdout,) = [o for o in cell.outputs if o.output_type == "stream"]
    stdout["text"] = "Python 2.7 is the latest.\n"
    nbformat.write(stored, notebooks["record"])
    result = cli("run", notebooks["record"], "--check", env=offline)
    out = result.stdout
    assert result.returncode == 1, out
    assert "cell 4, execution count 4: outputs differ" in out
    assert "  -Python 2.7 is the latest." in out
    assert "FAILED nb.ipynb: 1 cell(s) with different outputs" in result.stderr
    assert "apirec" not in out.split("outputs differ", 1)[1].split("FAILED", 1)[0]  # no note in the diff
    assert "older version" not in out


@pytest.mark.frontend
def test_run_check_sanitises_volatile_outputs_and_reports_real_differences(tmp_path: Path) -> None:
    same = shutil.copy(VOLATILE, tmp_path / "volatile.ipynb")
    changed_nb = nbformat.read(VOLATILE, as_version=4)
    html_cell = next(c for c in changed_nb.cells if "HTML(" in c.source)
    html_cell.outputs[0]["data"]["text/html"] = html_cell.outputs[0]["data"]["text/html"].replace("gpt-4o", "gpt-5")
    changed = tmp_path / "changed.ipynb"
    nbformat.write(changed_nb, changed)

    result = cli("run", same, changed, "--check", "--output", tmp_path / "out")
    out = result.stdout
    assert result.returncode == 1
    assert "volatile.ipynb: 9 code cells, no recorded calls" in out
    assert "changed.ipynb: 9 code cells, no recorded calls" in out
    assert "[9/9] cell 10 ok (raised, as tagged)" in out
    first, second = out.split("\n\n")[:2]
    assert first.rstrip().endswith("outputs match")
    assert "cell 7, execution count 6: outputs differ" in second
    assert "  -gpt-5  2" in second and "  +gpt-4o  2" in second
    assert out.rstrip().splitlines()[-1] == "2 notebooks: 1 passed, 1 failed"
    assert result.stderr.rstrip().splitlines()[-1] == "failed: changed.ipynb"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["changed.ipynb", "volatile.ipynb"]


@pytest.mark.frontend
def test_run_fails_on_a_cell_error_without_check(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("print('before')"),
        nbformat.v4.new_code_cell("def divide():\n    return 1 / 0\n\ndivide()"),
        nbformat.v4.new_code_cell("print('never')"),
    ]
    path = tmp_path / "broken.ipynb"
    nbformat.write(nb, path)
    out_dir = tmp_path / "executed"
    result = cli("run", path, "--output", out_dir / "broken.ipynb")
    assert result.returncode == 1
    assert "[2/3] cell 2 FAILED: error" in result.stdout
    assert "FAILED broken.ipynb, cell 2 raised ZeroDivisionError: division by zero" in result.stderr
    assert "  | ZeroDivisionError: division by zero" in result.stderr  # the traceback summary
    assert "never" not in result.stdout
    executed = nbformat.read(out_dir / "broken.ipynb", as_version=4)
    assert executed.cells[0].outputs[0]["text"] == "before\n"


@pytest.mark.frontend
def test_run_check_without_stored_outputs_and_a_cell_timeout(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")]), fresh)
    slow = tmp_path / "slow.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import time\ntime.sleep(30)")]), slow)
    result = cli("run", fresh, slow, "--check", "--timeout", "1")
    assert result.returncode == 1
    assert "FAILED fresh.ipynb: the notebook has no stored outputs to check against" in result.stderr
    assert f"store them with: notebook-recorder run {fresh} --output {fresh}" in result.stderr
    assert "FAILED slow.ipynb, cell 1: CellTimeoutError: no reply within 1.0 s" in result.stderr
    assert result.stdout.rstrip().splitlines()[-1] == "2 notebooks: 0 passed, 2 failed"
    assert result.stderr.rstrip().splitlines()[-1] == "failed: fresh.ipynb, slow.ipynb"


def test_run_reports_a_kernel_that_cannot_start(tmp_path: Path) -> None:
    path = tmp_path / "any.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]), path)
    result = cli("run", path, "--kernel", "no-such-kernel")
    assert result.returncode == 1
    assert "cannot start kernel 'no-such-kernel'" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.frontend
def test_prune_lists_then_deletes_unused_recordings(replay_notebook: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = replay_notebook.parent / "recordings"
    import_files(capsys, directory / "demo", CHAT_2, scope="demo")  # never replayed by the notebook
    used = directory / "demo" / f"{record_key({**loads(CHAT.read_bytes()), 'test_id': 'demo'})}.json"
    unused = directory / "demo" / f"{record_key({**loads(CHAT_2.read_bytes()), 'test_id': 'demo'})}.json"
    assert used.is_file() and unused.is_file()

    result = cli("prune", directory, "--used-by", replay_notebook)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 of 2 recordings" in result.stdout
    assert f"  demo/{unused.name}" in result.stdout
    assert "nothing deleted; run again with --yes" in result.stdout
    assert unused.is_file()

    result = cli("prune", directory, "--used-by", replay_notebook, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "deleted 1 file(s)" in result.stdout
    assert not unused.exists() and used.is_file()


# ---------------------------------------------------------------------------------------------
# the sanitiser rules
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("<Foo object at 0x7f3a9c2b1d90>", "<Foo object at 0x10a3b2c40>"),
        ("took 12.3 ms", "took 0.4 ms"),
        ("done in 0.41s", "done in 12s"),
        ("Wall time: 3 seconds", "Wall time: 14 seconds"),
        ("/home/me/x/recordings/ab.json", "/work/ci/recordings/ab.json"),
        ("C:\\Users\\me\\proj\\ab.json", "D:\\ci\\ab.json"),
        ("id 0b7f3c2e-9d41-4a57-8e2a-3c1f5d6e7a8b", "id 665148c8-a062-460a-94a8-95d460ca1ddc"),
        ("at 2025-03-01T09:15:02.123Z", "at 2026-11-25 19:07:47"),
        ("at 09:15:02", "at 19:07:47"),
        ("\x1b[31mred\x1b[0m  ", "red"),
        ("50%\r100%", "100%"),
        ("12.5it/s", "3.1it/s"),
    ],
)
def test_sanitised_alike(a: str, b: str) -> None:
    assert sanitize(a) == sanitize(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Python 3.14.2", "Python 3.12.0"),
        ("released on 2025-10-07", "released on 2024-10-07"),
        ("https://api.openai.com/v1/chat/completions", "https://api.openai.com/v1/completions"),
        ("/x/recordings/ab.json", "/x/recordings/cd.json"),
        ("128 experts", "16 experts"),
    ],
)
def test_sanitisers_keep_real_differences(a: str, b: str) -> None:
    assert sanitize(a) != sanitize(b)


def test_the_packages_own_outputs_are_left_out_of_the_comparison() -> None:
    """Tagged outputs go, whatever they say; untagged ones stay, even when they look like notes."""
    from notebook_recorder.frontends.notebooks._comparison import is_own_output, output_lines

    def note(text: str, role: str = "note", kind: str = "display_data") -> dict[str, object]:
        return {"output_type": kind, "data": {"text/plain": text}, "metadata": {"notebook_recorder": {"role": role}}}

    def stdout(text: str) -> dict[str, object]:
        return {"output_type": "stream", "name": "stdout", "text": text}

    recorded = [stdout("Hello\n"), note("apirec: recorded 1 call to recs"), stdout("bye\n")]
    replayed = [stdout("Hello\nbye\n"), note("apirec: replayed 1 call from recs")]
    assert output_lines(recorded) == output_lines(replayed) == ["[stdout]", "Hello", "bye"]
    table = note("#  outcome\n1  recorded", "status")
    table["data"] = {"text/html": "<table><tr><td>recorded</td></tr></table>", "text/plain": "1  recorded"}
    assert output_lines([table, note("mode: record", "state", "execute_result")]) == []
    assert is_own_output(table) and not is_own_output(stdout("apirec: recorded 1 call"))
    # Matching is by metadata only: a user's print or a display without the tag is compared.
    assert output_lines([stdout("apirec: recorded 1 call to recs\n")]) == [
        "[stdout]",
        "apirec: recorded 1 call to recs",
    ]
    other = {"output_type": "display_data", "data": {"text/plain": "x"}, "metadata": {"text/plain": {"isolated": True}}}
    assert output_lines([other]) == ["[display]", "x"]


def test_ls_json_has_the_documented_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import_files(capsys, tmp_path, CHAT, TOOL, ERROR)
    code, out, err = run_main(capsys, "ls", tmp_path, "--json")
    assert code == 0 and not err
    data = json.loads(out)
    assert data["dir"] == str(tmp_path)
    rows = {row["key"]: row for row in data["recordings"]}
    chat = rows[record_key(loads(CHAT.read_bytes()))]
    assert set(chat) == {
        "key",
        "kind",
        "endpoint",
        "model",
        "streaming",
        "chunks",
        "size_bytes",
        "test_id",
        "file",
        "named_by_key",
        "problem",
    }
    assert (chat["kind"], chat["endpoint"], chat["model"], chat["streaming"]) == (
        "inference",
        "/v1/chat/completions",
        "gpt-4o",
        True,
    )
    assert chat["named_by_key"] is True and chat["problem"] is None
    assert sorted(row["kind"] for row in rows.values()) == ["exception", "inference", "tool"]


def test_verify_json_and_failures_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import_files(capsys, tmp_path, CHAT)
    code, out, err = run_main(capsys, "verify", tmp_path, "--json")
    assert code == 0 and not err
    data = json.loads(out)
    assert (data["files"], data["ok"]) == (1, True)
    assert set(data["problems"]) >= {"unreadable files", "duplicate keys"} and not any(data["problems"].values())
    (tmp_path / "broken.json").write_text("{")
    code, out, err = run_main(capsys, "verify", tmp_path, "--json")
    data = json.loads(out)
    assert code == 1 and data["ok"] is False and len(data["problems"]["unreadable files"]) == 1
    code, out, err = run_main(capsys, "verify", tmp_path)
    assert code == 1 and err.startswith("FAILED: 1 problem(s)") and "FAILED" not in out


def test_show_takes_a_file_name_a_key_or_a_prefix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import_files(capsys, tmp_path, CHAT)
    key = record_key(loads(CHAT.read_bytes()))
    for target in (f"{key}.json", key, key[:6]):
        code, out, err = run_main(capsys, "show", target, "--dir", tmp_path)
        assert code == 0 and "gpt-4o" in out and not err, target
    code, out, err = run_main(capsys, "show", "0000ffff.json", "--dir", tmp_path)
    assert code == 1 and not out and "no recording whose key starts with 0000ffff" in err


@pytest.mark.frontend
def test_run_json_keeps_stdout_for_the_json(tmp_path: Path) -> None:
    nb_dir = tmp_path / "notebooks"
    shutil.copytree(REPO / "notebooks", nb_dir, ignore=shutil.ignore_patterns("0[234]*"))
    shutil.copytree(REPO / "recordings", tmp_path / "recordings")
    nb = nb_dir / "01_quickstart.ipynb"
    result = cli("run", nb, "--check", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] is True
    (entry,) = data["notebooks"]
    assert entry["notebook"] == str(nb) and entry["ok"] is True and entry["verdict"] == "outputs match"
    assert entry["calls"] and set(entry["calls"]) == {"replayed"}
    assert entry["failed_cell"] is None and entry["differing_cells"] == []
    assert "[1/" in result.stderr  # the progress went to stderr


@pytest.mark.frontend
def test_run_keeps_the_kernels_own_output_out_of_its_own(tmp_path: Path) -> None:
    """What the kernel process writes outside its cells (ipykernel's log as it shuts down, say) is
    neither in the progress on stderr nor in the JSON on stdout."""
    nb = tmp_path / "noisy.ipynb"
    at_exit = (
        "import atexit, os\n"
        "atexit.register(os.write, 1, b'kernel stdout at exit\\n')\n"
        "atexit.register(os.write, 2, b'kernel stderr at exit\\n')"
    )
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(at_exit)]), nb)
    result = cli("run", nb, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ok"] is True
    assert "at exit" not in result.stderr


@pytest.mark.frontend
def test_a_kernel_that_cannot_start_is_named_with_its_last_output(tmp_path: Path) -> None:
    spec = tmp_path / "jupyter" / "kernels" / "broken"
    spec.mkdir(parents=True)
    fail = "import sys; sys.stderr.write('ImportError: no ipykernel here\\n'); sys.exit(1)"
    argv = [sys.executable, "-c", fail, "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "broken", "language": "python"}))
    nb = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")]), nb)
    result = cli("run", nb, "--kernel", "broken", env={"JUPYTER_PATH": str(tmp_path / "jupyter")})
    assert result.returncode != 0
    assert "cannot start kernel 'broken'" in result.stderr
    assert "The kernel's last output:\n  ImportError: no ipykernel here" in result.stderr


@pytest.mark.frontend
def test_a_dead_kernel_is_named_with_its_last_words(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the kernel process wrote to its descriptors just before it died (which ipykernel's
    forwarding thread never read) is in the message, its last 40 lines, credentials masked; output
    written to the descriptors by a cell that does not die still reaches the notebook."""
    monkeypatch.delenv("PYTEST_CURRENT_TEST")  # under pytest, ipykernel leaves descriptors alone
    secret = "sk-proj-lastwords0123456789abcdef"
    dies = (
        "import os\n"
        "os.write(1, ''.join(f'line {i}\\n' for i in range(60)).encode())\n"
        "os.write(2, b'fatal: the key was ' + os.environ['OPENAI_API_KEY'].encode() + b'\\n')\n"
        "os._exit(1)"
    )
    cells = [
        nbformat.v4.new_code_cell("import os; _ = os.system('echo from a subprocess')"),
        nbformat.v4.new_code_cell(dies),
    ]
    nb = tmp_path / "dies.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), nb)
    result = cli("run", nb, "--output", tmp_path / "out.ipynb", env={"OPENAI_API_KEY": secret})
    assert result.returncode == 1
    assert "cell 2: DeadKernelError" in result.stderr
    words = result.stderr.split("The kernel's last output:\n", 1)[1].splitlines()
    assert words[:2] == ["  line 21", "  line 22"] and words[38] == "  line 59", words
    assert words[39] == "  fatal: the key was ***", words
    assert secret not in result.stderr
    (first, _) = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells
    assert [o.get("text") for o in first.outputs] == ["from a subprocess\n"], first.outputs


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the copying process through /proc")
def test_descriptor_output_stays_in_its_cell_when_the_copying_process_lags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a subprocess writes to the kernel's descriptors goes to the notebook through the
    process that keeps the kernel's last words; a cell does not end before that process has passed
    on what the cell wrote, however late it runs (here it is stopped for half a second, as a loaded
    machine may leave it), so the output is in its own cell, not lost or under the next one."""
    monkeypatch.delenv("PYTEST_CURRENT_TEST")  # under pytest, ipykernel leaves descriptors alone
    lags = (
        "import os, signal, threading\n"
        "tail = os.environ['NOTEBOOK_RECORDER_KERNEL_TAIL'].encode()\n"
        "def argv(pid):\n"
        "    try:\n"
        "        with open(f'/proc/{pid}/cmdline', 'rb') as f:\n"
        "            return f.read().split(b'\\0')\n"
        "    except OSError:\n"
        "        return []\n"
        "(copier,) = [int(p) for p in os.listdir('/proc') if p.isdigit() and tail in argv(p)]\n"
        "os.kill(copier, signal.SIGSTOP)\n"
        "threading.Timer(0.5, os.kill, (copier, signal.SIGCONT)).start()\n"
        "_ = os.system('echo late but here')"
    )
    cells = [nbformat.v4.new_code_cell(lags), nbformat.v4.new_code_cell("print('next')")]
    nb = tmp_path / "lags.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), nb)
    result = cli("run", nb, "--output", tmp_path / "out.ipynb")
    assert result.returncode == 0, result.stderr
    (first, second) = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells
    assert [o.get("text") for o in first.outputs] == ["late but here\n"], first.outputs
    assert [o.get("text") for o in second.outputs] == ["next\n"], second.outputs


def test_kinds_agree_between_ls_calls_and_frames(tmp_path: Path, wire_server: WireServer, claude: Any) -> None:
    """Counting tokens is its own kind (Anthropic's count_tokens, OpenAI's input_tokens)."""
    import openai

    client = openai.OpenAI(base_url=wire_server.base_url, api_key=TEST_API_KEY, max_retries=0)
    counts = hasattr(client.responses, "input_tokens")  # openai >= 2.5
    hello = [{"role": "user", "content": "Hi"}]
    with nr.recording("record", dir=tmp_path):
        client.embeddings.create(model="text-embedding-3-small", input="hello")
        client.models.list()
        client.chat.completions.create(model="gpt-4o", messages=hello)  # type: ignore[arg-type]
        assert claude.messages.count_tokens(model="claude-sonnet-4-5", messages=hello).input_tokens > 0
        if counts:
            assert client.responses.input_tokens.count(model="gpt-4o", input="Hi").input_tokens > 0
    calls = 5 if counts else 4
    logged = {Path(c.path).stem: c.kind for c in nr.calls()[-calls:] if c.path}
    frame = nr.load_recordings(tmp_path)
    framed = dict(zip(frame["key"], frame["kind"].astype(str), strict=True))
    listed = json.loads(cli("ls", tmp_path, "--json").stdout)
    by_ls = {row["key"]: row["kind"] for row in listed["recordings"]}
    assert logged == framed == by_ls
    assert sorted(framed.values()) == ["embedding", "inference", "model_list", *["token_count"] * (calls - 3)]


@pytest.mark.frontend
def test_run_output_saves_no_credential_of_the_environment(tmp_path: Path) -> None:
    """A cell that prints a key (or a live error in record mode that echoes one) does not put it
    in the notebook that ``run --output`` saves."""
    nb = tmp_path / "leaky.ipynb"
    cells = [
        nbformat.v4.new_code_cell("import os\nprint('key:', os.environ['SEARCH_API_KEY'])"),
        nbformat.v4.new_code_cell("os.environ['SEARCH_API_KEY']"),
        nbformat.v4.new_code_cell("raise RuntimeError('401: bad key ' + os.environ['SEARCH_API_KEY'])"),
    ]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), nb)
    key = "srch-canary-0d9f2a77c1e54b6a"
    saved = tmp_path / "saved.ipynb"
    result = cli("run", nb, "--output", saved, env={"SEARCH_API_KEY": key})
    assert result.returncode == 1  # the last cell fails, as written
    text = saved.read_text()
    assert key not in text
    assert text.count("***") >= 3  # each place it was printed, as the recordings mask it
