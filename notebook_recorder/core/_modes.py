"""Recording modes, how they are parsed, and the environment overrides.

``APIREC_MODE`` and ``APIREC_DIR``, when set, win over anything chosen in code or by a magic:
CI sets ``APIREC_MODE=replay`` so that a notebook saying ``record-if-missing`` never touches
the network.
"""

from __future__ import annotations

import enum
import os
from pathlib import Path

ENV_MODE = "APIREC_MODE"
ENV_DIR = "APIREC_DIR"
# Set by ``notebook-recorder run`` in its kernels, with the value it gives ``APIREC_MODE``: the
# override then comes from ``run --mode``, not from the user's environment, and notes say so.
ENV_RUN_MODE = "NOTEBOOK_RECORDER_RUN_MODE"

REPLAY_KEY_PLACEHOLDER = "sk-notebook-recorder-replay-placeholder"
"""What ``OPENAI_API_KEY`` is set to in the modes that replay when it is unset, so that ``OpenAI()``
can be constructed. Never sent: the hooks set it (``hooks._placeholder``) and the network guard
refuses to send it (``hooks._network``); the credential rules (``_secrets``) re-export it."""


class Mode(enum.StrEnum):
    """What a recorder does with each call.

    ======================  ================================  ================================
    mode                    when a recording exists           when none exists
    ======================  ================================  ================================
    ``live``                calls the API, writes nothing     calls the API, writes nothing
    ``record``              calls the API, overwrites it      calls the API, writes it
    ``replay``              returns it, no network            raises RecordingNotFoundError
    ``record-if-missing``   returns it                        calls the API, writes it
    ======================  ================================  ================================
    """

    LIVE = "live"
    RECORD = "record"
    REPLAY = "replay"
    RECORD_IF_MISSING = "record-if-missing"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: Mode | str) -> Mode:
        """Turn ``"replay"``, ``"REPLAY"``, ``"record_if_missing"`` or a ``Mode`` into a ``Mode``.

        An unknown name raises ``ValueError`` listing the valid ones.
        """
        if isinstance(value, Mode):
            return value
        normalized = str(value).strip().lower().replace("_", "-")
        for mode in cls:
            if mode.value == normalized:
                return mode
        raise ValueError(f"unknown mode {value!r}; valid modes are: {', '.join(valid_modes())}")

    @property
    def reads(self) -> bool:
        """Whether this mode looks up existing recordings."""
        return self in (Mode.REPLAY, Mode.RECORD_IF_MISSING)

    @property
    def writes(self) -> bool:
        """Whether this mode writes recordings."""
        return self in (Mode.RECORD, Mode.RECORD_IF_MISSING)


def valid_modes() -> list[str]:
    """The four mode names, in the order the docs list them."""
    return [mode.value for mode in Mode]


def env_mode() -> Mode | None:
    """The mode forced by ``APIREC_MODE``, or ``None`` when it is unset or empty."""
    raw = os.environ.get(ENV_MODE, "").strip()
    if not raw:
        return None
    try:
        return Mode.parse(raw)
    except ValueError as exc:
        raise ValueError(f"{ENV_MODE}: {exc}") from None


def env_mode_source() -> str:
    """Who set ``APIREC_MODE``, for notes and errors: ``run --mode replay`` when
    ``notebook-recorder run`` set it for its kernel, else ``$APIREC_MODE=replay``."""
    raw = os.environ.get(ENV_MODE, "").strip()
    if raw and os.environ.get(ENV_RUN_MODE, "").strip() == raw:
        return f"run --mode {raw}"
    return f"${ENV_MODE}={raw}"


def env_dir() -> Path | None:
    """The directory forced by ``APIREC_DIR``, or ``None`` when it is unset or empty."""
    raw = os.environ.get(ENV_DIR, "").strip()
    return Path(raw) if raw else None
