"""Errors that users see. This module imports nothing, so every part of the package can use it."""

from __future__ import annotations

__all__ = ["RecordedToolError", "RecordingError", "RecordingFormatError", "RecordingNotFoundError"]


class RecordingError(Exception):
    """Base class for notebook-recorder's own errors."""


class RecordingFormatError(RecordingError, ValueError):
    """A recording file that cannot be read: broken JSON or the wrong shape. Names the file."""

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class RecordingNotFoundError(RecordingError, LookupError):
    """Replay found no recording for a request.

    The message names the request, shows the nearest recorded request in the directory with the
    smallest diff between the two, and says how to record the missing call.
    """

    def __init__(self, message: str, *, key: str, request: object, directory: object) -> None:
        super().__init__(message)
        self.key = key
        self.request = request
        self.directory = directory


class RecordedToolError(RecordingError):
    """A recorded tool exception whose class cannot be imported or built here.

    ``type_name`` is the original ``<module>.<qualname>`` and ``message`` its message.
    """

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
