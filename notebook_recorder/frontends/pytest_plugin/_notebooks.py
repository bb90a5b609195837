"""Notebooks as tests (``--apirec-notebooks PATH...``): each notebook runs in a real kernel and is
checked as ``notebook-recorder run --check`` checks it."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ._options import counts_key, dir_out, notebook_roots_key, session_mode, used_key

if TYPE_CHECKING:
    from _pytest._code.code import ExceptionInfo

    from ..notebooks._runner import NotebookRun


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix != ".ipynb":
        return None
    roots = parent.config.stash.get(notebook_roots_key, [])
    if not roots or ".ipynb_checkpoints" in file_path.parts:
        return None
    resolved = file_path.resolve()
    if not any(resolved == root or root in resolved.parents for root in roots):
        return None
    return NotebookFile.from_parent(parent, path=file_path)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Make pytest visit the ``--apirec-notebooks`` paths, besides the tests it was given."""
    config = session.config
    roots = config.stash.get(notebook_roots_key, [])
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
    from ...core._modes import ENV_DIR_OUT, ENV_PACE

    env: dict[str, str] = {}
    dir_out_ = dir_out(config, path.stem)
    if dir_out_ is not None:
        env[ENV_DIR_OUT] = str(dir_out_)
    pace = config.getoption("apirec_pace", None)
    if pace is not None:
        env[ENV_PACE] = repr(pace)
    return env


class NotebookItem(pytest.Item):
    """Runs a notebook in a real kernel (``--apirec-mode``, replay by default) and checks its
    outputs against the stored ones, as ``notebook-recorder run --check`` does."""

    def runtest(self) -> None:
        from ..notebooks._comparison import compare, has_stored_outputs
        from ..notebooks._runner import NotebookError, execute

        config = self.config
        config.stash[used_key] = True
        mode = session_mode(config)
        shown = _shown_path(self.path, config)
        try:
            run = execute(self.path, mode=mode.value, env=_notebook_env(config, self.path))
        except NotebookError as exc:
            raise NotebookFailure(str(exc)) from None
        counts = config.stash[counts_key]
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
    from ..cli._run import failure_lines as cli_failure_lines

    return list(cli_failure_lines(run))


def _shown_path(path: Path, config: pytest.Config) -> str:
    """``path`` relative to where pytest was started, when it is below it, for commands to copy."""
    try:
        return shlex.quote(str(path.resolve().relative_to(Path(config.invocation_params.dir).resolve())))
    except ValueError:
        return shlex.quote(str(path))
