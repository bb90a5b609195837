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
    %apirec serve replay [--dir DIR] [--port N]  a loopback HTTP endpoint for other processes
    %apirec serve off                          stop it

This module only adapts IPython, in the manner of IPython's autoreload and storemagic: it reads
the line (:mod:`._magic_args`), calls the engine in :mod:`._session` (``start``, ``stop``,
``recording``, ``calls``, ``set_cell``) and shows what comes back (:mod:`._render`). The default
directory comes from :mod:`._discovery`; how a ``%%apirec`` cell runs as top-level code of the
cell (so that ``await`` works) is in :mod:`._cell_magic`. It decides nothing about recording.

A trailing ``# comment`` on a ``%apirec`` line is ignored, as in Python. Settings are traitlets:
``%config ApiRecMagics.quiet = True`` (or ``--ApiRecMagics.quiet=True`` on a kernel's command line)
turns off the notes the extension prints by itself. Everything it shows by itself (the notes, the
state, the status table, the package's own warnings such as ``UnknownTypeWarning``) is display data
tagged in its output metadata (:data:`._render.OWN_OUTPUT_KEY`), which ``notebook-recorder run --check``
leaves out of the comparison; every line starts with :data:`._render.NOTE_PREFIX`.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import IPython
from IPython.core.error import UsageError
from IPython.core.interactiveshell import ExecutionInfo, InteractiveShell
from IPython.core.magic import Magics, magics_class
from IPython.display import display
from traitlets import Bool

from ... import hooks  # noqa: F401  (imported, the hooks register themselves with the core)
from ...core import _calllog, _recorder, _session
from ...core._calllog import Call
from ...core._modes import ENV_DIR, Mode, env_dir, env_mode, env_mode_source, valid_modes
from ...core._recorder import Recorder
from .._discovery import default_dir, display_path
from .._render import NOTE_PREFIX, CallTable, cell_note, format_state, own_output_metadata, plural
from . import _magic_args as flags
from ._cell_magic import CellRewriter
from ._magic_args import NETWORK_FLAGS

__all__ = ["ApiRecMagics", "load_ipython_extension", "unload_ipython_extension"]

_COUNTED_BEFORE_HOOKS = tuple(IPython.version_info[:2]) >= (9, 8)


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
        self._cells = CellRewriter()
        self._showwarning: Callable[..., None] | None = None  # the one before ours, while loaded
        self._server: Any = None  # the endpoint of %apirec serve, while it runs

    @property
    def _shell(self) -> InteractiveShell:
        assert self.shell is not None, "ApiRecMagics needs a shell"
        return self.shell

    # -- the magic ----------------------------------------------------------------------------

    @flags.apirec_magic
    def apirec(self, line: str, cell: str | None = None) -> None:
        """Record or replay the API calls of this session or one cell: openai, anthropic, every
        other HTTP client (google-genai, requests, httpx, aiohttp...) and @nr.tool functions.

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
          %apirec serve replay                   an HTTP endpoint for subprocesses (!curl, node):
                                                 OPENAI_BASE_URL / ANTHROPIC_BASE_URL point at it
          %apirec serve replay --pace 2          ... its streams at twice their recorded pace
          %apirec serve off                      stop it

        Without --dir the directory in use is kept; the first one is recordings/<notebook
        stem>/ beside the notebook when the kernel can tell which notebook it runs, else
        ./recordings/. A note after each cell says what was replayed or recorded, and which
        network connections no hook recorded (so they would not replay), and which library
        opened each (google-genai via httpx2);
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
        cell_only = cell is not None
        args = flags.parse(self.apirec, line, cell_magic=cell_only)
        if args.mode != "serve":
            flags.reject(args, "--port", "--upstream", command=f"%apirec {args.mode or ''}".strip())
            if args.serve_mode is not None:
                raise UsageError(f"%apirec: unexpected {args.serve_mode!r}. Usage: {flags.usage(cell_only)}")
        if cell_only or args.this_cell:
            flags.reject(args, "--clear", command=f"%%apirec {args.mode}")
            if cell is not None:
                self._run_cell_body(args, cell)
            else:
                self._enter_cell(args)
        elif args.mode is None:
            flags.reject(args, *NETWORK_FLAGS, "--dir", "--scope", "--clear", command="%apirec without a mode")
            self._show(self.state(), "state")
        elif args.mode == "status":
            flags.reject(args, *NETWORK_FLAGS, "--dir", "--scope", command="%apirec status")
            self._status(clear=args.clear)
        elif args.mode == "serve":
            serve_rejects = [flag for flag in NETWORK_FLAGS if flag != "--pace"]
            flags.reject(args, *serve_rejects, "--clear", command="%apirec serve")
            self._serve(args)
        elif args.mode == "off":
            flags.reject(args, *NETWORK_FLAGS, "--dir", "--scope", "--clear", command="%apirec off")
            _session.stop()
        else:
            flags.reject(args, "--clear", command=f"%apirec {args.mode}")
            self._start(args)

    # -- session mode -------------------------------------------------------------------------

    def _default_dir(self) -> Path:
        """The default recordings directory, announced the first time."""
        default = default_dir(self._shell.user_ns)
        forced = env_dir()
        path = forced if forced is not None else default.path
        if not self.quiet and path != self._announced:
            self._announced = path
            if forced is not None:
                self._show(f"{NOTE_PREFIX}recordings go to {display_path(forced).rstrip('/')}/ (${ENV_DIR})")
            else:
                self._show(NOTE_PREFIX + default.format_line())
        return default.path

    def _start(self, args: argparse.Namespace) -> None:
        mode, directory, scope = flags.recorder_settings(args, _session.session(), self._default_dir)
        settings = {
            **flags.network_settings(args, None),
            **flags.match_settings(args, None),
            **flags.output_settings(args, None),
        }
        with flags.usage_errors():
            recorder = _session.start(mode, directory, scope, **settings)
        if not self.quiet and recorder.mode is not recorder.requested_mode:
            self._show(f"{NOTE_PREFIX}{env_mode_source()} overrides {recorder.requested_mode}")

    def _serve(self, args: argparse.Namespace) -> None:
        """``%apirec serve MODE``: the loopback endpoint (``nr.serve``) for the session's
        subprocesses, in this kernel's background; ``%apirec serve off`` stops it."""
        what = args.serve_mode
        if what in ("off", "stop"):
            if self._server is not None:
                self._server.stop()
                self._show(f"{NOTE_PREFIX}stopped serving at {self._server.url}")
                self._server = None
            return
        if what is None:
            state = "not serving" if self._server is None else repr(self._server)
            self._show(f"{NOTE_PREFIX}{state}", "state")
            return
        try:
            mode = Mode.parse(what)
        except ValueError:
            choices = ", ".join([*valid_modes(), "off"])
            raise UsageError(f"%apirec serve: unknown mode {what!r}; valid choices: {choices}") from None
        base = _session.session()
        args.mode = mode
        _, directory, scope = flags.recorder_settings(args, base, self._default_dir)
        pace = flags.output_settings(args, base)["pace"]  # the session's, unless --pace is given
        if self._server is not None:
            self._server.stop()
            self._server = None
        with flags.usage_errors():
            try:
                from ..serve._server import serve
            except ImportError as exc:
                raise UsageError(str(exc)) from None
            self._server = serve(mode, directory, port=args.port or 0, upstream=args.upstream, scope=scope, pace=pace)
        server = self._server
        paced = f" (streams at pace {server.pace:g})" if server.pace is not None else ""
        self._show(
            f"{NOTE_PREFIX}serving {server.mode}{paced} from {display_path(server.dir).rstrip('/')}/ at {server.url}; "
            "OPENAI_BASE_URL and ANTHROPIC_BASE_URL point subprocesses at it (%apirec serve off stops it)"
        )

    # -- this cell only -----------------------------------------------------------------------

    def _enter_cell(self, args: argparse.Namespace) -> None:
        """The first line of a ``%%apirec`` cell, rewritten by the input transformer."""
        self._cells.remember_cell_file()
        if not self._frames:
            raise UsageError("%%apirec must be the first line of a cell")
        context = self._cell_recording(args)
        recorder = context.__enter__()
        self._frames[-1].contexts.append((context, recorder))
        self._count_with_session(recorder)

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
        mode, directory, scope = flags.recorder_settings(args, base, self._default_dir)
        settings = {
            **flags.network_settings(args, base),
            **flags.match_settings(args, base),
            **flags.output_settings(args, base),
        }
        with flags.usage_errors():
            context = _session.recording(mode, directory, scope, **settings)
        if not self.quiet and (forced := env_mode()) is not None and forced is not mode:
            self._show(f"{NOTE_PREFIX}{env_mode_source()} overrides {mode}")
        return context

    # -- state and status ---------------------------------------------------------------------

    def state(self) -> str:
        """What ``%apirec`` prints: the mode, directory and scope in force, and the overrides."""
        return format_state(_session.active(), self._set_by(), self._shell.user_ns)

    def _set_by(self) -> str:
        recorder = _session.active()
        if recorder is None:
            return ""
        if recorder is _session.session():
            return "%apirec (session)"
        if any(recorder is own for frame in self._frames for _, own in frame.contexts) or recorder in self._nested:
            return "%%apirec (this cell)"
        return "nr.recording() (a with block or decorator)"

    def _status(self, *, clear: bool) -> None:
        calls = _calllog.calls()
        if clear:
            _calllog.clear_calls()
            self._show(f"{NOTE_PREFIX}call log cleared ({plural(len(calls), 'call')})", "status")
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

    # -- lifecycle ----------------------------------------------------------------------------

    _EVENTS = ("pre_execute", "pre_run_cell", "post_execute")

    def attach(self) -> None:
        """Register the event callbacks, the input transformer and the completer."""
        shell = self._shell
        for event in self._EVENTS:
            shell.events.register(event, getattr(self, f"_{event}"))
        self._cells.attach(shell)
        flags.add_completer(shell)
        self._showwarning = warnings.showwarning
        warnings.showwarning = self._show_warning

    def detach(self) -> None:
        """Undo :meth:`attach`, and leave any ``%%apirec`` cell that is still open."""
        shell = self._shell
        if self._server is not None:
            self._server.stop()
            self._server = None
        while self._frames:
            self._unwind(self._frames.pop())
        for event in self._EVENTS:
            callback = getattr(self, f"_{event}")
            if callback in shell.events.callbacks[event]:
                shell.events.unregister(event, callback)
        self._cells.detach(shell)
        flags.remove_completer(shell)
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
