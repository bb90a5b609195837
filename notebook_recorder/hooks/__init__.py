"""The hooks: what patches a library so that its calls reach the core's engine (SDKs, tools, the network guard).

May import ``notebook_recorder.core`` only; never a front end. Importing this package registers the
hooks with the core (:mod:`notebook_recorder.core._hooks`), which installs them while a recorder is active.

- ``sdk/``: the Stainless SDKs (openai, anthropic) through one shared hook.
- ``http/``: the HTTP-library hooks (one module per library).
- ``tools``: ``@nr.tool`` (with ``_toolcall``, one call of a tool under a recorder).
- ``_network``: the network guard (logs or blocks connections that bypass the hooks);
  ``_placeholder``: while replaying, a client that will not be built without a key gets the
  placeholder at its constructor (nothing is put in ``os.environ``); ``_afterimport``: patching a
  package right after its import.

The modules themselves load only when a recorder is first installed, so importing this package is light.
"""

from __future__ import annotations

from ..core import _hooks
from ..core._modes import Mode


def _install_sdks(mode: Mode | None) -> None:
    from . import sdk

    sdk.install(mode)


def _uninstall_sdks() -> None:
    from . import sdk

    sdk.uninstall()


def _install_network(mode: Mode | None) -> None:
    from . import _network

    _network.install()


def _uninstall_network() -> None:
    from . import _network

    _network.uninstall()


def _install_placeholder(mode: Mode | None) -> None:
    from . import _placeholder

    _placeholder.install(mode)


def _uninstall_placeholder() -> None:
    from . import _placeholder

    _placeholder.uninstall()


_hooks.register("sdk", _install_sdks, _uninstall_sdks)
_hooks.register("network", _install_network, _uninstall_network)
_hooks.register("placeholder", _install_placeholder, _uninstall_placeholder)
