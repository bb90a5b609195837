"""The pytest plugin, in whole pytest sessions (``pytester``).

The sessions load the plugin the way a user gets it, through the package's ``pytest11`` entry
point. They record against the loopback wire server, then replay with the server stopped, no
``OPENAI_API_KEY`` and no ``OPENAI_BASE_URL``: a request that reached for the network would fail.

Most sessions run in this process (``runpytest_inprocess``: a new pytest config and plugin manager
each, with the test modules they import forgotten afterwards), which costs a tenth of a fresh
interpreter. The end-to-end record-and-replay test and the xdist test run each session as a
subprocess, as a user's ``pytest`` runs: the plugin is imported there before openai is.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import nbformat
import pytest
from wire_server import WireServer

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "recordings" / "01_quickstart"
QUESTION = "What is the latest version of Python?"


def _registered() -> bool:
    return any(
        ep.name == "notebook_recorder" and ep.value == "notebook_recorder.pytest_plugin"
        for ep in entry_points(group="pytest11")
    )


# In an environment installed before the plugin existed, load it by name (the entry-point test
# below still fails there, saying how to fix the install).
PLUGIN = [] if _registered() else ["-p", "notebook_recorder.pytest_plugin"]

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
"""

CHAT_TESTS = f"""
import anyio
import pytest
from openai import AsyncOpenAI, OpenAI

client = OpenAI(max_retries=0)  # at import time: in replay, no key is set
QUESTION = [{{"role": "user", "content": {QUESTION!r}}}]


def answer(nodeid):
    reply = client.chat.completions.create(model="gpt-4o", messages=QUESTION)
    with open("answers.txt", "a") as fh:
        fh.write(f"{{nodeid}}\\t{{reply.choices[0].message.content[:40]}}\\n")


@pytest.mark.apirec
@pytest.mark.parametrize("n", ["a", "b"])
def test_param(n, request):
    answer(request.node.nodeid)


@pytest.mark.apirec
class TestClass:
    def test_in_class(self, request, apirec):
        assert apirec.scope == "test_chat.py::TestClass::test_in_class"
        answer(request.node.nodeid)


@pytest.mark.apirec
async def test_asyncio():
    async with AsyncOpenAI(max_retries=0) as aclient:
        stream = await aclient.chat.completions.create(model="gpt-4o", messages=QUESTION, stream=True)
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
    assert "Python" in text


@pytest.mark.apirec
@pytest.mark.anyio
async def test_anyio():
    async with AsyncOpenAI(max_retries=0) as aclient:
        reply = await aclient.chat.completions.create(model="gpt-4o", messages=QUESTION)
    assert reply.choices[0].message.content


def test_unmarked():
    pass
"""

MODULE_MARK_TESTS = f"""
import pytest
from openai import OpenAI

pytestmark = pytest.mark.apirec


def test_module_marked(apirec):
    OpenAI(max_retries=0).chat.completions.create(
        model="gpt-4o", messages=[{{"role": "user", "content": {QUESTION!r}}}]
    )
"""


def run(pytester: pytest.Pytester, *args: str, in_subprocess: bool = False) -> pytest.RunResult:
    """A pytest session in ``pytester.path``: in this process, or in a new one with ``in_subprocess``."""
    args = (*PLUGIN, "-p", "no:cacheprovider", *args)
    if in_subprocess:
        return pytester.runpytest_subprocess(*args, timeout=240)
    # A session without an ini file: pytest-asyncio's warning about its unset option, not ours.
    return pytester.runpytest_inprocess("-o", "asyncio_default_fixture_loop_scope=function", *args)


def summary(result: pytest.RunResult) -> str:
    lines = [line for line in result.outlines if line.startswith("apirec: ")]
    assert len(lines) == 1, result.stdout.str()
    return lines[0]


def recorded_test_ids(directory: Path) -> list[str]:
    return sorted(json.loads(path.read_text())["test_id"] for path in directory.glob("*.json"))


