"""The SDK hooks: the Stainless SDKs (openai, anthropic), each handing its calls to the core's engine (``_engine``).

May import ``notebook_recorder.core`` and ``hooks._network``/``_placeholder``; never a front end.

- ``openai_sdk`` and ``anthropic_sdk``: the Stainless SDKs, through the shared hook
  ``_stainless`` (with ``_call``, ``_describe``, ``_decode``, ``_rawtap``; every private SDK
  member in ``_compat``). A third Stainless SDK is a short module of the same kind.
- ``..http``: the HTTP libraries (httpx, httpx2, requests, aiohttp), for every request that no SDK
  hook handles; installed from here, at once or after their import, as the optional SDKs are.

:func:`install` patches openai (a dependency) and anthropic when it is installed *and* used: at
once when it is already imported, else right after its import (a post-import hook), so that
neither ``import notebook_recorder`` nor starting a recording imports it.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from ...core._modes import Mode

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

_lock = threading.Lock()
_mode: list[Mode | None] = [None]  # the mode of the last install, for SDKs imported later


def install(mode: Mode | None = None) -> None:
    """Patch every SDK hook: openai now, each optional SDK now or once it is imported."""
    from . import openai_sdk

    openai_sdk.install(mode)
    with _lock:
        _mode[0] = mode
        for package, hook in OPTIONAL.items():
            if package in sys.modules:
                _hook(hook).install(mode)
            elif _finder not in sys.meta_path:
                sys.meta_path.insert(0, _finder)


def uninstall() -> None:
    """Remove every SDK hook (and stop watching for optional SDKs)."""
    from . import openai_sdk

    openai_sdk.uninstall()
    with _lock:
        if _finder in sys.meta_path:
            sys.meta_path.remove(_finder)
        for package, hook in OPTIONAL.items():
            if package in sys.modules:
                _hook(hook).uninstall()


def _hook(name: str) -> Any:
    """The hook ``name``: a module relative to this package (``..http.httpx`` is an HTTP hook),
    or ``module:attribute`` for one of several hooks in a module (``stainless_family:groq``)."""
    module, _, attribute = name.partition(":")
    found = importlib.import_module(module if module.startswith("..") else f".{module}", __name__)
    return getattr(found, attribute) if attribute else found


def _imported(package: str) -> None:
    """An optional SDK was just imported while the hooks are installed: patch it too."""
    with _lock:
        if _finder in sys.meta_path:
            _hook(OPTIONAL[package]).install(_mode[0])


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the loader of an optional SDK's package so that its hook is
    installed once the package has been executed."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in OPTIONAL:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader, fullname)
                return spec
        return None


class _Loader(importlib.abc.Loader):
    def __init__(self, inner: Any, package: str) -> None:
        self._inner = inner
        self._package = package

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        self._inner.exec_module(module)
        _imported(self._package)

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, is_package...
        return getattr(self._inner, name)


_finder = _AfterImport()
