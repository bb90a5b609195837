"""Repeated identical requests (issue 11): the k-th identical request of a recording context is
recorded as, and replayed from, occurrence k (FORMAT.md, "Repeated identical requests").

The wire server numbers its answers (``count_answers``: every answer's text starts with ``[n] ``),
so a replay of the wrong occurrence shows. Replays run with the server stopped, or with its
request log checked, so that nothing reaches the network unseen.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import nbformat
import openai
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from wire_server import TEST_API_KEY, WireServer

import notebook_recorder as nr
from notebook_recorder.core._store import forget_indexes
from notebook_recorder.frontends.cli.main import main

REPO = Path(__file__).resolve().parents[2]
SAME = [{"role": "user", "content": "Pick a number"}]
OTHER = [{"role": "user", "content": "Pick a letter"}]


@pytest.fixture
def server() -> Iterator[WireServer]:
    with WireServer(count_answers=True) as wire:
        yield wire


@pytest.fixture
def client(server: WireServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key=TEST_API_KEY, max_retries=0) as sync_client:
        yield sync_client


def ask(client: openai.OpenAI, messages: list[dict[str, str]] = SAME) -> str:
    """The number the server put in front of its answer: ``[3] The latest...`` is ``"3"``."""
    content = client.chat.completions.create(model="gpt-4o", messages=messages).choices[0].message.content
    assert content is not None and content.startswith("[")
    return content[1 : content.index("]")]


def ask_stream(client: openai.OpenAI) -> str:
    chunks = client.chat.completions.create(model="gpt-4o", messages=SAME, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text[1 : text.index("]")]


def names(directory: Path) -> list[str]:
    """File names with the key shortened: ``<key>.json`` -> ``k.json``, ``<key>-2.json`` -> ``k-2.json``."""
    shown = []
    for path in sorted(directory.glob("*.json")):
        stem = path.stem
        shown.append(("k" + stem[64:] if len(stem) >= 64 else stem) + ".json")
    return sorted(shown)


def content(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


# ---------------------------------------------------------------------------------------------
# The same request three times
# ---------------------------------------------------------------------------------------------


def test_three_identical_requests_replay_in_order_and_a_fourth_gets_the_last(
    server: WireServer, client: openai.OpenAI, tmp_path: Path
) -> None:
    with nr.recording("record", dir=tmp_path):
        assert [ask(client) for _ in range(3)] == ["1", "2", "3"]
    assert names(tmp_path) == ["k-2.json", "k-3.json", "k.json"]
    (first,) = [p for p in tmp_path.glob("*.json") if len(p.stem) == 64]
    assert "occurrence" not in content(first)  # the first is a plain llama-stack file
    assert content(tmp_path / f"{first.stem}-3.json")["occurrence"] == 3
    assert list(content(tmp_path / f"{first.stem}-2.json"))[:2] == ["test_id", "occurrence"]

    server.stop()
    with nr.recording("replay", dir=tmp_path):
        assert [ask(client) for _ in range(4)] == ["1", "2", "3", "3"]
    replayed = nr.calls()[3:]
    assert [(c.outcome, c.occurrence) for c in replayed] == [
        ("replayed", 1),
        ("replayed", 2),
        ("replayed", 3),
        ("replayed", 3),
    ]
    assert replayed[3].path == replayed[2].path and replayed[3].path.endswith("-3.json")


def test_interleaved_requests_keep_their_own_counts(server: WireServer, client: openai.OpenAI, tmp_path: Path) -> None:
    with nr.recording("record", dir=tmp_path):
        assert [ask(client, m) for m in (SAME, OTHER, SAME, OTHER)] == ["1", "2", "3", "4"]
    assert len(names(tmp_path)) == 4
    server.stop()
    with nr.recording("replay", dir=tmp_path):
        assert [ask(client, m) for m in (OTHER, SAME, SAME, OTHER, OTHER)] == ["2", "1", "3", "4", "4"]


def test_streams_have_occurrences(server: WireServer, client: openai.OpenAI, tmp_path: Path) -> None:
    with nr.recording("record", dir=tmp_path):
        assert [ask_stream(client) for _ in range(3)] == ["1", "2", "3"]
    server.stop()
    with nr.recording("replay", dir=tmp_path):
        assert [ask_stream(client) for _ in range(4)] == ["1", "2", "3", "3"]


async def test_async_streams_have_occurrences(server: WireServer, tmp_path: Path) -> None:
    async def ask_async(aclient: openai.AsyncOpenAI) -> str:
        chunks = await aclient.chat.completions.create(model="gpt-4o", messages=SAME, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
        return text[1 : text.index("]")]

    async with openai.AsyncOpenAI(base_url=server.base_url, api_key=TEST_API_KEY, max_retries=0) as aclient:
        with nr.recording("record", dir=tmp_path):
            assert [await ask_async(aclient) for _ in range(2)] == ["1", "2"]
        server.stop()
        with nr.recording("replay", dir=tmp_path):
            assert [await ask_async(aclient) for _ in range(3)] == ["1", "2", "2"]


def test_concurrent_identical_requests_never_overwrite_each_other(
    server: WireServer, client: openai.OpenAI, tmp_path: Path
) -> None:
    with nr.recording("record", dir=tmp_path), ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: ask(client), range(8)))
    assert sorted(answers, key=int) == [str(n) for n in range(1, 9)]
    assert len(names(tmp_path)) == 8  # one file per answer: none lost
    server.stop()
    with nr.recording("replay", dir=tmp_path):
        assert sorted((ask(client) for _ in range(8)), key=int) == [str(n) for n in range(1, 9)]


# ---------------------------------------------------------------------------------------------
# Recording contexts: a session, a block, a scope
# ---------------------------------------------------------------------------------------------


def test_a_session_counts_until_a_new_start(server: WireServer, client: openai.OpenAI, tmp_path: Path) -> None:
    nr.start("record", dir=tmp_path)
    assert [ask(client), ask(client)] == ["1", "2"]
    nr.start("record", dir=tmp_path)  # a new session starts over: it overwrites 1 and 2
    assert [ask(client), ask(client)] == ["3", "4"]
    server.stop()
    nr.start("replay", dir=tmp_path)
    assert [ask(client), ask(client), ask(client)] == ["3", "4", "4"]
    nr.start("replay", dir=tmp_path)
    assert ask(client) == "3"
    nr.stop()
    assert [c.occurrence for c in nr.calls()] == [1, 2, 1, 2, 1, 2, 2, 1]


def test_each_entry_of_a_block_starts_at_one(server: WireServer, client: openai.OpenAI, tmp_path: Path) -> None:
    block = nr.recording("record-if-missing", dir=tmp_path)
    with block:
        assert ask(client) == "1"
    server.stop()
    replay = nr.recording("replay", dir=tmp_path)
    for _ in range(2):
        with replay:  # the same block object, entered again: a new context
            assert ask(client) == "1"

    @nr.recording("replay", dir=tmp_path)
    def decorated() -> str:
        return ask(client)

    assert [decorated(), decorated()] == ["1", "1"]


def test_a_scope_has_its_own_occurrences(server: WireServer, client: openai.OpenAI, tmp_path: Path) -> None:
    for scope in ("alpha", "beta"):
        with nr.recording("record", dir=tmp_path, scope=scope):
            ask(client), ask(client)
    assert len(names(tmp_path)) == 4
    server.stop()
    with nr.recording("replay", dir=tmp_path, scope="beta"):
        assert [ask(client), ask(client), ask(client)] == ["3", "4", "4"]
    with nr.recording("replay", dir=tmp_path, scope="alpha"):
        assert [ask(client), ask(client)] == ["1", "2"]


def test_tool_calls_have_occurrences(tmp_path: Path) -> None:
    counter = iter(range(1, 100))

    @nr.tool(provider="dice", name="roll")
    def roll(sides: int) -> int:
        return next(counter)

    with nr.recording("record", dir=tmp_path):
        assert [roll(6), roll(6), roll(20), roll(6)] == [1, 2, 3, 4]
    with nr.recording("replay", dir=tmp_path):
        assert [roll(6), roll(20), roll(6), roll(6), roll(6), roll(20)] == [1, 3, 2, 4, 4, 3]
    assert next(counter) == 5  # replay ran nothing


# ---------------------------------------------------------------------------------------------
# record-if-missing and record
# ---------------------------------------------------------------------------------------------


def test_record_if_missing_replays_the_latest_occurrence_instead_of_calling(
    server: WireServer, client: openai.OpenAI, tmp_path: Path
) -> None:
    with nr.recording("record", dir=tmp_path):
        assert [ask(client), ask(client)] == ["1", "2"]
    server.reset()
    with nr.recording("record-if-missing", dir=tmp_path):
        assert [ask(client), ask(client), ask(client)] == ["1", "2", "2"]
    assert server.requests == []  # the third call did not reach the server
    assert len(names(tmp_path)) == 2
    with nr.recording("record-if-missing", dir=tmp_path):
        assert [ask(client, OTHER), ask(client, OTHER)] == ["3", "3"]  # recorded once, then replayed
    assert len(server.requests) == 1


def test_record_twice_overwrites_each_occurrence_and_keeps_older_extra_ones(
    server: WireServer, client: openai.OpenAI, tmp_path: Path
) -> None:
    with nr.recording("record", dir=tmp_path):
        assert [ask(client) for _ in range(3)] == ["1", "2", "3"]
    with nr.recording("record", dir=tmp_path):
        assert [ask(client) for _ in range(2)] == ["4", "5"]
    # Both answers of the second run are kept (neither overwrote the other); the first run's
    # third answer stays until `prune` removes it (a partial re-run must not delete recordings).
    assert names(tmp_path) == ["k-2.json", "k-3.json", "k.json"]
    server.stop()
    with nr.recording("replay", dir=tmp_path):
        assert [ask(client), ask(client)] == ["4", "5"]


# ---------------------------------------------------------------------------------------------
# Finding occurrence files by content
# ---------------------------------------------------------------------------------------------


def test_occurrence_files_are_found_by_content_whatever_their_names(
    server: WireServer, client: openai.OpenAI, tmp_path: Path
) -> None:
    with nr.recording("record", dir=tmp_path):
        assert [ask(client) for _ in range(3)] == ["1", "2", "3"]
    # llama-stack style names that say nothing about key or occurrence, in another order.
    for path, new in zip(sorted(tmp_path.glob("*.json")), ("c0ffee.json", "0a0a0a.json", "beef01.json"), strict=True):
        path.rename(tmp_path / new)
    server.stop()
    forget_indexes()
    with nr.recording("replay", dir=tmp_path):
        assert [ask(client) for _ in range(4)] == ["1", "2", "3", "3"]


def test_a_gap_left_by_a_failed_call_is_bridged(server: WireServer, client: openai.OpenAI, tmp_path: Path) -> None:
    with nr.recording("record", dir=tmp_path):
        assert [ask(client) for _ in range(3)] == ["1", "2", "3"]
    (first,) = [p for p in tmp_path.glob("*.json") if len(p.stem) == 64]
    first.unlink()  # as if the first call had failed while recording
    (tmp_path / f"{first.stem}-3.json").unlink()
    server.stop()
    with nr.recording("replay", dir=tmp_path):
        assert [ask(client) for _ in range(3)] == ["2", "2", "2"]


def test_a_missing_request_is_still_explained(server: WireServer, client: openai.OpenAI, tmp_path: Path) -> None:
    with nr.recording("record", dir=tmp_path):
        ask(client), ask(client)
    server.stop()
    with nr.recording("replay", dir=tmp_path), pytest.raises(nr.RecordingNotFoundError) as info:
        ask(client, [{"role": "user", "content": "Pick a numbers"}])
    message = str(info.value)
    assert message.startswith("No recording of POST /v1/chat/completions (model gpt-4o)")
    assert "body.messages[0].content: 'Pick a number' -> 'Pick a numbers'" in message
    assert nr.calls()[-1].outcome == "missing" and nr.calls()[-1].occurrence == 1


# ---------------------------------------------------------------------------------------------
# The frames and the command line
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def three(server: WireServer, client: openai.OpenAI, tmp_path: Path) -> Path:
    """A directory with occurrences 1-3 of one request and one other request."""
    directory = tmp_path / "recs"
    with nr.recording("record", dir=directory):
        ask(client), ask(client), ask(client), ask(client, OTHER)
    return directory


def test_load_recordings_has_an_occurrence_column(three: Path) -> None:
    frame = nr.load_recordings(three).sort_values(["key", "occurrence"])
    assert str(frame["occurrence"].dtype) == "Int64"
    counts = frame.groupby("key")["occurrence"].apply(list).sort_values(key=lambda s: s.map(len)).tolist()
    assert counts == [[1], [1, 2, 3]]
    assert frame["text"].str.slice(0, 3).tolist().count("[4]") == 1


def test_ls_shows_the_occurrence(three: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", str(three), "--sort", "key"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["KEY", "OCC", "KIND"]
    rows = [line.split() for line in lines[1:5]]
    assert sorted(row[1] for row in rows) == ["1", "1", "2", "3"]
    repeated = [row for row in rows if [r[0] for r in rows].count(row[0]) == 3]
    assert [row[1] for row in repeated] == ["1", "2", "3"]  # one key, its occurrences in order
    assert "named other than their key" not in lines[-1]


def test_verify_understands_occurrence_files(three: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(three)]) == 0
    assert "OK: 4 files, no problems" in capsys.readouterr().out

    (third,) = three.glob("*-3.json")
    key = third.stem[:64]
    third.rename(three / f"{key}-5.json")  # the name disagrees with the occurrence field
    (three / "copy.json").write_bytes((three / f"{key}-2.json").read_bytes())  # occurrence 2 twice
    bad = content(three / f"{key}-2.json") | {"occurrence": "two"}
    (three / "bad.json").write_text(json.dumps(bad))
    assert main(["verify", str(three)]) == 1
    out = capsys.readouterr().out
    assert f"{key}-5.json: its occurrence field is 3, its name says 5" in out
    assert f"copy.json: its key is {key}, occurrence 2" in out
    assert f"{key} occurrence 2, in 2 files:" in out
    assert "bad.json: occurrence must be a whole number >= 1, not 'two'" in out


def test_import_keeps_occurrences(three: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for number, path in enumerate(sorted(three.glob("*.json"))):
        path.rename(three / f"{number:012x}.json")  # llama-stack style names
    dest = tmp_path / "imported"
    assert main(["import", str(three), str(dest)]) == 0
    assert "4 imported" in capsys.readouterr().out
    assert sorted(n[1:] if n.startswith("k") else "other" for n in names(dest)) == [
        "-2.json",
        "-3.json",
        ".json",
        ".json",
    ]
    assert main(["verify", str(dest)]) == 0


# ---------------------------------------------------------------------------------------------
# In a real kernel, and prune
# ---------------------------------------------------------------------------------------------

ASK_CELL = (
    "answer = client.chat.completions.create(model='gpt-4o', messages=[{'role': 'user', 'content': 'Same?'}])\n"
    "print(answer.choices[0].message.content[:3])"
)


def twice_notebook(path: Path) -> Path:
    nb = new_notebook()
    nb.cells = [
        new_code_cell("%load_ext notebook_recorder\n%apirec record-if-missing"),
        new_code_cell(
            "import os\nimport openai\n"
            "client = openai.OpenAI(base_url=os.environ.get('WIRE_BASE_URL', 'http://127.0.0.1:9/v1'),"
            " api_key=os.environ.get('WIRE_API_KEY', 'sk-unused'), max_retries=0)"
        ),
        new_code_cell(ASK_CELL),
        new_code_cell("%%apirec record-if-missing\n" + ASK_CELL),  # a cell of its own counts with the session
        new_code_cell(ASK_CELL),
        new_code_cell("import notebook_recorder as nr\nprint([(c.outcome, c.occurrence) for c in nr.calls()])"),
    ]
    nbformat.write(nb, path)
    return path


def cli(*args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in ("APIREC_MODE", "APIREC_DIR", "OPENAI_API_KEY")}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "notebook_recorder.cli", *map(str, args)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def printed(nb_path: Path, cell: int) -> str:
    """What a cell printed, without the extension's own notes."""
    nb = nbformat.read(nb_path, as_version=4)
    text = "".join(o.get("text", "") for o in nb.cells[cell].outputs if o.output_type == "stream")
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith("apirec: "))


