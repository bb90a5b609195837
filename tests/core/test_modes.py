"""Modes: parsing, environment overrides, and what each mode needs from the directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import notebook_recorder as nr
from notebook_recorder.core._keys import InferenceRequest
from notebook_recorder.core._modes import Mode, env_dir, env_mode, valid_modes
from notebook_recorder.core._recorder import Recorder


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("live", Mode.LIVE),
        ("REPLAY", Mode.REPLAY),
        (" record ", Mode.RECORD),
        ("record-if-missing", Mode.RECORD_IF_MISSING),
        ("record_if_missing", Mode.RECORD_IF_MISSING),
        (Mode.REPLAY, Mode.REPLAY),
    ],
)
def test_parse(text: str, mode: Mode) -> None:
    assert Mode.parse(text) is mode


def test_unknown_mode_lists_the_four_valid_ones() -> None:
    with pytest.raises(ValueError) as info:
        Mode.parse("playback")
    message = str(info.value)
    assert "'playback'" in message
    for name in ("live", "record", "replay", "record-if-missing"):
        assert name in message
    assert valid_modes() == ["live", "record", "replay", "record-if-missing"]
    with pytest.raises(ValueError, match="record-if-missing"):
        nr.recording("playback")


def test_reads_and_writes() -> None:
    assert [m for m in Mode if m.reads] == [Mode.REPLAY, Mode.RECORD_IF_MISSING]
    assert [m for m in Mode if m.writes] == [Mode.RECORD, Mode.RECORD_IF_MISSING]
    assert str(Mode.RECORD_IF_MISSING) == "record-if-missing"


def test_env_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert env_mode() is None and env_dir() is None
    monkeypatch.setenv("APIREC_MODE", "replay")
    monkeypatch.setenv("APIREC_DIR", str(tmp_path))
    assert env_mode() is Mode.REPLAY
    assert env_dir() == tmp_path
    recorder = Recorder("record-if-missing", dir=tmp_path / "elsewhere")
    assert recorder.mode is Mode.REPLAY
    assert recorder.dir == tmp_path
    assert recorder.requested_mode is Mode.RECORD_IF_MISSING
    monkeypatch.setenv("APIREC_MODE", "  ")
    assert env_mode() is None
    monkeypatch.setenv("APIREC_MODE", "bogus")
    with pytest.raises(ValueError, match=r"APIREC_MODE.*record-if-missing"):
        env_mode()


def test_env_mode_wins_inside_recording(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("APIREC_MODE", "replay")
    with nr.recording("record", dir=tmp_path) as recorder:
        assert recorder.mode is Mode.REPLAY


def test_replay_from_a_missing_directory_is_an_empty_one(tmp_path: Path) -> None:
    # Issue 21, item 9: nothing recorded yet is not a configuration error; each call is missing.
    missing = tmp_path / "nope"
    for mode in ("replay", "live", "record", "record-if-missing"):
        with nr.recording(mode, dir=missing):
            pass
    assert not missing.exists()  # created on the first write, not before
    with nr.recording("replay", dir=missing) as recorder:
        request = InferenceRequest(method="POST", endpoint="/v1/chat/completions", body={"model": "m"})
        with pytest.raises(nr.RecordingNotFoundError, match="does not exist: nothing has been recorded there yet"):
            recorder.decide(request)


def test_replay_on_a_missing_env_dir_is_an_empty_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("APIREC_DIR", os.fspath(tmp_path / "absent"))
    with nr.recording("replay", dir=tmp_path) as recorder:
        request = InferenceRequest(method="GET", endpoint="/search?q=x", body={})
        with pytest.raises(nr.RecordingNotFoundError, match="absent"):
            recorder.decide(request)


def test_relative_directory_is_fixed_when_recording_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Notebooks change directory (%cd): the recordings directory chosen stays the same one.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()

    @nr.tool(provider="p", name="echo")
    def echo(x: int) -> int:
        return x

    nr.start("record", dir="recs")
    try:
        echo(1)
        os.chdir(tmp_path / "sub")
        echo(2)
    finally:
        nr.stop()
    assert len(list((tmp_path / "recs").glob("*.json"))) == 2
    assert not (tmp_path / "sub" / "recs").exists()

    nr.start("replay", dir="../recs")
    try:
        os.chdir(tmp_path)
        assert echo(2) == 2
    finally:
        nr.stop()
