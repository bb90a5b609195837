"""A recordings folder from a stranger: file names that are not UTF-8, and links out of it.

Found by using the package on a folder nobody here wrote (not by reading its code):

- A file whose name is not valid UTF-8 (Python sees each undecodable byte as a lone surrogate)
  stopped ``load_recordings`` (Arrow stores only UTF-8) and, where stdout's encoding is strict
  (``en_US.UTF-8``), ``verify`` and every ``--json`` with ``UnicodeEncodeError``; elsewhere the
  raw byte (``0x9b``, a C1 CSI) reached the terminal.
- A link to a directory above the folder (``up -> ..``, ``root -> /``) was followed: ``ls``,
  ``verify`` and replay's content index read everything beside the folder (the whole disk for
  ``/``), and replay served a recording from outside it.

Real recordings made by the real SDK against the local wire server; the command line runs in
real subprocesses.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import openai
import pytest

import notebook_recorder as nr
from notebook_recorder import RecordingNotFoundError
from notebook_recorder.analysis._loader import clear_cache
from notebook_recorder.core._store import forget_indexes

REPO = Path(__file__).resolve().parents[2]
HI = [{"role": "user", "content": "Hi"}]
OTHER = [{"role": "user", "content": "a question asked outside the folder"}]
RAW_NAME = b"y\x9b31mRAW.json"  # 0x9b: not UTF-8; to a terminal that reads 8-bit controls, CSI


def cli(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    """The command in a subprocess whose stdout and stderr encode strictly (as under en_US.UTF-8)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "PYTHONIOENCODING": "utf-8:strict",
    }
    return subprocess.run(
        [sys.executable, "-m", "notebook_recorder.cli", *map(str, args)], env=env, capture_output=True, timeout=60
    )


@pytest.fixture
def raw_named(client: openai.OpenAI, tmp_path: Path) -> Path:
    """A folder with a good recording and a copy of it under a name that is not UTF-8."""
    rec = tmp_path / "rec"
    with nr.recording("record", dir=rec):
        client.chat.completions.create(model="gpt-4o", messages=HI)
    (good,) = rec.glob("*.json")
    try:
        shutil.copyfile(good, os.path.join(os.fsencode(rec), RAW_NAME))
    except OSError as exc:  # a file system that allows only UTF-8 names
        pytest.skip(f"this file system refuses a name that is not UTF-8: {exc}")
    clear_cache()
    return rec


@pytest.mark.parametrize("args", [("ls",), ("ls", "--json"), ("verify",), ("verify", "--json")])
def test_a_name_that_is_not_utf8_is_printed_escaped(raw_named: Path, args: tuple[str, ...]) -> None:
    done = cli(args[0], raw_named, *args[1:])
    assert b"Traceback" not in done.stderr, done.stderr.decode(errors="replace")
    assert done.returncode == (1 if args[0] == "verify" else 0), done.stderr.decode(errors="replace")
    assert b"\x9b" not in done.stdout + done.stderr  # the raw byte never reaches the terminal
    if args == ("verify",):  # the copy: a duplicate key, named other than its key, so named
        assert b"y\\udc9b31mRAW.json" in done.stdout, done.stdout
    if "--json" in args:  # valid JSON, whose strings hold the name, as Python has it or escaped
        assert "udc9b31mRAW.json" in json.dumps(json.loads(done.stdout)), done.stdout


def test_load_recordings_keeps_a_row_for_a_name_that_is_not_utf8(raw_named: Path) -> None:
    frame = nr.load_recordings(raw_named)
    assert len(frame) == 2 and frame["error"].isna().all(), frame
    assert sorted(Path(p).name for p in frame["path"])[1] == "y\\udc9b31mRAW.json"
    assert frame["text"].nunique() == 1  # the same answer in both files
    assert len(nr.messages(raw_named)) == 2


@pytest.mark.parametrize("target", ["..", "ROOT"])
def test_a_link_to_a_directory_above_is_a_loop_and_not_followed(
    client: openai.OpenAI, tmp_path: Path, target: str
) -> None:
    outer = tmp_path / "project"
    rec = outer / "recordings"
    with nr.recording("record", dir=outer):  # a recording beside the folder, not in it
        client.chat.completions.create(model="gpt-4o", messages=OTHER)
    (beside,) = outer.glob("*.json")
    beside.rename(outer / "beside.json")  # found by content only
    with nr.recording("record", dir=rec):
        client.chat.completions.create(model="gpt-4o", messages=HI)
    os.symlink(".." if target == ".." else tmp_path, rec / "up")
    forget_indexes()
    clear_cache()

    with nr.recording("replay", dir=rec):
        client.chat.completions.create(model="gpt-4o", messages=HI)  # the folder's own: replayed
        with pytest.raises(RecordingNotFoundError) as missing:
            client.chat.completions.create(model="gpt-4o", messages=OTHER)  # outside it: missing
    assert "beside.json" not in str(missing.value)

    listed = cli("ls", rec, "--json")
    assert listed.returncode == 0, listed.stderr
    files = [r["file"] for r in json.loads(listed.stdout)["recordings"]]
    assert not any("beside" in f for f in files), files
    assert any(f == "up" for f in files), files  # reported: a loop
    verify = cli("verify", rec)
    assert b"loop" in verify.stdout and b"beside" not in verify.stdout, verify.stdout
    frame = nr.load_recordings(rec)
    assert not frame["path"].str.contains("beside").any(), frame["path"].tolist()
