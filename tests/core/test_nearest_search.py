"""The missing-recording search (issue 28): bounded, and as good as diffing every file.

A miss is explained by the nearest recorded request and the diff (``_notfound.nearest``). At most
``MAX_COMPARED`` recordings are diffed, ranked by endpoint, model and how many leaves of the
request they do not share; a large folder's summaries are kept in the user's cache directory
between processes (``_nearest_cache``). These tests compare the bounded search with the full
scan (every file parsed and diffed), and check the cache on disk: used by a new process,
invalidated by a file's size and modification time, and harmless when it is hostile.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from notebook_recorder.core import _nearest_cache, _notfound, _user_cache
from notebook_recorder.core._keys import InferenceRequest, Request, comparable, diff, request_from_record
from notebook_recorder.core._recorder import Recorder
from notebook_recorder.core._store import forget_indexes

URL = "http://127.0.0.1/v1/chat/completions"
ENDPOINT = "/v1/chat/completions"
FIXTURES = Path(__file__).parent.parent / "fixtures" / "llama-stack"


@pytest.fixture(autouse=True)
def _cache_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test starts as a new process would, with its own (empty) user cache directory."""
    home = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.delenv("APIREC_CACHE_DIR", raising=False)  # the session's (tests/conftest.py): XDG's is used
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    _notfound.forget_summaries()
    forget_indexes()
    yield home
    _notfound.forget_summaries()


def _chat(body: dict[str, Any]) -> InferenceRequest:
    return InferenceRequest("POST", ENDPOINT, body, str(body.get("model", "")), URL)


def _write(folder: Path, request: InferenceRequest, *, mtime: int | None = None) -> Path:
    """One recording of ``request`` in ``folder`` (named by its key), optionally with ``mtime``."""
    record = {"test_id": None, "request": request.to_json(None), "response": {"body": {"id": "x"}}}
    path = folder / f"{request.key(None)}.json"
    path.write_bytes(orjson.dumps(record))
    if mtime is not None:
        os.utime(path, ns=(mtime, mtime))
    return path


def _full_scan(folder: Path, request: Request) -> tuple[Path, list[Any]]:
    """The nearest recording as found by diffing every file (the search before issue 28)."""
    recorder = Recorder("replay", dir=folder)
    wanted = comparable(request, None)
    best: tuple[tuple[int, float], Path, list[Any]] | None = None
    for path, record in recorder.store.records():
        stored = request_from_record(record)
        if stored is None or type(stored) is not type(request):
            continue
        test_id = record.get("test_id")
        changes = diff(comparable(stored, test_id if isinstance(test_id, str) else None), wanted)
        rank = (len(changes), sum(change.distance for change in changes))
        if best is None or rank < best[0]:
            best = (rank, path, changes)
    assert best is not None
    return best[1], best[2]


def _nearest(folder: Path, request: Request) -> tuple[Path, list[str]]:
    found = _notfound.nearest(Recorder("replay", dir=folder), request)
    assert found is not None
    return found[0], [str(change) for change in found[1]]


def _conversation(i: int, answer: str | None = None) -> dict[str, Any]:
    return {
        "model": "m",
        "temperature": 0.5,
        "messages": [
            {"role": "user", "content": f"question {i}"},
            {"role": "assistant", "content": answer if answer is not None else f"answer {i}"},
        ],
    }


# --- the bounded search finds what the full scan finds -------------------------------------------


def test_one_changed_value_deep_in_a_field_ranks_before_every_other_value_of_that_field(tmp_path: Path) -> None:
    """200 recordings of one endpoint and model, each with its own conversation: the request is
    the oldest one's with one word of its answer changed. Every other recording differs in the
    same top-level field (``messages``) and in two of its values: only the oldest differs in one.
    Ranking by changed top-level fields tied them all, and the 64 newest were diffed."""
    base = 1_700_000_000_000_000_000
    for i in range(200):
        _write(tmp_path, _chat(_conversation(i)), mtime=base + i * 1_000_000_000)
    oldest = tmp_path / f"{_chat(_conversation(0)).key(None)}.json"
    wanted = _chat(_conversation(0, answer="answer zero"))

    path, changes = _nearest(tmp_path, wanted)

    assert (path, changes) == (oldest, ["body.messages[1].content: 'answer 0' -> 'answer zero'"])
    full_path, full_changes = _full_scan(tmp_path, wanted)
    assert (path, changes) == (full_path, [str(c) for c in full_changes])


