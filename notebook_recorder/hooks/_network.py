"""Network traffic that bypasses the hooks: seen, reported, blocked on request; no placeholder key sent.

Frameworks sometimes carry their own HTTP client (dspy's default engine calls the API through
litellm, not the openai SDK). Under ``replay`` such a call is not recorded and goes to the
network. Three small guards make that visible and stoppable:

1. **Seen and reported.** An audit hook (:func:`sys.addaudithook`) watches the ``socket.connect``
   event. Inside a recording context (a session, a ``recording()`` block), an ``AF_INET`` or
   ``AF_INET6`` connection that is not made by a hooked call is logged as a ``kind="network"``
   :class:`~notebook_recorder.core._calllog.Call`: ``endpoint`` is ``host:port``, ``origin`` is the
   ``file:line`` of the user's code that opened it, and ``client`` the library that did, with the
   HTTP library it went through (``google-genai via httpx2``; see :mod:`._opener`). The
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
3. **The replay placeholder key is never sent.** In a mode that replays, a client that will not
   be built without a key (``OpenAI()``, ``Groq()``, ``genai.Client()``...) gets a placeholder key
   at its constructor (``_placeholder``; nothing is put in ``os.environ``), and code may read it
   from the client. From the moment one is first handed out, the Python-level send paths of
   every socket in the process (``socket.socket.send``, ``sendall``, ``sendto``, ``sendmsg``,
   ``ssl.SSLSocket.send``/``sendall`` and ``ssl.SSLObject.write``, which asyncio's TLS uses, all
   before encryption) refuse a buffer that
   contains the placeholder with ``NetworkBlockedError``, whatever the destination (loopback
   included), the mode, or whether recording is still on (a client built during replay keeps the
   placeholder after ``%apirec off``). These wrappers stay for the life of the process. Limits:
   the placeholder split across two separate writes, or encoded (base64, compressed), is not
   recognised, and sockets driven from C (libcurl, grpc, uvloop) are not seen by any of these
   guards.
4. **Replay sends nothing, whatever the SDK does (the backstop).** The SDK hooks are the fast
   path; a new SDK release can add a call path they do not know (openai 3.63's own websocket
   helper did). So in ``replay``, a connection opened, or a send made, by code of a hooked SDK's
   package (any frame on the stack whose module belongs to a package in :data:`hooked_packages`,
   which the hooks fill as they install) outside a hooked call's own :func:`sdk_network` is
   refused with :class:`~notebook_recorder.NetworkBlockedError` before a byte is sent, whatever
   helper opened it. The send check covers a keep-alive connection that was opened before the
   recording context started. Hosts in ``allow_hosts`` stay allowed.
5. **The real destination behind a proxy.** A connection to a proxy from the environment
   (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``) is judged, reported and blocked by the host its
   first request names (``CONNECT host:port`` or an absolute URL), not by the proxy's address.
6. **Datagrams and name lookups.** With ``block_network``, a UDP ``sendto`` to a host that is not
   allowed, and a DNS lookup of a name that is not allowed, are refused as connections are.
7. **Host names.** ``socket.connect`` sees an address, not a name. While a recording context is
   open, ``socket.getaddrinfo`` is wrapped to remember which name each address was looked up
   for, so reports say ``api.openai.com:443`` and ``allow_hosts`` can list names.
"""

from __future__ import annotations

import contextvars
import os
import re
import socket
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from ..core import _calllog, _recorder, _session
from ..core._errors import NetworkBlockedError
from ..core._modes import REPLAY_KEY_PLACEHOLDER, Mode
from ..core._secrets import sent_bytes_secrets
from . import _opener

__all__ = ["hooked_package", "hooked_packages", "install", "sdk_network", "uninstall"]

# The packages of the SDKs whose calls are hooked (``openai``, ``anthropic``, a nested one such
# as ``cerebras.cloud.sdk``): the hooks add theirs when they install and drop it when they
# uninstall. In ``replay``, their code opens no connection and sends nothing outside a hooked
# call (the backstop, point 4).
hooked_packages: set[str] = set()


def hooked_package(module: str) -> str | None:
    """The package in :data:`hooked_packages` that the module ``module`` belongs to, if any."""
    top = module.partition(".")[0]
    if top in hooked_packages:
        return top
    for package in tuple(hooked_packages):
        if "." in package and module.startswith(package) and module[len(package) : len(package) + 1] in ("", "."):
            return package
    return None


_sdk_call: contextvars.ContextVar[bool] = contextvars.ContextVar("notebook_recorder_sdk_network", default=False)
_collect: contextvars.ContextVar[Callable[[tuple[str, ...]], None] | None] = contextvars.ContextVar(
    "notebook_recorder_sent_secrets", default=None
)
_lock = threading.Lock()
_hook_added = False
_armed = False  # a recording context is open: connections are looked at
_INET = (socket.AF_INET, socket.AF_INET6)


