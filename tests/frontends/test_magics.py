"""``%apirec`` / ``%%apirec`` in an in-process IPython shell.

The same magics run in a real kernel in ``test_kernel.py``; here we check parsing, mistakes, mode
restoration, status, completion, the default directory and the notes, quickly.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import openai
import pytest
from IPython.core.completer import provisionalcompleter
from IPython.core.error import TryNext, UsageError
from IPython.core.formatters import DisplayFormatter
from IPython.core.interactiveshell import ExecutionResult, InteractiveShell
from wire_server import WireServer

from notebook_recorder.core import _calllog, _session
from notebook_recorder.core._errors import RecordingNotFoundError
from notebook_recorder.core._modes import Mode
from notebook_recorder.frontends._discovery import ENV_NOTEBOOK, default_dir, notebook_path
from notebook_recorder.frontends._render import CallTable, cell_note
from notebook_recorder.frontends.ipython import _magic_args
from notebook_recorder.frontends.ipython._cell_magic import CellRewriter
from notebook_recorder.frontends.ipython._magic_args import strip_comment
from notebook_recorder.frontends.ipython.magics import ApiRecMagics
from notebook_recorder.hooks.sdk import openai_sdk as openai_hook

CHAT = "c.chat.completions.create(model='gpt-4o', messages=[{'role': 'user', 'content': %r}])"


@pytest.fixture
def chat(ip: InteractiveShell, client: openai.OpenAI) -> str:
    """Puts a sync client ``c`` (talking to the wire server) in the shell; returns CHAT."""
    ip.user_ns["c"] = client
    return CHAT


def run(ip: InteractiveShell, code: str) -> ExecutionResult:
    return ip.run_cell(code, store_history=True)


def magics(ip: InteractiveShell) -> ApiRecMagics:
    found = ip.magics_manager.registry.get("ApiRecMagics")
    assert isinstance(found, ApiRecMagics)
    return found


def usage_error(ip: InteractiveShell, code: str, capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``code``; assert it failed with a one-line UsageError and return that line."""
    result = run(ip, code)
    error = result.error_in_exec or result.error_before_exec
    assert isinstance(error, UsageError), error
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("UsageError: "), captured.err
    return lines[0]


# ---------------------------------------------------------------------------------------------
# Parsing and mistakes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("%apirec bogus", "unknown mode 'bogus'; valid choices: live, record, replay, record-if-missing, status, off"),
        ("%apirec replay --dir", "argument --dir: expected one argument"),
        ("%apirec record --bogus", "unrecognized arguments: --bogus"),
        ("%apirec record --dir 'unclosed", "No closing quotation"),
        ("%apirec status --dir x", "%apirec status does not take --dir"),
        ("%apirec off --scope s", "%apirec off does not take --scope"),
        ("%apirec record --clear", "%apirec record does not take --clear"),
        ("%%apirec bogus\nran = True", "valid choices: live, record, replay, record-if-missing"),
        ("%%apirec status\nran = True", "%%apirec: unknown mode 'status'"),
        ("%%apirec\nran = True", "%%apirec needs a mode; valid choices: live, record, replay, record-if-missing"),
        ("%%apirec record --dir\nran = True", "expected one argument"),
        ("%%apirec record --clear\nran = True", "%%apirec record does not take --clear"),
    ],
)
def test_mistakes_are_one_line_usage_errors(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str], code: str, expected: str
) -> None:
    ip.user_ns.pop("ran", None)
    assert expected in usage_error(ip, code, capsys)
    assert "ran" not in ip.user_ns, "the cell body must not run after a mistake"
    assert _session.active() is None and not openai_hook.is_installed()


