"""The aiohttp hook: ``aiohttp.ClientSession._request`` patched.

Every request of a session (``session.get``, ``session.post``, google-genai's async client) goes
through ``_request``, which returns a response whose body is still arriving. While recording, the
response's ``StreamReader`` is tapped where the connection feeds it (``feed_data``), so each piece
is kept with its arrival time whether or when the caller reads it, and the recording is saved when
the body has arrived in full (``feed_eof``); a connection lost before that saves nothing. Replay
builds aiohttp's own ``ClientResponse`` over a ``StreamReader`` holding the recorded bytes.
"""

from __future__ import annotations

import asyncio
import functools
import json as jsonlib
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from ...core._engine import arun
from ...core._modes import Mode
from ...core._session import active
from .._above import handled
from . import _wire
from ._exchange import HttpCall, Sink, ignored

_lock = threading.Lock()
_original: list[Callable[..., Any]] = []
_sinks: dict[int, Sink] = {}  # id(StreamReader) -> the sink it feeds (StreamReader has __slots__)


def install(mode: Mode | None = None) -> None:
    """Patch ``ClientSession._request`` (idempotent)."""
    import aiohttp

    with _lock:
        if not _original:
            _original.append(aiohttp.ClientSession._request)
            aiohttp.ClientSession._request = _request(aiohttp.ClientSession._request)  # type: ignore[method-assign]


def uninstall() -> None:
    """Restore ``ClientSession._request``."""
    import aiohttp

    with _lock:
        if _original:
            aiohttp.ClientSession._request = _original.pop()  # type: ignore[method-assign]


def _request(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def request(self: Any, method: str, str_or_url: Any, **kwargs: Any) -> Any:
        recorder = active()
        if recorder is None or handled.get():
            return await original(self, method, str_or_url, **kwargs)
        url = _url(self, str_or_url, kwargs.get("params"))
        if ignored(recorder, url.host, url.port):
            return await original(self, method, str_or_url, **kwargs)
        call = _AiohttpCall(recorder, self, method, url, kwargs, original, str_or_url)
        return await arun(recorder, call)

    return request


def _url(session: Any, str_or_url: Any, params: Any) -> Any:
    from yarl import URL

    url = URL(str_or_url)
    base = getattr(session, "_base_url", None)
    if base is not None and not url.is_absolute():
        url = base.join(url)
    if params:
        url = url.extend_query(params)
    return url


def _body(kwargs: dict[str, Any]) -> tuple[bytes, str]:
    """The request body as sent, and its content type, from ``json=`` or ``data=``."""
    if kwargs.get("json") is not None:
        return jsonlib.dumps(kwargs["json"]).encode(), "application/json"
    data = kwargs.get("data")
    if isinstance(data, bytes | bytearray):
        return bytes(data), ""
    if isinstance(data, str):
        return data.encode(), "text/plain"
    if isinstance(data, dict):
        return urlencode(data, doseq=True).encode(), "application/x-www-form-urlencoded"
    return b"", ""  # a FormData, a file or a generator: keyed by what else the request says


class _AiohttpCall(HttpCall):
    library = "aiohttp"
    asynchronous = True

    def __init__(
        self,
        recorder: Any,
        session: Any,
        method: str,
        url: Any,
        kwargs: dict[str, Any],
        original: Callable[..., Any],
        str_or_url: Any,
    ) -> None:
        import aiohttp

        content, content_type = _body(kwargs)
        headers = [(str(k), str(v)) for k, v in (getattr(session, "_default_headers", None) or {}).items()]
        given = kwargs.get("headers") or {}
        headers += [(str(k), str(v)) for k, v in (given.items() if hasattr(given, "items") else given)]
        if content_type and not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("content-type", content_type))
        auth = kwargs.get("auth") or getattr(session, "_default_auth", None)
        if auth is not None and hasattr(auth, "encode"):
            headers.append(("authorization", str(auth.encode())))
        super().__init__(recorder, method, str(url), headers, content)
        self.session, self.kwargs, self.original, self.str_or_url, self.yarl_url = (
            session,
            kwargs,
            original,
            str_or_url,
            url,
        )
        self.version = aiohttp.__version__

    def send(self) -> Any:
        return self.original(self.session, self.method, self.str_or_url, **self.kwargs)

    def meta(self, result: Any) -> tuple[int, list[tuple[str, str]]]:
        return int(result.status), [(str(k), str(v)) for k, v in result.headers.items()]

    def tap(self, result: Any, sink: Sink) -> Any:
        reader = result.content
        buffered = b"".join(getattr(reader, "_buffer", ()))[getattr(reader, "_buffer_offset", 0) :]
        if buffered:
            sink.add(buffered)
        if reader.is_eof():
            sink.end(True)
            return result
        try:
            reader.__class__ = _tap_class(type(reader))  # type: ignore[arg-type]
        except TypeError:  # a reader class we cannot extend: its body is not recorded
            sink.end(False)
            return result
        _sinks[id(reader)] = sink
        return result

    def build(self, replayed: _wire.Replayed) -> Any:
        import aiohttp
        from multidict import CIMultiDict, CIMultiDictProxy

        loop = asyncio.get_running_loop()
        info = aiohttp.RequestInfo(self.yarl_url, self.method.upper(), CIMultiDictProxy(CIMultiDict()), self.yarl_url)
        extra: dict[str, Any] = {}
        if "stream_writer" in _response_params():
            from types import SimpleNamespace

            extra["stream_writer"] = SimpleNamespace(output_size=0)
        response = aiohttp.ClientResponse(
            self.method.upper(),
            self.yarl_url,
            writer=None,
            continue100=None,
            timer=None,  # type: ignore[arg-type]
            request_info=info,
            traces=[],
            loop=loop,
            session=None,  # type: ignore[arg-type]
            **extra,
        )
        headers = dict(replayed.headers)
        content = replayed.content
        if not replayed.streamed:
            headers["content-length"] = str(len(content))
        response.status = replayed.status
        response.reason = _reason(replayed.status)
        response._headers = CIMultiDictProxy(CIMultiDict(headers))
        response._raw_headers = tuple((k.encode(), v.encode()) for k, v in headers.items())
        response.close()
        reader = aiohttp.StreamReader(_NoProtocol(), max(len(content), 2**16), loop=loop)  # type: ignore[arg-type]
        for chunk in replayed.chunks:
            reader.feed_data(chunk)
        reader.feed_eof()
        response.content = reader
        return response


