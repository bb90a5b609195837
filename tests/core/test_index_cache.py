"""The store's content index kept on disk between processes (issue 28: a replay miss in a folder
of 30,000 files explained in well under a second, in a new process too).

A new process's first miss by name builds the store's content index (every file's key). For a
large folder that index is kept in the user's cache directory (``core/_index_cache.py``, through
``core/_user_cache.py``), and each entry is used only while its file has the same size and
modification time. These tests count the recording files a miss opens with a real measure (the
interpreter's ``open`` audit event, raised by every ``os.open``), and check that the cache is
brought up to date when files are added, edited in place or deleted, that a lying or malformed
cache never makes replay serve another request's recording, and where the cache lives.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from notebook_recorder.core import _index_cache, _nearest_cache, _notfound, _user_cache
from notebook_recorder.core._keys import InferenceRequest
from notebook_recorder.core._match import Rules
from notebook_recorder.core._recorder import Recorder
from notebook_recorder.core._store import Store, forget_indexes

ROOT = Path(__file__).resolve().parents[2]
URL = "http://127.0.0.1/v1/chat/completions"
ENDPOINT = "/v1/chat/completions"
OLD = 1_700_000_000_000_000_000  # files dated long ago: none changed "just before" it was kept

_collecting: list[list[str]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "open" and _collecting and isinstance(args[0], str):
        for paths in _collecting:
            paths.append(args[0])


sys.addaudithook(_audit)  # cannot be removed: it records only inside opened_in()


@contextmanager
def opened_in(folder: Path) -> Iterator[list[str]]:
    """The files under ``folder`` opened (``open`` audit events) inside the ``with`` block."""
    seen: list[str] = []
    found: list[str] = []
    _collecting.append(seen)
    try:
        yield found
    finally:
        _collecting.pop()  # the innermost: nested blocks end in order
        prefix = str(folder.resolve()) + os.sep
        found.extend(path for path in seen if path.startswith(prefix))


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each test: its own cache directory, kept folders from 5 files, and a fresh process's state."""
    home = tmp_path_factory.mktemp("user-cache")
    monkeypatch.setenv("APIREC_CACHE_DIR", str(home))
    monkeypatch.setattr(_index_cache, "MIN_FILES", 5)
    monkeypatch.setattr(_nearest_cache, "MIN_FILES", 5)
    _new_process()
    yield home
    _new_process()


def _new_process() -> None:
    """Forget what this process knows of every folder, as a new process starts."""
    forget_indexes()
    _notfound.forget_summaries()


def _chat(i: int | str) -> InferenceRequest:
    body = {"model": "m", "temperature": 0.5, "messages": [{"role": "user", "content": f"question {i}"}]}
    return InferenceRequest("POST", ENDPOINT, body, "m", URL)


def _write(path: Path, request: InferenceRequest, *, mtime: int = OLD) -> Path:
    record = {"test_id": None, "request": request.to_json(None), "response": {"body": {"id": str(path.name)}}}
    path.write_bytes(orjson.dumps(record))
    os.utime(path, ns=(mtime, mtime))
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """20 recordings whose names are not their keys (as llama-stack's): only the content index
    finds them. Indexed once, so that the index is kept on disk."""
    folder = tmp_path / "recordings"
    folder.mkdir()
    for i in range(20):
        _write(folder / f"file-{i:02d}.json", _chat(i))
    _age(folder)
    with opened_in(folder) as opened:
        assert Store(folder).find(_chat(3).key(None)) is not None
    assert len(opened) >= 20  # the first time ever: every file parsed
    assert _index_path(folder).is_file()
    _new_process()
    return folder


def _age(folder: Path) -> None:
    os.utime(folder, ns=(OLD, OLD))


def _index_path(folder: Path, rules: Rules | None = None) -> Path:
    variant = _index_cache.variant(rules or Rules())
    assert variant is not None
    path = _user_cache.cache_path("index", folder.resolve(), variant)
    assert path is not None
    return path


# --- a new process does not parse what the cache holds -----------------------------------------

