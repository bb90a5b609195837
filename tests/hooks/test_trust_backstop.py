"""The guarantees hold on tomorrow's SDK release: backstops that no new call path routes around.

The SDK hooks are the fast path. A new SDK release can add a call path they do not know (openai
3.63 opened its realtime websockets through a helper of its own). These tests make such a path:
code that runs as a module *inside* the SDK's package (``openai._nr_unpatched_path``), which the
hooks have never seen, and that opens connections or sends requests by itself. In ``replay``
nothing it does reaches the network, a keep-alive connection opened before the recording context
included. Proxies are judged by the destination a request names; ``block_network`` refuses
datagrams and name lookups too.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import socket
import threading
import types
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from test_trust_network import Listener, listener, network_calls  # noqa: F401  (a fixture)

import notebook_recorder as nr

# What a future SDK release might do: its own connections, outside the SDK's ``request``.
UNPATCHED_PATH = """
import socket

import httpx2


def raw_connection(host, port):
    sock = socket.create_connection((host, port), timeout=5)
    sock.sendall(b"GET / HTTP/1.1\\r\\nHost: x\\r\\nAuthorization: Bearer sk-unpatched-path-key\\r\\n\\r\\n")
    return sock


def send(client, url):
    return client.post(url, json={"model": "gpt-x"}, headers={"Authorization": "Bearer sk-unpatched-path-key"})


async def asend(url):
    async with httpx2.AsyncClient() as client:
        return await client.post(url, json={"model": "gpt-x"})
