"""The requests hook: ``requests.adapters.HTTPAdapter.send`` patched.

Every ``requests`` call (``requests.get``, a ``Session``, huggingface_hub's and other clients'
sessions) goes through an adapter's ``send``, which returns a response whose body has not been
read yet (``Session.send`` reads it unless ``stream=True``). The body is tapped where requests
reads it, the urllib3 response's ``stream()`` / ``read()``; replay builds the response with the
adapter's own ``build_response`` over a urllib3 response holding the recorded bytes.
"""

from __future__ import annotations

import functools
import io
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ...core._engine import run
from ...core._modes import Mode
from ...core._session import active
from .._above import handled
from . import _wire
from ._exchange import HttpCall, Sink, ignored

_lock = threading.Lock()
_original: list[Callable[..., Any]] = []


def install(mode: Mode | None = None) -> None:
    """Patch ``HTTPAdapter.send`` (idempotent)."""
    from requests.adapters import HTTPAdapter

    with _lock:
        if not _original:
            _original.append(HTTPAdapter.send)
            HTTPAdapter.send = _send(HTTPAdapter.send)  # type: ignore[method-assign]


def uninstall() -> None:
    """Restore ``HTTPAdapter.send``."""
    from requests.adapters import HTTPAdapter

    with _lock:
        if _original:
            HTTPAdapter.send = _original.pop()  # type: ignore[method-assign]


def _send(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        recorder = active()
        if recorder is None or handled.get():
            return original(self, request, *args, **kwargs)
        from urllib.parse import urlsplit

        parts = urlsplit(request.url)
        if ignored(recorder, parts.hostname, parts.port):
            return original(self, request, *args, **kwargs)
        call = _RequestsCall(recorder, self, request, original, args, kwargs)
        return run(recorder, call)

    return send


def _content(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return b""  # a file or a generator: streamed by requests, not read here


class _RequestsCall(HttpCall):
    library = "requests"

    def __init__(
        self, recorder: Any, adapter: Any, request: Any, original: Callable[..., Any], args: Any, kwargs: Any
    ) -> None:
        import requests

        headers = [(str(k), str(v)) for k, v in request.headers.items()]
        super().__init__(recorder, str(request.method), str(request.url), headers, _content(request.body))
        self.adapter, self.http_request, self.original, self.args, self.kwargs = (
            adapter,
            request,
            original,
            args,
            kwargs,
        )
        self.version = requests.__version__

    def send(self) -> Any:
        return self.original(self.adapter, self.http_request, *self.args, **self.kwargs)

    def meta(self, result: Any) -> tuple[int, list[tuple[str, str]]]:
        return int(result.status_code), [(str(k), str(v)) for k, v in result.headers.items()]

    def tap(self, result: Any, sink: Sink) -> Any:
        result.raw = _RawTap(result.raw, sink)
        return result

    def build(self, replayed: _wire.Replayed) -> Any:
        from urllib3 import HTTPResponse

        content = replayed.content
        headers = dict(replayed.headers)
        if not replayed.streamed:
            headers["content-length"] = str(len(content))
        raw = HTTPResponse(
            body=io.BytesIO(content),
            headers=headers,
            status=replayed.status,
            preload_content=False,
            decode_content=False,
        )
        return self.adapter.build_response(self.http_request, raw)


class _RawTap:
    """The urllib3 response, read through: every piece requests reads passes to the sink."""

    def __init__(self, raw: Any, sink: Sink) -> None:
        self._raw, self._sink = raw, sink

    def stream(self, amt: int | None = 2**16, decode_content: bool | None = None) -> Iterator[bytes]:
        sink = self._sink
        try:
            for data in self._raw.stream(amt, decode_content=True):
                sink.add(data)
                yield data
        except BaseException:
            sink.end(False)
            raise
        sink.end(True)

    def read(self, amt: int | None = None, decode_content: bool | None = None, **kwargs: Any) -> bytes:
        try:
            data: bytes = self._raw.read(amt, decode_content=True, **kwargs)
        except BaseException:
            self._sink.end(False)
            raise
        self._sink.add(data)
        if amt is None or not data:
            self._sink.end(True)
        return data

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            self._sink.end(False)

    def release_conn(self) -> None:
        self._raw.release_conn()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)
