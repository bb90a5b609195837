"""How ``%%apirec`` runs its cell, and how its tracebacks show the line as written.

A cell magic normally receives its body as a string and runs it with a nested ``run_cell``. In a
Jupyter kernel that breaks top-level ``await``: the nested run cannot drive the kernel's event
loop, which is already running. So the extension adds an input transformer that rewrites the
magic's first line (and only that line) into a call that enters the recording for the current
cell; the body stays top-level code of the cell. ``await``, the display of the last expression,
tracebacks and line numbers behave exactly as in any other cell. The ``post_execute`` event,
which IPython and ipykernel trigger in a ``finally`` block, restores the previous state, also
after an exception or an interrupt. ``%%apirec`` still works as an ordinary cell magic when it is
called directly (``get_ipython().run_cell_magic("apirec", "replay", body)``).

Because the first line stays one line, the body keeps its line numbers. IPython caches the
rewritten source of each cell for its tracebacks; when the rewritten line runs it notes which
cached cell it is in, and while IPython formats a traceback (``InteractiveTB.structured_traceback``,
wrapped while the extension is loaded) those cells show the user's ``%%apirec`` line instead of
the call. Only then: the rest of the time the cache holds valid Python, which ``inspect`` parses.
"""

from __future__ import annotations

import linecache
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, cast

from IPython.core import inputtransformer2
from IPython.core.interactiveshell import InteractiveShell

from ...core._errors import RecordingNotFoundError
from ._magic_args import CELL_FLAG

_CELL_MAGIC_LINE = re.compile(r"%%apirec(?:[ \t]+(?P<args>.*?))?[ \t]*\r?\n?\Z")


def _transform_cell_magic(lines: list[str]) -> list[str]:
    return cast(list[str], cast(Any, inputtransformer2).cell_magic(lines))


