"""Any other Stainless-generated SDK, detected when it is imported (cerebras-cloud-sdk, nested in
``cerebras.cloud.sdk``), on the shared hook (``_stainless``).

A package is taken for a Stainless SDK only when it has every piece the shared hook touches
(``_compat``), each of the expected kind: ``<package>._base_client`` with ``BaseClient``,
``SyncAPIClient`` and ``AsyncAPIClient`` whose ``request`` has the Stainless signature
``(self, cast_to, options, *, stream=False, stream_cls=None)`` and the private methods the hook
calls; ``_streaming.Stream``/``AsyncStream``; ``_models.BaseModel`` (a pydantic model);
``_constants.RAW_RESPONSE_HEADER``; ``_utils.is_given``/``extract_type_arg``; ``_types.NOT_GIVEN``;
``_exceptions.APIError``/``APIStatusError``/``APIConnectionError`` and the SDK's base error that
``APIError`` derives from. If anything is missing, the package is not hooked: its requests stay
recorded at the HTTP level, which is always correct.

Detection costs nothing per unrelated import but one ``str.endswith``: the post-import finder
(``.._afterimport``) calls :func:`detected` right after a module named ``*._base_client`` has run
(its package is still importing then, but ``_base_client`` itself has imported every module
checked here). Only modules already in ``sys.modules`` are looked at: nothing is imported.

A detected SDK's recordings hold its own ``__type__`` classes, allowed for decoding only once the
SDK has been imported and detected in this process (``core._types.register_sdk``): a file never
adds a package to the allowlist. Its API key's variable is not guessed: messages name "the
SDK's API key", and a client built without a key in replay gets no placeholder.
"""

from __future__ import annotations

import inspect
import sys
import threading
from types import ModuleType

from ...core._types import register_sdk
from .. import _placeholder
from ._compat import StainlessSdk
from ._stainless import Hook

SUFFIX = "._base_client"

# The SDKs that have their own description (``hooks.sdk.OPTIONAL``, openai): never hooked twice.
KNOWN = frozenset({"openai", "anthropic", "groq", "together", "llama_stack_client"})

_lock = threading.Lock()
_hooks: dict[str, Hook] = {}  # package -> its hook, once detected

