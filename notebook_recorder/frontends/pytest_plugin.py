"""The pytest plugin: record and replay a test's openai and tool calls, and run notebooks as tests.

Installed with the package (the ``pytest11`` entry point ``notebook_recorder``); ``-p
no:notebook_recorder`` turns it off.

>>> @pytest.mark.apirec
... def test_agent(apirec):            # the fixture is the active Recorder
...     client.chat.completions.create(...)

- ``--apirec-mode={live,record,replay,record-if-missing}``, ``replay`` by default: a run without
  options never reaches the network. ``APIREC_MODE`` overrides every mode, as everywhere.
- Recordings go to ``recordings/<test module stem>/`` beside the test file (the ini option
  ``apirec_dir`` moves the root), with the test's node id as ``test_id``.
- ``--apirec-notebooks PATH...`` collects every ``*.ipynb`` under the paths; each notebook is a
  test that runs in a real kernel and is checked like ``notebook-recorder run --check``.

This module is imported by every pytest session where the package is installed, so it imports
nothing heavy: the Recorder, the openai hook and nbclient load only when a test needs them.
"""

from __future__ import annotations

import os
import shlex
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .. import hooks  # noqa: F401  (imported, the hooks register themselves with the core)
from ..core._errors import RecordingNotFoundError
from ..core._modes import ENV_MODE, Mode, env_mode, valid_modes

if TYPE_CHECKING:
    from _pytest._code.code import ExceptionInfo, Traceback, TracebackEntry
    from _pytest.terminal import TerminalReporter

    from ..core._recorder import Recorder
    from .notebooks._runner import NotebookRun

__all__ = ["CONFIG_KEYS", "MARKER", "NotebookFailure", "NotebookFile", "NotebookItem", "scope_for", "session_mode"]

MARKER = "apirec"
"""``@pytest.mark.apirec``: record or replay the test's calls."""

CONFIG_KEYS = ("dir", "mode", "scope", "block_network", "allow_hosts", "ignore", "normalize")
"""What ``@pytest.mark.apirec(...)`` and the ``apirec_config`` fixture may set."""

_DEFAULT_ROOT = "recordings"
_counts_key = pytest.StashKey[Counter[str]]()
_used_key = pytest.StashKey[bool]()
_placeholder_key = pytest.StashKey[bool]()
_notebook_roots_key = pytest.StashKey[list[Path]]()


# ---------------------------------------------------------------------------------------------
# Options and configuration
# ---------------------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("apirec", "notebook-recorder: record and replay openai and tool calls")
    group.addoption(
        "--apirec-mode",
        choices=valid_modes(),
        default=None,
        help=(
            "mode of the tests marked @pytest.mark.apirec and of --apirec-notebooks: "
            "live, record, replay or record-if-missing (default: replay; APIREC_MODE overrides it)"
        ),
    )
    group.addoption(
        "--apirec-notebooks",
        nargs="+",
        action="extend",
        default=[],
        metavar="PATH",
        help="collect every .ipynb under these paths as a test: run in a real kernel, outputs checked",
    )
    group.addoption(
        "--apirec-block-network",
        action="store_true",
        default=False,
        help="in marked tests, a network connection that no hook records (a raw socket, a C library, an "
        "ignored host) raises NetworkBlockedError before anything is sent",
    )
    group.addoption(
        "--apirec-allow-host",
        action="append",
        default=[],
        metavar="HOST",
        help="with --apirec-block-network: a host name or address that may still be reached (repeatable; "
        "localhost means every loopback address)",
    )
    group.addoption(
        "--apirec-dir-out",
        default=None,
        metavar="DIR",
        help="write new recordings to DIR/<test module stem>/ (notebooks: DIR/<notebook stem>/), leaving the "
        "committed ones untouched; record-if-missing also copies what it replays there. Compare the two runs "
        "with: notebook-recorder diff tests/recordings DIR",
    )
    group.addoption(
        "--apirec-pace",
        type=_pace_option,
        nargs="?",
        const=1.0,
        default=None,
        metavar="F",
        help="replay streams at their recorded pace, F times as fast (F defaults to 1; 2 is twice as fast)",
    )
    parser.addini(
        "apirec_dir",
        "root directory of the recordings of marked tests (default: recordings/ beside each test file)",
        default="",
    )


def _pace_option(value: str) -> float:
    from ..core._modes import parse_pace

    try:
        pace = parse_pace(value, "--apirec-pace")
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    assert pace is not None
    return pace


