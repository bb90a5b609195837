"""Large corpora (issue 24): ``nr.export`` writes the frames as Parquet datasets, incrementally;
``nr.connect`` queries them with DuckDB; ``load_recordings`` and friends read them back."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import notebook_recorder as nr
from notebook_recorder.analysis import _export

FIXTURES = Path(__file__).parent.parent / "fixtures" / "llama-stack"
FRAMES = ("recordings", "messages", "tool_calls", "token_stream")
HOUR_AGO = time.time() - 3600


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    """Rows in a canonical order: by file, and within a file as the file lists them."""
    return df.sort_values("path", kind="stable").reset_index(drop=True)


def _assert_same(dataset: Path, src: Path | list[Path]) -> None:
    """Every frame read from ``dataset`` equals the frame built from ``src``: rows, columns, dtypes."""
    nr.analysis.clear_cache()
    frames = nr.load_frames(src)
    for name, expected in zip(FRAMES, frames, strict=True):
        got = getattr(nr, name if name != "recordings" else "load_recordings")(dataset)
        assert list(got.columns) == list(expected.columns), name
        assert dict(got.dtypes) == dict(expected.dtypes), name
        pd.testing.assert_frame_equal(_sorted(got), _sorted(expected), check_categorical=False, obj=name)


def _copy_fixtures(dest: Path) -> Path:
    shutil.copytree(FIXTURES, dest)
    for path in dest.rglob("*.json"):
        os.utime(path, (HOUR_AGO, HOUR_AGO))  # not "racy": an unchanged file is not read again
    return dest


def test_the_exported_datasets_equal_the_frames_on_the_fixtures(tmp_path: Path) -> None:
    src = _copy_fixtures(tmp_path / "src")
    for i, path in enumerate(sorted(src.rglob("*.json"))):
        if i % 3 == 0:  # these files say nothing of when they were recorded: their mtime tells
            os.utime(path, (HOUR_AGO - 86400 * 40, HOUR_AGO - 86400 * 40))
    result = nr.export(src, to=tmp_path / "ds", progress=False)
    assert result.files == result.read == len(list(FIXTURES.rglob("*.json")))
    _assert_same(tmp_path / "ds", src)
    for dataset in ("calls", "messages", "tool_calls", "chunks"):
        parts = sorted((tmp_path / "ds" / dataset).glob("day=*/part-*.parquet"))
        assert parts, dataset
        meta = pq.read_schema(parts[0]).metadata[b"notebook_recorder"]
        assert b'"schema_version": 1' in meta
    calls = pq.read_table(tmp_path / "ds" / "calls", partitioning="hive").schema
    assert str(calls.field("recorded_at").type) == "timestamp[us, tz=UTC]"  # Spark reads us, not ns
    assert str(calls.field("model").type).startswith("dictionary<")
    days = {p.name for p in (tmp_path / "ds" / "calls").glob("day=*")}
    assert len(days) > 1 and all(d[4:8].isdigit() for d in days)  # partitioned by recording day


def _hostile(root: Path) -> None:
    good = sorted(FIXTURES.rglob("*.json"))[:12]
    for i, path in enumerate(good):
        shutil.copy(path, root / f"good-{i}.json")
    (root / "broken.json").write_bytes(b'{"request": {"method": "POST", "bo')
    (root / "list.json").write_bytes(b"[1, 2, 3]\n")
    (root / "deep.json").write_bytes(b'{"request": {}, "response": {"body": ' + b"[" * 600 + b"]" * 600 + b"}}")
    (root / "types.json").write_bytes(b'{"request": {"body": 3}, "response": {"body": {"__type__": 5}}}')
    (root / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    os.mkfifo(root / "fifo.json")
    (root / "loop.json").symlink_to(root / "loop.json")
    for path in root.iterdir():
        if path.is_file() and not path.is_symlink():
            os.utime(path, (HOUR_AGO, HOUR_AGO))


def test_the_exported_datasets_equal_the_frames_on_hostile_files(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _hostile(src)
    result = nr.export(src, to=tmp_path / "ds", progress=False)
    assert result.errors >= 6
    _assert_same(tmp_path / "ds", src)
    calls = nr.load_recordings(tmp_path / "ds")
    assert calls["error"].notna().sum() >= 6


def test_an_incremental_export_equals_a_full_one(tmp_path: Path) -> None:
    src = _copy_fixtures(tmp_path / "src")
    first = nr.export(src, to=tmp_path / "inc", progress=False)
    files = sorted(src.rglob("*.json"))
    # add (a copy of a file that has tool calls), change, delete
    with_tools = next(p for p in files if b"tool_calls" in p.read_bytes() and b'"tool_call_id"' in p.read_bytes())
    shutil.copy(with_tools, src / "added.json")
    os.utime(src / "added.json", (HOUR_AGO, HOUR_AGO))
    changed = next(p for p in files[:5] if b'"test_id": "' in p.read_bytes())
    changed.write_bytes(changed.read_bytes().replace(b'"test_id": "', b'"test_id": "changed-', 1))
    os.utime(changed, (HOUR_AGO + 60, HOUR_AGO + 60))
    next(p for p in files[5:] if p != with_tools).unlink()
    (src / "broken.json").write_bytes(b"{")
    second = nr.export(src, to=tmp_path / "inc", progress=False)
    assert second.read == 3 and second.removed == 2  # added, changed, broken; changed and deleted removed
    assert second.files == first.files + 1
    full = nr.export(src, to=tmp_path / "full", progress=False)
    assert full.read == full.files == second.files
    for name in FRAMES:
        inc = getattr(nr, name if name != "recordings" else "load_recordings")(tmp_path / "inc")
        whole = getattr(nr, name if name != "recordings" else "load_recordings")(tmp_path / "full")
        pd.testing.assert_frame_equal(_sorted(inc), _sorted(whole), check_categorical=False, obj=name)
    _assert_same(tmp_path / "inc", src)
    assert nr.load_recordings(tmp_path / "inc")["test_id"].str.startswith("changed-").sum() == 1
    parts = {p: p.stat().st_mtime_ns for p in (tmp_path / "inc" / "tool_calls").glob("day=*/*.parquet")}
    assert parts
    third = nr.export(src, to=tmp_path / "inc", progress=False)
    assert third.read == 1 and third.removed == 1  # only the broken file, which is always read again
    # the broken file has no tool calls: no tool_calls part is written again
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "inc" / "tool_calls").glob("day=*/*.parquet")} == parts


def test_tool_outputs_are_matched_across_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _copy_fixtures(tmp_path / "src")
    monkeypatch.setattr(_export, "BATCH_FILES", 7)  # many batches: a call and its output apart
    nr.export(src, to=tmp_path / "ds", progress=False)
    got = _sorted(nr.tool_calls(tmp_path / "ds"))
    expected = _sorted(nr.tool_calls(src))
    assert expected["output"].notna().sum() > 0
    pd.testing.assert_frame_equal(got, expected, check_categorical=False)


@pytest.mark.timeout(150)
def test_export_in_worker_processes_equals_the_frames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _copy_fixtures(tmp_path / "src")
    # more batches than a worker takes before a fresh one takes over (at 100,000 files, 50
    # batches on 2 workers once hung: max_tasks_per_child=8 on Python 3.11)
    monkeypatch.setattr(_export, "TASKS_PER_WORKER", 3)
    batches = 3 * _export.TASKS_PER_WORKER + 2
    monkeypatch.setattr(_export, "BATCH_FILES", len(list(src.rglob("*.json"))) // batches)
    result = _export.export(src, tmp_path / "ds", progress=False, workers=2)
    assert result.read == len(list(src.rglob("*.json")))
    _assert_same(tmp_path / "ds", src)


def test_columns_and_filters_are_pushed_down(tmp_path: Path) -> None:
    nr.export(FIXTURES, to=tmp_path / "ds", progress=False)
    full = nr.load_recordings(FIXTURES)
    some = nr.load_recordings(tmp_path / "ds", columns=["model", "total_tokens"], filters=[("model", "=", "gpt-4o")])
    assert list(some.columns) == ["model", "total_tokens"]
    assert len(some) == (full["model"] == "gpt-4o").sum() > 0
    assert some["total_tokens"].sum() == full.loc[full["model"] == "gpt-4o", "total_tokens"].sum()
    msgs = nr.messages(tmp_path / "ds", columns=["role", "path"], filters=[("role", "=", "tool")])
    assert set(msgs["role"]) == {"tool"} and list(msgs.columns) == ["role", "path"]
    assert len(msgs) == (nr.messages(FIXTURES)["role"] == "tool").sum()
    with pytest.raises(KeyError, match=r"'modle'.*columns are kind, endpoint, model"):
        nr.load_recordings(tmp_path / "ds", columns=["modle"])
    with pytest.raises(ValueError, match="filters= applies to a dataset"):
        nr.load_recordings(FIXTURES, filters=[("model", "=", "x")])


def test_connect_gives_duckdb_views_that_agree_with_pandas(tmp_path: Path) -> None:
    nr.export(FIXTURES, to=tmp_path / "ds", progress=False)
    con = nr.connect(tmp_path / "ds")
    got = con.sql("select model, sum(total_tokens) as tokens from calls group by 1").df()
    frame = nr.load_recordings(FIXTURES)
    expected = frame.groupby("model", observed=True)["total_tokens"].sum()
    got = got.dropna(subset=["model"]).set_index("model")["tokens"]
    assert {k: int(v) for k, v in got.items()} == {k: int(v) for k, v in expected.items()}
    for view, frame_name in (("messages", "messages"), ("tool_calls", "tool_calls"), ("chunks", "token_stream")):
        (count,) = con.execute(f"select count(*) from {view}").fetchone()  # type: ignore[misc]
        assert count == len(getattr(nr, frame_name)(FIXTURES)), view


def test_connect_to_a_recordings_directory_exports_it_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APIREC_CACHE_DIR", str(tmp_path / "cache"))
    src = _copy_fixtures(tmp_path / "src")
    con = nr.connect(src)
    (n,) = con.execute("select count(*) from calls").fetchone()  # type: ignore[misc]
    assert n == len(list(src.rglob("*.json")))
    (dataset,) = (tmp_path / "cache" / "datasets").iterdir()  # under the library's cache directory
    assert dataset == _export.default_dataset_dir(src) and _export.is_dataset(dataset)
    monkeypatch.setenv("APIREC_CACHE_DIR", "off")  # no cache: the dataset still needs a home
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _export.default_dataset_dir(src).parent == tmp_path / "xdg" / "notebook-recorder" / "datasets"
    empty = tmp_path / "empty"
    empty.mkdir()
    con = nr.connect(empty, to=tmp_path / "empty-ds")
    assert con.execute("select count(*) from chunks").fetchone() == (0,)
    assert "total_tokens" in con.sql("select * from calls").columns


def test_export_refuses_a_directory_that_is_not_a_dataset(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a notebook-recorder dataset"):
        nr.export(FIXTURES, to=tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def _sql(manifest: Path, *statements: str) -> None:
    con = sqlite3.connect(manifest, isolation_level=None)
    for statement in statements:
        con.execute(statement)
    con.close()


def _changed_below(manifest: Path) -> Path:
    """The file that the test below deletes after damaging the manifest."""
    return next((manifest.parent.parent / "src").rglob("*.json"))


DAMAGES: dict[str, Callable[[Path], None]] = {
    "not SQLite": lambda m: m.write_bytes(b"not a database at all, " * 100),
    "empty": lambda m: m.write_bytes(b""),
    "truncated": lambda m: m.write_bytes(m.read_bytes()[:5000]),
    "a damaged page": lambda m: m.write_bytes(m.read_bytes()[:4096] + b"\xff" * 4096 + m.read_bytes()[8192:]),
    "another application's database": lambda m: _sql(m, "PRAGMA application_id = 7"),
    "another manifest version": lambda m: _sql(m, "UPDATE meta SET value = 99 WHERE key = 'manifest_version'"),
    "the manifest of version 1 (files keyed by path)": lambda m: _sql(
        m,
        "DROP TABLE files",
        "CREATE TABLE files (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, "
        "batch INTEGER NOT NULL) WITHOUT ROWID",
        "CREATE INDEX files_batch ON files (batch)",
        "UPDATE meta SET value = 1 WHERE key = 'manifest_version'",
    ),
    "another schema version": lambda m: _sql(m, "UPDATE meta SET value = 0 WHERE key = 'schema_version'"),
    "a value of the wrong type": lambda m: _sql(
        m, "UPDATE files SET batch = 'x' WHERE name = (SELECT min(name) FROM files)"
    ),
    "a negative batch": lambda m: _sql(m, "UPDATE files SET batch = -3"),
    "a batch too large": lambda m: _sql(
        m, "UPDATE files SET batch = 10000000 WHERE name = (SELECT max(name) FROM files)"
    ),
    # seen only where that row is read: the file changed below is the one
    "a fractional batch": lambda m: _sql(
        m, f"UPDATE files SET batch = batch + 0.5 WHERE name = '{_changed_below(m).name}'"
    ),
    "a directory that is not text": lambda m: _sql(
        m, "UPDATE files SET dir = X'0102' WHERE name = (SELECT max(name) FROM files)"
    ),
    "a name that is not UTF-8": lambda m: _sql(
        m, f"UPDATE files SET name = CAST(X'FF41' AS TEXT) WHERE name = '{_changed_below(m).name}'"
    ),
    "a trigger": lambda m: _sql(m, "CREATE TRIGGER t AFTER INSERT ON files BEGIN DELETE FROM files; END"),
    "a missing table": lambda m: _sql(m, "DROP TABLE meta"),
    "a link elsewhere": lambda m: (m.unlink(), m.symlink_to(m.parent.parent / "elsewhere.sqlite")),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_or_hostile_manifest_rebuilds_the_dataset(tmp_path: Path, damage: str) -> None:
    src = _copy_fixtures(tmp_path / "src")
    nr.export(src, to=tmp_path / "ds", progress=False)
    manifest = tmp_path / "ds" / _export.MANIFEST
    if damage == "a link elsewhere":
        shutil.copy(manifest, tmp_path / "elsewhere.sqlite")
    DAMAGES[damage](manifest)
    _changed_below(manifest).unlink()  # a change: a dataset kept as it was would show the file
    again = nr.export(src, to=tmp_path / "ds", progress=False)
    assert again.read == again.files == len(list(src.rglob("*.json")))
    _assert_same(tmp_path / "ds", src)
    assert _export.is_dataset(tmp_path / "ds") and not manifest.is_symlink()
    assert nr.export(src, to=tmp_path / "ds", progress=False).read == 0  # and trusted again


def test_a_dataset_of_the_older_layout_is_read_and_rebuilt(tmp_path: Path) -> None:
    """Exports before the SQLite manifest wrote ``_manifest.json``: such a dataset is still one
    (readable, not refused) and the next export rebuilds it."""
    ds = tmp_path / "ds"
    nr.export(FIXTURES, to=ds, progress=False)
    (ds / _export.MANIFEST).unlink()
    old = {"format": "notebook-recorder dataset", "schema_version": 1, "files": {"gone.json": [1, 2, 0]}}
    (ds / "_manifest.json").write_bytes(orjson.dumps(old))
    assert _export.is_dataset(ds)
    assert len(nr.load_recordings(ds)) == len(list(FIXTURES.rglob("*.json")))
    again = nr.export(FIXTURES, to=ds, progress=False)
    assert again.read == again.files
    assert not (ds / "_manifest.json").exists()
    _assert_same(ds, FIXTURES)


def test_is_dataset_reads_the_manifest_header_only(tmp_path: Path) -> None:
    nr.export(FIXTURES, to=tmp_path / "ds", progress=False)
    assert _export.is_dataset(tmp_path / "ds") and _export.is_dataset(str(tmp_path / "ds"))
    assert not _export.is_dataset(FIXTURES) and not _export.is_dataset(tmp_path / "nope")
    other = tmp_path / "other"
    other.mkdir()
    _sql(other / _export.MANIFEST, "CREATE TABLE t (x)")  # SQLite, not ours
    assert not _export.is_dataset(other)


# --- two exports at once, and an export killed half way ----------------------------------------


def _export_process(src: Path, out: Path, **env: str) -> subprocess.Popen[str]:
    code = (
        "import sys, notebook_recorder as nr\n"
        "r = nr.export(sys.argv[1], to=sys.argv[2], progress=False)\n"
        "print(r.read, r.files)\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, str(src), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


@pytest.mark.timeout(300)
def test_two_exports_at_once_run_one_after_the_other(tmp_path: Path) -> None:
    src = _copy_fixtures(tmp_path / "src")
    out = tmp_path / "ds"
    out.mkdir()
    holder = os.open(out / _export.LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)  # a third export holds the dataset: both wait for it
    procs = [_export_process(src, out, **{_export.ENV_EXPORT_WORKERS: "0"}) for _ in range(2)]
    before: list[str] = []
    try:
        for proc in procs:  # each says it waits (once both do, both are blocked on the lock)
            assert proc.stderr is not None
            for line in proc.stderr:
                before.append(line)
                if "waiting" in line:
                    break
        assert [p.poll() for p in procs] == [None, None]
        assert not (out / _export.MANIFEST).exists()  # neither wrote anything
    finally:
        os.close(holder)  # the lock is released
    done = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in done]
    waits = "".join(before) + "".join(e for _, e in done)
    assert waits.count("is being exported by another process; waiting") == 2, waits
    n = len(list(src.rglob("*.json")))
    assert sorted(tuple(map(int, o.split())) for o, _ in done) == [(0, n), (n, n)]  # the second found it done
    _assert_same(out, src)


@pytest.mark.timeout(300)
def test_an_export_killed_half_way_is_finished_by_the_next_one(tmp_path: Path) -> None:
    """SIGKILL of an export (with its two workers) once its first batch is recorded: the next
    export makes exactly what a full export makes."""
    src = _copy_fixtures(tmp_path / "src")
    for i, path in enumerate(sorted(src.rglob("*.json"))[:40]):  # and a grown copy: more batches
        shutil.copy(path, src / f"copy-{i}.json")
        os.utime(src / f"copy-{i}.json", (HOUR_AGO, HOUR_AGO))
    out = tmp_path / "killed"
    code = (
        "import sys\n"
        "from notebook_recorder.analysis import _export\n"
        "_export.export(sys.argv[1], sys.argv[2], progress=False, workers=2)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(src), str(out)],
        stderr=subprocess.PIPE,
        env={**os.environ, _export.ENV_BATCH_FILES: "10"},
    )
    try:
        deadline = time.monotonic() + 200
        while time.monotonic() < deadline and proc.poll() is None:
            if _recorded_files(out / _export.MANIFEST):
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    recorded = _recorded_files(out / _export.MANIFEST)
    n = len(list(src.rglob("*.json")))
    assert 0 < recorded < n  # killed half way
    again = nr.export(src, to=out, progress=False)  # waits for the workers, which finish a batch
    assert again.files == n and again.read < n  # the recorded batches are kept
    nr.export(src, to=tmp_path / "full", progress=False)
    for name in FRAMES:
        got = getattr(nr, name if name != "recordings" else "load_recordings")(out)
        whole = getattr(nr, name if name != "recordings" else "load_recordings")(tmp_path / "full")
        pd.testing.assert_frame_equal(_sorted(got), _sorted(whole), check_categorical=False, obj=name)
    _assert_same(out, src)
    assert not list(out.rglob(".*.tmp"))


def _recorded_files(manifest: Path) -> int:
    """How many files the manifest records (0 while there is none, or it is being written)."""
    if not manifest.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{manifest}?mode=ro", uri=True, timeout=0.1)
        try:
            (n,) = con.execute("SELECT count(*) FROM files").fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return 0
    return int(n)


def test_the_command_line_exports(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "notebook_recorder", "export", str(FIXTURES), "--to", str(tmp_path / "ds")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, _export.ENV_EXPORT_WORKERS: "0"},
    )
    assert done.returncode == 0, done.stderr
    assert f"{len(list(FIXTURES.rglob('*.json')))} file(s)" in done.stdout
    assert _export.is_dataset(tmp_path / "ds")
    bad = subprocess.run(
        [sys.executable, "-m", "notebook_recorder", "export", str(tmp_path / "nope"), "--to", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "no such file or directory" in bad.stderr


def test_export_and_connect_are_public_and_light() -> None:
    assert {"export", "connect", "ExportResult"} <= set(nr.__all__)
    code = (
        "import sys, notebook_recorder as nr; nr.export; nr.connect; "
        "print(sorted(m for m in ('pandas', 'pyarrow', 'duckdb') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr


# --- tool outputs that arrive in a later export -----------------------------------------------


def _completion(message: dict[str, object]) -> dict[str, object]:
    data = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None, "message": message}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    return {"__type__": "openai.types.chat.chat_completion.ChatCompletion", "__data__": data}


def _tool_file(test_id: str, call_id: str, output: str | None) -> bytes:
    """A chat completion of ``test_id``: the model asking for ``call_id`` (``output`` None), or a
    later request carrying the tool's ``output`` for it."""
    call = {"id": call_id, "type": "function", "function": {"name": "lookup", "arguments": '{"q": 1}'}}
    messages: list[dict[str, object]] = [{"role": "user", "content": f"ask {call_id}"}]
    if output is None:
        answer: dict[str, object] = {"role": "assistant", "content": None, "tool_calls": [call]}
    else:
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call_id, "content": output},
        ]
        answer = {"role": "assistant", "content": "done"}
    body = {"model": "gpt-4o", "messages": messages}
    request = {"method": "POST", "url": "http://127.0.0.1/v1/chat/completions", "headers": {}, "body": body}
    return orjson.dumps(
        {"test_id": test_id, "request": request, "response": {"body": _completion(answer), "is_streaming": False}}
    )


