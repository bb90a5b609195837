"""The ``%apirec`` line: its flags, parsing, usage messages, completion, and the recorder settings
the flags ask for. The magics in :mod:`.ipython` call these and pass the result to the engine.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

from IPython.core import magic_arguments
from IPython.core.error import TryNext, UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import line_cell_magic, no_var_expand

from ...core._match import Rules, parse_normalize_flag
from ...core._modes import Mode, valid_modes
from ...core._recorder import Recorder

SUBCOMMANDS = ("status", "off", "serve")
NETWORK_FLAGS = ("--block-network", "--allow-host", "--ignore-host", "--ignore", "--normalize", "--dir-out", "--pace")
CELL_FLAG = "--this-cell"  # hidden flag: the input transformer's way of saying "for this cell only"

_F = TypeVar("_F", bound=Callable[..., Any])

# IPython's magic_arguments and input transformers are untyped: give them types here, once.
_untyped: Any = magic_arguments


def _magic_arguments() -> Callable[[_F], _F]:
    return cast(Callable[[_F], _F], _untyped.magic_arguments())


def _argument(*args: Any, **kwargs: Any) -> Callable[[_F], _F]:
    return cast(Callable[[_F], _F], _untyped.argument(*args, **kwargs))


def _kwds(**kwargs: Any) -> Callable[[_F], _F]:
    return cast(Callable[[_F], _F], _untyped.kwds(**kwargs))


# argparse %-formats usage and help strings: "%%" prints "%".
HELP_USAGE = (
    "apirec [MODE] [--dir DIR] [--scope S] [--block-network [--allow-host HOST]]\n"
    "               [--ignore-host HOST] [--ignore PATH] [--normalize PATTERN=REPLACEMENT]\n"
    "               [--dir-out DIR] [--pace [F]]\n"
    "  %%apirec status [--clear]\n"
    "  %%apirec off\n"
    "  %%apirec serve {replay,record,record-if-missing,live,off} [--dir DIR] [--port N] [--upstream URL] [--pace [F]]\n"
    "  %%%%apirec MODE [--dir DIR] [--scope S]   (first line of a cell)"
)


def apirec_magic(method: _F) -> _F:
    """``method`` as the ``%apirec`` / ``%%apirec`` magic, with its flags (IPython's
    ``magic_arguments``, which also append them to its docstring for ``%apirec?``).

    The line is taken as written (``no_var_expand``): ``{...}`` and ``$name`` are not expanded from
    the user's namespace, so a ``--normalize`` regular expression keeps its ``\\d{4}`` and its ``$``.
    """
    decorators: tuple[Callable[[_F], _F], ...] = (
        _magic_arguments(),
        _kwds(usage=HELP_USAGE),
        _argument(
            "mode",
            nargs="?",
            metavar="MODE",
            help="live, record, replay or record-if-missing; or status, off, serve (%%%%apirec: a mode only). "
            "Without one, show the mode, directory and scope in force.",
        ),
        _argument(
            "serve_mode",
            nargs="?",
            metavar="SERVE_MODE",
            help="with serve: the mode of a loopback HTTP endpoint for other processes (replay, record, "
            "record-if-missing, live), or off; it sets OPENAI_BASE_URL and ANTHROPIC_BASE_URL for subprocesses",
        ),
        _argument("--port", type=int, metavar="N", help="with serve: the port (default: a free one)"),
        _argument(
            "--upstream", metavar="URL", help="with serve: where record and live forward (default: the API's own)"
        ),
        _argument(
            "--dir",
            metavar="DIR",
            help="the recordings directory; default: the one in use, else recordings/<notebook>/ beside the "
            "notebook, else ./recordings/ ($APIREC_DIR overrides it)",
        ),
        _argument("--scope", metavar="S", help="a name that enters every key (written as test_id); default: none"),
        _argument(
            "--block-network",
            action="store_true",
            help="a network connection that no hook records (a raw socket, a C library, an ignored host) "
            "raises NetworkBlockedError before any byte is sent; without this flag it is only "
            "reported (cell note, status). A %%%%apirec cell inside a blocking session blocks too; "
            "%%apirec MODE without the flag stops blocking",
        ),
        _argument(
            "--allow-host",
            action="append",
            metavar="HOST",
            help="with --block-network: a host name or address that may still be reached, and is not "
            "reported; repeat it or separate hosts with commas; 'localhost' allows every loopback "
            "address (blocked otherwise, as in pytest-recording)",
        ),
        _argument(
            "--ignore-host",
            action="append",
            metavar="HOST",
            help="HTTP requests to this host (a name, or name:port) are neither recorded nor replayed: a "
            "local vector database, a telemetry endpoint; repeat it or separate hosts with commas. Adds "
            "to pyproject.toml's [tool.notebook-recorder] ignore_hosts",
        ),
        _argument(
            "--ignore",
            action="append",
            metavar="PATH",
            help="leave this request field out of the key, in the path syntax of the missing-recording "
            "diff: body.metadata.run_id, body.messages[0].content, body.messages[*].name ([*]: every "
            "item), kwargs.NAME for @nr.tool arguments; repeatable. Adds to pyproject.toml's "
            "[tool.notebook-recorder] ignore",
        ),
        _argument(
            "--normalize",
            action="append",
            metavar="PATTERN=REPLACEMENT",
            help="before keying, replace every match of the regular expression PATTERN in the request's "
            "strings with REPLACEMENT (split at the last =), e.g. --normalize '\\d{4}-\\d{2}-\\d{2}=<date>'; "
            "repeatable. Adds to pyproject.toml's [tool.notebook-recorder.normalize]",
        ),
        _argument(
            "--dir-out",
            metavar="DIR",
            help="write new recordings to DIR and leave --dir untouched (record reads nothing; replay and "
            "record-if-missing look in DIR first, then in --dir; record-if-missing copies what it replays "
            "into DIR). Compare the runs with nr.diff or notebook-recorder diff",
        ),
        _argument(
            "--pace",
            nargs="?",
            const="1",
            metavar="F",
            help="replay streams at their recorded pace, F times as fast (F defaults to 1; 2 is twice as "
            "fast); without it, replay is instant",
        ),
        _argument("--clear", action="store_true", help="with status: empty the call log"),
        _argument(CELL_FLAG, action="store_true", dest="this_cell", help=argparse.SUPPRESS),
        cast(Callable[[_F], _F], no_var_expand),
        cast(Callable[[_F], _F], line_cell_magic),
    )
    for decorator in reversed(decorators):
        method = decorator(method)
    return method


def strip_comment(line: str) -> str:
    """``line`` without its trailing ``# comment``, as in Python and the shell.

    A ``#`` starts the comment when it starts a word outside quotes: ``replay  # the session``
    becomes ``replay``, while ``--dir "a#b"``, ``--dir 'a #b'`` and ``--dir a#b`` keep their ``#``.
    A quote that is never closed is left for the argument parser to report.
    """
    quote: str | None = None
    previous = " "
    for index, char in enumerate(line):
        if quote is not None:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and previous.isspace():
            return line[:index].rstrip()
        previous = char
    return line


def unquote(value: str) -> str:
    """IPython splits magic arguments the non-POSIX way: quotes stay around the value."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def usage(cell_magic: bool) -> str:
    """The one-line usage of ``%%apirec`` (``cell_magic``) or ``%apirec``, for error messages."""
    if cell_magic:
        return (
            f"%%apirec {{{','.join(valid_modes())}}} [--dir DIR] [--scope S] [--block-network] [--allow-host HOST] "
            "[--ignore-host HOST] [--ignore PATH] [--normalize PATTERN=REPLACEMENT] [--dir-out DIR] [--pace [F]]"
        )
    modes = ",".join([*valid_modes(), *SUBCOMMANDS])
    return (
        f"%apirec [{{{modes}}}] [--dir DIR] [--scope S] [--block-network] [--allow-host HOST] "
        "[--ignore-host HOST] [--ignore PATH] [--normalize PATTERN=REPLACEMENT] [--dir-out DIR] [--pace [F]] "
        "[--clear]; "
        "%apirec serve {replay,record,record-if-missing,live,off} [--dir DIR] [--port N] [--upstream URL] [--pace [F]]"
    )


