"""Which notebook a kernel runs, and where its recordings go by default.

The magics (``%apirec MODE`` without ``--dir``) and ``notebook-recorder run`` (which sets
:data:`ENV_NOTEBOOK` for the kernel it starts) share this. Nothing here imports IPython.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core._recorder import DEFAULT_DIR

__all__ = [
    "ENV_NOTEBOOK",
    "JUPYTER_SESSION_ENV",
    "VSCODE_VARIABLE",
    "DefaultDir",
    "default_dir",
    "display_path",
    "notebook_path",
]

ENV_NOTEBOOK = "NOTEBOOK_RECORDER_NOTEBOOK"
"""Set by ``notebook-recorder run`` to the absolute path of the notebook the kernel executes; the
magics derive their default directory from it."""

VSCODE_VARIABLE = "__vsc_ipynb_file__"
"""Set by VS Code in the user namespace to the notebook's path."""

JUPYTER_SESSION_ENV = "JPY_SESSION_NAME"
"""Set by Jupyter Server in the kernel's environment to the notebook's path."""


@dataclass(frozen=True)
class DefaultDir:
    """Where recordings go when no ``--dir`` is given, and why."""

    path: Path
    notebook: Path | None = None
    source: str | None = None  # the variable that named the notebook

    def format_line(self) -> str:
        """One line: ``recordings go to recordings/quickstart/ (notebook quickstart.ipynb)``."""
        where = display_path(self.path).rstrip("/") + "/"
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
        (os.environ.get(ENV_NOTEBOOK), ENV_NOTEBOOK),
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
    from ..core._config import project_config

    try:
        project_dir = project_config().dir
    except ValueError:  # a malformed table: the recorder started next reports it
        project_dir = None
    found = notebook_path(user_ns)
    if found is None:
        return DefaultDir(project_dir or Path(DEFAULT_DIR))
    notebook, source = found
    base = project_dir or notebook.parent / DEFAULT_DIR
    return DefaultDir(base / notebook.stem, notebook, source)


def display_path(path: Path | str) -> str:
    """A path relative to the working directory when it is below it, with ``/`` separators."""
    path = Path(path)
    try:
        shown = path.resolve().relative_to(Path.cwd().resolve())
        return shown.as_posix() if str(shown) != "." else "."
    except (ValueError, OSError):
        return path.as_posix()
