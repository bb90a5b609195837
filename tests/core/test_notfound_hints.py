"""A missing recording says how to record it the way that fits where the call was made, first:
in plain code the ``nr.recording`` line, in IPython the magic, under pytest the pytest command
(tests/test_pytest_plugin.py checks the last one in a real pytest session)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import openai
import pytest
from IPython.core.interactiveshell import InteractiveShell

from notebook_recorder.core import _notfound

pytest_plugins = ["pytester"]

MAGIC = "%apirec record-if-missing"
CODE = 'nr.recording("record-if-missing"'
PYTEST = "pytest --apirec-mode=record-if-missing"


def _hints(message: str) -> list[str]:
    """The lines after "To record it": the ways to record, in the order given."""
    lines = message.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("To record it"))
    return [line.strip() for line in lines[start + 1 :] if line.startswith("    ")]


def test_in_plain_code_the_recording_line_comes_first(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import openai
        import notebook_recorder as nr

        client = openai.OpenAI(api_key="sk-test", base_url="http://127.0.0.1:9/v1", max_retries=0)
        try:
            with nr.recording("replay", dir="recordings"):
                client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
        except nr.RecordingNotFoundError as error:
            print(error)
        """
    )
    (tmp_path / "recordings").mkdir()
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    hints = _hints(done.stdout)
    assert hints[0].startswith(CODE), done.stdout
    assert hints[1].startswith(MAGIC), done.stdout
    assert PYTEST not in done.stdout


def test_in_ipython_the_magic_comes_first(ip: InteractiveShell, client: openai.OpenAI) -> None:
    Path("recordings").mkdir()  # the ip fixture's working directory
    ip.user_ns["client"] = client
    ip.run_line_magic("apirec", "replay --dir recordings")
    result = ip.run_cell('client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])')
    hints = _hints(str(result.error_in_exec))
    assert hints[0].startswith(MAGIC), str(result.error_in_exec)
    assert hints[1].startswith(CODE), str(result.error_in_exec)


def test_the_pytest_plugin_gives_its_command_to_the_recorder(pytester: pytest.Pytester) -> None:
    """The plugin's recorder carries the command that records the test; a test whose marker fixes
    the mode does not (--apirec-mode would not change it)."""
    pytester.makepyfile(
        test_cmd="""
        import pytest

        @pytest.mark.apirec
        def test_session_mode(apirec):
            assert apirec.record_command == "pytest --apirec-mode=record-if-missing test_cmd.py::test_session_mode"

        @pytest.mark.apirec(mode="replay")
        def test_marker_mode(apirec):
            assert apirec.record_command is None
        """
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_record_hint_orders_by_context(monkeypatch: pytest.MonkeyPatch) -> None:
    class Stub:
        record_command: str | None = "pytest --apirec-mode=record-if-missing t.py::test_x"

    monkeypatch.setattr(_notfound, "_in_ipython", lambda: True)
    lines = _notfound.record_hint(Stub(), "recordings")  # type: ignore[arg-type]
    assert lines[1].strip().startswith(PYTEST) and lines[2].strip().startswith(CODE)
    assert not any(MAGIC in line for line in lines)  # under pytest a magic would not help
