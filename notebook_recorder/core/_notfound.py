"""The explanation of a missing recording: the nearest recorded request, the diff, the hint.

:class:`~notebook_recorder.RecordingNotFoundError` (``_errors``) carries this text. As vcrpy's
``errors.py`` explains a cassette miss, it names the request that had no recording, shows the
nearest recorded request in that directory and the smallest diff between the two (for example
``temperature: 0.7 -> 0.2``), suggests ``normalize=``/``ignore=`` rules when the two differ only
in volatile strings, and says how to record the missing call.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ._calllog import display_path
from ._keys import Request, comparable, diff, request_from_record
from ._match import volatile_only
from ._modes import ENV_MODE, Mode, env_mode, env_mode_source

if TYPE_CHECKING:
    from ._match import Rules
    from ._store import Store


class Recorder(Protocol):
    """What the explanation reads of a :class:`~._recorder.Recorder` (which calls it): its store,
    scope and rules, and the command that records a pytest test (set by the pytest plugin)."""

    @property
    def store(self) -> Store: ...

    @property
    def record_command(self) -> str | None: ...

    @property
    def scope(self) -> str | None: ...

    @property
    def rules(self) -> Rules: ...


def missing_message(recorder: Recorder, request: Request, key: str) -> str:
    """Why ``request`` (keyed ``key``) has no recording under ``recorder``, and what to do."""
    directory = display_path(recorder.store.root)
    lines = [f"No recording of {request.summary()} in {directory}/ (key {key[:12]}…, scope {recorder.scope!r})."]
    if recorder.rules:
        lines.append(f"Requests are matched under these rules: {recorder.rules.summary()}.")
    closest = nearest(recorder, request)
    if closest is None and not recorder.store.exists:
        lines.append("That directory does not exist: nothing has been recorded there yet.")
    elif closest is None:
        lines.append("There is no recorded request to compare it with in that directory.")
    else:
        path, changes = closest
        lines.append(f"Nearest recorded request: {display_path(path)}")
        lines += [f"    {change}" for change in changes[:8]]
        if len(changes) > 8:
            lines.append(f"    … and {len(changes) - 8} more differences")
        lines += _volatile_hint(changes)
    broken = recorder.store.errors()
    if broken:
        lines.append(f"{len(broken)} file(s) there could not be read:")
        lines += [f"    {display_path(p)}: {problem}" for p, problem in list(broken.items())[:5]]
    lines += record_hint(recorder, directory)
    return "\n".join(lines)


def nearest(recorder: Recorder, request: Request) -> tuple[Path, list[Any]] | None:
    """The recorded request nearest to ``request`` in the recorder's directory, and the changes."""
    wanted = comparable(request, recorder.scope, recorder.rules)
    best: tuple[tuple[int, float], Path, list[Any]] | None = None
    for path, record in recorder.store.records():
        stored = request_from_record(record)
        if stored is None or type(stored) is not type(request):
            continue
        test_id = record.get("test_id")
        changes = diff(comparable(stored, test_id if isinstance(test_id, str) else None, recorder.rules), wanted)
        # Fewest changes first; among those, the most similar values ('3.12' is near '3.13').
        rank = (len(changes), sum(change.distance for change in changes))
        if best is None or rank < best[0]:
            best = (rank, path, changes)
    return (best[1], best[2]) if best else None


def _volatile_hint(changes: list[Any]) -> list[str]:
    """When the nearest recording differs only in strings that look volatile (dates, times, UUIDs,
    hex ids): say so, and show the ``normalize=`` (and, for id-like fields, ``ignore=``) to add."""
    found = volatile_only(changes)
    if not found:
        return []
    rules = {regex: placeholder for regex, placeholder in found.values()}
    as_python = "{" + ", ".join(f'r"{regex}": "{placeholder}"' for regex, placeholder in rules.items()) + "}"
    flags = " ".join(f"--normalize '{regex}={placeholder}'" for regex, placeholder in rules.items())
    toml = [f"    '{regex}' = \"{placeholder}\"" for regex, placeholder in rules.items()]
    lines = [
        f"It differs only in strings that look volatile ({', '.join(found)}). If they change on every "
        "run, match requests with them normalised:",
        f"    nr.recording(..., normalize={as_python})",
        f"    %apirec replay {flags}",
    ]
    # A field that is nothing but an id or a timestamp (``run-3f2a9c1d``) can be left out instead.
    ids = [c.path for c in changes if " " not in str(c.old).strip()]
    if ids:
        lines.append("  or leave those fields out of the key:")
        lines.append(f"    nr.recording(..., ignore={ids!r})")
        lines.append(f"    %apirec replay {' '.join(f'--ignore {path}' for path in ids)}")
    lines += ["  or for the whole project, in pyproject.toml:", "    [tool.notebook-recorder.normalize]", *toml]
    return lines


def record_hint(recorder: Recorder, directory: str) -> list[str]:
    """How to record the missing call, the way that fits where it was made first: under pytest
    the command that records the test (``Recorder.record_command``, set by the pytest plugin), in
    IPython or Jupyter the magic, in plain code the ``nr.recording`` line."""
    magic = "    %apirec record-if-missing                      (in a notebook)"
    code = f'    nr.recording("record-if-missing", dir="{directory}")   (in code)'
    if recorder.record_command:
        ways = [f"    {recorder.record_command}   (in pytest)", code]
    elif _in_ipython():
        ways = [magic, code]
    else:
        ways = [code, magic]
    lines = ["To record it, run the call once with an API key in record-if-missing mode:", *ways]
    if env_mode() is Mode.REPLAY:
        source = env_mode_source()
        if source.startswith("run "):  # notebook-recorder run set it for its kernel
            lines.append(f"{source} overrides the mode chosen in the notebook: run it with --mode record-if-missing.")
        else:
            lines.append(f"{ENV_MODE}=replay is set and overrides the mode chosen in code: unset it to record.")
    return lines


def _in_ipython() -> bool:
    """Whether the call was made in an IPython shell or a Jupyter kernel."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    return get is not None and get() is not None
