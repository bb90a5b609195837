"""Any other Stainless-generated SDK is detected when it is imported and gets the typed hook (issue 21).

cerebras-cloud-sdk is one, in a nested package (``cerebras.cloud.sdk``): it talks real HTTP to
``HttpWireServer`` on 127.0.0.1 (OpenAI's chat wire format under ``/v1/chat/completions``), the
calls are recorded, the server is stopped, and replay gives back the whole result as the SDK's
own classes. A package that has a ``_base_client`` without the whole Stainless shape is not
hooked, and a file never makes anything importable.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from http_wire_server import HttpWireServer

import notebook_recorder as nr

pytest.importorskip("cerebras.cloud.sdk")

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
KEY = "test-key-cerebras-0000000000"


def chat(url: str) -> list[Any]:
    from cerebras.cloud.sdk import Cerebras

    client = Cerebras(api_key=KEY, base_url=url, warm_tcp_connection=False)
    whole = client.chat.completions.create(model="llama-3.3", messages=MESSAGES)  # type: ignore[arg-type]
    stream = client.chat.completions.create(model="llama-3.3", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    return [whole, list(stream)]  # type: ignore[arg-type]


async def achat(url: str) -> list[Any]:
    from cerebras.cloud.sdk import AsyncCerebras

    client = AsyncCerebras(api_key=KEY, base_url=url, warm_tcp_connection=False)
    whole = await client.chat.completions.create(model="llama-3.3", messages=MESSAGES)  # type: ignore[arg-type]
    stream = await client.chat.completions.create(model="llama-3.3", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    return [whole, [chunk async for chunk in stream]]  # type: ignore[union-attr]


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_cerebras_replays_offline_as_its_own_classes(asynchronous: bool, tmp_path: Path) -> None:
    """Recorded by the typed hook: the files name the SDK and its own ``__type__`` classes, and
    replay with the server stopped builds the same objects of the same classes, streams included."""
    work = (lambda url: asyncio.run(achat(url))) if asynchronous else chat
    server = HttpWireServer()
    try:
        with nr.recording("record", dir=tmp_path):
            recorded = work(server.url)
    finally:
        server.close()
    served = server.requests
    with nr.recording("replay", dir=tmp_path):
        replayed = work(server.url)
    assert server.requests == served == 2
    assert replayed == recorded
    assert [type(replayed[0]), [type(c) for c in replayed[1]]] == [type(recorded[0]), [type(c) for c in recorded[1]]]
    assert type(replayed[0]).__module__.startswith("cerebras.cloud.sdk.types.")
    assert len(replayed[1]) > 1
    files = sorted(tmp_path.glob("*.json"))
    assert len(files) == 2
    for path in files:
        record = json.loads(path.read_text())
        assert record["recorder"]["sdk"] == "cerebras.cloud.sdk"
        body = record["response"]["body"]
        first = body[0] if isinstance(body, list) else body
        assert first["__type__"].startswith("cerebras.cloud.sdk.types.chat.")


def test_a_cerebras_client_builds_without_a_key_in_replay_and_nothing_is_put_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its clients are found by their base classes: in replay, ``Cerebras()`` with no key given and
    none set builds with the placeholder at its constructor and replays; ``os.environ`` is left
    as it is, and once the recording ends the SDK asks for its key again."""
    import os

    from cerebras.cloud.sdk import AsyncCerebras, Cerebras, CerebrasError

    monkeypatch.delenv("CEREBRAS_API_KEY", raising=False)
    with HttpWireServer() as server:
        with nr.recording("record", dir=tmp_path):
            recorded = chat(server.url)
    environ = dict(os.environ)
    with nr.recording("replay", dir=tmp_path):
        client = Cerebras(base_url=server.url, warm_tcp_connection=False)
        whole = client.chat.completions.create(model="llama-3.3", messages=MESSAGES)  # type: ignore[arg-type]
        AsyncCerebras(base_url=server.url, warm_tcp_connection=False)
        assert dict(os.environ) == environ
    assert whole == recorded[0]
    assert dict(os.environ) == environ
    with pytest.raises(CerebrasError, match="api_key"):
        Cerebras(base_url=server.url, warm_tcp_connection=False)


