"""The openai SDK hook: the shared Stainless hook (``_stainless``) with openai's description,
plus a second patch point for the SDK's websocket connections (the realtime API).

Everything that openai has in common with other Stainless SDKs (the ``request`` patch, streams,
raw responses, replay through the SDK's own classes) is in ``_stainless``, ``_call`` and
``_decode``; this module says what is openai's own: its key's environment variable, the response
headers it stores, how its SSE events are written, its simple pages and binary results. While
the SDK opens its own websocket (``live`` and ``record``), :func:`notebook_recorder.hooks._network.sdk_network`
marks the connection as the SDK's, so the network guard does not report it.
"""

from __future__ import annotations

import functools
import importlib
import sys
import warnings
import weakref
from collections.abc import Callable
from typing import Any

from ...core._errors import NotRecordableError, NotRecordedWarning
from ...core._modes import Mode
from ...core._recorder import Recorder
from ...core._session import active
from .._network import sdk_network
from . import _stainless
from ._compat import StainlessSdk

OPENAI = StainlessSdk(
    package="openai",
    env_key="OPENAI_API_KEY",
    kept_headers=frozenset({"x-request-id", "openai-processing-ms", "openai-version", "openai-model", "content-type"}),
    kept_header_prefixes=("x-ratelimit-",),
    request_id_header="x-request-id",
    named_events=lambda event: "." in event,  # the Responses API's events (response.output_text.delta)
    stream_end=b"data: [DONE]",
    simple_pages=("pagination.SyncPage", "pagination.AsyncPage"),
    binary_classes=("_legacy_response.HttpxBinaryResponseContent",),
    raw_response_classes=("_response.BaseAPIResponse", "_legacy_response.LegacyAPIResponse"),
    key_clients=("OpenAI", "AsyncOpenAI"),
)


def install(mode: Mode | None = None) -> None:
    """Patch the openai SDK's base clients and its websocket connections (idempotent).

    In a mode that replays, ``OpenAI()`` builds without a key (``.._placeholder``); the
    placeholder it holds is never sent anywhere.
    """
    _stainless.install(OPENAI, mode)
    _install_websockets()


def uninstall() -> None:
    """Restore the SDK's own methods."""
    _stainless.uninstall(OPENAI)
    _uninstall_websockets()


def is_installed() -> bool:
    """Whether the SDK is currently patched."""
    return _stainless.is_installed(OPENAI)


# ---------------------------------------------------------------------------------------------
# Websocket connections (the realtime API): not recorded, so never made while replaying
# ---------------------------------------------------------------------------------------------
#
# The second patch point. The SDK's websocket paths (``client.realtime.connect()``,
# ``client.beta.realtime.connect()``, the Responses websocket, and in openai 3.x ``live``,
# ``sideband``, ``forks`` and realtime ``translations``) bypass ``request``. Each is a
# ``...ConnectionManager`` whose ``__enter__`` / ``__aenter__`` (aliased as ``enter``), and whose
# reconnects in 3.x, open the socket through the ``websockets`` package: sync paths call
# ``websockets.sync.client.connect()``, imported at call time (openai 3.63 and later build a
# subclass of ``websockets.sync.client.reconnect`` instead, whose ``__init__`` and ``connect`` are
# wrapped as the async class's are); async paths build a
# ``websockets.asyncio.client.connect`` (in 3.x through a subclass of it) and await it. That is
# the one place all of them pass through in both SDK majors, so it is patched there: the sync
# function is replaced, and the async class's ``__init__`` and connecting coroutine are wrapped
# (subclasses inherit them). Patching the sixteen manager classes instead would mean importing
# their modules, 0.5-0.9 s, every time recording starts. Only connections that the ``openai``
# package itself opens are intercepted (the caller's module is checked); anyone else's websocket
# goes through untouched, and the network guard in ``_network`` sees it. Without ``websockets``
# installed the SDK cannot open these connections at all, and nothing is patched.
#
# ``replay`` / ``record-if-missing``: NotRecordableError, before any connection is opened.
# ``record``: a warning, once per recorder, and the connection goes through. ``live``: nothing.

_ws_originals: dict[str, Callable[..., Any]] = {}
_ws_warned: weakref.WeakSet[Recorder] = weakref.WeakSet()
_ws_missing: list[bool] = []  # websockets was looked for and is not installed
_ws_connecting_name: list[str] = []  # the async class's connecting coroutine method
_WS_SDK = "_notebook_recorder_sdk"  # set on an async connect object that the SDK built