@contextmanager
def usage_errors() -> Iterator[None]:
    """Settings that cannot work (an unknown ``$APIREC_MODE``, replay from a missing directory)
    become one-line ``UsageError``s instead of tracebacks."""
    try:
        yield
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None


def parse(magic: Callable[..., Any], line: str, *, cell_magic: bool) -> argparse.Namespace:
    """The arguments of ``line`` for ``magic`` (the ``apirec`` method), its mode checked: a
    :class:`UsageError` with the usage for anything wrong."""
    name = "%%apirec" if cell_magic else "%apirec"
    line = strip_comment(line)
    try:
        args = cast(argparse.Namespace, _untyped.parse_argstring(magic, line))
    except UsageError as exc:
        raise UsageError(f"{name}: {exc}. Usage: {usage(cell_magic)}") from None
    except ValueError as exc:  # unbalanced quotes
        raise UsageError(f"{name}: {exc}. Usage: {usage(cell_magic)}") from None
    cell_only = cell_magic or args.this_cell
    if args.mode is not None:
        if args.mode in SUBCOMMANDS and not cell_only:
            return args
        try:
            args.mode = Mode.parse(args.mode)
        except ValueError:
            choices = valid_modes() if cell_only else [*valid_modes(), *SUBCOMMANDS]
            name = "%%apirec" if cell_only else "%apirec"
            raise UsageError(f"{name}: unknown mode {args.mode!r}; valid choices: {', '.join(choices)}") from None
    elif cell_only:
        raise UsageError(f"%%apirec needs a mode; valid choices: {', '.join(valid_modes())}")
    return args


def reject(args: argparse.Namespace, *flags: str, command: str) -> None:
    """A :class:`UsageError` if any of ``flags`` was given to ``command``."""
    for flag in flags:
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value not in (None, False):
            raise UsageError(f"{command} does not take {flag}. Usage: {usage(command.startswith('%%'))}")