def _write(path: Path, data: bytes, stamp: float = HOUR_AGO) -> None:
    path.write_bytes(data)
    os.utime(path, (stamp, stamp))


def _tool_parts(ds: Path) -> dict[str, int]:
    return {str(p.relative_to(ds)): p.stat().st_mtime_ns for p in (ds / "tool_calls").glob("day=*/*.parquet")}


def _outputs(ds: Path) -> dict[str, object]:
    tc = nr.tool_calls(ds)
    wants = tc[tc["source"] == "response"]
    return {Path(p).name: None if pd.isna(o) else o for p, o in zip(wants["path"], wants["output"], strict=True)}


def test_a_tool_output_that_arrives_in_a_later_export_is_matched_into_the_earlier_part(tmp_path: Path) -> None:
    src, ds = tmp_path / "src", tmp_path / "ds"
    src.mkdir()
    _write(src / "a-ask.json", _tool_file("t1", "call_1", None))
    _write(src / "b-ask.json", _tool_file("t2", "call_1", None))  # the same call id in another test
    nr.export(src, to=ds, progress=False)
    assert _outputs(ds) == {"a-ask.json": None, "b-ask.json": None}
    before = _tool_parts(ds)

    _write(src / "c-other.json", _tool_file("t3", "call_9", "unrelated"))  # nothing of t1 or t2
    assert nr.export(src, to=ds, progress=False).read == 1
    after = _tool_parts(ds)
    assert {p: after[p] for p in before} == before  # the earlier parts are not written again

    _write(src / "d-give.json", _tool_file("t1", "call_1", "forty-two"))
    assert nr.export(src, to=ds, progress=False).read == 1
    assert _outputs(ds) == {"a-ask.json": "forty-two", "b-ask.json": None}
    _assert_same(ds, src)
    now = _tool_parts(ds)
    assert [p for p in after if now[p] != after[p]] == [p for p in before if p in after]  # a-ask's part only

    _write(src / "e-give.json", _tool_file("t1", "call_1", "the last one wins"))  # later in file order
    nr.export(src, to=ds, progress=False)
    assert _outputs(ds)["a-ask.json"] == "the last one wins"
    _write(src / "d-give.json", _tool_file("t1", "call_1", "changed, but not the last"), HOUR_AGO + 60)
    nr.export(src, to=ds, progress=False)
    assert _outputs(ds)["a-ask.json"] == "the last one wins"
    (src / "e-give.json").unlink()
    nr.export(src, to=ds, progress=False)
    assert _outputs(ds)["a-ask.json"] == "changed, but not the last"
    _assert_same(ds, src)
    (src / "d-give.json").unlink()
    nr.export(src, to=ds, progress=False)
    assert _outputs(ds) == {"a-ask.json": None, "b-ask.json": None}
    _assert_same(ds, src)


