"""Setting the replay placeholder key, in a module that imports nothing but ``os`` and ``core._modes``.

In the modes that replay, ``OPENAI_API_KEY`` is set to :data:`REPLAY_KEY_PLACEHOLDER` when it is
unset, so that ``OpenAI()`` can be constructed. It is never sent: a call that would have to go to
the network with it is a missing recording, or in ``live`` a refused one (the SDK hook checks),
and setting it arms the network guard that refuses to send it by any other code (``_network``).
The SDK hooks and the pytest plugin set it from here; the credential rules in ``_secrets``
re-export it. The key itself is defined in ``core._modes``.
"""

from __future__ import annotations

import os

from ..core._modes import REPLAY_KEY_PLACEHOLDER

__all__ = ["REPLAY_KEY_PLACEHOLDER", "drop_placeholder_key", "set_placeholder_key"]

_ENV_KEY = "OPENAI_API_KEY"


def set_placeholder_key(env: str = _ENV_KEY) -> bool:
    """Set ``OPENAI_API_KEY`` (or ``env``) to the placeholder when it is unset or empty; whether it was set."""
    if os.environ.get(env):
        return False
    os.environ[env] = REPLAY_KEY_PLACEHOLDER
    from ._network import guard_placeholder

    guard_placeholder()
    return True


def drop_placeholder_key(env: str = _ENV_KEY) -> None:
    """Unset ``OPENAI_API_KEY`` (or ``env``) if it still holds the placeholder."""
    if os.environ.get(env) == REPLAY_KEY_PLACEHOLDER:
        del os.environ[env]
