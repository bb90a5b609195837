"""The magics in a real Jupyter kernel (nbclient + ipykernel), talking real HTTP to the wire server.

Few tests, each starting a kernel (about a second): a notebook recorded, then replayed with the
server stopped, and ``%%apirec`` cells interrupted with a real SIGINT.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from kernel_notebooks import PACKAGE_ROOT, execute, kernel_env, notes, own, text
from nbclient import NotebookClient
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_notebook
from wire_server import TEST_API_KEY, WireServer

pytestmark = pytest.mark.timeout(90)

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"


def comparable(cell: NotebookNode) -> list[Any]:
    """A cell's outputs without the extension's own notes (which say recorded vs replayed). Text on
    one stream is joined: where the kernel cut it into messages depends on when it flushed."""
    result: list[Any] = []
    for output in cell.outputs:
        if own(output) is not None:
            continue
        if output.output_type == "stream":
            if result and result[-1][0] == output.name:
                result[-1] = (output.name, result[-1][1] + output.text)
            else:
                result.append((output.name, output.text))
        elif output.output_type in ("execute_result", "display_data"):
            result.append((output.output_type, dict(output.data)))
        else:
            result.append((output.output_type, output.get("ename"), output.get("evalue")))
    return result


def result(cell: NotebookNode) -> str:
    """A cell's ``Out[n]`` as text."""
    (output,) = [output for output in cell.outputs if output.output_type == "execute_result"]
    return str(output.data["text/plain"])


def errors(nb: NotebookNode) -> list[str]:
    return [
        f"cell {index}: {output.ename}: {output.evalue}"
        for index, cell in enumerate(nb.cells)
        for output in cell.get("outputs", [])
        if output.output_type == "error"
    ]


@pytest.fixture
def notebook(tmp_path: Path) -> Path:
    path = tmp_path / "roundtrip.ipynb"
    shutil.copy(NOTEBOOKS / "roundtrip.ipynb", path)
    return path


