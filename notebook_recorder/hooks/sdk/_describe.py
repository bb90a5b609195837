"""A Stainless SDK call described as a request (``_keys.InferenceRequest``), and its credentials.

The request is what is keyed and written: method, canonical endpoint, the JSON body (or the
query of a ``GET``) with credential-named fields scrubbed, multipart files as their names and
content digests, and the URL without credentials.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import Any

import orjson

from ...core._codec import to_jsonable
from ...core._keys import InferenceRequest, canonical_endpoint
from ...core._secrets import client_credentials, request_secrets, scrub, scrub_url
from . import _compat
from ._compat import StainlessSdk


def describe(sdk: StainlessSdk, client: Any, options: Any, body_options: Any = None) -> InferenceRequest:
    """The canonical request for an SDK call: method, endpoint, JSON body (or query), model.
    The body (JSON or query) is read from ``body_options`` when given."""
    url = _url(sdk, client, options.url)
    source = options if body_options is None else body_options
    body: Any = source.json_data
    if isinstance(body, dict) and source.extra_json:
        body = {**body, **source.extra_json}
    if body is None and options.method.lower() == "get":
        body = dict(source.params) if source.params else {}
    body = scrub(jsonable(body if body is not None else {}, sdk))
    files = _compat.files_of(options)
    if files and isinstance(body, dict):
        # Multipart uploads send files outside the JSON body: each enters the body (and so the
        # key) as its name and content digest, never its content.
        body = {**body, **_file_digests(files)}
    endpoint = canonical_endpoint("/v1/" + options.url.lstrip("/") if "://" not in options.url else options.url)
    model = body.get("model") if isinstance(body, dict) else None
    return InferenceRequest(
        method=options.method.upper(),
        endpoint=endpoint,
        body=body,
        model=model if isinstance(model, str) else "",
        url=scrub_url(url),
    )


_urls: dict[tuple[int, str], tuple[Any, str]] = {}


def _url(sdk: StainlessSdk, client: Any, path: str) -> str:
    """``path`` on the client's base URL as text, cached per base URL (parsing URLs is not free).

    Not the client's own ``_prepare_url``: a client class may route there with what its option
    preparation resolves first (Google Cloud's project). Record mode writes the URL as sent."""
    base = _compat.base_url(client)
    cached = _urls.get((id(base), path))
    if cached is not None and cached[0] is base:
        return cached[1]
    url = _compat.plain_url(sdk, client, path)
    if len(_urls) > 512:
        _urls.clear()
    _urls[(id(base), path)] = (base, url)
    return url


def _file_digests(files: Any) -> dict[str, Any]:
    """``{field: {"filename", "sha256", "size"}}`` for the SDK's multipart ``files``."""
    items = files.items() if isinstance(files, Mapping) else files
    digests: dict[str, Any] = {}
    for field, file in items:
        name, content = (file[0], file[1]) if isinstance(file, tuple) else (getattr(file, "name", None), file)
        if isinstance(content, bytes | bytearray | memoryview):
            data = bytes(content)
        elif isinstance(content, os.PathLike):
            with open(content, "rb") as fh:
                data = fh.read()
        elif not getattr(content, "seekable", lambda: False)():
            data = b""  # a pipe or socket: reading it here would take the content from the SDK
        else:  # a file object: read it, then put it back where the SDK will read it from
            position = content.tell()
            data = content.read()
            content.seek(position)
            if isinstance(data, str):
                data = data.encode()
        described = {
            "filename": os.path.basename(name) if isinstance(name, str) else None,
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
        }
        previous = digests.get(field)
        digests[field] = described if previous is None else [*_as_list(previous), described]
    return digests


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def jsonable(value: Any, sdk: StainlessSdk | None = None) -> Any:
    """A request body (or error body) as plain JSON. The SDK's "not given" markers (``Omit``,
    ``NotGiven``), which some SDK versions leave in the body until they send it, are left out.

    A body nested deeper than :data:`MAX_DEPTH` levels (untyped JSON fields can be) keeps its
    deeper parts as digests (:func:`shallow`), so nothing here recurses once per level; a body
    that refers to itself raises ``ValueError``, as the SDKs do."""
    try:
        return orjson.loads(orjson.dumps(value))  # plain JSON already: the usual case, at C speed
    except TypeError:
        pass
    value = shallow(value)
    if sdk is not None:
        value = _given(sdk, value)
        try:
            return orjson.loads(orjson.dumps(value))
        except TypeError:
            pass
    try:
        return to_jsonable(value)
    except TypeError:
        return orjson.loads(orjson.dumps(value, default=str))


def credentials(sdk: StainlessSdk, client: Any, options: Any) -> tuple[str, ...]:
    """The credential values this call sends (client settings, default and extra headers and
    query, body fields under credential names), which its recording must not hold."""
    settings = client_credentials(client)
    headers = _compat.headers_of(sdk, options)
    params = options.params if isinstance(options.params, Mapping) else {}
    return request_secrets(
        values=settings["values"],
        headers=[*settings["headers"].items(), *headers.items()],
        query=[*settings["query"].items(), *params.items()],
        body=[shallow(options.json_data), shallow(options.extra_json)],
    )


def _given(sdk: StainlessSdk, value: Any) -> Any:
    """``value`` without the entries the SDK marks as not given (what it strips before sending)."""
    if isinstance(value, Mapping):
        return {k: _given(sdk, v) for k, v in value.items() if sdk.is_given(v)}
    if isinstance(value, list | tuple):
        return [_given(sdk, v) for v in value if sdk.is_given(v)]
    return value


MAX_DEPTH = 64
"""Levels of a request body described as they are; deeper parts are described by a digest."""


def shallow(value: Any, limit: int = MAX_DEPTH) -> Any:
    """``value`` with each mapping or sequence ``limit`` levels down replaced by
    ``{"__digest__": sha256}`` of its canonical JSON, without recursion (a body can nest deeper
    than Python's recursion limit). ``ValueError("Circular reference detected")``, the error the
    SDKs' own JSON encoding raises, for a body that contains itself."""
    if not _deeper_than(value, limit):
        return value
    root: list[Any] = [None]
    # (value, container to fill, slot, depth, ids of the containers above)
    stack: list[tuple[Any, Any, Any, int, frozenset[int]]] = [(value, root, 0, 0, frozenset())]
    while stack:
        item, parent, slot, depth, above = stack.pop()
        if not _is_container(item):
            parent[slot] = item
            continue
        if id(item) in above:
            raise ValueError("Circular reference detected")
        if depth >= limit:
            parent[slot] = {"__digest__": _digest(item)}
            continue
        inner = above | {id(item)}
        if isinstance(item, Mapping):
            copy: Any = {}
            for k, v in item.items():
                copy[k] = None
                stack.append((v, copy, k, depth + 1, inner))
        else:
            copy = [None] * len(item)
            for i, v in enumerate(item):
                stack.append((v, copy, i, depth + 1, inner))
        parent[slot] = copy
    return root[0]


def _is_container(value: Any) -> bool:
    return isinstance(value, Mapping | list | tuple)


def _deeper_than(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 0)]
    seen = 0
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        seen += 1
        if seen > 1_000_000:
            return True  # huge: take the careful path
        if isinstance(item, Mapping):
            stack.extend((v, depth + 1) for v in item.values() if _is_container(v))
        elif isinstance(item, list | tuple):
            stack.extend((v, depth + 1) for v in item if _is_container(v))
    return False