def test_a_damaged_tool_index_is_rebuilt(tmp_path: Path) -> None:
    src, ds = tmp_path / "src", tmp_path / "ds"
    src.mkdir()
    _write(src / "a-ask.json", _tool_file("t1", "call_1", None))
    nr.export(src, to=ds, progress=False)
    index = ds / _export.STATE / _export._INDEX
    for damage in (b"not arrow at all", b""):
        index.write_bytes(damage)
        _write(src / "b-give.json", _tool_file("t1", "call_1", damage.decode() or "empty"))
        nr.export(src, to=ds, progress=False)
        assert _outputs(ds) == {"a-ask.json": damage.decode() or "empty"}
        _assert_same(ds, src)
    # an index that is readable but not this dataset's: positions that are not there
    (src / "b-give.json").unlink()
    nr.export(src, to=ds, progress=False)
    table = feather.read_table(index)
    table = table.set_column(table.schema.get_field_index("pos"), "pos", pa.array([10_000] * table.num_rows))
    feather.write_feather(table, index, compression="uncompressed")
    _write(src / "b-give.json", _tool_file("t1", "call_1", "rebuilt"))
    nr.export(src, to=ds, progress=False)
    assert _outputs(ds) == {"a-ask.json": "rebuilt"}
    # a raw part changed behind the index's back (an export that stopped half way) is read again
    raw = next((ds / _export.STATE / _export._RAW_TOOLS).glob("day=*/part-000000.parquet"))
    part = ds / "tool_calls" / raw.parent.name / raw.name
    part.unlink()
    nr.export(src, to=ds, progress=False)  # nothing changed in src: no export work, the part stays missing
    _write(src / "c.json", _tool_file("t9", "call_9", "x"))
    nr.export(src, to=ds, progress=False)
    assert part.exists()
    _assert_same(ds, src)