_REQUEST = [
    ("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
    ("cast_to", inspect.Parameter.POSITIONAL_OR_KEYWORD),
    ("options", inspect.Parameter.POSITIONAL_OR_KEYWORD),
    ("stream", inspect.Parameter.KEYWORD_ONLY),
    ("stream_cls", inspect.Parameter.KEYWORD_ONLY),
]
_CLIENT_METHODS = (
    "request",
    "_process_response",
    "_process_response_data",
    "_make_status_error_from_response",
    "_maybe_override_cast_to",
    "_prepare_url",
)


def why_not(package: str) -> str | None:
    """Why ``package`` is not a Stainless SDK the shared hook can patch, or ``None`` when it is.
    Reads ``sys.modules`` only."""

    def module(name: str) -> ModuleType | None:
        return sys.modules.get(f"{package}.{name}")

    def cls(name: str, attr: str) -> type | None:
        found = getattr(module(name), attr, None)
        return found if isinstance(found, type) else None

    base = module("_base_client")
    clients = [cls("_base_client", name) for name in ("BaseClient", "SyncAPIClient", "AsyncAPIClient")]
    if base is None or None in clients:
        return "no _base_client with BaseClient, SyncAPIClient and AsyncAPIClient"
    for client in clients[1:]:
        assert client is not None
        if not issubclass(client, clients[0]):  # type: ignore[arg-type]
            return f"{client.__name__} does not derive from BaseClient"
        for method in _CLIENT_METHODS:
            if not callable(getattr(client, method, None)):
                return f"{client.__name__} has no {method}"
        if not _stainless_request(client.request):  # type: ignore[attr-defined]
            return f"{client.__name__}.request does not have the Stainless signature"
    for streaming in ("Stream", "AsyncStream"):
        if cls("_streaming", streaming) is None:
            return f"no _streaming.{streaming}"
    import pydantic

    model = cls("_models", "BaseModel")
    if model is None or not issubclass(model, pydantic.BaseModel):
        return "no _models.BaseModel (a pydantic model)"
    if not isinstance(getattr(module("_constants"), "RAW_RESPONSE_HEADER", None), str):
        return "no _constants.RAW_RESPONSE_HEADER"
    utils = module("_utils")
    if not (callable(getattr(utils, "is_given", None)) and callable(getattr(utils, "extract_type_arg", None))):
        return "no _utils.is_given and extract_type_arg"
    if not hasattr(module("_types"), "NOT_GIVEN"):
        return "no _types.NOT_GIVEN"
    errors = [cls("_exceptions", name) for name in ("APIError", "APIStatusError", "APIConnectionError")]
    if None in errors or not all(issubclass(e, errors[0]) for e in errors if e is not None):  # type: ignore[arg-type]
        return "no _exceptions.APIError, APIStatusError and APIConnectionError"
    if base_error(package) is None:
        return "APIError does not derive from an error class of the SDK's own"
    return None


def _stainless_request(method: object) -> bool:
    try:
        parameters = list(inspect.signature(method).parameters.values())  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return [(p.name, p.kind) for p in parameters] == _REQUEST


def base_error(package: str) -> str | None:
    """The name of the SDK's base error (``CerebrasError``): the class ``APIError`` derives from,
    defined in the SDK's ``_exceptions`` (which the package's ``__init__`` renames to its own
    ``__module__`` once it has run)."""
    api_error = getattr(sys.modules.get(f"{package}._exceptions"), "APIError", None)
    if not isinstance(api_error, type):
        return None
    parent = api_error.__bases__[0]
    if parent.__module__ not in (f"{package}._exceptions", package) or not issubclass(parent, Exception):
        return None
    return parent.__name__


def describe(package: str) -> StainlessSdk:
    """The shared hook's description of a detected SDK: OpenAI's wire conventions, as every
    Stainless SDK has them (``x-request-id``, ``x-ratelimit-*``); its key is not guessed."""
    return StainlessSdk(
        package=package,
        env_key=f"the {package} SDK's API key",
        kept_headers=frozenset({"x-request-id", "content-type"}),
        kept_header_prefixes=("x-ratelimit-",),
        request_id_header="x-request-id",
        stream_end=b"data: [DONE]",
        needs_key=False,  # which client attribute holds its key is not known: a keyless call goes live
    )


def detected(module: ModuleType) -> Hook | None:
    """The hook for the package of ``module`` (``<package>._base_client``), when it is a Stainless
    SDK without a hook of its own; else ``None`` (the package stays at the HTTP level)."""
    name = module.__name__
    if not name.endswith(SUFFIX):
        return None
    package = name[: -len(SUFFIX)]
    if package.partition(".")[0] in KNOWN:
        return None
    with _lock:
        hook = _hooks.get(package)
        if hook is not None:
            return hook
        if why_not(package) is not None:
            return None
        error = base_error(package)
        assert error is not None
        register_sdk(package, error)
        # Its clients (in ``_client``, not yet imported) raise the base error without a key.
        _placeholder.register(
            _placeholder.KeyedClients(
                f"{package}._client",
                (),
                f"{package}._exceptions:{error}",
                bases=(f"{package}._base_client:SyncAPIClient", f"{package}._base_client:AsyncAPIClient"),
            )
        )
        hook = _hooks[package] = Hook(describe(package))
        return hook


def imported() -> list[Hook]:
    """The hooks of every Stainless SDK already imported (a recording started after the import)."""
    found = []
    # The names only, then the few modules that match: copying sys.modules' items (thousands of
    # new tuples in a notebook with pandas loaded) set off the garbage collector, and made each
    # nr.start() cost milliseconds.
    for name in [name for name in list(sys.modules) if name.endswith(SUFFIX)]:
        module = sys.modules.get(name)
        if module is not None:
            hook = detected(module)
            if hook is not None:
                found.append(hook)
    return found


def hooks() -> list[Hook]:
    """Every hook detected so far."""
    with _lock:
        return list(_hooks.values())
