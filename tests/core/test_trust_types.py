"""Issue 10, "No file can make the package run code" and "Replay returns what the SDK would".

A recording names classes in ``__type__``. Replay builds one only when it is on the allowlist
(the SDK's models and errors, builtin exceptions, a tool's declared return types, types the user
registers); anything else is its raw data and is never imported. Each crafted file below would
create a marker file if it ran code; the marker must never appear, through replay (the real SDK)
or through ``notebook-recorder verify`` (a subprocess).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.abc
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from wire_server import WireServer

import notebook_recorder as nr
from notebook_recorder.core import _codec
from notebook_recorder.core._codec import decode
from notebook_recorder.core._errors import json_kind
from notebook_recorder.core._files import valid_type_name
from notebook_recorder.core._store import forget_indexes
from notebook_recorder.core._types import SDKS, allowed_type

REPO = Path(__file__).resolve().parents[2]
HI = [{"role": "user", "content": "Hi"}]
EVIL_MODULE = "nr_evil_payload_for_trust_tests"


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "marker" / "PWNED"


@pytest.fixture
def evil_path(tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory on ``sys.path`` holding a module whose import would create the marker."""
    marker.parent.mkdir(exist_ok=True)
    directory = tmp_path / "evil"
    directory.mkdir()
    (directory / f"{EVIL_MODULE}.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\n"
        "class Thing:\n"
        "    def __init__(self, *args, **kwargs):\n"
        f"        open({str(marker)!r}, 'w').write('built')\n"
    )
    monkeypatch.syspath_prepend(str(directory))
    sys.modules.pop(EVIL_MODULE, None)
    return directory


def attacks(marker: Path) -> list[dict[str, Any]]:
    """``__type__`` values that would run code (create ``marker``) if a reader imported or called them."""
    m = str(marker)
    return [
        {"__type__": "subprocess.Popen", "__data__": ["touch", m]},
        {"__type__": "subprocess.Popen", "__data__": {"args": ["touch", m]}},
        {"__type__": "os.system", "__data__": f"touch {m}"},
        {"__type__": "builtins.eval", "__data__": f"open({m!r}, 'w')"},
        {"__type__": "builtins.exec", "__data__": f"open({m!r}, 'w')"},
        {"__type__": f"{EVIL_MODULE}.Thing", "__data__": {"x": 1}},
        {"__type__": f"{EVIL_MODULE}.Thing", "__data__": ["touch", m]},
        {"__type__": "openai.types.os.system", "__data__": f"touch {m}"},
        {"__type__": "openai.types.chat.chat_completion.BaseModel", "__data__": {"x": 1}},
        {"__type__": "openai.types.chat.chat_completion.Optional", "__data__": {"x": 1}},
        {"__type__": "openai._exceptions.os.system", "__data__": f"touch {m}"},
        {"__type__": "openai.__main__.X", "__data__": {}},
        {"__type__": "....", "__data__": {"x": 1}},
        {"__type__": "", "__data__": {"x": 1}},
        {"__type__": 5, "__data__": {"x": 1}},
    ]


ATTACK_IDS = [
    "popen-list",
    "popen-dict",
    "os.system",
    "eval",
    "exec",
    "evil-module",
    "evil-module-list",
    "openai.types.os.system",
    "sdk-non-model-class",
    "sdk-typing-form",
    "openai._exceptions.os",
    "openai.__main__",
    "dots",
    "empty",
    "non-str",
]


def _assert_safe(marker: Path) -> None:
    assert not marker.exists(), f"a recording ran code: {marker.read_text()!r}"
    assert EVIL_MODULE not in sys.modules, "a module a recording names was imported"


def _rewrite(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))
    forget_indexes()


def _offline_client() -> openai.OpenAI:
    # A closed port: anything that reached the network would fail.
    return openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="sk-unused", max_retries=0)


@pytest.fixture
def recorded_chat(wire_server: WireServer, client: openai.OpenAI, tmp_path: Path) -> tuple[Path, Path]:
    """(directory, file) of one recorded non-streamed chat completion."""
    directory = tmp_path / "chat"
    with nr.recording("record", dir=directory):
        client.chat.completions.create(model="gpt-4o", messages=HI)
    (path,) = sorted(directory.rglob("*.json"))
    return directory, path