NAMES = [f"f{i}.json" for i in range(6)]
FILE = st.tuples(st.sampled_from(["t1", "t2"]), st.sampled_from(["c1", "c2"]), st.sampled_from([None, "x", "y"]))
STEP = st.dictionaries(st.sampled_from(NAMES), st.one_of(st.none(), FILE), min_size=1, max_size=3)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEP, min_size=1, max_size=4))
def test_incremental_exports_match_tool_outputs_as_the_frames_do(
    tmp_path_factory: pytest.TempPathFactory, steps: list[dict[str, tuple[str, str, str | None] | None]]
) -> None:
    """Files asking for a tool call and files giving its output, added, changed and deleted over
    several exports (in batches of two files): every export's tool calls equal the frame's."""
    root = tmp_path_factory.mktemp("steps")
    src, ds = root / "src", root / "ds"
    src.mkdir()
    _write(src / "base.json", _tool_file("t1", "c1", None))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_export, "BATCH_FILES", 2)
        for i, step in enumerate(steps):
            for name, content in step.items():
                if content is None:
                    (src / name).unlink(missing_ok=True)
                else:
                    _write(src / name, _tool_file(*content), HOUR_AGO + i)
            nr.export(src, to=ds, progress=False)
            nr.analysis.clear_cache()
            got, expected = _sorted(nr.tool_calls(ds)), _sorted(nr.tool_calls(src))
            pd.testing.assert_frame_equal(got, expected, check_categorical=False)


