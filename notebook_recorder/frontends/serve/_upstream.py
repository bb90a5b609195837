"""The recording server's connection to the upstream API: HTTP/1.1 over asyncio, parsed by httptools.

``notebook-recorder serve`` forwards each request it records to the upstream and passes every
piece of the answer on as it arrives. A general-purpose client (httpx) added about 5 ms before
the first piece on the benchmark's machine, where the goal is 2 ms, and h11 (a pure-Python
parser) about 0.15 ms; this one is the least that forwarding needs: keep-alive connections per
origin (TLS for ``https``), the request head written as is (a line break in it is refused),
the answer read by httptools (llhttp, the C parser uvicorn uses to read requests),
``TCP_NODELAY``, and time limits. Sending is split in two (:meth:`Upstream.start` writes the request,
:meth:`Pending.response` waits for the answer's head), so that the server describes and keys
the request while the upstream works on it. A connection kept from an earlier request that the
upstream has closed meanwhile is replaced once, before any byte of the answer was read. Bodies
are asked for uncompressed (``accept-encoding: identity``); a gzip or deflate answer is decoded
all the same.

Proxies are taken from the environment as httpx (and so the Python SDKs) take them:
``HTTP_PROXY`` for ``http://`` upstreams, ``HTTPS_PROXY`` for ``https://`` ones, ``ALL_PROXY``
for both (lower-case names too; a proxy without a scheme is ``http://``), and ``NO_PROXY`` (see
:func:`bypasses`). A loopback upstream is never proxied. ``https://`` upstreams go through an
HTTP ``CONNECT`` tunnel (TLS end to end, the proxy sees only the host name); ``http://`` ones
are sent to the proxy in absolute form. ``user:password@`` in the proxy URL becomes
``Proxy-Authorization: Basic``. Only ``http://`` proxies are supported: another scheme
(``socks5://``, ``https://``) makes every request it would carry fail with a
:class:`UpstreamError` that names the variable.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import re
import socket
import ssl
import urllib.request
import zlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import httptools

__all__ = ["Pending", "Proxy", "Upstream", "UpstreamError", "UpstreamResponse", "bypasses", "environment_proxies"]

CONNECT_TIMEOUT = 30.0
READ_TIMEOUT = 600.0  # a long generation may think for minutes before its first token
_READ_SIZE = 65536


class UpstreamError(OSError):
    """The upstream could not be reached, or broke off its answer."""


# ---------------------------------------------------------------------------------------------
# Proxies from the environment
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proxy:
    """An HTTP proxy: where to connect, the ``Proxy-Authorization`` to send, and what to call it."""

    host: str
    port: int
    authorization: str | None
    variable: str
    """The environment variable it came from (``HTTPS_PROXY``...), for messages."""
    problem: str | None = None
    """Why it cannot be used (a scheme other than ``http``): each request it would carry fails."""

    @property
    def shown(self) -> str:
        """The proxy as messages name it: without its credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.variable}=http://{host}:{self.port}"


def _proxy(url: str, variable: str) -> Proxy:
    if "://" not in url:
        url = "http://" + url
    split = urlsplit(url)
    scheme = split.scheme.lower()
    try:
        port = split.port
    except ValueError:
        port = None
        scheme = "bad port"
    if scheme != "http" or not split.hostname:
        hidden = f"{split.scheme}://{split.hostname or ''}" + (f":{port}" if port else "")
        problem = (
            f"{variable}={hidden} cannot be used: notebook-recorder serve forwards through http:// proxies "
            f"only (an https:// upstream goes through the proxy's CONNECT tunnel, still TLS end to end). "
            f"Set {variable} to the proxy's http://HOST:PORT, or add the upstream's host to NO_PROXY"
        )
        return Proxy(split.hostname or "", port or 0, None, variable, problem)
    authorization = None
    if split.username is not None:
        pair = f"{unquote(split.username)}:{unquote(split.password or '')}".encode()
        authorization = "Basic " + base64.b64encode(pair).decode("ascii")
    return Proxy(split.hostname, port or 80, authorization, variable)


