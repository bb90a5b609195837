"""``import notebook_recorder`` stays light: no pandas, nbclient or openai until they are used."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("pandas", "nbclient", "openai", "numpy", "matplotlib", "IPython")


def _run(code: str, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, *flags, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=60
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
    assert not loaded & {"pandas", "nbclient", "matplotlib"}


def test_import_time_is_small() -> None:
    """``-X importtime``: the package's own modules cost little, whatever the machine's speed."""
    stderr = _run("import notebook_recorder", "-X", "importtime").stderr
    rows = [line.split("|") for line in stderr.splitlines() if line.startswith("import time:") and "|" in line]
    ours = {row[2].strip(): int(row[1]) for row in rows if row[2].strip().startswith("notebook_recorder")}
    assert ours, stderr[-2000:]
    cumulative = {row[2].strip(): int(row[1]) for row in rows[1:]}
    assert cumulative["notebook_recorder"] < 150_000  # microseconds, stdlib included
    assert sum(ours.values()) < 50_000, ours
