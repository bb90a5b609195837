"""``notebook-recorder serve`` behind a corporate proxy: ``HTTPS_PROXY`` / ``HTTP_PROXY`` /
``ALL_PROXY`` / ``NO_PROXY`` honoured as httpx honours them, loopback never proxied.

Nothing leaves loopback: the upstream is a name under the reserved ``.test`` domain that only the
test's proxy (a real CONNECT and forward proxy on 127.0.0.1) knows, and it leads to the loopback
wire server; for ``https://`` through a TLS front with a certificate made for the test and trusted
through ``SSL_CERT_FILE``, as a proxy's inspection certificate is in companies.
"""

from __future__ import annotations

import base64
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from wire_server import TEST_API_KEY, WireServer

import notebook_recorder as nr
from notebook_recorder.frontends.serve._upstream import bypasses, environment_proxies

BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "What is the latest version of Python?"}]}
HOST = "api.openai.test"  # .test never resolves: only the test's proxy knows where it leads
PROXY_USER, PROXY_PASSWORD = "alice", "s3cret:pw"


# ---------------------------------------------------------------------------------------------
# A real proxy and a TLS front on 127.0.0.1
# ---------------------------------------------------------------------------------------------


def _pipe(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until either side closes."""

    def one_way(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    other = threading.Thread(target=one_way, args=(b, a), daemon=True)
    other.start()
    one_way(a, b)
    other.join(timeout=30)
    a.close()
    b.close()


class _Listener:
    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.sock.close()


class TlsFront(_Listener):
    """``HOST:443`` as the proxy reaches it: TLS with the test's certificate, then the wire server."""

    def __init__(self, cert: Path, key: Path, target: int) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.target = target
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        try:
            tls = self.context.wrap_socket(conn, server_side=True)
        except OSError:
            conn.close()
            return
        _pipe(tls, socket.create_connection(("127.0.0.1", self.target)))


class Proxy(_Listener):
    """An HTTP proxy: ``CONNECT`` tunnels and absolute-form requests, for the hosts in ``routes``
    only (anything else is refused, so nothing can leave loopback); it can require credentials."""

    def __init__(self, routes: dict[tuple[str, int], int], auth: str | None = None) -> None:
        self.routes = routes
        self.auth = auth
        self.heads: list[str] = []
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            piece = conn.recv(65536)
            if not piece:
                conn.close()
                return
            data += piece
        head, rest = data.split(b"\r\n\r\n", 1)
        text = head.decode("latin-1")
        self.heads.append(text)
        line, *fields = text.split("\r\n")
        method, target, _ = line.split(" ")
        headers = {k.strip().lower(): v.strip() for k, _, v in (f.partition(":") for f in fields)}
        if self.auth is not None and headers.get("proxy-authorization") != self.auth:
            conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            conn.close()
            return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            where = self.routes.get((host, int(port)))
            if where is None:
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                conn.close()
                return
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            _pipe(conn, socket.create_connection(("127.0.0.1", where)))
            return
        # Absolute form: http://host[:port]/path -> the origin's path, one request per connection.
        authority, _, path = target.removeprefix("http://").partition("/")
        host, _, port = authority.partition(":")
        where = self.routes.get((host, int(port or 80)))
        if where is None:
            conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            conn.close()
            return
        kept = [f for f in fields if not f.lower().startswith(("connection:", "proxy-authorization:"))]
        forwarded = "\r\n".join([f"{method} /{path} HTTP/1.1", *kept, "Connection: close", "", ""])
        upstream = socket.create_connection(("127.0.0.1", where))
        upstream.sendall(forwarded.encode("latin-1") + rest)
        _pipe(conn, upstream)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for ``HOST`` (what a proxy's inspection CA would be)."""
    if shutil.which("openssl") is None:
        pytest.fail("the proxy tests need the openssl command to make a certificate")
    where = tmp_path_factory.mktemp("cert")
    cert, key = where / "cert.pem", where / "key.pem"
    names = ["-subj", f"/CN={HOST}", "-addext", f"subjectAltName=DNS:{HOST}"]
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            *names,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return cert, key


@pytest.fixture
def clean_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for scheme in ("http", "https", "all", "no"):
        monkeypatch.delenv(f"{scheme.upper()}_PROXY", raising=False)
        monkeypatch.delenv(f"{scheme}_proxy", raising=False)
    return monkeypatch


@pytest.fixture
def wire() -> Iterator[WireServer]:
    with WireServer() as server:
        yield server


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _client(base_url: str) -> openai.OpenAI:
    """The openai SDK as a plain HTTP client of the server, which it reaches directly (httpx
    would send even a loopback request through the test's proxy variables)."""
    http = openai.DefaultHttpxClient(trust_env=False)
    return openai.OpenAI(base_url=base_url, api_key=TEST_API_KEY, max_retries=0, http_client=http)


def _calls(base_url: str) -> tuple[str, str]:
    """A plain and a streamed chat completion through the openai SDK, a plain HTTP client here."""
    with _client(base_url) as client:
        plain = client.chat.completions.create(**BODY)  # type: ignore[call-overload]
        streamed = "".join(
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(**BODY, stream=True)  # type: ignore[call-overload]
            if c.choices
        )
    return plain.choices[0].message.content, streamed


# ---------------------------------------------------------------------------------------------
# Through the proxy
# ---------------------------------------------------------------------------------------------


def test_an_https_upstream_is_recorded_through_the_https_proxy_tunnel(
    clean_proxy_env: pytest.MonkeyPatch, certificate: tuple[Path, Path], wire: WireServer, tmp_path: Path
) -> None:
    cert, key = certificate
    front = TlsFront(cert, key, wire.port)
    proxy = Proxy({(HOST, 443): front.port}, auth=_basic(PROXY_USER, PROXY_PASSWORD))
    try:
        password = PROXY_PASSWORD.replace(":", "%3A")
        clean_proxy_env.setenv("HTTPS_PROXY", f"http://{PROXY_USER}:{password}@127.0.0.1:{proxy.port}")
        clean_proxy_env.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # not for https: never used
        clean_proxy_env.setenv("SSL_CERT_FILE", str(cert))  # the proxy's CA, as companies install it
        with nr.serve("record", tmp_path, upstream=f"https://{HOST}", set_env=False) as server:
            recorded = _calls(server.url + "/v1")
            recorded_again = _calls(server.url + "/v1")
    finally:
        proxy.close()
        front.close()
    assert recorded[0] and recorded[1] == recorded[0] == recorded_again[0]
    assert [head.split("\r\n")[0] for head in proxy.heads] == [f"CONNECT {HOST}:443 HTTP/1.1"]  # one, kept
    assert f"Proxy-Authorization: {_basic(PROXY_USER, PROXY_PASSWORD)}" in proxy.heads[0]
    assert len(wire.requests) == 4 and wire.requests[0].headers["authorization"] == f"Bearer {TEST_API_KEY}"
    written = "".join(p.read_text() for p in tmp_path.glob("*.json"))
    assert len(list(tmp_path.glob("*.json"))) == 4 and TEST_API_KEY not in written and PROXY_PASSWORD not in written
    with nr.serve("replay", tmp_path, set_env=False) as server:  # and they replay, with no proxy at all
        assert _calls(server.url + "/v1") == recorded


def test_an_http_upstream_is_sent_to_the_http_proxy_in_absolute_form(
    clean_proxy_env: pytest.MonkeyPatch, wire: WireServer, tmp_path: Path
) -> None:
    proxy = Proxy({(HOST, 8080): wire.port})
    try:
        clean_proxy_env.setenv("all_proxy", f"127.0.0.1:{proxy.port}")  # lower case, no scheme: http://
        with nr.serve("record", tmp_path, upstream=f"http://{HOST}:8080/v1", set_env=False) as server:
            recorded = _calls(server.url + "/v1")
    finally:
        proxy.close()
    assert recorded[0] and recorded[1] == recorded[0]
    lines = [head.split("\r\n")[0] for head in proxy.heads]
    assert lines == [f"POST http://{HOST}:8080/v1/chat/completions HTTP/1.1"] * 2
    assert len(list(tmp_path.glob("*.json"))) == 2


def test_loopback_and_no_proxy_upstreams_go_direct(
    clean_proxy_env: pytest.MonkeyPatch, wire: WireServer, tmp_path: Path
) -> None:
    proxy = Proxy({})
    try:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
            clean_proxy_env.setenv(name, f"http://127.0.0.1:{proxy.port}")
        with nr.serve("record", tmp_path, upstream=wire.base_url, set_env=False) as server:  # 127.0.0.1
            assert _calls(server.url + "/v1")[0]
        local = wire.base_url.replace("127.0.0.1", "localhost")
        clean_proxy_env.setenv("NO_PROXY", "example.com")
        with nr.serve("live", tmp_path, upstream=local, set_env=False) as server:
            assert _calls(server.url + "/v1")[0]
    finally:
        proxy.close()
    assert proxy.connections == 0 and len(wire.requests) == 4


def test_a_proxy_that_cannot_be_used_is_a_clear_error(
    clean_proxy_env: pytest.MonkeyPatch, wire: WireServer, tmp_path: Path
) -> None:
    proxy = Proxy({(HOST, 443): wire.port}, auth=_basic(PROXY_USER, PROXY_PASSWORD))
    try:
        clean_proxy_env.setenv("HTTPS_PROXY", "socks5://user:pw@127.0.0.1:1080")
        with nr.serve("record", tmp_path, upstream=f"https://{HOST}", set_env=False) as server:
            with _client(server.url + "/v1") as client:
                with pytest.raises(openai.APIStatusError) as unsupported:
                    client.chat.completions.create(**BODY)  # type: ignore[call-overload]
        clean_proxy_env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")  # without its credentials
        with nr.serve("record", tmp_path, upstream=f"https://{HOST}", set_env=False) as server:
            with _client(server.url + "/v1") as client:
                with pytest.raises(openai.APIStatusError) as refused:
                    client.chat.completions.create(**BODY)  # type: ignore[call-overload]
    finally:
        proxy.close()
    assert unsupported.value.status_code == 502
    message = str(unsupported.value.message)
    assert "HTTPS_PROXY=socks5://127.0.0.1:1080 cannot be used" in message and "http:// proxies only" in message
    assert "pw" not in message.replace("proxies", "")  # the proxy's credentials are not shown
    assert refused.value.status_code == 502
    assert (
        "refused CONNECT api.openai.test:443" in refused.value.message and "wants credentials" in refused.value.message
    )
    assert wire.requests == [] and list(tmp_path.glob("*.json")) == []


# ---------------------------------------------------------------------------------------------
# NO_PROXY, as httpx reads it
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "entries", "direct"),
    [
        ("api.openai.com", 443, (), False),
        ("api.openai.com", 443, ("*",), True),
        ("api.openai.com", 443, ("openai.com",), True),  # the domain and its subdomains
        ("openai.com", 443, ("openai.com",), True),
        ("notopenai.com", 443, ("openai.com",), False),
        ("api.openai.com", 443, (".openai.com",), True),  # subdomains only
        ("openai.com", 443, (".openai.com",), False),
        ("api.openai.com", 443, ("*.openai.com",), True),
        ("API.OpenAI.com", 443, ("api.openai.com",), True),
        ("api.openai.com", 443, ("api.openai.com:443",), True),
        ("api.openai.com", 443, ("api.openai.com:8443",), False),
        ("api.openai.com", 443, ("https://api.openai.com",), True),
        ("10.1.2.3", 80, ("10.0.0.0/8",), True),
        ("11.1.2.3", 80, ("10.0.0.0/8",), False),
        ("10.1.2.3", 80, ("10.1.2.3",), True),
        ("fd00::1", 80, ("fd00::/8",), True),
        ("fd00::1", 80, ("[fd00::1]:80",), True),
        ("127.0.0.1", 80, (), True),  # loopback: never proxied
        ("127.8.9.10", 80, (), True),
        ("::1", 80, (), True),
        ("localhost", 80, (), True),
        ("service.localhost", 80, (), True),
    ],
)
def test_no_proxy_entries(host: str, port: int, entries: tuple[str, ...], direct: bool) -> None:
    assert bypasses(host, port, entries) is direct