@dataclass(frozen=True)
class Proxies:
    """The proxies of the environment: one per upstream scheme, and the ``NO_PROXY`` list."""

    by_scheme: Mapping[str, Proxy]
    no_proxy: tuple[str, ...] = ()

    def for_url(self, scheme: str, host: str, port: int) -> Proxy | None:
        """The proxy a request to ``scheme://host:port`` goes through, or ``None`` (direct)."""
        proxy = self.by_scheme.get(scheme)
        if proxy is None or bypasses(host, port, self.no_proxy):
            return None
        return proxy


def environment_proxies(environ: Mapping[str, str] | None = None) -> Proxies:
    """The proxies set in the environment (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``,
    ``NO_PROXY``, upper or lower case; the lower-case name wins, as in urllib and httpx).
    ``environ`` replaces ``os.environ`` (tests)."""
    if environ is None:
        found = urllib.request.getproxies()
        names = {scheme: f"{scheme.upper()}_PROXY" for scheme in ("http", "https", "all")}
    else:
        found, names = {}, {}
        for scheme in ("http", "https", "all", "no"):
            for name in (f"{scheme.upper()}_PROXY", f"{scheme}_proxy"):  # the lower-case name wins
                if environ.get(name):
                    found[scheme], names[scheme] = environ[name], name
    entries = tuple(e.strip() for e in found.get("no", "").split(",") if e.strip())
    if "*" in entries:
        return Proxies({}, entries)
    by_scheme: dict[str, Proxy] = {}
    for scheme in ("http", "https"):
        for source in (scheme, "all"):
            url = found.get(source)
            if url:
                by_scheme[scheme] = _proxy(url, names.get(source, f"{source.upper()}_PROXY"))
                break
    return Proxies(by_scheme, entries)


def _is_loopback(host: str) -> bool:
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bypasses(host: str, port: int, no_proxy: tuple[str, ...]) -> bool:
    """Whether a request to ``host:port`` goes direct: a loopback host always does; else when a
    ``NO_PROXY`` entry matches it. An entry is ``*`` (everything), a host name (that host and its
    subdomains: ``example.com`` matches ``api.example.com``), ``.example.com`` (the subdomains
    only), an IP address or network (``10.0.0.0/8``, ``::1``), each with an optional ``:PORT``
    (only that port) or a ``scheme://`` (ignored). Names are compared without case."""
    if _is_loopback(host):
        return True
    host = host.strip("[]").lower().rstrip(".")
    try:
        address: Any = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for entry in no_proxy:
        entry = entry.strip().lower()
        if "://" in entry:
            entry = entry.split("://", 1)[1]
        entry = entry.rstrip("/")
        if entry == "*":
            return True
        entry_port: int | None = None
        if entry.startswith("["):  # [::1]:8080
            name, _, rest = entry[1:].partition("]")
            if rest.startswith(":") and rest[1:].isdigit():
                entry_port = int(rest[1:])
            entry = name
        elif entry.count(":") == 1:  # host:port (an IPv6 address has more colons)
            name, _, number = entry.partition(":")
            if number.isdigit():
                entry, entry_port = name, int(number)
        if not entry or (entry_port is not None and entry_port != port):
            continue
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        if entry.startswith("*."):
            entry = entry[1:]
        if entry.startswith("."):
            if host.endswith(entry.rstrip(".")):
                return True
        elif host == entry.rstrip(".") or host.endswith("." + entry.rstrip(".")):
            return True
    return False


# ---------------------------------------------------------------------------------------------
# Connections, requests, answers
# ---------------------------------------------------------------------------------------------

_Key = tuple[str, str, int, "Proxy | None"]
_UNSAFE = re.compile(r"[\r\n\0]")


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.reused = False

    def close(self) -> None:
        self.writer.close()


class _Answer:
    """An answer as httptools (llhttp, the parser uvicorn uses) reads it: its callbacks."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head = False  # the status and headers of the final (non-1xx) answer are in
        self.body: list[bytes] = []
        self.done = False
        self.keep_alive = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if self.status >= 200:
            self.head = True
        else:  # 100 Continue and the like: the answer is still to come
            self.headers.clear()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.head:
            self.done = True
            self.keep_alive = self.parser.should_keep_alive()  # (reset once the callback returns)

    def feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            raise UpstreamError(f"the upstream's answer is not valid HTTP: {exc}") from None

    def ends_at_close(self) -> bool:
        """Whether the body is delimited by the connection's end (no length, not chunked)."""
        names = {name.lower() for name, _ in self.headers}
        return b"content-length" not in names and b"transfer-encoding" not in names


