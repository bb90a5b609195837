"""``@nr.tool``: record and replay any Python function, such as a web search or a retriever.

>>> @nr.tool(provider="tavily", name="web_search")
... def web_search(query: str, max_results: int = 5) -> dict: ...
>>> search = nr.tool(tavily_client.search, provider="tavily", name="web_search")

Design
------
- **One wrapper per kind.** Sync functions, ``async`` functions, sync generators and async
  generators each get a wrapper of the same kind, so ``inspect.iscoroutinefunction``,
  ``isgeneratorfunction`` and ``isasyncgenfunction`` answer as they do for the original. The
  wrapper also keeps the original's name, docstring and signature (``functools.wraps`` plus an
  explicit ``__signature__``).
- **A pass-through when nothing records.** The wrapper's first step is ``active()``; when it is
  ``None`` the original is called directly with the caller's arguments and nothing else happens
  (``benchmarks/bench_tools.py`` measures what that costs).
- **The key is** ``ToolRequest(provider, tool_name, kwargs)`` (FORMAT.md, "Tool-call
  recordings"). ``kwargs`` are the arguments *as passed*: positional arguments are bound to their
  parameter names, ``**kwargs`` are flattened into them, ``*args`` are kept as a list under their
  parameter name, and defaults are **not** filled in. So ``search("x")`` and ``search(query="x")``
  are the same recording, while ``search("x", max_results=5)`` is a different one even when 5 is
  the default: this is what llama-stack keyed, so its recordings replay. A first parameter called
  ``self`` or ``cls`` (a decorated method) is not an argument of the tool and is left out.
- **Credentials never leave the process.** Arguments whose names look like credentials
  (``is_credential_name``: ``api_key``, ``token``, ``password``...) are dropped, also inside
  nested mappings and header lists, before anything is keyed or written; their values are
  masked (``***``) in the recorded result or exception message that echoes them
  (``_secrets``). The original still receives them when it runs; replay works without them.
- **Arguments are made JSON by** ``to_jsonable``: pydantic models and dataclasses become their
  fields, paths and dates become strings, enums their values, sets sorted lists. An argument that
  cannot be encoded raises ``TypeError`` naming it.
- **Results are encoded by** ``encode``: pydantic models and dataclasses keep their type as
  ``__type__``/``__data__``. Replay builds the same type again when the tool declares it (its
  return annotation, such as ``-> list[Hit]``, or ``result_type=``) or it was registered with
  ``nr.register_types``; any other type (llama-stack's ``ToolInvocationResult``) comes back as its
  raw data, with a warning, and is never imported. A result
  that cannot be encoded raises ``TypeError`` in record mode rather than leaving a hole that
  replay would trip over later.
- **Exceptions** (``Exception`` subclasses) raised by the tool are recorded and re-raised. Replay
  raises the same class when it is a builtin exception or a registered one (``nr.register_types``)
  and can be built from the recorded ``args`` or message, and
  :class:`~notebook_recorder.RecordedToolError` otherwise. ``KeyboardInterrupt``, task
  cancellation and other ``BaseException`` are never recorded.
- **Generators** are recorded as the list of their items (``is_streaming: true``), each item
  encoded as it arrives; replay yields them again from a generator of the same kind. The wrapper
  delegates ``send``/``throw``/``close`` (``asend``/``athrow``/``aclose``) to the original. The
  file is written only when the generator is exhausted: one abandoned early (``break``,
  ``close()``, an exception) is never saved as if it were complete. A generator decides replay,
  record or live when it is first advanced, which is when its body would start running.
- **No shared mutable state per call**: a wrapper holds only its fixed description, and each
  call keeps its own state in locals, so wrappers are safe across threads and asyncio tasks.

The engine (``_engine``) runs each call's flow and the Recorder writes; this module does no file I/O.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, ParamSpec, TypeVar, cast, overload

from ..core._engine import arun, begin, run
from ..core._recorder import Action
from ..core._session import active
from ._toolcall import ToolCall, ToolInfo

__all__ = ["ToolInfo", "tool"]

P = ParamSpec("P")
R = TypeVar("R")

_ATTR = "__notebook_recorder_tool__"


# ---------------------------------------------------------------------------------------------
# The decorator
# ---------------------------------------------------------------------------------------------


@overload
def tool(
    fn: Callable[P, R], *, provider: str | None = None, name: str | None = None, result_type: Any = None
) -> Callable[P, R]: ...


@overload
def tool(
    fn: None = None, *, provider: str | None = None, name: str | None = None, result_type: Any = None
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def tool(
    fn: Callable[P, R] | None = None,
    *,
    provider: str | None = None,
    name: str | None = None,
    result_type: Any = None,
) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
    """Record and replay calls of ``fn``, keyed by ``(provider, name, arguments)``.

    Use it as a decorator, with or without arguments, or as a wrapper for a function from
    another library::

        @nr.tool
        def lookup(city: str) -> dict: ...

        @nr.tool(provider="tavily", name="web_search")
        async def web_search(query: str) -> dict: ...

        search = nr.tool(tavily.search, provider="tavily", name="web_search")

    ``fn`` may be a sync or ``async`` function, a sync or async generator function, a bound
    method or any callable. ``provider`` defaults to ``fn.__module__`` and ``name`` to
    ``fn.__qualname__``. Put ``@nr.tool`` below ``@staticmethod`` and ``@classmethod``.

    With no recording active the wrapper simply calls ``fn``. Inside ``nr.recording(...)``,
    ``nr.start(...)`` or ``%apirec``, each call is replayed, recorded or run live according to
    the mode, and appears in ``nr.calls()`` as kind ``"tool"`` with endpoint ``provider/name``.
    Positional arguments are keyed by their parameter names and defaults are not filled in, so
    ``search("x")`` and ``search(query="x")`` share a recording. Credential-like arguments
    (``api_key``, ``token``, ``password``...) are never keyed or written.

    Replay gives back the pydantic models and dataclasses that the function declares as its
    return type (``-> list[Hit]``, ``-> Page | None``, ``-> Iterator[Hit]``, with the types nested
    in them); ``result_type=`` declares them for a function without an annotation, such as
    another library's. A recording never makes replay import or build any other class: other
    typed results come back as their raw data unless registered with ``nr.register_types``.
    """
    if fn is None:

        def decorate(f: Callable[P, R]) -> Callable[P, R]:
            return _wrap(f, provider, name, result_type)

        return decorate
    return _wrap(fn, provider, name, result_type)


def _wrap(fn: Callable[P, R], provider: str | None, name: str | None, result_type: Any = None) -> Callable[P, R]:
    existing = getattr(fn, _ATTR, None)
    if isinstance(existing, ToolInfo):
        fn = existing.fn  # re-wrapping a tool renames it instead of recording twice
    if not callable(fn):
        raise TypeError(
            f"nr.tool() needs a callable, not {type(fn).__name__}; "
            "give the names as keywords: @nr.tool(provider=..., name=...)"
        )
    default_provider, default_name = _default_names(fn)
    info = ToolInfo(
        provider=provider or default_provider,
        name=name or default_name,
        fn=fn,
        kind=_kind(fn),
        signature=_signature(fn),
        result_type=result_type,
    )
    factory = {
        "function": _function_wrapper,
        "coroutine": _coroutine_wrapper,
        "generator": _generator_wrapper,
        "async generator": _async_generator_wrapper,
    }[info.kind]
    wrapper = factory(info)
    try:
        functools.update_wrapper(wrapper, fn)
    except AttributeError:  # pragma: no cover - objects with read-only dunders
        pass
    if not hasattr(fn, "__qualname__"):  # partials and callable objects
        wrapper.__qualname__ = default_name
        wrapper.__name__ = default_name.rpartition(".")[2]
    if info.signature is not None:
        wrapper.__signature__ = info.signature  # type: ignore[attr-defined]
    setattr(wrapper, _ATTR, info)
    return cast(Callable[P, R], wrapper)


def _default_names(fn: Callable[..., Any]) -> tuple[str, str]:
    target: Any = fn
    while isinstance(target, functools.partial):
        target = target.func
    module = getattr(target, "__module__", None) or type(target).__module__
    qualname = getattr(target, "__qualname__", None) or type(target).__qualname__
    return str(module), str(qualname)


def _kind(fn: Callable[..., Any]) -> str:
    # A callable object is judged by its ``__call__``; a plain function by itself.
    for candidate in (fn, getattr(fn, "__call__", None)):  # noqa: B004 (not a callable() test)
        if inspect.isasyncgenfunction(candidate):
            return "async generator"
        if inspect.isgeneratorfunction(candidate):
            return "generator"
        if inspect.iscoroutinefunction(candidate):
            return "coroutine"
    return "function"


def _signature(fn: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# Wrappers, one per kind. Each starts with the pass-through, then hands over to a ToolCall (``_toolcall``).
# ---------------------------------------------------------------------------------------------


def _function_wrapper(info: ToolInfo) -> Callable[..., Any]:
    fn = info.fn

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        recorder = active()
        if recorder is None:
            return fn(*args, **kwargs)
        return run(recorder, ToolCall(info, args, kwargs))

    return wrapper


def _coroutine_wrapper(info: ToolInfo) -> Callable[..., Any]:
    fn = info.fn

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        recorder = active()
        if recorder is None:
            return await fn(*args, **kwargs)
        return await arun(recorder, ToolCall(info, args, kwargs))

    return wrapper


def _generator_wrapper(info: ToolInfo) -> Callable[..., Any]:
    fn = info.fn

    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        recorder = active()
        if recorder is None:
            return (yield from fn(*args, **kwargs))
        call = ToolCall(info, args, kwargs, streamed=True)
        tape = begin(recorder, call)
        if tape.action is Action.REPLAY:
            return (yield from call.replay_items(tape))
        return (yield from call.stream(fn(*args, **kwargs), tape))

    return wrapper


def _async_generator_wrapper(info: ToolInfo) -> Callable[..., Any]:
    fn = info.fn

    async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        recorder = active()
        source: AsyncGenerator[Any, Any]
        if recorder is None:
            source = fn(*args, **kwargs)
        else:
            call = ToolCall(info, args, kwargs, streamed=True)
            tape = begin(recorder, call)
            replayed = tape.action is Action.REPLAY
            source = call.areplay_items(tape) if replayed else call.astream(fn(*args, **kwargs), tape)
        # `yield from` for async generators: items out, asend/athrow/aclose in.
        try:
            item = await source.__anext__()
        except StopAsyncIteration:
            return
        while True:
            try:
                sent = yield item
            except GeneratorExit:
                await source.aclose()
                raise
            except BaseException as exc:
                try:
                    item = await source.athrow(exc)
                except StopAsyncIteration:
                    return
            else:
                try:
                    item = await source.asend(sent)
                except StopAsyncIteration:
                    return

    return wrapper