def _dir_out(config: pytest.Config, stem: str) -> Path | None:
    """``--apirec-dir-out DIR`` for the test module or notebook ``stem``: ``DIR/<stem>``."""
    value = config.getoption("apirec_dir_out", None)
    if not value:
        return None
    root = Path(value).expanduser()
    if not root.is_absolute():
        root = Path(config.invocation_params.dir) / root
    return root / stem


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(dir=None, mode=None, scope=None, block_network=False, allow_hosts=(), ignore=(), normalize=None): "
        "record or replay this test's openai and tool calls "
        "(notebook-recorder)",
    )
    config.stash[_counts_key] = Counter()
    config.stash[_used_key] = False
    config.stash[_notebook_roots_key] = _notebook_roots(config)
    # A module-level ``OpenAI()`` is built while the test modules are imported, before any test
    # runs: in a mode that replays, a client that will not be built without a key gets the
    # placeholder at its constructor (``hooks._placeholder``; the environment is left as it is).
    # The hooks never send it (a call that would have to go live with it is a missing recording).
    try:
        mode = session_mode(config)
    except ValueError as exc:  # APIREC_MODE names no mode
        raise pytest.UsageError(str(exc)) from None
    config.stash[_placeholder_key] = mode.reads
    if mode.reads:
        from ..hooks import _placeholder

        _placeholder.session_started()


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.stash.get(_placeholder_key, False):
        from ..hooks import _placeholder

        _placeholder.session_stopped()
        config.stash[_placeholder_key] = False


def session_mode(config: pytest.Config) -> Mode:
    """The mode this session runs in: ``APIREC_MODE``, else ``--apirec-mode``, else ``replay``."""
    option = config.getoption("apirec_mode", None)
    return env_mode() or Mode.parse(option or Mode.REPLAY)


def _notebook_roots(config: pytest.Config) -> list[Path]:
    roots = []
    for value in config.getoption("apirec_notebooks", None) or []:
        path = Path(value).expanduser()
        path = path if path.is_absolute() else Path(config.invocation_params.dir, path)
        if not path.exists():
            raise pytest.UsageError(f"--apirec-notebooks: no such file or directory: {value}")
        if path.is_file() and path.suffix != ".ipynb":
            raise pytest.UsageError(f"--apirec-notebooks: not a notebook (expected .ipynb or a directory): {value}")
        roots.append(path.resolve())
    return roots


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def apirec_config() -> dict[str, Any]:
    """Defaults for the marked tests of a directory: override it in a ``conftest.py``.

    Keys: ``dir`` (a directory, relative to the test file's), ``mode`` (used when the command line
    gives none), ``scope`` (the ``test_id``; ``None`` for none). A marker's own arguments win.
    """
    return {}