class CellRewriter:
    """The input transformer that turns a ``%%apirec ARGS`` first line into a call, the
    traceback wrapper that shows that line as the user wrote it, and the handler that shows a
    ``RecordingNotFoundError`` with the user's frames only."""

    def __init__(self) -> None:
        self._rewritten: dict[str, str] = {}  # first lines written by transform -> the user's
        self._cell_files: dict[str, tuple[str, str]] = {}  # cached cell -> (rewritten, user's line)
        self._structured_traceback: Callable[..., Any] | None = None  # IPython's, while wrapped
        self._owns_custom_exc = False

    def transform(self, lines: list[str]) -> list[str]:
        """Input transformer: ``%%apirec ARGS`` as the first line becomes a call that enters the
        recording for this cell; the body is left as top-level code (see the module docstring)."""
        if not lines:
            return lines
        match = _CELL_MAGIC_LINE.match(lines[0])
        if match is None:
            return lines
        argstring = f"{CELL_FLAG} {match.group('args') or ''}".strip()
        body = lines[1:]
        if body and body[0].startswith("%%"):
            body = _transform_cell_magic(body)  # another cell magic right after ours
        rewritten = f"get_ipython().run_line_magic('apirec', {argstring!r})\n"
        # What the user wrote, for remember_cell_file (a few recent lines are enough).
        self._rewritten.pop(rewritten, None)
        self._rewritten[rewritten] = lines[0].rstrip("\r\n") + "\n"
        while len(self._rewritten) > 32:
            del self._rewritten[next(iter(self._rewritten))]
        return [rewritten, *body]

    # Let `check_complete` treat `%%apirec` like any cell magic (a blank line ends it in a terminal).
    transform.has_side_effects = True  # type: ignore[attr-defined]

    def attach(self, shell: InteractiveShell) -> None:
        """Add the input transformer, wrap ``InteractiveTB.structured_traceback`` and handle
        ``RecordingNotFoundError``."""
        shell.input_transformers_cleanup.append(self.transform)
        if not shell.custom_exceptions:  # a single slot: never take it from another extension
            cast(Any, shell).set_custom_exc((RecordingNotFoundError,), show_missing_recording)
            self._owns_custom_exc = True
        formatter = cast(Any, shell).InteractiveTB
        self._structured_traceback = formatter.structured_traceback
        formatter.structured_traceback = self._traceback_as_written

    def detach(self, shell: InteractiveShell) -> None:
        """Undo :meth:`attach`."""
        transformers = shell.input_transformers_cleanup
        transformers[:] = [t for t in transformers if t != self.transform]
        if self._owns_custom_exc and shell.custom_exceptions == (RecordingNotFoundError,):
            cast(Any, shell).set_custom_exc((), None)
        self._owns_custom_exc = False
        formatter = cast(Any, shell).InteractiveTB
        if vars(formatter).get("structured_traceback") == self._traceback_as_written:
            del formatter.structured_traceback  # IPython's own method again...
            if self._structured_traceback != formatter.structured_traceback:
                formatter.structured_traceback = self._structured_traceback  # ...or what was there
        self._cell_files.clear()

    def remember_cell_file(self) -> None:
        """Note which cached cell source runs this ``%%apirec`` line, and what the user wrote.

        The cell is the nearest calling frame whose cached first line is one :meth:`transform`
        wrote; :meth:`_traceback_as_written` shows the user's line there.
        """
        frame = sys._getframe(1)
        while frame is not None:
            filename = frame.f_code.co_filename
            entry = linecache.cache.get(filename)
            if entry is not None and len(entry) == 4 and entry[2]:
                original = self._rewritten.get(entry[2][0])
                if original is not None:
                    self._cell_files[filename] = (entry[2][0], original)
                    return
            frame = frame.f_back  # type: ignore[assignment]

    @contextmanager
    def _cells_as_written(self) -> Iterator[None]:
        """The cached source of the ``%%apirec`` cells shows the user's first line, for a while."""
        swapped: list[tuple[str, tuple[Any, ...], tuple[Any, ...]]] = []
        for filename, (rewritten, original) in self._cell_files.items():
            entry = linecache.cache.get(filename)
            if entry is not None and len(entry) == 4 and entry[2] and entry[2][0] == rewritten:
                size, mtime, lines, name = entry
                shown = (size, mtime, [original, *lines[1:]], name)
                linecache.cache[filename] = shown
                swapped.append((filename, tuple(entry), shown))
        try:
            yield
        finally:
            for filename, entry, shown in swapped:
                if linecache.cache.get(filename) is shown:
                    linecache.cache[filename] = entry  # type: ignore[assignment]

    def _traceback_as_written(self, *args: Any, **kwargs: Any) -> Any:
        """``InteractiveTB.structured_traceback``, with the ``%%apirec`` cells as written."""
        assert self._structured_traceback is not None
        with self._cells_as_written():
            return self._structured_traceback(*args, **kwargs)


def show_missing_recording(
    shell: InteractiveShell,
    etype: type[BaseException],
    value: BaseException,
    tb: TracebackType | None,
    tb_offset: int | None = None,
) -> None:
    """Custom exception handler: a ``RecordingNotFoundError`` with the user's frames only.

    Its message already names the request, the nearest recording and how to record it; the
    frames inside the openai SDK and notebook_recorder that lead to it add nothing but length.
    """
    cast(Any, shell).showtraceback((etype, value, _user_frames(tb)), tb_offset=tb_offset)


def _user_frames(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` cut at the first frame inside the openai SDK or notebook_recorder."""
    kept: list[TracebackType] = []
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module.partition(".")[0] in ("openai", "notebook_recorder"):
            break
        kept.append(tb)
        tb = tb.tb_next
    trimmed: TracebackType | None = None
    for frame in reversed(kept):
        trimmed = TracebackType(trimmed, frame.tb_frame, frame.tb_lasti, frame.tb_lineno)
    return trimmed
