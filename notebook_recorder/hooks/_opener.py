"""Who opened a connection or made a request: the user's line, the library, the HTTP library.

Reports name the client, not the layer (issue 21, item 11): a connection that no hook recorded is
shown as ``google-genai via httpx2`` (from ``cell.py:3``), a plain ``requests.get`` in the
user's code as ``requests``, a raw socket by its line alone. One walk of the stack, from the
innermost frame out:

- frames of the HTTP libraries give the HTTP library (the outermost one seen below the caller:
  ``requests`` over ``urllib3``, ``httpx2`` over ``httpcore2``; the standard library's
  ``urllib.request`` / ``http.client`` are ``urllib``);
- frames of plumbing (this package, ``h11``, ``anyio``...) and of the standard library are skipped;
- the first frame of an installed package (a file under ``site-packages``) is the **library**
  that made the request, named as its distribution (``google.genai`` is ``google-genai``);
- the first frame of anything else is the **user's code**: its ``file:line`` is the origin.

A stack with no user frame (a thread of a framework) has the library's own line as its origin.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import sys
import sysconfig
from types import FrameType
from typing import NamedTuple

from ..core._calllog import display_path

__all__ = ["HTTP_LIBRARIES", "Opener", "find", "library_name"]

HTTP_LIBRARIES = {
    "httpx": "httpx",
    "httpcore": "httpx",
    "httpx2": "httpx2",
    "httpcore2": "httpx2",
    "requests": "requests",
    "urllib3": "urllib3",
    "aiohttp": "aiohttp",
    "aiohappyeyeballs": "aiohttp",
    "websockets": "websockets",
}
"""Top-level packages of the HTTP libraries, and the name a report gives each."""

_STDLIB_HTTP = {"urllib": "urllib", "http": "urllib"}  # urllib.request over http.client

# Never the client: this package and the HTTP libraries' own plumbing.
_PLUMBING = frozenset({"notebook_recorder", "h11", "h2", "hpack", "anyio", "sniffio", "certifi", "idna"})

_STDLIB = tuple(
    {os.path.realpath(path) + os.sep for key in ("stdlib", "platstdlib") if (path := sysconfig.get_paths().get(key))}
)
_INSTALLED = (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep)


class Opener(NamedTuple):
    """Who made a request or opened a connection (see the module docstring)."""

    filename: str | None
    """The file of the user's code (or of the library, when no user frame is on the stack)."""
    line: int
    module: str
    """The top-level module of the frame ``origin`` names (``__main__``, ``tornado``...)."""
    library: str
    """The installed package that made the request, as its distribution (``google-genai``), or ``""``."""
    http: str
    """The HTTP library it went through (``httpx2``, ``requests``, ``urllib``...), or ``""``."""

    @property
    def origin(self) -> str | None:
        """``file:line`` of the user's code (or of the library, when no user frame is on the stack)."""
        return f"{display_path(self.filename)}:{self.line}" if self.filename else None

    @property
    def client(self) -> str | None:
        """``google-genai via httpx2``, ``requests``, ``google-genai``, or ``None`` (a raw socket
        in the user's code)."""
        if self.library and self.http:
            return f"{self.library} via {self.http}"
        return self.library or self.http or None

    def described(self) -> str:
        """``google-genai via httpx2 at cell.py:3``, ``cell.py:3``, or ``unknown code``."""
        client, origin = self.client, self.origin
        if client and origin:
            return f"{client} at {origin}"
        return client or origin or "unknown code"


def find(frame: FrameType | None) -> Opener:
    """The :class:`Opener` of the call in progress, walking out from ``frame``."""
    http = library = ""
    first: tuple[str, int, str] | None = None  # the first library frame: the origin when no user frame
    while frame is not None:
        name = str(frame.f_globals.get("__name__") or "")
        top = name.partition(".")[0]
        filename = frame.f_code.co_filename
        if top in HTTP_LIBRARIES:
            if not library:
                http = HTTP_LIBRARIES[top]
        elif top in _PLUMBING:
            pass
        elif _in_stdlib(filename):
            if top in _STDLIB_HTTP and not library and not http:
                http = _STDLIB_HTTP[top]
        elif _installed(filename):
            if not library:
                library = library_name(name)
            if first is None:
                first = (filename, frame.f_lineno, top)
        else:
            return Opener(filename, frame.f_lineno, top, library, http)
        frame = frame.f_back
    if first is None:
        return Opener(None, 0, "", library, http)
    return Opener(first[0], first[1], first[2], library, http)


def caller(depth: int = 1) -> Opener:
    """:func:`find` from the frame ``depth`` levels above the caller."""
    return find(sys._getframe(depth + 1))


def _in_stdlib(filename: str) -> bool:
    if filename.startswith("<frozen "):
        return True
    return filename.startswith(_STDLIB) and not _installed(filename)


def _installed(filename: str) -> bool:
    return any(part in filename for part in _INSTALLED)


@functools.lru_cache(maxsize=512)
def library_name(module: str) -> str:
    """The distribution an installed module belongs to, as users know it: ``google.genai`` is
    ``google-genai`` (``google`` is a namespace package), ``mistralai.client`` is ``mistralai``
    (a namespace package too, of one distribution). The top-level package's name when no
    distribution matches it."""
    parts = module.split(".")
    package = sys.modules.get(parts[0])
    namespace = len(parts) > 1 and package is not None and getattr(package, "__file__", None) is None
    names = ["-".join(parts[:2]), parts[0]] if namespace else [parts[0]]  # google-genai, else mistralai
    for name in names:
        for candidate in dict.fromkeys((name.replace("_", "-"), name)):
            try:
                found = importlib.metadata.distribution(candidate).metadata["Name"]
            except (importlib.metadata.PackageNotFoundError, ValueError):
                continue
            if found:
                return str(found)
    return parts[0]