def recorder_settings(
    args: argparse.Namespace, base: Recorder | None, default: Callable[[], Path]
) -> tuple[Mode, Path, str | None]:
    """Mode, directory and scope for a new recorder: what was given, else what ``base`` used,
    else ``default()`` (the magics announce the default directory the first time)."""
    if args.dir is not None:
        directory = Path(os.path.expanduser(unquote(args.dir)))
    elif base is not None:
        directory = base.requested_dir
    else:
        directory = default()
    scope = base.scope if base is not None else None
    if args.scope is not None:
        scope = unquote(args.scope) or None  # --scope "" clears it
    return args.mode, directory, scope


def network_settings(args: argparse.Namespace, base: Recorder | None) -> dict[str, Any]:
    """``block_network`` and ``allow_hosts`` from the flags; a cell (``base`` given) also keeps
    what the recorder it runs under blocks and allows, and may allow more hosts."""
    if args.allow_host and not args.block_network and not (base is not None and base.block_network):
        raise UsageError("--allow-host only means something with --block-network")
    block = bool(args.block_network or (base is not None and base.block_network))
    hosts = [*(base.allow_hosts if base is not None else ()), *(args.allow_host or ())]
    ignored = [*(base.ignore_hosts if base is not None else ()), *(unquote(h) for h in args.ignore_host or ())]
    return {"block_network": block, "allow_hosts": [unquote(host) for host in hosts], "ignore_hosts": ignored}


def output_settings(args: argparse.Namespace, base: Recorder | None) -> dict[str, Any]:
    """``dir_out`` and ``pace`` from ``--dir-out`` and ``--pace``; a cell (``base`` given) keeps
    its session's unless it gives its own."""
    from ...core._modes import parse_pace

    dir_out: Path | None = base.requested_dir_out if base is not None else None
    if args.dir_out is not None:
        dir_out = Path(os.path.expanduser(unquote(args.dir_out)))
    pace = base.requested_pace if base is not None else None
    if args.pace is not None:
        try:
            pace = parse_pace(unquote(args.pace), "--pace")
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return {"dir_out": dir_out, "pace": pace}


def match_settings(args: argparse.Namespace, base: Recorder | None) -> dict[str, Any]:
    """``ignore`` and ``normalize`` from ``--ignore`` and ``--normalize``; a cell (``base``
    given) adds them to the explicit rules of the recorder it runs under."""
    ignore = [*(base.explicit_rules.ignore if base is not None else ())]
    ignore += [unquote(path) for path in args.ignore or ()]
    patterns = {}
    for value in args.normalize or ():
        try:
            pattern, replacement = parse_normalize_flag(unquote(value))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        patterns[pattern] = replacement
    with usage_errors():
        flags = Rules.build(normalize=patterns)
    inherited = base.explicit_rules if base is not None else Rules()
    return {"ignore": ignore, "normalize": inherited.merged(flags)}


def complete(shell: InteractiveShell, event: Any) -> list[str]:
    """``complete_command`` hook for ``%apirec`` / ``%%apirec``: modes, subcommands and flags.

    After ``--dir`` and ``--dir-out`` it defers to IPython's own (file name) completion.
    """
    text = str(event.text_until_cursor)
    words = text.split()
    previous = words if text[-1:].isspace() else words[:-1]
    cell_magic = bool(words) and words[0].startswith("%%")
    if previous and previous[-1] in (
        "--dir",
        "--dir-out",
        "--scope",
        "--allow-host",
        "--ignore-host",
        "--ignore",
        "--normalize",
    ):
        raise TryNext()
    if len(previous) <= 1:
        return valid_modes() if cell_magic else [*valid_modes(), *SUBCOMMANDS]
    command = previous[1]
    if command == "status":
        flags = ["--clear"]
    elif command == "serve":
        if len(previous) == 2:
            return [*valid_modes(), "off"]
        flags = ["--dir", "--scope", "--port", "--upstream", "--pace"]
    elif command == "off":
        flags = []
    else:
        flags = ["--dir", "--scope", *NETWORK_FLAGS]
    repeatable = ("--allow-host", "--ignore-host", "--ignore", "--normalize")
    return [flag for flag in flags if flag not in previous or flag in repeatable]


def add_completer(shell: InteractiveShell) -> None:
    """Register :func:`complete` for ``%apirec`` and ``%%apirec``."""
    for command in ("%apirec", "%%apirec"):
        cast(Any, shell).set_hook("complete_command", complete, str_key=command)


def remove_completer(shell: InteractiveShell) -> None:
    """Undo :func:`add_completer`, leaving other completers in place."""
    dispatcher = shell.strdispatchers.get("complete_command")
    if dispatcher is None:
        return
    for command in ("%apirec", "%%apirec"):
        chain = dispatcher.strs.get(command)
        if chain is None:
            continue
        chain.chain = [(p, f) for p, f in chain.chain if getattr(f, "__func__", f) is not complete]
        if not chain.chain:
            del dispatcher.strs[command]
