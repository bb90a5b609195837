"""`nr.recording` blocks belong to the thread or task that opened them."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import openai
from wire_server import WireServer

import notebook_recorder as nr
from notebook_recorder.core import _session


def _scopes(directory: Path) -> set[str | None]:
    return {json.loads(path.read_text())["test_id"] for path in directory.glob("*.json")}


async def test_concurrent_tasks_record_under_their_own_scopes(async_client: openai.AsyncOpenAI, tmp_path: Path) -> None:
    async def agent(name: str) -> None:
        with nr.recording("record", dir=tmp_path / name, scope=name):
            for turn in range(3):
                await asyncio.sleep(0.01)  # let the other task open its block and run in between
                await async_client.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": f"{name} turn {turn}"}]
                )

    await asyncio.gather(agent("alpha"), agent("beta"))
    assert _scopes(tmp_path / "alpha") == {"alpha"}
    assert _scopes(tmp_path / "beta") == {"beta"}
    assert len(list((tmp_path / "alpha").glob("*.json"))) == 3
    assert _session.active() is None


def test_a_worker_thread_uses_the_block_open_in_the_main_thread(
    wire_server: WireServer, client: openai.OpenAI, tmp_path: Path
) -> None:
    with nr.recording("record", dir=tmp_path, scope="main"):
        worker = threading.Thread(
            target=lambda: client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        )
        worker.start()
        worker.join()
    assert _scopes(tmp_path) == {"main"}


def test_an_inner_block_left_open_is_closed_with_its_outer_block(tmp_path: Path) -> None:
    outer = nr.recording("record", dir=tmp_path / "outer")
    inner = nr.recording("record", dir=tmp_path / "inner")
    with outer:
        inner.__enter__()  # never exited
        assert _session.active() is not None and _session.active().dir == tmp_path / "inner"  # type: ignore[union-attr]
    assert _session.active() is None