@pytest.fixture
def recording_env(monkeypatch: pytest.MonkeyPatch, wire_server: WireServer) -> WireServer:
    """A key and the wire server's URL in the environment the sessions inherit."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key-for-the-wire-server")
    monkeypatch.setenv("OPENAI_BASE_URL", wire_server.base_url)
    return wire_server


def go_offline(monkeypatch: pytest.MonkeyPatch, server: WireServer) -> None:
    server.stop()
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


# ---------------------------------------------------------------------------------------------


def test_the_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    assert _registered(), (
        "the pytest11 entry point 'notebook_recorder' is missing: reinstall the package (pip install -e .)"
    )


def test_importing_the_plugin_loads_nothing_heavy() -> None:
    code = (
        "import sys, notebook_recorder.frontends.pytest_plugin\n"
        "print(' '.join(m for m in ('openai', 'pandas', 'nbclient', 'IPython', 'notebook_recorder.core._session') "
        "if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == []


@pytest.mark.timeout(600)
def test_record_then_replay_offline(
    pytester: pytest.Pytester, recording_env: WireServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_chat=CHAT_TESTS, test_module_mark=MODULE_MARK_TESTS)

    result = run(pytester, "--apirec-mode=record", in_subprocess=True)
    result.assert_outcomes(passed=7)
    assert summary(result) == "apirec: 6 calls: 0 replayed, 6 recorded, 0 missing (mode record)"
    served = len(recording_env.requests)
    assert served == 6

    # One directory per test module, beside it; one recording per test, its test_id the node id.
    chat_dir = pytester.path / "recordings" / "test_chat"
    assert recorded_test_ids(chat_dir) == [
        "test_chat.py::TestClass::test_in_class",
        "test_chat.py::test_anyio[asyncio]",
        "test_chat.py::test_asyncio",
        "test_chat.py::test_param[a]",
        "test_chat.py::test_param[b]",
    ]
    assert recorded_test_ids(pytester.path / "recordings" / "test_module_mark") == [
        "test_module_mark.py::test_module_marked"
    ]

    # The same request from two parametrized tests: each test replays its own answer.
    for path in chat_dir.glob("*.json"):
        record = json.loads(path.read_text())
        if record["test_id"] == "test_chat.py::test_param[b]":
            message = record["response"]["body"]["__data__"]["choices"][0]["message"]
            message["content"] = "Edited answer of b"
            path.write_text(json.dumps(record))
    (pytester.path / "answers.txt").unlink()

    go_offline(monkeypatch, recording_env)
    result = run(pytester, in_subprocess=True)  # no option: replay
    result.assert_outcomes(passed=7)
    assert summary(result) == "apirec: 6 calls: 6 replayed, 0 recorded, 0 missing (mode replay)"
    answers = dict(line.split("\t") for line in (pytester.path / "answers.txt").read_text().splitlines())
    assert answers["test_chat.py::test_param[b]"] == "Edited answer of b"
    assert answers["test_chat.py::test_param[a]"] != "Edited answer of b"
    assert answers["test_chat.py::test_param[a]"] == answers["test_chat.py::TestClass::test_in_class"]
    assert len(recording_env.requests) == served


@pytest.mark.timeout(600)
def test_a_missing_recording_fails_with_the_explanation_and_no_sdk_frames(
    pytester: pytest.Pytester, recording_env: WireServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini(INI)
    test = """
        import pytest
        from openai import OpenAI

        client = OpenAI(max_retries=0)


        def ask(**extra):
            return client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "What is the latest version of Python?"}], **extra
            )


        @pytest.mark.apirec
        def test_chat():
            ask(TEMPERATURE)
    """
    pytester.makepyfile(test_ask=textwrap.dedent(test).replace("TEMPERATURE", ""))
    run(pytester, "--apirec-mode=record-if-missing").assert_outcomes(passed=1)

    go_offline(monkeypatch, recording_env)
    pytester.makepyfile(test_ask=textwrap.dedent(test).replace("TEMPERATURE", "temperature=0.2"))
    result = run(pytester)
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*def test_chat():",
            ">       ask(temperature=0.2)",
            "*",
            "    def ask(**extra):",
            ">       return client.chat.completions.create(",
            "E       notebook_recorder.core._errors.RecordingNotFoundError: No recording of POST /v1/chat/completions "
            "(model gpt-4o) in recordings/test_ask/ *",
            "E       Nearest recorded request: recordings/test_ask/*.json",
            "E           body.temperature: (absent) -> 0.2",
            "E       To record it, run the call once with an API key in record-if-missing mode:",
            "E           pytest --apirec-mode=record-if-missing test_ask.py::test_chat   (in pytest)",
            'E           nr.recording("record-if-missing", dir="recordings/test_ask")   (in code)',
            "test_ask.py:*: RecordingNotFoundError",
        ]
    )
    for internal in ("_base_client.py", "sdk/_stainless.py", "_engine.py", "_utils/_utils.py"):
        assert internal not in output
    assert summary(result) == "apirec: 1 call: 0 replayed, 0 recorded, 1 missing (mode replay)"

    # --fulltrace shows every frame again.
    assert "_engine.py" in run(pytester, "--fulltrace").stdout.str()


def test_a_never_recorded_test_in_replay_without_a_recordings_directory(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_new="""
        import pytest
        from openai import OpenAI

        @pytest.mark.apirec
        def test_new():
            OpenAI().embeddings.create(model="text-embedding-3-small", input="hi")

        @pytest.mark.apirec
        def test_without_calls(apirec):
            assert apirec.mode.value == "replay"
        """
    )
    result = run(pytester)
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "E       *RecordingNotFoundError: No recording of POST /v1/embeddings (model text-embedding-3-small) "
            "in recordings/test_new/ *",
            "E       That directory does not exist: nothing has been recorded there yet.",
        ]
    )
    assert not (pytester.path / "recordings").exists()  # replay writes nothing


def test_settings_marker_config_command_line_and_environment(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mode: the marker's, else --apirec-mode, else the directory's apirec_config, else replay;
    APIREC_MODE over all. A relative dir is relative to the test file."""
    report = f"""
        def report(nodeid, apirec):
            with open({str(pytester.path / "settings.txt")!r}, "a") as fh:
                fh.write(f"{{nodeid}}|{{apirec.mode.value}}|{{apirec.dir}}|{{apirec.scope}}\\n")
    """
    pytester.makepyfile(
        test_top=textwrap.dedent(report)
        + textwrap.dedent(
            """
            import pytest

            @pytest.mark.apirec
            def test_default(request, apirec):
                report(request.node.nodeid, apirec)

            @pytest.mark.apirec(mode="live", dir="elsewhere", scope=None)
            def test_pinned(request, apirec):
                report(request.node.nodeid, apirec)
            """
        )
    )
    sub = pytester.mkdir("sub")
    (sub / "conftest.py").write_text(
        textwrap.dedent(
            """
            import pytest

            @pytest.fixture
            def apirec_config():
                return {"mode": "record-if-missing", "dir": "cassettes", "scope": "shared"}
            """
        )
    )
    (sub / "test_sub.py").write_text(
        textwrap.dedent(report)
        + textwrap.dedent(
            """
            import pytest

            @pytest.mark.apirec
            def test_configured(request, apirec):
                report(request.node.nodeid, apirec)

            def test_fixture_alone(request, apirec):
                report(request.node.nodeid, apirec)
            """
        )
    )
    settings = pytester.path / "settings.txt"

    def session(*args: str) -> dict[str, list[str]]:
        settings.unlink(missing_ok=True)
        run(pytester, "-W", "error::pytest.PytestUnknownMarkWarning", *args).assert_outcomes(passed=4)
        rows = [line.split("|") for line in settings.read_text().splitlines()]
        return {row[0]: row[1:] for row in rows}

    root = pytester.path
    assert session() == {
        "test_top.py::test_default": ["replay", str(root / "recordings" / "test_top"), "test_top.py::test_default"],
        "test_top.py::test_pinned": ["live", str(root / "elsewhere"), "None"],
        "sub/test_sub.py::test_configured": ["record-if-missing", str(root / "sub" / "cassettes"), "shared"],
        "sub/test_sub.py::test_fixture_alone": ["record-if-missing", str(root / "sub" / "cassettes"), "shared"],
    }
    modes = {nodeid: row[0] for nodeid, row in session("--apirec-mode=record").items()}
    assert modes == {
        "test_top.py::test_default": "record",
        "test_top.py::test_pinned": "live",
        "sub/test_sub.py::test_configured": "record",
        "sub/test_sub.py::test_fixture_alone": "record",
    }
    monkeypatch.setenv("APIREC_MODE", "replay")
    assert {row[0] for row in session("--apirec-mode=record").values()} == {"replay"}
    monkeypatch.delenv("APIREC_MODE")

    # The ini option moves the root, keeping each test file's directory under it.
    pytester.makeini("[pytest]\napirec_dir = api-recordings\n")
    dirs = {nodeid: row[1] for nodeid, row in session().items()}
    assert dirs["test_top.py::test_default"] == str(root / "api-recordings" / "test_top")
    assert dirs["sub/test_sub.py::test_configured"] == str(root / "sub" / "cassettes")


