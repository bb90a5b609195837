"""The hooks that a recording installs: a registry the hooks add themselves to.

The core never imports a hook. Each hook (``notebook_recorder.hooks``) registers an ``install``
and an ``uninstall`` here when it is imported; :mod:`._session` calls :func:`install_all` when the
first recorder becomes active and :func:`uninstall_all` when the last one ends, in the order the
hooks registered.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from ._modes import Mode

__all__ = ["Hook", "install_all", "register", "registered", "uninstall_all", "unregister"]


@dataclass(frozen=True)
class Hook:
    """A registered hook: ``install(mode)`` patches, ``uninstall()`` removes the patches."""

    name: str
    install: Callable[[Mode | None], None]
    uninstall: Callable[[], None]


_lock = threading.Lock()
_hooks: dict[str, Hook] = {}


def register(name: str, install: Callable[[Mode | None], None], uninstall: Callable[[], None]) -> None:
    """Add a hook (or replace the one of the same ``name``); both callables must be idempotent."""
    with _lock:
        _hooks[name] = Hook(name, install, uninstall)


def unregister(name: str) -> None:
    """Remove the hook registered as ``name`` (nothing when there is none); its patches stay as they are."""
    with _lock:
        _hooks.pop(name, None)


def registered() -> tuple[Hook, ...]:
    """The registered hooks, in the order they registered."""
    with _lock:
        return tuple(_hooks.values())


def install_all(mode: Mode | None) -> None:
    """Install every registered hook for a recorder in ``mode``."""
    for hook in registered():
        hook.install(mode)


def uninstall_all() -> None:
    """Remove every registered hook's patches."""
    for hook in registered():
        hook.uninstall()