def test_usage_errors_show_the_usage(ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    line = usage_error(ip, "%apirec record --bogus", capsys)
    assert "Usage: %apirec [{live,record,replay,record-if-missing,status,off,serve}] [--dir DIR]" in line


def test_bad_apirec_mode_env_is_a_usage_error(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APIREC_MODE", "sometimes")
    assert "APIREC_MODE: unknown mode 'sometimes'" in usage_error(ip, "%apirec record", capsys)


def test_help_comes_from_magic_arguments(ip: InteractiveShell) -> None:
    doc = magics(ip).apirec.__doc__ or ""
    assert "%apirec [MODE] [--dir DIR] [--scope S]" in doc
    assert "%%apirec MODE [--dir DIR] [--scope S]" in doc
    assert "[--ignore-host HOST]" in doc.split("Record or replay")[0]  # every flag in the synopsis
    assert "[--dir-out DIR] [--pace [F]]" in doc.split("Record or replay")[0]
    assert "anthropic" in doc and "the openai SDK calls" not in doc
    for flag in ("--dir DIR", "--scope S", "--clear"):
        assert flag in doc
    assert "--this-cell" not in doc  # the transformer's private flag stays hidden
    assert "# comment is ignored" in doc
    assert "Examples" in doc and "%apirec status --clear" in doc and "record-if-missing" in doc


def test_session_mode_dir_and_scope(ip: InteractiveShell) -> None:
    run(ip, "%apirec record-if-missing --dir recs --scope s1").raise_error()
    recorder = _session.session()
    assert recorder is not None
    assert (recorder.requested_mode, recorder.requested_dir, recorder.scope) == (
        Mode.RECORD_IF_MISSING,
        Path("recs"),
        "s1",
    )
    assert openai_hook.is_installed()


def test_mode_names_are_forgiving(ip: InteractiveShell) -> None:
    run(ip, "%apirec RECORD_if_missing").raise_error()
    recorder = _session.session()
    assert recorder is not None and recorder.requested_mode is Mode.RECORD_IF_MISSING


def test_a_new_mode_keeps_the_directory_and_scope(ip: InteractiveShell) -> None:
    run(ip, "%apirec record --dir recs --scope s1").raise_error()
    run(ip, "%apirec live").raise_error()
    recorder = _session.session()
    assert recorder is not None
    assert (recorder.requested_mode, recorder.requested_dir, recorder.scope) == (Mode.LIVE, Path("recs"), "s1")
    run(ip, "%apirec live --scope ''").raise_error()
    recorder = _session.session()
    assert recorder is not None and recorder.scope is None


def test_quoted_directory_with_spaces(ip: InteractiveShell) -> None:
    run(ip, '%apirec record --dir "my recs"').raise_error()
    recorder = _session.session()
    assert recorder is not None and recorder.requested_dir == Path("my recs")


@pytest.mark.parametrize(
    ("line", "mode", "directory"),
    [
        ("%apirec record-if-missing   # the whole session: record what is missing", "record-if-missing", "recordings"),
        ("%apirec record --dir recs#  #no space after the hash", "record", "recs#"),
        ('%apirec record --dir "a#b"  # a quoted hash is no comment', "record", "a#b"),
        ("%apirec record --dir 'a #b'", "record", "a #b"),
        ("%apirec record --dir a#b", "record", "a#b"),
        ("%apirec live --dir recs #", "live", "recs"),
        ("%apirec live\t# a tab before it", "live", "recordings"),
    ],
)
def test_trailing_comments_are_ignored(ip: InteractiveShell, line: str, mode: str, directory: str) -> None:
    run(ip, line).raise_error()
    recorder = _session.session()
    assert recorder is not None
    assert (recorder.requested_mode.value, recorder.requested_dir) == (mode, Path(directory))


def test_comments_after_subcommands_and_the_cell_magic(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    run(ip, "%apirec live --dir recs  # start").raise_error()
    capsys.readouterr()
    run(ip, "%apirec   # where are we?").raise_error()
    assert capsys.readouterr().out.splitlines()[0] == "mode:        live"
    run(ip, "%apirec status  # the table").raise_error()
    assert capsys.readouterr().out == "apirec: no calls in this session yet\n"
    run(ip, f"%%apirec record  # this cell only: --dir ignored\n{PROBE}").raise_error()
    assert ip.user_ns["seen"] == "record"
    run(ip, "%apirec off # done").raise_error()
    assert _session.session() is None
    # A comment is not an argument: the mistake before it is still reported.
    assert "unrecognized arguments: --bogus" in usage_error(ip, "%apirec record --bogus  # typo", capsys)


@pytest.mark.parametrize(
    ("line", "stripped"),
    [
        ("replay", "replay"),
        ("replay # c", "replay"),
        ("# only a comment", ""),
        ("--dir 'a # b' # c", "--dir 'a # b'"),
        ('--dir "a#b"', '--dir "a#b"'),
        ("--dir a#b#c", "--dir a#b#c"),
        ("--dir 'unclosed # c", "--dir 'unclosed # c"),  # left for the parser to report
    ],
)
def test_strip_comment(line: str, stripped: str) -> None:
    assert strip_comment(line) == stripped


def test_off_goes_live_and_removes_patches(ip: InteractiveShell) -> None:
    run(ip, "%apirec record").raise_error()
    assert openai_hook.is_installed()
    run(ip, "%apirec off").raise_error()
    assert _session.session() is None and _session.active() is None
    assert not openai_hook.is_installed()


# ---------------------------------------------------------------------------------------------
# %%apirec: one cell, then the previous state again
# ---------------------------------------------------------------------------------------------

PROBE = "from notebook_recorder.core._session import active as _active\nseen = _active().mode.value\n"


@pytest.mark.parametrize(
    "ending",
    [
        "",
        "raise ValueError('boom')",
        "raise KeyboardInterrupt",
        "import sys; sys.exit(3)",
    ],
    ids=["normal", "raises", "keyboard-interrupt", "system-exit"],
)
@pytest.mark.filterwarnings("ignore:To exit:UserWarning")
def test_cell_mode_is_restored(ip: InteractiveShell, ending: str) -> None:
    run(ip, "%apirec live --dir recs").raise_error()
    session = _session.session()
    run(ip, f"%%apirec record\n{PROBE}{ending}")
    assert ip.user_ns["seen"] == "record"
    assert _session.active() is session
    assert openai_hook.is_installed()


@pytest.mark.parametrize("ending", ["", "raise KeyboardInterrupt"], ids=["normal", "keyboard-interrupt"])
def test_cell_without_session_leaves_no_patch(ip: InteractiveShell, ending: str) -> None:
    run(ip, f"%%apirec record\n{PROBE}{ending}")
    assert ip.user_ns["seen"] == "record"
    assert _session.active() is None
    assert not openai_hook.is_installed()


def test_cell_uses_the_session_directory_and_scope(ip: InteractiveShell) -> None:
    run(ip, "%apirec live --dir recs --scope s1").raise_error()
    run(ip, "%%apirec record\nfrom notebook_recorder.core._session import active as _a\nr = _a()").raise_error()
    assert (ip.user_ns["r"].requested_dir, ip.user_ns["r"].scope) == (Path("recs"), "s1")


def test_session_magic_inside_a_cell_magic_cell(ip: InteractiveShell) -> None:
    run(ip, f"%%apirec record\n%apirec live\n{PROBE}").raise_error()
    assert ip.user_ns["seen"] == "record"  # the cell's mode wins inside the cell...
    session = _session.session()
    assert session is not None and _session.active() is session  # ...the session's after it
    assert session.requested_mode is Mode.LIVE


def test_cell_body_is_plain_top_level_code(ip: InteractiveShell) -> None:
    result = run(ip, "%%apirec live\nx = 20\nx + 22")
    assert result.result == 42  # the last expression is displayed
    result = run(ip, "%%apirec live\nx = 1\nraise ValueError('line 3')")
    error = result.error_in_exec
    assert isinstance(error, ValueError)
    tb = error.__traceback__
    assert tb is not None
    while tb.tb_next is not None:
        tb = tb.tb_next
    assert tb.tb_lineno == 3  # line numbers are the cell's own


@pytest.mark.parametrize("xmode", ["Context", "Plain", "Verbose"])
def test_cell_tracebacks_show_the_cells_own_lines(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str], xmode: str
) -> None:
    ip.run_line_magic("xmode", xmode)
    capsys.readouterr()
    try:
        run(ip, "%%apirec live --dir recs  # one cell\nanswer = 41\nraise ValueError(f'not {answer}')\n")
    finally:
        ip.run_line_magic("xmode", "Context")
    shown = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out)
    assert "ValueError: not 41" in shown
    assert "raise ValueError(f'not {answer}')" in shown
    assert re.search(r"line 3\b", shown)
    assert "run_line_magic" not in shown and "--this-cell" not in shown
    if xmode != "Plain":  # the context lines above the failing one: the cell as written
        assert "%%apirec live --dir recs  # one cell" in shown
        assert "answer = 41" in shown
    # A function defined in such a cell fails later with the cell's lines too.
    run(ip, "%%apirec live\ndef fail():\n    raise KeyError('late')\n").raise_error()
    capsys.readouterr()
    run(ip, "fail()")
    shown = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out)
    assert "raise KeyError('late')" in shown and "run_line_magic" not in shown


