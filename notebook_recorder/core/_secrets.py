"""Every credential rule in one place (DESIGN.md, "Trust": never a secret).

- **Names.** Which request fields, query parameters, headers and tool arguments carry a credential
  (:data:`CREDENTIAL_NAMES`, compared without case, ``-`` or ``_``: ``api_key``, ``apiKey`` and
  ``Api-Key`` are one name).
- **Scrubbing.** :func:`scrub` and :func:`scrub_url` drop credentials from a request before it is
  keyed or written, so a recording replays without them.
- **Masking.** :func:`request_secrets` collects the credential *values* a request carried
  (client settings, headers, query, body, tool arguments); :func:`mask` replaces each of them with
  ``***`` wherever it comes back in a response: an error message or body that echoes the request,
  a server that echoes it in a result, a tool exception or result. The Recorder masks every
  response this way right before it is written.
- **The replay placeholder key** (:data:`REPLAY_KEY_PLACEHOLDER`), never sent anywhere.
- **The leak scan** that ``notebook-recorder verify`` runs on every file (:func:`leaks`).
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import orjson

# Never sent as a credential: set as OPENAI_API_KEY in modes that replay, so `OpenAI()` can be built.
from ._modes import REPLAY_KEY_PLACEHOLDER as REPLAY_KEY_PLACEHOLDER


def _normal(name: str) -> str:
    """``api_key``, ``apiKey``, ``API-KEY`` and ``api-key`` all read as ``apikey``."""
    return name.lower().replace("-", "").replace("_", "")


def _names(*names: str) -> frozenset[str]:
    return frozenset(_normal(name) for name in names)


# Names that always carry secrets. Values under these names are dropped from request bodies,
# query strings and tool kwargs before anything is keyed or written.
CREDENTIAL_NAMES = _names(
    "api_key",
    "admin_api_key",
    "access_token",
    "refresh_token",
    "id_token",
    "auth_token",
    "api_token",
    "bearer_token",
    "session_token",
    "security_token",
    "password",
    "passwd",
    "secret",
    "client_secret",
    "secret_key",
    "secret_access_key",
    "private_key",
    "webhook_secret",
    "credentials",
    "credential",
    "authorization",
    "proxy_authorization",
    "bearer",
    "cookie",
    "set_cookie",
    "x_api_key",
    "x_goog_api_key",
    "x_auth_token",
    "subscription_key",
    "ocp_apim_subscription_key",
)
# Credential-bearing fields of tool and MCP server definitions (anthropic's `mcp_servers[]`,
# connectors) and of cloud settings (AWS keys, OAuth client credentials).
CREDENTIAL_NAMES |= _names(
    "authorization_token",
    "oauth_token",
    "access_key",
    "access_key_id",
    "secret_access_key",
    "aws_access_key",
    "aws_access_key_id",
    "aws_secret_key",
    "aws_secret_access_key",
    "aws_session_token",
    "service_account_key",
)

# Names that carry a secret in some APIs (Google's `?key=...`) and ordinary data in others (a
# file-search filter's `{"key": "region"}`, a lookup tool's `get(key="a")`). Their values are
# dropped only when they look like a secret: see :func:`looks_secret`.
AMBIGUOUS_NAMES = _names("key", "token")

# Tool arguments: `token` always counts as a credential there (a tool's `token` argument is an
# auth token far more often than data); `key` stays ambiguous.
TOOL_CREDENTIAL_NAMES = CREDENTIAL_NAMES | _names("token")

# In a query string `key` and `token` are credentials whatever they hold (Google's `?key=`), and
# so are the parts of a presigned URL (AWS SigV4's and Google's `X-Amz-Signature`, `X-Goog-Credential`).
URL_CREDENTIAL_NAMES = CREDENTIAL_NAMES | AMBIGUOUS_NAMES
URL_CREDENTIAL_NAMES |= _names(
    "signature",
    "sig",
    "x_amz_signature",
    "x_amz_credential",
    "x_amz_security_token",
    "x_goog_signature",
    "x_goog_credential",
)

# Headers whose values are credentials (or identify the account): any name containing one of
# these, plus OpenAI's organization and project headers.
_HEADER_WORDS = ("key", "token", "secret", "auth", "password", "passwd", "cookie", "credential", "signature")
_ACCOUNT_HEADERS = _names("openai-organization", "openai-project")

# The keys of a JSON schema: a mapping under a credential name that has one of these is a schema
# (a tool parameter called `password`), not a credential, and is kept.
_SCHEMA_WORDS = frozenset(
    {
        "type",
        "properties",
        "description",
        "$ref",
        "anyOf",
        "oneOf",
        "allOf",
        "enum",
        "items",
        "title",
        "format",
        "default",
        "const",
        "pattern",
        "minLength",
        "maxLength",
        "nullable",
        "required",
        "additionalProperties",
    }
)

# A shorter value is never masked: replacing "abc" everywhere would destroy data.
MIN_SECRET_LENGTH = 6

REDACTED = "***"


# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def is_credential_name(name: str, names: frozenset[str] = CREDENTIAL_NAMES) -> bool:
    """Whether a parameter called ``name`` always carries a credential (``api_key``, ``apiKey``,
    ``password``, ``X-Api-Key``...)."""
    return _normal(name) in names


@functools.lru_cache(maxsize=1024)
def is_credential_header(name: str) -> bool:
    """Whether a header called ``name`` carries a credential or the account's identity:
    ``Authorization``, ``X-Api-Key``, ``api-key``, ``Cookie``, ``OpenAI-Organization``..."""
    normal = _normal(name)
    return normal in _ACCOUNT_HEADERS or normal in CREDENTIAL_NAMES or any(w in normal for w in _HEADER_WORDS)


def looks_secret(value: object) -> bool:
    """A string that could be a key or token: 16 characters or more, no whitespace."""
    return isinstance(value, str) and len(value) >= 16 and not any(ch.isspace() for ch in value)


def is_credential(name: str, value: object, names: frozenset[str] = CREDENTIAL_NAMES) -> bool:
    """Whether ``name=value`` carries a credential: a name in ``names``, or an ambiguous name
    (``key``, ``token``) holding a secret-looking string."""
    return is_credential_name(name, names) or (_normal(name) in AMBIGUOUS_NAMES and looks_secret(value))


def _is_schema(value: Mapping[Any, Any]) -> bool:
    return not value or any(k in _SCHEMA_WORDS for k in value)


@functools.lru_cache(maxsize=4096)
def _kind(name: str, names: frozenset[str]) -> int:
    """0: not a credential name; 1: always one (``names``); 2: ambiguous (``key``, ``token``)."""
    normal = _normal(name)
    return 1 if normal in names else 2 if normal in AMBIGUOUS_NAMES else 0


def _drops(name: object, value: Any, names: frozenset[str]) -> bool:
    """Whether the mapping entry ``name: value`` is a credential. A mapping under a credential
    name is one too, unless it is a JSON schema (``"password": {"type": "string"}``): an
    ambiguous name (``key``) holding a mapping is always data."""
    kind = _kind(name, names) if isinstance(name, str) else 0
    if not kind:
        return False
    if isinstance(value, Mapping):
        return kind == 1 and not _is_schema(value)
    return kind == 1 or looks_secret(value)


_PAIR_NAME_FIELDS = ("name", "key", "header")


def _credential_pair(item: Any, names: frozenset[str]) -> Any:
    """For an item of a list of headers that carries a credential, its value; else ``None``.

    Two shapes: ``["Authorization", "Bearer x"]`` and ``{"name": "X-Api-Key", "value": "x"}``.
    """
    if type(item) is dict:  # the usual case (messages): no ABC check
        if "value" not in item:
            return None
    elif isinstance(item, str | int | float | None):
        return None
    if isinstance(item, list | tuple):
        if len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], str):
            return item[1] if _drops(item[0], item[1], names) else None
        return None
    if isinstance(item, Mapping) and "value" in item:
        for field in _PAIR_NAME_FIELDS:
            label = item.get(field)
            if isinstance(label, str):
                value = item["value"]
                return value if value is not None and _drops(label, value, names) else None
    return None


# ---------------------------------------------------------------------------------------------
# Scrubbing requests
# ---------------------------------------------------------------------------------------------


def scrub(value: Any, names: frozenset[str] = CREDENTIAL_NAMES) -> Any:
    """A copy of ``value`` without any credential: mapping entries under credential names
    (:func:`is_credential`), at any depth, and header pairs in lists (``[["Authorization",
    "Bearer x"]]``, ``[{"name": "X-Api-Key", "value": "x"}]``).

    A mapping under a credential name is dropped too, unless it is a JSON schema: a tool
    parameter called ``key`` or ``password`` is kept, and scrubbed inside.
    """
    if isinstance(value, str | int | float | None):  # most values: skip the slower ABC checks
        return value
    if isinstance(value, dict | Mapping):
        return {k: scrub(v, names) for k, v in value.items() if not _drops(k, v, names)}
    if isinstance(value, list | tuple):
        return [scrub(v, names) for v in value if _credential_pair(v, names) is None]
    return value


def scrub_url(url: str) -> str:
    """``url`` without user info and without credential-looking query parameters."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not is_credential_name(k, URL_CREDENTIAL_NAMES)
    ]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query), parts.fragment))