def _digest(value: Any) -> str:
    """sha256 of ``value``'s canonical JSON (sorted keys), computed without recursion, cycle-safe."""
    digest = hashlib.sha256()
    # Items are values to write, or literal marks (brackets, separators, keys) around them.
    stack: list[tuple[Any, frozenset[int]]] = [(value, frozenset())]
    while stack:
        item, above = stack.pop()
        if isinstance(item, _Mark):
            digest.update(item.text)
            continue
        if isinstance(item, Mapping):
            if id(item) in above:
                raise ValueError("Circular reference detected")
            inner = above | {id(item)}
            digest.update(b"{")
            stack.append((_Mark(b"}"), above))
            entries = sorted(item.items(), key=lambda kv: str(kv[0]))
            for n, (k, v) in enumerate(reversed(entries)):
                stack.append((v, inner))
                sep = b"," if n < len(entries) - 1 else b""
                stack.append((_Mark(sep + orjson.dumps(str(k)) + b":"), above))
            continue
        if isinstance(item, list | tuple):
            if id(item) in above:
                raise ValueError("Circular reference detected")
            inner = above | {id(item)}
            digest.update(b"[")
            stack.append((_Mark(b"]"), above))
            for n, v in enumerate(reversed(item)):
                stack.append((v, inner))
                if n < len(item) - 1:
                    stack.append((_Mark(b","), above))
            continue
        try:
            digest.update(orjson.dumps(item))
        except TypeError:
            digest.update(orjson.dumps(str(item)))
    return digest.hexdigest()


class _Mark:
    """Literal bytes of the canonical JSON being digested."""

    __slots__ = ("text",)

    def __init__(self, text: bytes) -> None:
        self.text = text