def test_record_then_replay_with_the_server_stopped(notebook: Path, wire_server: WireServer) -> None:
    wire = {"WIRE_BASE_URL": wire_server.base_url, "WIRE_API_KEY": TEST_API_KEY}
    recorded = execute(notebook, **wire)
    assert errors(recorded) == []
    recordings = notebook.parent / "recordings" / "roundtrip"
    assert len(list(recordings.glob("*.json"))) == 4
    served = len(wire_server.requests)
    assert served == 4

    wire_server.stop()
    nb = nbformat.read(notebook, as_version=4)
    nb.cells.append(
        new_code_cell('client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "new"}])')
    )
    nbformat.write(nb, notebook)
    replayed = execute(notebook, APIREC_MODE="replay", **wire)

    cells = list(zip(recorded.cells, replayed.cells, strict=False))
    code = [(r, p) for r, p in cells if r.cell_type == "code"]
    _load, start, _setup, sync, stream, cell_await, session_await, status = code

    # The outputs are the same, streamed tokens included.
    for before, after in (sync, stream, cell_await, session_await):
        assert comparable(before) == comparable(after)
        assert comparable(after) != []
    assert "Python" in text(sync[1])
    assert "Python" in result(cell_await[1])  # top-level await in a %%apirec cell
    assert result(session_await[1]).startswith("(1536,")  # and after %apirec

    # What the extension said about it: display data tagged as its own, never stdout.
    assert notes(start[0]) == "apirec: recordings go to recordings/roundtrip/ (notebook roundtrip.ipynb)\n"
    assert "apirec: $APIREC_MODE=replay overrides record-if-missing" in notes(start[1])
    assert notes(sync[0]).endswith("apirec: recorded 1 call to recordings/roundtrip\n")
    assert notes(sync[1]).endswith("apirec: replayed 1 call from recordings/roundtrip\n")
    assert notes(cell_await[1]) == (
        "apirec: $APIREC_MODE=replay overrides record-if-missing\napirec: replayed 1 call from recordings/roundtrip\n"
    )
    assert not any("apirec:" in text(cell) for pair in code for cell in pair)
    assert [o.output_type for o in sync[1].outputs if own(o) is not None] == ["display_data"]

    # %apirec status: an HTML table in the notebook, with a text version beside it.
    table = status[1].outputs[0]
    assert table.output_type == "display_data"
    assert own(table) == "status"
    assert table.data["text/html"].startswith('<table class="apirec-status">')
    assert "4 calls: 4 replayed" in table.data["text/plain"]

    # A call that was never recorded shows RecordingNotFoundError, not a connection error.
    missing = replayed.cells[-1].outputs
    assert [(o.output_type, o.ename) for o in missing] == [("error", "RecordingNotFoundError")]
    assert missing[0].evalue.startswith("No recording of POST /v1/chat/completions (model gpt-4o)")
    assert "Nearest recorded request" in missing[0].evalue
    assert not any("_base_client" in line for line in missing[0].traceback)
    assert len(wire_server.requests) == served


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[NotebookClient]:
    """A started kernel whose cells the test runs one at a time."""
    client = NotebookClient(
        new_notebook(),
        kernel_name="python3",
        timeout=180,
        allow_errors=True,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    with client.setup_kernel(env=kernel_env()):
        yield client


def run(client: NotebookClient, source: str) -> NotebookNode:
    cell = new_code_cell(source)
    client.nb.cells.append(cell)
    client.execute_cell(cell, len(client.nb.cells) - 1)
    return cell


def interrupt_when(flag: Path) -> threading.Thread:
    """Send SIGINT to the kernel, as Jupyter's interrupt button does, as soon as ``flag`` holds
    its process id (the cell writes it, then waits)."""

    def watch() -> None:
        deadline = time.monotonic() + 30
        while not (flag.exists() and flag.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # let the cell reach its wait
        os.kill(int(flag.read_text()), signal.SIGINT)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(
    "wait",
    [
        "import time\ntime.sleep(30)",
        # ipykernel cancels an async cell on SIGINT; the event loop notices at its next wake-up.
        "import asyncio\nfor _ in range(300):\n    await asyncio.sleep(0.1)",
    ],
    ids=["sync", "async"],
)
def test_interrupted_cell_restores_the_previous_mode(kernel: NotebookClient, tmp_path: Path, wait: str) -> None:
    run(kernel, "%load_ext notebook_recorder")
    run(kernel, "%apirec live --dir recs")
    flag = tmp_path / "started"
    watcher = interrupt_when(flag)
    started = time.monotonic()
    write_pid = f"import os, pathlib\npathlib.Path({str(flag)!r}).write_text(str(os.getpid()))"
    cell = run(kernel, f"%%apirec record\n{write_pid}\n{wait}")
    watcher.join()
    assert time.monotonic() - started < 20, "the interrupt did not stop the cell"
    assert [o.output_type for o in cell.outputs] == ["error"]

    state = run(kernel, "%apirec")
    assert notes(state).splitlines()[:4] == [
        "mode:        live",
        "dir:         recs",
        "scope:       none",
        "set by:      %apirec (session)",
    ]
    probe = run(kernel, "from notebook_recorder.core import _session\nprint(len(_session._stack))")
    assert text(probe) == "0\n"


def test_comments_and_tracebacks_read_like_ipython(kernel: NotebookClient, tmp_path: Path) -> None:
    """A trailing comment on a magic line is ignored, and a ``%%apirec`` cell's traceback shows
    the cell as it was written, with its own line numbers."""
    (tmp_path / "recs").mkdir()
    run(kernel, "%load_ext notebook_recorder")
    start = run(kernel, "%apirec replay --dir recs   # the whole session: replay only")
    assert [o.output_type for o in start.outputs] == []
    state = run(kernel, "%apirec  # where are we?")
    assert notes(state).splitlines()[:2] == ["mode:        replay", "dir:         recs"]

    cell = run(kernel, "%%apirec live  # this cell only\nanswer = 41\nraise ValueError(f'not {answer}')")
    (error,) = cell.outputs
    assert (error.output_type, error.ename, error.evalue) == ("error", "ValueError", "not 41")
    shown = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(error.traceback))
    assert re.search(r"line 3\b", shown)
    assert "----> 3 raise ValueError(f'not {answer}')" in shown
    assert "      1 %%apirec live  # this cell only" in shown
    assert "run_line_magic" not in shown and "--this-cell" not in shown

    after = run(kernel, "%apirec")
    assert notes(after).splitlines()[0] == "mode:        replay"  # the cell's mode ended with it

    # The package's own warnings are tagged like its notes; other warnings stay on stderr.
    warned = run(
        kernel,
        "import warnings\nfrom notebook_recorder.core._codec import UnknownTypeWarning\n"
        "warnings.warn('cannot import recorded type x.Y', UnknownTypeWarning)\n"
        "warnings.warn('not ours', UserWarning)",
    )
    roles = [(o.output_type, own(o)) for o in warned.outputs]
    assert roles == [("display_data", "warning"), ("stream", None)], warned.outputs
    assert warned.outputs[0].data["text/plain"] == "apirec: UnknownTypeWarning: cannot import recorded type x.Y"
    assert warned.outputs[1].name == "stderr" and "UserWarning: not ours" in warned.outputs[1].text


@pytest.mark.timeout(120)
def test_progress_in_a_kernel_without_ipywidgets(tmp_path: Path) -> None:
    shutil.copytree(Path(PACKAGE_ROOT, "recordings"), tmp_path / "recordings")
    nb = new_notebook(
        cells=[
            new_code_cell(
                "import sys\nsys.modules['ipywidgets'] = None  # as if not installed\n"
                "import notebook_recorder as nr\n"
                "df = nr.load_recordings('recordings', progress=True)\nlen(df)"
            )
        ]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APIREC_", "OPENAI_"))}
    env["APIREC_CACHE_DIR"] = os.environ.get("APIREC_CACHE_DIR", "off")  # conftest.py's, never ~/.cache
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_ROOT, env.get("PYTHONPATH")]))
    client = NotebookClient(nb, kernel_name="python3", timeout=180, resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env=env)
    outputs = nb.cells[0].outputs
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert not [o for o in outputs if o.output_type == "error"]
    assert "Loading recordings" in text and "Traceback" not in text and "Warning" not in text
    (result,) = [o for o in outputs if o.output_type == "execute_result"]
    assert int(result.data["text/plain"]) == len(list(Path(PACKAGE_ROOT, "recordings").rglob("*.json")))