class UpstreamResponse:
    """An upstream's answer: status and headers at once, the body as it arrives."""

    def __init__(self, upstream: Upstream, key: _Key, connection: _Connection, answer: _Answer) -> None:
        self._upstream, self._key, self._connection = upstream, key, connection
        self._answer = answer
        self.status_code: int = answer.status
        self.headers: list[tuple[str, str]] = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in answer.headers]
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
        conn, answer = self._connection, self._answer
        while True:
            if answer.body:
                pieces, answer.body = answer.body, []
                data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
                if self._decoder is not None:
                    data = self._decoder.decompress(data)
                if data:
                    yield data
                continue
            if answer.done:
                break
            data = await _read(conn)
            if not data:
                if answer.ends_at_close():
                    answer.done = True
                    conn.reused = False  # not to be kept: it is closed
                    break
                raise UpstreamError("the upstream closed the connection before the end of its answer")
            answer.feed(data)
        if self._decoder is not None and (tail := self._decoder.flush()):
            yield tail

    async def aread(self) -> bytes:
        return b"".join([piece async for piece in self.aiter_bytes()])

    async def aclose(self) -> None:
        """Give the connection back for the next request (read to its end), or close it."""
        conn, self._connection = self._connection, None  # type: ignore[assignment]
        if conn is None:
            return
        answer = self._answer
        if answer.done and answer.keep_alive and not answer.ends_at_close():
            self._upstream._release(self._key, conn)
        else:
            conn.close()


async def _read(conn: _Connection) -> bytes:
    try:
        async with asyncio.timeout(READ_TIMEOUT):
            return await conn.reader.read(_READ_SIZE)
    except TimeoutError:
        raise UpstreamError(f"the upstream sent nothing for {READ_TIMEOUT:g} s") from None


class Pending:
    """A request written to the upstream, its answer not read yet (:meth:`Upstream.start`)."""

    def __init__(self, upstream: Upstream, key: _Key, conn: _Connection, request: tuple[Any, ...]) -> None:
        self._upstream, self._key, self._conn, self._request = upstream, key, conn, request

    async def response(self) -> UpstreamResponse:
        """The answer's status and headers (its body is read from the result)."""
        upstream, key, conn = self._upstream, self._key, self._conn
        try:
            return await upstream._head(key, conn)
        except OSError as exc:
            conn.close()
            if not conn.reused:  # a fresh connection failed: nothing to try again
                raise _error(exc) from exc
        # A kept connection the upstream had closed while idle: once more, on a new one.
        conn = await upstream._connection(key, fresh=True)
        try:
            upstream._write(conn, *self._request)
            return await upstream._head(key, conn)
        except OSError as exc:
            conn.close()
            raise _error(exc) from exc

    def cancel(self) -> None:
        """Drop the request (its answer is not wanted): the connection is closed."""
        self._conn.close()


def _error(exc: BaseException) -> UpstreamError:
    return exc if isinstance(exc, UpstreamError) else UpstreamError(f"{type(exc).__name__}: {exc}")


