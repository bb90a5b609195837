"""What every ``notebook-recorder`` command shares: the program name, the command-line error, and
where output goes (results to stdout, failures to stderr)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from ...core._terminal import encodable

PROG = "notebook-recorder"


class CommandLineError(Exception):
    """A mistake in the command line that argparse cannot see (a missing file...): exit 2.

    Not IPython's ``UsageError``, which the magics raise."""


def out(*lines: str) -> None:
    """Results: to stdout, a line each, flushed (a name that is not valid UTF-8 escaped, never an
    ``UnicodeEncodeError``)."""
    for line in lines:
        print(encodable(line), flush=True)


def err(*lines: str) -> None:
    """Failures and errors: to stderr, so a script reading stdout (or ``--json``) sees only results."""
    for line in lines:
        print(encodable(line), file=sys.stderr, flush=True)


def print_json(value: Any) -> None:
    """``value`` as JSON on stdout; a lone surrogate (a file name that is not valid UTF-8) is
    written as its JSON escape (``"\\udc9b"``), which reads back as the same string."""
    print(encodable_json(json.dumps(value, indent=2, ensure_ascii=False)), flush=True)


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def encodable_json(text: str) -> str:
    """JSON text with each lone surrogate written as its ``\\uXXXX`` escape (valid JSON)."""
    if text.isascii():
        return text
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def existing_dir(value: str) -> Path:
    """``value`` as a directory that exists, else a :class:`CommandLineError` naming it."""
    path = Path(value).expanduser()
    if not path.exists():
        raise CommandLineError(f"no such directory: {value}")
    if not path.is_dir():
        raise CommandLineError(f"not a directory: {value}")
    return path