def test_bad_marker_arguments_are_named(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_bad="""
        import pytest

        @pytest.mark.apirec(mdoe="replay")
        def test_typo():
            pass

        @pytest.mark.apirec(mode="reply")
        def test_bad_mode():
            pass

        @pytest.mark.apirec("replay")
        def test_positional():
            pass
        """
    )
    result = run(pytester)
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines_random(
        [
            "*test_bad.py::test_typo: @pytest.mark.apirec: unknown setting(s) 'mdoe'; "
            "valid ones are: dir, mode, scope*",
            "*test_bad.py::test_bad_mode: unknown mode 'reply'; "
            "valid modes are: live, record, replay, record-if-missing*",
            "*test_bad.py::test_positional: @pytest.mark.apirec takes keyword arguments only*",
        ]
    )


def test_bad_mode_option_lists_the_valid_ones(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--apirec-mode=recrod")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--apirec-mode: invalid choice: 'recrod'*live*record*replay*record-if-missing*"])


def test_a_bad_apirec_mode_in_the_environment_is_a_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APIREC_MODE", "replya")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*APIREC_MODE: unknown mode 'replya'; valid modes are: live, record, replay*"])


KEY_VARIABLES = ("OPENAI_API_KEY", "GROQ_API_KEY", "CO_API_KEY", "COHERE_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY")


