"""Values to and from FORMAT.md's JSON, and recording files to and from bytes.

- An SDK object (a pydantic model) or a dataclass is written as
  ``{"__type__": "<module>.<qualname>", "__data__": ...}``; anything else as plain JSON. A model's
  ``__data__`` holds the fields that were set, as the API sent them.
- Reading builds the ``__type__`` class only when it is on the allowlist of
  :mod:`notebook_recorder.core._types` (the SDK's models and errors, builtin exceptions, a tool's
  declared types, registered types): strict ``model_validate`` first, because it is fast, and the
  class's own lenient ``construct`` only for data that does not validate. Any other type, which
  is never imported, comes back as its raw data, with one warning per type name.
- Files are UTF-8 JSON with 2-space indentation and a final newline.

Nothing here knows about OpenAI.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import math
import threading
import warnings
from collections.abc import Callable, Mapping
from pathlib import PurePath
from typing import Any, cast

import orjson
import pydantic

from ._errors import RecordingFormatError, json_kind as _json_kind
from ._files import check_record
from ._types import allowed_type, type_name as type_name

TYPE = "__type__"
DATA = "__data__"


class UnknownTypeWarning(UserWarning):
    """A recording names a ``__type__`` that is not on the allowlist; its raw data is used."""


# ---------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------


def encode(value: Any) -> Any:
    """Turn a result into FORMAT.md's JSON form, keeping SDK and dataclass types as ``__type__``."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, pydantic.BaseModel):
        # Only the fields that were set: what the API sent. Rebuilding from that gives back the
        # same ``model_dump()`` and the same ``model_fields_set``, so the SDK's ``to_dict()`` and
        # ``to_json()`` (which leave unset fields out) print the same in replay as live.
        data = value.model_dump(mode="json", exclude_unset=True, warnings=False)
        return {TYPE: type_name(type(value)), DATA: data}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {TYPE: type_name(type(value)), DATA: fields}
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    return to_jsonable(value)


def to_jsonable(value: Any) -> Any:
    """A stable plain-JSON form for values that are not JSON, used for tool arguments.

    Pydantic models and dataclasses become their fields, paths and dates become strings, sets
    become sorted lists. Anything else raises ``TypeError``.
    """
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json", warnings=False)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, PurePath):
        return value.as_posix()
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        items = [to_jsonable(v) for v in value]
        return sorted(items, key=lambda v: orjson.dumps(v, option=orjson.OPT_SORT_KEYS))
    raise TypeError(f"cannot encode a {type(value).__qualname__} as JSON")


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------

_warned: set[str] = set()
_warned_lock = threading.Lock()


def _warn_unknown(name: object) -> None:
    shown = name if isinstance(name, str) else repr(name)
    with _warned_lock:
        if shown in _warned:
            return
        _warned.add(shown)
    warnings.warn(
        f"recorded type {shown!r} is not built here: it is not an SDK model or error, a builtin "
        "exception, a type a wrapped tool declares, or a type registered with nr.register_types(); "
        "returning its raw data instead (another Stainless SDK's types are built once that SDK "
        "is installed and imported; nothing a recording names is ever imported)",
        UnknownTypeWarning,
        stacklevel=4,
    )


def build(cls: type, data: Any) -> Any:
    """An instance of an allowlisted ``cls`` from its recorded data: validated if possible,
    leniently otherwise. Data of the wrong shape raises ``RecordingFormatError``."""
    if isinstance(cls, type) and issubclass(cls, pydantic.BaseModel):
        try:
            return cls.model_validate(data)
        except pydantic.ValidationError:
            if not isinstance(data, Mapping):
                raise RecordingFormatError(
                    "<recording>", f"{type_name(cls)} needs an object, found {_kind(data)}"
                ) from None
        # Nested ``__type__`` wrappers (other writers) are decoded first; then non-compliant
        # providers (``object: ""``, ``finish_reason: null``...) are built leniently: SDK models
        # override ``construct`` to build nested fields the way they do for live data.
        private = next((k for k in data if not isinstance(k, str) or k.startswith("_")), None)
        if private is not None:  # ``construct`` would take ``_fields_set`` and the like as its own
            raise RecordingFormatError(
                "<recording>", f"{type_name(cls)}'s data has a private field {private!r:.60}; API data has none"
            )
        data = {k: decode(v) for k, v in data.items()}
        try:
            return cls.model_validate(data)
        except pydantic.ValidationError as exc:
            _refuse_wrong_containers(cls, exc)
            return cls.construct(**data)
    if dataclasses.is_dataclass(cls):
        if not isinstance(data, Mapping):
            raise RecordingFormatError("<recording>", f"{type_name(cls)} needs an object, found {_kind(data)}")
        try:
            return cls(**{str(k): decode(v) for k, v in data.items()})
        except TypeError as exc:
            raise RecordingFormatError("<recording>", f"{type_name(cls)} cannot be built: {exc}") from None
    if issubclass(cls, BaseException):
        # Builtin and SDK exceptions: the class with the recorded arguments, nothing else.
        try:
            return cls(*data) if isinstance(data, list) else cls(data)
        except Exception:
            _warn_unknown(type_name(cls))
            return decode(data)
    return cast(Any, cls)(data)  # a class the user registered


