"""A notebook calling groq and google-genai under ``%apirec replay`` (issue 21): with the server
up and nothing recorded, ``run --check`` fails and nothing reaches the server; once recorded, it
replays offline and passes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from http_wire_server import HttpWireServer

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str | Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """``notebook-recorder ...`` as a subprocess; the kernels it starts import this checkout too."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "notebook_recorder.cli", *map(str, args)],
        env={**os.environ, "PYTHONPATH": path, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


CELLS = [
    "%load_ext notebook_recorder",
    "%apirec replay",
    "import os\nimport groq\nfrom google import genai\nfrom google.genai import types\nurl = os.environ['WIRE_URL']",
    "fast = groq.Groq(api_key='test-key-groq-0000000000', base_url=url)\n"
    "answer = fast.chat.completions.create(model='llama-3.3', messages=[{'role': 'user', 'content': 'Capital?'}])\n"
    "print(answer.id, answer.choices[0].message.content)",
    "gemini = genai.Client(api_key='test-key-gemini-0000000000', http_options=types.HttpOptions(base_url=url))\n"
    "reply = gemini.models.generate_content(model='gemini-2.0-flash', contents='Capital?')\n"
    "print(reply.response_id, reply.text)",
]


@pytest.mark.frontend
@pytest.mark.timeout(300)
def test_a_groq_and_gemini_notebook_fails_check_until_recorded_then_replays_offline(tmp_path: Path) -> None:
    notebook = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS]), notebook)
    with HttpWireServer() as server:
        env = {"WIRE_URL": server.url}
        result = cli("run", notebook, "--check", env=env, timeout=240)
        assert result.returncode != 0, result.stdout + result.stderr
        assert "a call has no recording" in result.stderr and "/chat/completions (model llama-3.3)" in result.stderr
        assert server.requests == 0  # replay never went live, the server up or not
        result = cli("run", notebook, "--mode", "record", "--output", notebook, env=env, timeout=240)
        assert result.returncode == 0, result.stdout + result.stderr
        assert server.requests == 2
    recordings = sorted((tmp_path / "recordings" / "nb").glob("*.json"))
    assert len(recordings) == 2
    # The gemini call alone unrecorded: the check fails on it, naming it.
    (gemini,) = [p for p in recordings if "generateContent" in p.read_text()]
    kept = gemini.read_bytes()
    gemini.unlink()
    result = cli("run", notebook, "--check", env=env, timeout=240)
    assert (
        result.returncode != 0
        and "/models/gemini-2.0-flash:generateContent" in result.stderr
        and "No recording of POST" in result.stderr
    )
    gemini.write_bytes(kept)
    result = cli("run", notebook, "--check", env=env, timeout=240)  # the server is stopped
    assert result.returncode == 0, result.stdout + result.stderr
    assert "outputs match" in result.stdout
    printed = "".join(o.get("text", "") for cell in nbformat.read(notebook, as_version=4).cells for o in cell.outputs)
    assert "Paris is the capital of France." in printed
