"""The SDK hooks: the Stainless SDKs (openai, anthropic), each handing its calls to the core's engine (``_engine``).

May import ``notebook_recorder.core`` and ``hooks._network``/``_placeholder``/``_afterimport``; never a front end.

- ``openai_sdk`` and ``anthropic_sdk``: the Stainless SDKs, through the shared hook
  ``_stainless`` (with ``_call``, ``_describe``, ``_decode``, ``_rawtap``; every private SDK
  member in ``_compat``). A third Stainless SDK is a short module of the same kind;
  ``stainless_generic`` detects any other one (cerebras-cloud-sdk) when it is imported.
- ``..http``: the HTTP libraries (httpx, httpx2, requests, aiohttp), for every request that no SDK
  hook handles; installed from here, at once or after their import, as the optional SDKs are.

:func:`install` patches openai (a dependency) and anthropic when it is installed *and* used: at
once when it is already imported, else right after its import (a post-import hook), so that
neither ``import notebook_recorder`` nor starting a recording imports it (``.._afterimport``).
"""

from __future__ import annotations

import importlib
import sys
import threading
from types import ModuleType
from typing import Any

from ...core._modes import Mode
from .. import _afterimport

# Optional packages: package -> the hook module that patches it (Stainless SDKs, then the HTTP
# libraries: every request no SDK hook handles is recorded at the HTTP level).
OPTIONAL = {
    "anthropic": "anthropic_sdk",
    "groq": "stainless_family:groq",
    "together": "stainless_family:together",
    "llama_stack_client": "stainless_family:llama_stack_client",
    "httpx": "..http.httpx",
    "httpx2": "..http.httpx2",
    "requests": "..http.requests",
    "aiohttp": "..http.aiohttp",
}

# Any other Stainless SDK is detected when its ``<package>._base_client`` is imported (``stainless_generic``).
_SUFFIX = "._base_client"

_lock = threading.Lock()
_mode: list[Mode | None] = [None]  # the mode of the last install, for SDKs imported later
_installed = [False]  # whether the hooks are installed, so that an SDK imported now is patched


def install(mode: Mode | None = None) -> None:
    """Patch every SDK hook: openai now, each optional SDK now or once it is imported."""
    from . import openai_sdk

    openai_sdk.install(mode)
    _settle()
    with _lock:
        _mode[0] = mode
        _installed[0] = True
        for package, hook in OPTIONAL.items():
            _afterimport.watch(package, _imported)
            if package in sys.modules:
                _hook(hook).install(mode)
        _afterimport.watch_suffix(_SUFFIX, _base_client_imported)
        if any(name.endswith(_SUFFIX) for name in list(sys.modules)):
            from . import stainless_generic

            for generic in stainless_generic.imported():
                generic.install(mode)


def uninstall() -> None:
    """Remove every SDK hook (and stop watching for optional SDKs)."""
    from . import openai_sdk

    openai_sdk.uninstall()
    _settle()
    with _lock:
        _installed[0] = False
        for package, hook in OPTIONAL.items():
            _afterimport.unwatch(package, _imported)
            if package in sys.modules:
                _hook(hook).uninstall()
        _afterimport.unwatch_suffix(_SUFFIX, _base_client_imported)
        if "notebook_recorder.hooks.sdk.stainless_generic" in sys.modules:
            from . import stainless_generic

            for generic in stainless_generic.hooks():
                generic.uninstall()


def _settle() -> None:
    """Wait, holding no lock, for the packages another thread is still importing (``_afterimport``)."""
    modules = list(sys.modules)
    _afterimport.settle([*OPTIONAL, *(name[: -len(_SUFFIX)] for name in modules if name.endswith(_SUFFIX))])


def _hook(name: str) -> Any:
    """The hook ``name``: a module relative to this package (``..http.httpx`` is an HTTP hook),
    or ``module:attribute`` for one of several hooks in a module (``stainless_family:groq``)."""
    module, _, attribute = name.partition(":")
    found = importlib.import_module(module if module.startswith("..") else f".{module}", __name__)
    return getattr(found, attribute) if attribute else found


def _imported(module: ModuleType) -> None:
    """An optional SDK was just imported while the hooks are installed: patch it too."""
    with _lock:
        if _installed[0]:
            _hook(OPTIONAL[module.__name__]).install(_mode[0])


def _base_client_imported(module: ModuleType) -> None:
    """A module named ``*._base_client`` was just imported while the hooks are installed: if its
    package is a Stainless SDK with no hook of its own, patch it (``stainless_generic``)."""
    with _lock:
        if not _installed[0]:
            return
        from . import stainless_generic

        hook = stainless_generic.detected(module)
        if hook is not None:
            hook.install(_mode[0])
