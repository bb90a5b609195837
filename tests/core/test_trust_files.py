"""One bad file breaks nothing else, and nothing hangs (issue 10).

Each odd entry (a FIFO, a socket, link loops, a broken link, deep nesting, wrong shapes...) sits
beside a good recording made by the real SDK against the local wire server. The good recording
is named other than its key, so that finding it goes through the content index, past the bad
entry. Replay still finds it; a miss raises ``RecordingNotFoundError`` naming the bad entry;
``load_recordings`` gives the bad entry a row with ``error``; the command line (real
subprocesses with timeouts) finishes and names it. A hypothesis fuzzer writes arbitrary
JSON-ish files beside the good one. Temporary files left by killed writes are cleaned up.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import openai
import orjson
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import notebook_recorder as nr
import notebook_recorder.analysis as nra
from notebook_recorder import RecordingError, RecordingFormatError, RecordingNotFoundError
from notebook_recorder.analysis._loader import clear_cache, parse_file
from notebook_recorder.core._codec import loads
from notebook_recorder.core._files import MAX_DEPTH, stale_temp_files
from notebook_recorder.core._keys import InferenceRequest, record_key
from notebook_recorder.core._store import Store, forget_indexes
from notebook_recorder.frontends.cli.main import main

REPO = Path(__file__).resolve().parents[2]
HI = [{"role": "user", "content": "Hi"}]
NEVER = [{"role": "user", "content": "a question never recorded"}]


@pytest.fixture(autouse=True)
def _cold_analysis_cache() -> None:
    clear_cache()


# ---------------------------------------------------------------------------------------------
# a good recording, and the bad entries placed beside it
# ---------------------------------------------------------------------------------------------


def record_good(client: openai.OpenAI, directory: Path) -> tuple[Path, str]:
    """Record one chat call with the real SDK; rename its file so only its content gives its key.

    Returns the file and the answer the SDK returned live.
    """
    with nr.recording("record", dir=directory):
        answer = client.chat.completions.create(model="gpt-4o", messages=HI).choices[0].message.content
    (written,) = directory.glob("*.json")
    good = written.rename(directory / "good.json")
    assert isinstance(answer, str) and answer
    return good, answer


def _record_like(good: Path, **changes: Any) -> dict[str, Any]:
    """The good recording, asking something else, with ``changes`` applied to its top level."""
    record = json.loads(good.read_text())
    record["request"]["body"]["messages"] = [{"role": "user", "content": "another question"}]
    record.update(changes)
    return record


def _response_like(good: Path, **changes: Any) -> dict[str, Any]:
    record = _record_like(good)
    record["response"] = {**record["response"], **changes}
    return record


def _nested(depth: int) -> bytes:
    """A recording whose request body holds a list nested ``depth`` levels deep."""
    inner = b"[" * depth + b"]" * depth
    return (
        b'{"request": {"method": "POST", "endpoint": "/v1/chat/completions", "body": {"messages": '
        + inner
        + b'}}, "response": {"body": {}}}'
    )


def _write(path: Path, data: bytes | dict[str, Any]) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else orjson.dumps(data))
    return path


def _fifo(d: Path, good: Path) -> Path:
    os.mkfifo(d / "x.json")
    return d / "x.json"


def _socket(d: Path, good: Path) -> Path:
    path = d / "s.json"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    cwd = os.getcwd()
    os.chdir(d)  # a relative name: AF_UNIX paths are limited to ~100 bytes
    try:
        sock.bind(path.name)
    finally:
        os.chdir(cwd)
        sock.close()  # the socket file stays
    return path


def _link_loop(d: Path, good: Path) -> list[Path]:
    os.symlink("b.json", d / "a.json")
    os.symlink("a.json", d / "b.json")
    return [d / "a.json", d / "b.json"]


def _dir_loop(d: Path, good: Path) -> Path:
    (d / "sub").mkdir()
    os.symlink("..", d / "sub" / "up")  # sub/up/sub/up/... without end
    return d / "sub" / "up"


def _dangling(d: Path, good: Path) -> Path:
    os.symlink("nowhere.json", d / "broken.json")
    return d / "broken.json"


def _unreadable(d: Path, good: Path) -> Path:
    path = _write(d / "secret.json", _record_like(good))
    path.chmod(0)
    return path


#: name -> (make the bad entry beside ``good`` in a directory, is it a regular file?)
ODD: dict[str, tuple[Callable[[Path, Path], Path | list[Path]], bool]] = {
    "fifo": (_fifo, False),
    "socket": (_socket, False),
    "symlink-loop": (_link_loop, False),
    "directory-loop": (_dir_loop, False),
    "dangling-link": (_dangling, False),
    "chmod-000": (_unreadable, True),
    "nested-5000": (lambda d, g: _write(d / "deep5000.json", _nested(5000)), True),
    "nested-990": (lambda d, g: _write(d / "deep990.json", _nested(990)), True),
    "mapping-list": (
        lambda d, g: _write(d / "mapping.json", _record_like(g, id_normalization_mapping={"rec-1": ["x"]})),
        True,
    ),
    "type-dots": (
        lambda d, g: _write(d / "dots.json", _response_like(g, body={"__type__": "....", "__data__": {}})),
        True,
    ),
    "top-level-list": (lambda d, g: _write(d / "list.json", b"[1, 2, 3]\n"), True),
    "body-5": (lambda d, g: _write(d / "five.json", _response_like(g, body=5)), True),
    "request-not-object": (lambda d, g: _write(d / "request.json", _record_like(g, request="POST /x")), True),
    "empty": (lambda d, g: _write(d / "empty.json", b""), True),
    "invalid-utf8": (lambda d, g: _write(d / "utf8.json", b'{"request": {"body": "\xff\xfe"}, "response": {}}'), True),
    "huge-number": (
        lambda d, g: _write(d / "huge.json", orjson.dumps(_record_like(g)).replace(b'"role"', b'"n": 1e999, "role"')),
        True,
    ),
}


def _make(case: str, directory: Path, good: Path) -> list[Path]:
    """The odd entries of ``case``, made in ``directory``."""
    if case == "chmod-000" and os.geteuid() == 0:
        pytest.skip("running as root: a mode-000 file is still readable, so it is no odd file here")
    made = ODD[case][0](directory, good)
    return made if isinstance(made, list) else [made]


# ---------------------------------------------------------------------------------------------
# replay and load_recordings, per odd entry
# ---------------------------------------------------------------------------------------------


@pytest.mark.timeout(20)
@pytest.mark.parametrize("case", list(ODD))
def test_replay_finds_the_good_recording_and_a_miss_names_the_bad_entry(
    case: str, client: openai.OpenAI, tmp_path: Path
) -> None:
    rec = tmp_path / "rec"
    good, answer = record_good(client, rec)
    bad = _make(case, rec, good)[0]
    forget_indexes()
    with nr.recording("replay", dir=rec):
        replayed = client.chat.completions.create(model="gpt-4o", messages=HI)
        assert replayed.choices[0].message.content == answer
        with pytest.raises(RecordingNotFoundError) as missing:
            client.chat.completions.create(model="gpt-4o", messages=NEVER)
        again = client.chat.completions.create(model="gpt-4o", messages=HI)  # the index still serves
        assert again.choices[0].message.content == answer
    message = str(missing.value)
    assert "could not be read" in message
    assert bad.name in message, message


@pytest.mark.timeout(20)
@pytest.mark.parametrize("case", list(ODD))
def test_load_recordings_gives_the_bad_entry_an_error_row(case: str, client: openai.OpenAI, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    good, answer = record_good(client, rec)
    bad = _make(case, rec, good)
    frame = nra.load_recordings(rec).set_index("path")
    assert pd.isna(frame.loc[str(good), "error"])
    assert frame.loc[str(good), "text"] == answer
    errors = frame["error"].dropna()
    if case == "nested-990":  # the loader walks nothing recursively: any depth orjson reads is harmless
        assert errors.empty and frame.loc[str(bad[0]), "kind"] == "inference"
        with pytest.raises(RecordingFormatError, match="nested deeper than"):
            Store(rec).read(bad[0])
        return
    assert sorted(errors.index) == sorted(map(str, bad)), frame[["error"]]
    assert nra.load_recordings(rec).set_index("path")["error"].dropna().to_dict() == errors.to_dict()  # again
    with pytest.raises(RecordingFormatError, match=bad[0].name):
        nra.load_recordings(rec, strict=True)
    if ODD[case][1]:  # a regular file: the store reads it as a format error too
        with pytest.raises(RecordingFormatError, match=bad[0].name):
            Store(rec).read(bad[0])


def test_deep_nesting_is_bounded_at_max_depth(tmp_path: Path) -> None:
    ok, deep = _nested(MAX_DEPTH - 3), _nested(MAX_DEPTH - 2)  # record > request > body > the lists
    assert loads(ok) == json.loads(ok)  # read in full, as the json module reads it
    with pytest.raises(RecordingFormatError, match=f"nested deeper than {MAX_DEPTH} levels"):
        loads(deep, "deep.json")
    assert not isinstance(parse_file(str(_write(tmp_path / "deep.json", deep)))[0], str)  # harmless there


def test_odd_but_readable_shapes_do_not_break_the_index(client: openai.OpenAI, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    good, answer = record_good(client, rec)
    record = _record_like(good)
    odd = {
        "body-string.json": {**record, "request": {**record["request"], "body": "a string"}},
        "test-id-list.json": {**record, "test_id": ["a", "list"]},
        "body-list.json": _response_like(good, body=[1, 2, 3]),
        "tool-kwargs-list.json": {**record, "request": {"tool_name": ["x"], "kwargs": [1], "provider": None}},
        "big-int.json": orjson.dumps(record).replace(b'"role"', b'"n": 123456789012345678901234567890, "role"'),
    }
    for name, data in odd.items():
        _write(rec / name, data)
    forget_indexes()
    with nr.recording("replay", dir=rec):
        assert client.chat.completions.create(model="gpt-4o", messages=HI).choices[0].message.content == answer
        with pytest.raises(RecordingNotFoundError):
            client.chat.completions.create(model="gpt-4o", messages=NEVER)
    assert Store(rec).errors() == {}
    assert nra.load_recordings(rec)["path"].tolist() == sorted(str(p) for p in rec.glob("*.json"))


# ---------------------------------------------------------------------------------------------
# the command line, over one directory holding every odd entry
# ---------------------------------------------------------------------------------------------


def cli(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(
        [sys.executable, "-m", "notebook_recorder.cli", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def zoo(client: openai.OpenAI, tmp_path: Path) -> tuple[Path, Path, list[Path]]:
    """A directory with the good recording and every odd entry (each in its own subdirectory)."""
    rec = tmp_path / "rec"
    good, _ = record_good(client, rec)
    bad = []
    for case in ODD:
        if case == "chmod-000" and os.geteuid() == 0:
            continue
        (rec / case).mkdir()
        bad += _make(case, rec / case, good)
    return rec, good, bad


@pytest.mark.timeout(120)
def test_ls_verify_show_and_import_finish_and_name_every_bad_entry(
    zoo: tuple[Path, Path, list[Path]], tmp_path: Path
) -> None:
    rec, good, bad = zoo
    ls = cli("ls", rec, "--full")
    assert ls.returncode == 0, ls.stdout + ls.stderr
    verify = cli("verify", rec)
    assert verify.returncode == 1, verify.stdout + verify.stderr
    assert f"unreadable files ({len(bad)})" in verify.stdout
    for path in bad:
        rel = str(path.relative_to(rec))
        assert rel in ls.stdout, (rel, ls.stdout)
        assert rel in verify.stdout, (rel, verify.stdout)
        shown = cli("show", path)
        assert shown.returncode in (1, 2), shown.stdout + shown.stderr
        assert "Traceback" not in shown.stdout + shown.stderr
    key = record_key(json.loads(good.read_text()))
    assert key is not None
    shown = cli("show", key[:8], "--dir", rec)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    missing = cli("show", "abcdef12", "--dir", rec)
    assert missing.returncode == 1 and "could not be read" in missing.stderr  # failures go to stderr
    imported = cli("import", rec, tmp_path / "copy")
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert "1 imported" in imported.stdout and f"{len(bad)} skipped" in imported.stdout


@pytest.mark.timeout(180)
def test_prune_finishes_leaves_bad_entries_alone_and_removes_stale_temp_files(
    zoo: tuple[Path, Path, list[Path]], tmp_path: Path
) -> None:
    rec, good, bad = zoo
    stale, fresh = _temp_file(rec, age=2 * 3600), _temp_file(rec, age=0, pid=os.getpid())
    notebook = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")]), notebook)
    result = cli("prune", rec, "--used-by", notebook, "--yes", timeout=150)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(bad)} entries in {rec} are not readable recordings (left alone)" in result.stdout
    for path in bad:
        assert str(path.relative_to(rec)) in result.stdout
        assert os.path.lexists(path)
    assert not good.exists()  # unused by the notebook: deleted, as asked
    assert not stale.exists() and fresh.exists()


# ---------------------------------------------------------------------------------------------
# temporary files
# ---------------------------------------------------------------------------------------------


def _temp_file(directory: Path, age: float, pid: int | None = None) -> Path:
    suffix = f"q{int(age) % 1_000_000:06d}w"  # 8 characters, as tempfile makes them
    name = f".0123456789abcdef.{pid}.{suffix}.tmp" if pid is not None else f".0123456789abcdef.{suffix}.tmp"
    path = directory / name
    path.write_bytes(b'{"partial')
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_write_removes_stale_temp_files_and_leaves_live_ones(tmp_path: Path) -> None:
    old = _temp_file(tmp_path, age=2 * 3600)
    dead_writer = _temp_file(tmp_path, age=120, pid=_dead_pid())
    live_writer = _temp_file(tmp_path, age=2 * 60, pid=os.getpid())
    just_started = _temp_file(tmp_path, age=1, pid=_dead_pid())
    unrelated = [_temp_file(tmp_path, age=2 * 3600).rename(tmp_path / name) for name in (".notes.tmp", ".a.b.tmp")]
    request = InferenceRequest("POST", "/v1/chat/completions", {"model": "m", "messages": []})
    record = {"test_id": None, "request": request.to_json(None), "response": {"body": {}}}
    Store(tmp_path).write(request.key(None), record)
    assert not old.exists() and not dead_writer.exists()
    assert live_writer.exists() and just_started.exists() and all(p.exists() for p in unrelated)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [f"{request.key(None)}.json"]


def test_a_write_killed_mid_way_leaves_a_temp_file_that_verify_reports(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    rec.mkdir()
    code = textwrap.dedent(
        f"""
        import os, sys, time
        from notebook_recorder.core._store import Store
        from notebook_recorder.core._keys import InferenceRequest
        def hang(fd):
            print("writing", flush=True)
            time.sleep(60)
        os.fsync = hang
        request = InferenceRequest("POST", "/v1/chat/completions", {{"model": "m", "messages": []}})
        Store({str(rec)!r}).write(request.key(None), {{"request": request.to_json(None), "response": {{}}}})
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "writing\n"
    proc.kill()
    proc.wait(timeout=20)
    (left,) = [p for p in rec.iterdir()]
    assert left.name.startswith(".") and left.name.endswith(".tmp") and f".{proc.pid}." in left.name

    verify = cli("verify", rec, timeout=30)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "temporary file" not in verify.stdout  # a minute ago its writer might still be alive
    a_minute_ago = time.time() - 120
    os.utime(left, (a_minute_ago, a_minute_ago))
    assert stale_temp_files(str(rec)) == [str(left)]
    verify = cli("verify", rec, timeout=30)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "1 temporary file(s) left by interrupted writes" in verify.stdout
    assert left.name in verify.stdout