"""


def inside_sdk(package: str) -> Any:
    """A module that runs as part of ``package`` (``__name__`` and file inside it), unknown to the hooks."""
    sdk = importlib.import_module(package)
    name = f"{package}._nr_unpatched_path"
    module = types.ModuleType(name)
    module.__file__ = os.path.join(os.path.dirname(sdk.__file__ or ""), "_nr_unpatched_path.py")
    exec(compile(UNPATCHED_PATH, module.__file__, "exec"), module.__dict__)
    return module


class _KeepAlive(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # connections stay open between requests

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests += 1  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def keep_alive() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KeepAlive)
    server.requests = 0  # type: ignore[attr-defined]
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _url(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/v1/chat/completions"


# cerebras-cloud-sdk: a Stainless SDK in a nested package, hooked by the generic detection.
@pytest.fixture(params=["openai", "anthropic", "cerebras.cloud.sdk"])
def sdk(request: pytest.FixtureRequest) -> str:
    importlib.import_module(request.param)
    return str(request.param)


def test_a_connection_from_an_unknown_sdk_path_is_refused_in_replay(
    listener: Listener,  # noqa: F811
    tmp_path: Path,
    sdk: str,
) -> None:
    path = inside_sdk(sdk)
    with nr.recording("replay", dir=tmp_path), pytest.raises(nr.NetworkBlockedError) as refused:
        path.raw_connection("127.0.0.1", listener.port)
    listener.settle()
    assert listener.connections == 0 and listener.received == b""
    message = str(refused.value)
    assert f"the {sdk} SDK" in message and "replay mode: nothing was sent" in message
    assert "_nr_unpatched_path.py" in message  # where in the SDK the connection was opened
    assert importlib.import_module(sdk).__version__ in message  # the version that went around the hook
    assert [call.outcome for call in network_calls()] == ["blocked"]


def test_an_http_request_from_an_unknown_sdk_path_is_refused_in_replay(
    keep_alive: ThreadingHTTPServer, tmp_path: Path
) -> None:
    httpx2 = pytest.importorskip("httpx2")
    path = inside_sdk("openai")
    with nr.recording("replay", dir=tmp_path), httpx2.Client() as client:
        with pytest.raises(nr.NetworkBlockedError):
            path.send(client, _url(keep_alive))
    assert keep_alive.requests == 0  # type: ignore[attr-defined]


def test_an_async_request_from_an_unknown_sdk_path_is_refused_in_replay(
    keep_alive: ThreadingHTTPServer, tmp_path: Path
) -> None:
    # anyio connects in a task of its own (happy eyeballs), without the SDK's frames on the stack
    # (the connection is reported as unrecorded), so it is refused at its first send, inside
    # asyncio's transport, which turns any error there into the HTTP library's own
    # (httpx2.ReadError): the refusal is in nr.calls(), and nothing was sent.
    httpx2 = pytest.importorskip("httpx2")
    path = inside_sdk("openai")
    with nr.recording("replay", dir=tmp_path), pytest.raises((nr.NetworkBlockedError, httpx2.HTTPError)):
        asyncio.run(path.asend(_url(keep_alive)))
    assert keep_alive.requests == 0  # type: ignore[attr-defined]
    assert ("blocked", "NetworkBlockedError") in {(call.outcome, call.error) for call in network_calls()}


def test_a_keep_alive_connection_opened_before_replay_sends_nothing(
    keep_alive: ThreadingHTTPServer, tmp_path: Path
) -> None:
    # The connection is opened live, before any recording context; in replay the same pooled
    # connection is reused, so no socket.connect happens: the send itself is refused.
    httpx2 = pytest.importorskip("httpx2")
    path = inside_sdk("openai")
    with httpx2.Client() as client:
        with nr.recording("live", dir=tmp_path):  # arms the guard; live lets everything through
            assert path.send(client, _url(keep_alive)).status_code == 200
        assert keep_alive.requests == 1  # type: ignore[attr-defined]
        with nr.recording("replay", dir=tmp_path), pytest.raises(nr.NetworkBlockedError):
            path.send(client, _url(keep_alive))
        assert keep_alive.requests == 1  # type: ignore[attr-defined]
        assert path.send(client, _url(keep_alive)).status_code == 200  # after replay: live again
    assert keep_alive.requests == 2  # type: ignore[attr-defined]


def test_the_user_s_own_connections_in_replay_are_reported_not_refused(
    listener: Listener,  # noqa: F811
    tmp_path: Path,
) -> None:
    # Code outside the SDKs is the user's business: reported as unrecorded, as before.
    with nr.recording("replay", dir=tmp_path):
        assert urllib.request.urlopen(f"http://127.0.0.1:{listener.port}/", timeout=5).read() == b"ok"
    assert [call.outcome for call in network_calls()] == ["unrecorded"]


@pytest.mark.parametrize("mode", ["live", "record"])
def test_unknown_sdk_paths_go_through_where_the_network_is_allowed(
    listener: Listener,  # noqa: F811
    tmp_path: Path,
    mode: str,
) -> None:
    path = inside_sdk("openai")
    with nr.recording(mode, dir=tmp_path):
        path.raw_connection("127.0.0.1", listener.port).close()
    listener.settle()
    assert listener.connections == 1


def test_an_allowed_host_stays_allowed_for_sdk_code(listener: Listener, tmp_path: Path) -> None:  # noqa: F811
    path = inside_sdk("openai")
    with nr.recording("replay", dir=tmp_path, allow_hosts=["localhost"]):
        path.raw_connection("127.0.0.1", listener.port).close()
    listener.settle()
    assert listener.connections == 1


# ---------------------------------------------------------------------------------------------
# Proxies: judged by the real destination
# ---------------------------------------------------------------------------------------------


def test_a_request_through_a_loopback_proxy_is_judged_by_its_destination(
    listener: Listener,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{listener.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler())
    with nr.recording("replay", dir=tmp_path, block_network=True, allow_hosts=["localhost"]):
        with pytest.raises(nr.NetworkBlockedError, match=r"api\.example\.com:80"):
            opener.open("http://api.example.com/v1/models", timeout=5)
    listener.settle()
    assert listener.received == b""  # the proxy got a connection, and not one byte
    [call] = network_calls()
    assert call.endpoint == "api.example.com:80" and call.outcome == "blocked"


def test_an_allowed_destination_through_a_proxy_passes(
    listener: Listener,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{listener.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler())
    with nr.recording("replay", dir=tmp_path, block_network=True, allow_hosts=["api.example.com"]):
        assert opener.open("http://api.example.com/", timeout=5).read() == b"ok"
    assert network_calls() == []


# ---------------------------------------------------------------------------------------------
# block_network: datagrams and name lookups
# ---------------------------------------------------------------------------------------------


def test_block_network_refuses_a_datagram(tmp_path: Path) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(0.3)
    port = receiver.getsockname()[1]
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with nr.recording("replay", dir=tmp_path, block_network=True):
            with pytest.raises(nr.NetworkBlockedError, match=f"127.0.0.1:{port}"):
                sender.sendto(b"metrics", ("127.0.0.1", port))
        with pytest.raises(TimeoutError):
            receiver.recv(64)
        with nr.recording("replay", dir=tmp_path, block_network=True, allow_hosts=["localhost"]):
            sender.sendto(b"allowed", ("127.0.0.1", port))
        assert receiver.recv(64) == b"allowed"
    finally:
        sender.close()
        receiver.close()


def test_block_network_refuses_a_name_lookup(tmp_path: Path) -> None:
    with nr.recording("replay", dir=tmp_path, block_network=True):
        with pytest.raises(nr.NetworkBlockedError, match=r"DNS lookup of telemetry\.example\.invalid"):
            socket.getaddrinfo("telemetry.example.invalid", 443)
        socket.getaddrinfo("127.0.0.1", 80)  # a literal address is no lookup
        socket.getaddrinfo("localhost", 80)  # nor is localhost: its connection is judged
    with nr.recording("replay", dir=tmp_path):  # without block_network lookups are left alone
        with pytest.raises(socket.gaierror):
            socket.getaddrinfo("telemetry.example.invalid", 443)
