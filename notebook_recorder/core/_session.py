"""Which recorder is active: the session (``start``/``stop``) and the open ``recording()`` blocks.

``active()`` is what every hook asks first. A session is started by ``start`` (``%apirec MODE``)
and lasts until ``stop``; ``recording()`` blocks (a ``with`` block, a decorator, a pytest test,
an ``%%apirec`` cell) nest on top of it, per thread and asyncio task. The hooks that registered
themselves in :mod:`._hooks` are installed while any recorder is active and removed when the last one ends.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from . import _hooks
from ._match import NormalizeArg
from ._modes import Mode
from ._recorder import Recorder, parse_hosts

F = TypeVar("F", bound=Callable[..., Any])

_state_lock = threading.RLock()
_session: Recorder | None = None
# Open `recording()` blocks. Each thread and asyncio task sees its own (a context variable), so
# concurrent tasks can record under different scopes; code running where no block was opened (a
# worker thread, say) falls back to the most recent block opened anywhere, then to the session.
_blocks: contextvars.ContextVar[tuple[Recorder, ...]] = contextvars.ContextVar("notebook_recorder_blocks", default=())
_stack: list[Recorder] = []  # every open block, in the order they were opened


def active() -> Recorder | None:
    """The recorder that handles calls now: the innermost open ``recording()`` block of this
    thread or task, else the most recent block opened anywhere, else the session's.

    Every wrapped call asks this first, so it takes no lock: reading a context variable, the
    stack's last item or the session global is atomic, and only writers (which hold
    ``_state_lock``) change them.
    """
    for recorder in reversed(_blocks.get()):
        if recorder in _open:
            return recorder
    if _stack:
        try:
            return _stack[-1]
        except IndexError:  # emptied by another thread since the test above
            pass
    return _session


_open: set[Recorder] = set()  # the recorders of blocks not yet closed


def _install_patches(recorder: Recorder) -> None:
    _hooks.install_all(recorder.mode)


def _remove_patches() -> None:
    _hooks.uninstall_all()


def start(
    mode: Mode | str = Mode.RECORD_IF_MISSING,
    dir: str | os.PathLike[str] | None = None,
    scope: str | None = None,
    *,
    block_network: bool = False,
    allow_hosts: Iterable[str] = (),
    ignore: Iterable[str] | str | None = None,
    normalize: NormalizeArg = None,
    dir_out: str | os.PathLike[str] | None = None,
    pace: float | None = None,
    ignore_hosts: Iterable[str] = (),
) -> Recorder:
    """Record or replay every call in this process from now on, until :func:`stop`.

    This is what ``%apirec MODE`` uses. Clients created earlier are covered too.
    ``block_network=True`` stops network connections that bypass the hooks, except to
    ``allow_hosts`` (see :class:`Recorder`). ``ignore`` and ``normalize`` leave volatile parts
    of requests out of their keys (see :class:`Recorder`). ``dir`` defaults to the project's
    (``[tool.notebook-recorder] dir``), else ``recordings``. ``dir_out`` writes new recordings
    there and leaves ``dir`` untouched; ``pace`` replays streams at their recorded pace (see
    :class:`Recorder`).
    HTTP requests to ``ignore_hosts`` are neither recorded nor replayed.
    """
    global _session
    recorder = Recorder(
        mode,
        dir,
        scope,
        block_network=block_network,
        allow_hosts=allow_hosts,
        ignore=ignore,
        normalize=normalize,
        dir_out=dir_out,
        pace=pace,
        ignore_hosts=ignore_hosts,
    )
    with _state_lock:
        _session = recorder
        _install_patches(recorder)
    return recorder


def stop() -> None:
    """Go back to live calls and remove the SDK hook (when no ``recording()`` block is open)."""
    global _session
    with _state_lock:
        _session = None
        if not _stack:
            _remove_patches()


def session() -> Recorder | None:
    """The recorder set by :func:`start`, or ``None``."""
    with _state_lock:
        return _session


@contextmanager
def _pushed(recorder: Recorder) -> Iterator[Recorder]:
    token = _blocks.set((*_blocks.get(), recorder))
    with _state_lock:
        _stack.append(recorder)
        _open.add(recorder)
        _install_patches(recorder)
    try:
        yield recorder
    finally:
        blocks = _blocks.get()
        # Blocks opened inside this one and never closed are closed with it: state always unwinds.
        closing = blocks[blocks.index(recorder) :] if recorder in blocks else (recorder,)
        try:
            _blocks.reset(token)
        except ValueError:  # closed in another context than it was opened in (an IPython hook)
            _blocks.set(tuple(r for r in blocks if r not in closing))
        with _state_lock:
            for done in closing:
                _open.discard(done)
                if done in _stack:
                    _stack.remove(done)
            if not _stack and _session is None:
                _remove_patches()


class recording:
    r"""Record or replay the calls made inside a ``with`` block or a decorated function.

    >>> with nr.recording("replay", dir="recordings"):
    ...     client.chat.completions.create(model="gpt-4o", messages=[...])

    As a decorator it works on plain and ``async`` functions. Nested blocks restore the previous
    recorder on exit, also when an exception is raised. ``scope`` is written as ``test_id`` and
    enters the key. ``block_network=True`` makes a network connection that bypasses the hooks
    raise ``NetworkBlockedError`` before any byte is sent, except to ``allow_hosts`` (names or
    addresses, ``"localhost"`` for every loopback address); without it such connections are only
    logged (``kind="network"`` in :func:`calls`). ``ignore`` and ``normalize`` leave volatile
    parts of requests out of their keys: ``ignore=["body.metadata.run_id"]``,
    ``normalize={r"\d{4}-\d{2}-\d{2}": "<date>"}`` or a callable (see :class:`Recorder`).

    ``dir_out="runs/new"`` re-records into another directory, leaving ``dir`` as it is (compare
    the two with :func:`notebook_recorder.diff`); ``pace=1.0`` replays streams at the pace they
    were recorded at (``2.0``: twice as fast). See :class:`Recorder` for both.
    HTTP requests to ``ignore_hosts`` (a local vector database, a telemetry endpoint) are neither
    recorded nor replayed.
    """

    def __init__(
        self,
        mode: Mode | str = Mode.RECORD_IF_MISSING,
        dir: str | os.PathLike[str] | None = None,
        scope: str | None = None,
        *,
        block_network: bool = False,
        allow_hosts: Iterable[str] = (),
        ignore: Iterable[str] | str | None = None,
        normalize: NormalizeArg = None,
        dir_out: str | os.PathLike[str] | None = None,
        pace: float | None = None,
        ignore_hosts: Iterable[str] = (),
    ) -> None:
        self._args = (Mode.parse(mode), dir, scope)
        self._network: dict[str, Any] = {
            "block_network": block_network,
            "allow_hosts": tuple(parse_hosts(allow_hosts)),
            "ignore": tuple([ignore] if isinstance(ignore, str) else ignore or ()),
            "normalize": normalize,
            "dir_out": dir_out,
            "pace": pace,
            "ignore_hosts": tuple(parse_hosts(ignore_hosts)),
        }
        self._contexts: list[Any] = []
        self._new()  # validate now, not at first use

    def _new(self) -> Recorder:
        return Recorder(*self._args, **self._network)

    def __enter__(self) -> Recorder:
        context = _pushed(self._new())
        self._contexts.append(context)
        return context.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._contexts.pop().__exit__(*exc)

    def __call__(self, fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with _pushed(self._new()):
                    return await fn(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _pushed(self._new()):
                return fn(*args, **kwargs)

        return cast(F, wrapper)
