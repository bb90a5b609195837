"""IPython magics: ``%apirec`` for the session, ``%%apirec`` for one cell.

``%load_ext notebook_recorder`` registers them; ``%unload_ext notebook_recorder`` removes them,
their event callbacks and every patch they installed.

::

    %apirec replay [--dir DIR] [--scope S]     session mode
            [--block-network [--allow-host HOST]]   stop traffic that bypasses the SDK
    %%apirec record-if-missing [--dir DIR]     this cell only; the previous mode comes back after it
    %apirec                                    the mode, directory and scope in force
    %apirec status [--clear]                   this session's calls as a table
    %apirec off                                back to live, patches removed

This module is a thin adapter, in the manner of IPython's autoreload and storemagic: it parses
arguments, calls the engine in :mod:`notebook_recorder._session` (``start``, ``stop``,
``recording``, ``calls``, ``set_cell``) and renders what comes back. It decides nothing about
recording itself.

How ``%%apirec`` runs its cell
------------------------------
A cell magic normally receives its body as a string and runs it with a nested ``run_cell``. In a
Jupyter kernel that breaks top-level ``await``: the nested run cannot drive the kernel's event
loop, which is already running. So the extension adds an input transformer that rewrites the
magic's first line (and only that line) into a call that enters the recording for the current
cell; the body stays top-level code of the cell. ``await``, the display of the last expression,
tracebacks and line numbers behave exactly as in any other cell. The ``post_execute`` event,
which IPython and ipykernel trigger in a ``finally`` block, restores the previous state, also
after an exception or an interrupt. ``%%apirec`` still works as an ordinary cell magic when it is
called directly (``get_ipython().run_cell_magic("apirec", "replay", body)``).

Because the first line stays one line, the body keeps its line numbers. IPython caches the
rewritten source of each cell for its tracebacks; when the rewritten line runs it notes which
cached cell it is in, and while IPython formats a traceback (``InteractiveTB.structured_traceback``,
wrapped while the extension is loaded) those cells show the user's ``%%apirec`` line instead of
the call. Only then: the rest of the time the cache holds valid Python, which ``inspect`` parses.

A trailing ``# comment`` on a ``%apirec`` or ``%%apirec`` line is ignored, as in Python: a ``#``
that starts a word outside quotes starts the comment (``--dir "a#b"`` and ``--dir a#b`` keep it).

Settings are traitlets: ``%config ApiRecMagics.quiet = True`` turns off the notes the extension
prints by itself (the per-cell note and the directory announcement), and so does
``--ApiRecMagics.quiet=True`` on a kernel's command line. Everything the extension shows by itself
(the notes, the ``%apirec`` state, the status table, and the package's own warnings, such as
``UnknownTypeWarning``) is display data whose output metadata is
``{"notebook_recorder": {"role": ...}}`` (:data:`OWN_OUTPUT_KEY`): Jupyter shows it as plain text
(not as a stderr warning), a terminal prints it, and ``notebook-recorder run --check`` leaves it
out of the comparison, so a notebook saved from a record run passes a replay check. The notes
carry no timings, and every line starts with :data:`NOTE_PREFIX`.
"""

from __future__ import annotations

import argparse
import html
import linecache
import os
import re
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, cast

import IPython
from IPython.core import inputtransformer2, magic_arguments
from IPython.core.error import TryNext, UsageError
from IPython.core.interactiveshell import ExecutionInfo, InteractiveShell
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.display import display
from traitlets import Bool

from . import _calllog, _recorder, _session
from ._calllog import Call
from ._errors import RecordingNotFoundError
from ._match import Rules, parse_normalize_flag
from ._modes import ENV_DIR, ENV_MODE, Mode, env_dir, env_mode, valid_modes
from ._notebooks import OWN_OUTPUT_KEY
from ._recorder import Recorder

__all__ = [
    "NOTEBOOK_ENV",
    "NOTE_PREFIX",
    "OWN_OUTPUT_KEY",
    "ApiRecMagics",
    "CallTable",
    "DefaultDir",
    "default_dir",
    "load_ipython_extension",
    "notebook_path",
    "own_output_metadata",
    "strip_comment",
    "unload_ipython_extension",
]

NOTEBOOK_ENV = "NOTEBOOK_RECORDER_NOTEBOOK"
"""Set by ``notebook-recorder run`` to the path of the notebook the kernel executes."""

VSCODE_VARIABLE = "__vsc_ipynb_file__"
"""Set by VS Code in the user namespace to the notebook's path."""

JUPYTER_SESSION_ENV = "JPY_SESSION_NAME"
"""Set by Jupyter Server in the kernel's environment to the notebook's path."""

NOTE_PREFIX = "apirec: "
"""Every line the extension prints by itself starts with this (for reading; ``run --check`` goes by
the outputs' :data:`OWN_OUTPUT_KEY` metadata, not by this text)."""

SUBCOMMANDS = ("status", "off")
_NETWORK_FLAGS = ("--block-network", "--allow-host", "--ignore", "--normalize")
CELL_FLAG = "--this-cell"  # hidden flag: the input transformer's way of saying "for this cell only"

_F = TypeVar("_F", bound=Callable[..., Any])

# IPython's magic_arguments and input transformers are untyped: give them types here, once.
_untyped: Any = magic_arguments


def _magic_arguments() -> Callable[[_F], _F]:
    return cast(Callable[[_F], _F], _untyped.magic_arguments())


def _argument(*args: Any, **kwargs: Any) -> Callable[[_F], _F]:
    return cast(Callable[[_F], _F], _untyped.argument(*args, **kwargs))


