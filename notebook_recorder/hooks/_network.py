"""Network traffic that bypasses the hooks: seen, reported, blocked on request; no placeholder key sent.

Frameworks sometimes carry their own HTTP client (dspy's default engine calls the API through
litellm, not the openai SDK). Under ``replay`` such a call is not recorded and goes to the
network. Three small guards make that visible and stoppable:

1. **Seen and reported.** An audit hook (:func:`sys.addaudithook`) watches the ``socket.connect``
   event. Inside a recording context (a session, a ``recording()`` block), an ``AF_INET`` or
   ``AF_INET6`` connection that is not made by a hooked call is logged as a ``kind="network"``
   :class:`~notebook_recorder.core._calllog.Call`: ``endpoint`` is ``host:port`` and ``origin`` is the
   ``file:line`` of the first frame outside the standard library and the HTTP libraries. The
   hooked calls (the openai SDK's own request in ``live``/``record``, a realtime connection that
   is let through in ``record``) run inside :func:`sdk_network` and are not reported. ``live``
   recorders report nothing (everything is live there), and hosts in ``allow_hosts`` are neither
   reported nor blocked. Loopback connections opened by Jupyter's own machinery (ipykernel,
   debugpy, zmq, tornado) are ignored. An audit hook cannot be removed, so it is added once, the
   first time a recording context starts; after that, with or without a recording context, it
   returns after one string comparison for every audit event but ``socket.connect``. What that
   costs is mostly CPython's own price for calling any Python audit hook, about a microsecond
   per event on a busy machine; audit events are rare (a replayed chat call raises about twenty, most
   of them ``builtins.id``). ``benchmarks/bench_network.py`` measures it.
2. **Blocked on request.** With ``block_network=True`` (``%apirec MODE --block-network``), such a
   connection raises :class:`~notebook_recorder.NetworkBlockedError` from the hook, before the
   connection is made, so not a byte is sent. As in pytest-recording's ``--block-network``,
   loopback is blocked too unless allowed: ``allow_hosts=["localhost"]`` (``--allow-host
   localhost``) allows every loopback address; other entries are host names (as the code asked
   for them; see 4) or addresses.
3. **The replay placeholder key is never sent.** In a mode that replays with no
   ``OPENAI_API_KEY`` set, the openai hook puts a placeholder key in ``os.environ`` so that
   ``OpenAI()`` can be built; anything may read it from there. From the moment it is first put
   there, the Python-level send paths of every socket in the process (``socket.socket.send``,
   ``sendall``, ``sendto``, ``sendmsg``, ``ssl.SSLSocket.send``/``sendall`` and
   ``ssl.SSLObject.write``, which asyncio's TLS uses, all before encryption) refuse a buffer that
   contains the placeholder with ``NetworkBlockedError``, whatever the destination (loopback
   included), the mode, or whether recording is still on (a client built during replay keeps the
   placeholder after ``%apirec off``). These wrappers stay for the life of the process. Limits:
   the placeholder split across two separate writes, or encoded (base64, compressed), is not
   recognised, and sockets driven from C (libcurl, grpc, uvloop) are not seen by any of these
   guards.
4. **Host names.** ``socket.connect`` sees an address, not a name. While a recording context is
   open, ``socket.getaddrinfo`` is wrapped to remember which name each address was looked up
   for, so reports say ``api.openai.com:443`` and ``allow_hosts`` can list names.
"""

from __future__ import annotations

import contextvars
import os
import re
import socket
import sys
import sysconfig
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from ..core import _calllog, _recorder, _session
from ..core._errors import NetworkBlockedError
from ..core._modes import REPLAY_KEY_PLACEHOLDER, Mode

__all__ = ["install", "sdk_network", "uninstall"]

_sdk_call: contextvars.ContextVar[bool] = contextvars.ContextVar("notebook_recorder_sdk_network", default=False)
_lock = threading.Lock()
_hook_added = False
_armed = False  # a recording context is open: connections are looked at
_INET = (socket.AF_INET, socket.AF_INET6)


@contextmanager
def sdk_network() -> Iterator[None]:
    """Mark the connections opened inside as a hooked call's own: not reported, not blocked."""
    token = _sdk_call.set(True)
    try:
        yield
    finally:
        _sdk_call.reset(token)


