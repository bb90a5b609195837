"""Text from recordings made safe to print on a terminal (``ls``, ``show``, ``verify``).

A recording is data from anyone (DESIGN.md, "Trust"): its text and its file's name may hold
control characters. Printed as they are, an escape sequence could clear the screen, set the
window title, write the clipboard (OSC 52) or move the cursor, and a carriage return or a newline
in a file name could overwrite a line or forge one (``OK: 3 files, no problems``). Every control
character (C0, DEL, C1), the Unicode line and paragraph separators and the bidirectional
overrides are shown escaped instead, as Python writes them in a string: ``\\x1b``, ``\\r``,
``\\u202e``. So are lone surrogates (``\\udc9b``): a file name that is not valid UTF-8 reaches
Python with each undecodable byte as one (``surrogateescape``), and printed it would either send
that raw byte (``0x9b`` is a C1 CSI to a terminal that reads 8-bit controls) or, where the
terminal's encoding is strict, stop the command with ``UnicodeEncodeError``.

:func:`one_line` escapes newlines and tabs too (file names, labels, one-line fields);
:func:`printable` keeps them (multi-line text whose layout is the renderer's).
"""

from __future__ import annotations

import functools

__all__ = ["encodable", "one_line", "printable"]

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_BIDI = [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C]
_SURROGATES = range(0xD800, 0xE000)
_CONTROLS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029, *_BIDI, *_SURROGATES]


def _escaped(code: int) -> str:
    char = chr(code)
    if char in _NAMED:
        return _NAMED[char]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


@functools.cache
def _tables() -> tuple[dict[int, str], dict[int, str]]:
    """The translation tables of :func:`one_line` and :func:`printable` (made on first use: their
    2,000 surrogates cost milliseconds, which a command that prints nothing need not pay)."""
    one = {code: _escaped(code) for code in _CONTROLS}
    return one, {code: text for code, text in one.items() if chr(code) not in "\n\t"}


def one_line(text: object) -> str:
    """``text`` as one printable line: every control character escaped, newlines and tabs too."""
    return str(text).translate(_tables()[0])


def printable(text: object) -> str:
    """``text`` with every control character escaped but newlines and tabs (its own layout)."""
    return str(text).translate(_tables()[1])


def encodable(text: str) -> str:
    """``text`` with its lone surrogates (and only those) escaped, so that it encodes as UTF-8.

    For output that has its own escaping already (JSON) or that is ours (messages naming a path):
    a file name that is not valid UTF-8 must not stop the command that prints it."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
