"""The built wheel works in a project of someone else's, as the README's "Install into your own
project" says: built from this checkout (``uv build``), installed into a fresh venv, and used from
a directory outside the repository, with nothing of the checkout on ``sys.path``.

There, the README's first notebook snippet is recorded once against the loopback OpenAI server by
the installed ``notebook-recorder run`` and replayed with ``--check`` with no key and no server;
and a test marked ``@pytest.mark.apirec`` is recorded, then replayed by the installed plugin.
PyPI (or uv's cache) provides the dependencies; the tests themselves reach only 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import nbformat
import pytest
from ca_bundle import with_machine_ca
from test_readme import PYTHON, README, readme_blocks
from wire_server import TEST_API_KEY, WireServer

import notebook_recorder as nr

pytestmark = [pytest.mark.frontend, pytest.mark.timeout(900)]

ROOT = Path(nr.__file__).resolve().parent.parent


def _uv() -> str:
    for candidate in (ROOT / ".cache" / "uv" / "bin" / "uv", shutil.which("uv")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    pytest.fail("uv is needed to build and install the wheel: `make test` installs it into .cache/uv")


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a stranger's shell: nothing of this checkout, no keys, no recorder settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("APIREC_", "OPENAI_", "ANTHROPIC_", "PYTEST_", "NOTEBOOK_RECORDER_", "VIRTUAL_ENV"))
        and k not in ("PYTHONPATH", "COV_CORE_SOURCE")
    }
    env["APIREC_CACHE_DIR"] = os.environ.get("APIREC_CACHE_DIR", "off")  # conftest.py's, never ~/.cache
    # The machine's CA settings, not conftest.py's one-certificate bundle: `uv build` fetches the
    # build backend from the package index.
    return {**with_machine_ca(env), **extra}


def _run(command: list[str | Path], cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    done = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{' '.join(map(str, command))} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel built from this checkout (and pytest) installed: its bin directory."""
    uv, work = _uv(), tmp_path_factory.mktemp("install")
    env = _clean_env()
    # The sdist, then the wheel built from it (as a package index's builders do).
    _run([uv, "build", "--out-dir", work / "dist", ROOT], cwd=work, env=env)
    (sdist,) = (work / "dist").glob("notebook_recorder-*.tar.gz")
    with tarfile.open(sdist) as archive:
        top = {name.split("/", 2)[1] for name in archive.getnames() if name.count("/")}
    # hatchling adds .gitignore to every sdist (its wheel build from the sdist reads it).
    expected = {"notebook_recorder", "README.md", "CHANGELOG.md", "LICENSE", "pyproject.toml", "PKG-INFO", ".gitignore"}
    assert top == expected, top
    (wheel,) = (work / "dist").glob("notebook_recorder-*.whl")
    assert wheel.name == f"notebook_recorder-{nr.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert not [n for n in names if not n.startswith(("notebook_recorder/", "notebook_recorder-"))], names

    venv = work / "venv"
    _run([uv, "venv", "--quiet", "--python", sys.executable, venv], cwd=work, env=env)
    _run([uv, "pip", "install", "--quiet", "--python", venv / "bin" / "python", wheel, "pytest"], cwd=work, env=env)
    return venv / "bin"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A directory of the user's own, outside the repository."""
    path = tmp_path / "my-project"
    path.mkdir()
    assert ROOT not in path.resolve().parents
    return path


def test_the_installed_package_is_the_wheel_not_this_checkout(installed: Path, project: Path) -> None:
    where = _run(
        [installed / "python", "-c", "import notebook_recorder as nr; print(nr.__file__, nr.__version__)"],
        cwd=project,
        env=_clean_env(),
    )
    assert str(installed.parent) in where and f" {nr.__version__}" in where
    assert str(ROOT) not in where


def test_the_readmes_first_notebook_snippet_records_then_replays_offline(installed: Path, project: Path) -> None:
    snippet = next(block for block in readme_blocks(README.read_text(encoding="utf-8")) if block.lang in PYTHON)
    assert "%load_ext notebook_recorder" in snippet.code
    notebook = project / "analysis.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(snippet.code)]), notebook)
    cli = installed / "notebook-recorder"

    with WireServer() as server:
        online = _clean_env(OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY=TEST_API_KEY)
        out = _run([cli, "run", notebook, "--mode", "record-if-missing"], cwd=project, env=online)
        assert "1 call recorded" in out, out
        assert len(server.requests) == 1
    assert len(list((project / "recordings" / "analysis").glob("*.json"))) == 1

    # No key, no server: replayed, and the outputs the record run stored match.
    out = _run([cli, "run", notebook, "--check"], cwd=project, env=_clean_env())
    assert "1 call replayed" in out and "outputs match" in out, out


def test_a_marked_pytest_test_records_then_replays_offline(installed: Path, project: Path) -> None:
    (project / "tests").mkdir()
    (project / "tests" / "test_agent.py").write_text(
        textwrap.dedent(
            """
            import pytest
            from openai import OpenAI

            client = OpenAI(max_retries=0)

            @pytest.mark.apirec
            def test_agent(apirec):
                reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
                assert reply.choices[0].message.content
            """
        ),
        encoding="utf-8",
    )
    pytest_command = [installed / "python", "-m", "pytest", "-p", "no:cacheprovider", "tests"]
    with WireServer() as server:
        online = _clean_env(OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY=TEST_API_KEY)
        out = _run([*pytest_command, "--apirec-mode=record-if-missing"], cwd=project, env=online)
        assert "1 passed" in out and "1 recorded" in out, out
    assert list((project / "tests" / "recordings" / "test_agent").glob("*.json"))

    out = _run(pytest_command, cwd=project, env=_clean_env())
    assert "1 passed" in out and "1 replayed" in out, out
