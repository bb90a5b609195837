"""The codec: SDK objects <-> ``{"__type__", "__data__"}``, the lenient fallback, files, ids."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import warnings
from pathlib import Path, PurePosixPath

import orjson
import pydantic
import pytest
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from notebook_recorder import register_types
from notebook_recorder.core import _codec
from notebook_recorder.core._codec import (
    RecordingFormatError,
    UnknownTypeWarning,
    decode,
    dumps,
    encode,
    loads,
    to_jsonable,
    type_name,
)
from notebook_recorder.core._types import allowed_type

FIXTURES = Path(__file__).parent.parent / "fixtures" / "llama-stack"
CHUNK = "openai.types.chat.chat_completion_chunk.ChatCompletionChunk"


def _fixture(prefix: str) -> dict:
    path = sorted(FIXTURES.rglob(f"{prefix}*.json"))[0]
    return json.loads(path.read_text())


@dataclasses.dataclass
class Point:
    x: int
    y: list[int]


def test_sdk_objects_round_trip_typed() -> None:
    chunk = ChatCompletionChunk.model_validate(
        {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": []}
    )
    encoded = encode(chunk)
    assert encoded["__type__"] == CHUNK
    assert encoded["__data__"] == {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [],
    }
    back = decode(encoded)
    assert type(back) is ChatCompletionChunk
    assert back.model_dump() == chunk.model_dump()
    assert back.model_fields_set == chunk.model_fields_set
    assert back.to_json() == chunk.to_json()


def test_untyped_values_are_plain_json() -> None:
    value = {"a": [1, 2.5, None, True, "x"], "b": {"c": ()}}
    assert encode(value) == {"a": [1, 2.5, None, True, "x"], "b": {"c": []}}
    assert decode({"a": [1, {"b": 2}]}) == {"a": [1, {"b": 2}]}
    assert decode({"__type__": "x.Y"}) == {"__type__": "x.Y"}  # no __data__: not an encoded value


def test_dataclasses_round_trip() -> None:
    register_types(Point)  # a class of the user's own is built only once registered
    encoded = encode(Point(1, [2]))
    assert encoded == {"__type__": f"{__name__}.Point", "__data__": {"x": 1, "y": [2]}}
    assert decode(encoded) == Point(1, [2])


def test_type_name_drops_generic_parameters() -> None:
    from openai.pagination import SyncPage
    from openai.types import Model

    assert type_name(SyncPage[Model]) == "openai.pagination.SyncPage"
    assert type_name(ChatCompletion) == "openai.types.chat.chat_completion.ChatCompletion"


def test_allowed_type() -> None:
    register_types(Point)
    assert allowed_type(CHUNK) is ChatCompletionChunk
    assert allowed_type("openai.types.chat.ChatCompletionChunk") is ChatCompletionChunk
    assert allowed_type(f"{__name__}.Point") is Point
    assert allowed_type("llama_stack.apis.tools.tools.ToolInvocationResult") is None
    assert allowed_type("openai.types.NoSuchThing") is None
    assert allowed_type("json.dumps") is None  # not a class


def test_unknown_type_gives_raw_data_and_one_warning() -> None:
    name = "ogx_api.tools.ToolInvocationResultForCodecTest"
    _codec._warned.discard(name)
    value = {"__type__": name, "__data__": {"content": [{"__type__": CHUNK + "Nope", "__data__": {"a": 1}}]}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = decode(value)
        second = decode(value)
    assert first == second == {"content": [{"a": 1}]}
    names = [str(w.message) for w in caught if issubclass(w.category, UnknownTypeWarning)]
    assert len([m for m in names if name in m]) == 1


def test_non_compliant_chunks_fall_back_to_the_lenient_path() -> None:
    """The 473-chunk gpt-4o stream starts with an Azure chunk whose ``object`` is ``""``, and
    ollama's completion chunks have ``finish_reason: null``: neither validates, both must load."""
    stream = _fixture("9a5fc1e8")["response"]["body"]
    first = stream[0]["__data__"]
    assert first["object"] == ""
    with pytest.raises(pydantic.ValidationError):
        ChatCompletionChunk.model_validate(first)
    chunks = decode(stream)
    assert len(chunks) == 473
    assert all(type(c) is ChatCompletionChunk for c in chunks)
    assert chunks[0].object == ""
    assert chunks[0].model_dump(exclude_unset=True) == first

    completions = _fixture("8567635651a5")["response"]["body"]
    data = completions[0]["__data__"]
    assert data["choices"][0]["finish_reason"] is None
    with pytest.raises(pydantic.ValidationError):
        Completion.model_validate(data)
    built = decode(completions[0])
    assert type(built) is Completion
    assert built.choices[0].finish_reason is None
    assert built.choices[0].text == data["choices"][0]["text"]


def test_compliant_fixture_values_validate_strictly() -> None:
    embedding = None
    for path in sorted(FIXTURES.rglob("*.json")):
        body = json.loads(path.read_text())["response"].get("body")
        if isinstance(body, dict) and str(body.get("__type__", "")).endswith("CreateEmbeddingResponse"):
            embedding = body
            break
    assert embedding is not None
    value = decode(embedding)
    assert type(value) is CreateEmbeddingResponse
    assert CreateEmbeddingResponse.model_validate(embedding["__data__"]) == value


def test_to_jsonable() -> None:
    assert to_jsonable({"p": PurePosixPath("a/b"), "d": dt.date(2025, 1, 2), "s": {3, 1}, "b": b"x"}) == {
        "p": "a/b",
        "d": "2025-01-02",
        "s": [1, 3],
        "b": "x",
    }
    assert to_jsonable(dt.timedelta(seconds=1.5)) == 1.5
    with pytest.raises(TypeError):
        to_jsonable(object())


def test_dumps_is_two_space_indented_with_a_final_newline() -> None:
    data = dumps({"test_id": None, "request": {"a": [1]}, "response": {"body": "é"}})
    assert data.endswith(b"}\n") and not data.endswith(b"\n\n")
    assert (
        data.decode("utf-8")
        == json.dumps({"test_id": None, "request": {"a": [1]}, "response": {"body": "é"}}, indent=2, ensure_ascii=False)
        + "\n"
    )


def test_loads_checks_shape_and_names_the_file() -> None:
    good = loads(dumps({"request": {}, "response": {}}), "f.json")
    assert good == {"request": {}, "response": {}}
    for data, problem in [
        (b'{"request": {', "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"request": {}}', "'response'"),
        (b'{"request": 1, "response": {}}', "'request'"),
    ]:
        with pytest.raises(RecordingFormatError) as info:
            loads(data, "dir/broken.json")
        assert str(info.value).startswith("dir/broken.json: ")
        assert problem in str(info.value)


def test_id_normalization_mapping_is_applied_on_load() -> None:
    record = {
        "request": {"body": {"previous": "resp_original"}},
        "response": {"body": {"id": "resp_original", "other": "x"}},
        "id_normalization_mapping": {"rec-abc": "resp_original"},
    }
    loaded = loads(orjson.dumps(record))
    assert loaded["response"]["body"] == {"id": "rec-abc", "other": "x"}
    assert loaded["request"]["body"] == {"previous": "rec-abc"}