@pytest.mark.frontend
@pytest.mark.timeout(240)
def test_a_notebook_asking_three_times_replays_the_answers_in_order(server: WireServer, tmp_path: Path) -> None:
    notebook = twice_notebook(tmp_path / "twice.ipynb")
    recorded = tmp_path / "recorded.ipynb"
    wire = {"WIRE_BASE_URL": server.base_url, "WIRE_API_KEY": TEST_API_KEY}
    result = cli("run", notebook, "--mode", "record", "--output", recorded, **wire)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [printed(recorded, cell)[:3] for cell in (2, 3, 4)] == ["[1]", "[2]", "[3]"]
    recordings = tmp_path / "recordings" / "twice"
    assert len(names(recordings)) == 3

    server.stop()
    replayed = tmp_path / "replayed.ipynb"
    result = cli("run", notebook, "--mode", "replay", "--output", replayed, **wire)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [printed(replayed, cell)[:3] for cell in (2, 3, 4)] == ["[1]", "[2]", "[3]"]
    assert "[('replayed', 1), ('replayed', 2), ('replayed', 3)]" in printed(replayed, 5)

    # An occurrence no run uses any more (left by an earlier, longer record run) is what prune lists.
    (second,) = recordings.glob("*-2.json")
    stale = recordings / f"{second.stem[:64]}-4.json"
    stale.write_text(json.dumps(content(second) | {"occurrence": 4}))
    result = cli("prune", tmp_path / "recordings", "--used-by", notebook, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 of 4 recordings" in result.stdout and f"twice/{stale.name}" in result.stdout
    assert not stale.exists() and len(names(recordings)) == 3


# ---------------------------------------------------------------------------------------------
# The store's lookup
# ---------------------------------------------------------------------------------------------


def _tool_record(occurrence: int | None, answer: str) -> dict[str, Any]:
    record: dict[str, Any] = {
        "test_id": None,
        "request": {"test_id": None, "provider": "p", "tool_name": "t", "kwargs": {"q": 1}},
        "response": {"body": answer, "is_streaming": False},
        "id_normalization_mapping": {},
    }
    if occurrence is not None:
        record["occurrence"] = occurrence
    return record


def test_store_find_is_exact_and_find_latest_serves_the_nearest(tmp_path: Path) -> None:
    from notebook_recorder.core._keys import record_key
    from notebook_recorder.core._store import Store

    store = Store(tmp_path)
    key = record_key(_tool_record(None, ""))
    assert key is not None
    assert store.write(key, _tool_record(None, "one")).name == f"{key}.json"
    assert store.write(key, _tool_record(3, "three")).name == f"{key}-3.json"
    with pytest.raises(ValueError, match="occurrence must be a whole number >= 1, not 0"):
        store.write(key, _tool_record(0, "zero"))
    assert not list(tmp_path.glob(".*.tmp"))

    def answer(found: Any) -> tuple[int, str] | None:
        return None if found is None else (found.occurrence, found.record["response"]["body"])

    assert answer(store.find(key)) == (1, "one")
    assert answer(store.find(key, 2)) is None
    assert [answer(store.find_latest(key, k)) for k in (1, 2, 3, 4)] == [
        (1, "one"),
        (1, "one"),
        (3, "three"),
        (3, "three"),
    ]
    (tmp_path / f"{key}.json").unlink()
    assert answer(store.find_latest(key, 1)) == (3, "three")  # a gap at the start
    assert store.find_latest("0" * 64, 1) is None

    # A file whose name says one occurrence and whose content another is found by its content.
    (tmp_path / f"{key}-3.json").rename(tmp_path / f"{key}-2.json")
    forget_indexes()
    store = Store(tmp_path)
    assert answer(store.find(key, 3)) == (3, "three")
    assert store.find(key, 2) is None