@pytest.fixture
def recorded_stream(wire_server: WireServer, client: openai.OpenAI, tmp_path: Path) -> tuple[Path, Path]:
    """(directory, file) of one recorded streamed chat completion with several chunks."""
    directory = tmp_path / "stream"
    with nr.recording("record", dir=directory):
        list(client.chat.completions.create(model="gpt-4o", messages=HI, stream=True))
    (path,) = sorted(directory.rglob("*.json"))
    assert len(json.loads(path.read_text())["response"]["body"]) >= 2
    return directory, path


def _replay_chat(directory: Path, *, stream: bool = False) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _codec.UnknownTypeWarning)
        with nr.recording("replay", dir=directory):
            chat = _offline_client().chat.completions
            if stream:
                return list(chat.create(model="gpt-4o", messages=HI, stream=True))
            return chat.create(model="gpt-4o", messages=HI)


# ---------------------------------------------------------------------------------------------
# The crafted vectors, through replay
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(len(ATTACK_IDS)), ids=ATTACK_IDS)
def test_a_crafted_tool_result_is_raw_data(tmp_path: Path, marker: Path, evil_path: Path, index: int) -> None:
    @nr.tool(provider="p", name="lookup")
    def lookup(q: str) -> Any:
        return {"answer": q}

    with nr.recording("record", dir=tmp_path / "tools"):
        lookup("x")
    (path,) = sorted((tmp_path / "tools").rglob("*.json"))
    attack = attacks(marker)[index]
    _rewrite(path, lambda r: r["response"].update(body={"result": attack, "list": [attack]}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _codec.UnknownTypeWarning)
        with nr.recording("replay", dir=tmp_path / "tools"):
            value = lookup("x")
    _assert_safe(marker)
    assert value["result"] == attack["__data__"]  # the raw data, nothing built
    assert value["list"] == [attack["__data__"]]


@pytest.mark.parametrize("index", range(len(ATTACK_IDS)), ids=ATTACK_IDS)
def test_a_crafted_tool_exception_is_a_recorded_tool_error(
    tmp_path: Path, marker: Path, evil_path: Path, index: int
) -> None:
    @nr.tool(provider="p", name="fails")
    def fails() -> None:
        raise ValueError("no")

    with nr.recording("record", dir=tmp_path / "tools"), pytest.raises(ValueError):
        fails()
    (path,) = sorted((tmp_path / "tools").rglob("*.json"))
    attack = attacks(marker)[index]
    name = attack["__type__"]
    module, _, qualname = str(name).rpartition(".")
    data = attack["__data__"]

    def change(record: dict[str, Any]) -> None:
        record["response"]["exception_data"].update(
            module=module or "x", type=qualname or "y", args=data if isinstance(data, list) else [data]
        )

    _rewrite(path, change)
    with nr.recording("replay", dir=tmp_path / "tools"), pytest.raises(nr.RecordedToolError):
        fails()
    _assert_safe(marker)


@pytest.mark.parametrize("index", range(len(ATTACK_IDS)), ids=ATTACK_IDS)
def test_a_crafted_top_level_chat_body_never_runs_code(
    recorded_chat: tuple[Path, Path], marker: Path, evil_path: Path, index: int
) -> None:
    directory, path = recorded_chat
    attack = attacks(marker)[index]
    _rewrite(path, lambda r: r["response"].update(body=attack))
    try:
        result = _replay_chat(directory)
    except nr.RecordingFormatError as exc:
        assert str(path) in str(exc)
    else:
        assert isinstance(result, ChatCompletion)  # the foreign data, built as what the SDK returns
    _assert_safe(marker)


@pytest.mark.parametrize("index", range(len(ATTACK_IDS)), ids=ATTACK_IDS)
def test_a_crafted_top_level_chat_body_with_valid_data_is_a_chat_completion(
    recorded_chat: tuple[Path, Path], marker: Path, evil_path: Path, index: int
) -> None:
    directory, path = recorded_chat
    name = attacks(marker)[index]["__type__"]
    _rewrite(path, lambda r: r["response"]["body"].update({"__type__": name}))
    if not isinstance(name, str) or not valid_type_name(name):
        # Not even a name: the file is malformed (issue 10), and says so.
        with pytest.raises(nr.RecordingFormatError, match="malformed __type__") as info:
            _replay_chat(directory)
        assert str(path) in str(info.value)
        return
    result = _replay_chat(directory)
    assert type(result) is ChatCompletion
    assert result.choices[0].message.content
    _assert_safe(marker)


@pytest.mark.parametrize("index", range(len(ATTACK_IDS)), ids=ATTACK_IDS)
def test_one_crafted_stream_chunk_never_runs_code(
    recorded_stream: tuple[Path, Path], marker: Path, evil_path: Path, index: int
) -> None:
    directory, path = recorded_stream
    attack = attacks(marker)[index]
    _rewrite(path, lambda r: r["response"]["body"].__setitem__(1, attack))
    try:
        chunks = _replay_chat(directory, stream=True)
    except nr.RecordingFormatError as exc:
        assert str(path) in str(exc)
    else:
        assert all(type(chunk) is ChatCompletionChunk for chunk in chunks)
    _assert_safe(marker)


@pytest.mark.parametrize("index", range(len(ATTACK_IDS)), ids=ATTACK_IDS)
@pytest.mark.parametrize("where", ["message", "choice", "usage"])
def test_a_crafted_field_inside_a_valid_chat_completion_never_runs_code(
    recorded_chat: tuple[Path, Path], marker: Path, evil_path: Path, index: int, where: str
) -> None:
    directory, path = recorded_chat
    attack = attacks(marker)[index]

    def change(record: dict[str, Any]) -> None:
        data = record["response"]["body"]["__data__"]
        if where == "message":
            data["choices"][0]["message"] = attack
        elif where == "choice":
            data["choices"][0] = attack
        else:
            data["usage"] = attack

    _rewrite(path, change)
    try:
        result = _replay_chat(directory)
    except nr.RecordingFormatError as exc:  # a list where the SDK has an object (issue 22): named
        assert str(path) in str(exc)
    else:
        assert type(result) is ChatCompletion
    _assert_safe(marker)


def test_nothing_a_file_names_is_imported_even_when_it_exists(marker: Path, evil_path: Path) -> None:
    importlib.invalidate_caches()
    _codec._warned.discard(f"{EVIL_MODULE}.Thing")
    assert importlib.util.find_spec(EVIL_MODULE) is not None  # it could be imported
    with pytest.warns(_codec.UnknownTypeWarning, match=EVIL_MODULE):
        assert decode({"__type__": f"{EVIL_MODULE}.Thing", "__data__": {"a": [1]}}) == {"a": [1]}
    assert allowed_type(f"{EVIL_MODULE}.Thing") is None
    _assert_safe(marker)


def test_the_sdk_lazy_module_clients_are_not_touched() -> None:
    # `openai.chat` is a lazy proxy that builds a client when asked for its class.
    assert allowed_type("openai.chat") is None
    assert allowed_type("openai.types.chat") is None  # a module, not a class
    assert allowed_type("openai.OpenAI") is None  # a class of the SDK, but no model or error


def test_the_allowlist_holds_the_sdk_classes() -> None:
    from openai.pagination import SyncCursorPage, SyncPage
    from openai.types.chat.chat_completion import Choice

    assert allowed_type("openai.types.chat.chat_completion.ChatCompletion") is ChatCompletion
    assert allowed_type("openai.types.chat.ChatCompletion") is ChatCompletion  # a re-export
    assert allowed_type("openai.types.chat.chat_completion.Choice") is Choice  # a nested type
    assert allowed_type("openai.pagination.SyncPage") is SyncPage
    assert allowed_type("openai.pagination.SyncCursorPage") is SyncCursorPage
    assert allowed_type("openai.RateLimitError") is openai.RateLimitError
    assert allowed_type("openai._exceptions.RateLimitError") is openai.RateLimitError
    assert allowed_type("builtins.ValueError") is ValueError
    assert allowed_type("builtins.KeyboardInterrupt") is KeyboardInterrupt
    assert allowed_type("builtins.object") is None and allowed_type("builtins.type") is None
    assert allowed_type("builtins.print") is None


def test_a_builtin_exception_value_is_built_from_its_arguments() -> None:
    value = decode({"__type__": "builtins.ValueError", "__data__": ["bad", 2]})
    assert type(value) is ValueError and value.args == ("bad", 2)


# ---------------------------------------------------------------------------------------------
# Through `notebook-recorder verify` (a subprocess, with the evil module on its path)
# ---------------------------------------------------------------------------------------------


def test_verify_reports_crafted_types_and_imports_nothing(
    recorded_chat: tuple[Path, Path], marker: Path, evil_path: Path
) -> None:
    directory, path = recorded_chat
    record = json.loads(path.read_text())
    nested = dict(record["response"]["body"]["__data__"])
    nested["choices"] = [{**nested["choices"][0], "message": attacks(marker)[5]}]
    record["response"]["body"] = {"__type__": "subprocess.Popen", "__data__": nested}
    named = [attack for attack in attacks(marker) if isinstance(attack["__type__"], str)]
    record["response"]["extra"] = [a for a in named if valid_type_name(a["__type__"])]
    path.write_text(json.dumps(record))
    # Names that are not names at all make their file malformed: verify says so, for that file.
    malformed = directory / "malformed.json"
    malformed.write_text(json.dumps({**record, "response": {**record["response"], "extra": attacks(marker)[-3:]}}))

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), str(evil_path), os.environ.get("PYTHONPATH", "")]),
    }
    done = __import__("subprocess").run(
        [sys.executable, "-m", "notebook_recorder.cli", "verify", str(directory)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "unknown __type__s" in out
    for name in ("subprocess.Popen", f"{EVIL_MODULE}.Thing", "os.system", "builtins.eval", "openai.types.os.system"):
        assert f"{name} is not on the allowlist" in out, out
    assert "malformed.json: malformed __type__" in out
    assert not marker.exists()


def test_verify_passes_on_the_repositorys_own_recordings(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 13: their one foreign type (llama-stack's tool result) is a note, not a failure."""
    from notebook_recorder.frontends.cli.main import main

    assert main(["verify", str(REPO / "recordings")]) == 0
    out = capsys.readouterr().out
    assert "ogx_api.tools.ToolInvocationResult is not on the allowlist" in out
    assert "a known foreign type" in out
    assert main(["verify", str(REPO / "recordings"), "--strict"]) == 1
    assert "unknown __type__s (1):" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# What may be built: declared and registered types
# ---------------------------------------------------------------------------------------------


class Item(pydantic.BaseModel):
    name: str
    score: float


@dataclasses.dataclass
class Report:
    title: str
    items: list[Item]


class Registered(pydantic.BaseModel):
    value: int


class NotRegistered(pydantic.BaseModel):
    value: int


class RegisteredError(Exception):
    pass


class UnregisteredError(Exception):
    pass


def test_a_tools_declared_return_type_round_trips(tmp_path: Path) -> None:
    @nr.tool(provider="p", name="report")
    def report(title: str) -> list[Report] | None:  # nested: a dataclass holding models
        return [Report(title, [Item(name="a", score=0.5)])]

    with nr.recording("record", dir=tmp_path):
        live = report("t")
    with nr.recording("replay", dir=tmp_path), warnings.catch_warnings():
        warnings.simplefilter("error")
        replayed = report("t")
    assert replayed == live
    assert type(replayed[0]) is Report and type(replayed[0].items[0]) is Item


def test_result_type_declares_what_a_function_without_annotations_returns(tmp_path: Path) -> None:
    @dataclasses.dataclass
    class Box:  # a local class: found by name, never imported
        content: str

    def make(content):  # type: ignore[no-untyped-def]
        return Box(content)

    boxed = nr.tool(make, provider="p", name="box", result_type=Box)
    with nr.recording("record", dir=tmp_path):
        assert boxed("c") == Box("c")
    with nr.recording("replay", dir=tmp_path), warnings.catch_warnings():
        warnings.simplefilter("error")
        assert boxed("c") == Box("c")


def test_a_registered_type_round_trips_and_an_unregistered_one_is_raw(tmp_path: Path) -> None:
    @nr.tool(provider="p", name="untyped")
    def untyped(kind: str) -> Any:
        if kind == "error":
            raise RegisteredError("registered")
        if kind == "other error":
            raise UnregisteredError("not registered")
        return Registered(value=1) if kind == "registered" else NotRegistered(value=2)

    kinds = ("registered", "not registered", "error", "other error")
    with nr.recording("record", dir=tmp_path):
        for kind in kinds:
            try:
                untyped(kind)
            except Exception:
                pass
    nr.register_types(Registered, RegisteredError)
    with nr.recording("replay", dir=tmp_path):
        assert untyped("registered") == Registered(value=1)
        with pytest.warns(_codec.UnknownTypeWarning, match="NotRegistered"):
            assert untyped("not registered") == {"value": 2}
        with pytest.raises(RegisteredError, match=r"^registered$"):
            untyped("error")
        with pytest.raises(nr.RecordedToolError, match="UnregisteredError: not registered"):
            untyped("other error")


def test_register_types_takes_classes_only() -> None:
    with pytest.raises(TypeError, match=r"takes classes.*not int 5"):
        nr.register_types(5)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Replay returns what the SDK would
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [5, "hello", [1, 2, 3], None, True], ids=["int", "str", "list", "null", "bool"])
def test_a_body_that_cannot_be_the_response_type_is_a_format_error(recorded_chat: tuple[Path, Path], body: Any) -> None:
    directory, path = recorded_chat
    _rewrite(path, lambda r: r["response"].update(body=body))
    with pytest.raises(nr.RecordingFormatError) as info:
        _replay_chat(directory)
    assert str(path) in str(info.value)
    assert json_kind(body) in str(info.value)


@pytest.mark.parametrize("body", [5, "hello", None], ids=["int", "str", "null"])
def test_a_stream_that_is_not_a_list_of_chunks_is_a_format_error(recorded_stream: tuple[Path, Path], body: Any) -> None:
    directory, path = recorded_stream
    _rewrite(path, lambda r: r["response"].update(body=body))
    with pytest.raises(nr.RecordingFormatError) as info:
        _replay_chat(directory, stream=True)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("chunk", [5, "hello", [1, 2], None], ids=["int", "str", "list", "null"])
def test_a_chunk_that_is_not_an_object_is_a_format_error(recorded_stream: tuple[Path, Path], chunk: Any) -> None:
    directory, path = recorded_stream
    _rewrite(path, lambda r: r["response"]["body"].__setitem__(1, chunk))
    with pytest.raises(nr.RecordingFormatError) as info:
        _replay_chat(directory, stream=True)
    assert str(path) in str(info.value)


def test_typed_data_that_is_not_an_object_is_a_format_error(recorded_chat: tuple[Path, Path]) -> None:
    directory, path = recorded_chat
    _rewrite(path, lambda r: r["response"]["body"].update({"__data__": [1, 2]}))
    with pytest.raises(nr.RecordingFormatError) as info:
        _replay_chat(directory)
    assert str(path) in str(info.value)


def test_a_body_of_another_sdk_type_is_built_as_the_calls_type(recorded_chat: tuple[Path, Path]) -> None:
    directory, path = recorded_chat
    _rewrite(path, lambda r: r["response"]["body"].update({"__type__": "openai.types.model.Model"}))
    assert type(_replay_chat(directory)) is ChatCompletion


# ---------------------------------------------------------------------------------------------
# Property: decoding imports nothing outside the SDK's model packages
# ---------------------------------------------------------------------------------------------


class _ImportRecorder(importlib.abc.MetaPathFinder):
    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        self.names.append(fullname)
        return None


_PARTS = st.one_of(
    st.sampled_from(["os", "subprocess", "system", "Popen", "types", "chat", "__main__", "_exceptions", EVIL_MODULE]),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True),
)
_PREFIXES = st.sampled_from(["", "openai.", "openai.types.", "openai.pagination.", "builtins.", "anthropic.", "x."])
_NAMES = st.one_of(
    st.text(max_size=40),
    st.tuples(_PREFIXES, st.lists(_PARTS, min_size=1, max_size=4)).map(lambda t: t[0] + ".".join(t[1])),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=_NAMES,
    data=st.one_of(
        st.none(),
        st.integers(),
        st.text(max_size=5),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
        st.lists(st.integers(), max_size=2),
    ),
)
def test_decode_never_imports_a_module_outside_the_sdk(name: str, data: Any) -> None:
    for sdk in SDKS:  # an SDK's own import loads its dependencies (jiter, opentelemetry...): not the file's doing
        with contextlib.suppress(ImportError):
            importlib.import_module(sdk.package)
    finder = _ImportRecorder()
    sys.meta_path.insert(0, finder)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                decode({"__type__": name, "__data__": data})
            except nr.RecordingFormatError:
                pass  # an SDK model named with data that is not an object
    finally:
        sys.meta_path.remove(finder)
    sdks = {sdk.package for sdk in SDKS}  # openai, anthropic: the packages whose models may be built
    outside = [n for n in finder.names if n.partition(".")[0] not in sdks]
    assert outside == [], f"decoding {name!r} tried to import {outside}"
    assert EVIL_MODULE not in sys.modules