def test_replay_without_a_recording_raises_before_sending(tmp_path: Path) -> None:
    """A missing recording is the recorder's own error, raised before the SDK's retry loop."""
    with HttpWireServer() as server, nr.recording("replay", dir=tmp_path):
        with pytest.raises(nr.RecordingNotFoundError, match="No recording of"):
            chat(server.url)
        assert server.requests == 0


FAKE_SDK = {
    # A ``_base_client`` with Stainless's class names but no ``_streaming``, ``_models``...: not hooked.
    "nr_not_stainless/__init__.py": "from . import _base_client\n",
    "nr_not_stainless/_base_client.py": textwrap.dedent(
        """
        class BaseClient:
            pass

        class SyncAPIClient(BaseClient):
            def request(self, cast_to, options, *, stream=False, stream_cls=None):
                pass

        class AsyncAPIClient(BaseClient):
            async def request(self, cast_to, options, *, stream=False, stream_cls=None):
                pass
        """
    ),
    # Imported by a recording's ``__type__`` it would leave a trace.
    "nr_evil/__init__.py": "import pathlib, os\npathlib.Path(os.environ['NR_TRACE']).write_text('imported')\n",
    "nr_evil/types/__init__.py": "",
}

DETECT = """
import sys, warnings
import notebook_recorder as nr
from notebook_recorder.core._codec import decode
from notebook_recorder.hooks._network import hooked_packages

name = "cerebras.cloud.sdk.types.model_list_response.ModelMetadataList"
typed = {"__type__": name, "__data__": {"data": [], "object": "list"}}
evil = {"__type__": "nr_evil.types.Model", "__data__": {"x": 1}}
with nr.recording("replay", dir=sys.argv[1]), warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    before = [decode(typed), decode(evil)]
    print("before", before, "cerebras" in sys.modules, "nr_evil" in sys.modules)
    import nr_not_stainless
    import cerebras.cloud.sdk
    print("hooked", sorted(hooked_packages))
    after = decode(typed)
    print("after", type(after).__module__)
    print("evil", decode(evil), "nr_evil" in sys.modules)
    print("warned", " | ".join(str(w.message) for w in caught))
print("exit", sorted(hooked_packages))
"""


def test_detected_on_import_only_when_the_whole_shape_is_there(tmp_path: Path) -> None:
    """Importing cerebras-cloud-sdk inside a recording hooks it; a package with a ``_base_client``
    missing the rest of the shape is not hooked. A recorded ``__type__`` never imports anything:
    before the SDK is imported its types come back as raw data with a warning naming them, and a
    type of a package that is not an SDK is never imported at all."""
    for name, text in FAKE_SDK.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    trace = tmp_path / "trace"
    out = subprocess.run(
        [sys.executable, "-c", DETECT, str(tmp_path / "recordings")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "PYTHONPATH": str(tmp_path), "NR_TRACE": str(trace)},
        check=True,
    ).stdout
    lines = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    assert lines["before"] == "[{'data': [], 'object': 'list'}, {'x': 1}] False False", out
    assert "'cerebras.cloud.sdk'" in lines["hooked"] and "nr_not_stainless" not in lines["hooked"], out
    assert lines["after"].startswith("cerebras.cloud.sdk.types"), out
    assert lines["evil"] == "{'x': 1} False", out
    assert "'cerebras.cloud.sdk.types.model_list_response.ModelMetadataList' is not built here" in lines["warned"], out
    assert "'nr_evil.types.Model' is not built here" in lines["warned"], out
    assert lines["exit"] == "[]", out  # the hooks are removed when the recording ends
    assert not trace.exists()


def test_why_not_names_the_missing_piece() -> None:
    """The check reads only what is imported, and says what a package lacks."""
    import cerebras.cloud.sdk  # noqa: F401

    from notebook_recorder.hooks.sdk import stainless_generic

    assert stainless_generic.why_not("cerebras.cloud.sdk") is None
    assert stainless_generic.base_error("cerebras.cloud.sdk") == "CerebrasError"
    assert stainless_generic.why_not("nr_no_such_package") == (
        "no _base_client with BaseClient, SyncAPIClient and AsyncAPIClient"
    )