def _line_cell_magic(method: _F) -> _F:
    return cast(_F, line_cell_magic(method))


def _no_var_expand(method: _F) -> _F:
    """The line is taken as written: ``{...}`` and ``$name`` are not expanded from the user's
    namespace, so a ``--normalize`` regular expression keeps its ``\\d{4}`` and its ``$``."""
    return no_var_expand(method)


def _kwds(**kwargs: Any) -> Callable[[_F], _F]:
    return cast(Callable[[_F], _F], _untyped.kwds(**kwargs))


def _parse_argstring(magic: Any, line: str) -> argparse.Namespace:
    return cast(argparse.Namespace, _untyped.parse_argstring(magic, line))


def _transform_cell_magic(lines: list[str]) -> list[str]:
    return cast(list[str], cast(Any, inputtransformer2).cell_magic(lines))


# argparse %-formats usage and help strings: "%%" prints "%".
_HELP_USAGE = (
    "apirec [MODE] [--dir DIR] [--scope S] [--block-network [--allow-host HOST]]\n"
    "               [--ignore PATH] [--normalize PATTERN=REPLACEMENT]\n"
    "  %%apirec status [--clear]\n"
    "  %%apirec off\n"
    "  %%%%apirec MODE [--dir DIR] [--scope S]   (first line of a cell)"
)

_CELL_MAGIC_LINE = re.compile(r"%%apirec(?:[ \t]+(?P<args>.*?))?[ \t]*\r?\n?\Z")


# ---------------------------------------------------------------------------------------------
# The default directory
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DefaultDir:
    """Where recordings go when no ``--dir`` is given, and why."""

    path: Path
    notebook: Path | None = None
    source: str | None = None  # the variable that named the notebook

    def describe(self) -> str:
        """One line: ``recordings go to recordings/quickstart/ (notebook quickstart.ipynb)``."""
        where = _display(self.path).rstrip("/") + "/"
        if self.notebook is None:
            why = "the kernel does not know which notebook it runs"
        else:
            why = f"notebook {self.notebook.name}"
        return f"recordings go to {where} ({why})"


def notebook_path(user_ns: dict[str, Any] | None = None) -> tuple[Path, str] | None:
    """The notebook this kernel runs, and the variable that said so, when it can be told.

    Looked up in order: ``$NOTEBOOK_RECORDER_NOTEBOOK`` (``notebook-recorder run``), the user
    namespace's ``__vsc_ipynb_file__`` (VS Code), ``$JPY_SESSION_NAME`` (Jupyter Server). Only
    ``.ipynb`` paths count. A relative path that does not exist from the working directory is
    taken to name a notebook in the working directory: Jupyter Server gives paths relative to its
    root, and starts the kernel in the notebook's directory.
    """
    candidates = (
        (os.environ.get(NOTEBOOK_ENV), NOTEBOOK_ENV),
        ((user_ns or {}).get(VSCODE_VARIABLE), VSCODE_VARIABLE),
        (os.environ.get(JUPYTER_SESSION_ENV), JUPYTER_SESSION_ENV),
    )
    for raw, source in candidates:
        if not isinstance(raw, str) or not raw.strip():
            continue
        path = Path(raw.strip()).expanduser()
        if path.suffix.lower() != ".ipynb":
            continue
        if not path.is_absolute() and not path.exists():
            path = Path(path.name)
        return path, source
    return None


def default_dir(user_ns: dict[str, Any] | None = None) -> DefaultDir:
    """``recordings/<notebook stem>/`` beside the notebook when it is known, else ``./recordings/``.

    When the nearest ``pyproject.toml`` has ``[tool.notebook-recorder] dir``, that directory
    takes the place of ``recordings`` (``<dir>/<notebook stem>/``, else ``<dir>/``).
    """
    from ._config import project_config

    try:
        project_dir = project_config().dir
    except ValueError:  # a malformed table: the recorder started next reports it
        project_dir = None
    found = notebook_path(user_ns)
    if found is None:
        return DefaultDir(project_dir or Path(_recorder.DEFAULT_DIR))
    notebook, source = found
    base = project_dir or notebook.parent / _recorder.DEFAULT_DIR
    return DefaultDir(base / notebook.stem, notebook, source)


def _display(path: Path | str) -> str:
    """A path relative to the working directory when it is below it, with ``/`` separators."""
    path = Path(path)
    try:
        shown = path.resolve().relative_to(Path.cwd().resolve())
        return shown.as_posix() if str(shown) != "." else "."
    except (ValueError, OSError):
        return path.as_posix()


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------

_COUNTED_BEFORE_HOOKS = tuple(IPython.version_info[:2]) >= (9, 8)

_COLUMNS = ("#", "cell", "kind", "endpoint / tool", "model", "outcome", "occurrence", "file", "time")
_NUMERIC = frozenset({"#", "cell", "occurrence", "time"})
_OUTCOMES = ("replayed", "recorded", "live", "missing", "error", "unrecorded", "blocked")