#: Validation errors that leniency does not cover: an object (a model) where the data has
#: something else (a choice's ``message: "zz"``). A provider's odd scalar (``object: ""``,
#: ``finish_reason: null``: pydantic's ``literal_error``...) is built leniently, and so is a list
#: field holding a string (the SDK itself stores base64 embeddings in ``embedding: list[float]``);
#: a string where an object belongs gives an object that breaks at the first attribute read.
#: (A top-level ``choices`` that is no list is refused on reading: ``_files.check_sdk_data``.)
_CONTAINER_ERRORS = frozenset({"dict_type", "mapping_type", "model_type", "model_attributes_type", "dataclass_type"})


def _refuse_wrong_containers(cls: type, exc: pydantic.ValidationError) -> None:
    """Raise ``RecordingFormatError`` when ``exc`` says a container field holds something else."""
    for error in exc.errors(include_url=False, include_context=False):
        if error["type"] in _CONTAINER_ERRORS:
            where = ".".join(str(part) for part in error["loc"]) or "its data"
            raise RecordingFormatError(
                "<recording>", f"{type_name(cls)}: {where} is {_json_kind(error['input'])} ({error['msg']})"
            ) from None


def _kind(value: Any) -> str:
    return "null" if value is None else f"a {type(value).__name__}"


def decode(value: Any) -> Any:
    """Inverse of :func:`encode`. Raw-dict values without ``__type__`` are returned as they are.

    A ``__type__`` is built only when it is on the allowlist (:mod:`notebook_recorder.core._types`);
    any other name, malformed ones included, gives its raw ``__data__`` and one warning per name.
    """
    if isinstance(value, dict):
        if TYPE in value and DATA in value:
            name = value[TYPE]
            cls = allowed_type(name)
            if cls is None:
                _warn_unknown(name)
                return decode(value[DATA])
            return build(cls, value[DATA])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def dumps(record: Mapping[str, Any]) -> bytes:
    """A recording as file bytes: 2-space indented UTF-8 JSON with a final newline.

    A value JSON cannot hold faithfully raises ``ValueError`` naming where it is
    (``response.body.score``): a NaN or an infinity (which would be written as ``null`` and come
    back as ``None``), an integer past 64 bits, a string with a lone surrogate.
    """
    where = _first_bad(record, _non_finite) if _has_non_finite(record) else None
    if where is not None:
        raise ValueError(f"{where} is not a finite number; JSON has no NaN or infinity (it would come back as None)")
    try:
        return orjson.dumps(record, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS) + b"\n"
    except orjson.JSONEncodeError as exc:
        where = _first_bad(record, _unwritable) or "a value"
        raise ValueError(f"{where} cannot be written as JSON ({exc})") from None


def _has_non_finite(value: Any) -> bool:
    """Whether a NaN or an infinity is anywhere in ``value`` (a fast walk that builds no paths)."""
    stack = [value]
    pop, extend, isfinite = stack.pop, stack.extend, math.isfinite
    while stack:
        item = pop()
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:  # most values: nothing to do
            continue
        if kind is dict:
            extend(item.values())
        elif kind is list or kind is tuple:
            extend(item)
        elif kind is float:
            if not isfinite(item):
                return True
        elif isinstance(item, Mapping):
            extend(item.values())
    return False


def _non_finite(value: Any) -> bool:
    return type(value) is float and (value != value or value in (math.inf, -math.inf))


def _unwritable(value: Any) -> bool:
    """What ``orjson`` refuses: integers past 64 bits, strings that are not UTF-8 (lone surrogates)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return not -(2**63) <= value < 2**64
    if isinstance(value, str) and not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
    return False


def _first_bad(value: Any, bad: Callable[[Any], bool]) -> str | None:
    """The path (``response.body[2].score``) of the first value in ``value`` that is ``bad``."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, where = stack.pop()
        kind = type(item)
        if kind is dict or isinstance(item, Mapping):
            for k, v in reversed(list(item.items())):
                if bad(k):
                    return f"{where}.<key>" if where else "<key>"
                stack.append((v, f"{where}.{k}" if where else str(k)))
        elif kind is list or kind is tuple:
            for i in range(len(item) - 1, -1, -1):
                stack.append((item[i], f"{where}[{i}]"))
        elif bad(item):
            return where or "the value"
    return None


def loads(data: bytes, path: object = "<recording>") -> dict[str, Any]:
    """Parse and shape-check a recording file; problems raise ``RecordingFormatError`` naming it.

    Beyond valid JSON, a recording must be an object with ``request`` and ``response`` objects
    and pass :func:`notebook_recorder.core._files.check_record` (bounded nesting, a well-formed
    ``id_normalization_mapping`` and ``__type__`` names, no bare scalar as an API call's body).
    """
    try:
        record = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise RecordingFormatError(path, f"not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise RecordingFormatError(path, f"expected a JSON object, found {type(record).__name__}")
    for part in ("request", "response"):
        if not isinstance(record.get(part), dict):
            raise RecordingFormatError(path, f"missing or malformed {part!r} object")
    check_record(record, path)
    mapping = record.get("id_normalization_mapping")
    if mapping:
        record = _apply_id_mapping(record, {orig: norm for norm, orig in mapping.items()})
    return cast(dict[str, Any], record)


def _apply_id_mapping(value: Any, originals: Mapping[Any, str]) -> Any:
    """Replace every original id by its normalised form (FORMAT.md, "What is stored is what the caller saw")."""
    if isinstance(value, str):
        return originals.get(value, value)
    if isinstance(value, dict):
        return {k: _apply_id_mapping(v, originals) for k, v in value.items()}
    if isinstance(value, list):
        return [_apply_id_mapping(v, originals) for v in value]
    return value
