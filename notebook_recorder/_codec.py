"""Values to and from FORMAT.md's JSON, and recording files to and from bytes.

- An SDK object (a pydantic model) or a dataclass is written as
  ``{"__type__": "<module>.<qualname>", "__data__": ...}``; anything else as plain JSON. A model's
  ``__data__`` holds the fields that were set, as the API sent them.
- Reading builds the ``__type__`` class: strict ``model_validate`` first, because it is fast,
  and the class's own lenient ``construct`` only for data that does not validate. A type that
  cannot be imported comes back as its raw data, with one warning per type name.
- Files are UTF-8 JSON with 2-space indentation and a final newline.

Nothing here knows about OpenAI.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import functools
import importlib
import threading
import warnings
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any, cast

import orjson
import pydantic

from ._errors import RecordingFormatError
from ._files import check_record

TYPE = "__type__"
DATA = "__data__"


class UnknownTypeWarning(UserWarning):
    """A recording names a ``__type__`` that cannot be imported here; its raw data is used."""


def type_name(cls: type) -> str:
    """``<module>.<qualname>`` of a class, without generic parameters such as ``[Model]``."""
    return f"{cls.__module__}.{cls.__qualname__.split('[', 1)[0]}"


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


@functools.lru_cache(maxsize=1024)
def import_type(name: str) -> type | None:
    """The class named ``<module>.<qualname>``, or ``None`` when it cannot be imported."""
    module_name, _, qualname = name.rpartition(".")
    parts = [qualname]
    while module_name:
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError:
            module_name, _, outer = module_name.rpartition(".")
            parts.insert(0, outer)
            continue
        try:
            for part in parts:
                obj = getattr(obj, part)
        except AttributeError:
            return None
        return obj if isinstance(obj, type) else None
    return None


def _warn_unknown(name: str) -> None:
    with _warned_lock:
        if name in _warned:
            return
        _warned.add(name)
    warnings.warn(
        f"cannot import recorded type {name!r}; returning its raw data instead",
        UnknownTypeWarning,
        stacklevel=4,
    )


def build(cls: type, data: Any) -> Any:
    """An instance of ``cls`` from its recorded data: validated if possible, leniently otherwise."""
    if isinstance(cls, type) and issubclass(cls, pydantic.BaseModel):
        try:
            return cls.model_validate(data)
        except pydantic.ValidationError:
            if not isinstance(data, Mapping):
                raise
        # Nested ``__type__`` wrappers (other writers) are decoded first; then non-compliant
        # providers (``object: ""``, ``finish_reason: null``...) are built leniently: SDK models
        # override ``construct`` to build nested fields the way they do for live data.
        data = {k: decode(v) for k, v in data.items()}
        try:
            return cls.model_validate(data)
        except pydantic.ValidationError:
            return cls.construct(**data)
    if dataclasses.is_dataclass(cls) and isinstance(data, Mapping):
        return cls(**{k: decode(v) for k, v in data.items()})
    return cast(Any, cls)(data)


def decode(value: Any) -> Any:
    """Inverse of :func:`encode`. Raw-dict values without ``__type__`` are returned as they are."""
    if isinstance(value, dict):
        name = value.get(TYPE)
        if isinstance(name, str) and DATA in value:
            cls = import_type(name)
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
    """A recording as file bytes: 2-space indented UTF-8 JSON with a final newline."""
    return orjson.dumps(record, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS) + b"\n"


def loads(data: bytes, path: object = "<recording>") -> dict[str, Any]:
    """Parse and shape-check a recording file; problems raise ``RecordingFormatError`` naming it.

    Beyond valid JSON, a recording must be an object with ``request`` and ``response`` objects
    and pass :func:`notebook_recorder._files.check_record` (bounded nesting, a well-formed
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
    """Replace every original id by its normalised form (FORMAT.md, "Deterministic output")."""
    if isinstance(value, str):
        return originals.get(value, value)
    if isinstance(value, dict):
        return {k: _apply_id_mapping(v, originals) for k, v in value.items()}
    if isinstance(value, list):
        return [_apply_id_mapping(v, originals) for v in value]
    return value


# Response objects whose ``id`` and ``created`` are made deterministic. Their ids are never sent
# back to the API. Other objects keep theirs: a Responses API ``id`` is reused as
# ``previous_response_id``, a file's id names the file, a model's id is the model.
NORMALIZED_OBJECTS = frozenset({"chat.completion", "chat.completion.chunk", "text_completion"})


def deterministic_ids(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The deterministic ``id``/``created`` values for one response object (``{}`` if it keeps its own)."""
    if data.get("object") not in NORMALIZED_OBJECTS:
        return {}
    fields: dict[str, Any] = {}
    if isinstance(data.get("id"), str):
        fields["id"] = f"rec-{key[:12]}"
    created = data.get("created")
    if isinstance(created, int | float) and not isinstance(created, bool):
        fields["created"] = 0
    return fields


def normalize_ids(body: Any, key: str) -> Any:
    """Deterministic ``id`` and ``created`` in an encoded response body, so re-recording diffs small.

    The top-level ``id`` of each chat or text completion (each chunk, for streams) becomes
    ``rec-<key[:12]>`` and ``created`` becomes ``0``; see :data:`NORMALIZED_OBJECTS`.
    """
    if isinstance(body, list):
        return [normalize_ids(item, key) for item in body]
    if not isinstance(body, dict):
        return body
    data = body.get(DATA, body) if TYPE in body else body
    fields = deterministic_ids(data, key) if isinstance(data, dict) else {}
    if not fields:
        return body
    data = {**data, **fields}
    return {**body, DATA: data} if TYPE in body else data