def _install_websockets() -> None:
    if _ws_originals or _ws_missing:
        return
    try:
        sync: Any = importlib.import_module("websockets.sync.client")
        aio: Any = importlib.import_module("websockets.asyncio.client")
    except ImportError:
        _ws_missing.append(True)
        return
    connecting = "connect" if "connect" in vars(aio.connect) else "__await_impl__"  # websockets < 14
    _ws_originals.update(sync=sync.connect, init=aio.connect.__init__, connecting=getattr(aio.connect, connecting))
    _ws_connecting_name[:] = [connecting]
    sync.connect = _ws_connect_sync(sync.connect)
    aio.connect.__init__ = _ws_init(aio.connect.__init__)
    setattr(aio.connect, connecting, _ws_connecting(getattr(aio.connect, connecting)))
    reconnect: Any = getattr(sync, "reconnect", None)  # websockets >= 17.1; openai 3.63 builds a subclass of it
    if reconnect is not None and hasattr(reconnect, "connect"):
        _ws_originals.update(sync_init=reconnect.__init__, sync_connecting=reconnect.connect)
        reconnect.__init__ = _ws_init(reconnect.__init__)
        reconnect.connect = _ws_connecting_sync(reconnect.connect)


def _uninstall_websockets() -> None:
    if not _ws_originals:
        return
    sync: Any = sys.modules["websockets.sync.client"]
    aio: Any = sys.modules["websockets.asyncio.client"]
    sync.connect = _ws_originals["sync"]
    aio.connect.__init__ = _ws_originals["init"]
    setattr(aio.connect, _ws_connecting_name[0], _ws_originals["connecting"])
    if "sync_init" in _ws_originals:
        sync.reconnect.__init__ = _ws_originals["sync_init"]
        sync.reconnect.connect = _ws_originals["sync_connecting"]
    _ws_originals.clear()


def _ws_recorder(caller: Any) -> Recorder | None:
    """The recorder in force when the SDK (not anyone else) opens a websocket."""
    if not str(caller.f_globals.get("__name__", "")).startswith("openai."):
        return None
    return active()


def _ws_check(recorder: Recorder, url: Any) -> None:
    """Refuse the connection while replaying; warn once while recording."""
    mode = recorder.mode
    if mode is Mode.LIVE:
        return
    url = str(url or "").split("?", 1)[0]
    what = f"a realtime (websocket) connection to {url}" if url else "a realtime (websocket) connection"
    if mode.reads:
        recorder.log_event("realtime", url, "error", error="NotRecordableError")
        raise NotRecordableError(
            f"{what} cannot be replayed: notebook-recorder does not record the realtime API "
            f"(client.realtime.connect() and the SDK's other websocket connections), and {mode.value} mode "
            "never reaches the network, so no connection was opened. Run this part live, outside the "
            'recording (nr.recording("live") or a %%apirec live cell), or leave it out of replayed runs.',
            what=what,
        )
    recorder.log_event("realtime", url, "live", error="realtime calls are not recorded")
    if recorder not in _ws_warned:
        _ws_warned.add(recorder)
        warnings.warn(
            f"notebook-recorder: {what} goes through but is not recorded: the realtime API is not "
            "recorded, so a replay of this code will raise NotRecordableError.",
            NotRecordedWarning,
            stacklevel=4,
        )


def _ws_connect_sync(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def connect(*args: Any, **kwargs: Any) -> Any:
        recorder = _ws_recorder(sys._getframe(1))
        if recorder is None:
            return original(*args, **kwargs)
        _ws_check(recorder, args[0] if args else kwargs.get("uri"))
        with sdk_network():
            return original(*args, **kwargs)

    return connect


def _ws_init(original: Callable[..., Any]) -> Callable[..., Any]:
    # The SDK awaits the object it builds (``await connect(...)``): a refusal is raised when it is
    # built, before anything is awaited.
    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        recorder = _ws_recorder(sys._getframe(1))
        if recorder is not None:
            _ws_check(recorder, args[0] if args else kwargs.get("uri"))
        original(self, *args, **kwargs)
        setattr(self, _WS_SDK, recorder is not None)

    return __init__


def _ws_connecting(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def connecting(self: Any) -> Any:
        if not getattr(self, _WS_SDK, False):
            return await original(self)
        with sdk_network():
            return await original(self)

    return connecting


def _ws_connecting_sync(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def connecting(self: Any) -> Any:
        if not getattr(self, _WS_SDK, False):
            return original(self)
        with sdk_network():
            return original(self)

    return connecting
