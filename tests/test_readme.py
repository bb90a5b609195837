"""Every code block of README.md runs, as a reader would run it.

Blocks are found by their fences, and each is one test, named by its line:

- ```` ```python ```` blocks run in a real Jupyter kernel (nbclient), in a scratch directory
  holding a copy of ``recordings/`` and ``notebooks/``, with the openai and anthropic SDKs pointed
  at the loopback wire servers (``OPENAI_BASE_URL``, ``ANTHROPIC_BASE_URL``, fake keys) and
  ``APIREC_MODE=record-if-missing``, so whatever the block records goes to the scratch copy. Any
  error output fails the test.
- ```` ```bash ```` (``sh``, ``shell``, ``console``) blocks that invoke ``notebook-recorder`` run
  line by line in the same kind of scratch directory; a non-zero exit fails the test.
- ```` ```text ```` blocks are output, usage or synopsis: not run.

A block that cannot run is marked by an HTML comment on the line(s) right before its fence:
``<!-- readme-test: skip (why) -->``, or ``<!-- readme-test: needs MODULE -->`` for a block that
needs an optional package (skipped, with the reason, when it is not installed). Any other block
(no language, another language, a shell block without ``notebook-recorder``) fails, telling the
author how to mark it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from anthropic_wire_server import TEST_API_KEY as ANTHROPIC_TEST_KEY, AnthropicWireServer
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook
from wire_server import TEST_API_KEY, WireServer

import notebook_recorder

pytestmark = pytest.mark.frontend  # the README is checked once, in the openai 3.x suite

ROOT = Path(notebook_recorder.__file__).resolve().parent.parent
README = ROOT / "README.md"
PYTHON = ("python", "py", "python3", "ipython")
SHELL = ("bash", "sh", "shell", "console")
TEXT = ("text", "txt")

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)[^\n]*$")
_MARK = re.compile(r"<!--\s*readme-test:\s*(?P<what>skip|needs)\b\s*(?P<arg>.*?)\s*-->")


@dataclass(frozen=True)
class Block:
    """One fenced block of the README."""

    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    mark: str | None  # "skip" or "needs"
    mark_arg: str

    @property
    def id(self) -> str:
        return f"L{self.line}-{self.lang or 'plain'}"


def readme_blocks(text: str) -> list[Block]:
    """The fenced blocks of ``text``, each with the readme-test mark written right before it."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, start = m["fence"], i
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        mark = arg = None
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        if k >= 0 and (mm := _MARK.search(lines[k])):
            mark, arg = mm["what"], mm["arg"]
        code = "\n".join(line[len(m["indent"]) :] for line in lines[start + 1 : j])
        blocks.append(Block(start + 1, m["lang"].lower(), code + "\n", mark, arg or ""))
        i = j + 1
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


def test_the_readme_has_runnable_blocks() -> None:
    """The parser finds the README's blocks (a broken fence would silently hide them)."""
    runnable = [b for b in BLOCKS if b.mark != "skip" and b.lang not in TEXT]
    assert len(runnable) >= 4, [b.id for b in BLOCKS]


def _how_to_mark(block: Block, why: str) -> str:
    return (
        f"README.md line {block.line}: {why}. Make it runnable (```python, or ```bash calling notebook-recorder), "
        "call it ```text if it is output or a synopsis, or put `<!-- readme-test: skip (why) -->` "
        "(or `<!-- readme-test: needs MODULE -->`) on the line before its fence."
    )


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A directory where a reader would run the README: the repository's recordings and notebooks."""
    for name in ("recordings", "notebooks"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, tmp_path / name)
    return tmp_path