def test_a_file_name_that_is_not_utf8_is_exported_and_kept_up_to_date(tmp_path: Path) -> None:
    """A stranger's folder may hold a name that is not valid UTF-8 (each undecodable byte is a
    lone surrogate in Python): it is a row like any other, in the dataset as in the frames, and
    a change to it replaces its rows (the manifest knows it by the name the rows carry)."""
    src = _copy_fixtures(tmp_path / "src")
    good = sorted(src.rglob("*.json"))[0]
    raw = os.path.join(os.fsencode(src), b"y\x9b31mRAW.json")
    shutil.copyfile(good, raw)
    os.utime(raw, (HOUR_AGO, HOUR_AGO))
    out = tmp_path / "dataset"
    first = nr.export(src, to=out, progress=False)
    assert first.errors == 0
    _assert_same(out, src)
    assert any("\\udc9b" in p for p in nr.load_recordings(out, columns=["path"])["path"])
    with open(raw, "ab") as f:  # changed: read again, its old rows removed
        f.write(b"\n")
    os.utime(raw, (HOUR_AGO + 60, HOUR_AGO + 60))
    again = nr.export(src, to=out, progress=False)
    assert (again.read, again.removed) == (1, 1)
    _assert_same(out, src)
    os.unlink(raw)
    gone = nr.export(src, to=out, progress=False)
    assert (gone.read, gone.removed) == (0, 1)
    _assert_same(out, src)