def install() -> None:
    """Called when a recording context starts: add the audit hook (once), name lookups, and the
    placeholder guard when the placeholder key is in the environment."""
    global _hook_added, _armed
    with _lock:
        if not _hook_added:
            sys.addaudithook(_audit)
            _hook_added = True
        if socket.getaddrinfo is _real_getaddrinfo:  # not replaced by someone else since
            socket.getaddrinfo = _getaddrinfo  # type: ignore[assignment]
        if os.environ.get("OPENAI_API_KEY") == REPLAY_KEY_PLACEHOLDER:
            guard_placeholder()
        _armed = True


def uninstall() -> None:
    """Called when the last recording context ends: stop looking at connections and restore
    ``socket.getaddrinfo``. The audit hook stays but returns at once; the placeholder guard stays
    and keeps refusing the placeholder (see the module docstring)."""
    global _armed
    with _lock:
        _armed = False
        if socket.getaddrinfo is _getaddrinfo:
            socket.getaddrinfo = _real_getaddrinfo


# ---------------------------------------------------------------------------------------------
# 1 and 2: connections
# ---------------------------------------------------------------------------------------------


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "socket.connect" or not _armed or _sdk_call.get():
        return
    sock, address = args
    if getattr(sock, "family", None) not in _INET or not isinstance(address, tuple) or len(address) < 2:
        return
    recorder = _session.active()
    if recorder is None:
        return
    _connection(recorder, str(address[0]), address[1])


def _connection(recorder: _recorder.Recorder, address: str, port: Any) -> None:
    name = _names.get(address)
    if _allowed(recorder.allow_hosts, address, name):
        return
    if not recorder.block_network and recorder.mode is Mode.LIVE:
        return
    origin, module = _origin()
    if _is_loopback(address) and module in _JUPYTER:
        return
    destination = _destination(name or address, port)
    if not recorder.block_network:
        recorder.log_event("network", destination, "unrecorded", origin=origin)
        return
    recorder.log_event("network", destination, "blocked", error="NetworkBlockedError", origin=origin)
    host = name or address
    raise NetworkBlockedError(
        f"notebook-recorder blocked a network connection to {destination}, opened by {origin or 'unknown code'} "
        f"outside the openai SDK, because block_network is on ({recorder.mode.value} mode): nothing was sent. "
        f"Such a call is not recorded and would not replay. To allow this host, add it: "
        f'nr.recording(..., block_network=True, allow_hosts=["{host}"]) or %apirec ... --block-network '
        f"--allow-host {host} (--allow-host localhost allows loopback); or drop block_network.",
        destination=destination,
        origin=origin,
    )


def _allowed(allowed: frozenset[str], address: str, name: str | None) -> bool:
    if not allowed:
        return False
    if address.lower() in allowed or (name is not None and name.lower() in allowed):
        return True
    return "localhost" in allowed and _is_loopback(address)


