"""Replay sends nothing, on every path; traffic that bypasses the SDK is visible and can be blocked.

- The realtime API (websockets) is not recorded: under ``replay`` / ``record-if-missing`` it raises
  ``NotRecordableError`` and a loopback listener standing in for the API sees no connection; under
  ``record`` it warns once and connects.
- A connection opened by anything but a hooked call, inside a recording context, is in
  ``nr.calls()`` (``kind="network"``, destination, the code that opened it), in the cell note and
  in ``%apirec status``; with ``block_network`` it raises before the listener gets a connection.
- The replay placeholder key never reaches a socket, whoever sends it.
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import sys
import threading
import time
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from wire_server import TEST_API_KEY, WireServer

import notebook_recorder as nr
from notebook_recorder.hooks._placeholder import REPLAY_KEY_PLACEHOLDER

HERE = Path(__file__).name


class Listener:
    """A loopback TCP listener on an ephemeral port that records every connection and its bytes.

    It answers each connection with an HTTP 200 (so ``urllib`` callers get a response) and then
    closes it; a websocket handshake against it fails, which is fine for these tests.
    """

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.port: int = self.sock.getsockname()[1]
        self.connections = 0
        self.received = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            conn.settimeout(0.5)
            try:
                data = conn.recv(65536)
                self.received += data
                if data.startswith((b"GET", b"POST")):
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            except OSError:
                pass
            finally:
                conn.close()

    def settle(self) -> None:
        """Give a connection in flight time to be accepted and read."""
        time.sleep(0.3)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    try:
        yield server
    finally:
        server.close()


def network_calls() -> list[nr.Call]:
    return [call for call in nr.calls() if call.kind == "network"]


def line_after() -> int:
    """The line number after the caller's line (where the connection is opened)."""
    frame = sys._getframe(1)
    return frame.f_lineno + 1


# ---------------------------------------------------------------------------------------------
# Realtime: not recorded, so never connected while replaying
# ---------------------------------------------------------------------------------------------


def _clients(listener: Listener) -> tuple[openai.OpenAI, openai.AsyncOpenAI]:
    urls = {
        "base_url": f"http://{listener.address}/v1",
        "websocket_base_url": f"ws://{listener.address}/v1",
        "api_key": "sk-realtime-secret",
        "max_retries": 0,
    }
    return openai.OpenAI(**urls), openai.AsyncOpenAI(**urls)


def _sync_connectors(client: openai.OpenAI) -> dict[str, Any]:
    return {
        "realtime.__enter__": lambda: client.realtime.connect(model="gpt-realtime").__enter__(),
        "realtime.enter": lambda: client.realtime.connect(model="gpt-realtime").enter(),
        "beta.realtime.enter": lambda: client.beta.realtime.connect(model="gpt-realtime").enter(),
    }


@pytest.mark.parametrize("mode", ["replay", "record-if-missing"])
def test_realtime_connect_raises_and_opens_no_connection(listener: Listener, tmp_path: Path, mode: str) -> None:
    pytest.importorskip("websockets")
    client, aclient = _clients(listener)

    async def async_connect() -> None:
        async with aclient.realtime.connect(model="gpt-realtime"):
            pass

    with nr.recording(mode, dir=tmp_path):
        for name, connect in _sync_connectors(client).items():
            with pytest.raises(nr.NotRecordableError, match="realtime API") as caught:
                connect()
            assert isinstance(caught.value, nr.RecordingError), name
            assert "no connection was opened" in str(caught.value)
        with pytest.raises(nr.NotRecordableError, match="realtime API"):
            asyncio.run(async_connect())
    listener.settle()
    assert listener.connections == 0
    assert b"sk-realtime-secret" not in listener.received
    realtime = [call for call in nr.calls() if call.kind == "realtime"]
    assert len(realtime) == 4 and {call.outcome for call in realtime} == {"error"}


