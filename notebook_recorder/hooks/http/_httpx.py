"""The hook for httpx and httpx2 (one API, two packages): a patch on the transport classes.

``HTTPTransport.handle_request`` and ``AsyncHTTPTransport.handle_async_request`` are where every
client of the library (``Client``, ``AsyncClient``, ``httpx.get``) sends a request over the
network, whatever wraps them (a custom transport that delegates, a client built before recording
started). Patching the classes covers them all. The body reaches the caller through the
response's byte stream, which is tapped (:class:`HttpCall`); replay returns a response over the
recorded bytes, which the client reads and parses as it would the server's.
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from types import ModuleType
from typing import Any

from ...core._engine import arun, run
from ...core._session import active
from .._above import handled
from . import _wire
from ._exchange import HttpCall, Sink, ignored

_lock = threading.Lock()
_originals: dict[str, dict[tuple[type, str], Callable[..., Any]]] = {}


def install(package: str) -> None:
    """Patch ``package``'s transport classes (idempotent)."""
    with _lock:
        if package in _originals:
            return
        lib = importlib.import_module(package)
        sync, asynchronous = lib.HTTPTransport, lib.AsyncHTTPTransport
        originals = _originals[package] = {}
        originals[sync, "handle_request"] = sync.handle_request
        originals[asynchronous, "handle_async_request"] = asynchronous.handle_async_request
        sync.handle_request = _sync_handler(lib, sync.handle_request)
        asynchronous.handle_async_request = _async_handler(lib, asynchronous.handle_async_request)


def uninstall(package: str) -> None:
    """Restore the transports' own methods."""
    with _lock:
        for (cls, name), original in _originals.pop(package, {}).items():
            setattr(cls, name, original)


def is_installed(package: str) -> bool:
    """Whether ``package``'s transports are patched."""
    return package in _originals


def _sync_handler(lib: ModuleType, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def handle_request(self: Any, request: Any) -> Any:
        recorder = active()
        if recorder is None or handled.get() or ignored(recorder, request.url.host, request.url.port):
            return original(self, request)
        content = request.read()
        call = _HttpxCall(recorder, lib, self, request, content, original)
        return run(recorder, call)

    return handle_request


def _async_handler(lib: ModuleType, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def handle_async_request(self: Any, request: Any) -> Any:
        recorder = active()
        if recorder is None or handled.get() or ignored(recorder, request.url.host, request.url.port):
            return await original(self, request)
        content = await request.aread()
        call = _HttpxCall(recorder, lib, self, request, content, original, asynchronous=True)
        return await arun(recorder, call)

    return handle_async_request


class _HttpxCall(HttpCall):
    def __init__(
        self,
        recorder: Any,
        lib: ModuleType,
        transport: Any,
        request: Any,
        content: bytes,
        original: Callable[..., Any],
        *,
        asynchronous: bool = False,
    ) -> None:
        super().__init__(recorder, request.method, str(request.url), list(request.headers.multi_items()), content)
        self.lib, self.transport, self.http_request, self.original = lib, transport, request, original
        self.asynchronous = asynchronous
        self.library = lib.__name__
        self.version = str(getattr(lib, "__version__", ""))

    def send(self) -> Any:
        return self.original(self.transport, self.http_request)

    def meta(self, result: Any) -> tuple[int, list[tuple[str, str]]]:
        return int(result.status_code), list(result.headers.multi_items())

    def tap(self, result: Any, sink: Sink) -> Any:
        result.stream = _tap_class(self.lib, self.asynchronous)(result.stream, sink)
        return result

    def decoded(self, content: bytes, headers: list[tuple[str, str]]) -> bytes:
        encoding = next((v for k, v in headers if k.lower() == "content-encoding"), "")
        if not encoding or encoding == "identity":
            return content
        return bytes(self.lib.Response(200, headers={"content-encoding": encoding}, content=content).content)

    def build(self, replayed: _wire.Replayed) -> Any:
        stream = _replay_class(self.lib, self.asynchronous)(replayed.chunks)
        headers = dict(replayed.headers)
        if not replayed.streamed:
            headers["content-length"] = str(sum(map(len, replayed.chunks)))
        return self.lib.Response(replayed.status, headers=headers, stream=stream, request=self.http_request)


# -- the stream classes, made per library (the client checks ``isinstance``) ------------------


class _SyncTap:
    def __init__(self, inner: Any, sink: Sink) -> None:
        self._inner, self._sink = inner, sink

    def __iter__(self) -> Iterator[bytes]:
        sink = self._sink
        try:
            for data in self._inner:
                sink.add(data)
                yield data
        except BaseException:
            sink.end(False)
            raise
        sink.end(True)

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._sink.end(False)  # after a full read it is saved already; this does nothing


class _AsyncTap:
    def __init__(self, inner: Any, sink: Sink) -> None:
        self._inner, self._sink = inner, sink

    async def __aiter__(self) -> AsyncIterator[bytes]:
        sink = self._sink
        try:
            async for data in self._inner:
                sink.add(data)
                yield data
        except BaseException:
            sink.end(False)
            raise
        sink.end(True)

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._sink.end(False)


class _SyncReplay:
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks

    def close(self) -> None:
        pass


class _AsyncReplay:
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk

    async def aclose(self) -> None:
        pass


@functools.lru_cache(maxsize=8)
def _tap_class(lib: ModuleType, asynchronous: bool) -> type:
    if asynchronous:
        return type("_AsyncTap", (_AsyncTap, lib.AsyncByteStream), {})
    return type("_SyncTap", (_SyncTap, lib.SyncByteStream), {})


@functools.lru_cache(maxsize=8)
def _replay_class(lib: ModuleType, asynchronous: bool) -> type:
    if asynchronous:
        return type("_AsyncReplay", (_AsyncReplay, lib.AsyncByteStream), {})
    return type("_SyncReplay", (_SyncReplay, lib.SyncByteStream), {})