def _env(server: WireServer, anthropic_server: AnthropicWireServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APIREC_", "OPENAI_", "ANTHROPIC_"))}
    env["APIREC_CACHE_DIR"] = os.environ.get("APIREC_CACHE_DIR", "off")  # conftest.py's, never ~/.cache
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["OPENAI_BASE_URL"] = server.base_url
    env["OPENAI_API_KEY"] = TEST_API_KEY
    env["ANTHROPIC_BASE_URL"] = anthropic_server.base_url
    env["ANTHROPIC_API_KEY"] = ANTHROPIC_TEST_KEY
    env["MPLBACKEND"] = "Agg"
    return env


def _run_python(block: Block, cwd: Path, env: dict[str, str]) -> None:
    nb = new_notebook(cells=[new_code_cell(block.code)])
    client = NotebookClient(
        nb, kernel_name="python3", timeout=90, allow_errors=True, resources={"metadata": {"path": str(cwd)}}
    )
    client.execute(env=env)
    problems = [
        f"{o.ename}: {o.evalue}\n" + "\n".join(o.get("traceback", []))
        for o in nb.cells[0].outputs
        if o.output_type == "error"
    ]
    problems += [o.text for o in nb.cells[0].outputs if o.output_type == "stream" and "Traceback" in o.text]
    assert not problems, f"README.md line {block.line}: the block failed in a kernel:\n" + "\n".join(problems)
    nbformat.validate(nb)


def _run_shell(block: Block, cwd: Path, env: dict[str, str]) -> None:
    for raw in block.code.splitlines():
        command = raw.strip()
        if not command or command.startswith("#"):
            continue
        done = subprocess.run(
            ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, (
            f"README.md line {block.line}: `{command}` exited {done.returncode}\n"
            f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )


@pytest.mark.timeout(180)
@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_readme_block(
    block: Block, scratch: Path, wire_server: WireServer, anthropic_server: AnthropicWireServer
) -> None:
    if block.mark == "skip":
        assert block.mark_arg.strip("() "), _how_to_mark(block, "a skip needs its reason in parentheses")
        pytest.skip(f"README.md line {block.line}: marked skip {block.mark_arg}")
    if block.mark == "needs":
        missing = [m for m in block.mark_arg.split() if importlib.util.find_spec(m) is None]
        if missing:
            pytest.skip(f"README.md line {block.line} needs {', '.join(missing)}, which is not installed")
    if block.lang in TEXT:
        return
    env = _env(wire_server, anthropic_server)
    if block.lang in PYTHON:
        env["APIREC_MODE"] = "record-if-missing"  # a block that says replay records its call first
        _run_python(block, scratch, env)
    elif block.lang == "toml":
        _check_toml(block, scratch)
    elif block.lang in SHELL:
        if "notebook-recorder" not in block.code:
            pytest.fail(_how_to_mark(block, "a shell block that does not call notebook-recorder"))
        _run_shell(block, scratch, env)
    else:
        pytest.fail(_how_to_mark(block, f"a block in {block.lang or 'no language'!r}, which this test cannot run"))


def _check_toml(block: Block, scratch: Path) -> None:
    """A ``pyproject.toml`` excerpt: it parses, and a ``[tool.notebook-recorder]`` table in it is
    one the package accepts (every key known, every path and pattern valid)."""
    import tomllib

    from notebook_recorder.core._config import clear_cache, project_config

    try:
        table = tomllib.loads(block.code)
    except tomllib.TOMLDecodeError as exc:
        pytest.fail(f"README.md line {block.line}: not valid TOML ({exc})")
    if "notebook-recorder" in table.get("tool", {}):
        (scratch / "pyproject.toml").write_text(block.code, encoding="utf-8")
        clear_cache()
        try:
            project_config(scratch)
        except ValueError as exc:
            pytest.fail(f"README.md line {block.line}: [tool.notebook-recorder] is not accepted: {exc}")


def test_the_parser_reads_marks_and_languages() -> None:
    text = "\n".join(
        [
            "```python",
            "x = 1",
            "```",
            "<!-- readme-test: skip (illustration) -->",
            "",
            "```bash",
            "make demo",
            "```",
            "<!-- readme-test: needs duckdb -->",
            "```",
            "plain",
            "```",
        ]
    )
    a, b, c = readme_blocks(text)
    assert (a.lang, a.code, a.mark) == ("python", "x = 1\n", None)
    assert (b.line, b.lang, b.mark, b.mark_arg) == (6, "bash", "skip", "(illustration)")
    assert (c.lang, c.mark, c.mark_arg) == ("", "needs", "duckdb")