def test_overlapping_sources_and_deleted_directories_keep_the_walk_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifest compares a directory's listing at a time: sources that name a file and its
    directory, or a directory twice, export each file once, at its first place in the walk (which
    decides the tool output that wins, here matched across batches of one file); a name that is
    not UTF-8 sorts by its own name, not by its escaped one; a directory deleted whole loses its
    rows. Each export equals the frames of the same sources."""
    monkeypatch.setattr(_export, "BATCH_FILES", 1)
    src = tmp_path / "src"
    a, b = src / "a", src / "b"
    a.mkdir(parents=True)
    b.mkdir()
    _write(a / "ask.json", _tool_file("t1", "c1", None))
    _write(a / "give.json", _tool_file("t1", "c1", "from a"))
    _write(b / "give.json", _tool_file("t1", "c1", "from b"))
    _write(b / "notes.txt", _tool_file("t1", "c1", "named directly"))
    raw = os.path.join(os.fsencode(a), b"\x9b.json")  # after give.json as a name, before it escaped
    with open(raw, "wb") as f:
        f.write(_tool_file("t1", "c1", "from raw"))
    os.utime(raw, (HOUR_AGO, HOUR_AGO))
    cases: list[list[Path]] = [
        [b / "give.json", src],  # found alone first: the later a/ wins
        [src, b / "give.json"],  # its second place is ignored: b/ wins
        [b, a, src, b / "notes.txt", b],  # b and a listed twice; a file found alone last: it wins
        [b / "notes.txt", a, b / "notes.txt"],
    ]
    for i, sources in enumerate(cases):
        out = tmp_path / f"ds{i}"
        result = nr.export(sources, to=out, progress=False)
        expected = len(nr.load_recordings(sources))
        assert result.files == result.read == expected, sources
        _assert_same(out, sources)
        assert nr.export(sources, to=out, progress=False).read == 0
    sources = cases[2]
    out = tmp_path / "ds2"
    _write(a / "give.json", _tool_file("t1", "c1", "from a, changed"), HOUR_AGO + 60)
    again = nr.export(sources, to=out, progress=False)
    assert (again.read, again.removed) == (1, 1)
    _assert_same(out, sources)
    shutil.rmtree(a)
    (c := src / "c").mkdir()
    _write(c / "give.json", _tool_file("t1", "c1", "from c"))
    sources = [b, src, b / "notes.txt"]
    again = nr.export(sources, to=out, progress=False)
    assert (again.read, again.removed) == (1, 3)  # c/give.json; ask.json, give.json and the raw name in a/
    _assert_same(out, sources)


def test_a_directory_is_skipped_by_its_digest_only_while_its_rows_are_final(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unchanged directory is known by a digest of its manifest rows, without reading them.
    A file just written is read again next time (its directory keeps no digest meanwhile); an
    export that stops after removing a changed file's rows leaves its directory without a digest,
    so the file is read again even when its size and time come back to what they were."""
    src = _copy_fixtures(tmp_path / "src")
    out = tmp_path / "ds"
    nr.export(src, to=out, progress=False)
    assert nr.export(src, to=out, progress=False).read == 0
    # just written: read again by the next export, and the one after that finds it final
    fresh = src / "fresh.json"
    shutil.copy(sorted(src.rglob("*.json"))[0], fresh)
    assert nr.export(src, to=out, progress=False).read == 1
    assert nr.export(src, to=out, progress=False).read == 1  # unchanged, still too recent to trust
    os.utime(fresh, (HOUR_AGO, HOUR_AGO))
    assert nr.export(src, to=out, progress=False).read == 1
    assert nr.export(src, to=out, progress=False).read == 0
    _assert_same(out, src)
    # changed, then the export stops after its old rows are gone: back as it was, it is read again
    changed = sorted(src.rglob("*.json"))[1]
    before, st = changed.read_bytes(), changed.stat()
    _write(changed, before.replace(b'"', b' "', 1), HOUR_AGO + 60)

    def stop(*args: object) -> None:
        raise RuntimeError("stopped")

    with monkeypatch.context() as mp:
        mp.setattr(_export, "export_batch", stop)
        with pytest.raises(RuntimeError, match="stopped"):
            nr.export(src, to=out, progress=False)
    changed.write_bytes(before)
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = nr.export(src, to=out, progress=False)
    assert again.read == 1
    _assert_same(out, src)


@given(days=st.lists(st.sampled_from(["2026-12-01", "2026-12-02", "2026-11-30", "unknown"]), max_size=40))
def test_a_batch_is_split_by_day_as_groupby_splits_it(days: list[str]) -> None:
    """The export's own split (pandas' ``groupby`` was several times slower on a small batch):
    the same days, in order, each with its rows in ascending order."""
    array = np.array(days, dtype=object)
    got = _export._by_day(array)
    expected = pd.DataFrame({"x": range(len(days))}).groupby(array, sort=True).indices if days else {}
    assert list(got) == list(expected)
    for day, rows in expected.items():
        assert got[day].tolist() == rows.tolist()