def test_cell_source_stays_python_outside_tracebacks(ip: InteractiveShell) -> None:
    """Only tracebacks show the magic line: tools that parse the running cell's source (executing,
    icecream, stack_data) still find valid Python."""
    code = (
        "%%apirec live\n"
        "import ast, inspect, linecache\n"
        "frame = inspect.currentframe()\n"
        "tree = ast.parse(''.join(linecache.getlines(frame.f_code.co_filename)))\n"
    )
    run(ip, code).raise_error()
    run(ip, "raise ValueError('shown as written')")  # a traceback in between changes nothing
    run(ip, code.replace("tree =", "again =")).raise_error()


def test_unload_gives_ipython_its_traceback_formatter_back(ip: InteractiveShell) -> None:
    formatter: Any = ip.InteractiveTB
    assert "structured_traceback" in vars(formatter)
    ip.run_line_magic("unload_ext", "notebook_recorder")
    assert "structured_traceback" not in vars(formatter)
    ip.run_line_magic("load_ext", "notebook_recorder")


def test_cell_body_with_top_level_await(ip: InteractiveShell) -> None:
    run(ip, f"%%apirec record\nimport asyncio\nawait asyncio.sleep(0)\n{PROBE}").raise_error()
    assert ip.user_ns["seen"] == "record"
    assert _session.active() is None


