"""One HTTP request as the engine's :class:`~notebook_recorder.core._engine.Exchange`, for any library.

Each HTTP-library hook (``httpx``, ``httpx2``, ``requests``, ``aiohttp``) makes an
:class:`HttpCall` subclass that knows how to send the request, how to tap its response's body,
and how to build a response from recorded bytes; the rest is here and in ``_wire``:

- **describe / secrets**: the request as keyed and written (``_wire.describe``), and the
  credential values it carries, masked in what is saved;
- **call**: the original send, marked as a hooked call (the network guard does not report it);
- **keep**: the response is handed back at once with its body tapped: every piece passes to the
  caller as it arrives and a copy is kept with its arrival time. The recording is saved when the
  body has been read to the end, never when it was cut short (closed early, an error), and not at
  all when it is larger than the recorder's ``http_max_body`` (reported instead, with a warning);
- **replay**: the recorded response as the library's own response object over the recorded bytes
  (``_wire.replay_chunks``), one chunk per event for a stream, so the client parses them itself.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Sequence
from typing import Any

from ...core._engine import Tape
from ...core._errors import NotRecordedWarning, RecordingFormatError
from ...core._keys import InferenceRequest
from ...core._recorder import Action, Recorder
from ...core._store import derived
from .. import _opener
from .._above import above
from .._network import hooked_package, hooked_packages, sdk_network
from .._placeholder import REPLAY_KEY_PLACEHOLDER
from . import _wire


class HttpCall:
    """One request through an HTTP library, as the engine's exchange. Subclasses say how the
    library sends, taps and builds responses (:meth:`send`, :meth:`tap`, :meth:`build`)."""

    library = ""
    version = ""

    def __init__(
        self, recorder: Recorder, method: str, url: str, headers: Sequence[tuple[str, str]], content: bytes
    ) -> None:
        self.recorder = recorder
        self.method = method
        self.url = url
        self.headers = headers
        self.content = content
        self.streamed = False
        self.opener = _opener.caller()
        self.request: InferenceRequest | None = None

    @property
    def client(self) -> str:
        """The library that made the request (``google-genai``), else the top-level module of the
        user's code that did (``__main__``): written as the recording's ``recorder.client``."""
        return self.opener.library or self.opener.module

    @property
    def client_label(self) -> str:
        """``google-genai via httpx2``, or the HTTP library alone for the user's own call: what
        messages and the call log say made the request."""
        library = self.opener.library
        return f"{library} via {self.library}" if library and self.library else library or self.library

    @property
    def sdk_versions(self) -> dict[str, str]:
        versions = {"sdk": self.library, "sdk_version": self.version}
        if self.client:
            versions["client"] = self.client
        return versions

    # -- the exchange: describing ------------------------------------------------------------

    def describe(self) -> InferenceRequest:
        self.request = _wire.describe(self.method, self.url, self.headers, self.content, client=self.client_label)
        return self.request

    def secrets(self) -> tuple[str, ...]:
        return _wire.secrets(self.url, self.headers, self.content)

    def unavailable(self, action: Action) -> str | None:
        """The replay placeholder key is never sent: a request carrying it is missing (or refused)."""
        if any(REPLAY_KEY_PLACEHOLDER in value for _, value in self.headers) or REPLAY_KEY_PLACEHOLDER in self.url:
            return (
                "The request carries notebook-recorder's replay placeholder instead of an API key: "
                "set the client's key and run again."
            )
        return None

    # -- live and record ----------------------------------------------------------------------

    def send(self) -> Any:
        """The library's own send (a coroutine for an async library)."""
        raise NotImplementedError

    def call(self, tape: Tape | None) -> Any:
        """The library's own send, marked as a hooked call; while recording, the credentials of the
        request head as it leaves the process are collected to be masked too."""
        collect = tape.add_secrets if tape is not None else None
        if self.asynchronous:
            return self._acall(collect)
        with sdk_network(collect=collect), above():
            return self.send()

    async def _acall(self, collect: Any) -> Any:
        with sdk_network(collect=collect), above():
            return await self.send()

    asynchronous = False

    def failure(self, exc: BaseException, tape: Tape) -> dict[str, Any] | None:
        return None  # a connection error is not a response: nothing to record

    def keep(self, result: Any, tape: Tape) -> Any:
        """Tap the response's body; it is saved once read to the end."""
        status, headers = self.meta(result)
        self.streamed = _wire.stream_kind(_wire.content_type_of(headers)) is not None
        return self.tap(result, Sink(self, tape, status, headers))

    def meta(self, result: Any) -> tuple[int, list[tuple[str, str]]]:
        """The response's status and headers."""
        raise NotImplementedError

    def tap(self, result: Any, sink: Sink) -> Any:
        """The response, with its body passing through ``sink`` as it is read."""
        raise NotImplementedError

    def decoded(self, content: bytes, headers: list[tuple[str, str]]) -> bytes:
        """The body with its ``content-encoding`` undone (libraries that tap raw bytes)."""
        return content

    # -- replay -------------------------------------------------------------------------------

    def replay(self, response: dict[str, Any], tape: Tape) -> Any:
        found = tape.decision.found
        try:
            if found is not None and found.record.get("response") is response:
                # Built once per parsed file: a file replayed again is read and compared by the
                # store, and its bytes are served as they were built the first time.
                replayed = derived(found.record, "http.replayed", lambda: _wire.replay_chunks(response))
            else:
                replayed = _wire.replay_chunks(response)
        except (TypeError, ValueError) as exc:
            raise RecordingFormatError(
                found.path if found else "<recording>", f"cannot replay the body: {exc}"
            ) from None
        self.streamed = replayed.streamed
        built = self.build(replayed)
        return _ready(built) if self.asynchronous else built

    def build(self, replayed: _wire.Replayed) -> Any:
        """The library's response over recorded bytes."""
        raise NotImplementedError

    def replay_error(self, response: dict[str, Any]) -> BaseException:
        data = response.get("exception_data")
        message = response.get("exception_message") or (data.get("message") if isinstance(data, dict) else None)
        return RecordingFormatError(
            "<recording>",
            f"a recorded SDK error cannot be replayed through {self.library}: {message or 'no message'}",
        )