@functools.lru_cache(maxsize=1)
def _response_params() -> frozenset[str]:
    import inspect

    import aiohttp

    return frozenset(inspect.signature(aiohttp.ClientResponse.__init__).parameters)


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


class _NoProtocol:
    """The protocol of a replayed body's reader: nothing to pause or resume."""

    _reading_paused = False

    def pause_reading(self, *args: Any, **kwargs: Any) -> None:
        pass

    def resume_reading(self, *args: Any, **kwargs: Any) -> None:
        pass


@functools.lru_cache(maxsize=4)
def _tap_class(base: type) -> type:
    """``base`` (aiohttp's ``StreamReader``) with ``feed_data`` / ``feed_eof`` / ``set_exception``
    telling the sink; no new slots, so a live reader's class can be switched to it."""

    def feed_data(self: Any, data: bytes, *args: Any) -> Any:
        sink = _sinks.get(id(self))
        if sink is not None and data:
            sink.add(data)
        return base.feed_data(self, data, *args)  # type: ignore[attr-defined]

    def feed_eof(self: Any) -> None:
        base.feed_eof(self)  # type: ignore[attr-defined]
        sink = _sinks.pop(id(self), None)
        if sink is not None:
            sink.end(True)

    def set_exception(self: Any, *args: Any, **kwargs: Any) -> None:
        base.set_exception(self, *args, **kwargs)  # type: ignore[attr-defined]
        sink = _sinks.pop(id(self), None)
        if sink is not None:
            sink.end(False)

    return type(
        "_TapReader",
        (base,),
        {"__slots__": (), "feed_data": feed_data, "feed_eof": feed_eof, "set_exception": set_exception},
    )