@dataclass(frozen=True)
class CallTable:
    """This session's calls as a table: aligned text in a terminal, HTML in a notebook."""

    calls: Sequence[Call]

    def rows(self) -> list[tuple[str, ...]]:
        """One tuple of strings per call, in :data:`_COLUMNS` order."""
        return [
            (
                str(call.index),
                "" if call.cell is None else str(call.cell),
                call.kind,
                call.endpoint,
                call.model or "",
                _outcome(call),
                str(call.occurrence),  # the k-th identical request of its recording context
                call.path or call.origin or "",
                f"{call.ms:.1f} ms",  # with its unit, so `run --check` reads it as a duration
            )
            for call in self.calls
        ]

    def summary(self) -> str:
        """``3 calls: 2 replayed, 1 recorded``."""
        if not self.calls:
            return "no calls in this session yet"
        return f"{_plural(len(self.calls), 'call')}: {_counts(self.calls)}"

    def __repr__(self) -> str:
        if not self.calls:
            return NOTE_PREFIX + self.summary()
        rows = self.rows()
        widths = [max(len(column), *(len(row[i]) for row in rows)) for i, column in enumerate(_COLUMNS)]

        def line(cells: Sequence[str]) -> str:
            padded = (
                cell.rjust(width) if column in _NUMERIC else cell.ljust(width)
                for column, cell, width in zip(_COLUMNS, cells, widths, strict=True)
            )
            return "  ".join(padded).rstrip()

        rule = "  ".join("-" * width for width in widths)
        return "\n".join([line(_COLUMNS), rule, *(line(row) for row in rows), "", self.summary()])

    def _repr_html_(self) -> str:
        if not self.calls:
            return f"<p>{html.escape(NOTE_PREFIX + self.summary())}</p>"

        def cell(tag: str, column: str, text: str, title: str = "") -> str:
            align = "right" if column in _NUMERIC else "left"
            tip = f' title="{html.escape(title)}"' if title else ""
            return f'<{tag} style="text-align: {align}; white-space: nowrap"{tip}>{html.escape(text)}</{tag}>'

        head = "".join(cell("th", column, column) for column in _COLUMNS)
        file_at = _COLUMNS.index("file")

        def row_html(row: tuple[str, ...]) -> str:
            cells = [
                cell("td", column, _short_path(text), text) if i == file_at else cell("td", column, text)
                for i, (column, text) in enumerate(zip(_COLUMNS, row, strict=True))
            ]
            return "<tr>" + "".join(cells) + "</tr>"

        body = "\n".join(row_html(row) for row in self.rows())
        return (
            '<table class="apirec-status">\n'
            f"<caption>apirec: {html.escape(self.summary())}</caption>\n"
            f"<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"
        )


def _short_path(path: str) -> str:
    """``recordings/x/3c8462613af4…json`` as ``x/3c8462613af4…``: the directory and the key's start.

    The status table shows this; the full path is the cell's tooltip.
    """
    if not path:
        return ""
    parent, _, name = path.replace("\\", "/").rpartition("/")
    stem = name.removesuffix(".json")
    if len(stem) > 16:
        stem = stem[:12] + "…"
    folder = parent.rpartition("/")[2]
    return f"{folder}/{stem}" if folder else stem


def _outcome(call: Call) -> str:
    if call.error and call.outcome != "missing":
        return f"{call.outcome} ({call.error})"
    return call.outcome


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _counts(calls: Sequence[Call]) -> str:
    counted = Counter(call.outcome for call in calls)
    ordered = [*_OUTCOMES, *sorted(set(counted) - set(_OUTCOMES))]
    return ", ".join(f"{counted[outcome]} {outcome}" for outcome in ordered if counted[outcome])


def own_output_metadata(role: str) -> dict[str, Any]:
    """The output metadata of an output the extension shows by itself: ``{"notebook_recorder":
    {"role": role}}``, with ``role`` one of ``note``, ``state``, ``status``, ``warning``. ``notebook-recorder run
    --check`` leaves outputs carrying it out of the comparison."""
    return {OWN_OUTPUT_KEY: {"role": role}}


def cell_note(calls: Sequence[Call]) -> str | None:
    """The note printed after a cell, e.g. ``apirec: replayed 2 calls from recordings/quickstart``.

    ``None`` when the cell neither replayed nor recorded anything and opened no network
    connection outside the hooks. Deterministic: no timings.
    """
    network = _network_note(calls)
    counted = Counter(call.outcome for call in calls if call.kind != "network")
    replayed, recorded = counted["replayed"], counted["recorded"]
    if not replayed and not recorded:
        return network
    parts = []
    if replayed:
        parts.append(f"replayed {_plural(replayed, 'call')}")
    if recorded:
        parts.append(f"recorded {_plural(recorded, 'call')}")
    if counted["missing"]:
        parts.append(f"{counted['missing']} missing")
    if counted["error"]:
        parts.append(f"{counted['error']} failed")
    directories = sorted(
        {Path(call.path).parent.as_posix() for call in calls if call.path and call.outcome in ("replayed", "recorded")}
    )
    preposition = "in" if replayed and recorded else ("from" if replayed else "to")
    where = f" {preposition} {', '.join(directories)}" if directories else ""
    note = f"{NOTE_PREFIX}{', '.join(parts)}{where}"
    return f"{note}\n{network}" if network else note


def _network_note(calls: Sequence[Call]) -> str | None:
    """``apirec: 2 network connections outside the openai SDK, not recorded: host:443 (from x.py:3)``."""
    network = [call for call in calls if call.kind == "network"]
    if not network:
        return None
    lines = []
    for outcome, verb in (("unrecorded", "not recorded"), ("blocked", "blocked")):
        chosen = [call for call in network if call.outcome == outcome]
        if not chosen:
            continue
        places = dict.fromkeys(
            f"{call.endpoint} (from {call.origin})" if call.origin else call.endpoint for call in chosen
        )
        shown = ", ".join(list(places)[:3]) + (f" and {len(places) - 3} more" if len(places) > 3 else "")
        noun = _plural(len(chosen), "network connection")
        lines.append(f"{NOTE_PREFIX}{noun} outside the openai SDK, {verb}: {shown}")
    return "\n".join(lines) or None


# ---------------------------------------------------------------------------------------------
# The magics
# ---------------------------------------------------------------------------------------------