class Upstream:
    """Keep-alive connections to upstream origins, on the server's event loop.

    ``proxies``: the environment's (:func:`environment_proxies`, read once here) unless given.
    """

    def __init__(self, proxies: Proxies | None = None) -> None:
        self.proxies = environment_proxies() if proxies is None else proxies
        self._idle: dict[_Key, list[_Connection]] = {}
        self._tls: ssl.SSLContext | None = None

    async def send(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes) -> UpstreamResponse:
        """Send a request; the answer's status and headers (its body is read from the result)."""
        return await (await self.start(method, url, headers, body)).response()

    async def start(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes) -> Pending:
        """Write a request to the upstream (connecting first if no kept connection is free)."""
        split = urlsplit(url)
        scheme = split.scheme.lower()
        if scheme not in ("http", "https") or not split.hostname:
            raise UpstreamError(f"not an http(s) URL: {url!r}")
        port = split.port or (443 if scheme == "https" else 80)
        proxy = self.proxies.for_url(scheme, split.hostname, port)
        if proxy is not None and proxy.problem:
            raise UpstreamError(proxy.problem)
        key: _Key = (scheme, split.hostname, port, proxy)
        target = (split.path or "/") + (f"?{split.query}" if split.query else "")
        host = split.netloc.rsplit("@", 1)[-1]
        sent = [("host", host), *headers, ("content-length", str(len(body))), ("accept-encoding", "identity")]
        if proxy is not None and scheme == "http":  # forwarded by the proxy: the absolute URL
            target = f"http://{host}{target}"
            if proxy.authorization:
                sent.append(("proxy-authorization", proxy.authorization))
        request = (method, target, sent, body)
        conn = await self._connection(key, fresh=False)
        try:
            self._write(conn, *request)
        except OSError as exc:
            conn.close()
            if not conn.reused:
                raise _error(exc) from exc
            conn = await self._connection(key, fresh=True)
            try:
                self._write(conn, *request)
            except OSError as exc:
                conn.close()
                raise _error(exc) from exc
        return Pending(self, key, conn, request)

    @staticmethod
    def _write(conn: _Connection, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> None:
        lines = [f"{method} {target} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in headers]
        if _UNSAFE.search("".join(lines)) or " " in target:  # never a header smuggled in
            raise UpstreamError(f"refusing to forward a request line or header with a line break: {lines[0]!r}")
        lines.append("\r\n")
        conn.writer.write("\r\n".join(lines).encode("latin-1") + body)

    async def _head(self, key: _Key, conn: _Connection) -> UpstreamResponse:
        answer = _Answer()
        while not answer.head:
            data = await _read(conn)
            if not data:
                raise UpstreamError("the upstream closed the connection without answering")
            answer.feed(data)
        return UpstreamResponse(self, key, conn, answer)

    async def _connection(self, key: _Key, *, fresh: bool) -> _Connection:
        idle = self._idle.get(key)
        while idle and not fresh:
            conn = idle.pop()
            if not conn.writer.is_closing() and not conn.reader.at_eof():
                conn.reused = True
                return conn
            conn.close()
        scheme, host, port, proxy = key
        tls: ssl.SSLContext | None = None
        if scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            tls = self._tls
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                if proxy is None:
                    reader, writer = await asyncio.open_connection(
                        host, port, ssl=tls, server_hostname=host if tls else None
                    )
                else:
                    reader, writer = await self._through(proxy, host, port, tls)
        except TimeoutError:
            via = f" through the proxy {proxy.shown}" if proxy is not None else ""
            raise UpstreamError(f"could not connect to {host}:{port}{via} within {CONNECT_TIMEOUT:g} s") from None
        except UpstreamError:
            raise
        except OSError as exc:  # refused, no route, a name that does not resolve, a TLS failure
            via = f" through the proxy {proxy.shown}" if proxy is not None else ""
            raise UpstreamError(f"could not connect to {host}:{port}{via}: {exc}") from exc
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Connection(reader, writer)

    @staticmethod
    async def _through(
        proxy: Proxy, host: str, port: int, tls: ssl.SSLContext | None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to the proxy; for TLS, a ``CONNECT`` tunnel to ``host:port`` and TLS in it."""
        try:
            reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
        except OSError as exc:
            raise UpstreamError(f"could not connect to the proxy {proxy.shown}: {exc}") from exc
        if tls is None:
            return reader, writer
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        head = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
        if proxy.authorization:
            head += f"Proxy-Authorization: {proxy.authorization}\r\n"
        writer.write((head + "\r\n").encode("latin-1"))
        try:
            answer = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            writer.close()
            raise UpstreamError(f"the proxy {proxy.shown} did not answer CONNECT {authority}: {exc}") from None
        status_line = answer.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[1].startswith("2"):
            writer.close()
            hint = " (the proxy wants credentials: http://USER:PASSWORD@HOST:PORT)" if parts[1:2] == ["407"] else ""
            raise UpstreamError(f"the proxy {proxy.shown} refused CONNECT {authority}: {status_line!r}{hint}")
        try:
            await writer.start_tls(tls, server_hostname=host)
        except (OSError, ssl.SSLError) as exc:
            writer.close()
            raise UpstreamError(f"TLS with {host}:{port} through the proxy {proxy.shown} failed: {exc}") from exc
        return reader, writer

    def _release(self, key: _Key, conn: _Connection) -> None:
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