@pytest.fixture
def apirec(request: pytest.FixtureRequest, apirec_config: Mapping[str, Any]) -> Iterator[Recorder]:
    """The active Recorder of this test: its ``mode``, ``dir`` and ``scope``.

    Asking for it records or replays the test's calls, with or without the marker.
    """
    from ..core._calllog import calls

    recorder = _recorder(request.node, apirec_config)
    config = request.config
    config.stash[_used_key] = True
    before = len(calls())
    try:
        with _activated(recorder):
            yield recorder
    finally:
        made = calls()
        made = made[before:] if len(made) >= before else made
        config.stash[_counts_key].update(call.outcome for call in made)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give the ``apirec`` fixture to the tests marked ``@pytest.mark.apirec`` (on the test, its
    class or its module), and only to them: a session that marks no test pays nothing per test.

    It goes before the test's first function-scoped fixture, as an autouse fixture would: those
    fixtures' calls are recorded with the test's, and fixtures of wider scope (set up once for
    many tests) are left out.
    """
    for item in items:
        if item.get_closest_marker(MARKER) is None:
            continue
        names: list[str] | None = getattr(item, "fixturenames", None)
        if names is None or "apirec" in names:
            continue
        definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
        position = len(names)
        for index, name in enumerate(names):
            found = definitions.get(name)
            if not found or found[-1].scope == "function":
                position = index
                break
        names.insert(position, "apirec")


def _recorder(item: pytest.Item, defaults: Mapping[str, Any]) -> Recorder:
    """The Recorder for one test: its marker's arguments, then ``apirec_config``, then the session's."""
    settings = _settings(item, defaults)
    recorder = _test_recorder_class()(
        settings["mode"],
        settings["dir"],
        settings["scope"],
        block_network=settings["block_network"],
        allow_hosts=settings["allow_hosts"],
        ignore=settings["ignore"],
        normalize=settings["normalize"],
        dir_out=_dir_out(item.config, item.path.stem),
        pace=item.config.getoption("apirec_pace", None),
    )
    if not settings["mode_set_by_test"]:  # --apirec-mode decides: a missing call's error says it first
        recorder.record_command = _record_command(item)
    return recorder


def _record_command(item: pytest.Item) -> str:
    return f"pytest --apirec-mode=record-if-missing {shlex.quote(item.nodeid)}"


_recorder_class: type[Recorder] | None = None


def _test_recorder_class() -> type[Recorder]:
    global _recorder_class
    if _recorder_class is None:
        from ..core._recorder import Recorder

        class TestRecorder(Recorder):
            """A Recorder whose directory may not exist yet, even in replay: a test's first call
            explains what is missing (and a test that makes no call passes)."""

            __test__ = False

            def check(self) -> None:
                pass

        _recorder_class = TestRecorder
    return _recorder_class


def _settings(item: pytest.Item, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``mode``, ``dir`` and ``scope`` for one test.

    The mode: the marker's, else ``--apirec-mode`` when given, else ``apirec_config``'s, else
    ``replay`` (and ``APIREC_MODE`` over all of them, in the Recorder). A relative ``dir`` is
    relative to the test file's directory. ``scope`` may be ``None`` (no ``test_id``).
    """
    if not isinstance(defaults, Mapping):
        raise pytest.UsageError(
            f"{item.nodeid}: the apirec_config fixture must return a dict, not {type(defaults).__name__}"
        )
    _check_keys(item, "the apirec_config fixture", defaults)
    given = dict(defaults)
    if "mode" in given and item.config.getoption("apirec_mode", None):
        del given["mode"]  # the command line wins over a directory's default
    marker = item.get_closest_marker(MARKER)
    if marker is not None:
        if marker.args:
            raise pytest.UsageError(
                f"{item.nodeid}: @pytest.mark.{MARKER} takes keyword arguments only "
                f"({', '.join(f'{k}=' for k in CONFIG_KEYS)}), got {marker.args!r}"
            )
        _check_keys(item, f"@pytest.mark.{MARKER}", marker.kwargs)
        given.update(marker.kwargs)

    try:
        mode = Mode.parse(given["mode"]) if given.get("mode") is not None else session_mode(item.config)
    except ValueError as exc:
        raise pytest.UsageError(f"{item.nodeid}: {exc}") from None
    directory = Path(given["dir"]).expanduser() if given.get("dir") is not None else _default_dir(item)
    if not directory.is_absolute():
        directory = item.path.parent / directory
    scope = given["scope"] if "scope" in given else scope_for(item)
    if scope is not None and not isinstance(scope, str):
        raise pytest.UsageError(f"{item.nodeid}: scope must be a string or None, not {type(scope).__name__}")
    options = item.config.option
    block_network = bool(given.get("block_network") or options.apirec_block_network)
    if options.apirec_allow_host and not block_network:
        raise pytest.UsageError("--apirec-allow-host only means something with --apirec-block-network")
    marked_hosts = given.get("allow_hosts") or ()  # a test may name its hosts whether or not the run blocks
    allow_hosts = [*options.apirec_allow_host, *([marked_hosts] if isinstance(marked_hosts, str) else marked_hosts)]
    return {
        "mode": mode,
        "dir": directory,
        "scope": scope,
        "block_network": block_network,
        "allow_hosts": allow_hosts,
        "ignore": given.get("ignore") or (),
        "normalize": given.get("normalize"),
        "mode_set_by_test": given.get("mode") is not None,
    }


def _check_keys(item: pytest.Item, source: str, values: Mapping[str, Any]) -> None:
    unknown = sorted(set(values) - set(CONFIG_KEYS))
    if unknown:
        raise pytest.UsageError(
            f"{item.nodeid}: {source}: unknown setting(s) {', '.join(map(repr, unknown))}; "
            f"valid ones are: {', '.join(CONFIG_KEYS)}"
        )


def _default_dir(item: pytest.Item) -> Path:
    """``recordings/<module stem>/`` beside the test file, or under ``apirec_dir`` when it is set
    (there the test file's directory, relative to the root directory, is kept, so two test
    modules with the same name never share a directory)."""
    path = item.path
    root = str(item.config.getini("apirec_dir") or "").strip()
    if not root:
        return path.parent / _DEFAULT_ROOT / path.stem
    base = item.config.inipath.parent if item.config.inipath else item.config.rootpath
    root_path = Path(root).expanduser()
    root_path = root_path if root_path.is_absolute() else base / root_path
    try:
        relative = path.parent.relative_to(item.config.rootpath)
    except ValueError:
        relative = Path()
    return root_path / relative / path.stem


