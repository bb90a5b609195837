"""The store: name fast path, content index, subdirectories, bad files and atomic writes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from notebook_recorder.core import _store
from notebook_recorder.core._codec import RecordingFormatError, dumps
from notebook_recorder.core._importing import import_into
from notebook_recorder.core._keys import InferenceRequest, record_key
from notebook_recorder.core._store import Store, forget_indexes

FIXTURES = Path(__file__).parent.parent / "fixtures" / "llama-stack"


def _record(content: str, test_id: str | None = None) -> tuple[str, dict]:
    request = InferenceRequest("POST", "/v1/chat/completions", {"model": "m", "messages": [{"content": content}]})
    record = {
        "test_id": test_id,
        "request": request.to_json(test_id),
        "response": {"body": {"content": content}, "is_streaming": False},
        "id_normalization_mapping": {},
    }
    return request.key(test_id), record


class CountingReads:
    """Counts the files the store parses."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.paths: list[Path] = []
        original = Store.read

        def read(store: Store, path: Path) -> dict:
            self.paths.append(path)
            return original(store, path)

        monkeypatch.setattr(Store, "read", read)


def test_write_then_find_by_name(tmp_path: Path) -> None:
    store = Store(tmp_path / "new" / "dir")
    assert not store.exists
    key, record = _record("a")
    path = store.write(key, record)
    assert path == store.root / f"{key}.json"
    assert store.exists
    found = store.find(key)
    assert found is not None and found.path == path and found.record == record
    assert path.read_bytes() == dumps(record)


def test_names_match_so_the_first_lookup_parses_one_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = []
    for i in range(200):
        key, record = _record(str(i))
        (tmp_path / f"{key}.json").write_bytes(dumps(record))
        keys.append(key)
    reads = CountingReads(monkeypatch)
    store = Store(tmp_path)
    assert store.find(keys[123]).path == tmp_path / f"{keys[123]}.json"  # type: ignore[union-attr]
    assert reads.paths == [tmp_path / f"{keys[123]}.json"]


def test_renamed_file_is_found_by_content(tmp_path: Path) -> None:
    key, record = _record("renamed")
    (tmp_path / "whatever-name.json").write_bytes(dumps(record))
    found = Store(tmp_path).find(key)
    assert found is not None and found.path.name == "whatever-name.json"


def test_a_file_named_by_another_key_does_not_count(tmp_path: Path) -> None:
    key_a, _ = _record("a")
    key_b, record_b = _record("b")
    (tmp_path / f"{key_a}.json").write_bytes(dumps(record_b))  # name says a, content says b
    store = Store(tmp_path)
    assert store.find(key_a) is None
    found = store.find(key_b)
    assert found is not None and found.path.name == f"{key_a}.json"


def test_subdirectories_are_searched_and_hidden_ones_skipped(tmp_path: Path) -> None:
    key, record = _record("deep")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    (deep / f"{key}.json").write_bytes(dumps(record))
    key2, record2 = _record("deep-renamed")
    (deep / "x.json").write_bytes(dumps(record2))
    key3, record3 = _record("hidden")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / f"{key3}.json").write_bytes(dumps(record3))
    (tmp_path / f".{key3}.json").write_bytes(dumps(record3))
    store = Store(tmp_path)
    assert store.find(key).path == deep / f"{key}.json"  # type: ignore[union-attr]
    assert store.find(key2).path == deep / "x.json"  # type: ignore[union-attr]
    assert store.find(key3) is None


def test_llama_stack_files_are_found_by_content() -> None:
    folder = FIXTURES / "head" / "tests" / "integration" / "responses" / "recordings"
    store = Store(folder)
    files = sorted(folder.glob("*.json"))
    found = 0
    for path in files:
        key = record_key(json.loads(path.read_text()))
        if key is None:
            continue
        hit = store.find(key)
        assert hit is not None
        assert record_key(hit.record) == key
        found += 1
    assert found >= 20