def _is_loopback(address: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return address.lower() == "localhost"


def _destination(host: str, port: Any) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# Frames in these packages are skipped when looking for the code that opened a connection.
_LIBRARIES = frozenset(
    {
        "notebook_recorder",
        "urllib3",
        "requests",
        "httpx",
        "httpx2",
        "httpcore",
        "httpcore2",
        "h11",
        "h2",
        "anyio",
        "sniffio",
        "aiohttp",
        "aiohappyeyeballs",
        "websockets",
        "certifi",
    }
)
# Jupyter's own machinery: its loopback connections are not the notebook's traffic.
_JUPYTER = frozenset({"ipykernel", "debugpy", "_pydevd_bundle", "pydevd", "zmq", "tornado", "jupyter_client"})
_STDLIB = tuple(
    {os.path.realpath(path) + os.sep for key in ("stdlib", "platstdlib") if (path := sysconfig.get_paths().get(key))}
)


def _origin() -> tuple[str | None, str]:
    """``file:line`` and top-level module of the first frame outside the stdlib and HTTP libraries."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        module = str(frame.f_globals.get("__name__") or "").partition(".")[0]
        filename = frame.f_code.co_filename
        if module not in _LIBRARIES and not _in_stdlib(filename):
            return f"{_calllog.display_path(filename)}:{frame.f_lineno}", module
        frame = frame.f_back
    return None, ""


def _in_stdlib(filename: str) -> bool:
    if filename.startswith("<frozen "):
        return True
    return filename.startswith(_STDLIB) and "site-packages" not in filename


# ---------------------------------------------------------------------------------------------
# 4: host names
# ---------------------------------------------------------------------------------------------

_real_getaddrinfo = socket.getaddrinfo
_names: dict[str, str] = {}  # address -> the name it was looked up for


def _getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    results = _real_getaddrinfo(host, port, *args, **kwargs)
    if isinstance(host, bytes):
        host = host.decode("idna", "replace")
    if isinstance(host, str) and results:
        if len(_names) > 4096:
            _names.clear()
        for result in results:
            address = result[4][0] if isinstance(result[4], tuple) and result[4] else None
            if isinstance(address, str):
                if address == host:  # a literal address: it names itself from now on
                    _names.pop(address, None)
                else:
                    _names[address] = host
    return results


# ---------------------------------------------------------------------------------------------
# 3: the placeholder key never leaves
# ---------------------------------------------------------------------------------------------

_PLACEHOLDER = REPLAY_KEY_PLACEHOLDER.encode()
_PLACEHOLDER_PATTERN = re.compile(re.escape(_PLACEHOLDER))  # searches a memoryview without copying it
_guarded = False


def guard_placeholder() -> None:
    """Refuse to send the placeholder key: wrap the Python-level send paths (once; they stay for
    the life of the process). Called whenever the placeholder is put in the environment."""
    global _guarded
    if _guarded:
        return
    import ssl

    _guarded = True
    for cls, names in (
        (socket.socket, ("send", "sendall", "sendto")),
        (ssl.SSLSocket, ("send", "sendall")),
        (ssl.SSLObject, ("write",)),
    ):
        for name in names:
            setattr(cls, name, _refusing(getattr(cls, name)))
    socket.socket.sendmsg = _refusing_sendmsg(socket.socket.sendmsg)  # type: ignore[method-assign]


def _holds_placeholder(data: Any) -> bool:
    try:
        if isinstance(data, bytes | bytearray):
            return _PLACEHOLDER in data
        if isinstance(data, memoryview):
            return _PLACEHOLDER_PATTERN.search(data) is not None
    except (TypeError, ValueError, BufferError):  # a non-contiguous or released buffer
        if isinstance(data, memoryview):
            try:
                return _PLACEHOLDER in data.tobytes()
            except (TypeError, ValueError, BufferError):
                return False
        return False
    return False


def _refusing(send: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(self: Any, data: Any, *args: Any, **kwargs: Any) -> Any:
        if _holds_placeholder(data):
            _refuse(self)
        return send(self, data, *args, **kwargs)

    guarded.__name__ = getattr(send, "__name__", "send")
    guarded.__doc__ = getattr(send, "__doc__", None)
    guarded.__wrapped__ = send  # type: ignore[attr-defined]
    return guarded


def _refusing_sendmsg(sendmsg: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(self: Any, buffers: Any, *args: Any, **kwargs: Any) -> Any:
        buffers = list(buffers)
        if any(_holds_placeholder(buffer) for buffer in buffers):
            _refuse(self)
        return sendmsg(self, buffers, *args, **kwargs)

    guarded.__name__ = "sendmsg"
    guarded.__wrapped__ = sendmsg  # type: ignore[attr-defined]
    return guarded


def _refuse(sock: Any) -> None:
    try:
        peer = sock.getpeername()
        destination = _destination(_names.get(str(peer[0]), str(peer[0])), peer[1])
    except (OSError, AttributeError, TypeError, IndexError, ValueError):  # an SSLObject has no peer
        destination = "the network"
    origin, _ = _origin()
    recorder = _session.active()
    if recorder is not None:
        recorder.log_event("network", destination, "blocked", error="replay placeholder key", origin=origin)
    raise NetworkBlockedError(
        f"notebook-recorder refused to send its replay placeholder API key to {destination} "
        f"(sent by {origin or 'unknown code'}, outside the openai SDK): nothing was sent. The placeholder is "
        "in OPENAI_API_KEY only so that OpenAI() can be built while replaying; a call that reads it is not "
        "recorded and would not replay. Set OPENAI_API_KEY to make this call live, or record it through the "
        "openai SDK.",
        destination=destination,
        origin=origin,
    )
