"""Replay at scale (issue 24): a replayed file is parsed once while its bytes stay the same, and
the content index keeps itself current from directory modification times."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from notebook_recorder.core import _store
from notebook_recorder.core._codec import dumps
from notebook_recorder.core._keys import InferenceRequest
from notebook_recorder.core._store import Store, forget_indexes


def _record(content: str, test_id: str | None = None) -> tuple[str, dict]:
    request = InferenceRequest("POST", "/v1/chat/completions", {"model": "m", "messages": [{"content": content}]})
    record = {
        "test_id": test_id,
        "request": request.to_json(test_id),
        "response": {"body": {"content": content}, "is_streaming": False},
        "id_normalization_mapping": {},
    }
    return request.key(test_id), record


class CountingParses:
    """Counts the files the store parses (``_codec.loads`` as the store calls it)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = _store.loads

        def loads(data: bytes, path: object = "<recording>") -> dict:
            self.count += 1
            return original(data, path)

        monkeypatch.setattr(_store, "loads", loads)


@pytest.fixture(autouse=True)
def _cold() -> None:
    forget_indexes()


def test_a_file_replayed_again_is_not_parsed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key, record = _record("once")
    (tmp_path / f"{key}.json").write_bytes(dumps(record))
    parses = CountingParses(monkeypatch)
    store = Store(tmp_path)
    for _ in range(5):
        found = store.find_latest(key, 1)
        assert found is not None and found.record == record
    assert parses.count == 1


def test_an_edit_that_keeps_size_and_timestamps_is_seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key, record = _record("same size")
    path = tmp_path / "renamed.json"
    path.write_bytes(dumps(record))
    store = Store(tmp_path)
    assert store.find(key).record["response"]["body"] == {"content": "same size"}  # type: ignore[union-attr]
    st = path.stat()
    head, _sep, tail = dumps(record).rpartition(b'"content": "same size"')  # the response's, not the request's
    edited = head + b'"content": "SAME SIZE"' + tail
    assert len(edited) == st.st_size and edited != dumps(record)
    path.write_bytes(edited)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # the timestamps say nothing changed
    found = store.find(key)
    assert found is not None and found.record["response"]["body"] == {"content": "SAME SIZE"}


def test_the_parsed_cache_is_bounded(tmp_path: Path) -> None:
    store = Store(tmp_path)
    keys = []
    for i in range(_store._ParsedFiles.MAX_FILES + 20):
        key, record = _record(f"n{i}")
        (tmp_path / f"{key}.json").write_bytes(dumps(record))
        keys.append(key)
    for key in keys:
        assert store.find(key) is not None
    assert len(_store._parsed._entries) == _store._ParsedFiles.MAX_FILES


def test_what_a_hook_derives_from_a_file_is_kept_while_the_file_is_the_same(tmp_path: Path) -> None:
    """``derived``: built once per parsed file; built again when the file changes (its bytes, not
    its timestamps) or leaves the cache; never kept for a record the cache does not hold."""
    key, record = _record("derived")
    path = tmp_path / f"{key}.json"
    path.write_bytes(dumps(record))
    store = Store(tmp_path)
    built: list[str] = []

    def build_from(found: _store.Found) -> object:
        def build() -> object:
            built.append(found.record["response"]["body"]["content"])
            return [found.record["response"]["body"]["content"]]

        return _store.derived(found.record, "test.derived", build)

    first = build_from(store.find(key))  # type: ignore[arg-type]
    assert build_from(store.find(key)) is first  # type: ignore[arg-type]
    assert built == ["derived"]
    head, _sep, tail = dumps(record).rpartition(b'"content": "derived"')  # the response's
    path.write_bytes(head + b'"content": "DERIVED"' + tail)
    assert build_from(store.find(key)) == ["DERIVED"]  # type: ignore[arg-type]
    assert built == ["derived", "DERIVED"]
    assert _store.derived({"not": "cached"}, "test.derived", lambda: 1) == 1
    assert _store.derived({"not": "cached"}, "test.derived", lambda: 2) == 2  # not kept
    for i in range(_store._ParsedFiles.MAX_FILES):  # pushes the first file out of the cache
        other_key, other = _record(f"other{i}")
        (tmp_path / f"{other_key}.json").write_bytes(dumps(other))
        assert store.find(other_key) is not None
    assert len(_store._parsed._derived) == len(_store._parsed._entries) == _store._ParsedFiles.MAX_FILES
    build_from(store.find(key))  # type: ignore[arg-type]
    assert built == ["derived", "DERIVED", "DERIVED"]


