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


def describe(sdk: StainlessSdk, client: Any, options: Any) -> InferenceRequest:
    """The canonical request for an SDK call: method, endpoint, JSON body (or query), model."""
    url = _url(client, options.url)
    body: Any = options.json_data
    if isinstance(body, dict) and options.extra_json:
        body = {**body, **options.extra_json}
    if body is None and options.method.lower() == "get":
        body = dict(options.params) if options.params else {}
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


def _url(client: Any, path: str) -> str:
    """``client._prepare_url(path)`` as text, cached per base URL (parsing URLs is not free)."""
    base = _compat.base_url(client)
    cached = _urls.get((id(base), path))
    if cached is not None and cached[0] is base:
        return cached[1]
    url = _compat.prepare_url(client, path)
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
    ``NotGiven``), which some SDK versions leave in the body until they send it, are left out."""
    try:
        return orjson.loads(orjson.dumps(value))  # plain JSON already: the usual case, at C speed
    except TypeError:
        pass
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
        body=[options.json_data, options.extra_json],
    )


def _given(sdk: StainlessSdk, value: Any) -> Any:
    """``value`` without the entries the SDK marks as not given (what it strips before sending)."""
    if isinstance(value, Mapping):
        return {k: _given(sdk, v) for k, v in value.items() if sdk.is_given(v)}
    if isinstance(value, list | tuple):
        return [_given(sdk, v) for v in value if sdk.is_given(v)]
    return value
