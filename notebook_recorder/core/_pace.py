"""Paced replay: a replayed stream's chunks arrive with the gaps they were recorded with.

A recorded stream keeps each chunk's arrival time (``response.chunk_offsets_ms``, FORMAT.md's
extension). With a pace factor (``nr.recording(..., pace=1.0)``, ``%apirec replay --pace``,
``pytest --apirec-pace``, ``notebook-recorder run --pace``), chunk ``i`` is handed over
``(offset[i] - offset[0]) / pace`` ms after the first one: ``pace=1`` is as recorded, ``2`` twice
as fast, ``0.5`` twice as slow. The first chunk comes at once (the time to the first token is not
replayed: the gaps between chunks are). The schedule is absolute, so the time spent decoding
chunks does not add up. Sync streams sleep with :func:`time.sleep`; async streams with
:func:`asyncio.sleep`, so the event loop keeps running. A stream recorded without offsets
(llama-stack's files, say) replays at once, with a :class:`PaceWarning`.

Paced are the streams replayed as the SDK's own objects (``interceptors._call``); a raw streamed
body (``with_streaming_response``) and ``nr.tool`` generators replay at once.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["PaceWarning", "apaced", "paced", "schedule"]


MAX_GAP = 60.0
"""The longest wait between two chunks of a paced replay, in seconds."""


class PaceWarning(UserWarning):
    """A stream asked to replay at its recorded pace has no recorded timing: it replays at once."""


def schedule(response: dict[str, Any], pace: float, where: Any = "<recording>") -> list[float] | None:
    """Seconds after the first chunk at which each chunk is due, or ``None`` (with a
    :class:`PaceWarning`) when the recording has no usable ``chunk_offsets_ms``.

    Offsets that are not numbers, or that go backwards, count as no gap; a gap longer than
    :data:`MAX_GAP` seconds (once divided by ``pace``) is cut to it, with a :class:`PaceWarning`
    (a stranger's file with an offset of a year must not stop the replay).
    """
    offsets = response.get("chunk_offsets_ms")
    if not isinstance(offsets, list) or not offsets:
        warnings.warn(
            f"{where}: this stream was recorded without chunk timing (response.chunk_offsets_ms); "
            "it replays at once, not at the recorded pace",
            PaceWarning,
            stacklevel=2,
        )
        return None
    due: list[float] = []
    previous: float | None = None  # the last usable offset, in ms
    last = 0.0
    cut = 0
    for value in offsets:
        if (type(value) is int or type(value) is float) and value == value:
            if previous is not None and value > previous:
                gap = (float(value) - previous) / 1000.0 / pace
                if gap > MAX_GAP:
                    gap, cut = MAX_GAP, cut + 1
                last += gap
            previous = value if previous is None else max(previous, value)
        due.append(last)
    if cut:
        warnings.warn(
            f"{where}: {cut} gap(s) between chunks longer than {MAX_GAP:g} s replay as {MAX_GAP:g} s",
            PaceWarning,
            stacklevel=2,
        )
    return due


def paced(chunks: Iterator[T], due: list[float]) -> Iterator[T]:
    """``chunks``, chunk ``i`` handed over ``due[i]`` seconds after the first (later chunks at once)."""
    start: float | None = None
    for i, chunk in enumerate(chunks):
        if start is None:
            start = time.perf_counter()
        elif i < len(due):
            wait = start + due[i] - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        yield chunk


async def apaced(chunks: AsyncIterator[T], due: list[float]) -> AsyncIterator[T]:
    """:func:`paced` for an async stream: waits with :func:`asyncio.sleep`, never blocking the loop."""
    start: float | None = None
    i = 0
    async for chunk in chunks:
        if start is None:
            start = time.perf_counter()
        elif i < len(due):
            wait = start + due[i] - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
        i += 1
        yield chunk
