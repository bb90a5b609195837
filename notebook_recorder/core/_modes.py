"""Recording modes, how they are parsed, and the environment overrides.

``APIREC_MODE`` and ``APIREC_DIR``, when set, win over anything chosen in code or by a magic:
CI sets ``APIREC_MODE=replay`` so that a notebook saying ``record-if-missing`` never touches
the network. ``APIREC_DIR_OUT`` and ``APIREC_PACE`` (set by ``notebook-recorder run --dir-out``
and ``--pace``) win over ``dir_out`` and ``pace`` the same way.
"""

from __future__ import annotations

import enum
import os
from pathlib import Path

ENV_MODE = "APIREC_MODE"
ENV_DIR = "APIREC_DIR"
ENV_DIR_OUT = "APIREC_DIR_OUT"
ENV_PACE = "APIREC_PACE"
# Set by ``notebook-recorder run`` in its kernels, with the value it gives ``APIREC_MODE``: the
# override then comes from ``run --mode``, not from the user's environment, and notes say so.
ENV_RUN_MODE = "NOTEBOOK_RECORDER_RUN_MODE"

REPLAY_KEY_PLACEHOLDER = "sk-notebook-recorder-replay-placeholder"
"""The key given, in the modes that replay, to a client built without one that needs one (``OpenAI()``
with no ``OPENAI_API_KEY``), so that it can be constructed; never put in ``os.environ`` (but by
``nr.serve``, for its subprocesses). Never sent: the hooks hand it out (``hooks._placeholder``) and
the network guard refuses to send it (``hooks._network``); the credential rules (``_secrets``)
re-export it."""


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


def env_dir_out() -> Path | None:
    """Where ``APIREC_DIR_OUT`` sends new recordings (``run --dir-out``), or ``None`` when unset."""
    raw = os.environ.get(ENV_DIR_OUT, "").strip()
    return Path(raw) if raw else None


def parse_pace(value: float | str | None, where: str = "pace") -> float | None:
    """A replay pace factor: ``None`` (instant), or a positive number (1 = as recorded, 2 = twice
    as fast). Anything else raises ``ValueError`` naming ``where``."""
    if value is None:
        return None
    try:
        factor = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: not a number: {value!r} (give a factor such as 1 or 2)") from None
    if not factor > 0 or factor == float("inf"):
        raise ValueError(f"{where}: must be a positive number, not {value!r} (1 = as recorded, 2 = twice as fast)")
    return factor


def env_pace() -> float | None:
    """The replay pace forced by ``APIREC_PACE`` (``run --pace``), or ``None`` when unset."""
    raw = os.environ.get(ENV_PACE, "").strip()
    return parse_pace(raw, ENV_PACE) if raw else None
