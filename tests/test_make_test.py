"""`make test` ends with what failed: each part writes its output to .cache/logs/PART.log and says
when it starts and ends, and a last step names the failed parts with their FAILED and ERROR lines.

These run the Makefile's own rules (``logged-PART`` and ``summary``) with make, on parts that
take no time: a part that fails, one that passes, and the logs they leave."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def make(*args: str, logs: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-f", str(ROOT / "Makefile"), f"LOGS={logs}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_part_says_when_it_starts_and_ends_and_keeps_its_output_in_a_log(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    # `summary` itself, as a part: it passes (no part has failed yet) and prints one line.
    done = make("logged-summary", logs=logs)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].endswith(f"summary started (output: {logs}/summary.log)")
    assert " summary passed (" in lines[-1]
    assert (logs / "summary.log").read_text().startswith("make test: every part passed")


def test_a_failed_part_is_named_last_with_its_failed_lines(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    # A part whose target does not exist fails at once, like any failing part.
    done = make("logged-no-such-part", logs=logs)
    assert done.returncode != 0
    assert "no-such-part FAILED (" in done.stdout
    assert "No rule to make target" in done.stdout  # the end of its log, shown when it ends
    assert (logs / "no-such-part.failed").exists()

    # A suite that failed: pytest's short summary lines are what the summary shows.
    (logs / "unit.log").write_text(
        "tests/test_a.py ..F.\n" + "x = 1\n" * 200 + "FAILED tests/test_a.py::test_b - AssertionError: 1 != 2\n"
        "ERROR tests/test_c.py::test_d - RuntimeError\n= 1 failed, 1 error, 300 passed in 9.1s =\n"
    )
    (logs / "unit.failed").touch()
    (logs / "lint.log").write_text("All checks passed!\n")  # passed: not in the summary
    done = make("summary", logs=logs)
    out = done.stdout.splitlines()
    assert out[-1] == "make test: FAILED: no-such-part unit", done.stdout
    unit = out.index(f"==== unit FAILED (the whole output: {logs}/unit.log)")
    assert out[unit + 1 : unit + 4] == [
        "    FAILED tests/test_a.py::test_b - AssertionError: 1 != 2",
        "    ERROR tests/test_c.py::test_d - RuntimeError",
        "    = 1 failed, 1 error, 300 passed in 9.1s =",
    ]
    assert "x = 1" not in done.stdout and "lint" not in done.stdout