def test_realtime_in_record_mode_warns_once_and_connects(listener: Listener, tmp_path: Path) -> None:
    pytest.importorskip("websockets")
    client, _ = _clients(listener)
    with nr.recording("record", dir=tmp_path, block_network=True):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(2):
                with pytest.raises(Exception) as failed:  # the listener is no websocket server
                    client.realtime.connect(model="gpt-realtime").enter()
                assert not isinstance(failed.value, nr.RecordingError)
    listener.settle()
    messages = [str(w.message) for w in caught if issubclass(w.category, nr.NotRecordedWarning)]
    assert len(messages) == 1 and "not recorded" in messages[0]
    assert listener.connections == 2
    assert network_calls() == []  # the SDK's own connection: neither reported nor blocked


def test_realtime_live_mode_and_no_recorder_are_left_alone(listener: Listener, tmp_path: Path) -> None:
    pytest.importorskip("websockets")
    client, _ = _clients(listener)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with nr.recording("live", dir=tmp_path), pytest.raises(Exception) as failed:
            client.realtime.connect(model="gpt-realtime").enter()
        assert not isinstance(failed.value, nr.RecordingError)
        with pytest.raises(Exception) as failed:
            client.realtime.connect(model="gpt-realtime").enter()
        assert not isinstance(failed.value, nr.RecordingError)
    listener.settle()
    assert listener.connections == 2
    assert not [w for w in caught if "notebook-recorder" in str(w.message)]


def test_websockets_of_other_code_are_not_refused(listener: Listener, tmp_path: Path) -> None:
    websockets_sync = pytest.importorskip("websockets.sync.client")
    with nr.recording("replay", dir=tmp_path):
        with pytest.raises(Exception) as failed:
            websockets_sync.connect(f"ws://{listener.address}/", open_timeout=2)
        assert not isinstance(failed.value, nr.RecordingError)
    listener.settle()
    assert listener.connections == 1
    assert [call.outcome for call in network_calls()] == ["unrecorded"]


# ---------------------------------------------------------------------------------------------
# Traffic that bypasses the SDK: reported
# ---------------------------------------------------------------------------------------------


def test_a_raw_socket_in_replay_is_reported_with_its_destination_and_caller(listener: Listener, tmp_path: Path) -> None:
    with nr.recording("replay", dir=tmp_path, scope="t"):
        line = line_after()
        socket.create_connection(("127.0.0.1", listener.port)).close()
    [call] = network_calls()
    assert call.endpoint == listener.address
    assert call.outcome == "unrecorded" and call.mode == "replay" and call.test_id == "t"
    assert call.origin is not None and call.origin.endswith(f"{HERE}:{line}")


def test_urllib_in_replay_is_reported_at_the_callers_line(listener: Listener, tmp_path: Path) -> None:
    with nr.recording("record-if-missing", dir=tmp_path):
        line = line_after()
        body = urllib.request.urlopen(f"http://localhost:{listener.port}/data", timeout=5).read()
    assert body == b"ok"
    [call] = network_calls()
    assert call.endpoint == f"localhost:{listener.port}"  # the name the code asked for
    assert call.origin is not None and call.origin.endswith(f"{HERE}:{line}")


def test_an_asyncio_connection_is_reported_at_the_coroutines_line(listener: Listener, tmp_path: Path) -> None:
    lines: list[int] = []

    async def fetch() -> None:
        lines.append(line_after())
        _, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.close()
        await writer.wait_closed()

    with nr.recording("replay", dir=tmp_path):
        asyncio.run(fetch())
    [call] = network_calls()
    assert call.origin is not None and call.origin.endswith(f"{HERE}:{lines[0]}")


def test_nothing_is_reported_outside_a_recording_or_in_live_mode(listener: Listener, tmp_path: Path) -> None:
    socket.create_connection(("127.0.0.1", listener.port)).close()
    with nr.recording("live", dir=tmp_path):
        socket.create_connection(("127.0.0.1", listener.port)).close()
    listener.settle()
    assert listener.connections == 2
    assert nr.calls() == []


