"""Reports name the client (issue 21, item 11): the missing-recording error, the call log, the
status table, the cell notes and the block messages say which library made a request or opened
a connection, and through which HTTP library ("google-genai via httpx2"), with the user's line;
never "outside the openai SDK". Real clients over real HTTP to ``HttpWireServer`` on 127.0.0.1.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from http_wire_server import HttpWireServer
from IPython.core.interactiveshell import InteractiveShell

import notebook_recorder as nr
from notebook_recorder.frontends._render import CallTable, cell_note
from notebook_recorder.hooks import _opener

HERE = Path(__file__).name


def gemini(url: str) -> Any:
    from google import genai
    from google.genai import types

    client = genai.Client(api_key="test-key-gemini-0000000000", http_options=types.HttpOptions(base_url=url))
    return client.models.generate_content(model="gemini-2.0-flash", contents="Capital of France?")  # the call


def ollama_chat(url: str) -> Any:
    import ollama

    client = ollama.Client(host=url)
    return client.chat(model="llama3.2", messages=[{"role": "user", "content": "hi"}], stream=False)  # the call


def plain_requests(url: str) -> Any:
    import requests

    return requests.get(url + "/search", params={"q": "paris"}).json()  # the call


def plain_httpx(url: str) -> Any:
    import httpx

    return httpx.get(url + "/search", params={"q": "paris"}).json()  # the call


CLIENTS: dict[str, Callable[[str], Any]] = {
    "google-genai via httpx2": gemini,
    "ollama via httpx": ollama_chat,
    "requests": plain_requests,
    "httpx": plain_httpx,
}


def the_call(work: Callable[[str], Any]) -> str:
    """``test_http_reports.py:LINE`` of the line of ``work`` that makes the request."""
    lines, first = inspect.getsourcelines(work)
    (offset,) = [i for i, line in enumerate(lines) if line.rstrip().endswith("# the call")]
    return f"{HERE}:{first + offset}"


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_a_missing_call_names_its_client(client: str, tmp_path: Path) -> None:
    with HttpWireServer() as server, nr.recording("replay", dir=tmp_path):
        with pytest.raises(nr.RecordingNotFoundError) as caught:
            CLIENTS[client](server.url)
        assert server.requests == 0
    assert f"\nThe request was made by {client}.\n" in str(caught.value)
    (call,) = nr.calls()
    assert (call.outcome, call.client) == ("missing", client)
    assert f"({client})" in repr(CallTable(nr.calls()))


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_an_unrecorded_connection_names_its_client_and_the_users_line(client: str, tmp_path: Path) -> None:
    """A request the hooks leave alone (its host ignored) goes live in replay: the note names the
    library that opened the connection and the line of this file that made the call, not the
    library's own file."""
    with HttpWireServer() as server, nr.recording("replay", dir=tmp_path, ignore_hosts=["127.0.0.1"]):
        CLIENTS[client](server.url)
        address = server.url.removeprefix("http://")
    network = [call for call in nr.calls() if call.kind == "network"]
    assert network and all(call.client == client for call in network)
    assert all(call.origin is not None and call.origin.endswith(the_call(CLIENTS[client])) for call in network)
    note = cell_note(nr.calls()) or ""
    assert note.startswith(f"apirec: 1 network connection not recorded: {address} ({client}, from ")
    assert "openai" not in note
    assert f"{address} ({client})" in repr(CallTable(nr.calls()))


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_a_blocked_connection_names_its_client(client: str, tmp_path: Path) -> None:
    with HttpWireServer() as server:
        with nr.recording("replay", dir=tmp_path, ignore_hosts=["127.0.0.1"], block_network=True):
            with pytest.raises(nr.NetworkBlockedError) as caught:
                CLIENTS[client](server.url)
        assert server.requests == 0
    message = str(caught.value)
    assert f"opened by {client} at " in message and the_call(CLIENTS[client]) in message
    assert "openai" not in message
    (call,) = [call for call in nr.calls() if call.kind == "network"]
    assert (call.outcome, call.client) == ("blocked", client)


def test_a_raw_socket_is_named_by_its_line(tmp_path: Path) -> None:
    import socket

    with HttpWireServer() as server, nr.recording("replay", dir=tmp_path):
        host, port = server.url.removeprefix("http://").split(":")
        socket.create_connection((host, int(port))).close()  # the connection
    (call,) = nr.calls()
    assert call.client is None and call.origin is not None
    note = cell_note(nr.calls()) or ""
    assert note == f"apirec: 1 network connection not recorded: {host}:{port} (from {call.origin})"


def test_the_magic_note_names_the_client(ip: InteractiveShell, tmp_path: Path, capsys: Any) -> None:
    with HttpWireServer() as server:
        ip.user_ns["url"] = server.url
        ip.run_cell(f"%apirec replay --dir {tmp_path} --ignore-host 127.0.0.1", store_history=True).raise_error()
        capsys.readouterr()
        ip.run_cell("import requests\nhits = requests.get(url + '/search').json()", store_history=True).raise_error()
        note = capsys.readouterr().out
        ip.run_cell(f"%apirec replay --dir {tmp_path} --block-network", store_history=True).raise_error()
        ip.run_cell("%apirec", store_history=True).raise_error()
        state = capsys.readouterr().out
        ip.run_cell("%apirec off", store_history=True).raise_error()
    address = server.url.removeprefix("http://")
    assert note.startswith(f"apirec: 1 network connection not recorded: {address} (requests, from ")
    assert "blocked unless a hook records the call (allowed: nothing)" in state


def test_library_names_are_distribution_names() -> None:
    import google.genai  # noqa: F401  (a namespace package: google)
    import mistralai.client  # noqa: F401

    assert _opener.library_name("google.genai._api_client") == "google-genai"
    assert _opener.library_name("mistralai.client.chat") == "mistralai"
    assert _opener.library_name("no_such_package_here.sub") == "no_such_package_here"
