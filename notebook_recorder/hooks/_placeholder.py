"""No key needed to replay: a client that cannot work without a key gets the placeholder at its constructor.

Several SDKs refuse to build a client when no key is given and none is in their environment
variable (``OpenAI()``, ``Groq()``, ``cohere.ClientV2()``, ``genai.Client()``...), and a notebook
usually builds its client before its first call, often at module level. While replaying, no key is
needed, so:

- **When.** While a recorder in a mode that replays (``replay``, ``record-if-missing``) is active,
  and, with no recorder active, while the pytest plugin runs a session in such a mode (from
  configure on: a module-level client is built when the test modules are imported, before any test
  runs). A recorder in ``record`` or ``live`` is the SDK as it is.
- **How.** The constructors of the clients in :data:`KEYED` are wrapped, at once for a package
  already imported, else right after its import (``_afterimport``); the wrappers are removed when
  the last reason ends. A wrapped constructor runs as it is; only when it raises its SDK's error
  and was given no key is it run again with :data:`REPLAY_KEY_PLACEHOLDER` as its key argument. If
  it still fails, the SDK's own first error is raised. (langchain-openai's ``ChatOpenAI`` builds
  without a key but then has no client to call with: it is built again with the placeholder when
  it ends up with no key.) A key given explicitly, or one in the environment, is used as given;
  clients that build and call without a key (``Anthropic()``, mistralai, huggingface_hub, ollama,
  llama-stack-client, litellm) are not touched.
- **Nothing in** ``os.environ``. The user's own code sees the environment as it is:
  ``os.environ.get("OPENAI_API_KEY", "local-key")`` is ``"local-key"``, a ``skipif`` on the key is
  still skipped, another library (vcrpy) reads what it always reads.
- **Never sent.** A call through a hook that would need the network with the placeholder is a
  missing recording (``live``: a refused one), and the first time a placeholder is handed out the
  network guard starts refusing to send it from any code (``_network.guard_placeholder``).

The constructor's name and its key argument are the SDKs' public API; nothing private is touched.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ..core._modes import REPLAY_KEY_PLACEHOLDER, Mode
from . import _afterimport

__all__ = [
    "KEYED",
    "REPLAY_KEY_PLACEHOLDER",
    "KeyedClients",
    "install",
    "register",
    "session_started",
    "session_stopped",
    "uninstall",
]


@dataclass(frozen=True)
class KeyedClients:
    """Clients of one module that need a key to be built, or to call once built."""

    module: str
    """The module that defines them (watched for its import): ``openai``, ``cohere.client``."""
    classes: tuple[str, ...]
    """Their names in that module (a name the installed release lacks is skipped); empty: every
    class the module defines that derives from one of :attr:`bases`."""
    error: str | None = None
    """``module:name`` of the error their constructor raises for a missing key."""
    unset: str | None = None
    """Or, for clients that build without a key but cannot call (langchain-openai's): the
    attribute that is ``None`` once built without one."""
    argument: str = "api_key"
    """The constructor argument that takes the key."""
    bases: tuple[str, ...] = ()
    """``module:name`` of the base classes that make a class of :attr:`module` a client, when
    :attr:`classes` does not name them (a Stainless SDK found by ``sdk.stainless_generic``)."""


KEYED: tuple[KeyedClients, ...] = (
    KeyedClients("openai", ("OpenAI", "AsyncOpenAI", "AzureOpenAI", "AsyncAzureOpenAI"), "openai:OpenAIError"),
    KeyedClients("groq", ("Groq", "AsyncGroq"), "groq:GroqError"),
    KeyedClients("together", ("Together", "AsyncTogether"), "together:TogetherError"),
    # ClientV2 and AsyncClientV2 build through these two, which read the key.
    KeyedClients("cohere.client", ("Client", "AsyncClient"), "cohere.core.api_error:ApiError"),
    KeyedClients("google.genai", ("Client",), "builtins:ValueError"),
    # Built without a key, they make no sync client ("Sync client is not available" at the call).
    KeyedClients("langchain_openai", ("ChatOpenAI", "OpenAIEmbeddings"), unset="openai_api_key"),
)
"""The clients given the placeholder when they will not be built without a key."""
_registered: list[KeyedClients] = []  # found at run time: Stainless SDKs without a hook of their own


def register(keyed: KeyedClients) -> None:
    """Give the clients of ``keyed`` the placeholder too (from now on, and at once while a
    replaying recorder or pytest session is active)."""
    with _lock:
        if keyed in _registered or keyed in KEYED:
            return
        _registered.append(keyed)
        if _recording or _sessions:
            _afterimport.watch(keyed.module, _imported)
            module = sys.modules.get(keyed.module)
            if module is not None:
                _wrap(keyed, module)


def _keyed() -> tuple[KeyedClients, ...]:
    return (*KEYED, *_registered)


_lock = threading.RLock()
_recording = False  # a recorder is active (the hook registry installed this)
_sessions = 0  # pytest sessions in a mode that replays (pytester nests them in one process)
# class -> the constructor it had (None: it had none of its own), while wrapped
_wrapped: dict[type, Callable[..., Any] | None] = {}


# ---------------------------------------------------------------------------------------------
# When: a recorder that replays, or a pytest session that does
# ---------------------------------------------------------------------------------------------


def install(mode: Mode | None = None) -> None:
    """A recorder in ``mode`` became active (the hook registry): wrap the constructors if it replays."""
    global _recording
    if mode is None or not mode.reads:
        return
    _afterimport.settle(keyed.module for keyed in _keyed())  # holding no lock (see _afterimport)
    with _lock:
        _recording = True
        _start()


def uninstall() -> None:
    """The last recorder ended: unwrap the constructors unless a pytest session still needs them."""
    global _recording
    with _lock:
        _recording = False
        _stop()


def session_started() -> None:
    """The pytest plugin runs a session in a mode that replays: clients built outside any
    recorder (at module level, in an unmarked test) get the placeholder too."""
    global _sessions
    _afterimport.settle(keyed.module for keyed in _keyed())
    with _lock:
        _sessions += 1
        _start()


def session_stopped() -> None:
    """The pytest session ended."""
    global _sessions
    with _lock:
        _sessions = max(0, _sessions - 1)
        _stop()


def _applies() -> bool:
    """Whether a client built now that lacks a key gets the placeholder: the active recorder
    replays, or none is active and a pytest session replays."""
    from ..core._session import active

    recorder = active()
    if recorder is not None:
        return recorder.mode.reads
    return _sessions > 0


def _start() -> None:
    for keyed in _keyed():
        _afterimport.watch(keyed.module, _imported)
        module = sys.modules.get(keyed.module)
        if module is not None:
            _wrap(keyed, module)


def _stop() -> None:
    if _recording or _sessions:
        return
    for keyed in _keyed():
        _afterimport.unwatch(keyed.module, _imported)
    for cls, init in list(_wrapped.items()):
        current = cls.__dict__.get("__init__")
        if getattr(current, "__notebook_recorder_keyless__", False):  # not replaced by someone since
            if init is None:
                delattr(cls, "__init__")
            else:
                setattr(cls, "__init__", init)  # noqa: B010  (an assignment to a method)
        del _wrapped[cls]


def _imported(module: ModuleType) -> None:
    with _lock:
        if not (_recording or _sessions):
            return
        for keyed in _keyed():
            if keyed.module == module.__name__:
                _wrap(keyed, module)


# ---------------------------------------------------------------------------------------------
# How: the wrapped constructor
# ---------------------------------------------------------------------------------------------


def _wrap(keyed: KeyedClients, module: ModuleType) -> None:
    error: type[BaseException] | None = None
    if keyed.error is not None:
        where, _, name = keyed.error.partition(":")
        try:
            error = getattr(importlib.import_module(where), name)
        except (ImportError, AttributeError):  # another release: leave its clients as they are
            return
    for class_name in keyed.classes or _clients_by_base(keyed, module):
        cls = getattr(module, class_name, None)
        if not isinstance(cls, type) or cls in _wrapped:
            continue
        own = cls.__dict__.get("__init__")
        _wrapped[cls] = own
        init = own if own is not None else getattr(cls, "__init__")  # noqa: B009  (the inherited one)
        setattr(cls, "__init__", _keyless(init, keyed, error))  # noqa: B010


def _clients_by_base(keyed: KeyedClients, module: ModuleType) -> list[str]:
    """The names of the classes in ``module`` that derive from one of ``keyed.bases`` (not the
    bases themselves; a Stainless package renames its classes' ``__module__`` to its own)."""
    bases: list[type] = []
    for base in keyed.bases:
        where, _, name = base.partition(":")
        found = getattr(sys.modules.get(where), name, None)
        if isinstance(found, type):
            bases.append(found)
    return [
        name
        for name, value in vars(module).items()
        if isinstance(value, type) and issubclass(value, tuple(bases)) and value not in bases
    ]


def _keyless(init: Callable[..., Any], keyed: KeyedClients, error: type[BaseException] | None) -> Callable[..., Any]:
    argument = keyed.argument
    errors: tuple[type[BaseException], ...] = (error,) if error is not None else ()
    signature: list[inspect.Signature] = []

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            init(self, *args, **kwargs)
        except errors:
            if not _applies():
                raise
            if not signature:
                signature.append(inspect.signature(init))
            bound = signature[0].bind(self, *args, **kwargs)  # the call was made: it binds
            if bound.arguments.get(argument) is not None or argument not in signature[0].parameters:
                raise  # a key was given: the error is not about its absence
            bound.arguments[argument] = REPLAY_KEY_PLACEHOLDER
            _handed_out()
            try:
                init(*bound.args, **bound.kwargs)
                return
            except Exception:
                pass
            raise  # it fails with a key too: the SDK's own first error
        if keyed.unset is not None and getattr(self, keyed.unset, None) is None and _applies():
            # Built without a key (none given, none in the environment): build it again with one.
            _handed_out()
            init(self, *args, **{**kwargs, argument: REPLAY_KEY_PLACEHOLDER})

    __init__.__notebook_recorder_keyless__ = True  # type: ignore[attr-defined]
    return __init__


def _handed_out() -> None:
    """The placeholder is given to a client: from now on, no socket sends it."""
    from ._network import guard_placeholder

    guard_placeholder()
