"""A raw response's body, tapped as the caller reads it; and the HTTP pieces of a recording.

Raw responses (``with_raw_response``, ``with_streaming_response``) are the SDK's own objects,
unread and open. While recording, their body is tapped where the HTTP library reads it (the
response's byte ``stream``): every read passes through and a copy is kept, with its time, and
reading it to the end (or closing it) tells the call, which saves it. Also here: which response
headers a recording keeps, the content-type tests, and the SSE bytes of a recorded event.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import Any, Protocol

import orjson

from ._compat import StainlessSdk


class _Reader(Protocol):
    """What a tap tells when the body it taps has been read to the end, or closed."""

    def tap_ended(self, tap: Tap, complete: bool) -> None: ...

    def tap_failed(self, exc: Exception) -> None: ...


class Tap:
    """A response body stream that passes every read through and keeps a copy, with its time.

    It replaces the HTTP response's ``stream`` (the lowest level the SDK and the caller read
    from: ``iter_bytes``, ``iter_lines``, ``parse()``, ``read()`` all go through it). Reading it to
    the end, or closing it, tells the call.
    """

    def __init__(self, inner: Any, call: _Reader) -> None:
        self._inner = inner
        self._call: _Reader | None = call
        self.pieces: list[bytes] = []
        self.arrivals: list[float] = []

    def _keep(self, data: bytes) -> None:
        self.pieces.append(data)
        self.arrivals.append(time.perf_counter())

    def _end(self, complete: bool) -> None:
        call, self._call = self._call, None
        if call is None:
            return
        try:
            call.tap_ended(self, complete)
        except Exception as exc:  # recording must never break what the caller is reading
            call.tap_failed(exc)

    def __getattr__(self, name: str) -> Any:  # ``elapsed`` and the like, from the real stream
        return getattr(self._inner, name)


class _SyncTapMixin(Tap):
    def __iter__(self) -> Iterator[bytes]:
        for data in self._inner:
            self._keep(data)
            yield data
        self._end(True)

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._end(False)


class _AsyncTapMixin(Tap):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for data in self._inner:
            self._keep(data)
            yield data
        self._end(True)

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._end(False)


@functools.lru_cache(maxsize=8)
def tap_class(httpx: ModuleType, *, asynchronous: bool) -> type[Tap]:
    """The tap as a stream class of the client's HTTP library (which checks ``isinstance``)."""
    if asynchronous:
        return type("_AsyncTap", (_AsyncTapMixin, httpx.AsyncByteStream), {})
    return type("_SyncTap", (_SyncTapMixin, httpx.SyncByteStream), {})


class Closing:
    """A response body stream that tells the call when it is closed, for a parsed stream.

    ``stream.close()``, ``with stream:`` and the SDKs' stream helpers all end in the HTTP
    response's ``close()``, which closes this stream: the call then ends a stream left before
    its end at once, in its own recording context, instead of when it is garbage-collected.
    """

    def __init__(self, inner: Any, on_close: Any) -> None:
        self._inner = inner
        self._on_close = on_close

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _SyncClosingMixin(Closing):
    def __iter__(self) -> Iterator[bytes]:
        yield from self._inner

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._on_close()


class _AsyncClosingMixin(Closing):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for data in self._inner:
            yield data

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            await self._on_close()


@functools.lru_cache(maxsize=8)
def closing_class(httpx: ModuleType, *, asynchronous: bool) -> type[Closing]:
    """:class:`Closing` as a stream class of the client's HTTP library (which checks ``isinstance``)."""
    if asynchronous:
        return type("_AsyncClosing", (_AsyncClosingMixin, httpx.AsyncByteStream), {})
    return type("_SyncClosing", (_SyncClosingMixin, httpx.SyncByteStream), {})


def tapped_body(httpx: ModuleType, http: Any, pieces: list[bytes]) -> bytes | None:
    """The tapped body as the caller read it: raw bytes with any ``content-encoding`` undone."""
    encoding = http.headers.get("content-encoding")
    content = b"".join(pieces)
    if not encoding or encoding == "identity":
        return content
    try:
        return bytes(httpx.Response(200, headers={"content-encoding": encoding}, content=content).content)
    except Exception:  # a body cut short in the middle of a compressed block
        return None


def kept_headers(sdk: StainlessSdk, http: Any) -> dict[str, str]:
    """The response headers stored with a recording: the ones the SDK exposes that carry no
    secret (``x-request-id``, rate limits...). Never cookies, authorization or anything else."""
    if http is None:
        return {}
    return {
        name.lower(): value
        for name, value in http.headers.items()
        if name.lower() in sdk.kept_headers or name.lower().startswith(sdk.kept_header_prefixes)
    }


def content_type(http: Any) -> str:
    return str(http.headers.get("content-type", "")).lower() if http is not None else ""


def is_json(http: Any) -> bool:
    kind = content_type(http)
    return not kind or "json" in kind


def is_event_stream(http: Any) -> bool:
    return "text/event-stream" in content_type(http) or not content_type(http)


def sse_event(sdk: StainlessSdk, data: Any) -> bytes:
    """One recorded stream chunk as the SSE bytes the API sent (with its ``event:`` line when the
    SDK names its events, as anthropic's and openai's Responses API do)."""
    event = data.get("type") if isinstance(data, dict) else None
    prefix = f"event: {event}\n".encode() if isinstance(event, str) and sdk.named_events(event) else b""
    return prefix + b"data: " + orjson.dumps(data) + b"\n\n"
