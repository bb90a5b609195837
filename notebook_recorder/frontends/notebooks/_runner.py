"""Running notebooks in a real kernel: the engine behind ``notebook-recorder run`` and ``prune``.

It imports nbformat and nbclient only inside the functions that need them, so that importing
this module stays cheap.

Execution
---------
Each notebook runs in a fresh kernel (nbclient + ipykernel) whose working directory is the
notebook's directory, with these environment variables:

- ``APIREC_MODE=<mode>``: overrides any mode chosen in the notebook (``replay`` by default).
- ``NOTEBOOK_RECORDER_NOTEBOOK=<absolute path of the notebook>``: ``%apirec`` uses it to put
  recordings in ``recordings/<notebook stem>/`` beside the notebook.
- ``NOTEBOOK_RECORDER_USAGE_LOG=<temporary file>``: the recorder appends each replayed or recorded
  file to it, which is how the command counts calls and learns which recordings were used.

Cells run in order. The first cell that raises stops the run (later cells would only fail in
turn), unless the cell is tagged ``raises-exception``, as in nbclient.

Comparing the outputs with the stored ones (``--check``) is :mod:`._comparison`.
"""

from __future__ import annotations

import contextlib
import copy
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ...core._calllog import ENV_USAGE_LOG
from ...core._modes import ENV_MODE, ENV_RUN_MODE
from ...core._secrets import environment_secrets, mask
from .._discovery import ENV_NOTEBOOK
from . import _kernel_tee
from ._comparison import ANSI, merge_streams
from ._kernel_tee import ENV_KERNEL_TAIL

IPYTHON_KERNELS = frozenset({"python", "python2", "python3"})
"""Kernel names that are ipykernel, the rule nbclient and jupyter_client use."""
LAST_LINES = 40
"""How many of the last lines a dead kernel wrote its message shows."""
TAIL_WAIT = 5.0
"""How long a dead kernel's last output is waited for (see :func:`_last_words`)."""

RAISES_TAG = "raises-exception"
MERGED = "merged"
"""The usage log's outcome for a file a replay read besides the one it counts (``_recorder``)."""

# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass
class CellRun:
    """What happened to one code cell."""

    index: int  # position in the notebook's cell list, from 0
    number: int  # position among the code cells, from 1
    status: str  # "ok", "error", "expected-error", "missing-recording", "timeout", "dead-kernel"
    seconds: float
    source: str
    ename: str = ""
    evalue: str = ""
    traceback: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.status not in ("ok", "expected-error")

    @property
    def first_line(self) -> str:
        """The first non-empty line of the cell's source, for progress lines."""
        for line in self.source.splitlines():
            if line.strip():
                return line.strip()
        return ""


@dataclass
class NotebookRun:
    """One executed notebook: the stored and executed versions, per-cell results, files used."""

    path: Path
    stored: Any  # nbformat.NotebookNode
    executed: Any  # nbformat.NotebookNode
    code_cells: int
    cells: list[CellRun]
    usage: list[tuple[str, Path]]
    seconds: float

    @property
    def failure(self) -> CellRun | None:
        """The cell that stopped the run, if any."""
        return next((cell for cell in self.cells if cell.failed), None)

    def outcomes(self) -> dict[str, int]:
        """How many calls were ``replayed``, ``recorded``..., from the usage log."""
        counts: dict[str, int] = {}
        for outcome, _ in self.usage:
            if outcome == MERGED:  # another file of a call already counted
                continue
            counts[outcome] = counts.get(outcome, 0) + 1
        return counts

    def files_used(self) -> set[Path]:
        return {path for _, path in self.usage}


# ---------------------------------------------------------------------------------------------
# Execution
# ---------------------------------------------------------------------------------------------


class NotebookError(Exception):
    """A notebook that cannot be run at all: unreadable, or its kernel does not start."""


def read_notebook(path: Path) -> Any:
    """A notebook as an nbformat v4 node; :class:`NotebookError` naming the file if it is not one."""
    import nbformat

    try:
        return nbformat.read(str(path), as_version=4)  # type: ignore[no-untyped-call]
    except Exception as exc:  # nbformat raises several unrelated types for broken files
        raise NotebookError(f"{path}: not a readable notebook ({type(exc).__name__}: {exc})") from None


