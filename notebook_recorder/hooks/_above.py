"""Whether a request is already handled by a hook above the HTTP library (a typed SDK hook, a
recorded tool): the HTTP-level hooks then let it through untouched, so it is recorded once, at the
highest layer that understands it."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

handled: contextvars.ContextVar[bool] = contextvars.ContextVar("notebook_recorder_handled_above", default=False)


@contextmanager
def above() -> Iterator[None]:
    """Mark the HTTP requests made inside as handled by the caller's hook."""
    token = handled.set(True)
    try:
        yield
    finally:
        handled.reset(token)
