"""Paced replay: a replayed stream arrives with its recorded gaps between chunks, scaled.

A 20-chunk stream is recorded from the loopback wire server with 50 ms between chunks, then
replayed through the real openai SDK (sync and async) at pace 1, at pace 2 and instantly. The
machine running the suite is shared and loaded, so the bounds are generous: sleeping can only
make a stream slower, and the pace-2 replay must take about half of the recorded time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from wire_server import TEST_API_KEY, ReceivedRequest, Reply, WireServer

import notebook_recorder as nr
from notebook_recorder.core import _pace
from notebook_recorder.core._pace import PaceWarning

MESSAGES = [{"role": "user", "content": "Stream twenty chunks"}]
GAP = 0.05


class TwentyChunks(WireServer):
    """Streams exactly 20 chat chunks, ``chunk_delay`` apart."""

    def handle(self, request: ReceivedRequest) -> Reply:
        reply = super().handle(request)
        if reply.events is not None:
            reply.events = reply.events[:20]
        return reply


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, float]]:
    """A directory with the 20-chunk stream, and its recorded span (first to last chunk), in s."""
    directory = tmp_path_factory.mktemp("paced")
    with (
        TwentyChunks(chunk_delay=GAP) as server,
        openai.OpenAI(base_url=server.base_url, api_key=TEST_API_KEY, max_retries=0) as client,
        nr.recording("record", dir=directory),
    ):
        chunks = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))  # type: ignore[arg-type]
    assert len(chunks) == 20
    (path,) = directory.glob("*.json")
    offsets = json.loads(path.read_text())["response"]["chunk_offsets_ms"]
    assert len(offsets) == 20
    span = (offsets[-1] - offsets[0]) / 1000
    assert span >= 19 * GAP * 0.9
    yield directory, span


def replay_seconds(directory: Path, **kwargs: object) -> tuple[float, int]:
    with (
        openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key=TEST_API_KEY, max_retries=0) as client,
        nr.recording("replay", dir=directory, **kwargs),  # type: ignore[arg-type]
    ):
        started = time.perf_counter()
        n = sum(1 for _ in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))  # type: ignore[arg-type]
        return time.perf_counter() - started, n


def test_pace_1_replays_the_recorded_gaps(recorded: tuple[Path, float]) -> None:
    directory, span = recorded
    seconds, n = replay_seconds(directory, pace=1.0)
    assert n == 20
    assert span * 0.95 <= seconds <= span + 1.5  # about 1 s


def test_pace_2_is_twice_as_fast(recorded: tuple[Path, float]) -> None:
    directory, span = recorded
    seconds, _ = replay_seconds(directory, pace=2.0)
    assert span / 2 * 0.95 <= seconds <= span / 2 + 0.75  # about 0.5 s


def test_the_default_is_instant(recorded: tuple[Path, float]) -> None:
    directory, span = recorded
    seconds, n = replay_seconds(directory)
    assert n == 20 and seconds < 0.25 < span / 3


def test_apirec_pace_overrides_the_code(recorded: tuple[Path, float], monkeypatch: pytest.MonkeyPatch) -> None:
    directory, span = recorded
    monkeypatch.setenv("APIREC_PACE", "4")
    seconds, _ = replay_seconds(directory)
    assert span / 4 * 0.95 <= seconds <= span / 4 + 0.75


async def test_async_streams_wait_without_blocking_the_loop(recorded: tuple[Path, float]) -> None:
    directory, span = recorded
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    async with openai.AsyncOpenAI(base_url="http://127.0.0.1:9/v1", api_key=TEST_API_KEY, max_retries=0) as client:
        with nr.recording("replay", dir=directory, pace=1.0):
            started = time.perf_counter()
            stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
            n = 0
            async for _ in stream:
                n += 1
            seconds = time.perf_counter() - started
    done.set()
    await task
    assert n == 20
    assert span * 0.95 <= seconds <= span + 1.5
    assert ticks >= 20  # the loop ran other tasks while the stream waited (time.sleep would starve it)


def test_a_stream_without_offsets_replays_at_once_with_a_note(recorded: tuple[Path, float], tmp_path: Path) -> None:
    directory, _ = recorded
    (path,) = directory.glob("*.json")
    record = json.loads(path.read_text())
    del record["response"]["chunk_offsets_ms"]
    (tmp_path / path.name).write_text(json.dumps(record))
    with pytest.warns(PaceWarning, match="recorded without chunk timing"):
        seconds, n = replay_seconds(tmp_path, pace=1.0)
    assert n == 20 and seconds < 0.25


def test_a_gap_of_a_year_in_a_strangers_file_does_not_stop_the_replay(
    recorded: tuple[Path, float], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offsets a year and 1e300 ms apart wait MAX_GAP each (here 0.2 s), with a warning."""
    monkeypatch.setattr(_pace, "MAX_GAP", 0.2)
    directory, _ = recorded
    (path,) = directory.glob("*.json")
    record = json.loads(path.read_text())
    offsets = [0.0] * 20
    offsets[5:] = [365 * 86400 * 1000.0] * 15
    offsets[12:] = [1e300] * 8
    record["response"]["chunk_offsets_ms"] = offsets
    (tmp_path / path.name).write_text(json.dumps(record))
    with pytest.warns(PaceWarning, match=r"2 gap\(s\) between chunks longer than 0.2 s"):
        seconds, n = replay_seconds(tmp_path, pace=1.0)
    assert n == 20 and 0.35 < seconds < 3


def test_a_bad_pace_is_refused(tmp_path: Path) -> None:
    for bad in (0, -1, "fast", float("nan")):
        with pytest.raises(ValueError, match="pace"):
            nr.recording("record", dir=tmp_path, pace=bad)  # type: ignore[arg-type]