def scope_for(item: pytest.Item) -> str:
    """The ``test_id`` of a test's recordings: its node id from the file name on
    (``test_chat.py::TestX::test_y[gpt-4o]``). The directory already says where the test lives,
    so recordings do not depend on the directory pytest was started from."""
    _, sep, rest = item.nodeid.partition("::")
    return f"{item.path.name}{sep}{rest}"


class _activated:
    """Push ``recorder`` as a ``recording()`` block for the duration of the test."""

    def __init__(self, recorder: Recorder) -> None:
        from ..core._session import _pushed

        self._context = _pushed(recorder)

    def __enter__(self) -> Recorder:
        return self._context.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._context.__exit__(*exc)


# ---------------------------------------------------------------------------------------------
# Reports: a missing recording, explained, without the SDK's frames; the summary line
# ---------------------------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport | None:
    """The report of a test that failed on a missing recording: the explanation, how to record it
    with pytest, and a traceback that ends at the user's line. Every other report is pytest's."""
    excinfo = call.excinfo
    if excinfo is None or not isinstance(excinfo.value, RecordingNotFoundError):
        return None
    error = excinfo.value
    command = _record_command(item)
    if not getattr(error, "_apirec_hint", False) and command not in str(error):
        hint = f"In pytest, with the API key set:\n    {command}"
        if os.environ.get(ENV_MODE) and ENV_MODE not in str(error):
            hint += f"\n    ({ENV_MODE} is set to {os.environ[ENV_MODE]!r} and overrides --apirec-mode: unset it)"
        error.args = (f"{error.args[0]}\n{hint}", *error.args[1:]) if error.args else (hint,)
        error._apirec_hint = True  # type: ignore[attr-defined]
    if item.config.getoption("fulltrace", False):
        return None
    item._traceback_filter = _without_sdk_frames(item._traceback_filter)  # type: ignore[method-assign,assignment]
    try:
        return pytest.TestReport.from_item_and_call(item, call)
    finally:
        del item._traceback_filter


def _without_sdk_frames(
    pytest_filter: Callable[[ExceptionInfo[BaseException]], Traceback],
) -> Callable[[ExceptionInfo[BaseException]], Traceback]:
    """pytest's own traceback filter for an item, then the openai SDK's and this package's frames
    left out: the report ends at the user's line that made the call."""

    def traceback_filter(excinfo: ExceptionInfo[BaseException]) -> Traceback:
        from _pytest._code.code import Traceback

        entries = list(pytest_filter(excinfo))
        kept = [entry for entry in entries if _user_frame(entry)]
        if not kept:
            return Traceback(entries)
        return Traceback([*kept[:-1], kept[-1].with_repr_style(None)])

    return traceback_filter


_hidden_roots: tuple[str, ...] | None = None


def _user_frame(entry: TracebackEntry) -> bool:
    """Whether a traceback entry is the user's code: not the openai SDK's, not this package's."""
    global _hidden_roots
    if _hidden_roots is None:
        roots = [str(Path(__file__).resolve().parents[1])]  # the whole package, not only frontends/
        import sys

        for name in ("openai", "anthropic"):  # the hooked SDKs that are loaded
            sdk = sys.modules.get(name)
            if sdk is not None and sdk.__file__:
                roots.append(str(Path(sdk.__file__).resolve().parent))
        _hidden_roots = tuple(root + os.sep for root in roots)
    try:
        path = str(Path(entry.path).resolve())
    except (OSError, TypeError):
        return True
    return not path.startswith(_hidden_roots)


def pytest_terminal_summary(terminalreporter: TerminalReporter, config: pytest.Config) -> None:
    if not config.stash.get(_used_key, False):
        return
    counts = config.stash[_counts_key]
    parts = [f"{counts.get(outcome, 0)} {outcome}" for outcome in ("replayed", "recorded", "missing")]
    parts += [f"{n} {outcome}" for outcome, n in sorted(counts.items()) if outcome not in _MAIN_OUTCOMES and n]
    total = sum(counts.values())
    line = f"{total} call{'' if total == 1 else 's'}: {', '.join(parts)} (mode {session_mode(config).value})"
    markup = {"red": True} if counts.get("missing") else {}
    terminalreporter.write_sep("-", "notebook-recorder")
    terminalreporter.write_line(f"apirec: {line}", **markup)