def test_proxies_from_the_environment() -> None:
    found = environment_proxies(
        {"HTTPS_PROXY": "http://u:p%40ss@proxy.corp:3128", "http_proxy": "proxy.corp:80", "NO_PROXY": "internal"}
    )
    https, http = found.by_scheme["https"], found.by_scheme["http"]
    assert (https.host, https.port, https.variable) == ("proxy.corp", 3128, "HTTPS_PROXY")
    assert https.authorization == _basic("u", "p@ss") and "p@ss" not in https.shown
    assert (http.host, http.port, http.authorization, http.variable) == ("proxy.corp", 80, None, "http_proxy")
    assert found.for_url("https", "api.openai.com", 443) is https
    assert found.for_url("https", "svc.internal", 443) is None
    assert found.for_url("https", "127.0.0.1", 443) is None
    assert environment_proxies({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "a, *"}).by_scheme == {}
    everything = environment_proxies({"ALL_PROXY": "http://p:1", "HTTP_PROXY": "http://q:2"})
    assert everything.by_scheme["http"].host == "q" and everything.by_scheme["https"].host == "p"
    socks = environment_proxies({"HTTPS_PROXY": "socks5h://p:1080"}).by_scheme["https"]
    assert socks.problem is not None and "HTTPS_PROXY=socks5h://p:1080 cannot be used" in socks.problem