@contextmanager
def sdk_network(collect: Callable[[tuple[str, ...]], None] | None = None) -> Iterator[None]:
    """Mark the connections opened inside as a hooked call's own: not reported, not blocked.

    ``collect``, for a call being recorded, is handed the credential values of every HTTP/1.x
    request head sent inside, as it leaves the process (``_secrets.sent_bytes_secrets``): the
    Recorder masks them in what it writes, whatever put them in the request.
    """
    token = _sdk_call.set(True)
    collecting = _collect.set(collect) if collect is not None else None
    try:
        yield
    finally:
        if collecting is not None:
            _collect.reset(collecting)
        _sdk_call.reset(token)


def install() -> None:
    """Called when a recording context starts: add the audit hook (once), name lookups, and the
    send guards."""
    global _hook_added, _armed
    with _lock:
        if not _hook_added:
            sys.addaudithook(_audit)
            _hook_added = True
        if socket.getaddrinfo is _real_getaddrinfo:  # not replaced by someone else since
            socket.getaddrinfo = _getaddrinfo  # type: ignore[assignment]
        _guard_sends()
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
    if not _armed or event not in _WATCHED or _sdk_call.get():
        return
    recorder = _session.active()
    if recorder is None:
        return
    if event == "socket.getaddrinfo":
        _lookup(recorder, args[0])
        return
    sock, address = args
    if getattr(sock, "family", None) not in _INET or not isinstance(address, tuple) or len(address) < 2:
        return
    if event == "socket.sendto":
        if recorder.block_network:  # a datagram: judged like a connection, where blocking is asked for
            _connection(recorder, str(address[0]), address[1])
        return
    if _is_proxy(str(address[0]), address[1]):
        _via_proxy[sock] = recorder  # judged by the destination its first request names (_sent)
        return
    _connection(recorder, str(address[0]), address[1])


_WATCHED = frozenset({"socket.connect", "socket.sendto", "socket.getaddrinfo"})


def _connection(recorder: _recorder.Recorder, address: str, port: Any) -> None:
    name = _names.get(address)
    if _allowed(recorder.allow_hosts, address, name):
        return
    if recorder.mode is Mode.REPLAY:
        sdk = _sdk_frame()
        if sdk is not None:
            _refuse_sdk(recorder, _destination(name or address, port), sdk)
    if not recorder.block_network and recorder.mode is Mode.LIVE:
        return
    who = _opener.caller()
    if _is_loopback(address) and _is_jupyter(who):
        return
    origin, client = who.origin, who.client
    destination = _destination(name or address, port)
    if not recorder.block_network:
        recorder.log_event("network", destination, "unrecorded", origin=origin, client=client)
        return
    recorder.log_event("network", destination, "blocked", error="NetworkBlockedError", origin=origin, client=client)
    host = name or address
    raise NetworkBlockedError(
        f"notebook-recorder blocked a network connection to {destination}, opened by {who.described()} and not "
        f"through a recorded call, because block_network is on ({recorder.mode.value} mode): nothing was "
        f"sent. Such a call is not recorded and would not replay. To allow this host, add it: "
        f'nr.recording(..., block_network=True, allow_hosts=["{host}"]) or %apirec ... --block-network '
        f"--allow-host {host} (--allow-host localhost allows loopback); or drop block_network.",
        destination=destination,
        origin=origin,
    )


def _lookup(recorder: _recorder.Recorder, host: Any) -> None:
    """A DNS lookup, refused under ``block_network`` when the name is not allowed. A literal
    address is no lookup, and a hooked call's own lookups never get here."""
    if not recorder.block_network or host is None:
        return
    name = _text(host) if isinstance(host, bytes) else str(host)
    if _is_address(name) or _is_local_name(name) or _allowed(recorder.allow_hosts, name, name):
        return
    who = _opener.caller()
    if _is_jupyter(who):
        return
    origin = who.origin
    recorder.log_event("network", name, "blocked", error="NetworkBlockedError", origin=origin, client=who.client)
    raise NetworkBlockedError(
        f"notebook-recorder blocked a DNS lookup of {name}, made by {who.described()} and not through a "
        f"recorded call, because block_network is on ({recorder.mode.value} mode): nothing was sent. To "
        f'allow this host, add it: nr.recording(..., block_network=True, allow_hosts=["{name}"]) or '
        f"--allow-host {name}; or drop block_network.",
        destination=name,
        origin=origin,
    )