class CountingListings:
    """Counts the directories the store lists."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.dirs: list[str] = []
        original = _store._files.list_dir

        def list_dir(path: str, st: os.stat_result | None = None) -> _store._files.Listing:
            self.dirs.append(path)
            return original(path, st)

        original_walk = _store._files.walk

        def walk(root: str, *args: object, **kwargs: object) -> _store._files.Walk:
            self.walks.append(root)
            return original_walk(root, *args, **kwargs)  # type: ignore[arg-type]

        self.walks: list[str] = []
        monkeypatch.setattr(_store._files, "list_dir", list_dir)
        monkeypatch.setattr(_store._files, "walk", walk)


def test_a_miss_lists_only_the_directories_that_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for sub in ("a", "b", "c"):
        (tmp_path / sub).mkdir()
        for i in range(5):
            _key, record = _record(f"{sub}{i}")
            (tmp_path / sub / f"renamed-{i}.json").write_bytes(dumps(record))
    listings = CountingListings(monkeypatch)
    parses = CountingParses(monkeypatch)
    store = Store(tmp_path)
    assert store.find(_record("b3")[0]).path == tmp_path / "b" / "renamed-3.json"  # type: ignore[union-attr]
    assert sorted(listings.dirs) == sorted(str(tmp_path / d) for d in ("", "a", "b", "c"))
    assert parses.count == 15

    # A miss in a tree that did not change lists nothing and parses nothing.
    listings.dirs.clear()
    listings.walks.clear()
    parses.count = 0
    assert store.find(_record("nowhere")[0]) is None
    assert listings.dirs == [] and listings.walks == [] and parses.count == 0

    # A file added to b, and a new directory d: b is listed again, d walked, the two new files parsed.
    key_b, record_b = _record("added to b")
    (tmp_path / "b" / "added.json").write_bytes(dumps(record_b))
    (tmp_path / "d").mkdir()
    key_d, record_d = _record("in d")
    (tmp_path / "d" / "x.json").write_bytes(dumps(record_d))
    assert store.find(key_d).path == tmp_path / "d" / "x.json"  # type: ignore[union-attr]
    assert sorted(listings.dirs) == sorted([str(tmp_path), str(tmp_path / "b"), str(tmp_path / "d")])
    assert parses.count == 2  # the two new files (the hit is served from the parsed files)
    assert store.find(key_b).path == tmp_path / "b" / "added.json"  # type: ignore[union-attr]


def test_a_file_replaced_by_a_rename_is_indexed_under_its_new_content(tmp_path: Path) -> None:
    key_old, record_old = _record("old")
    (tmp_path / "misnamed.json").write_bytes(dumps(record_old))
    store = Store(tmp_path)
    assert store.find(key_old) is not None
    key_new, record_new = _record("new content")
    (tmp_path / "incoming.tmp").write_bytes(dumps(record_new))
    os.replace(tmp_path / "incoming.tmp", tmp_path / "misnamed.json")
    assert store.find(key_new).path == tmp_path / "misnamed.json"  # type: ignore[union-attr]
    assert store.find(key_old) is None


def test_own_writes_do_not_make_the_next_miss_list_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(5):
        _key, record = _record(f"x{i}")
        (tmp_path / f"renamed-{i}.json").write_bytes(dumps(record))
    store = Store(tmp_path)
    assert store.find(_record("nothing")[0]) is None  # builds the index
    listings = CountingListings(monkeypatch)
    for i in range(3):
        assert store.find(_record(f"new {i}")[0]) is None  # a miss, as record-if-missing sees it
        store.write(*_record(f"new {i}"))
    assert listings.dirs == [] and listings.walks == []
    assert store.find(_record("new 2")[0]) is not None


def test_ls_and_verify_scan_in_worker_processes_with_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    from notebook_recorder.frontends.cli import _scan

    root = Path(__file__).parent.parent / "fixtures" / "llama-stack"
    monkeypatch.setenv(_scan.ENV_SCAN_WORKERS, "0")
    alone = _scan.scan(root, deep=True)
    assert _scan.last_scan_pids == {os.getpid()}
    monkeypatch.delenv(_scan.ENV_SCAN_WORKERS)
    monkeypatch.setattr(_scan, "PARALLEL_MIN_FILES", 10)
    parallel = _scan.scan(root, deep=True)
    assert parallel == alone
    assert _scan._workers(len(alone)) == len(os.sched_getaffinity(0)) >= 2  # one worker per usable CPU
    assert _scan.last_scan_pids and os.getpid() not in _scan.last_scan_pids  # read by the workers
