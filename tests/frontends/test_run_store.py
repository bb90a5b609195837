"""`notebook-recorder run NB --mode record` stores the outputs in the notebook, so that the next
`run NB --check` passes; `--no-store` keeps the file as it was; a failed run never replaces them.
Notes written because `run` set the mode say `run --mode ...`, not `$APIREC_MODE=...`."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from test_cli import cli
from wire_server import TEST_API_KEY, WireServer

pytestmark = pytest.mark.frontend

NOTEBOOK = [
    "%load_ext notebook_recorder",
    "%apirec record-if-missing",
    "import openai\n\nclient = openai.OpenAI(max_retries=0)",
    "reply = client.chat.completions.create(\n"
    '    model="gpt-4o", messages=[{"role": "user", "content": "What is the latest Python?"}]\n)\n'
    "print(reply.choices[0].message.content)",
    "%apirec",
]


def _write(path: Path, cells: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells]), path)


def _texts(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    texts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text") or output.get("data", {}).get("text/plain", ""))
    return texts


def test_a_record_run_stores_its_outputs_and_the_next_check_passes(tmp_path: Path) -> None:
    nb = tmp_path / "nb.ipynb"
    _write(nb, NOTEBOOK)
    with WireServer() as server:
        online = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": TEST_API_KEY}
        result = cli("run", nb, "--mode", "record", env=online)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"stored the outputs in {nb} (--no-store keeps the file as it was)" in result.stdout
    texts = _texts(nb)
    assert any("Python" in text and "apirec" not in text for text in texts), texts
    # The note says who chose the mode: `run`, not a variable the user set.
    assert any(text.startswith("apirec: run --mode record overrides record-if-missing") for text in texts), texts
    assert not any("$APIREC_MODE" in text for text in texts), texts
    assert any("APIREC_MODE: record (set by `run --mode`) (overrides record-if-missing)" in t for t in texts), texts

    offline = {"OPENAI_BASE_URL": server.base_url}  # stopped, and no key: only a replay works
    result = cli("run", nb, "--check", env=offline)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nb.ipynb: 5 code cells, 1 call replayed from 1 file" in result.stdout
    assert "outputs match" in result.stdout
    assert "stored the outputs" not in result.stdout  # replay leaves the notebook alone


def test_no_store_keeps_the_notebook_and_a_failed_record_run_never_replaces_it(tmp_path: Path) -> None:
    nb = tmp_path / "nb.ipynb"
    _write(nb, NOTEBOOK)
    before = nb.read_bytes()
    with WireServer() as server:
        online = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": TEST_API_KEY}
        result = cli("run", nb, "--mode", "record-if-missing", "--no-store", "--json", env=online)
        assert result.returncode == 0, result.stdout + result.stderr
        assert nb.read_bytes() == before
        assert '"output": null' in result.stdout

        broken = tmp_path / "broken.ipynb"
        _write(broken, [*NOTEBOOK, "raise RuntimeError('boom')"])
        stored = broken.read_bytes()
        result = cli("run", broken, "--mode", "record", env=online)
    assert result.returncode == 1
    assert f"{broken} left as it was: a cell failed" in result.stdout
    assert broken.read_bytes() == stored

    result = cli("run", nb, "--mode", "record", "--no-store", "--output", tmp_path / "out.ipynb")
    assert result.returncode != 0
    assert "--no-store and --output contradict each other" in result.stderr