def _text(host: bytes) -> str:
    """A host name given as bytes, as text (the ``idna`` codec has no ``replace`` handler)."""
    try:
        return host.decode("idna")
    except UnicodeError:
        return host.decode("ascii", "replace")


def _is_local_name(name: str) -> bool:
    """``localhost`` and its subdomains never leave the machine: the connection is judged instead."""
    name = name.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


def _is_address(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# 4: the backstop: a hooked SDK's own code sends nothing in replay
# ---------------------------------------------------------------------------------------------


def _sdk_frame() -> tuple[str, str] | None:
    """The hooked SDK package on the stack, and the ``file:line`` of its innermost frame, if any."""
    if not hooked_packages:
        return None
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        package = hooked_package(str(frame.f_globals.get("__name__") or ""))
        if package is not None:
            return package, f"{_calllog.display_path(frame.f_code.co_filename)}:{frame.f_lineno}"
        frame = frame.f_back
    return None


def _refuse_sdk(recorder: _recorder.Recorder, destination: str, sdk: tuple[str, str]) -> None:
    package, where = sdk
    version = getattr(sys.modules.get(package), "__version__", "")
    origin, _ = _origin()
    recorder.log_event("network", destination, "blocked", error="NetworkBlockedError", origin=origin or where)
    raise NetworkBlockedError(
        f"notebook-recorder refused a network connection to {destination} that the {package} SDK "
        f"{version} opened at {where} (called from {origin or 'unknown code'}) in replay mode: nothing was sent. "
        f"This call path of {package} {version} goes around notebook-recorder's hook, so it has no recording, "
        'and replay never reaches the network. Run this part live (nr.recording("live") or a %%apirec live '
        "cell), and report the SDK version to notebook-recorder.",
        destination=destination,
        origin=origin or where,
    )


# ---------------------------------------------------------------------------------------------
# 5: proxies
# ---------------------------------------------------------------------------------------------

# Sockets connected to a proxy, judged at their first send by the destination it names.
_via_proxy: weakref.WeakKeyDictionary[Any, _recorder.Recorder] = weakref.WeakKeyDictionary()
_proxy_cache: list[Any] = [None, frozenset()]  # (the environment's proxy settings, their (host, port))


def _is_proxy(address: str, port: Any) -> bool:
    settings = tuple(os.environ.get(name) for name in _PROXY_VARIABLES)
    if not any(settings):
        return False
    if _proxy_cache[0] != settings:
        _proxy_cache[:] = [settings, _proxy_endpoints(settings)]
    endpoints: frozenset[tuple[str, int]] = _proxy_cache[1]
    name = _names.get(address, address)
    return (address, port) in endpoints or (name.lower(), port) in endpoints


_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def _proxy_endpoints(settings: tuple[str | None, ...]) -> frozenset[tuple[str, int]]:
    from urllib.parse import urlsplit

    found = set()
    for value in settings:
        if not value:
            continue
        parts = urlsplit(value if "://" in value else f"http://{value}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            continue
        if parts.hostname:
            found.add((parts.hostname.lower(), port))
    return frozenset(found)


_TARGET = re.compile(
    rb"^(?:CONNECT ([^\s/:]+|\[[^\]\s]+\]):(\d+)|[A-Z]+ [a-z][a-z0-9+.-]*://([^\s/:?#]+|\[[^\]\s]+\])(?::(\d+))?)"
)


def _proxy_target(data: Any) -> tuple[str, int] | None:
    """The destination that a request to a proxy names: ``CONNECT host:port`` or an absolute URL."""
    try:
        head = bytes(data[:512])
    except (TypeError, ValueError, BufferError):
        return None
    match = _TARGET.match(head)
    if match is None:
        return None
    host = _text(match.group(1) or match.group(3)).strip("[]")
    port = match.group(2) or match.group(4)
    default = 443 if head.startswith(b"CONNECT") or head.split(b"://", 1)[0].endswith(b"https") else 80
    return host, int(port) if port else default


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


# Jupyter's own machinery: its loopback connections are not the notebook's traffic.
_JUPYTER = frozenset(
    {"ipykernel", "debugpy", "_pydevd_bundle", "pydevd", "zmq", "pyzmq", "tornado", "jupyter_client", "jupyter-client"}
)


def _origin() -> tuple[str | None, str]:
    """``file:line`` and top-level module of the code that opened a connection (:mod:`._opener`)."""
    who = _opener.caller(2)
    return who.origin, who.module


def _is_jupyter(who: _opener.Opener) -> bool:
    return who.module in _JUPYTER or who.library in _JUPYTER


# ---------------------------------------------------------------------------------------------
# 4: host names
# ---------------------------------------------------------------------------------------------

_real_getaddrinfo = socket.getaddrinfo
_names: dict[str, str] = {}  # address -> the name it was looked up for


def _getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    results = _real_getaddrinfo(host, port, *args, **kwargs)
    if isinstance(host, bytes):
        host = _text(host)
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
_placeholder_guarded = False
_sends_guarded = False


def guard_placeholder() -> None:
    """Refuse to send the placeholder key from now on, for the life of the process. Called
    whenever the placeholder is handed to a client (or, by ``nr.serve``, to the processes it starts)."""
    global _placeholder_guarded
    _placeholder_guarded = True
    _guard_sends()


def _guard_sends() -> None:
    """Wrap the Python-level send paths, once; they stay for the life of the process. Each send
    is checked for the placeholder key (once it has been set) and, while a recording context is
    open, against the backstop and the proxy rule (:func:`_judge_send`)."""
    global _sends_guarded
    with _send_lock:
        if _sends_guarded:
            return
        import ssl

        for cls, names, judged in (
            (socket.socket, ("send", "sendall", "sendto"), True),
            (ssl.SSLSocket, ("send", "sendall"), True),
            (ssl.SSLObject, ("write",), False),  # no socket of its own: the one under it is judged
        ):
            for name in names:
                setattr(cls, name, _refusing(getattr(cls, name), judged))
        socket.socket.sendmsg = _refusing_sendmsg(socket.socket.sendmsg)  # type: ignore[method-assign]
        _sends_guarded = True


_send_lock = threading.Lock()


def _judge_send(sock: Any, data: Any) -> None:
    """A send while a recording context is open, outside a hooked call: a first request through
    a proxy is judged by the destination it names, and in ``replay`` a hooked SDK's own code sends
    nothing (a keep-alive connection opened earlier included)."""
    if _via_proxy:
        recorder = _via_proxy.pop(sock, None)
        target = _proxy_target(data) if recorder is not None else None
        if recorder is not None and target is not None:
            _connection(recorder, *target)
            return
    if not hooked_packages or getattr(sock, "family", None) not in _INET:  # not asyncio's self-pipe
        return
    recorder = _session.active()
    if recorder is None or recorder.mode is not Mode.REPLAY:
        return
    sdk = _sdk_frame()
    if sdk is None:
        return
    try:
        peer = sock.getpeername()
        address, port = str(peer[0]), peer[1]
    except (OSError, AttributeError, TypeError, IndexError, ValueError):  # not connected: sendto
        _refuse_sdk(recorder, "the network", sdk)
        return
    name = _names.get(address)
    if not _allowed(recorder.allow_hosts, address, name):
        _refuse_sdk(recorder, _destination(name or address, port), sdk)


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


def _refusing(send: Callable[..., Any], judged: bool) -> Callable[..., Any]:
    def guarded(self: Any, data: Any, *args: Any, **kwargs: Any) -> Any:
        if _placeholder_guarded and _holds_placeholder(data):
            _refuse(self)
        if judged and _armed and not _sdk_call.get():
            _judge_send(self, data)
        collect = _collect.get()
        if collect is not None:
            _collect_sent(collect, data)
        return send(self, data, *args, **kwargs)

    guarded.__name__ = getattr(send, "__name__", "send")
    guarded.__doc__ = getattr(send, "__doc__", None)
    guarded.__wrapped__ = send  # type: ignore[attr-defined]
    return guarded


def _refusing_sendmsg(sendmsg: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(self: Any, buffers: Any, *args: Any, **kwargs: Any) -> Any:
        buffers = list(buffers)
        if _placeholder_guarded and any(_holds_placeholder(buffer) for buffer in buffers):
            _refuse(self)
        if _armed and not _sdk_call.get() and buffers:
            _judge_send(self, buffers[0])
        collect = _collect.get()
        if collect is not None and buffers:
            _collect_sent(collect, buffers[0])
        return sendmsg(self, buffers, *args, **kwargs)

    guarded.__name__ = "sendmsg"
    guarded.__wrapped__ = sendmsg  # type: ignore[attr-defined]
    return guarded


def _collect_sent(collect: Callable[[tuple[str, ...]], None], data: Any) -> None:
    try:
        head = bytes(data[:65536])
    except (TypeError, ValueError, BufferError):
        return
    secrets = sent_bytes_secrets(head)
    if secrets:
        collect(secrets)


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
        f"(sent by {origin or 'unknown code'}, outside a recorded call): nothing was sent. A client built "
        "without a key while replaying holds the placeholder only so that it could be built; it is not a "
        "key. Give the client a real key (its api_key= argument or its environment variable) and build it "
        "again to make this call live.",
        destination=destination,
        origin=origin,
    )