async def test_sdk_calls_in_record_mode_are_not_reported_or_blocked(
    client: openai.OpenAI, async_client: openai.AsyncOpenAI, tmp_path: Path
) -> None:
    messages: Any = [{"role": "user", "content": "hi"}]
    with nr.recording("record", dir=tmp_path, block_network=True):
        client.chat.completions.create(model="gpt-4o", messages=messages)
        for _ in client.chat.completions.create(model="gpt-4o", messages=messages, stream=True):
            pass
        await async_client.chat.completions.create(model="gpt-4o", messages=messages)
        async for _ in await async_client.chat.completions.create(model="gpt-4o", messages=messages, stream=True):
            pass
    assert network_calls() == []
    assert [call.outcome for call in nr.calls()] == ["recorded"] * 4


async def test_sdk_calls_in_live_mode_under_block_network_pass(
    async_client: openai.AsyncOpenAI, tmp_path: Path
) -> None:
    with nr.recording("live", dir=tmp_path, block_network=True):
        await async_client.embeddings.create(model="text-embedding-3-small", input="x")
    assert network_calls() == []


# ---------------------------------------------------------------------------------------------
# Blocking
# ---------------------------------------------------------------------------------------------


def test_block_network_raises_before_the_listener_gets_anything(listener: Listener, tmp_path: Path) -> None:
    with nr.recording("replay", dir=tmp_path, block_network=True):
        line = line_after()
        with pytest.raises(nr.NetworkBlockedError) as blocked:
            socket.create_connection(("127.0.0.1", listener.port))
        with pytest.raises(nr.NetworkBlockedError):
            urllib.request.urlopen(f"http://127.0.0.1:{listener.port}/", timeout=5)
    listener.settle()
    assert listener.connections == 0 and listener.received == b""
    error = blocked.value
    assert isinstance(error, nr.RecordingError)
    assert error.destination == listener.address
    assert error.origin is not None and error.origin.endswith(f"{HERE}:{line + 1}")
    message = str(error)
    assert listener.address in message and "allow_hosts" in message and "--allow-host" in message
    assert [call.outcome for call in network_calls()] == ["blocked", "blocked"]


@pytest.mark.parametrize("allowed", [["127.0.0.1"], ["localhost"], "127.0.0.2, 127.0.0.1"])
def test_an_allowed_host_passes_and_is_not_reported(
    listener: Listener, tmp_path: Path, allowed: list[str] | str
) -> None:
    with nr.recording("replay", dir=tmp_path, block_network=True, allow_hosts=allowed):
        body = urllib.request.urlopen(f"http://127.0.0.1:{listener.port}/", timeout=5).read()
    assert body == b"ok"
    assert listener.connections == 1
    assert network_calls() == []


def test_an_allowed_name_passes(listener: Listener, tmp_path: Path) -> None:
    with nr.recording("replay", dir=tmp_path, block_network=True, allow_hosts=["LOCALHOST"]):
        assert urllib.request.urlopen(f"http://localhost:{listener.port}/", timeout=5).read() == b"ok"
    with nr.recording("replay", dir=tmp_path, block_network=True, allow_hosts=["example.org"]):
        with pytest.raises(nr.NetworkBlockedError, match=f"localhost:{listener.port}"):
            urllib.request.urlopen(f"http://localhost:{listener.port}/", timeout=5)


def test_start_takes_block_network(listener: Listener, tmp_path: Path) -> None:
    nr.start("replay", dir=tmp_path, block_network=True)
    with pytest.raises(nr.NetworkBlockedError):
        socket.create_connection(("127.0.0.1", listener.port))
    nr.stop()
    socket.create_connection(("127.0.0.1", listener.port)).close()  # stopped: nothing is blocked
    listener.settle()
    assert listener.connections == 1


# ---------------------------------------------------------------------------------------------
# The replay placeholder key never leaves the process
# ---------------------------------------------------------------------------------------------