def test_a_changed_value_ranks_before_a_value_gone_and_another_added(tmp_path: Path) -> None:
    """One recording differs from the request in ``temperature`` (one change); 150 newer ones have
    no ``temperature`` but a ``top_p`` (two changes). Each differs in two top-level fields, so
    only counting changes per leaf path, not per field, ranks the first one first."""
    base = 1_700_000_000_000_000_000
    near = _write(tmp_path, _chat({"model": "m", "temperature": 0.5, "messages": "hi"}), mtime=base)
    for i in range(150):
        _write(tmp_path, _chat({"model": "m", "top_p": i / 200, "messages": "hi"}), mtime=base + (i + 1) * 10**9)

    path, changes = _nearest(tmp_path, _chat({"model": "m", "temperature": 0.2, "messages": "hi"}))

    assert (path, changes) == (near, ["body.temperature: 0.5 -> 0.2"])


_values = st.one_of(st.integers(-3, 3), st.sampled_from(["a", "b", "a.b", "3.1415926535"]), st.none())
_bodies = st.dictionaries(
    st.sampled_from(["temperature", "top_p", "n", "stop", "user", "seed"]),
    st.one_of(_values, st.lists(_values, max_size=3), st.dictionaries(st.sampled_from(["x", "y"]), _values)),
    max_size=5,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(recorded=st.lists(_bodies, min_size=1, max_size=12, unique_by=lambda b: orjson.dumps(b)), wanted=_bodies)
def test_diffing_only_the_best_ranked_recording_finds_as_few_changes_as_the_full_scan(
    recorded: list[dict[str, Any]], wanted: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within one endpoint and model the ranking counts exactly the changes a diff finds: even
    with a single recording diffed (``MAX_COMPARED = 1``) the nearest has as few changes as the
    nearest of the full scan."""
    monkeypatch.setattr(_notfound, "MAX_COMPARED", 1)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        for body in recorded:
            _write(folder, _chat({"model": "m", **body}))
        request = _chat({"model": "m", **wanted})
        _notfound.forget_summaries()
        found = _notfound.nearest(Recorder("replay", dir=folder), request)
        assert found is not None
        assert len(found[1]) == len(_full_scan(folder, request)[1])


def test_llama_stack_recordings_name_the_recording_a_request_was_changed_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """llama-stack's own files (``payload`` for ``body``, named by a short hash, some the same
    request recorded twice): a request changed in one value of one of them names it and that
    change, as the full scan does; and again from the cache on disk, as a new process."""
    folder = tmp_path / "recordings"
    folder.mkdir()
    for source in sorted(FIXTURES.rglob("*.json")):
        shutil.copy(source, folder / f"{len(list(folder.iterdir()))}-{source.name}")
    monkeypatch.setattr(_nearest_cache, "MIN_FILES", 1)
    checked = 0
    for path in sorted(folder.iterdir()):
        if checked == 12:
            break
        stored = request_from_record(orjson.loads(path.read_bytes()))
        if not isinstance(stored, InferenceRequest) or not isinstance(stored.body, dict):
            continue
        if not isinstance(stored.body.get("messages"), list) or not stored.body["messages"]:
            continue
        body = {**stored.body, "temperature": 1.2345}
        wanted = InferenceRequest(stored.method, stored.endpoint, body, stored.model, stored.url)
        expected_path, expected = _full_scan(folder, wanted)
        assert "body.temperature" in [change.path for change in expected]
        with monkeypatch.context() as patch:
            for again in (False, True):  # summarized now, then from the cache on disk: nothing read again
                _notfound.forget_summaries()
                if again:
                    patch.setattr(_notfound, "_summarize", _unexpected)
                found, changes = _nearest(folder, wanted)
                assert changes == [str(c) for c in expected]
                assert _same_request(found, expected_path)
        checked += 1
    assert checked == 12


def _unexpected(path: str) -> None:
    raise AssertionError(f"{path} was summarized again")


def _same_request(a: Path, b: Path) -> bool:
    """Whether two files hold the same request (llama-stack recorded some requests twice)."""
    records = [orjson.loads(path.read_bytes()) for path in (a, b)]
    requests = [request_from_record(record) for record in records]
    assert requests[0] is not None and requests[1] is not None
    scopes = [record.get("test_id") for record in records]
    return comparable(requests[0], scopes[0]) == comparable(requests[1], scopes[1])


# --- the cache on disk ------------------------------------------------------------------------


@pytest.fixture
def cached_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, InferenceRequest, Path, Path]:
    """A folder of 40 conversations cached on disk (``MIN_FILES`` lowered to 1, ``MAX_COMPARED``
    to 1: only the best ranked recording is diffed, so the ranking decides the answer). Returns
    the folder, a request one change away from ``near``, ``near``, and ``far`` (4 changes away)."""
    monkeypatch.setattr(_nearest_cache, "MIN_FILES", 1)
    monkeypatch.setattr(_notfound, "MAX_COMPARED", 1)
    folder = tmp_path / "recordings"
    folder.mkdir()
    for i in range(40):
        _write(folder, _chat(_conversation(i)))
    _age(folder)
    near = folder / f"{_chat(_conversation(7)).key(None)}.json"
    far = folder / f"{_chat(_conversation(30)).key(None)}.json"
    wanted = _chat(_conversation(7, answer="answer seven"))
    assert _nearest(folder, wanted)[0] == near
    assert _nearest_cache.cache_path(folder.resolve()).is_file()
    _notfound.forget_summaries()
    return folder, wanted, near, far


def test_a_new_process_ranks_from_the_cache_without_reading_the_folder(
    cached_folder: tuple[Path, InferenceRequest, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, wanted, near, _ = cached_folder
    monkeypatch.setattr(_notfound, "_summarize", _unexpected)
    monkeypatch.setattr(_notfound, "walk_recordings", _unexpected)  # the folder is not even listed
    assert _nearest(folder, wanted) == (near, ["body.messages[1].content: 'answer 7' -> 'answer seven'"])


def test_a_file_added_since_the_cache_was_written_is_found(
    cached_folder: tuple[Path, InferenceRequest, Path, Path],
) -> None:
    """The listing kept on disk is used only while the folder's directories are unchanged."""
    folder, wanted, *_ = cached_folder
    added = _write(folder, wanted)
    assert _nearest(folder, wanted) == (added, [])


def test_a_cache_that_lists_a_file_outside_the_folder_is_not_used_to_list_it(
    cached_folder: tuple[Path, InferenceRequest, Path, Path], tmp_path: Path
) -> None:
    """A cache file naming ``../secret.json`` (which holds the very request asked for) as one of
    the folder's files: the listing it holds is refused, and the folder is listed instead."""
    folder, wanted, near, _ = cached_folder
    secret = _write(tmp_path, wanted)
    secret.rename(tmp_path / "secret.json")
    _age(tmp_path)
    cache = _nearest_cache.cache_path(folder.resolve())
    document = orjson.loads(cache.read_bytes())
    document["dirs"][".."] = tmp_path.stat().st_mtime_ns  # as if the folder's parent were in it
    entry = document["files"][near.name]
    for name in ("../secret.json", str(tmp_path / "secret.json"), "sub/../../secret.json"):
        document["files"][name] = entry
        cache.write_bytes(orjson.dumps(document))
        _notfound.forget_summaries()
        assert _nearest(folder, wanted)[0] == near
        del document["files"][name]


def test_the_cache_is_json_in_the_user_cache_dir_and_nothing_is_written_in_the_folder(
    cached_folder: tuple[Path, InferenceRequest, Path, Path], _cache_home: Path
) -> None:
    folder, *_ = cached_folder
    (cache,) = (_cache_home / "notebook-recorder" / "nearest").iterdir()
    document = orjson.loads(cache.read_bytes())
    assert document["root"] == str(folder.resolve()) and len(document["files"]) == 40
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert all(path.suffix == ".json" and not path.name.startswith(".") for path in folder.iterdir())
    assert len(list(folder.iterdir())) == 40


def test_a_file_edited_in_place_since_it_was_cached_is_summarized_again(
    cached_folder: tuple[Path, InferenceRequest, Path, Path],
) -> None:
    """``far`` now holds the very request asked for (edited in place: its directory's mtime is
    unchanged). The cached summary of ``far`` would rank it last; its new size and mtime make the
    search summarize it again, and it is the nearest, with no change."""
    folder, wanted, _, far = cached_folder
    record = orjson.loads(far.read_bytes())
    record["request"] = wanted.to_json(None)
    far.write_bytes(orjson.dumps(record))

    assert _nearest(folder, wanted) == (far, [])
    _notfound.forget_summaries()
    assert _nearest(folder, wanted) == (far, [])  # and the cache on disk was brought up to date


def test_a_deleted_file_is_not_named_and_leaves_the_cache(
    cached_folder: tuple[Path, InferenceRequest, Path, Path],
) -> None:
    folder, wanted, near, _ = cached_folder
    near.unlink()

    path, changes = _nearest(folder, wanted)

    assert path != near and path.exists() and len(changes) == 2
    document = orjson.loads(_nearest_cache.cache_path(folder.resolve()).read_bytes())
    assert near.name not in document["files"] and len(document["files"]) == 39


def _age(folder: Path) -> None:
    """Date ``folder``'s last change an hour back: a listing made now is then kept on disk (a
    directory changed just before it was listed may change again within the same timestamp)."""
    old = folder.stat().st_mtime_ns - 3600 * 10**9
    os.utime(folder, ns=(old, old))


def _hostile_documents(folder: Path, near: Path, far: Path) -> dict[str, bytes]:
    root = str(folder.resolve())
    ours = orjson.loads(_nearest_cache.cache_path(folder.resolve()).read_bytes())
    header = {key: ours[key] for key in ("format", "version", "root", "dirs", "listed_at")}
    entry = ours["files"][near.name]
    lying = dict(ours["files"])
    # far's (real size and mtime) claiming near's leaves, and a path outside the folder
    lying[far.name] = [far.stat().st_size, far.stat().st_mtime_ns, *ours["files"][near.name][2:]]
    lying["../../outside.json"] = entry
    return {
        "not json": b"\x00{not json",
        "a list": b"[1, 2, 3]",
        "another folder": orjson.dumps({**ours, "root": root + "-other"}),
        "another version": orjson.dumps({**ours, "version": 999}),
        "malformed entries": orjson.dumps(
            {
                **header,
                "groups": [["POST"], 7, [[1, 2], "m"], [["a", "b", "c"], "m"]],
                "files": {
                    near.name: [1, 2, 99, None, ""],
                    far.name: ["size", None, 0, 5, ["not", "hex"]],
                    "x.json": "nothing",
                },
            }
        ),
        "not hex": orjson.dumps({**ours, "files": {n: [*e[:4], "zz" * 8] for n, e in ours["files"].items()}}),
        "odd values": orjson.dumps(
            {**ours, "files": {n: [str(e[0]), e[1], e[2], 5, [1]] for n, e in ours["files"].items()}}
        ),
        "lying": orjson.dumps({**ours, "files": lying}),
    }


@pytest.mark.parametrize(
    "kind",
    ["not json", "a list", "another folder", "another version", "malformed entries", "not hex", "odd values"],
)
def test_a_hostile_cache_file_changes_nothing_shown(
    cached_folder: tuple[Path, InferenceRequest, Path, Path], kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the cache file says, what is shown is diffed from the recordings in the folder:
    a cache that lies can only make the search diff a worse recording first, and with more than
    one recording diffed the nearest is still found."""
    folder, wanted, near, far = cached_folder
    cache = _nearest_cache.cache_path(folder.resolve())
    cache.write_bytes(_hostile_documents(folder, near, far)[kind])
    monkeypatch.setattr(_notfound, "MAX_COMPARED", 8)

    path, changes = _nearest(folder, wanted)

    assert (path, changes) == (near, ["body.messages[1].content: 'answer 7' -> 'answer seven'"])


def test_a_lying_cache_entry_never_shows_what_it_claims(
    cached_folder: tuple[Path, InferenceRequest, Path, Path],
) -> None:
    """An entry claiming that ``far`` (its real size and mtime) is the request asked for makes
    the search diff ``far`` first (one file diffed here): the diff shown is ``far``'s real one."""
    folder, wanted, near, far = cached_folder
    cache = _nearest_cache.cache_path(folder.resolve())
    cache.write_bytes(_hostile_documents(folder, near, far)["lying"])

    path, changes = _nearest(folder, wanted)

    assert path == far
    assert changes == [str(c) for c in diff(comparable(_chat(_conversation(30)), None), comparable(wanted, None))]


def test_a_cache_path_that_is_a_fifo_or_too_large_is_not_read(
    cached_folder: tuple[Path, InferenceRequest, Path, Path],
) -> None:
    folder, wanted, near, _ = cached_folder
    cache = _nearest_cache.cache_path(folder.resolve())
    cache.unlink()
    os.mkfifo(cache)  # opening it for reading would block
    assert _nearest(folder, wanted)[0] == near
    _notfound.forget_summaries()
    cache.unlink()
    with cache.open("wb") as out:
        out.truncate(_user_cache.MAX_BYTES + 1)  # sparse
    assert _nearest(folder, wanted)[0] == near


def test_an_unreadable_file_is_skipped_and_the_rest_keeps_working(
    cached_folder: tuple[Path, InferenceRequest, Path, Path],
) -> None:
    folder, wanted, near, _ = cached_folder
    (folder / "broken.json").write_text("{ not json")
    _notfound.forget_summaries()
    assert _nearest(folder, wanted)[0] == near
    recorder = Recorder("replay", dir=folder)
    assert recorder.store.find("0" * 64) is None
    message = _notfound.missing_message(recorder, wanted, wanted.key(None))
    assert "broken.json" in message and "Nearest recorded request" in message