_MAIN_OUTCOMES = frozenset({"replayed", "recorded", "missing"})


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None and config.stash.get(_used_key, False):  # a pytest-xdist worker
        counts: Counter[str] = config.stash[_counts_key]
        workeroutput["notebook_recorder_calls"] = dict(counts)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist: add a worker's call counts to the controller's."""
    counts = getattr(node, "workeroutput", {}).get("notebook_recorder_calls")
    if counts:
        config = node.config
        config.stash[_used_key] = True
        config.stash[_counts_key].update(counts)


# ---------------------------------------------------------------------------------------------
# Notebooks as tests
# ---------------------------------------------------------------------------------------------


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix != ".ipynb":
        return None
    roots = parent.config.stash.get(_notebook_roots_key, [])
    if not roots or ".ipynb_checkpoints" in file_path.parts:
        return None
    resolved = file_path.resolve()
    if not any(resolved == root or root in resolved.parents for root in roots):
        return None
    return NotebookFile.from_parent(parent, path=file_path)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Make pytest visit the ``--apirec-notebooks`` paths, besides the tests it was given."""
    config = session.config
    roots = config.stash.get(_notebook_roots_key, [])
    if roots:
        args = list(config.args)
        existing = [Path(config.invocation_params.dir, arg.split("::")[0]).resolve() for arg in args]
        for root in roots:
            if not any(root == path or path in root.parents for path in existing):
                args.append(str(root))
        config.args[:] = args


class NotebookFile(pytest.File):
    """A notebook: one test item."""

    def collect(self) -> Iterator[pytest.Item]:
        yield NotebookItem.from_parent(self, name=self.path.name)


class NotebookFailure(Exception):
    """A notebook that failed its check; the message is the report."""


def _notebook_env(config: pytest.Config, path: Path) -> dict[str, str]:
    """The kernel's ``APIREC_DIR_OUT`` and ``APIREC_PACE`` for ``--apirec-dir-out`` and ``--apirec-pace``."""
    from ..core._modes import ENV_DIR_OUT, ENV_PACE

    env: dict[str, str] = {}
    dir_out = _dir_out(config, path.stem)
    if dir_out is not None:
        env[ENV_DIR_OUT] = str(dir_out)
    pace = config.getoption("apirec_pace", None)
    if pace is not None:
        env[ENV_PACE] = repr(pace)
    return env


class NotebookItem(pytest.Item):
    """Runs a notebook in a real kernel (``--apirec-mode``, replay by default) and checks its
    outputs against the stored ones, as ``notebook-recorder run --check`` does."""

    def runtest(self) -> None:
        from .notebooks._comparison import compare, has_stored_outputs
        from .notebooks._runner import NotebookError, execute

        config = self.config
        config.stash[_used_key] = True
        mode = session_mode(config)
        shown = _shown_path(self.path, config)
        try:
            run = execute(self.path, mode=mode.value, env=_notebook_env(config, self.path))
        except NotebookError as exc:
            raise NotebookFailure(str(exc)) from None
        counts = config.stash[_counts_key]
        counts.update(run.outcomes())
        failure = run.failure
        if failure is not None:
            lines = _failure_lines(run)
            if failure.status == "missing-recording":
                counts["missing"] += 1
                lines.append(f"    or: pytest --apirec-mode=record-if-missing --apirec-notebooks {shown}")
            raise NotebookFailure("\n".join(lines))
        if not has_stored_outputs(run.stored):
            raise NotebookFailure(
                f"{self.path.name}: the notebook has no stored outputs to check against; store them with:\n"
                f"    notebook-recorder run {shown} --output {shown}"
            )
        diffs = compare(run)
        if diffs:
            lines = [f"{self.path.name}: {len(diffs)} cell(s) with outputs different from the stored ones"]
            for diff in diffs:
                count = f", execution count {diff.execution_count}" if diff.execution_count else ""
                lines.append(f"cell {diff.index + 1}{count}:")
                lines += [f"    {line}" for line in diff.diff]
            lines.append(
                f"If the new outputs are right, store them with: "
                f"notebook-recorder run {shown} --mode {mode.value} --output {shown}"
            )
            raise NotebookFailure("\n".join(lines))

    def repr_failure(self, excinfo: ExceptionInfo[BaseException], style: Any = None) -> str | Any:
        if isinstance(excinfo.value, NotebookFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"notebook {self.path.name}"


def _failure_lines(run: NotebookRun) -> list[str]:
    """What ``notebook-recorder run`` says about the cell that stopped a notebook."""
    from .cli._run import failure_lines as cli_failure_lines

    return list(cli_failure_lines(run))


def _shown_path(path: Path, config: pytest.Config) -> str:
    """``path`` relative to where pytest was started, when it is below it, for commands to copy."""
    try:
        return shlex.quote(str(path.resolve().relative_to(Path(config.invocation_params.dir).resolve())))
    except ValueError:
        return shlex.quote(str(path))
