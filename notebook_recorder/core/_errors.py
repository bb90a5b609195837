"""Errors that users see. This module imports nothing, so every part of the package can use it."""

from __future__ import annotations

__all__ = [
    "NetworkBlockedError",
    "NotRecordableError",
    "NotRecordedWarning",
    "RecordedToolError",
    "RecordingError",
    "RecordingFormatError",
    "RecordingNotFoundError",
]


class RecordingError(Exception):
    """Base class for notebook-recorder's own errors."""


class RecordingFormatError(RecordingError, ValueError):
    """A recording file that cannot be read: broken JSON or the wrong shape. Names the file."""

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def json_kind(value: object) -> str:
    """What a JSON value is, in JSON's words, for format errors: ``a number``, ``null``..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


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


class NotRecordableError(RecordingError):
    """A call that cannot be recorded, so it cannot be replayed either: the realtime API.

    The SDK's websocket connections (``client.realtime.connect()``, ``client.beta.realtime``, the
    Responses websocket) are not recorded. In ``replay`` and ``record-if-missing`` they raise this
    before any connection is opened; in ``record`` they go through with a warning; in ``live``
    nothing changes. ``what`` names the call.
    """

    def __init__(self, message: str, *, what: str) -> None:
        super().__init__(message)
        self.what = what


class NotRecordedWarning(UserWarning):
    """A call went through live but was not recorded, so a replay of the same code will not find
    it: in ``record`` mode the realtime API (a replay raises :class:`NotRecordableError`; said
    once per recorder), and any recorded call whose file could not be written (disk full, a file
    too large, no permission, a value JSON cannot hold): the caller still gets the answer, the
    warning names the call, the file and why, and ``nr.calls()`` shows the call as ``unsaved``.
    ``warnings.filterwarnings("ignore", category=nr.NotRecordedWarning)`` silences it."""


class NetworkBlockedError(RecordingError):
    """A network connection that bypasses the recorded SDK was stopped before any byte was sent.

    Raised inside a recording context opened with ``block_network=True`` (``--block-network``)
    for a connection to a host that ``allow_hosts`` (``--allow-host``) does not list, and, in any
    mode, for a send that would carry the replay placeholder key. ``destination`` is
    ``host:port`` and ``origin`` the ``file:line`` of the code that opened the connection.
    """

    def __init__(self, message: str, *, destination: str, origin: str | None) -> None:
        super().__init__(message)
        self.destination = destination
        self.origin = origin
