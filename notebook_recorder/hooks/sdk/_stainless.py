"""The hook shared by every Stainless-generated SDK (openai, anthropic): one patch on the base
clients' ``request`` method, sync and async.

Every resource method of such an SDK (chat, messages, embeddings, responses, models,
``.parse()``, ``.stream()`` helpers, ``with_raw_response``, ``with_streaming_response``) ends in
``SyncAPIClient.request`` or ``AsyncAPIClient.request``. Patching those two methods on the
classes covers every endpoint, including ones added later, and clients created before recording
started. Each call is handed to the engine (``_engine.run``) as an :class:`SdkCall`: the engine
owns the flow, this module supplies the SDK's pieces.

- **Live and record** call the SDK as usual and hand back exactly what it returns, ids and
  timestamps included: record mode is transparent. A stream is handed to the caller as it
  arrives; its chunks are collected on the side and written only when the stream ends. A stream
  that is cut short (``break``, ``close()``, an error) is never saved. Raw responses are the SDK's
  own objects, unread and open: their body is tapped where the HTTP library reads it (``_rawtap``,
  reached through a second patch on ``_process_response``) and saved once the caller has read it
  to the end. Response headers that carry no secret are stored; binary bodies (speech audio, file
  contents) are stored as base64 with their content type.
- **Replay** builds the SDK's own objects from ``__type__``/``__data__`` (``_decode``), returned
  through the SDK's own stream class. API errors are re-raised by the SDK's own error factory. Raw
  responses and binary bodies are served from a synthetic HTTP response, with the recorded
  headers, so that the SDK parses them itself.

Every private member of the SDK is reached through ``_compat``. While the SDK makes its own
network call, :func:`notebook_recorder.hooks._network.sdk_network` marks the connection as the SDK's.
"""

from __future__ import annotations

import contextvars
import threading
import weakref
from collections.abc import Callable
from typing import Any

from ...core._engine import arun, run
from ...core._modes import Mode
from ...core._session import active
from .._network import hooked_packages
from . import _compat
from ._call import SdkCall
from ._compat import StainlessSdk

_lock = threading.Lock()
# Per SDK package: the methods the patch replaced, by (class, name).
_originals: dict[str, dict[tuple[type, str], Callable[..., Any]]] = {}
# The call being recorded in this thread or task, while the SDK makes it: the SDK's
# ``_process_response`` hands it the HTTP response before anything reads the body.
# Held weakly: tasks that the HTTP library starts during the call copy the context, and must not
# keep the call (and the response it holds) alive after it.
_recording: contextvars.ContextVar[weakref.ref[SdkCall] | None] = contextvars.ContextVar(
    "notebook_recorder_sdk_call", default=None
)


def install(sdk: StainlessSdk, mode: Mode | None = None) -> None:
    """Patch the SDK's base clients (idempotent).

    In a mode that replays, a client built without a key may hold the replay placeholder
    (``.._placeholder``). It is never sent anywhere: a call that would have to go to the network
    with it fails with ``RecordingNotFoundError`` instead, or in ``live`` with
    ``NetworkBlockedError`` (:meth:`SdkCall.unavailable`). ``mode`` is unused here.
    """
    with _lock:
        if sdk.package not in _originals:
            sync, asynchronous = sdk.clients
            originals = _originals[sdk.package] = {}
            for cls, name, replacement in (
                (sync, "request", _sync_request(sdk)),
                (asynchronous, "request", _async_request(sdk)),
                (sync, "_process_response", _sync_process_response(sdk)),
                (asynchronous, "_process_response", _async_process_response(sdk)),
            ):
                originals[cls, name] = _compat.patch(cls, name, replacement)
        hooked_packages.add(sdk.package)  # the backstop: in replay, this package's own code sends nothing


def uninstall(sdk: StainlessSdk) -> None:
    """Restore the SDK's own methods."""
    with _lock:
        for (cls, name), original in _originals.pop(sdk.package, {}).items():
            _compat.patch(cls, name, original)
        hooked_packages.discard(sdk.package)


def is_installed(sdk: StainlessSdk) -> bool:
    """Whether the SDK is currently patched."""
    return sdk.package in _originals


class Hook:
    """One SDK's hook as the registry (``hooks.sdk``) calls it: ``install``, ``uninstall`` and
    ``is_installed`` of the shared hook, for the SDK that ``sdk`` describes."""

    def __init__(self, sdk: StainlessSdk) -> None:
        self.sdk = sdk

    def install(self, mode: Mode | None = None) -> None:
        """Patch the SDK's base clients (idempotent)."""
        install(self.sdk, mode)

    def uninstall(self) -> None:
        """Restore the SDK's own methods."""
        uninstall(self.sdk)

    def is_installed(self) -> bool:
        """Whether the SDK is currently patched."""
        return is_installed(self.sdk)


def original(sdk: StainlessSdk, cls: type, name: str) -> Callable[..., Any]:
    """The SDK's own method. The patch may be removed while a call is in flight: then the
    class's own method is the original again."""
    found = _originals.get(sdk.package, {}).get((cls, name))
    return found or getattr(cls, name)


# ---------------------------------------------------------------------------------------------
# The patched methods: the pass-through when nothing records, else the engine
# ---------------------------------------------------------------------------------------------


def _sync_request(sdk: StainlessSdk) -> Callable[..., Any]:
    cls = sdk.clients[0]

    def request(self: Any, cast_to: Any, options: Any, *, stream: bool = False, stream_cls: Any = None) -> Any:
        recorder = active()
        if recorder is None:
            return original(sdk, cls, "request")(self, cast_to, options, stream=stream, stream_cls=stream_cls)
        # The request is read as the SDK prepares it (its own errors, a circular body's, are raised
        # here as they are without the hook); preparing it again in the SDK changes nothing.
        prepared = _compat.prepared_options(self, options)
        call = SdkCall(
            sdk, self, cast_to, prepared, stream, stream_cls, original(sdk, cls, "request"), _recording, options
        )
        return run(recorder, call)

    return request


def _async_request(sdk: StainlessSdk) -> Callable[..., Any]:
    cls = sdk.clients[1]

    async def request(self: Any, cast_to: Any, options: Any, *, stream: bool = False, stream_cls: Any = None) -> Any:
        recorder = active()
        if recorder is None:
            return await original(sdk, cls, "request")(self, cast_to, options, stream=stream, stream_cls=stream_cls)
        prepared = await _compat.aprepared_options(self, options)
        call = SdkCall(
            sdk, self, cast_to, prepared, stream, stream_cls, original(sdk, cls, "request"), _recording, options
        )
        return await arun(recorder, call)

    return request


def _sync_process_response(sdk: StainlessSdk) -> Callable[..., Any]:
    cls = sdk.clients[0]

    def process_response(self: Any, **kwargs: Any) -> Any:
        ref = _recording.get()
        call = ref() if ref is not None else None
        if call is not None:
            call.attach(kwargs["response"])
        return original(sdk, cls, "_process_response")(self, **kwargs)

    return process_response


def _async_process_response(sdk: StainlessSdk) -> Callable[..., Any]:
    cls = sdk.clients[1]

    async def process_response(self: Any, **kwargs: Any) -> Any:
        ref = _recording.get()
        call = ref() if ref is not None else None
        if call is not None:
            call.attach(kwargs["response"])
        return await original(sdk, cls, "_process_response")(self, **kwargs)

    return process_response
