"""Canonical requests, their keys (FORMAT.md, "Keys and file names"), and readable request diffs.

A key is the 64-hex sha256 of a canonical JSON form of the request. Inference calls hash
``method``, the canonical ``endpoint``, the normalised ``body`` and the ``test_id``; tool calls
hash ``provider``, ``tool_name`` and ``kwargs``. Credentials never enter a key, so a recording
replays without them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from ._match import Rules

# Endpoints shared by every test: their key ignores test_id (llama-stack does the same).
SHARED_ENDPOINTS = frozenset({"/v1/models", "/api/tags"})

_LONG_DECIMAL = re.compile(r"-?\d+\.\d{4,}")


def _five_places(match: re.Match[str]) -> str:
    return f"{float(match.group(0)):.5f}"


def normalize(value: Any) -> Any:
    """FORMAT.md's ``normalize``: floats rounded to 5 places, long decimals inside strings too."""
    if isinstance(value, float):
        return round(value, 5)
    if isinstance(value, str):
        return _LONG_DECIMAL.sub(_five_places, value) if "." in value else value
    if isinstance(value, dict | Mapping):
        return {k: normalize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalize(v) for v in value]
    return value


def _sha256_json(payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def canonical_endpoint(endpoint: str, url: str = "") -> str:
    """The canonical API path: no host, no doubled ``/v1/v1``, always rooted at ``/v1`` for OpenAI paths.

    ``url`` helps with old llama-stack files whose ``endpoint`` lacks the ``/v1`` prefix.
    """
    query = ""
    if "://" in endpoint:
        path = urlsplit(endpoint).path
    else:  # an HTTP-level recording's endpoint keeps its (sorted) query: it is part of the key
        path, _, query = endpoint.partition("?")
    path = "/" + path.lstrip("/")
    while path.startswith("/v1/v1/") or path == "/v1/v1":
        path = path[3:]
    if url and not path.startswith(("/v1/", "/api/")) and urlsplit(url).path.endswith("/v1" + path):
        path = "/v1" + path
    return f"{path}?{query}" if query else path


def http_endpoint(url: str) -> str:
    """An HTTP-level recording's endpoint: the URL's path, with its query sorted and credential
    parameters removed (FORMAT.md, "HTTP-level recordings")."""
    from urllib.parse import parse_qsl, urlencode

    from ._secrets import URL_CREDENTIAL_NAMES, is_credential_name

    parts = urlsplit(url)
    path = "/" + parts.path.lstrip("/")
    if not parts.query:
        return path
    query = sorted(
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not is_credential_name(k, URL_CREDENTIAL_NAMES)
    )
    return f"{path}?{urlencode(query)}" if query else path


@dataclass(frozen=True)
class InferenceRequest:
    """An HTTP API call, as it is keyed and written (``request`` in FORMAT.md)."""

    method: str
    endpoint: str
    body: Any
    model: str = ""
    url: str = ""
    client: str = field(default="", compare=False)
    """Who made the request, for messages and the call log only (``google-genai via httpx2``);
    neither keyed nor written."""

    def key(self, test_id: str | None, rules: Rules | None = None) -> str:
        """The recording key for this request made in scope ``test_id``, under match ``rules``
        (``_match``: fields ignored, strings normalised; none by default)."""
        shared = self.endpoint in SHARED_ENDPOINTS
        body = rules.apply("body", self.body) if rules else self.body
        return _sha256_json(
            {
                # llama-stack writes model lists as POST whatever the SDK sent; keying them the
                # same way lets its model-list files replay `client.models.list()`.
                "method": "POST" if shared else self.method,
                "endpoint": self.endpoint,
                "body": normalize(body),
                "test_id": None if shared else test_id,
            }
        )

    def to_json(self, test_id: str | None) -> dict[str, Any]:
        """The ``request`` object of a recording file. Headers are never written."""
        del test_id  # inference requests keep test_id at the top level only
        return {
            "method": self.method,
            "url": self.url,
            "headers": {},
            "body": self.body,
            "endpoint": self.endpoint,
            "model": self.model,
        }

    def summary(self) -> str:
        """One line for messages: ``POST /v1/chat/completions (model gpt-4o)``."""
        model = f" (model {self.model})" if self.model else ""
        return f"{self.method} {self.endpoint}{model}"

    @property
    def label(self) -> str:
        """What the call log shows in its endpoint column."""
        return self.endpoint


@dataclass(frozen=True)
class ToolRequest:
    """A tool invocation, keyed by ``(provider, tool_name, kwargs)``."""

    provider: str
    tool_name: str
    kwargs: Mapping[str, Any]

    @property
    def model(self) -> str:
        return ""

    def key(self, test_id: str | None, rules: Rules | None = None) -> str:
        """The recording key: sha256 over ``{provider, tool_name, kwargs}``, plus ``test_id`` when
        the call was made in a scope (a pytest test, ``scope=``), as for API calls: two tests
        that make the same tool call each replay their own answer. Without a scope the key is
        llama-stack's. ``rules`` apply their ``kwargs.`` ignores and regex normalizers to ``kwargs``.

        A file keeps working whatever wrote it: its key is recomputed from its content (its
        ``test_id`` included), so a file recorded in a scope before tool keys had it (named by the
        old key, as llama-stack's are) is still found, by content; ``verify`` lists its name.
        """
        kwargs = rules.apply("kwargs", self.kwargs) if rules else self.kwargs
        keyed: dict[str, Any] = {"provider": self.provider, "tool_name": self.tool_name, "kwargs": kwargs}
        if test_id is not None:
            keyed["test_id"] = test_id
        return _sha256_json(keyed)

    def to_json(self, test_id: str | None) -> dict[str, Any]:
        return {
            "test_id": test_id,
            "provider": self.provider,
            "tool_name": self.tool_name,
            "kwargs": dict(self.kwargs),
        }

    def summary(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"tool {self.provider}/{self.tool_name}({_shorten(args, 200)})"

    @property
    def label(self) -> str:
        return f"{self.provider}/{self.tool_name}"


Request = InferenceRequest | ToolRequest


def request_from_record(record: Mapping[str, Any]) -> Request | None:
    """Rebuild the request stored in a recording file, or ``None`` for kinds we cannot key.

    This is how a file whose name is not its key is still found: the key is recomputed from
    the stored request and ``test_id``.
    """
    request = record.get("request")
    if not isinstance(request, Mapping):
        return None
    if "tool_name" in request:
        kwargs = request.get("kwargs")
        return ToolRequest(
            provider=str(request.get("provider", "")),
            tool_name=str(request["tool_name"]),
            kwargs=kwargs if isinstance(kwargs, Mapping) else {},
        )
    if "body" not in request and "payload" in request and isinstance(request.get("url"), str):
        # llama-stack's raw HTTP recordings: `payload` in place of `body`, the URL's path as endpoint.
        url = request["url"]
        return InferenceRequest(
            method=str(request.get("method") or "POST").upper(),
            endpoint=canonical_endpoint(http_endpoint(url)),
            body=request["payload"] if request["payload"] is not None else {},
            model=str(request.get("model") or (request["payload"] or {}).get("model") or "")
            if isinstance(request["payload"], Mapping | None)
            else "",
            url=url,
        )
    if "body" in request and isinstance(request.get("method"), str):
        body = request["body"]
        if isinstance(body, Mapping) and isinstance(body.get("extra_body"), Mapping):
            # llama-stack stored the SDK's keyword arguments: a literal `extra_body` is what the
            # SDK merges into the JSON it sends (FORMAT.md, "llama-stack's literal extra_body").
            body = {**{k: v for k, v in body.items() if k != "extra_body"}, **body["extra_body"]}
        url = str(request.get("url") or "")
        endpoint = canonical_endpoint(str(request.get("endpoint") or (urlsplit(url).path if url else "")), url)
        if endpoint == "/v1/completions" and isinstance(body, Mapping) and "messages" in body:
            # Older llama-stack files filed some chat requests under /v1/completions; the SDK call
            # that made them, and that replays them, is chat.completions.create.
            endpoint = "/v1/chat/completions"
        return InferenceRequest(
            method=request["method"],
            endpoint=endpoint,
            body=body,
            model=str(request.get("model") or ""),
            url=url,
        )
    return None


def record_rules(record: Mapping[str, Any]) -> Rules | None:
    """The match rules a recording file says it was keyed under (its ``match`` field): strict
    when it has none, ``None`` when the field is malformed."""
    from ._match import STRICT, Rules

    if "match" not in record:
        return STRICT
    return Rules.from_json(record["match"])


def record_key(record: Mapping[str, Any], rules: Rules | None = None, *, trusted: Collection[str] = ()) -> str | None:
    """The key of a recording file's request, recomputed from its content: under ``rules`` (the
    rules in force, when looking a request up), else under the rules the file was recorded
    under (its ``match`` field: the key its name should be). ``None`` when the request cannot be
    keyed, or its own rules cannot be applied here: a callable normalizer, a malformed field, or
    a regular expression not in ``trusted`` (a pattern that comes from a file is never run: a
    hostile one could run for ever; pass the project's own patterns as ``trusted``).
    """
    request = request_from_record(record)
    if request is None:
        return None
    if rules is None:
        rules = record_rules(record)
        if rules is None or rules.opaque or not set(dict(rules.normalize)) <= set(trusted):
            return None
    test_id = record.get("test_id")
    return request.key(test_id if isinstance(test_id, str) else None, rules)


# ---------------------------------------------------------------------------------------------
# Occurrences (FORMAT.md, "Repeated identical requests")
# ---------------------------------------------------------------------------------------------

_OCCURRENCE_STEM = re.compile(r"(?P<key>[0-9a-f]{64})-(?P<occurrence>[1-9][0-9]*)")


def recording_name(key: str, occurrence: int = 1) -> str:
    """The file name of occurrence ``occurrence`` of ``key``: ``<key>.json``, else ``<key>-<k>.json``."""
    return f"{key}.json" if occurrence == 1 else f"{key}-{occurrence}.json"


def name_occurrence(stem: str) -> tuple[str, int]:
    """The key and occurrence a file name (without ``.json``) claims: ``<key>-3`` is ``(key, 3)``;
    any other stem is itself with occurrence 1."""
    match = _OCCURRENCE_STEM.fullmatch(stem)
    return (match.group("key"), int(match.group("occurrence"))) if match else (stem, 1)


def record_occurrence(record: Mapping[str, Any]) -> int | None:
    """The occurrence a recording file says it is: its ``occurrence`` field, 1 when absent, or
    ``None`` when the field is not a whole number >= 1."""
    value = record.get("occurrence", 1)
    if value is None:
        return 1
    return value if type(value) is int and value >= 1 else None


# ---------------------------------------------------------------------------------------------
# Diffs, for "no recording found" messages
# ---------------------------------------------------------------------------------------------


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping) and value:
        for k in value:
            yield from _flatten(value[k], f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list | tuple) and value:
        for i, v in enumerate(value):
            yield from _flatten(v, f"{prefix}[{i}]")
    else:
        yield prefix or "(value)", value


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Change:
    """One difference between two requests, at a dotted path like ``messages[1].content``."""

    path: str
    old: Any
    new: Any
    MISSING = object()

    @property
    def distance(self) -> float:
        """How far apart the two values are: near 0 for ``'python 3.12' -> 'python 3.13'``, 1 when
        one side is absent. Breaks ties between recordings with the same number of changes."""
        if self.old is Change.MISSING or self.new is Change.MISSING:
            return 1.0
        a, b = repr(self.old)[:200], repr(self.new)[:200]
        import difflib  # only for a miss's nearest request

        return 1.0 - difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()

    def __str__(self) -> str:
        def show(v: Any) -> str:
            return "(absent)" if v is Change.MISSING else _shorten(repr(v))

        return f"{self.path}: {show(self.old)} -> {show(self.new)}"


def diff(recorded: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[Change]:
    """The leaf-level differences from a ``recorded`` request to a ``wanted`` one."""
    old = dict(_flatten(recorded))
    new = dict(_flatten(wanted))
    changes = []
    for path in list(old) + [p for p in new if p not in old]:
        a, b = old.get(path, Change.MISSING), new.get(path, Change.MISSING)
        if a != b:
            changes.append(Change(path, a, b))
    return changes


def comparable(request: Request, test_id: str | None, rules: Rules | None = None) -> dict[str, Any]:
    """The parts of a request that enter its key (under ``rules``), as one mapping to diff."""
    if isinstance(request, ToolRequest):
        kwargs = rules.apply("kwargs", request.kwargs) if rules else request.kwargs
        return {"tool": request.label, "kwargs": dict(kwargs)}
    body = rules.apply("body", request.body) if rules else request.body
    return {
        "method": request.method,
        "endpoint": request.endpoint,
        "test_id": None if request.endpoint in SHARED_ENDPOINTS else test_id,
        "body": normalize(body),
    }


#: Endpoints that list models without ``/models`` in their path (ollama's).
MODEL_LIST_ENDPOINTS = frozenset({"/api/tags", "/api/ps"})

#: How the paths of the endpoints that count a request's tokens end, no model answering:
#: Anthropic's ``/v1/messages/count_tokens``, OpenAI's ``/v1/responses/input_tokens``, Gemini's and
#: Vertex's ``models/M:countTokens``, Bedrock's ``/model/M/count-tokens``.
TOKEN_COUNT_SUFFIXES = ("/count_tokens", "/input_tokens", ":counttokens", "/count-tokens")


def call_kind(endpoint: str) -> str:
    """The kind of an API call by its endpoint: ``token_count``, ``embedding``, ``model_list`` or
    ``inference``.

    One vocabulary for ``ls``, ``%apirec status``, :func:`calls` and the frames' ``kind``
    column, which adds ``tool``, ``http``, ``other`` and ``exception`` (see the README's table).
    """
    path = endpoint.partition("?")[0].rstrip("/")
    if path.lower().endswith(TOKEN_COUNT_SUFFIXES):  # before "embed": an embedding model's count
        return "token_count"
    if "embed" in path:
        return "embedding"
    if path.endswith("/models") or path in MODEL_LIST_ENDPOINTS:
        return "model_list"
    return "inference"
