"""``--dir-out`` and ``--pace`` in the front ends: the magics, ``notebook-recorder run`` (a real
kernel) and the pytest plugin (a real pytest session), against the loopback wire server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat
import openai
import pytest
from wire_server import TEST_API_KEY, ReceivedRequest, Reply, WireServer

import notebook_recorder as nr
from notebook_recorder.core import _session

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

pytest_plugins = ["pytester"]
REPO = Path(__file__).resolve().parents[2]


class TwentyChunks(WireServer):
    def handle(self, request: ReceivedRequest) -> Reply:
        reply = super().handle(request)
        if reply.events is not None:
            reply.events = reply.events[:20]
        return reply


# --- the magics -------------------------------------------------------------------------------


def test_magic_dir_out_and_pace(ip: InteractiveShell, wire_server: WireServer, tmp_path: Path) -> None:
    result = ip.run_cell("%apirec record --dir committed --dir-out new")
    result.raise_error()
    with openai.OpenAI(base_url=wire_server.base_url, api_key=TEST_API_KEY, max_retries=0) as client:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    assert len(list((tmp_path / "new").glob("*.json"))) == 1 and not (tmp_path / "committed").exists()
    ip.run_cell("%apirec replay --dir new --pace 2").raise_error()
    recorder = _session.session()
    assert recorder is not None and recorder.pace == 2.0 and recorder.dir_out is None
    ip.run_cell("%apirec replay --dir new --pace").raise_error()
    assert _session.session().pace == 1.0  # type: ignore[union-attr]
    bad = ip.run_cell("%apirec replay --dir new --pace fast")
    assert bad.error_in_exec is not None and "--pace: not a number" in str(bad.error_in_exec)
    refused = ip.run_cell("%apirec status --pace 2")
    assert refused.error_in_exec is not None and "does not take --pace" in str(refused.error_in_exec)


# --- notebook-recorder run --------------------------------------------------------------------


def cli(
    *args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "notebook_recorder.cli", *map(str, args)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def streaming_notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext notebook_recorder\n%apirec record-if-missing"),
        nbformat.v4.new_code_cell(
            "import time\nimport openai\n\nclient = openai.OpenAI(max_retries=0)\n"
            "stream = iter(client.chat.completions.create(model='gpt-4o', stream=True,\n"
            "    messages=[{'role': 'user', 'content': 'Stream twenty chunks'}]))\n"
            "next(stream)\nstarted = time.perf_counter()\n"
            "n = 1 + sum(1 for _ in stream)\n"
            "print(n, 'paced' if time.perf_counter() - started > 0.6 else 'instant')"
        ),
    ]
    nbformat.write(nb, path)
    return path


def printed(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return "".join(o.get("text", "") for o in nb.cells[1].outputs if o.get("output_type") == "stream")


@pytest.mark.frontend
def test_run_dir_out_then_diff_then_paced_replay(tmp_path: Path) -> None:
    nb = streaming_notebook(tmp_path / "demo.ipynb")
    with TwentyChunks(chunk_delay=0.05) as server:
        env = {"OPENAI_API_KEY": TEST_API_KEY, "OPENAI_BASE_URL": server.base_url}
        first = cli("run", nb, "--mode", "record", "--output", tmp_path / "out1.ipynb", env=env)
        assert first.returncode == 0, first.stdout + first.stderr
        committed = tmp_path / "recordings" / "demo"
        before = {p.name: p.read_bytes() for p in committed.glob("*.json")}
        assert len(before) == 1
        second = cli("run", nb, "--mode", "record", "--dir-out", tmp_path / "new", env=env)
        assert second.returncode == 0, second.stdout + second.stderr
        assert f"writing to {tmp_path / 'new' / 'demo'}" in second.stdout
    assert {p.name: p.read_bytes() for p in committed.glob("*.json")} == before
    assert len(list((tmp_path / "new" / "demo").glob("*.json"))) == 1

    compared = cli("diff", tmp_path / "recordings", tmp_path / "new", "--json")
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert json.loads(compared.stdout)["counts"] == {"identical": 1}

    paced = cli("run", nb, "--pace", "1", "--output", tmp_path / "paced.ipynb")  # replay, offline
    assert paced.returncode == 0, paced.stdout + paced.stderr
    assert "pace 1.0" in paced.stdout
    assert printed(tmp_path / "paced.ipynb").strip() == "20 paced"
    instant = cli("run", nb, "--output", tmp_path / "instant.ipynb")
    assert instant.returncode == 0, instant.stdout + instant.stderr
    assert printed(tmp_path / "instant.ipynb").strip() == "20 instant"


# --- the pytest plugin ------------------------------------------------------------------------

TESTS = """
import time