def test_cell_body_starting_with_another_cell_magic(ip: InteractiveShell) -> None:
    run(
        ip,
        "%%apirec record\n%%capture captured\nfrom notebook_recorder.core._session import active\nprint(active().mode)",
    )
    assert ip.user_ns["captured"].stdout == "record\n"
    assert _session.active() is None


def test_cell_magic_called_directly(ip: InteractiveShell) -> None:
    run(ip, "%apirec live --dir recs").raise_error()
    session = _session.session()
    ip.run_cell_magic("apirec", "record", PROBE + "raise ValueError('boom')")
    assert ip.user_ns["seen"] == "record"
    assert _session.active() is session


def test_silent_cell_restores_and_says_nothing(ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    # `%run notebook.ipynb` runs each cell silently: no pre/post_run_cell, but pre/post_execute.
    ip.run_cell(f"%%apirec record --dir recs\n{PROBE}", silent=True).raise_error()
    assert ip.user_ns["seen"] == "record"
    assert _session.active() is None
    assert capsys.readouterr().out == ""


def test_transformer_only_takes_its_own_magic(ip: InteractiveShell) -> None:
    transform = CellRewriter().transform
    assert transform(["%%apirec replay --dir 'a b'\n", "x = 1\n"]) == [
        "get_ipython().run_line_magic('apirec', \"--this-cell replay --dir 'a b'\")\n",
        "x = 1\n",
    ]
    for lines in (["%%apirec?\n"], ["%%apirecord x\n", "y\n"], ["x = 1\n", "%%apirec replay\n"], []):
        assert transform(list(lines)) == lines


def test_cell_flag_outside_a_cell_is_refused(ip: InteractiveShell) -> None:
    with pytest.raises(UsageError, match="first line of a cell"):
        ip.run_line_magic("apirec", "--this-cell record")


def test_check_complete_treats_the_cell_magic_like_any_other(ip: InteractiveShell) -> None:
    manager = ip.input_transformer_manager
    assert manager.check_complete("%%apirec record\n")[0] == "incomplete"
    assert manager.check_complete("%%apirec record\nx = 1\n\n")[0] == "complete"


# ---------------------------------------------------------------------------------------------
# %apirec without arguments, and the environment overrides
# ---------------------------------------------------------------------------------------------


def test_state_before_anything(ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    run(ip, "%apirec").raise_error()
    out = capsys.readouterr().out
    assert "mode:        live (no recorder" in out
    assert "scope:       none" in out
    assert "APIREC_MODE: not set" in out
    assert "APIREC_DIR:  not set" in out


def test_state_of_session_and_cell(ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    run(ip, "%apirec record --dir recs --scope s1").raise_error()
    capsys.readouterr()
    run(ip, "%apirec").raise_error()
    out = capsys.readouterr().out.splitlines()
    assert out[:4] == ["mode:        record", "dir:         recs", "scope:       s1", "set by:      %apirec (session)"]
    run(ip, "%%apirec live\n%apirec").raise_error()
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "mode:        live" and out[3] == "set by:      %%apirec (this cell)"


def test_apirec_mode_override_is_shown(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "recordings").mkdir()
    monkeypatch.setenv("APIREC_MODE", "replay")
    run(ip, "%apirec record").raise_error()
    assert "apirec: $APIREC_MODE=replay overrides record" in capsys.readouterr().out
    run(ip, "%apirec").raise_error()
    out = capsys.readouterr().out
    assert "mode:        replay" in out
    assert "APIREC_MODE: replay (overrides record)" in out


def test_apirec_dir_override_is_shown(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APIREC_DIR", "elsewhere")
    run(ip, "%apirec record").raise_error()
    assert capsys.readouterr().out == "apirec: recordings go to elsewhere/ ($APIREC_DIR)\n"
    run(ip, "%apirec").raise_error()
    out = capsys.readouterr().out
    assert "dir:         elsewhere" in out
    assert "APIREC_DIR:  elsewhere (overrides recordings)" in out


# ---------------------------------------------------------------------------------------------
# The default directory
# ---------------------------------------------------------------------------------------------


def test_default_directory_without_a_notebook(ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    run(ip, "%apirec record").raise_error()
    assert capsys.readouterr().out == (
        "apirec: recordings go to recordings/ (the kernel does not know which notebook it runs)\n"
    )
    recorder = _session.session()
    assert recorder is not None and recorder.requested_dir == Path("recordings")


def test_default_directory_from_notebook_recorder_run(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ENV_NOTEBOOK, str(tmp_path / "notebooks" / "01_quickstart.ipynb"))
    run(ip, "%apirec record").raise_error()
    assert capsys.readouterr().out == (
        "apirec: recordings go to notebooks/recordings/01_quickstart/ (notebook 01_quickstart.ipynb)\n"
    )
    recorder = _session.session()
    assert recorder is not None
    assert recorder.requested_dir == tmp_path / "notebooks" / "recordings" / "01_quickstart"
    # Said once: not again for the same directory.
    run(ip, "%apirec off").raise_error()
    run(ip, "%apirec record").raise_error()
    assert capsys.readouterr().out == ""


def test_default_directory_from_vscode(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ip.user_ns["__vsc_ipynb_file__"] = str(tmp_path / "analysis.ipynb")
    try:
        run(ip, "%%apirec record\npass").raise_error()
    finally:
        del ip.user_ns["__vsc_ipynb_file__"]
    assert "recordings go to recordings/analysis/ (notebook analysis.ipynb)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("session_name", "expected"),
    [
        ("{tmp}/work/02_tools.ipynb", "{tmp}/work/recordings/02_tools"),
        ("some/dir/02_tools.ipynb", "recordings/02_tools"),  # relative to the server root
        ("console-1-2f4a", "recordings"),  # not a notebook
    ],
)
def test_default_directory_from_jupyter_server(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, session_name: str, expected: str
) -> None:
    monkeypatch.setenv("JPY_SESSION_NAME", session_name.format(tmp=tmp_path))
    assert default_dir(ip.user_ns).path == Path(expected.format(tmp=tmp_path))


def test_notebook_sources_in_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "jupyter.ipynb"))
    user_ns = {"__vsc_ipynb_file__": str(tmp_path / "vscode.ipynb")}
    monkeypatch.setenv(ENV_NOTEBOOK, str(tmp_path / "cli.ipynb"))
    assert notebook_path(user_ns) == (tmp_path / "cli.ipynb", ENV_NOTEBOOK)
    monkeypatch.delenv(ENV_NOTEBOOK)
    assert notebook_path(user_ns) == (tmp_path / "vscode.ipynb", "__vsc_ipynb_file__")
    assert notebook_path({}) == (tmp_path / "jupyter.ipynb", "JPY_SESSION_NAME")


def test_explicit_directory_is_not_announced(ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    run(ip, "%apirec record --dir recs").raise_error()
    assert capsys.readouterr().out == ""


# ---------------------------------------------------------------------------------------------
# Against the wire server: notes, status, missing recordings
# ---------------------------------------------------------------------------------------------


def test_note_after_cells_that_record_or_replay(
    ip: InteractiveShell, chat: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run(ip, "%apirec record --dir recs").raise_error()
    run(ip, f"{chat % 'a'}\n{chat % 'b'}\npass").raise_error()
    assert capsys.readouterr().out == "apirec: recorded 2 calls to recs\n"
    run(ip, "%apirec replay").raise_error()
    run(ip, f"{chat % 'a'}\npass").raise_error()
    assert capsys.readouterr().out == "apirec: replayed 1 call from recs\n"
    run(ip, "x = 1").raise_error()  # no calls, no note
    assert capsys.readouterr().out == ""
    run(ip, "%apirec record-if-missing").raise_error()
    run(ip, f"{chat % 'a'}\n{chat % 'c'}\npass").raise_error()
    assert capsys.readouterr().out == "apirec: replayed 1 call, recorded 1 call in recs\n"


def test_everything_the_extension_shows_is_tagged_display_data(
    ip: InteractiveShell, chat: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Notes, the state and the status table go through the display publisher with the metadata
    that `run --check` goes by; the user's own output is untouched."""
    shown: list[tuple[dict[str, Any], dict[str, Any]]] = []
    publish = ip.display_pub.publish

    def spy(data: dict[str, Any], metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        shown.append((data, metadata or {}))
        publish(data, metadata, **kwargs)

    monkeypatch.setattr(ip.display_pub, "publish", spy)
    monkeypatch.setenv("APIREC_MODE", "record")
    run(ip, "%apirec replay").raise_error()  # announces the directory, and the override
    run(ip, f"print('mine')\n{chat % 'a'}\npass").raise_error()
    run(ip, "%apirec").raise_error()
    run(ip, "%apirec status").raise_error()
    run(ip, "%apirec status --clear").raise_error()
    roles = [metadata.get("notebook_recorder", {}).get("role") for _, metadata in shown]
    assert roles == ["note", "note", "note", "state", "status", "status"]
    texts = [data["text/plain"] for data, _ in shown]
    assert texts[:3] == [
        "apirec: recordings go to recordings/ (the kernel does not know which notebook it runs)",
        "apirec: $APIREC_MODE=record overrides replay",
        "apirec: recorded 1 call to recordings",
    ]
    assert texts[3].startswith("mode:        record\n")
    assert texts[4].endswith("1 call: 1 recorded")
    assert texts[5] == "apirec: call log cleared (1 call)"
    assert "mine\n" in capsys.readouterr().out  # a print stays a print


@pytest.mark.filterwarnings("ignore:not ours:UserWarning")
def test_the_packages_warnings_are_tagged_and_others_are_not(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown: list[tuple[dict[str, Any], dict[str, Any]]] = []
    publish = ip.display_pub.publish

    def spy(data: dict[str, Any], metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        shown.append((data, metadata or {}))
        publish(data, metadata, **kwargs)

    monkeypatch.setattr(ip.display_pub, "publish", spy)
    code = (
        "import warnings\n"
        "from notebook_recorder.core._codec import UnknownTypeWarning\n"
        "with warnings.catch_warnings():\n"
        "    warnings.simplefilter('always', UnknownTypeWarning)\n"
        "    warnings.warn(\"cannot import recorded type 'x.Y'\", UnknownTypeWarning)\n"
        "    warnings.warn('not ours', UserWarning)\n"
    )
    run(ip, code).raise_error()
    assert shown == [
        (
            {"text/plain": "apirec: UnknownTypeWarning: cannot import recorded type 'x.Y'"},
            {"notebook_recorder": {"role": "warning"}},
        )
    ]
    # (other warnings go to the showwarning in place before: stderr in a kernel, see test_kernel.py)


def test_no_note_for_live_calls(ip: InteractiveShell, chat: str, capsys: pytest.CaptureFixture[str]) -> None:
    run(ip, "%apirec live").raise_error()
    capsys.readouterr()
    run(ip, f"{chat % 'a'}\npass").raise_error()
    assert capsys.readouterr().out == ""


def test_quiet_turns_the_notes_off(ip: InteractiveShell, chat: str, capsys: pytest.CaptureFixture[str]) -> None:
    run(ip, "%config ApiRecMagics.quiet = True").raise_error()
    assert magics(ip).quiet is True
    run(ip, "%apirec record").raise_error()  # no directory announcement either
    run(ip, f"{chat % 'a'}\npass").raise_error()
    assert capsys.readouterr().out == ""
    run(ip, "%config ApiRecMagics.quiet = False").raise_error()
    run(ip, f"{chat % 'a'}\npass").raise_error()
    assert capsys.readouterr().out == "apirec: recorded 1 call to recordings\n"


def test_note_counts_the_whole_cell_once(ip: InteractiveShell, chat: str, capsys: pytest.CaptureFixture[str]) -> None:
    # A nested cell (the cell magic called directly runs its body as one) adds no note of its own.
    code = "_ = " + chat % "a"
    run(ip, f"get_ipython().run_cell_magic('apirec', 'record --dir recs', {code!r})\n{code}").raise_error()
    assert capsys.readouterr().out == "apirec: recorded 1 call to recs\n"


def test_status_table(ip: InteractiveShell, chat: str, capsys: pytest.CaptureFixture[str]) -> None:
    run(ip, "%apirec status").raise_error()
    assert capsys.readouterr().out == "apirec: no calls in this session yet\n"
    record_cell = run(ip, f"%%apirec record --dir recs\n{chat % 'a'}\npass")
    replay_cell = run(ip, f"%%apirec replay --dir recs\n{chat % 'a'}\npass")
    missing_cell = run(ip, f"%%apirec replay --dir recs\n{chat % 'zzz'}")
    assert isinstance(missing_cell.error_in_exec, RecordingNotFoundError)
    capsys.readouterr()

    run(ip, "%apirec status").raise_error()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "#",
        "cell",
        "kind",
        "endpoint",
        "/",
        "tool",
        "model",
        "outcome",
        "occurrence",
        "file",
        "time",
    ]
    rows = [line.split() for line in lines[2:5]]
    assert [row[:6] for row in rows] == [
        ["1", str(record_cell.execution_count), "inference", "/v1/chat/completions", "gpt-4o", "recorded"],
        ["2", str(replay_cell.execution_count), "inference", "/v1/chat/completions", "gpt-4o", "replayed"],
        ["3", str(missing_cell.execution_count), "inference", "/v1/chat/completions", "gpt-4o", "missing"],
    ]
    assert [row[6] for row in rows] == ["1", "1", "1"]  # each %%apirec cell is a new recording context
    assert rows[0][7] == rows[1][7] and rows[0][7].startswith("recs/") and rows[0][7].endswith(".json")
    assert lines[-1] == "3 calls: 1 replayed, 1 recorded, 1 missing"
    # Aligned: every column starts at the same offset on every line.
    assert len({line.index("inference") for line in lines[2:5]}) == 1

    run(ip, "%apirec status --clear").raise_error()
    assert capsys.readouterr().out == "apirec: call log cleared (3 calls)\n"
    assert _calllog.calls() == []


def test_apirec_cells_count_repeated_requests_with_the_session(ip: InteractiveShell, chat: str) -> None:
    # Without a session, the %%apirec cells count together: the second answer is not overwritten.
    run(ip, f"%%apirec record --dir recs\n{chat % 'a'}\npass").raise_error()
    run(ip, f"%%apirec record --dir recs\n{chat % 'a'}\npass").raise_error()
    assert len(list(Path("recs").glob("*.json"))) == 2
    run(ip, "%apirec replay --dir recs").raise_error()  # a new session counts from 1
    run(ip, f"{chat % 'a'}\n{chat % 'a'}\n{chat % 'a'}\npass").raise_error()
    assert [c.occurrence for c in _calllog.calls()[-3:]] == [1, 2, 2]
    run(ip, "%apirec replay --dir recs").raise_error()
    run(ip, f"{chat % 'a'}\npass").raise_error()
    run(ip, f"%%apirec replay\n{chat % 'a'}\npass").raise_error()  # the session's second
    last = _calllog.calls()[-1]
    assert (last.outcome, last.occurrence) == ("replayed", 2) and str(last.path).endswith("-2.json")


def test_status_html(ip: InteractiveShell, chat: str) -> None:
    run(ip, f"%%apirec record --dir recs\n{chat % 'a'}\npass").raise_error()
    page = CallTable(_calllog.calls())._repr_html_()
    assert page.startswith('<table class="apirec-status">')
    for column in ("#", "cell", "kind", "endpoint / tool", "model", "outcome", "occurrence", "file", "time"):
        assert f">{column}</th>" in page
    assert '<td style="text-align: left; white-space: nowrap">recorded</td>' in page
    (path,) = [call.path for call in _calllog.calls()]
    assert path and len(path) > 64
    short = f"recs/{Path(path).name[:12]}…"
    assert f'<td style="text-align: left; white-space: nowrap" title="{path}">{short}</td>' in page
    assert "<caption>apirec: 1 call: 1 recorded</caption>" in page
    assert "&lt;" in CallTable([_call(endpoint="<tool>")])._repr_html_()  # text is escaped
    assert "no calls" in CallTable([])._repr_html_()


def test_status_displays_both_mimetypes() -> None:
    formatted, _ = DisplayFormatter().format(CallTable([_call()]))
    assert set(formatted) >= {"text/plain", "text/html"}


def test_missing_recording_shows_the_message_not_the_sdk(
    ip: InteractiveShell, chat: str, capsys: pytest.CaptureFixture[str], wire_server: WireServer
) -> None:
    (Path.cwd() / "recordings").mkdir()
    wire_server.stop()  # a connection error would show if the SDK were reached
    run(ip, "%apirec replay").raise_error()
    result = run(ip, f"x = 1\n{chat % 'a'}")
    assert isinstance(result.error_in_exec, RecordingNotFoundError)
    out = capsys.readouterr().out
    assert "RecordingNotFoundError: No recording of POST /v1/chat/completions (model gpt-4o)" in out
    assert "%apirec record-if-missing" in out
    assert "_base_client.py" not in out and "notebook_recorder" not in out  # the user's frames only
    assert "----> 2" in out
    assert "APIConnectionError" not in out


def test_cell_note_wording() -> None:
    assert cell_note([]) is None
    assert cell_note([_call(outcome="live")]) is None
    assert cell_note([_call(), _call(outcome="missing")]) == "apirec: replayed 1 call, 1 missing from recs"
    two_dirs = [_call(path="a/x.json"), _call(path="b/y.json", outcome="recorded"), _call(outcome="error")]
    assert cell_note(two_dirs) == "apirec: replayed 1 call, recorded 1 call, 1 failed in a, b"


# ---------------------------------------------------------------------------------------------
# Completion, configuration, unloading
# ---------------------------------------------------------------------------------------------


def complete(ip: InteractiveShell, line: str) -> list[str]:
    with provisionalcompleter():
        # Jedi's keywords and names always come along; keep ours ("<unknown>") and file names.
        return [c.text for c in ip.Completer.completions(line, len(line)) if c.type in ("<unknown>", "path")]


def hook(ip: InteractiveShell, line: str) -> list[str]:
    """Our ``complete_command`` hook alone; IPython then keeps the ones matching the current word."""
    word = line.split(" ")[-1]
    return [c for c in _magic_args.complete(ip, SimpleNamespace(text_until_cursor=line)) if c.startswith(word)]


def test_completion_candidates(ip: InteractiveShell) -> None:
    assert hook(ip, "%apirec ") == ["live", "record", "replay", "record-if-missing", "status", "off", "serve"]
    assert hook(ip, "%apirec serve ") == ["live", "record", "replay", "record-if-missing", "off"]
    assert hook(ip, "%apirec serve replay --") == ["--dir", "--scope", "--port", "--upstream", "--pace"]
    assert hook(ip, "%apirec record-") == ["record-if-missing"]
    assert hook(ip, "%%apirec ") == ["live", "record", "replay", "record-if-missing"]
    assert hook(ip, "%apirec status --") == ["--clear"]
    flags = ["--block-network", "--allow-host", "--ignore-host", "--ignore", "--normalize", "--dir-out", "--pace"]
    assert hook(ip, "%apirec replay --") == ["--dir", "--scope", *flags]
    assert hook(ip, "%apirec replay --dir x --") == ["--scope", *flags]
    with pytest.raises(TryNext):  # after --dir, IPython's own file-name completion takes over
        hook(ip, "%apirec replay --dir re")
    with pytest.raises(TryNext):  # and after --dir-out
        hook(ip, "%apirec record --dir-out re")


def test_completion_through_the_shell(ip: InteractiveShell, tmp_path: Path) -> None:
    assert complete(ip, "%apirec rep") == ["replay"]
    assert complete(ip, "%apirec st") == ["status"]
    (tmp_path / "recs").mkdir()
    assert "recs/" in complete(ip, "%apirec replay --dir re")  # file names after --dir


def test_settings_are_configurable(ip: InteractiveShell) -> None:
    assert magics(ip) in ip.configurables
    assert ApiRecMagics.class_traits(config=True).keys() >= {"quiet"}


def test_unload_removes_everything(ip: InteractiveShell) -> None:
    shell: Any = ip
    instance = magics(ip)
    run(ip, "%apirec record").raise_error()
    # Unloading from inside a %%apirec cell leaves that cell's recording too.
    run(ip, "%%apirec replay --dir .\nget_ipython().run_line_magic('unload_ext', 'notebook_recorder')").raise_error()
    assert not openai_hook.is_installed()
    assert _session.active() is None
    assert "apirec" not in ip.magics_manager.magics["line"]
    assert "apirec" not in ip.magics_manager.magics["cell"]
    assert ip.magics_manager.registry.get("ApiRecMagics") is None
    assert all(
        getattr(callback, "__self__", None) is not instance
        for callbacks in ip.events.callbacks.values()
        for callback in callbacks
    )
    assert all(getattr(t, "__self__", None) is not instance for t in ip.input_transformers_cleanup)
    assert "%apirec" not in shell.strdispatchers["complete_command"].strs
    assert "%%apirec" not in shell.strdispatchers["complete_command"].strs
    assert shell.custom_exceptions == ()
    assert instance not in ip.configurables
    result = run(ip, "%apirec")
    assert isinstance(result.error_in_exec, UsageError)
    # And it loads again (the fixture unloads at the end).
    ip.run_line_magic("load_ext", "notebook_recorder")
    run(ip, "%apirec off").raise_error()


def test_load_is_idempotent(ip: InteractiveShell) -> None:
    from notebook_recorder import load_ipython_extension

    before = magics(ip)
    load_ipython_extension(ip)
    assert magics(ip) is before
    ours = [t for t in ip.input_transformers_cleanup if isinstance(getattr(t, "__self__", None), CellRewriter)]
    assert len(ours) == 1


# ---------------------------------------------------------------------------------------------


def _call(**fields: Any) -> _calllog.Call:
    values: dict[str, Any] = {
        "index": 1,
        "cell": 1,
        "kind": "inference",
        "endpoint": "/v1/chat/completions",
        "model": "gpt-4o",
        "mode": "replay",
        "outcome": "replayed",
        "path": "recs/abc.json",
        "key": "abc",
        "test_id": None,
        "ms": 0.5,
        "streamed": False,
        "error": None,
    }
    values.update(fields)
    return _calllog.Call(**values)
