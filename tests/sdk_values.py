"""Helpers the SDK tests share: comparing SDK objects, and the errors of a stream cut short."""

from __future__ import annotations

import importlib
import warnings
from typing import Any

import pydantic


def snap(value: Any) -> Any:
    """A comparable form: SDK objects become (class name, model_dump), containers recurse."""
    if isinstance(value, pydantic.BaseModel):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ParsedChatCompletion's generic `parsed` field warns
            return (type(value).__qualname__, value.model_dump())
    if isinstance(value, list | tuple):
        return [snap(v) for v in value]
    if isinstance(value, dict):
        return {k: snap(v) for k, v in value.items()}
    return value


def stream_cut_errors(connection_error: type[Exception]) -> tuple[type[Exception], ...]:
    """What a connection cut mid-stream raises: the SDK's ``connection_error`` (openai 3.x and
    anthropic wrap a broken stream in it) or the transport's own (openai 2.x lets httpx's through)."""
    errors: list[type[Exception]] = [connection_error]
    for module in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(module).TransportError)
        except ImportError:
            pass
    return tuple(errors)
