"""A pandas extension dtype, ``"json"``, for columns of parsed JSON values (dicts, lists, scalars).

In memory each element is the parsed Python value (``None`` when missing). In Arrow, and so in
Parquet, the column is JSON text: an Arrow extension type ``notebook_recorder.json`` over plain
strings, which DuckDB and polars query with their JSON functions.

``pd.read_parquet`` gives the parsed values back when this module has been imported (any of the
frame functions imports it). Anywhere else the file still reads, as a column of JSON text: the
pandas metadata names the column's dtype ``object``, which every reader understands, rather than
``json``, which pandas could not resolve without this module. That is also why the dtype prints
as ``object``; its ``name`` is ``"json"``, and ``isinstance(dtype, JSONDtype)`` tells it apart.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
import pandas as pd
from pandas.api.extensions import ExtensionArray, ExtensionDtype, register_extension_dtype, take
from pandas.api.indexers import check_array_indexer


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _loads(text: Any) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _object_array(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """A 1-d object array holding ``values`` as they are (lists are not broadcast)."""
    arr = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        arr[i] = v
    return arr


@register_extension_dtype
class JSONDtype(ExtensionDtype):  # type: ignore[misc]
    """Parsed JSON values; stored as JSON text in Arrow / Parquet."""

    name = "json"
    type = object
    kind = "O"
    na_value = None

    def __str__(self) -> str:
        # What pyarrow writes as the column's dtype in Parquet's pandas metadata: it must be
        # something a reader without notebook-recorder can resolve (see the module docstring).
        return "object"

    def __repr__(self) -> str:
        return "JSONDtype()"

    @classmethod
    def construct_array_type(cls) -> builtins.type[JSONArray]:
        return JSONArray

    def __from_arrow__(self, array: Any) -> JSONArray:
        chunks = array.chunks if hasattr(array, "chunks") else [array]
        values: list[Any] = []
        for chunk in chunks:
            storage = getattr(chunk, "storage", chunk)
            values.extend(_loads(v) for v in storage.to_pylist())
        return JSONArray(values)


class JSONArray(ExtensionArray):  # type: ignore[misc]
    """The array behind the ``"json"`` dtype."""

    _dtype = JSONDtype()

    def __init__(self, values: Sequence[Any] | np.ndarray) -> None:
        if isinstance(values, np.ndarray) and values.dtype == object and values.ndim == 1:
            self._data = values
        else:
            self._data = _object_array(values)

    # construction
    @classmethod
    def _from_sequence(cls, scalars: Any, *, dtype: Any = None, copy: bool = False) -> JSONArray:
        if isinstance(scalars, JSONArray):
            return scalars.copy() if copy else scalars
        return cls(list(scalars))

    @classmethod
    def _from_factorized(cls, values: np.ndarray, original: JSONArray) -> JSONArray:
        return cls([_loads(v) for v in values])

    # the protocol
    @property
    def dtype(self) -> JSONDtype:
        return self._dtype

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, item: Any) -> Any:
        if isinstance(item, (int, np.integer)):
            return self._data[item]
        item = check_array_indexer(self, item)
        return type(self)(self._data[item])

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(key, (int, np.integer)):
            self._data[key] = value
            return
        key = check_array_indexer(self, key)
        if isinstance(value, (JSONArray, list, tuple, np.ndarray)) and not isinstance(value, dict):
            idx = np.arange(len(self._data))[key]
            for i, v in zip(idx, value, strict=True):
                self._data[i] = v
        else:
            for i in np.arange(len(self._data))[key]:
                self._data[i] = value

    def __eq__(self, other: Any) -> Any:  # type: ignore[override]
        if isinstance(other, (pd.Series, pd.Index, pd.DataFrame)):
            return NotImplemented
        if isinstance(other, JSONArray):
            return np.array([a == b for a, b in zip(self._data, other._data, strict=True)], dtype=bool)
        return np.array([a == other for a in self._data], dtype=bool)

    @property
    def nbytes(self) -> int:
        return int(self._data.nbytes)

    def isna(self) -> np.ndarray:
        return np.fromiter((v is None for v in self._data), dtype=bool, count=len(self._data))

    def take(self, indices: Any, *, allow_fill: bool = False, fill_value: Any = None) -> JSONArray:
        return type(self)(take(self._data, indices, allow_fill=allow_fill, fill_value=fill_value))

    def copy(self) -> JSONArray:
        return type(self)(self._data.copy())

    @classmethod
    def _concat_same_type(cls, to_concat: Sequence[JSONArray]) -> JSONArray:
        return cls(np.concatenate([a._data for a in to_concat]) if to_concat else [])

    def _values_for_factorize(self) -> tuple[np.ndarray, Any]:
        return np.array([None if v is None else _dumps(v) for v in self._data], dtype=object), None

    def unique(self) -> JSONArray:
        seen: set[str | None] = set()
        keep = []
        for i, v in enumerate(self._data):
            k = None if v is None else _dumps(v)
            if k not in seen:
                seen.add(k)
                keep.append(i)
        return self.take(np.array(keep, dtype=np.intp))

    def _values_for_argsort(self) -> np.ndarray:
        return np.array(["" if v is None else _dumps(v) for v in self._data], dtype=object)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if dtype is None or np.dtype(dtype) == object:
            return self._data.copy() if copy else self._data
        return np.asarray(self._data, dtype=dtype)

    def astype(self, dtype: Any, copy: bool = True) -> Any:
        dtype = pd.api.types.pandas_dtype(dtype)
        if isinstance(dtype, JSONDtype):
            return self.copy() if copy else self
        if isinstance(dtype, pd.StringDtype):
            return pd.array([None if v is None else _dumps(v) for v in self._data], dtype=dtype)
        if dtype == np.dtype(object):
            return self._data.copy() if copy else self._data
        return super().astype(dtype, copy=copy)

    def __arrow_array__(self, type: Any = None) -> Any:
        import pyarrow as pa  # type: ignore[import-untyped]

        storage = pa.array([None if v is None else _dumps(v) for v in self._data], type=pa.string())
        arrow_type = _arrow_json_type()
        return storage if arrow_type is None else pa.ExtensionArray.from_storage(arrow_type, storage)


_ARROW_TYPE: list[Any] = []


def _arrow_json_type() -> Any:
    """The Arrow extension type of JSON columns, registered with pyarrow once; None without it."""
    if _ARROW_TYPE:
        return _ARROW_TYPE[0]
    try:
        import pyarrow as pa
    except ImportError:  # pragma: no cover - pyarrow is optional
        return None

    class ArrowJSONType(pa.ExtensionType):  # type: ignore[misc]
        """JSON text that pandas reads back as parsed values (a ``JSONDtype`` column)."""

        def __init__(self) -> None:
            super().__init__(pa.string(), "notebook_recorder.json")

        def __arrow_ext_serialize__(self) -> bytes:
            return b""

        @classmethod
        def __arrow_ext_deserialize__(cls, storage_type: Any, serialized: bytes) -> ArrowJSONType:
            return cls()

        def to_pandas_dtype(self) -> JSONDtype:
            return JSONDtype()

    arrow_type = ArrowJSONType()
    try:
        pa.register_extension_type(arrow_type)
    except pa.ArrowKeyError:  # registered by an earlier copy of this module (a reload)
        pass
    _ARROW_TYPE.append(arrow_type)
    return arrow_type


_arrow_json_type()
