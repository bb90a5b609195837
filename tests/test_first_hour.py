"""What a new user meets in the first hour: the CLI in scripts, the vocabulary, progress, the files.

The README snippets themselves are run by ``test_readme.py``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook
from test_cli import CHAT, ERROR, REPO, TOOL, cli, import_files, run_main
from wire_server import TEST_API_KEY, WireServer

import notebook_recorder as nr
from notebook_recorder._codec import loads
from notebook_recorder._keys import record_key

# --- the command line in scripts -----------------------------------------------------------------


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


# --- one vocabulary --------------------------------------------------------------------------------


def test_kinds_agree_between_ls_calls_and_frames(tmp_path: Path, wire_server: WireServer) -> None:
    import openai

    client = openai.OpenAI(base_url=wire_server.base_url, api_key=TEST_API_KEY, max_retries=0)
    with nr.recording("record", dir=tmp_path):
        client.embeddings.create(model="text-embedding-3-small", input="hello")
        client.models.list()
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    logged = {Path(c.path).stem: c.kind for c in nr.calls()[-3:] if c.path}
    frame = nr.load_recordings(tmp_path)
    framed = dict(zip(frame["key"], frame["kind"].astype(str), strict=True))
    listed = json.loads(cli("ls", tmp_path, "--json").stdout)
    by_ls = {row["key"]: row["kind"] for row in listed["recordings"]}
    assert logged == framed == by_ls
    assert sorted(framed.values()) == ["embedding", "inference", "model_list"]


def test_new_files_say_when_and_tools_carry_no_sdk(tmp_path: Path, wire_server: WireServer) -> None:
    import openai

    @nr.tool(provider="local", name="add")
    def add(a: int, b: int) -> int:
        return a + b

    client = openai.OpenAI(base_url=wire_server.base_url, api_key=TEST_API_KEY, max_retries=0)
    with nr.recording("record", dir=tmp_path):
        add(1, 2)
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    records = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*.json"))]
    tool = next(r for r in records if "tool_name" in r["request"])
    chat = next(r for r in records if "tool_name" not in r["request"])
    assert "sdk" not in tool["recorder"] and chat["recorder"]["sdk"] == "openai"
    assert all(r["recorder"]["recorded_at"].endswith("Z") for r in records)
    assert chat["response"]["duration_ms"] > 0  # a plain (not streamed) call is timed too
    frame = nr.load_recordings(tmp_path)
    assert frame["duration_ms"].notna().all()
    stated = frame["recorded_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ").tolist()
    assert sorted(stated) == sorted(r["recorder"]["recorded_at"] for r in records)
    assert frame.loc[frame["kind"] == "tool", "sdk"].isna().all()


def test_recorded_at_falls_back_to_the_file_time(tmp_path: Path) -> None:
    shutil.copy(CHAT, tmp_path / CHAT.name)  # a llama-stack file: it does not say when
    os.utime(tmp_path / CHAT.name, (1_700_000_000, 1_700_000_000))
    frame = nr.load_recordings(tmp_path)
    assert str(frame["recorded_at"].dtype) == "datetime64[ns, UTC]"
    assert frame["recorded_at"].iloc[0].isoformat() == "2023-11-14T22:13:20+00:00"


# --- progress in a notebook without ipywidgets -----------------------------------------------------


@pytest.mark.timeout(120)
def test_progress_in_a_kernel_without_ipywidgets(tmp_path: Path) -> None:
    shutil.copytree(REPO / "recordings", tmp_path / "recordings")
    nb = new_notebook(
        cells=[
            new_code_cell(
                "import sys\nsys.modules['ipywidgets'] = None  # as if not installed\n"
                "import notebook_recorder as nr\n"
                "df = nr.load_recordings('recordings', progress=True)\nlen(df)"
            )
        ]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APIREC_", "OPENAI_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    client = NotebookClient(nb, kernel_name="python3", timeout=60, resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env=env)
    outputs = nb.cells[0].outputs
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert not [o for o in outputs if o.output_type == "error"]
    assert "Loading recordings" in text and "Traceback" not in text and "Warning" not in text
    (result,) = [o for o in outputs if o.output_type == "execute_result"]
    assert int(result.data["text/plain"]) == len(list((REPO / "recordings").rglob("*.json"))) - 0