async def _ready(value: Any) -> Any:
    return value


class Sink:
    """A response body being recorded: its pieces as they pass to the caller, each with its arrival."""

    def __init__(self, call: HttpCall, tape: Tape, status: int, headers: list[tuple[str, str]]) -> None:
        self.call, self.tape, self.status, self.headers = call, tape, status, headers
        self.pieces: list[bytes] = []
        self.offsets: list[float] = []
        self.size = 0
        self.limit = call.recorder.http_max_body
        self.ended = False

    def add(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            self.pieces.clear()
            self.offsets.clear()
            return
        self.pieces.append(bytes(data))
        self.offsets.append(round((time.perf_counter() - self.tape.started) * 1000, 3))

    def end(self, complete: bool) -> None:
        """The body was read to the end (``complete``), or closed or failed before it: save it,
        or log why not. Never raises: recording must not break what the caller reads."""
        if self.ended:
            return
        self.ended = True
        streamed = self.call.streamed
        try:
            if not complete and self.size <= self.limit:
                # A client that stops reading at a stream's last event (``data: [DONE]``, an
                # ollama ``"done": true``) and closes the response has read all of it.
                complete = _wire.looks_complete(self.headers, b"".join(self.pieces))
            if not complete:
                self.tape.end(
                    "error", streamed=streamed, error=f"response cut short after {self.size} bytes; not saved"
                )
            elif self.size > self.limit:
                self._too_large()
            else:
                content = self.call.decoded(b"".join(self.pieces), self.headers)
                pieces = self.pieces if len(content) == sum(map(len, self.pieces)) else [content]
                offsets = self.offsets if pieces is self.pieces else self.offsets[-1:] or [0.0]
                response = _wire.encode_response(
                    self.status, self.headers, _wire.Body(pieces, offsets), self.tape.elapsed_ms()
                )
                self.tape.save(response, streamed=streamed)
        except Exception as exc:  # a full disk, an unwritable directory: the caller keeps the answer
            warnings.warn(
                f"notebook-recorder: {self.call.method} {self.call.url} was not recorded: {exc}",
                NotRecordedWarning,
                stacklevel=2,
            )

    def _too_large(self) -> None:
        request = self.call.request
        what = request.summary() if request is not None else f"{self.call.method} {self.call.url}"
        reason = f"response body of {self.size} bytes is over http_max_body ({self.limit} bytes): not recorded"
        self.tape.end("live", streamed=self.call.streamed, error=reason)
        warnings.warn(
            f"notebook-recorder: {what}: {reason}. A replay of this call will find no recording. Raise the limit "
            "([tool.notebook-recorder] http_max_body) or leave the host out (ignore_hosts).",
            NotRecordedWarning,
            stacklevel=2,
        )


def ignored(recorder: Recorder, host: str | None, port: int | None) -> bool:
    """Whether the HTTP-level hooks leave this request alone: its host is in ``ignore_hosts`` (a
    name, or ``name:port``), or it comes from inside an SDK that has a typed hook (a call path
    that hook does not know: the network backstop of ``_network`` refuses it in replay, naming
    the SDK release, rather than it being recorded under the wrong layer)."""
    hosts = recorder.ignore_hosts
    if hosts and host:
        host = host.lower().strip("[]")
        if host in hosts or (port is not None and f"{host}:{port}" in hosts):
            return True
    return bool(hooked_packages) and _inside_hooked_sdk()


def _inside_hooked_sdk() -> bool:
    frame: Any = sys._getframe(2)
    while frame is not None:
        if hooked_package(str(frame.f_globals.get("__name__") or "")) is not None:
            return True
        frame = frame.f_back
    return False
