"""Replay at scale (issue 24): a replayed file is parsed once while its bytes stay the same, and
the content index keeps itself current from directory modification times."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from notebook_recorder import _store
from notebook_recorder._codec import dumps
from notebook_recorder._keys import InferenceRequest
from notebook_recorder._store import Store, forget_indexes


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