# ---------------------------------------------------------------------------------------------
# Collecting the credential values a request carried
# ---------------------------------------------------------------------------------------------

# Client settings that hold credentials, read by name so no SDK module is imported here:
# openai's `OpenAI` / `AsyncOpenAI` and `AzureOpenAI` (`_azure_ad_token`), anthropic's
# `Anthropic` / `AsyncAnthropic` (`auth_token`, sent as a bearer token).
CLIENT_CREDENTIAL_ATTRIBUTES: tuple[str, ...] = (
    "api_key",
    "auth_token",
    "admin_api_key",
    "organization",
    "project",
    "webhook_secret",
    "_azure_ad_token",
)
# Bedrock's AWS keys and Vertex's access token (anthropic's `AnthropicBedrock`, `AnthropicVertex`).
CLIENT_CREDENTIAL_ATTRIBUTES += ("aws_access_key", "aws_secret_key", "aws_session_token", "access_token")


def client_credentials(client: Any) -> dict[str, Any]:
    """The credential settings of an SDK client, and its default headers and query.

    Token *providers* (``azure_ad_token_provider``) are not called here; the token they gave is
    read from the request that was sent, when an error carries it (:func:`sent_request_secrets`).
    The headers are the client's auth and custom headers, not ``default_headers``: that one runs
    ``get_platform()``, blocking work the SDK keeps off an event loop.
    """
    values = [getattr(client, name, None) for name in CLIENT_CREDENTIAL_ATTRIBUTES]
    headers = {**_safe_property(client, "auth_headers"), **_safe_property(client, "_custom_headers")}
    query = _safe_property(client, "default_query")
    return {"values": values, "headers": headers, "query": query}


