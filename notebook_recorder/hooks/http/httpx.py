"""The httpx hook: ``httpx.HTTPTransport`` and ``AsyncHTTPTransport`` patched (see ``_httpx``)."""

from __future__ import annotations

from ...core._modes import Mode
from . import _httpx

PACKAGE = "httpx"


def install(mode: Mode | None = None) -> None:
    """Patch httpx's transports (idempotent)."""
    _httpx.install(PACKAGE)


def uninstall() -> None:
    """Restore httpx's transports."""
    _httpx.uninstall(PACKAGE)