# ---------------------------------------------------------------------------------------------
# the fuzzer: arbitrary JSON-ish files never raise anything but RecordingError, never break lookup
# ---------------------------------------------------------------------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
    | st.sampled_from(["....", "", "POST", "/v1/chat/completions", "builtins.int", "os.system", "a..b", "sk-"])
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=16,
)
_typed = st.fixed_dictionaries({"__type__": _json, "__data__": _json})
_slot = _json | _typed
_request = st.fixed_dictionaries(
    {},
    optional={
        k: _slot for k in ("method", "endpoint", "url", "body", "model", "tool_name", "provider", "kwargs", "payload")
    },
)
_response = st.fixed_dictionaries(
    {},
    optional={
        k: _slot | st.lists(_typed, max_size=3)
        for k in ("body", "is_streaming", "is_exception", "exception_data", "return_value", "status")
    },
)
_record = st.fixed_dictionaries(
    {},
    optional={
        "request": _request | _json,
        "response": _response | _json,
        "test_id": _slot,
        "id_normalization_mapping": _json,
        "recorder": _json,
    },
)
_deep = st.builds(lambda n, d: _nested(n) if d else b"[" * n + b"]" * n, st.integers(150, 1100), st.booleans())
_file_bytes = _record.map(orjson.dumps) | _json.map(orjson.dumps) | st.binary(max_size=40) | _deep


