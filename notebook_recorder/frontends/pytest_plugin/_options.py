"""The plugin's options, ini settings and marker, the session's mode, and the state it keeps in
``config.stash`` (the other modules of the plugin read it)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from ...core._modes import Mode, env_mode, valid_modes

MARKER = "apirec"
"""``@pytest.mark.apirec``: record or replay the test's calls."""

CONFIG_KEYS = ("dir", "mode", "scope", "block_network", "allow_hosts", "ignore", "normalize")
"""What ``@pytest.mark.apirec(...)`` and the ``apirec_config`` fixture may set."""

counts_key = pytest.StashKey[Counter[str]]()  # the calls' outcomes, for the summary line
used_key = pytest.StashKey[bool]()  # whether a test recorded or replayed (else no summary line)
_placeholder_key = pytest.StashKey[bool]()
notebook_roots_key = pytest.StashKey[list[Path]]()


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
    from ...core._modes import parse_pace

    try:
        pace = parse_pace(value, "--apirec-pace")
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    assert pace is not None
    return pace


def dir_out(config: pytest.Config, stem: str) -> Path | None:
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
    config.stash[counts_key] = Counter()
    config.stash[used_key] = False
    config.stash[notebook_roots_key] = _notebook_roots(config)
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
        from ...hooks import _placeholder

        _placeholder.session_started()


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.stash.get(_placeholder_key, False):
        from ...hooks import _placeholder

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