def execute(
    path: Path,
    *,
    mode: str = "replay",
    timeout: float | None = None,
    kernel_name: str = "python3",
    on_cell: Callable[[CellRun, int], None] | None = None,
    env: Mapping[str, str] | None = None,
) -> NotebookRun:
    """Run every code cell of the notebook at ``path`` in a fresh kernel.

    ``on_cell(cell_run, code_cell_count)`` is called after each cell, for progress lines.
    ``env`` adds variables to the kernel's environment (after ``os.environ``).
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    path = path.resolve()
    nb = read_notebook(path)
    stored = copy.deepcopy(nb)
    code_indexes = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and cell.source.strip()]
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=kernel_name,
        allow_errors=True,
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
        config=_kernel_config(),
    )
    if kernel_name in IPYTHON_KERNELS:  # the kernel's last words (see _kernel_tee)
        client.extra_arguments = [
            *client.extra_arguments,
            f"--InteractiveShellApp.extra_extensions={_kernel_tee.__name__}",
        ]
    fd, log_name = tempfile.mkstemp(prefix="notebook-recorder-usage-", suffix=".log")
    os.close(fd)
    usage_log = Path(log_name)
    fd, tail_name = tempfile.mkstemp(prefix="notebook-recorder-kernel-tail-", suffix=".log")
    os.close(fd)
    kernel_tail = Path(tail_name)
    kernel_env = {
        **os.environ,
        **(env or {}),
        ENV_MODE: mode,
        ENV_RUN_MODE: mode,
        ENV_NOTEBOOK: str(path),
        ENV_USAGE_LOG: str(usage_log),
        ENV_KERNEL_TAIL: str(kernel_tail),
    }
    cells: list[CellRun] = []
    started = time.perf_counter()
    try:
        client.reset_execution_trackers()
        with contextlib.ExitStack() as stack:
            # The kernel process's own output (what it writes outside the cells, such as
            # ipykernel's log when it shuts down) goes to a file, not into ours: it would mix with
            # the progress lines and break `run --json`. It is shown only when the kernel fails.
            kernel_output = stack.enter_context(tempfile.TemporaryFile(prefix="notebook-recorder-kernel-"))
            try:
                stack.enter_context(client.setup_kernel(env=kernel_env, stdout=kernel_output, stderr=subprocess.STDOUT))
            except Exception as exc:  # NoSuchKernel, a kernel that dies at start, a timeout...
                raise NotebookError(
                    f"{path}: cannot start kernel {kernel_name!r}: {exc}{_last_lines(kernel_output)}"
                ) from None
            assert client.kc is not None
            info = client.wait_for_reply(client.kc.kernel_info())
            if info is not None and "language_info" in info["content"]:
                nb.metadata["language_info"] = info["content"]["language_info"]
            for number, index in enumerate(code_indexes, 1):
                cell = nb.cells[index]
                cell_started = time.perf_counter()
                status, ename, evalue, tb = "ok", "", "", []
                try:
                    client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
                except CellTimeoutError:
                    status, ename, evalue = "timeout", "CellTimeoutError", f"no reply within {timeout} s"
                except DeadKernelError as exc:
                    evalue = (str(exc) or "the kernel died") + _last_words(kernel_tail, kernel_output)
                    status, ename = "dead-kernel", "DeadKernelError"
                else:
                    cell.outputs = merge_streams(cell.get("outputs", []))
                    error = next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)
                    if error is not None:
                        ename, evalue = str(error.get("ename", "")), str(error.get("evalue", ""))
                        tb = [ANSI.sub("", line) for line in error.get("traceback", [])]
                        if RAISES_TAG in cell.metadata.get("tags", []):
                            status = "expected-error"
                        elif ename == "RecordingNotFoundError":
                            status = "missing-recording"
                        else:
                            status = "error"
                run = CellRun(
                    index=index,
                    number=number,
                    status=status,
                    seconds=time.perf_counter() - cell_started,
                    source=cell.source,
                    ename=ename,
                    evalue=evalue,
                    traceback=tb,
                )
                cells.append(run)
                if on_cell is not None:
                    on_cell(run, len(code_indexes))
                if run.failed:
                    break
            client.set_widgets_metadata()
        usage = read_usage_log(usage_log)
    finally:
        usage_log.unlink(missing_ok=True)
        kernel_tail.unlink(missing_ok=True)
        Path(_kernel_tee.copying(str(kernel_tail))).unlink(missing_ok=True)  # a child outlived the kernel
    return NotebookRun(
        path=path,
        stored=stored,
        executed=nb,
        code_cells=len(code_indexes),
        cells=cells,
        usage=usage,
        seconds=time.perf_counter() - started,
    )


def _last_lines(output: IO[bytes], count: int = LAST_LINES) -> str:
    """The last ``count`` lines a kernel wrote to its own output, as a paragraph to add to an
    error ("" when it wrote nothing), credentials masked."""
    output.seek(0)
    return _paragraph(output.read(), count)


def _last_words(tail: Path, output: IO[bytes], count: int = LAST_LINES) -> str:
    """What a dead kernel wrote last: the file its descriptors were copied to (``_kernel_tee``),
    once the copying process has caught up (it ends when the kernel and its children have gone;
    waited for :data:`TAIL_WAIT` seconds at most: a child may outlive the kernel), or the
    kernel's own output when that file is empty (a kernel that is not ipykernel, or without
    notebook_recorder)."""
    mark, deadline = Path(_kernel_tee.copying(str(tail))), time.monotonic() + TAIL_WAIT
    while mark.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    data = tail.read_bytes() if tail.exists() else b""
    if not data:
        return _last_lines(output, count)
    return _paragraph(data, count)


def _paragraph(data: bytes, count: int) -> str:
    lines = [line for line in data.decode("utf-8", "replace").splitlines() if line.strip()][-count:]
    lines = mask(lines, environment_secrets())
    return "".join(f"\n  {line}" for line in ["The kernel's last output:", *lines]) if lines else ""


def _kernel_config() -> Any:
    """Encrypt the kernel's local sockets when this jupyter_client and pyzmq can (CurveZMQ).

    Besides being safer, it silences the "running over TCP without encryption" warning that
    recent ipykernels print for every kernel started without it.
    """
    import zmq
    from jupyter_client.manager import KernelManager
    from traitlets.config import Config

    config = Config()
    if KernelManager.class_traits().get("transport_encryption") is not None and zmq.has("curve"):
        config.KernelManager.transport_encryption = "auto"
    return config


def read_usage_log(path: Path) -> list[tuple[str, Path]]:
    """``(outcome, absolute path)`` pairs from a usage log written by the recorder."""
    pairs: list[tuple[str, Path]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return pairs
    for line in text.splitlines():
        outcome, sep, file = line.partition("\t")
        if sep:
            pairs.append((outcome, Path(file)))
    return pairs


def write_notebook(nb: Any, path: Path) -> None:
    """Write an executed notebook (nbformat v4) to ``path``, creating parent directories.

    No credential reaches the saved outputs: the values of credential environment variables
    (which the kernel inherited), printed by a cell or echoed in a live error in ``record``
    mode, are masked as they are in recordings. Atomically: a temporary file beside it, then
    renamed over it, so an interrupted write never leaves a notebook half written (``run``
    writes over the notebook it ran by default).
    """
    import nbformat

    secrets = environment_secrets()
    if secrets:
        for cell in nb.get("cells", []):
            if cell.get("outputs"):
                cell["outputs"] = nbformat.from_dict(mask(cell["outputs"], secrets))  # type: ignore[no-untyped-call]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            nbformat.write(nb, file)  # type: ignore[no-untyped-call]
        if path.exists():
            os.chmod(temporary, path.stat().st_mode & 0o777)
        else:  # as open() would have made it (mkstemp's files are private)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def summarize_traceback(lines: Sequence[str], limit: int = 12) -> list[str]:
    """The last lines of a kernel traceback, without colour codes or empty lines."""
    flat = [line for chunk in lines for line in ANSI.sub("", chunk).splitlines() if line.strip()]
    return flat[-limit:]