def test_the_content_index_is_built_once_and_kept_current(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(20):
        key, record = _record(f"old {i}")
        (tmp_path / f"renamed-{i}.json").write_bytes(dumps(record))
    store = Store(tmp_path)
    reads = CountingReads(monkeypatch)
    wanted, _ = _record("old 7")
    assert store.find(wanted).path.name == "renamed-7.json"  # type: ignore[union-attr]
    first = len(reads.paths)
    assert first == 21  # the index (20 files) and the hit
    reads.paths.clear()
    assert store.find(wanted).path.name == "renamed-7.json"  # type: ignore[union-attr]
    assert reads.paths == [tmp_path / "renamed-7.json"]  # no re-indexing on a hit

    # A write by this process is indexed at once: found with one read.
    key, record = _record("new")
    Store(tmp_path).write(key, record)
    reads.paths.clear()
    assert store.find(key).record == record  # type: ignore[union-attr]
    assert len(reads.paths) == 1

    # A file added by someone else is picked up on the next miss.
    key2, record2 = _record("added elsewhere")
    (tmp_path / "elsewhere.json").write_bytes(dumps(record2))
    assert store.find(key2).path.name == "elsewhere.json"  # type: ignore[union-attr]

    # A file moved away is not returned from a stale index.
    shutil.move(tmp_path / "renamed-3.json", tmp_path / "moved.json")
    moved, _ = _record("old 3")
    assert store.find(moved).path.name == "moved.json"  # type: ignore[union-attr]

    # A file edited to another request no longer answers for its old key.
    key_edit, _ = _record("old 4")
    _, other = _record("edited")
    time.sleep(0.01)
    (tmp_path / "renamed-4.json").write_bytes(dumps(other))
    os.utime(tmp_path / "renamed-4.json", ns=(time.time_ns(), time.time_ns() + 10**9))
    assert store.find(key_edit) is None


def test_malformed_file_is_named_and_others_keep_working(tmp_path: Path) -> None:
    key, record = _record("good")
    (tmp_path / "good-renamed.json").write_bytes(dumps(record))
    (tmp_path / "broken.json").write_bytes(b'{"request": {"method": "POST", "bo')
    (tmp_path / "wrong-shape.json").write_bytes(b"[1, 2, 3]\n")
    store = Store(tmp_path)
    assert store.find(key).path.name == "good-renamed.json"  # type: ignore[union-attr]
    errors = store.errors()
    assert set(errors) == {tmp_path / "broken.json", tmp_path / "wrong-shape.json"}
    assert "not valid JSON" in errors[tmp_path / "broken.json"]

    # The one asked for is broken: the error names it.
    bad_key, bad_record = _record("bad")
    (tmp_path / f"{bad_key}.json").write_text(json.dumps(bad_record)[:-20])
    with pytest.raises(RecordingFormatError) as info:
        store.find(bad_key)
    assert f"{bad_key}.json" in str(info.value)
    assert store.find(key).record == record  # type: ignore[union-attr]


def test_records_skips_broken_files(tmp_path: Path) -> None:
    key, record = _record("x")
    Store(tmp_path).write(key, record)
    (tmp_path / "broken.json").write_text("{")
    assert [p.name for p, _ in Store(tmp_path).records()] == [f"{key}.json"]


def test_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    key, record = _record("x")
    Store(tmp_path).write(key, record)
    Store(tmp_path).write(key, record)  # overwrite
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{key}.json"]


WRITER = textwrap.dedent(
    """
    import sys
    from notebook_recorder.core._store import Store
    store = Store(sys.argv[1])
    big = {"content": "x" * 400_000, "numbers": list(range(20_000))}
    i = 0
    print("ready", flush=True)
    while True:
        key = f"{i % 7:064x}"
        store.write(key, {"test_id": None, "request": {"i": i}, "response": {"body": big, "i": i}})
        i += 1
    """
)


def test_sigkill_mid_write_never_leaves_truncated_json(tmp_path: Path) -> None:
    """Kill a process that writes big recordings in a loop, many times at random moments: every
    visible recording is complete JSON; leftovers are hidden ``.``-prefixed temporary files."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    for round_ in range(12):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path)], env=env, stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(0.02 + 0.013 * round_)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    visible = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert visible, "the writer never finished a file"
    for path in visible:
        assert path.suffix == ".json"
        data = json.loads(path.read_bytes())  # never truncated
        assert len(data["response"]["body"]["content"]) == 400_000
    hidden = [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert all(p.name.endswith(".tmp") for p in hidden)
    forget_indexes()
    store = Store(tmp_path)
    assert store.find("0" * 64) is None  # the loader ignores leftovers and does not fail
    assert store.errors() == {}


def test_forget_indexes() -> None:
    Store(FIXTURES)
    assert _store._indexes
    forget_indexes()
    assert not _store._indexes


# ---------------------------------------------------------------------------------------------
# What the command line asks the store: key prefixes, import, and the verify report
# ---------------------------------------------------------------------------------------------


def test_find_prefix_by_name_by_content_and_ambiguous(tmp_path: Path) -> None:
    store = Store(tmp_path)
    key_a, record_a = _record("a")
    key_b, record_b = _record("b")
    path_a = store.write(key_a, record_a)
    renamed = path_a.rename(tmp_path / "renamed.json")
    store.write(key_b, record_b)
    assert store.find_prefix(key_a[:8]) == renamed  # by content: its name is not its key
    assert store.find_prefix(key_b[:8]) == tmp_path / f"{key_b}.json"
    assert store.find_prefix(key_b) == tmp_path / f"{key_b}.json"
    look_alike = tmp_path / f"{key_b[:8]}{'0' * 56}.json"  # named like a key starting as key_b
    look_alike.write_bytes(dumps(record_a))
    with pytest.raises(LookupError, match=f"2 recordings in shown have keys starting with {key_b[:8]}"):
        store.find_prefix(key_b[:8], shown="shown")
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    absent = next(p for p in ("0000", "1111", "2222") if not any(k.startswith(p) for k in (key_a, key_b)))
    with pytest.raises(LookupError, match=rf"(?s)no recording whose key starts with {absent}.*broken\.json"):
        store.find_prefix(absent)


def test_import_from_keys_files_and_changes_nothing_the_second_time(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    key, record = _record("a")
    (source / "some-name.json").write_bytes(dumps(record))
    (source / "broken.json").write_text("[]", encoding="utf-8")
    dest = Store(tmp_path / "dest")
    first = {Path(item.source).name: item for item in import_into(dest, [source])}
    assert first["some-name.json"].status == "imported"
    assert first["some-name.json"].target == dest.path_for(key)
    assert first["broken.json"].status == "skipped" and first["broken.json"].why
    assert dest.find(key) is not None
    again = [item.status for item in import_into(dest, [source])]
    assert sorted(again) == ["skipped", "unchanged"]
    rescoped = {Path(i.source).name: i for i in import_into(dest, [source], rescope=True, scope="s")}
    assert rescoped["some-name.json"].status == "imported"
    assert rescoped["some-name.json"].target == dest.path_for(_record("a", "s")[0])


def test_verify_report_names_a_misnamed_file_and_a_duplicate(tmp_path: Path) -> None:
    from notebook_recorder.frontends.cli._verify import verify

    store = Store(tmp_path)
    key, record = _record("a")
    store.write(key, record)
    (tmp_path / "copy.json").write_bytes(dumps(record))
    report = verify(tmp_path)
    assert not report.ok and report.files == 2
    assert report.problems["names that are not their key"] == [f"copy.json: its key is {key}"]
    assert report.problems["duplicate keys"][0].startswith(f"{key}, in 2 files:")
    assert report.as_json("d") == {
        "dir": "d",
        "files": 2,
        "ok": False,
        "problems": report.problems,
        "notes": report.notes,
    }
    (tmp_path / "copy.json").unlink()
    assert verify(tmp_path).ok
