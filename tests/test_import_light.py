"""``import notebook_recorder`` stays light: no pandas, nbclient or openai until they are used."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("pandas", "nbclient", "openai", "anthropic", "numpy", "matplotlib", "IPython", "starlette", "uvicorn", "httpx")


def _run(code: str, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, *flags, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=180
    )


def _loaded(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    return set(_run(probe).stdout.split())


def test_import_loads_nothing_heavy() -> None:
    assert _loaded("import notebook_recorder") == set()


def test_the_recording_api_does_not_load_pandas() -> None:
    code = (
        "import notebook_recorder as nr\nnr.recording, nr.start, nr.stop, nr.calls, nr.Mode, nr.RecordingNotFoundError"
    )
    assert _loaded(code) == set()


def test_recording_a_block_loads_openai_but_not_pandas(tmp_path: Path) -> None:
    code = f"import notebook_recorder as nr\nwith nr.recording('record', dir={str(tmp_path)!r}): pass"
    loaded = _loaded(code)
    assert "openai" in loaded
    assert not loaded & {"pandas", "nbclient", "matplotlib", "anthropic"}  # anthropic: only once the user imports it


def test_import_loads_only_the_standard_library() -> None:
    """Importing the package costs its own small modules and some stdlib, nothing third-party.

    (Checked by what is loaded, not by timing it: a timed assertion fails on a busy machine.)
    """
    probe = (
        "import sys\nbefore = set(sys.modules)\nimport notebook_recorder\n"
        "print(' '.join(sorted({m.split('.')[0] for m in set(sys.modules) - before})))"
    )
    loaded = set(_run(probe).stdout.split())
    foreign = {name for name in loaded if name not in sys.stdlib_module_names and name != "notebook_recorder"}
    assert foreign == set()


def test_serve_loads_its_server_stack_only_when_started() -> None:
    """``nr.serve`` is a name like the others: starlette, uvicorn and httpx load when a server starts."""
    assert not _loaded("import notebook_recorder as nr\nnr.serve") & {"starlette", "uvicorn", "httpx", "pandas"}