def _send_with_the_clients_key(client: openai.OpenAI, port: int) -> None:
    """What a framework with its own HTTP client does: take the key of the client it was given and send it."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(
            "POST", "/v1/chat/completions", body=b"{}", headers={"Authorization": f"Bearer {client.api_key}"}
        )
        connection.getresponse().read()
    finally:
        connection.close()


def test_the_placeholder_key_is_never_sent(listener: Listener, tmp_path: Path) -> None:
    with nr.recording("replay", dir=tmp_path):
        client = openai.OpenAI()  # no OPENAI_API_KEY: it is built with the placeholder
        assert client.api_key == REPLAY_KEY_PLACEHOLDER
        with pytest.raises(nr.NetworkBlockedError, match="placeholder"):
            _send_with_the_clients_key(client, listener.port)
        with pytest.raises(nr.NetworkBlockedError):
            urllib.request.urlopen(
                urllib.request.Request(
                    f"http://127.0.0.1:{listener.port}/?key={REPLAY_KEY_PLACEHOLDER}", headers={"X-A": "b"}
                ),
                timeout=5,
            )
    listener.settle()
    assert REPLAY_KEY_PLACEHOLDER.encode() not in listener.received
    assert [call.outcome for call in network_calls()] == ["unrecorded", "blocked", "unrecorded", "blocked"]
    # Still refused after the recording ended: a client built during replay keeps the placeholder.
    with socket.create_connection(("127.0.0.1", listener.port)) as raw:
        with pytest.raises(nr.NetworkBlockedError):
            raw.sendall(b"Authorization: Bearer " + REPLAY_KEY_PLACEHOLDER.encode())
        raw.sendall(b"GET / HTTP/1.0\r\n\r\n")  # anything else goes through
    listener.settle()
    assert REPLAY_KEY_PLACEHOLDER.encode() not in listener.received
    assert b"GET / HTTP/1.0" in listener.received


# ---------------------------------------------------------------------------------------------
# The magic: --block-network, --allow-host, the note and the status table
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def ip(ip: InteractiveShell, tmp_path: Path) -> InteractiveShell:
    """The shared test shell (conftest), with a ``recs`` directory to record to."""
    (tmp_path / "recs").mkdir()
    return ip


def test_magic_block_network_flag(ip: InteractiveShell, listener: Listener, capsys: pytest.CaptureFixture[str]) -> None:
    ip.user_ns["port"] = listener.port
    connect = "import socket\nsocket.create_connection(('127.0.0.1', port)).close()"
    ip.run_cell("%apirec replay --dir recs --block-network", store_history=True).raise_error()
    result = ip.run_cell(connect, store_history=True)
    assert isinstance(result.error_in_exec, nr.NetworkBlockedError)
    ip.run_cell("%apirec", store_history=True).raise_error()
    assert "blocked unless a hook records the call (allowed: nothing)" in capsys.readouterr().out
    # A cell inside a blocking session blocks too; --allow-host opens one host.
    result = ip.run_cell(f"%%apirec replay\n{connect}", store_history=True)
    assert isinstance(result.error_in_exec, nr.NetworkBlockedError)
    ip.run_cell(f"%%apirec replay --allow-host 127.0.0.1\n{connect}", store_history=True).raise_error()
    ip.run_cell("%apirec replay --block-network --allow-host localhost", store_history=True).raise_error()
    ip.run_cell(connect, store_history=True).raise_error()
    listener.settle()
    assert listener.connections == 2
    # Without the flag, the connection goes through and the note says so.
    ip.run_cell("%apirec replay", store_history=True).raise_error()
    capsys.readouterr()
    ip.run_cell(connect, store_history=True).raise_error()
    note = capsys.readouterr().out
    assert note.startswith("apirec: 1 network connection not recorded: ")
    assert listener.address in note and f"{HERE}" not in note  # the cell's own file, not this one
    ip.run_cell("%apirec status", store_history=True).raise_error()
    status = capsys.readouterr().out
    assert "network" in status and listener.address in status and "unrecorded" in status
    assert "blocked" in status


def test_magic_flag_mistakes_and_help(ip: InteractiveShell) -> None:
    for line in ("status --block-network", "off --block-network", "--block-network", "replay --allow-host x"):
        result = ip.run_cell(f"%apirec {line}", store_history=True)
        assert isinstance(result.error_in_exec or result.error_before_exec, UsageError), line
    help_text = ip.find_line_magic("apirec").__doc__ or ""
    assert "--block-network" in help_text and "--allow-host HOST" in help_text
    assert "localhost" in help_text


def test_cell_note_lists_network_connections() -> None:
    from notebook_recorder.frontends._render import cell_note

    def call(outcome: str, kind: str = "network", endpoint: str = "api.example.com:443") -> nr.Call:
        return nr.Call(
            index=1, cell=1, kind=kind, endpoint=endpoint, model="", mode="replay", outcome=outcome,
            path=None if kind == "network" else "recs/a.json", key="", test_id=None, ms=0.0,
            streamed=False, error=None, origin="cell.py:3" if kind == "network" else None,
        )  # fmt: skip

    assert cell_note([call("unrecorded")]) == (
        "apirec: 1 network connection not recorded: api.example.com:443 (from cell.py:3)"
    )
    note = cell_note([call("replayed", kind="inference", endpoint="/v1/chat"), call("blocked"), call("blocked")])
    assert note == (
        "apirec: replayed 1 call from recs\napirec: 2 network connections blocked: api.example.com:443 (from cell.py:3)"
    )


def test_the_sdk_hook_still_records_through_a_wire_server_after_blocking(tmp_path: Path) -> None:
    """The guard leaves the SDK alone even when the SDK's host is not allowed."""
    with WireServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key=TEST_API_KEY, max_retries=0)
        with nr.recording("record", dir=tmp_path, block_network=True, allow_hosts=["example.org"]):
            client.models.list()
        with nr.recording("replay", dir=tmp_path, block_network=True):
            assert client.models.list().data
    assert [call.outcome for call in nr.calls()] == ["recorded", "replayed"]


