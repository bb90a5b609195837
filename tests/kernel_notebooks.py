"""Notebooks in a real Jupyter kernel (nbclient + ipykernel) for the tests: run one, read its cells.

Shared by the front-end tests (tests/frontends/test_kernel.py) and the network guard's (tests/hooks).
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat import NotebookNode

import notebook_recorder

PACKAGE_ROOT = str(Path(notebook_recorder.__file__).resolve().parent.parent)


def kernel_env(**extra: str) -> dict[str, str]:
    """The kernel's environment: this one, with notebook_recorder importable and no recorder
    settings or API key leaking in from the shell."""
    env = {k: v for k, v in os.environ.items() if k not in ("APIREC_MODE", "APIREC_DIR", "OPENAI_API_KEY")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_ROOT, env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def execute(notebook: Path, **env: str) -> NotebookNode:
    """Run every cell of ``notebook`` in a fresh kernel, in the notebook's directory."""
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=60,
        allow_errors=True,
        resources={"metadata": {"path": str(notebook.parent)}},
    )
    return client.execute(env=kernel_env(NOTEBOOK_RECORDER_NOTEBOOK=str(notebook), **env))


def text(cell: NotebookNode) -> str:
    """A cell's stdout and stderr."""
    return "".join(output.get("text", "") for output in cell.outputs if output.output_type == "stream")


def own(output: NotebookNode) -> str | None:
    """The role of an output the extension showed by itself (its metadata says so), else None."""
    tag = output.get("metadata", {}).get("notebook_recorder")
    return None if tag is None else str(tag["role"])


def notes(cell: NotebookNode) -> str:
    """What the extension showed by itself in a cell (notes, state), one output per line."""
    return "".join(output.data["text/plain"] + "\n" for output in cell.outputs if own(output) in ("note", "state"))