@dataclass
class _Frame:
    """One ``run_cell`` in progress: what to undo and what to report when it ends."""

    calls_before: int
    last_call: Call | None
    cell: int | None = None  # execution count; None for silent runs (no pre_run_cell)
    contexts: list[tuple[_session.recording, Recorder]] = field(default_factory=list)


@magics_class
class ApiRecMagics(Magics):
    """``%apirec`` / ``%%apirec``: record or replay the openai SDK calls of a session or a cell."""

    quiet = Bool(
        False,
        help="Print nothing unasked: no note after cells that replayed or recorded, and no "
        "announcement of the default recordings directory.",
    ).tag(config=True)

    def __init__(self, shell: InteractiveShell | None = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._frames: list[_Frame] = []
        self._nested: list[Recorder] = []  # recorders of %%apirec cells run as nested cells
        self._occurrences = _recorder.Occurrences()  # what %%apirec cells count with, without a session
        self._announced: Path | None = None
        self._owns_custom_exc = False
        self._rewritten: dict[str, str] = {}  # first lines written by transform -> the user's
        self._cell_files: dict[str, tuple[str, str]] = {}  # cached cell -> (rewritten, user's line)
        self._structured_traceback: Callable[..., Any] | None = None  # IPython's, while wrapped
        self._showwarning: Callable[..., None] | None = None  # the one before ours, while loaded

    @property
    def _shell(self) -> InteractiveShell:
        assert self.shell is not None, "ApiRecMagics needs a shell"
        return self.shell

    # -- the magic ----------------------------------------------------------------------------

    @_magic_arguments()
    @_kwds(usage=_HELP_USAGE)
    @_argument(
        "mode",
        nargs="?",
        metavar="MODE",
        help="live, record, replay or record-if-missing; or status, off (%%%%apirec: a mode only). "
        "Without one, show the mode, directory and scope in force.",
    )
    @_argument(
        "--dir",
        metavar="DIR",
        help="the recordings directory; default: the one in use, else recordings/<notebook>/ beside the "
        "notebook, else ./recordings/ ($APIREC_DIR overrides it)",
    )
    @_argument("--scope", metavar="S", help="a name that enters every key (written as test_id); default: none")
    @_argument(
        "--block-network",
        action="store_true",
        help="a network connection that bypasses the openai SDK and @nr.tool (a framework's own HTTP "
        "client) raises NetworkBlockedError before any byte is sent; without this flag it is only "
        "reported (cell note, status). A %%%%apirec cell inside a blocking session blocks too; "
        "%%apirec MODE without the flag stops blocking",
    )
    @_argument(
        "--allow-host",
        action="append",
        metavar="HOST",
        help="with --block-network: a host name or address that may still be reached, and is not "
        "reported; repeat it or separate hosts with commas; 'localhost' allows every loopback "
        "address (blocked otherwise, as in pytest-recording)",
    )
    @_argument(
        "--ignore",
        action="append",
        metavar="PATH",
        help="leave this request field out of the key, in the path syntax of the missing-recording "
        "diff: body.metadata.run_id, body.messages[0].content, body.messages[*].name ([*]: every "
        "item), kwargs.NAME for @nr.tool arguments; repeatable. Adds to pyproject.toml's "
        "[tool.notebook-recorder] ignore",
    )
    @_argument(
        "--normalize",
        action="append",
        metavar="PATTERN=REPLACEMENT",
        help="before keying, replace every match of the regular expression PATTERN in the request's "
        "strings with REPLACEMENT (split at the last =), e.g. --normalize '\\d{4}-\\d{2}-\\d{2}=<date>'; "
        "repeatable. Adds to pyproject.toml's [tool.notebook-recorder.normalize]",
    )
    @_argument("--clear", action="store_true", help="with status: empty the call log")
    @_argument(CELL_FLAG, action="store_true", dest="this_cell", help=argparse.SUPPRESS)
    @_no_var_expand
    @_line_cell_magic
    def apirec(self, line: str, cell: str | None = None) -> None:
        """Record or replay the openai SDK calls (and @nr.tool calls) of this session or one cell.

        Modes: live (calls the API, writes nothing), record (calls the API, overwrites the
        recording), replay (returns the recording, no network; a missing one raises
        RecordingNotFoundError), record-if-missing (returns the recording, else records it).
        $APIREC_MODE and $APIREC_DIR, when set, override the mode and directory chosen here.

        Examples::

          %apirec replay                         every call of the session, from now on
          %apirec record-if-missing --dir recs   record what is not recorded yet, in ./recs
          %apirec replay --block-network         also stop traffic that bypasses the SDK
          %apirec replay --block-network --allow-host localhost   ... except to loopback
          %apirec replay --ignore body.metadata.run_id            leave a volatile field out of the key
          %apirec replay --normalize '\\d{4}-\\d{2}-\\d{2}=<date>'     match any date in a prompt
          %%apirec record                        first line of a cell: this cell only
          %apirec                                the mode, directory and scope in force
          %apirec status                         this session's calls, as a table
          %apirec status --clear                 empty that table
          %apirec off                            back to live calls, the SDK unpatched

        Without --dir the directory in use is kept; the first one is recordings/<notebook
        stem>/ beside the notebook when the kernel can tell which notebook it runs, else
        ./recordings/. A note after each cell says what was replayed or recorded, and which
        network connections bypassed the openai SDK (not recorded, so they would not replay);
        turn it off with %config ApiRecMagics.quiet = True. The notes, the state and the status
        table are tagged in their output metadata, so `notebook-recorder run --check` does not
        compare them. A trailing # comment is ignored (a # inside quotes is kept). The line is
        taken as written: {...} and $name are not expanded from the namespace.

        Matching is strict: a request replays only the recording of the same request. For parts
        that change on every run (a date in a prompt, a run id), --ignore PATH leaves a field out
        of the key and --normalize PATTERN=REPLACEMENT rewrites matching strings before keying;
        files keep the request as sent. Project-wide rules (and a default dir) go in
        pyproject.toml's [tool.notebook-recorder] table; these flags add to them, and a
        %%apirec cell adds to its session's.
        """
        args = self._parse(line, cell_magic=cell is not None)
        if cell is not None or args.this_cell:
            self._reject(args, "--clear", command=f"%%apirec {args.mode}")
            if cell is not None:
                self._run_cell_body(args, cell)
            else:
                self._enter_cell(args)
        elif args.mode is None:
            self._reject(args, *_NETWORK_FLAGS, "--dir", "--scope", "--clear", command="%apirec without a mode")
            self._show(self.state(), "state")
        elif args.mode == "status":
            self._reject(args, *_NETWORK_FLAGS, "--dir", "--scope", command="%apirec status")
            self._status(clear=args.clear)
        elif args.mode == "off":
            self._reject(args, *_NETWORK_FLAGS, "--dir", "--scope", "--clear", command="%apirec off")
            _session.stop()
        else:
            self._reject(args, "--clear", command=f"%apirec {args.mode}")
            self._start(args)

    # -- parsing ------------------------------------------------------------------------------

    def _parse(self, line: str, *, cell_magic: bool) -> argparse.Namespace:
        name = "%%apirec" if cell_magic else "%apirec"
        line = strip_comment(line)
        try:
            args = _parse_argstring(self.apirec, line)
        except UsageError as exc:
            raise UsageError(f"{name}: {exc}. Usage: {_usage(cell_magic)}") from None
        except ValueError as exc:  # unbalanced quotes
            raise UsageError(f"{name}: {exc}. Usage: {_usage(cell_magic)}") from None
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

    @staticmethod
    def _reject(args: argparse.Namespace, *flags: str, command: str) -> None:
        for flag in flags:
            value = getattr(args, flag.lstrip("-").replace("-", "_"))
            if value not in (None, False):
                usage = _usage(cell_magic=command.startswith("%%"))
                raise UsageError(f"{command} does not take {flag}. Usage: {usage}")

    # -- session mode -------------------------------------------------------------------------

    def _recorder_args(self, args: argparse.Namespace, base: Recorder | None) -> tuple[Mode, Path, str | None]:
        """Mode, directory and scope for a new recorder: what was given, else what ``base`` used,
        else the default directory (announced the first time)."""
        if args.dir is not None:
            directory = Path(os.path.expanduser(_unquote(args.dir)))
        elif base is not None:
            directory = base.requested_dir
        else:
            default = default_dir(self._shell.user_ns)
            directory = default.path
            self._announce(default)
        scope = base.scope if base is not None else None
        if args.scope is not None:
            scope = _unquote(args.scope) or None  # --scope "" clears it
        return args.mode, directory, scope

    @staticmethod
    def _network_args(args: argparse.Namespace, base: Recorder | None) -> dict[str, Any]:
        """``block_network`` and ``allow_hosts`` from the flags; a cell (``base`` given) also keeps
        what the recorder it runs under blocks and allows, and may allow more hosts."""
        if args.allow_host and not args.block_network and not (base is not None and base.block_network):
            raise UsageError("--allow-host only means something with --block-network")
        block = bool(args.block_network or (base is not None and base.block_network))
        hosts = [*(base.allow_hosts if base is not None else ()), *(args.allow_host or ())]
        return {"block_network": block, "allow_hosts": [_unquote(host) for host in hosts]}

    @staticmethod
    def _match_args(args: argparse.Namespace, base: Recorder | None) -> dict[str, Any]:
        """``ignore`` and ``normalize`` from ``--ignore`` and ``--normalize``; a cell (``base``
        given) adds them to the explicit rules of the recorder it runs under."""
        ignore = [*(base.explicit_rules.ignore if base is not None else ())]
        ignore += [_unquote(path) for path in args.ignore or ()]
        patterns = {}
        for value in args.normalize or ():
            try:
                pattern, replacement = parse_normalize_flag(_unquote(value))
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            patterns[pattern] = replacement
        with _usage_errors():
            flags = Rules.build(normalize=patterns)
        inherited = base.explicit_rules if base is not None else Rules()
        return {"ignore": ignore, "normalize": inherited.merged(flags)}

    def _start(self, args: argparse.Namespace) -> None:
        mode, directory, scope = self._recorder_args(args, _session.session())
        network = self._network_args(args, None)
        with _usage_errors():
            recorder = _session.start(mode, directory, scope, **network, **self._match_args(args, None))
        self._warn_override(recorder)

    def _announce(self, default: DefaultDir) -> None:
        forced = env_dir()
        path = forced if forced is not None else default.path
        if self.quiet or path == self._announced:
            return
        self._announced = path
        if forced is not None:
            self._show(f"{NOTE_PREFIX}recordings go to {_display(forced).rstrip('/')}/ (${ENV_DIR})")
        else:
            self._show(NOTE_PREFIX + default.describe())

    def _warn_override(self, recorder: Recorder) -> None:
        if not self.quiet and recorder.mode is not recorder.requested_mode:
            self._show(f"{NOTE_PREFIX}${ENV_MODE}={recorder.mode} overrides {recorder.requested_mode}")

    # -- this cell only -----------------------------------------------------------------------

    def _enter_cell(self, args: argparse.Namespace) -> None:
        """The first line of a ``%%apirec`` cell, rewritten by the input transformer."""
        self._remember_cell_file()
        if not self._frames:
            raise UsageError("%%apirec must be the first line of a cell")
        context = self._cell_recording(args)
        recorder = context.__enter__()
        self._frames[-1].contexts.append((context, recorder))
        self._count_with_session(recorder)

    def _remember_cell_file(self) -> None:
        """Note which cached cell source runs this ``%%apirec`` line, and what the user wrote.

        The cell is the nearest calling frame whose cached first line is one :meth:`transform`
        wrote; :meth:`_traceback_as_written` shows the user's line there.
        """
        frame = sys._getframe(1)
        while frame is not None:
            filename = frame.f_code.co_filename
            entry = linecache.cache.get(filename)
            if entry is not None and len(entry) == 4 and entry[2]:
                original = self._rewritten.get(entry[2][0])
                if original is not None:
                    self._cell_files[filename] = (entry[2][0], original)
                    return
            frame = frame.f_back  # type: ignore[assignment]

    @contextmanager
    def _cells_as_written(self) -> Iterator[None]:
        """The cached source of the ``%%apirec`` cells shows the user's first line, for a while."""
        swapped: list[tuple[str, tuple[Any, ...], tuple[Any, ...]]] = []
        for filename, (rewritten, original) in self._cell_files.items():
            entry = linecache.cache.get(filename)
            if entry is not None and len(entry) == 4 and entry[2] and entry[2][0] == rewritten:
                size, mtime, lines, name = entry
                shown = (size, mtime, [original, *lines[1:]], name)
                linecache.cache[filename] = shown
                swapped.append((filename, tuple(entry), shown))
        try:
            yield
        finally:
            for filename, entry, shown in swapped:
                if linecache.cache.get(filename) is shown:
                    linecache.cache[filename] = entry  # type: ignore[assignment]

    def _traceback_as_written(self, *args: Any, **kwargs: Any) -> Any:
        """``InteractiveTB.structured_traceback``, with the ``%%apirec`` cells as written."""
        assert self._structured_traceback is not None
        with self._cells_as_written():
            return self._structured_traceback(*args, **kwargs)

    def _run_cell_body(self, args: argparse.Namespace, cell: str) -> None:
        """``%%apirec`` called as a plain cell magic: run the body as a nested cell."""
        with self._cell_recording(args) as recorder:
            self._count_with_session(recorder)
            self._nested.append(recorder)
            try:
                cast(Any, self._shell).run_cell(cell)
            finally:
                self._nested.remove(recorder)

    def _count_with_session(self, recorder: Recorder) -> None:
        """A ``%%apirec`` cell counts repeated requests with the session (or, without one, with
        the other ``%%apirec`` cells): a question asked again in a later cell is its next
        occurrence, never an overwrite of the first answer."""
        session = _session.session()
        recorder.occurrences = session.occurrences if session is not None else self._occurrences

    def _cell_recording(self, args: argparse.Namespace) -> _session.recording:
        base = _session.active()
        mode, directory, scope = self._recorder_args(args, base)
        network = self._network_args(args, base)
        with _usage_errors():
            context = _session.recording(mode, directory, scope, **network, **self._match_args(args, base))
        if not self.quiet and (forced := env_mode()) is not None and forced is not mode:
            self._show(f"{NOTE_PREFIX}${ENV_MODE}={forced} overrides {mode}")
        return context

    # -- state and status ---------------------------------------------------------------------

    def state(self) -> str:
        """What ``%apirec`` prints: the mode, directory and scope in force, and the overrides."""
        recorder = _session.active()
        forced_mode, forced_dir = os.environ.get(ENV_MODE) or None, os.environ.get(ENV_DIR) or None
        if recorder is None:
            default = default_dir(self._shell.user_ns)
            rows = [
                ("mode", "live (no recorder: calls go to the API, the openai SDK is not patched)"),
                ("dir", f"{_display(default.path)} (the default for %apirec MODE)"),
                ("scope", "none"),
                ("set by", "nothing yet: %apirec MODE starts a recorder"),
            ]
        else:
            rows = [
                ("mode", recorder.mode.value),
                ("dir", _display(recorder.dir)),
                ("scope", recorder.scope if recorder.scope is not None else "none"),
                ("set by", self._set_by(recorder)),
            ]
            if recorder.rules:
                project = recorder.project.path
                origin = f" (with {_display(project)})" if project is not None and recorder.project.rules else ""
                rows.append(("match", recorder.rules.describe() + origin))
            if recorder.block_network:
                allowed = ", ".join(sorted(recorder.allow_hosts)) or "nothing"
                rows.append(("network", f"blocked outside the openai SDK (allowed: {allowed})"))
        if forced_mode is None:
            rows.append((ENV_MODE, "not set"))
        elif recorder is not None and recorder.mode is not recorder.requested_mode:
            rows.append((ENV_MODE, f"{forced_mode} (overrides {recorder.requested_mode})"))
        else:
            rows.append((ENV_MODE, f"{forced_mode} (overrides any mode chosen here)"))
        if forced_dir is None:
            rows.append((ENV_DIR, "not set"))
        elif recorder is not None and env_dir() != recorder.requested_dir:
            rows.append((ENV_DIR, f"{forced_dir} (overrides {_display(recorder.requested_dir)})"))
        else:
            rows.append((ENV_DIR, f"{forced_dir} (overrides any directory chosen here)"))
        width = max(len(name) for name, _ in rows) + 1
        return "\n".join(f"{name + ':':<{width}} {value}" for name, value in rows)

    def _set_by(self, recorder: Recorder) -> str:
        if recorder is _session.session():
            return "%apirec (session)"
        if any(recorder is own for frame in self._frames for _, own in frame.contexts) or recorder in self._nested:
            return "%%apirec (this cell)"
        return "nr.recording() (a with block or decorator)"

    def _status(self, *, clear: bool) -> None:
        calls = _calllog.calls()
        if clear:
            _calllog.clear_calls()
            self._show(f"{NOTE_PREFIX}call log cleared ({_plural(len(calls), 'call')})", "status")
            return
        cast(Callable[..., None], display)(CallTable(calls), metadata=own_output_metadata("status"))

    def _show(self, text: str, role: str = "note") -> None:
        """Show one of the extension's own outputs: display data with only a ``text/plain``
        version, tagged :func:`own_output_metadata` (a terminal prints the text)."""
        publisher: Any = cast(Any, self._shell).display_pub
        publisher.publish(data={"text/plain": text}, metadata=own_output_metadata(role))

    def _show_warning(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        """``warnings.showwarning`` while loaded: the package's own warnings (``UnknownTypeWarning``,
        ...) are shown like its notes, tagged; any other warning goes where it went before."""
        if file is None and category.__module__.partition(".")[0] == "notebook_recorder":
            self._show(f"{NOTE_PREFIX}{category.__name__}: {message}", "warning")
        elif self._showwarning is not None:
            self._showwarning(message, category, filename, lineno, file, line)

    # -- events -------------------------------------------------------------------------------

    def _pre_execute(self) -> None:
        calls = _calllog.calls()
        self._frames.append(_Frame(len(calls), calls[-1] if calls else None))

    def _pre_run_cell(self, info: ExecutionInfo) -> None:
        if not self._frames:
            return
        shell = self._shell
        # IPython 9.8+ counts the cell before these hooks run, older versions after them.
        counted = info.store_history and _COUNTED_BEFORE_HOOKS
        count = shell.execution_count - 1 if counted else shell.execution_count
        self._frames[-1].cell = count
        if len(self._frames) == 1:
            _calllog.set_cell(count)

    def _post_execute(self) -> None:
        # An empty cell triggers post_execute without pre_execute; at top level there is then no
        # frame, so nothing happens.
        if not self._frames:
            return
        frame = self._frames.pop()
        self._unwind(frame)
        if not self._frames and frame.cell is not None and not self.quiet:
            note = cell_note(_calls_since(frame))
            if note:
                self._show(note)

    @staticmethod
    def _unwind(frame: _Frame) -> None:
        while frame.contexts:
            context, _ = frame.contexts.pop()
            try:
                context.__exit__(None, None, None)
            except Exception as exc:  # pragma: no cover - recording.__exit__ does not raise
                print(f"{NOTE_PREFIX}could not restore the previous mode: {exc}")

    # -- input transformer and completer ------------------------------------------------------

    def transform(self, lines: list[str]) -> list[str]:
        """Input transformer: ``%%apirec ARGS`` as the first line becomes a call that enters the
        recording for this cell; the body is left as top-level code (see the module docstring)."""
        if not lines:
            return lines
        match = _CELL_MAGIC_LINE.match(lines[0])
        if match is None:
            return lines
        argstring = f"{CELL_FLAG} {match.group('args') or ''}".strip()
        body = lines[1:]
        if body and body[0].startswith("%%"):
            body = _transform_cell_magic(body)  # another cell magic right after ours
        rewritten = f"get_ipython().run_line_magic('apirec', {argstring!r})\n"
        # What the user wrote, for _remember_cell_file (a few recent lines are enough).
        self._rewritten.pop(rewritten, None)
        self._rewritten[rewritten] = lines[0].rstrip("\r\n") + "\n"
        while len(self._rewritten) > 32:
            del self._rewritten[next(iter(self._rewritten))]
        return [rewritten, *body]

    # Let `check_complete` treat `%%apirec` like any cell magic (a blank line ends it in a terminal).
    transform.has_side_effects = True  # type: ignore[attr-defined]

    # -- lifecycle ----------------------------------------------------------------------------

    def attach(self) -> None:
        """Register the event callbacks, the input transformer and the completer."""
        shell = self._shell
        shell.events.register("pre_execute", self._pre_execute)
        shell.events.register("pre_run_cell", self._pre_run_cell)
        shell.events.register("post_execute", self._post_execute)
        shell.input_transformers_cleanup.append(self.transform)
        for command in ("%apirec", "%%apirec"):
            cast(Any, shell).set_hook("complete_command", complete, str_key=command)
        if not shell.custom_exceptions:  # a single slot: never take it from another extension
            cast(Any, shell).set_custom_exc((RecordingNotFoundError,), show_missing_recording)
            self._owns_custom_exc = True
        formatter = cast(Any, shell).InteractiveTB
        self._structured_traceback = formatter.structured_traceback
        formatter.structured_traceback = self._traceback_as_written
        self._showwarning = warnings.showwarning
        warnings.showwarning = self._show_warning

    def detach(self) -> None:
        """Undo :meth:`attach`, and leave any ``%%apirec`` cell that is still open."""
        shell = self._shell
        while self._frames:
            self._unwind(self._frames.pop())
        for event, callback in (
            ("pre_execute", self._pre_execute),
            ("pre_run_cell", self._pre_run_cell),
            ("post_execute", self._post_execute),
        ):
            if callback in shell.events.callbacks[event]:
                shell.events.unregister(event, callback)
        transformers = shell.input_transformers_cleanup
        transformers[:] = [t for t in transformers if t != self.transform]
        dispatcher = shell.strdispatchers.get("complete_command")
        if dispatcher is not None:
            for command in ("%apirec", "%%apirec"):
                chain = dispatcher.strs.get(command)
                if chain is None:
                    continue
                chain.chain = [(p, f) for p, f in chain.chain if getattr(f, "__func__", f) is not complete]
                if not chain.chain:
                    del dispatcher.strs[command]
        if self._owns_custom_exc and shell.custom_exceptions == (RecordingNotFoundError,):
            cast(Any, shell).set_custom_exc((), None)
        self._owns_custom_exc = False
        formatter = cast(Any, shell).InteractiveTB
        if vars(formatter).get("structured_traceback") == self._traceback_as_written:
            del formatter.structured_traceback  # IPython's own method again...
            if self._structured_traceback != formatter.structured_traceback:
                formatter.structured_traceback = self._structured_traceback  # ...or what was there
        self._cell_files.clear()
        if warnings.showwarning == self._show_warning and self._showwarning is not None:
            warnings.showwarning = self._showwarning
        configurables: list[object] = cast(Any, shell).configurables
        if self in configurables:
            configurables.remove(self)


def _calls_since(frame: _Frame) -> list[Call]:
    calls = _calllog.calls()
    if frame.last_call is None:
        return calls
    if len(calls) >= frame.calls_before and calls[frame.calls_before - 1] is frame.last_call:
        return calls[frame.calls_before :]
    return calls  # the log was cleared during the cell


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


def _unquote(value: str) -> str:
    """IPython splits magic arguments the non-POSIX way: quotes stay around the value."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _usage(cell_magic: bool) -> str:
    if cell_magic:
        return (
            f"%%apirec {{{','.join(valid_modes())}}} [--dir DIR] [--scope S] [--block-network] [--allow-host HOST] "
            "[--ignore PATH] [--normalize PATTERN=REPLACEMENT]"
        )
    modes = ",".join([*valid_modes(), *SUBCOMMANDS])
    return (
        f"%apirec [{{{modes}}}] [--dir DIR] [--scope S] [--block-network] [--allow-host HOST] "
        "[--ignore PATH] [--normalize PATTERN=REPLACEMENT] [--clear]"
    )


@contextmanager
def _usage_errors() -> Iterator[None]:
    """Settings that cannot work (an unknown ``$APIREC_MODE``, replay from a missing directory)
    become one-line ``UsageError``s instead of tracebacks."""
    try:
        yield
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None


def show_missing_recording(
    shell: InteractiveShell,
    etype: type[BaseException],
    value: BaseException,
    tb: TracebackType | None,
    tb_offset: int | None = None,
) -> None:
    """Custom exception handler: a ``RecordingNotFoundError`` with the user's frames only.

    Its message already names the request, the nearest recording and how to record it; the
    frames inside the openai SDK and notebook_recorder that lead to it add nothing but length.
    """
    cast(Any, shell).showtraceback((etype, value, _user_frames(tb)), tb_offset=tb_offset)


def _user_frames(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` cut at the first frame inside the openai SDK or notebook_recorder."""
    kept: list[TracebackType] = []
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module.partition(".")[0] in ("openai", "notebook_recorder"):
            break
        kept.append(tb)
        tb = tb.tb_next
    trimmed: TracebackType | None = None
    for frame in reversed(kept):
        trimmed = TracebackType(trimmed, frame.tb_frame, frame.tb_lasti, frame.tb_lineno)
    return trimmed


# ---------------------------------------------------------------------------------------------
# Completion
# ---------------------------------------------------------------------------------------------


def complete(shell: InteractiveShell, event: Any) -> list[str]:
    """``complete_command`` hook for ``%apirec`` / ``%%apirec``: modes, subcommands and flags.

    After ``--dir`` it defers to IPython's own (file name) completion.
    """
    text = str(event.text_until_cursor)
    words = text.split()
    previous = words if text[-1:].isspace() else words[:-1]
    cell_magic = bool(words) and words[0].startswith("%%")
    if previous and previous[-1] in ("--dir", "--scope", "--allow-host", "--ignore", "--normalize"):
        raise TryNext()
    if len(previous) <= 1:
        return valid_modes() if cell_magic else [*valid_modes(), *SUBCOMMANDS]
    command = previous[1]
    if command == "status":
        flags = ["--clear"]
    elif command == "off":
        flags = []
    else:
        flags = ["--dir", "--scope", *_NETWORK_FLAGS]
    return [flag for flag in flags if flag not in previous or flag in ("--allow-host", "--ignore", "--normalize")]


# ---------------------------------------------------------------------------------------------
# Loading and unloading
# ---------------------------------------------------------------------------------------------


def _loaded(ipython: InteractiveShell) -> ApiRecMagics | None:
    magics = ipython.magics_manager.registry.get(ApiRecMagics.__name__)
    return magics if isinstance(magics, ApiRecMagics) else None


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """``%load_ext notebook_recorder``: register ``%apirec`` / ``%%apirec`` (idempotent)."""
    if _loaded(ipython) is not None:
        return
    magics = ApiRecMagics(shell=ipython)
    ipython.register_magics(magics)
    magics.attach()


def unload_ipython_extension(ipython: InteractiveShell) -> None:
    """``%unload_ext notebook_recorder``: remove the magics, their callbacks and every patch."""
    magics = _loaded(ipython)
    if magics is not None:
        magics.detach()
        manager = ipython.magics_manager
        for kind in ("line", "cell"):
            if getattr(manager.magics[kind].get("apirec"), "__self__", None) is magics:
                del manager.magics[kind]["apirec"]
        manager.registry.pop(ApiRecMagics.__name__, None)
    _session.stop()
    _calllog.set_cell(None)