def test_a_wrapped_tools_own_traffic_is_recorded_not_reported(listener: Listener, tmp_path: Path) -> None:
    @nr.tool
    def fetch(path: str) -> str:
        return urllib.request.urlopen(f"http://127.0.0.1:{listener.port}{path}", timeout=5).read().decode()

    with nr.recording("record", dir=tmp_path, block_network=True):
        assert fetch("/a") == "ok"
    with nr.recording("replay", dir=tmp_path, block_network=True):
        assert fetch("/a") == "ok"  # replayed: the tool does not run
    assert listener.connections == 1
    assert network_calls() == []
    assert [call.outcome for call in nr.calls()] == ["recorded", "replayed"]


@pytest.mark.frontend
@pytest.mark.timeout(90)
def test_in_a_real_kernel_only_the_notebooks_own_traffic_is_reported(listener: Listener, tmp_path: Path) -> None:
    import nbformat
    from kernel_notebooks import execute, notes, text
    from nbformat.v4 import new_code_cell, new_notebook

    (tmp_path / "recs").mkdir()
    fetch = f"import urllib.request\nurllib.request.urlopen('http://127.0.0.1:{listener.port}/', timeout=5).read()"
    cells = [
        "%load_ext notebook_recorder",
        "%apirec replay --dir recs --block-network",
        fetch,
        "x = 1\nprint(x)",
        "%apirec replay --dir recs",
        fetch,
        "import time\ntime.sleep(0.2)\nprint('idle')",
    ]
    notebook = tmp_path / "net.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell(source) for source in cells]), notebook)
    executed = execute(notebook).cells
    [error] = [output for output in executed[2].outputs if output.output_type == "error"]
    assert error.ename == "NetworkBlockedError" and listener.address in error.evalue
    assert text(executed[3]) == "1\n"  # the kernel's own machinery is never reported
    note = notes(executed[5])
    assert note.startswith(f"apirec: 1 network connection not recorded: {listener.address}")
    assert text(executed[6]) == "idle\n"
    listener.settle()
    assert listener.connections == 1
