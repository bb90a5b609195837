"""The httpx2 hook: ``httpx2.HTTPTransport`` and ``AsyncHTTPTransport`` patched (see ``_httpx``)."""

from __future__ import annotations

from ...core._modes import Mode
from . import _httpx

PACKAGE = "httpx2"


def install(mode: Mode | None = None) -> None:
    """Patch httpx2's transports (idempotent)."""
    _httpx.install(PACKAGE)


def uninstall() -> None:
    """Restore httpx2's transports."""
    _httpx.uninstall(PACKAGE)
