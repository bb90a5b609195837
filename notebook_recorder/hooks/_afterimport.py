"""Running a hook right after a module is imported, without importing it: one finder on ``sys.meta_path``.

The hooks patch optional packages only once the user's code imports them, so that neither
``import notebook_recorder`` nor starting a recording imports an SDK. :func:`watch` asks for a
callback to run with the module once it has been executed (the SDK hooks, the replay key
fallback of ``_placeholder``); :func:`unwatch` withdraws it. The finder finds nothing itself: it
asks the finders after it and wraps the loader of a watched module. It is on ``sys.meta_path``
only while something is watched, and one finder serves every watcher, so that two of them never
wrap each other.

Installing a hook while another thread imports its package
-----------------------------------------------------------
A hook's ``install`` and ``uninstall`` run under the hook's own lock and import the package's
modules (an SDK's private ones); a callback runs in the importing thread, under the import
system's lock of the module just executed, and takes the hook's lock. A package is in
``sys.modules`` from the moment its import starts. Had a hook been installed on a package another
thread was still importing, this thread would have run the package's modules beside that
thread's import of them: each saw the other's half-run modules and both failed ("cannot import
name ... from partially initialized module"), the user's ``import anthropic`` included; or, with
that thread in a callback, the two would have waited for each other for ever (an import lock then
the hook's lock, against the hook's lock then an import lock). So a hook calls :func:`settle` on
the packages it is about to touch *before* taking its lock: importing each waits, under the
import system's own lock only, until the other thread has finished, and that thread's callbacks
take the hook's lock freely meanwhile. This module's own ``_lock`` is never held while a
callback runs or anything is imported.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from types import ModuleType
from typing import Any

__all__ = ["settle", "unwatch", "unwatch_suffix", "watch", "watch_suffix"]

Callback = Callable[[ModuleType], None]

_lock = threading.Lock()
_watched: dict[str, list[Callback]] = {}  # module name -> callbacks, in the order they were added
# Name endings (``._base_client``) -> callbacks, for modules of packages not known in advance.
_suffixes: dict[str, list[Callback]] = {}
_endings: list[tuple[str, ...]] = [()]  # the keys of ``_suffixes``, for one ``str.endswith`` per import


def watch(name: str, callback: Callback) -> None:
    """Call ``callback(module)`` each time the module ``name`` (``openai``, ``google.genai``) is
    imported from now on, right after its code has run. Adding the same callback twice adds it once."""
    with _lock:
        callbacks = _watched.setdefault(name, [])
        if callback not in callbacks:
            callbacks.append(callback)
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)


def watch_suffix(suffix: str, callback: Callback) -> None:
    """Call ``callback(module)`` each time a module whose name ends in ``suffix`` (``._base_client``)
    is imported from now on. It costs one ``str.endswith`` per import of another module."""
    with _lock:
        callbacks = _suffixes.setdefault(suffix, [])
        if callback not in callbacks:
            callbacks.append(callback)
        _endings[0] = tuple(_suffixes)
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)


def unwatch_suffix(suffix: str, callback: Callback) -> None:
    """Stop calling ``callback`` for modules ending in ``suffix``."""
    with _lock:
        _forget(_suffixes, suffix, callback)
        _endings[0] = tuple(_suffixes)


def unwatch(name: str, callback: Callback) -> None:
    """Stop calling ``callback`` for ``name`` (nothing if it was not watched)."""
    with _lock:
        _forget(_watched, name, callback)


def _forget(table: dict[str, list[Callback]], key: str, callback: Callback) -> None:
    """Remove ``callback`` from ``table[key]`` (the key with it, once empty), and the finder from
    ``sys.meta_path`` once nothing is watched. Called holding ``_lock``."""
    callbacks = table.get(key, [])
    if callback in callbacks:
        callbacks.remove(callback)
    if not callbacks:
        table.pop(key, None)
    if not _watched and not _suffixes and _finder in sys.meta_path:
        sys.meta_path.remove(_finder)


def settle(names: Iterable[str]) -> None:
    """Wait until each module of ``names`` that is in ``sys.modules`` has been imported to the end
    (another thread may still be running it); call it holding no lock. A module already imported
    costs a dictionary lookup; one whose import fails is that import's to report."""
    for name in names:
        if name in sys.modules:
            try:
                importlib.import_module(name)
            except Exception:  # the importing thread has the error to report
                pass


def _imported(module: ModuleType, name: str) -> None:
    with _lock:
        callbacks = list(_watched.get(name, ()))
        callbacks += [c for suffix, found in _suffixes.items() if name.endswith(suffix) for c in found]
    for callback in callbacks:
        callback(module)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the loader of a watched module so that its callbacks run once
    the module has been executed."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _watched and not fullname.endswith(_endings[0]):
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
    def __init__(self, inner: Any, name: str) -> None:
        self._inner = inner
        self._name = name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        self._inner.exec_module(module)
        _imported(module, self._name)

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, is_package...
        return getattr(self._inner, name)


_finder = _AfterImport()