def test_a_replaying_session_needs_no_key_and_leaves_the_environment_alone(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a session that replays (the default), module-level clients build without a key, and
    nothing is put in ``os.environ``: a ``skipif`` on the key still skips, the user's own default
    for a missing key is still used. A client's placeholder, sent by the test's own HTTP client, is
    refused and never reaches the server. A subprocess, as a user's ``pytest`` runs: the plugin is
    configured before openai and the other SDKs are imported."""
    for name in KEY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    pytester.makepyfile(
        test_keyless=f"""
        import os, socket, threading, urllib.request
        import cohere, groq, pytest
        from google import genai
        from openai import AsyncOpenAI, OpenAI
        import notebook_recorder as nr

        PLACEHOLDER = "sk-notebook-recorder-replay-placeholder"
        client = OpenAI(max_retries=0)  # at import time, no key anywhere
        others = [AsyncOpenAI(), groq.Groq(), cohere.ClientV2(), genai.Client()]


        def keys_in_the_environment():
            assert PLACEHOLDER not in os.environ.values()
            return [name for name in {KEY_VARIABLES!r} if name in os.environ]


        @pytest.mark.skipif(not os.environ.get("OPENAI_API_KEY"), reason="needs OPENAI_API_KEY")
        def test_needs_a_real_key():
            raise AssertionError("ran without a key")


        def test_the_environment_is_the_users():
            assert client.api_key == PLACEHOLDER
            assert os.environ.get("OPENAI_API_KEY", "local-key") == "local-key"
            assert keys_in_the_environment() == []


        @pytest.mark.apirec
        def test_marked(apirec):
            assert OpenAI().api_key == PLACEHOLDER
            assert os.environ.get("OPENAI_API_KEY", "local-key") == "local-key"
            assert keys_in_the_environment() == []


        def test_own_client():
            server = socket.create_server(("127.0.0.1", 0))
            received = []
            def serve():
                conn, _ = server.accept()
                conn.settimeout(2)
                try:
                    received.append(conn.recv(65536))
                except OSError:
                    pass
                conn.close()
            thread = threading.Thread(target=serve, daemon=True)
            thread.start()
            request = urllib.request.Request(
                f"http://127.0.0.1:{{server.getsockname()[1]}}/v1/models",
                headers={{"Authorization": f"Bearer {{client.api_key}}"}},
            )
            with pytest.raises(nr.NetworkBlockedError, match="placeholder"):
                urllib.request.urlopen(request, timeout=5)
            thread.join(5)
            assert not any(PLACEHOLDER.encode() in data for data in received)
        """
    )
    result = run(pytester, "-rs", in_subprocess=True)
    result.assert_outcomes(passed=3, skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*needs OPENAI_API_KEY*"])


def test_a_recording_session_gives_no_placeholder(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--apirec-mode=record`` is the SDK as it is: ``OpenAI()`` without a key raises its own error."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    pytester.makepyfile(
        test_record="""
        import openai, pytest

        def test_no_key():
            with pytest.raises(openai.OpenAIError, match="OPENAI_API_KEY"):
                openai.OpenAI()
        """
    )
    run(pytester, "--apirec-mode=record").assert_outcomes(passed=1)


def test_block_network_option_and_marker(pytester: pytest.Pytester) -> None:
    """``--apirec-block-network``: a marked test's own connection is refused before anything is
    sent, unless its host is allowed (on the command line or in the marker)."""
    pytester.makepyfile(
        test_net="""
        import socket
        import pytest

        def connect():
            server = socket.create_server(("127.0.0.1", 0))
            with server, socket.create_connection(server.getsockname(), timeout=5):
                pass

        @pytest.mark.apirec
        def test_own_connection():
            connect()

        @pytest.mark.apirec(allow_hosts=["127.0.0.1"])
        def test_allowed_by_the_marker():
            connect()

        def test_unmarked():
            connect()
        """
    )
    run(pytester).assert_outcomes(passed=3)
    blocked = run(pytester, "--apirec-block-network")
    blocked.assert_outcomes(passed=2, failed=1)
    blocked.stdout.fnmatch_lines(["*NetworkBlockedError*127.0.0.1*"])
    run(pytester, "--apirec-block-network", "--apirec-allow-host", "localhost").assert_outcomes(passed=3)
    run(pytester, "--apirec-allow-host", "localhost").assert_outcomes(errors=2, passed=1)


def test_ignore_and_normalize_in_the_marker_and_config(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def apirec_config():
            return {"normalize": {r"\\d{4}-\\d{2}-\\d{2}": "<date>"}}
        """
    )
    pytester.makepyfile(
        test_rules="""
        import pytest

        @pytest.mark.apirec(ignore=["body.metadata"])
        def test_rules(apirec):
            described = apirec.rules.summary()
            assert "body.metadata" in described and "<date>" in described
        """
    )
    run(pytester).assert_outcomes(passed=1)