@pytest.fixture(scope="module")
def fuzz_dir() -> Iterator[tuple[Path, str]]:
    """A directory with one good recording under a name that is not its key."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        request = InferenceRequest("POST", "/v1/chat/completions", {"model": "m", "messages": HI})
        record = {"test_id": None, "request": request.to_json(None), "response": {"body": {"ok": True}}}
        (root / "good.json").write_bytes(orjson.dumps(record))
        yield root, request.key(None)


@pytest.mark.timeout(120)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=_file_bytes)
def test_fuzz_files_raise_only_recording_errors_and_never_break_lookup(
    data: bytes, fuzz_dir: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root, good_key = fuzz_dir
    fuzzed = root / "fuzzed.json"
    fuzzed.write_bytes(data)
    try:
        try:
            record = loads(data, fuzzed)
        except RecordingError:
            record = None
        if record is not None:
            record_key(record)
        result, _, _ = parse_file(str(fuzzed))  # the analysis reader never raises
        assert result is not None
        forget_indexes()
        store = Store(root)
        found = store.find(good_key)
        assert found is not None and found.path == root / "good.json"
        assert store.find("0" * 64) is None
        assert set(store.errors()) <= {fuzzed}
        recorder = nr.Recorder("replay", dir=root)
        with pytest.raises(RecordingNotFoundError):
            recorder.decide(InferenceRequest("POST", "/v1/chat/completions", {"model": "m", "messages": NEVER}))
        clear_cache()
        frame = nra.load_recordings(root).set_index("path")
        assert pd.isna(frame.loc[str(root / "good.json"), "error"])
        assert main(["ls", str(root)]) == 0  # the command line's readers too
        assert main(["verify", str(root)]) in (0, 1)
        out = capsys.readouterr().out  # good.json is read (its name is not its key), never unreadable
        assert out.count("good.json:") == 1 and "good.json: its key is" in out
    finally:
        fuzzed.unlink()