def _safe_property(client: Any, name: str) -> Mapping[str, Any]:
    try:
        value = getattr(client, name, None)
    except Exception:  # a property that needs more than we have: nothing to collect from it
        return {}
    return value if isinstance(value, Mapping) else {}


def request_secrets(
    *,
    values: Iterable[Any] = (),
    headers: Any = None,
    query: Any = None,
    body: Any = None,
    names: frozenset[str] = CREDENTIAL_NAMES,
) -> tuple[str, ...]:
    """The credential values a request carried, longest first, each at least
    :data:`MIN_SECRET_LENGTH` characters, with the forms they can be echoed in.

    ``values`` are credentials as they are (an API key); ``headers`` and ``query`` are mappings or
    lists of pairs, whose credential-named entries count; ``body`` is JSON (or tool arguments)
    walked at any depth with ``names``.
    """
    found: list[str] = [v for v in values if isinstance(v, str)]
    for name, value in _pairs(headers):
        if isinstance(name, str) and isinstance(value, str) and is_credential_header(name):
            found.append(value)
            found += _header_parts(value)
    for name, value in _pairs(query):
        if isinstance(name, str) and is_credential_name(name, URL_CREDENTIAL_NAMES):
            found += _strings(value)
    found += _body_secrets(body, names)
    return _variants(found)


def sent_request_secrets(request: Any) -> tuple[str, ...]:
    """The credential values in a request as it was sent (an ``httpx.Request``, or the response
    that holds it): its headers (the real ``Authorization``, from a token provider too) and its
    query string."""
    try:
        request = getattr(request, "request", request)  # httpx raises when a response has none
        headers = list(request.headers.multi_items())
        query = parse_qsl(urlsplit(str(request.url)).query, keep_blank_values=True)
    except Exception:  # not an httpx request after all
        return ()
    return request_secrets(headers=headers, query=query)


def _pairs(value: Any) -> Iterator[tuple[Any, Any]]:
    if isinstance(value, Mapping):
        yield from value.items()
    elif isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, list | tuple) and len(item) == 2:
                yield item[0], item[1]