import pytest
from openai import OpenAI

client = OpenAI(max_retries=0)


@pytest.mark.apirec
def test_stream():
    stream = iter(client.chat.completions.create(
        model="gpt-4o", stream=True, messages=[{"role": "user", "content": "Stream twenty chunks"}]
    ))
    next(stream)
    started = time.perf_counter()  # from the first chunk: the gaps are what is paced
    assert 1 + sum(1 for _ in stream) == 20
    print("SECONDS", time.perf_counter() - started)
"""


CONFIG = """
import pytest


@pytest.fixture
def apirec_config():
    return {"pace": 1.0, "ignore_hosts": ["docs.example.invalid"], "http_max_body": 1234}


@pytest.fixture(autouse=True)
def show_settings(apirec):
    print("SETTINGS", sorted(apirec.ignore_hosts), apirec.http_max_body)
"""


def seconds(result: pytest.RunResult) -> float:
    (found,) = [re.search(r"SECONDS (\S+)", line) for line in result.outlines if "SECONDS " in line]
    assert found is not None
    return float(found.group(1))


@pytest.mark.frontend
def test_pytest_dir_out_and_pace(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_paced=textwrap.dedent(TESTS))
    args = ("-p", "no:cacheprovider", "-s", "-o", "asyncio_default_fixture_loop_scope=function")
    with TwentyChunks(chunk_delay=0.05) as server:
        monkeypatch.setenv("OPENAI_API_KEY", TEST_API_KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        pytester.runpytest_inprocess(*args, "--apirec-mode=record").assert_outcomes(passed=1)
        committed = pytester.path / "recordings" / "test_paced"
        before = {p.name: p.read_bytes() for p in committed.glob("*.json")}
        result = pytester.runpytest_inprocess(*args, "--apirec-mode=record", "--apirec-dir-out", "new")
        result.assert_outcomes(passed=1)
    assert {p.name: p.read_bytes() for p in committed.glob("*.json")} == before
    assert len(list((pytester.path / "new" / "test_paced").glob("*.json"))) == 1
    monkeypatch.delenv("OPENAI_BASE_URL")
    paced = pytester.runpytest_inprocess(*args, "--apirec-pace")
    paced.assert_outcomes(passed=1)
    twice = pytester.runpytest_inprocess(*args, "--apirec-pace=2")
    twice.assert_outcomes(passed=1)
    instant = pytester.runpytest_inprocess(*args)
    instant.assert_outcomes(passed=1)
    assert seconds(paced) > 0.8 and 0.4 < seconds(twice) < seconds(paced) and seconds(instant) < 0.3
    bad = pytester.runpytest_inprocess(*args, "--apirec-pace=0")
    assert "--apirec-pace: must be a positive number" in bad.stderr.str()
    # a directory's apirec_config (or a marker) sets pace, ignore_hosts and http_max_body too;
    # --apirec-pace wins over it
    pytester.makeconftest(CONFIG)
    by_config = pytester.runpytest_inprocess(*args)
    by_config.assert_outcomes(passed=1)
    overridden = pytester.runpytest_inprocess(*args, "--apirec-pace=4")
    overridden.assert_outcomes(passed=1)
    assert seconds(by_config) > 0.8 and seconds(overridden) < 0.6
    assert "SETTINGS ['docs.example.invalid'] 1234" in by_config.stdout.str()
    assert nr.diff(committed, pytester.path / "new" / "test_paced")["verdict"].tolist() == ["identical"]