_CHILD = """
import json, os, sys
from pathlib import Path
folder = Path(sys.argv[1]).resolve()
prefix = str(folder) + os.sep
opened = []
sys.addaudithook(lambda event, args: event == "open" and isinstance(args[0], str)
                 and args[0].startswith(prefix) and opened.append(args[0]))
from notebook_recorder.core import _notfound
from notebook_recorder.core._keys import InferenceRequest
from notebook_recorder.core._recorder import Recorder
body = {"model": "m", "temperature": 0.2, "messages": [{"role": "user", "content": "question 7"}]}
request = InferenceRequest("POST", "/v1/chat/completions", body, "m", "http://127.0.0.1/v1/chat/completions")
recorder = Recorder("replay", dir=folder)
key = request.key(None)
assert recorder.store.find_latest(key, 1) is None
lookup = len(opened)
message = _notfound.missing_message(recorder, request, key)
print(json.dumps({"lookup": lookup, "explanation": len(opened) - lookup, "message": message}))
"""


def _miss_in_new_process(folder: Path, cache: Path) -> dict[str, Any]:
    env = {**os.environ, "APIREC_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(folder)], env=env, capture_output=True, text=True, timeout=300, check=True
    )
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_a_new_process_replay_miss_parses_no_recording_of_a_folder_seen_before(tmp_path: Path) -> None:
    """1,000 recordings (the size from which a folder is kept): the first process's miss opens
    each file once (the content index's parse also summarizes it for the explanation, which
    then opens only the few it diffs); the next process's miss opens none for its lookup and
    only those it diffs for the explanation, and says the same."""
    folder = tmp_path / "big"
    folder.mkdir()
    for i in range(_user_cache.MIN_FILES):
        _write(folder / f"{_chat(i).key(None)}.json", _chat(i))
    _age(folder)
    cache = tmp_path / "cache"

    first = _miss_in_new_process(folder, cache)
    second = _miss_in_new_process(folder, cache)

    assert first["lookup"] == _user_cache.MIN_FILES  # every file parsed once, by the content index
    assert first["explanation"] <= _notfound.MAX_COMPARED  # not read again to be summarized
    assert second["lookup"] == 0
    assert second["explanation"] <= _notfound.MAX_COMPARED
    assert second["message"] == first["message"]
    assert "body.temperature: 0.5 -> 0.2" in second["message"]