def test_a_session_without_markers_shows_no_summary(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = run(pytester)
    result.assert_outcomes(passed=1)
    assert "apirec" not in result.stdout.str()


@pytest.mark.frontend
@pytest.mark.timeout(600)
def test_xdist_workers_record_and_replay_and_the_summary_adds_them_up(
    pytester: pytest.Pytester, recording_env: WireServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("xdist", reason="pytest-xdist is not installed")
    pytester.makeini(INI)
    pytester.makepyfile(test_chat=CHAT_TESTS, test_module_mark=MODULE_MARK_TESTS)
    result = run(pytester, "-n", "2", "--apirec-mode=record-if-missing", in_subprocess=True)
    result.assert_outcomes(passed=7)
    assert summary(result) == "apirec: 6 calls: 0 replayed, 6 recorded, 0 missing (mode record-if-missing)"

    go_offline(monkeypatch, recording_env)
    result = run(pytester, "-n", "2", in_subprocess=True)
    result.assert_outcomes(passed=7)
    assert summary(result) == "apirec: 6 calls: 6 replayed, 0 recorded, 0 missing (mode replay)"


# ---------------------------------------------------------------------------------------------
# Notebooks as test items
# ---------------------------------------------------------------------------------------------

HELLO_ANSWER = "Hello! It's nice to meet you. Is there something I can help you with, or would you like to chat?"


def write_notebook(path: Path, question: str, stored_answer: str) -> None:
    """A notebook that replays 01_quickstart's recordings, with ``stored_answer`` as its stored output."""
    setup = (
        "from openai import OpenAI\nimport notebook_recorder as nr\n"
        'client = OpenAI(base_url="http://localhost:11434/v1", api_key="ollama")'
    )
    ask = (
        f"with nr.recording('replay', dir={str(QUICKSTART)!r}):\n"
        "    reply = client.chat.completions.create(\n"
        f"        model='llama3.2:3b-instruct-fp16', messages=[{{'role': 'user', 'content': {question!r}}}], "
        "stream=False\n    )\n"
        "print(reply.choices[0].message.content)"
    )
    nb = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    nb.cells = [
        nbformat.v4.new_code_cell(setup, execution_count=1),  # type: ignore[no-untyped-call]
        nbformat.v4.new_code_cell(  # type: ignore[no-untyped-call]
            ask,
            execution_count=2,
            outputs=[nbformat.v4.new_output("stream", name="stdout", text=stored_answer + "\n")],  # type: ignore[no-untyped-call]
        ),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))  # type: ignore[no-untyped-call]


@pytest.mark.frontend
@pytest.mark.timeout(600)
def test_notebooks_are_test_items_checked_like_run_check(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    notebooks = pytester.path / "notebooks"
    write_notebook(notebooks / "good.ipynb", "Hello, world!", HELLO_ANSWER)
    write_notebook(notebooks / "changed.ipynb", "Hello, world!", HELLO_ANSWER.replace("nice", "lovely"))
    write_notebook(notebooks / "sub" / "missing.ipynb", "Hello, moon!", HELLO_ANSWER)

    # Without the option, notebooks are not collected.
    run(pytester).assert_outcomes(passed=1)

    result = run(pytester, "-v", "--apirec-notebooks", "notebooks")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines_random(
        [
            "notebooks/good.ipynb::good.ipynb PASSED*",
            "notebooks/changed.ipynb::changed.ipynb FAILED*",
            "notebooks/sub/missing.ipynb::missing.ipynb FAILED*",
            "test_plain.py::test_plain PASSED*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*_ notebook changed.ipynb _*",
            "changed.ipynb: 1 cell(s) with outputs different from the stored ones",
            "cell 2, execution count 2:",
            "    --- stored",
            "    +++ executed",
            "*",
            f"    -{HELLO_ANSWER.replace('nice', 'lovely')}",
            f"    +{HELLO_ANSWER}",
            "If the new outputs are right, store them with: notebook-recorder run notebooks/changed.ipynb "
            "--mode replay --output notebooks/changed.ipynb",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*_ notebook missing.ipynb _*",
            "FAILED missing.ipynb, cell 2: a call has no recording",
            "  No recording of POST /v1/chat/completions (model llama3.2:3b-instruct-fp16) *",
            "      body.messages[0].content: 'Hello, world!' -> 'Hello, moon!'",
            "*",
            "    notebook-recorder run */notebooks/sub/missing.ipynb --mode record-if-missing",
            "    or: pytest --apirec-mode=record-if-missing --apirec-notebooks notebooks/sub/missing.ipynb",
        ]
    )
    assert summary(result) == "apirec: 3 calls: 2 replayed, 0 recorded, 1 missing (mode replay)"

    # One notebook given by its path; the tests given on the command line still run.
    result = run(pytester, "test_plain.py", "--apirec-notebooks", str(notebooks / "good.ipynb"))
    result.assert_outcomes(passed=2)


def test_apirec_notebooks_names_a_bad_path(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--apirec-notebooks", "nowhere")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert re.search(r"--apirec-notebooks: no such file or directory: nowhere", result.stderr.str())


def test_function_fixtures_are_recorded_with_the_test_and_wider_ones_are_not(pytester: pytest.Pytester) -> None:
    """The recorder starts before the test's function-scoped fixtures, after its session ones."""
    pytester.makepyfile(
        test_fixtures="""
        import pytest
        import notebook_recorder as nr

        @nr.tool(provider="local", name="lookup")
        def lookup(query):
            return {"query": query}

        @pytest.fixture(scope="session")
        def once():
            return lookup("session fixture")

        @pytest.fixture
        def each():
            return lookup("function fixture")

        @pytest.mark.apirec
        def test_uses_both(each, once):
            lookup("test body")
        """
    )
    result = run(pytester, "--apirec-mode=record")
    result.assert_outcomes(passed=1)
    assert summary(result) == "apirec: 2 calls: 0 replayed, 2 recorded, 0 missing (mode record)"
    records = [json.loads(p.read_text()) for p in (pytester.path / "recordings" / "test_fixtures").glob("*.json")]
    queries = sorted(record["request"]["kwargs"]["query"] for record in records)
    assert queries == ["function fixture", "test body"]
    assert {record["test_id"] for record in records} == {"test_fixtures.py::test_uses_both"}


def test_two_tests_making_the_same_tool_call_each_replay_their_own_answer(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tool calls are keyed with the test's node id, as API calls are (issue 22): recording the
    second test no longer replaces the first one's answer."""
    pytester.makepyfile(
        test_same_tool="""
        import os
        import pytest
        import notebook_recorder as nr

        @nr.tool(provider="tavily", name="web_search")
        def web_search(query):
            return os.environ["ANSWER_PREFIX"] + os.environ["PYTEST_CURRENT_TEST"].split("::")[1].split(" ")[0]

        @pytest.mark.apirec
        def test_one():
            print("GOT", web_search("same query"))

        @pytest.mark.apirec
        def test_two():
            print("GOT", web_search("same query"))
        """
    )
    monkeypatch.setenv("ANSWER_PREFIX", "answer of ")
    recorded = run(pytester, "--apirec-mode=record", "-s")
    monkeypatch.delenv("ANSWER_PREFIX")  # replay must not call the tool: it would fail now
    recorded.assert_outcomes(passed=2)
    assert len(list((pytester.path / "recordings" / "test_same_tool").glob("*.json"))) == 2
    replayed = run(pytester, "--apirec-mode=replay", "-s")
    replayed.assert_outcomes(passed=2)
    got = [line for line in replayed.outlines if "GOT" in line]
    assert [line.split("GOT ", 1)[1] for line in got] == ["answer of test_one", "answer of test_two"]
