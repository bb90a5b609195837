"""The recording server's connection to the upstream API: HTTP/1.1 over asyncio, parsed by h11.

``notebook-recorder serve`` forwards each request it records to the upstream and passes every
piece of the answer on as it arrives. A general-purpose client (httpx) added about 5 ms before
the first piece on the benchmark's machine, where the goal is 2 ms; this one is the least that
forwarding needs: keep-alive connections per origin (TLS for ``https``), h11 (the HTTP/1.1
state machine uvicorn uses) to write the request and read the answer, ``TCP_NODELAY``, and
time limits. A connection kept from an earlier request that the upstream has closed meanwhile is
replaced once, before any byte of the answer was read. Bodies are asked for uncompressed
(``accept-encoding: identity``); a gzip or deflate answer is decoded all the same.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import zlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import h11

__all__ = ["Upstream", "UpstreamError", "UpstreamResponse"]

CONNECT_TIMEOUT = 30.0
READ_TIMEOUT = 600.0  # a long generation may think for minutes before its first token
_READ_SIZE = 65536


class UpstreamError(OSError):
    """The upstream could not be reached, or broke off its answer."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.h11 = h11.Connection(h11.CLIENT)
        self.reused = False

    def close(self) -> None:
        self.writer.close()


class UpstreamResponse:
    """An upstream's answer: status and headers at once, the body as it arrives."""

    def __init__(self, upstream: Upstream, key: tuple[str, str, int], connection: _Connection, head: Any) -> None:
        self._upstream, self._key, self._connection = upstream, key, connection
        self.status_code: int = head.status_code
        self.headers: list[tuple[str, str]] = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers]
        self._done = False
        encoding = self.header("content-encoding").lower()
        self._decoder: Any = None
        if encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(wbits=47)
        elif encoding == "deflate":
            self._decoder = zlib.decompressobj()

    def header(self, name: str) -> str:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), "")

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body's pieces as they arrive (decoded); raises :class:`UpstreamError` if it breaks off."""
        conn = self._connection
        while not self._done:
            event = conn.h11.next_event()
            if event is h11.NEED_DATA:
                conn.h11.receive_data(await _read(conn))
                continue
            if isinstance(event, h11.Data):
                data = bytes(event.data)
                if self._decoder is not None:
                    data = self._decoder.decompress(data)
                if data:
                    yield data
            elif isinstance(event, h11.EndOfMessage):
                self._done = True
                if self._decoder is not None and (tail := self._decoder.flush()):
                    yield tail
            elif isinstance(event, h11.ConnectionClosed):
                raise UpstreamError("the upstream closed the connection before the end of its answer")

    async def aread(self) -> bytes:
        return b"".join([piece async for piece in self.aiter_bytes()])

    async def aclose(self) -> None:
        """Give the connection back for the next request (read to its end), or close it."""
        conn, self._connection = self._connection, None  # type: ignore[assignment]
        if conn is None:
            return
        if self._done and conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE:
            conn.h11.start_next_cycle()
            self._upstream._release(self._key, conn)
        else:
            conn.close()


async def _read(conn: _Connection) -> bytes:
    try:
        return await asyncio.wait_for(conn.reader.read(_READ_SIZE), READ_TIMEOUT)
    except TimeoutError:
        raise UpstreamError(f"the upstream sent nothing for {READ_TIMEOUT:g} s") from None


class Upstream:
    """Keep-alive connections to upstream origins, on the server's event loop."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._tls: ssl.SSLContext | None = None

    async def send(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes) -> UpstreamResponse:
        """Send a request; the answer's status and headers (its body is read from the result)."""
        split = urlsplit(url)
        scheme = split.scheme.lower()
        if scheme not in ("http", "https") or not split.hostname:
            raise UpstreamError(f"not an http(s) URL: {url!r}")
        key = (scheme, split.hostname, split.port or (443 if scheme == "https" else 80))
        target = (split.path or "/") + (f"?{split.query}" if split.query else "")
        host = split.netloc.rsplit("@", 1)[-1]
        sent = [("host", host), *headers, ("content-length", str(len(body))), ("accept-encoding", "identity")]
        for attempt in range(2):
            conn = await self._connection(key, fresh=attempt > 0)
            try:
                return await self._exchange(key, conn, method, target, sent, body)
            except (OSError, h11.ProtocolError) as exc:
                conn.close()
                if attempt == 0 and conn.reused:  # closed by the upstream while idle: once more, anew
                    continue
                if isinstance(exc, UpstreamError):
                    raise
                raise UpstreamError(f"{type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")

    async def _exchange(
        self, key: tuple[str, str, int], conn: _Connection, method: str, target: str, headers: Any, body: bytes
    ) -> UpstreamResponse:
        request = h11.Request(method=method, target=target, headers=headers)
        data = conn.h11.send(request) + conn.h11.send(h11.Data(data=body)) + conn.h11.send(h11.EndOfMessage())
        conn.writer.write(data)
        while True:
            event = conn.h11.next_event()
            if event is h11.NEED_DATA:
                conn.h11.receive_data(await _read(conn))
            elif isinstance(event, h11.Response):
                return UpstreamResponse(self, key, conn, event)
            elif isinstance(event, h11.ConnectionClosed):
                raise UpstreamError("the upstream closed the connection without answering")
            # h11.InformationalResponse (100 Continue): read on

    async def _connection(self, key: tuple[str, str, int], *, fresh: bool) -> _Connection:
        idle = self._idle.get(key)
        while idle and not fresh:
            conn = idle.pop()
            if not conn.writer.is_closing() and not conn.reader.at_eof():
                conn.reused = True
                return conn
            conn.close()
        scheme, host, port = key
        tls: ssl.SSLContext | None = None
        if scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            tls = self._tls
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=tls, server_hostname=host if tls else None),
                CONNECT_TIMEOUT,
            )
        except TimeoutError:
            raise UpstreamError(f"could not connect to {host}:{port} within {CONNECT_TIMEOUT:g} s") from None
        except OSError as exc:  # refused, no route, a name that does not resolve, a TLS failure
            raise UpstreamError(f"could not connect to {host}:{port}: {exc}") from exc
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Connection(reader, writer)

    def _release(self, key: tuple[str, str, int], conn: _Connection) -> None:
        idle = self._idle.setdefault(key, [])
        if len(idle) < 32:
            idle.append(conn)
        else:
            conn.close()

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for conn in connections:
                conn.close()
        self._idle.clear()