def test_the_first_miss_ever_summarizes_each_file_from_the_content_index_parse(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No cache on disk: the content index opens each file once, and the explanation only the
    files it diffs (at most MAX_COMPARED, 2 here), not every file again."""
    monkeypatch.setattr(_notfound, "MAX_COMPARED", 2)
    for path in _user_cache.cache_root().rglob("*.json"):  # type: ignore[union-attr]
        path.unlink()
    recorder = Recorder("replay", dir=folder)
    wanted = _chat("unknown")
    with opened_in(folder) as lookup:
        assert recorder.store.find_latest(wanted.key(None), 1) is None
    with opened_in(folder) as explanation:
        message = _notfound.missing_message(recorder, wanted, wanted.key(None))
    assert sorted(lookup) == sorted(str(p) for p in folder.resolve().iterdir())
    assert len(explanation) <= 2 and "Nearest recorded request" in message


# --- invalidation --------------------------------------------------------------------------------


def test_a_new_process_uses_the_kept_index(folder: Path) -> None:
    with opened_in(folder) as opened:
        found = Store(folder).find(_chat(11).key(None))
    assert found is not None and found.path.name == "file-11.json"
    assert opened == [str(folder.resolve() / "file-11.json")]  # read to check its key, nothing else


def test_a_hit_by_name_does_not_load_the_kept_index(folder: Path, _cache_dir: Path) -> None:
    named = _write(folder / f"{_chat('named').key(None)}.json", _chat("named"))
    _age(folder)
    with opened_in(_cache_dir) as cache_opened, opened_in(folder) as opened:
        found = Store(folder).find(_chat("named").key(None))
    assert found is not None and found.path == named.resolve()
    assert cache_opened == [] and opened == [str(named.resolve())]


def test_a_file_added_since_is_parsed_and_found(folder: Path) -> None:
    added = _write(folder / "added.json", _chat("added"))
    with opened_in(folder) as opened:
        found = Store(folder).find(_chat("added").key(None))
    assert found is not None and found.path == added.resolve()
    assert sorted(set(opened)) == [str(added.resolve())]
    _new_process()
    with opened_in(folder) as opened:  # and the kept index was brought up to date
        assert Store(folder).find(_chat("added").key(None)) is not None
    assert opened == [str(added.resolve())]


def test_a_file_edited_in_place_is_parsed_again_and_answers_for_its_new_request(folder: Path) -> None:
    """Its directory's mtime is unchanged; its own size and mtime are not."""
    edited = folder / "file-04.json"
    _write(edited, _chat("edited"), mtime=OLD + 10**9)
    _age(folder)
    store = Store(folder)
    with opened_in(folder) as opened:
        found = store.find(_chat("edited").key(None))
    assert found is not None and found.path == edited.resolve()
    assert set(opened) == {str(edited.resolve())}
    assert store.find(_chat(4).key(None)) is None


def test_a_file_deleted_since_is_not_found_and_leaves_the_kept_index(folder: Path) -> None:
    (folder / "file-09.json").unlink()
    with opened_in(folder) as opened:
        assert Store(folder).find(_chat(9).key(None)) is None
    assert opened == []
    kept = orjson.loads(_index_path(folder).read_bytes())
    assert "file-09.json" not in kept["names"] and len(kept["names"]) == 19


def test_a_file_changed_just_before_it_was_parsed_is_not_kept(tmp_path: Path) -> None:
    """Its size and mtime could be the same after another change within the same timestamp."""
    folder = tmp_path / "recordings"
    folder.mkdir()
    for i in range(6):
        _write(folder / f"file-{i}.json", _chat(i))
    _write(folder / "fresh.json", _chat("fresh"), mtime=time.time_ns())
    assert Store(folder).find(_chat("fresh").key(None)) is not None
    kept = orjson.loads(_index_path(folder).read_bytes())
    assert sorted(kept["names"]) == [f"file-{i}.json" for i in range(6)]


def test_each_set_of_match_rules_has_its_own_kept_index_and_a_callable_normalizer_none(folder: Path) -> None:
    rules = Rules.build(ignore=["body.temperature"])
    with opened_in(folder) as opened:
        found = Store(folder, rules).find(_chat(5).key(None, rules))
    assert found is not None and found.path.name == "file-05.json"
    assert len(opened) > 20 and _index_path(folder, rules).is_file()  # parsed under these rules, then kept
    _new_process()
    with opened_in(folder) as opened:
        assert Store(folder, rules).find(_chat(5).key(None, rules)) is not None
    assert len(opened) == 1
    callable_rules = Rules.build(normalize=lambda body: body)
    assert _index_cache.variant(callable_rules) is None
    before = sorted(_user_cache.cache_root().rglob("*.json"))  # type: ignore[union-attr]
    assert Store(folder, callable_rules).find(_chat(5).key(None, callable_rules)) is not None
    assert sorted(_user_cache.cache_root().rglob("*.json")) == before  # type: ignore[union-attr]


# --- a lying or malformed cache -----------------------------------------------------------------


def _lie(folder: Path, claims: dict[str, int]) -> None:
    """Make the kept index say that each file (its real size and mtime kept) holds request ``i``."""
    path = _index_path(folder)
    kept = orjson.loads(path.read_bytes())
    at = {name: i for i, name in enumerate(kept["names"])}
    for name, i in claims.items():
        kept["keys"][at[name]] = _chat(i).key(None)
    path.write_bytes(orjson.dumps(kept))


def test_a_lying_entry_never_serves_another_requests_recording(folder: Path) -> None:
    """The kept index says ``file-00.json`` holds request 12, also in ``file-12.json``: replay
    reads file-00 first, sees its key is not 12's, and serves file-12."""
    _lie(folder, {"file-00.json": 12})
    found = Store(folder).find(_chat(12).key(None))
    assert found is not None and found.path.name == "file-12.json"
    assert found.record["request"]["body"]["messages"][0]["content"] == "question 12"


def test_swapped_entries_make_a_miss_at_worst(folder: Path) -> None:
    _lie(folder, {"file-00.json": 12, "file-12.json": 0})
    store = Store(folder)
    for i in (0, 12):
        found = store.find(_chat(i).key(None))
        assert found is None or found.record["request"] == _chat(i).to_json(None)


def _malformed(kept: dict[str, Any]) -> dict[str, bytes]:
    def changed(**fields: Any) -> bytes:
        return orjson.dumps({**kept, **fields})

    n = len(kept["names"])
    return {
        "not json": b"\x00{not json",
        "a list": b"[1, 2, 3]",
        "another folder": changed(root=kept["root"] + "-other"),
        "another version": changed(version=999),
        "another library version": changed(library="0.0.0"),
        "columns of unequal length": changed(keys=kept["keys"][:-1]),
        "a key that is not one": changed(keys=["zz" * 32] * n),
        "a key of another type": changed(keys=[1] * n),
        "occurrence 0": changed(occurrences=[0] * n),
        "a problem and a key": changed(problems=["broken"] * n),
        "a column that is not a list": changed(sizes={"a": 1}),
    }


@pytest.mark.parametrize(
    "kind",
    [
        "not json",
        "a list",
        "another folder",
        "another version",
        "another library version",
        "columns of unequal length",
        "a key that is not one",
        "a key of another type",
        "occurrence 0",
        "a problem and a key",
        "a column that is not a list",
    ],
)
def test_a_malformed_cache_is_ignored(folder: Path, kind: str) -> None:
    path = _index_path(folder)
    path.write_bytes(_malformed(orjson.loads(path.read_bytes()))[kind])
    store = Store(folder)
    with opened_in(folder) as opened:
        found = store.find(_chat(13).key(None))
    assert found is not None and found.path.name == "file-13.json"
    assert len(set(opened)) == 20  # every file parsed, as without a cache
    assert store.errors() == {}


def test_a_fifo_in_place_of_the_cache_is_not_opened_for_a_blocking_read(folder: Path) -> None:
    path = _index_path(folder)
    path.unlink()
    os.mkfifo(path)
    found = Store(folder).find(_chat(2).key(None))
    assert found is not None and found.path.name == "file-02.json"


def test_an_unreadable_file_is_kept_with_its_problem_and_named_again(folder: Path) -> None:
    broken = folder / "broken.json"
    broken.write_text("{ not json")
    os.utime(broken, ns=(OLD, OLD))
    assert Store(folder).find("0" * 64) is None
    _new_process()
    store = Store(folder)
    with opened_in(folder) as opened:
        assert store.find("0" * 64) is None
    assert opened == []
    assert list(store.errors()) == [broken.resolve()]


# --- where the cache lives, and turning it off ----------------------------------------------------


def test_the_cache_dir_is_apirec_cache_dir_else_xdg_cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APIREC_CACHE_DIR", str(tmp_path / "mine"))
    assert _user_cache.cache_root() == tmp_path / "mine"
    monkeypatch.delenv("APIREC_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _user_cache.cache_root() == tmp_path / "xdg" / "notebook-recorder"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # the XDG spec: ignored
    assert _user_cache.cache_root() == Path.home() / ".cache" / "notebook-recorder"


@pytest.mark.parametrize("off", ["off", "0", "OFF", "none"])
def test_apirec_cache_dir_off_turns_the_cache_off(
    folder: Path, monkeypatch: pytest.MonkeyPatch, _cache_dir: Path, off: str
) -> None:
    for path in _cache_dir.rglob("*.json"):
        path.unlink()
    monkeypatch.setenv("APIREC_CACHE_DIR", off)
    assert Store(folder).find(_chat(1).key(None)) is not None
    _new_process()
    with opened_in(folder) as opened:
        assert Store(folder).find(_chat(1).key(None)) is not None
    assert len(set(opened)) == 20
    assert list(_cache_dir.rglob("*.json")) == []