def _strings(value: Any) -> Iterator[str]:
    """Every string inside ``value``, keys of mappings excepted."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple | set | frozenset):
        for v in value:
            yield from _strings(v)


def _body_secrets(value: Any, names: frozenset[str]) -> Iterator[str]:
    """Strings under credential names (and in credential header pairs), at any depth."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if _drops(k, v, names):
                yield from _strings(v)
            else:
                yield from _body_secrets(v, names)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            secret = _credential_pair(item, names)
            if secret is not None:
                yield from _strings(secret)
            else:
                yield from _body_secrets(item, names)


def _header_parts(value: str) -> list[str]:
    """What a header value holds besides itself: the token of ``Bearer <token>``, the password
    of ``Basic <base64>``, each value of a cookie."""
    parts: list[str] = []
    scheme, _, rest = value.strip().partition(" ")
    if rest:
        parts.append(rest.strip())
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(rest.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                decoded = ""
            parts += [decoded, decoded.partition(":")[2]] if decoded else []
    if "=" in value:
        parts += [cookie.partition("=")[2].strip() for cookie in value.split(";") if "=" in cookie]
    if scheme.upper().startswith("AWS4-"):  # SigV4: `Credential=<key id>/<scope>, ..., Signature=<hex>`
        for field in rest.split(","):
            name, _, part = field.strip().partition("=")
            parts += [part, part.split("/", 1)[0]] if name == "Credential" else [part]
    return parts


def _variants(found: Iterable[str]) -> tuple[str, ...]:
    """Distinct secrets, with their URL-quoted and JSON-escaped forms, longest first."""
    out: set[str] = set()
    for secret in found:
        if len(secret) < MIN_SECRET_LENGTH or secret == REDACTED:
            continue
        out.add(secret)
        out.add(quote(secret, safe=""))
        out.add(orjson.dumps(secret).decode()[1:-1])
    return tuple(sorted(out, key=lambda s: (-len(s), s)))


_REQUEST_LINE = re.compile(rb"^[A-Z]{3,10} (\S+) HTTP/1\.[01]\r\n")


def sent_bytes_secrets(data: bytes) -> tuple[str, ...]:
    """The credential values in an HTTP/1.x request head as it leaves the process (the first
    bytes a socket sends): its credential headers and credential query parameters. Whatever
    built the request (a token provider, an auth flow, ``base_url`` user info, a new SDK
    release's own helper), this is what was sent. Anything else gives ``()``."""
    match = _REQUEST_LINE.match(data)
    if match is None:
        return ()
    end = data.find(b"\r\n\r\n")
    head = data[match.end() : end if end >= 0 else len(data)].decode("latin-1")
    headers = [tuple(part.strip() for part in line.split(":", 1)) for line in head.split("\r\n") if ":" in line]
    target = match.group(1).decode("latin-1")
    query = parse_qsl(urlsplit(target).query, keep_blank_values=True)
    return request_secrets(headers=headers, query=query)


# Environment variables whose values are credentials: these names, and names ending in these words.
_ENV_NAMES = frozenset(
    {
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "AZURE_OPENAI_API_KEY",
        "AZURE_OPENAI_AD_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_BEARER_TOKEN_BEDROCK",
        "GOOGLE_API_KEY",
        "GEMINI_API_KEY",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "CO_API_KEY",
        "GITHUB_TOKEN",
        "GH_TOKEN",
    }
)
_ENV_SUFFIX = re.compile(r"(?:^|_)(?:API_?KEY|KEY_ID|ACCESS_KEY|SECRET|SECRET_KEY|TOKEN|PASSWORD|PASSWD|PAT)$")


def environment_secrets(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The values of credential environment variables (``*_API_KEY``, ``*_TOKEN``,
    ``*_SECRET``, ``*_PASSWORD``, and the providers' own names), with the forms they can be
    echoed in. A value that reads as a plain word (``enabled``) is no credential.

    Every recorded call asks, so the answer for ``os.environ`` is kept until it changes (a
    snapshot of its raw items, compared at C speed).
    """
    if environ is not None:
        return _environment_secrets(environ)
    data = getattr(os.environ, "_data", None)  # CPython's raw mapping: no decoding to compare it
    snapshot = tuple(data.items()) if isinstance(data, dict) else tuple(os.environ.items())
    if snapshot != _environment_cache[0]:
        _environment_cache[:] = [snapshot, _environment_secrets(os.environ)]
    secrets: tuple[str, ...] = _environment_cache[1]
    return secrets


_environment_cache: list[Any] = [None, ()]


def _environment_secrets(environ: Mapping[str, str]) -> tuple[str, ...]:
    found = []
    for name, value in environ.items():
        upper = name.upper()
        if (upper in _ENV_NAMES or _ENV_SUFFIX.search(upper)) and _credential_like(value):
            found.append(value)
    return _variants(found)


def _credential_like(value: str) -> bool:
    if value == REPLAY_KEY_PLACEHOLDER or any(ch.isspace() for ch in value):
        return False
    return len(value) >= 16 or (len(value) >= 8 and not value.isalpha())


# Tool arguments under these names are HTTP headers: their credential entries are dropped.
_HEADER_ARGUMENTS = _names("headers", "header", "extra_headers", "default_headers", "http_headers")


def scrub_tool_argument(value: Any) -> Any:
    """A tool argument with the SDK requests' rules applied inside it, on top of :func:`scrub`:
    header mappings (under ``headers`` and the like) lose their credential headers
    (``X-Subscription-Token``, ``X-RapidAPI-Key``, ``PRIVATE-TOKEN``), and URLs lose their user
    info and credential query parameters."""
    if isinstance(value, str):
        return scrub_url(value) if _is_url(value) else value
    if isinstance(value, Mapping):
        return {
            k: _scrub_headers(v) if isinstance(k, str) and _normal(k) in _HEADER_ARGUMENTS else scrub_tool_argument(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub_tool_argument(v) for v in value]
    return value


def tool_argument_secrets(value: Any) -> tuple[str, ...]:
    """The credential values that :func:`scrub_tool_argument` drops, for masking."""
    found: list[str] = []
    _collect_tool_secrets(value, found)
    return _variants(found)


def _collect_tool_secrets(value: Any, found: list[str]) -> None:
    if isinstance(value, str):
        if _is_url(value):
            found.extend(_url_secrets(value))
    elif isinstance(value, Mapping):
        for k, v in value.items():
            if isinstance(k, str) and _normal(k) in _HEADER_ARGUMENTS:
                found.extend(request_secrets(headers=v if isinstance(v, Mapping) else list(_pairs(v))))
            else:
                _collect_tool_secrets(v, found)
    elif isinstance(value, list | tuple):
        for v in value:
            _collect_tool_secrets(v, found)


def _scrub_headers(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: v for k, v in value.items() if not (isinstance(k, str) and is_credential_header(k))}
    if isinstance(value, list | tuple):
        return [
            item
            for item in value
            if not (isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[0], str))
            or not is_credential_header(item[0])
        ]
    return scrub_tool_argument(value)


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://", "ws://", "wss://")) and len(value) < 65536


def _url_secrets(url: str) -> list[str]:
    parts = urlsplit(url)
    found = [parts.password] if parts.password else []
    if parts.username and looks_secret(parts.username):  # https://TOKEN@host
        found.append(parts.username)
    found += [
        v for k, v in parse_qsl(parts.query, keep_blank_values=True) if is_credential_name(k, URL_CREDENTIAL_NAMES)
    ]
    return found


# ---------------------------------------------------------------------------------------------
# Masking responses
# ---------------------------------------------------------------------------------------------


def mask(value: Any, secrets: Iterable[str]) -> Any:
    """``value`` (a response about to be written) with every occurrence of a secret replaced by
    ``***``, in strings and mapping keys at any depth. ``value`` itself is returned when it holds
    none of them (the usual case, checked at C speed)."""
    secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))  # no partial replacement
    if not secrets:
        return value
    try:
        text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        pass  # not plain JSON: walk it
    else:
        secrets = tuple(s for s in secrets if s in text or orjson.dumps(s).decode()[1:-1] in text)
        if not secrets:
            return value
    return _mask(value, secrets)


def _mask(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {_mask(k, secrets): _mask(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v, secrets) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# The leak scan (``notebook-recorder verify``)
# ---------------------------------------------------------------------------------------------

# Each pattern runs in linear time on any line (``verify`` scans files line by line, and a hostile
# file may hold one very long line): a match can only start where a run of its characters starts
# (a lookbehind), and no quantifier gives back what it took only to be tried again elsewhere.
# Beside each, its clues: every match contains one of them, so a pattern runs only on a file that
# holds a clue (``in`` scans text many times faster than a pattern: a 200 MB answer took 37 s).
SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str], tuple[str, ...]], ...] = (
    ("OpenAI-style API key", re.compile(r"sk-[A-Za-z0-9_-]{20,}"), ("sk-",)),
    ("Bearer token", re.compile(r"\bBearer\s++[A-Za-z0-9._~+/=-]{8,}"), ("Bearer",)),
    ("Tavily API key", re.compile(r"tvly-[A-Za-z0-9_-]{8,}"), ("tvly-",)),
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), ("AKIA", "ASIA")),
    (
        "GitHub token",
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})"),
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    ("Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), ("xox",)),
    ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}"), ("AIza",)),
    ("Google OAuth access token", re.compile(r"\bya29\.[0-9A-Za-z_-]{20,}"), ("ya29.",)),
    ("AWS SigV4 signature", re.compile(r"\bAWS4-HMAC-SHA256\s+Credential=[^\s\"']{8,}"), ("AWS4-HMAC-SHA256",)),
    ("Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}"), ("hf_",)),
    ("JSON web token", re.compile(r"(?<![\w-])eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{8,}", re.ASCII), ("eyJ",)),
    ("private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), ("-----BEGIN ",)),
    ("password in a URL", re.compile(r"(?<![\w+.-])[a-z][a-z0-9+.-]*+://[^/\s:@\"']++:[^/\s@\"']++@"), ("://",)),
)


def _shown(secret: str) -> str:
    return f"{secret[:7]}… ({len(secret)} chars)"


def _masked(value: str) -> bool:
    return REDACTED in value or value == REPLAY_KEY_PLACEHOLDER


def _credential_paths(value: Any, prefix: str, names: frozenset[str], ambiguous: bool) -> Iterator[str]:
    """Dotted paths of unmasked strings stored under credential names, or in header pairs.

    With ``ambiguous``, ``key`` and ``token`` holding secret-looking strings count too (request
    parts); elsewhere (responses) only the strict names do, as a logprob's ``token`` is data.
    """
    if isinstance(value, Mapping):
        for k, v in value.items():
            path = f"{prefix}.{k}"
            if isinstance(k, str) and (is_credential(k, v, names) if ambiguous else is_credential_name(k, names)):
                if any(s and not _masked(s) for s in _strings(v)) and not (isinstance(v, Mapping) and _is_schema(v)):
                    yield path
                    continue
            yield from _credential_paths(v, path, names, ambiguous)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            secret = _credential_pair(v, names)
            if isinstance(secret, str) and secret and not _masked(secret):
                yield f"{prefix}[{i}]"
            else:
                yield from _credential_paths(v, f"{prefix}[{i}]", names, ambiguous)


def leaks(path: Path, record: Mapping[str, Any]) -> list[str]:
    """Credential-looking things in a recording, for ``verify``: request headers, values under
    credential names anywhere in the file, and strings shaped like known keys and tokens
    (``sk-...``, ``Bearer ...``, ``AKIA...``, ``ghp_...``, ``xoxb-...``, JWTs), with line numbers."""
    findings: list[str] = []
    request = record.get("request") or {}
    if not isinstance(request, Mapping):
        request = {}
    headers = request.get("headers")
    if headers:
        names = ", ".join(headers) if isinstance(headers, Mapping) else type(headers).__name__
        findings.append(f"request.headers is not empty ({names})")
    for part in ("body", "kwargs", "payload"):
        for where in _credential_paths(request.get(part), f"request.{part}", CREDENTIAL_NAMES, True):
            findings.append(f"{where} holds a value under a credential name")
    for part, value in record.items():
        if part != "request":
            for where in _credential_paths(value, part, CREDENTIAL_NAMES, False):
                findings.append(f"{where} holds a value under a credential name")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return findings
    clued = [(what, pattern, clues) for what, pattern, clues in SECRET_PATTERNS if any(c in text for c in clues)]
    if not clued:
        return findings
    for number, line in enumerate(text.splitlines(), 1):
        for what, pattern, clues in clued:
            if not any(c in line for c in clues):
                continue
            for match in pattern.finditer(line):
                if match.group(0).startswith(REPLAY_KEY_PLACEHOLDER):
                    continue
                findings.append(f"line {number}: {what} {_shown(match.group(0))}")
    return findings
