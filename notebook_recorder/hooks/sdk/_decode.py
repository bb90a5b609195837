"""Recorded bodies back into the objects a Stainless SDK call returns, and results into bodies.

The decoding half of replay for every Stainless SDK (``_stainless``): a non-streamed body as the
call's ``cast_to`` (strict validation first, lenient construction only for data that does not
validate), stream chunks as the stream's chunk type one at a time (replay's hot loop), and the
raw JSON the API sent, for the raw-response paths that let the SDK parse it again.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pydantic

from ...core._codec import DATA, TYPE, build, decode, encode, type_name
from ...core._errors import RecordingFormatError, json_kind
from ...core._types import allowed_type
from ._compat import StainlessSdk


def encode_body(sdk: StainlessSdk, result: Any) -> Any:
    """A result as FORMAT.md's body. Simple pages (openai's ``models.list()``) are stored as the
    list of their items, as llama-stack does; cursor pages keep their ``has_more`` and ids."""
    if sdk.page_types and isinstance(result, sdk.page_types):
        items: Any = getattr(result, "data", [])
        return [encode(item) for item in items]
    return encode(result)


def _target(cast_to: Any) -> Any:
    origin = getattr(cast_to, "__pydantic_generic_metadata__", {}).get("origin") or cast_to
    return origin


def _members(target: Any) -> tuple[Any, ...]:
    """The classes a response type stands for: itself, or each member of a union."""
    args = typing.get_args(target)
    if typing.get_origin(target) is typing.Annotated:
        return _members(args[0])
    if args and typing.get_origin(target) in (typing.Union, types.UnionType):
        return tuple(m for arg in args for m in _members(arg))
    return (target,)


def _fits(cls: type, target: Any) -> bool:
    """Whether an instance of ``cls`` is what a call returning ``target`` may return."""
    members = _members(target)
    if not all(isinstance(m, type) for m in members):
        return True  # a type we cannot compare against: trust the SDK's own class
    return any(issubclass(cls, _target(m)) for m in members)


def _expects_object(target: Any) -> bool:
    """Whether the SDK builds ``target`` from a JSON object only (models and unions of them)."""
    members = _members(target)
    return all(isinstance(m, type) and issubclass(m, pydantic.BaseModel) for m in members)


def decode_result(body: Any, cast_to: Any) -> Any:
    """A recorded non-streamed body as the object the SDK would have returned.

    A body that cannot be that object (a number, a string, a list where an object belongs,
    ``null``) raises ``RecordingFormatError``; the caller adds the file's name.
    """
    is_model = isinstance(cast_to, type) and issubclass(cast_to, pydantic.BaseModel)
    if is_model and isinstance(body, list) and "data" in cast_to.model_fields:
        # A page stored as its items (our files and llama-stack's model lists).
        return build(cast_to, {"data": decode(body), "object": "list"})
    if _expects_object(cast_to) and not isinstance(body, dict):
        raise RecordingFormatError(
            "<recording>", f"the recorded body is {json_kind(body)}, but the call returns {_type_label(cast_to)}"
        )
    if isinstance(body, dict):
        name = body.get(TYPE)
        typed = name is not None and DATA in body
        if is_model and typed and name == type_name(_target(cast_to)):
            return build(cast_to, body[DATA])  # keeps generic parameters such as SyncCursorPage[T]
        cls = allowed_type(name) if typed else None
        if cls is not None and _fits(cls, cast_to):
            return decode(body)
        # Raw data, a foreign type (another provider's SDK) or a type that is not the call's:
        # built as the type the call returns, as the SDK builds the JSON it receives.
        data = body[DATA] if typed else body
        if is_model:
            return build(cast_to, data)
        if _expects_object(cast_to):
            if not isinstance(data, dict):
                raise RecordingFormatError("<recording>", f"the recorded __data__ is {json_kind(data)}, not an object")
            return _adapter(cast_to).validate_python(decode(data))
    if isinstance(cast_to, type) and cast_to is not object and not isinstance(body, dict | list):
        if not isinstance(body, cast_to):
            raise RecordingFormatError(
                "<recording>", f"the recorded body is {json_kind(body)}, but the call returns {_type_label(cast_to)}"
            )
    return decode(body)


def _type_label(target: Any) -> str:
    return " | ".join(m.__name__ if isinstance(m, type) else str(m) for m in _members(target))


def _decode_as(chunk: Any, chunk_type: Any, path: Any = "<recording>") -> Any:
    """One recorded stream chunk as an SDK object.

    Raw-dict chunks, and chunks whose ``__type__`` is not on the allowlist (another provider's
    SDK) or is not the stream's chunk type, are built as the chunk type the SDK expects, as live
    parsing would. A chunk that is not an object raises ``RecordingFormatError`` naming the file.
    """
    if isinstance(chunk, dict):
        data = chunk
        name = chunk.get(TYPE)
        if name is not None and DATA in chunk:
            cls = allowed_type(name)
            if cls is not None and (chunk_type is None or _fits(cls, chunk_type)):
                return _decoded(chunk, path)
            data = chunk[DATA]
            if not isinstance(data, dict):
                raise RecordingFormatError(
                    path, f"a recorded stream chunk's __data__ is {json_kind(data)}, not an object"
                )
        if isinstance(chunk_type, type) and issubclass(chunk_type, pydantic.BaseModel):
            return build(chunk_type, data)
        if chunk_type is not None and not isinstance(chunk_type, type):
            # A union of event types (the Responses API): let pydantic pick the member.
            return _adapter(chunk_type).validate_python(data)
    elif chunk_type is not None and _expects_object(chunk_type):
        raise RecordingFormatError(path, f"a recorded stream chunk is {json_kind(chunk)}, not an object")
    return _decoded(chunk, path)


def _decoded(value: Any, path: Any) -> Any:
    try:
        return decode(value)
    except RecordingFormatError as exc:
        raise RecordingFormatError(path, exc.problem) from None


@functools.lru_cache(maxsize=64)
def _adapter(tp: Any) -> pydantic.TypeAdapter[Any]:
    return pydantic.TypeAdapter(tp)


def decoded_chunks(chunks: list[Any], chunk_type: Any, path: Any = "<recording>") -> Iterator[Any]:
    """Recorded stream chunks as SDK objects, decoded one at a time as the caller iterates.

    This is replay's hot loop. Once a chunk of a ``__type__`` has been built, later chunks of the
    same type go straight to that class's validator; anything else takes the general path.
    """
    fast_type: Any = _MISSING  # equal to no chunk's type until one has been built
    validate: Any = None
    for chunk in chunks:
        try:
            if chunk.get(TYPE) == fast_type:
                yield validate(chunk[DATA])
                continue
        except (AttributeError, KeyError, pydantic.ValidationError):
            pass  # not a dict, or non-compliant data: the general path builds it leniently
        value = _decode_as(chunk, chunk_type, path)
        if isinstance(value, pydantic.BaseModel) and isinstance(chunk, dict) and TYPE in chunk:
            fast_type, validate = chunk[TYPE], type(value).__pydantic_validator__.validate_python
        yield value


_MISSING = object()


async def async_chunks(chunks: list[Any], chunk_type: Any, path: Any = "<recording>") -> AsyncIterator[Any]:
    for chunk in decoded_chunks(chunks, chunk_type, path):
        yield chunk


def raw_data(value: Any) -> Any:
    if isinstance(value, dict) and TYPE in value and DATA in value:
        return value[DATA]
    if isinstance(value, list):
        return [raw_data(v) for v in value]
    return value


def raw_body(body: Any, cast_to: Any) -> Any:
    """The JSON the API sent, rebuilt from a recorded body (pages stored as lists get their envelope)."""
    if isinstance(body, list) and isinstance(cast_to, type) and "data" in getattr(cast_to, "model_fields", {}):
        return {"object": "list", "data": raw_data(body)}
    return raw_data(body)


def raw_cast_to(sdk: StainlessSdk, cast_to: Any) -> Any:
    """The type a raw response (``with_raw_response``) parses to: its type argument."""
    target = getattr(cast_to, "__origin__", None) or cast_to
    if isinstance(target, type) and issubclass(target, sdk.raw_response_types):
        return sdk.type_arg(cast_to)
    return cast_to


def is_binary(sdk: StainlessSdk, cast_to: Any) -> bool:
    """Whether the SDK hands this call's body over as bytes or text rather than parsing JSON."""
    target = raw_cast_to(sdk, cast_to)
    return isinstance(target, type) and issubclass(target, (*sdk.binary_types, str, bytes))
