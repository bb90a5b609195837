"""One call of a ``nr.tool`` function under a recorder: the engine's exchange for tools.

``tools`` wraps the function; this module is what a wrapped call does once a recorder is active:
the request keyed from the arguments (credentials left out), the result or exception encoded,
a generator's items collected, and replay's values rebuilt. The engine (``_engine``) runs the
flow; the Recorder writes.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator
from dataclasses import dataclass
from typing import Any

from ..core._codec import decode, encode, to_jsonable
from ..core._engine import Tape, replayed
from ..core._errors import RecordedToolError, RecordingFormatError
from ..core._keys import ToolRequest
from ..core._recorder import Action, exception_response
from ..core._secrets import (
    TOOL_CREDENTIAL_NAMES,
    is_credential,
    request_secrets,
    scrub,
    scrub_tool_argument,
    tool_argument_secrets,
)
from ..core._types import allowed_type, register_declared
from ._above import above
from ._network import sdk_network


@dataclass(frozen=True)
class ToolInfo:
    """What ``nr.tool`` knows about a wrapped function; available as ``wrapper.__notebook_recorder_tool__``.

    ``kind`` is ``"function"``, ``"coroutine"``, ``"generator"`` or ``"async generator"``.
    """

    provider: str
    name: str
    fn: Callable[..., Any]
    kind: str
    signature: inspect.Signature | None
    result_type: Any = None

    @property
    def label(self) -> str:
        """``provider/name``, as the call log shows it."""
        return f"{self.provider}/{self.name}"

    @functools.cached_property
    def declared_types(self) -> tuple[type, ...]:
        """The models and dataclasses of the declared result (``result_type=`` or the return
        annotation), now on the allowlist that replay builds ``__type__`` values from.

        Read when the tool is first called rather than when it is wrapped, so that an annotation
        may name a class defined further down the module.
        """
        annotations: list[Any] = [] if self.result_type is None else [self.result_type]
        annotations.append(_return_annotation(self.fn))
        return tuple(t for annotation in annotations for t in register_declared(annotation))


def _return_annotation(fn: Callable[..., Any]) -> Any:
    """``fn``'s return annotation, evaluated where it can be (``None`` when there is none)."""
    target: Any = fn
    while isinstance(target, functools.partial):
        target = target.func
    target = getattr(target, "__func__", target)  # bound methods
    if not (inspect.isfunction(target) or inspect.ismethod(target)):
        target = getattr(target, "__call__", None)  # noqa: B004 (callable objects)
        target = getattr(target, "__func__", target)
    try:
        return typing.get_type_hints(target).get("return")
    except Exception:  # a name that does not resolve (yet): what can be read without it
        annotations = getattr(target, "__annotations__", None)
        raw = annotations.get("return") if isinstance(annotations, dict) else None
        if isinstance(raw, str):
            try:
                return eval(raw, getattr(target, "__globals__", {}))  # the user's own source code, not a file's
            except Exception:
                return None
        return raw


# Where positional arguments go in the key when the function's signature cannot be read
# (some builtins): not a Python identifier, so it cannot clash with a real parameter name.
_UNBOUND_ARGS = "*args"
_INSTANCE_PARAMS = frozenset({"self", "cls"})


# ---------------------------------------------------------------------------------------------
# One call of a tool while a recorder is active
# ---------------------------------------------------------------------------------------------


class ToolCall:
    """One call of a tool under a recorder, as the engine's ``Exchange`` (``_engine``): its
    request, its credentials, the original called, its result encoded or rebuilt.

    Plain functions and coroutines go through :func:`~notebook_recorder.core._engine.run` /
    ``arun``; generators take the engine's first step (:func:`~notebook_recorder.core._engine.begin`)
    and then record or replay their items here, through the same tape.
    """

    __slots__ = ("args", "info", "kwargs", "streamed")

    @property
    def sdk_versions(self) -> dict[str, str]:
        return {}  # a tool is no SDK

    def __init__(
        self, info: ToolInfo, args: tuple[Any, ...], kwargs: dict[str, Any], *, streamed: bool = False
    ) -> None:
        self.info = info
        self.args = args
        self.kwargs = kwargs
        self.streamed = streamed

    # -- the exchange -------------------------------------------------------------------------

    def describe(self) -> ToolRequest:
        return tool_request(self.info, self.args, self.kwargs)

    def secrets(self) -> tuple[str, ...]:
        return _credential_values(self.info, self.args, self.kwargs)

    def unavailable(self, action: Action) -> str | None:
        return None

    def call(self, tape: Tape | None) -> Any:
        if self.info.kind == "coroutine":
            return self._acall()
        with sdk_network(), above():  # the tool's own traffic is recorded through its result
            return self.info.fn(*self.args, **self.kwargs)

    async def _acall(self) -> Any:
        with sdk_network(), above():
            return await self.info.fn(*self.args, **self.kwargs)

    def keep(self, result: Any, tape: Tape) -> Any:
        """The tool returned ``result`` in record mode: write it."""
        try:
            body = self._encode_result(result, "returned")
        except TypeError as exc:
            tape.end("error", error=str(exc))
            raise
        tape.save({"body": body, "is_streaming": False, "duration_ms": tape.elapsed_ms()})
        return result

    def failure(self, exc: BaseException, tape: Tape) -> dict[str, Any] | None:
        """An ``Exception`` the tool raised is recorded; ``KeyboardInterrupt`` and the like are not."""
        return _exception_response(self.info, exc) if isinstance(exc, Exception) else None

    def replay(self, response: dict[str, Any], tape: Tape) -> Any:
        """The recorded result (a recorded stream comes back as the list of its items)."""
        value = self._decode(response.get("body"), tape)
        if self.info.kind == "coroutine":
            return _ready(value)
        return value

    def replay_error(self, response: dict[str, Any]) -> BaseException:
        self.info.declared_types  # noqa: B018 (put them on the allowlist before decoding)
        return recorded_exception(response)

    def _encode_result(self, value: Any, verb: str) -> Any:
        try:
            return encode(value)
        except TypeError as exc:
            if inspect.isawaitable(value):
                if inspect.iscoroutine(value):
                    value.close()  # never awaited: no "coroutine was never awaited" warning
                raise TypeError(
                    f"tool {self.info.label} {verb} an awaitable, but was wrapped as a plain function: "
                    "apply nr.tool to the async function itself, so that its result is awaited and recorded"
                ) from None
            raise TypeError(
                f"tool {self.info.label} {verb} a {type(value).__qualname__}, which cannot be recorded "
                f"({exc}). Return JSON data, pydantic models, dataclasses, or lists and dicts of them."
            ) from None

    # -- live and record: generators ----------------------------------------------------------
    # Both are ``yield from gen`` spelled out, so that each item can be recorded on its way:
    # items go out, send/throw/close (asend/athrow/aclose) go in.

    def stream(self, gen: Generator[Any, Any, Any], tape: Tape) -> Generator[Any, Any, Any]:
        """Delegate to the tool's generator; in record mode, write its items once it is exhausted."""
        if not inspect.isgenerator(gen):
            gen = (item for item in gen)
        items: list[Any] = []
        offsets: list[float] = []
        try:
            try:
                item = next(gen)
                while True:
                    self._collect(item, items, offsets, tape)
                    try:
                        sent = yield item
                    except GeneratorExit:
                        gen.close()
                        raise
                    except BaseException as exc:
                        item = gen.throw(exc)
                    else:
                        item = gen.send(sent)
            except StopIteration as stop:
                result = stop.value
        except BaseException as exc:
            gen.close()
            self._stream_failed(exc, len(items), tape)
            raise
        self._stream_done(items, offsets, result, tape)
        return result

    async def astream(self, agen: AsyncGenerator[Any, Any], tape: Tape) -> AsyncGenerator[Any, Any]:
        """The async form of :meth:`stream`."""
        if not inspect.isasyncgen(agen):
            agen = _as_async_generator(agen)
        items: list[Any] = []
        offsets: list[float] = []
        try:
            item = await agen.__anext__()
            while True:
                self._collect(item, items, offsets, tape)
                try:
                    sent = yield item
                except GeneratorExit:
                    await agen.aclose()
                    raise
                except BaseException as exc:
                    item = await agen.athrow(exc)
                else:
                    item = await agen.asend(sent)
        except StopAsyncIteration:
            pass
        except BaseException as exc:
            await agen.aclose()
            self._stream_failed(exc, len(items), tape)
            raise
        self._stream_done(items, offsets, None, tape)

    def _collect(self, item: Any, items: list[Any], offsets: list[float], tape: Tape) -> None:
        if tape.action is not Action.RECORD:
            return
        # Encoded as it arrives: a generator that mutates and re-yields one object is recorded
        # as the caller saw it at each step.
        items.append(self._encode_result(item, "yielded"))
        offsets.append(tape.elapsed_ms())

    def _stream_failed(self, exc: BaseException, count: int, tape: Tape) -> None:
        if tape.action is Action.LIVE:
            tape.end("live", streamed=True, error=type(exc).__name__)
            return
        if isinstance(exc, GeneratorExit):
            reason = "closed early"
        elif isinstance(exc, TypeError) and str(exc).startswith(f"tool {self.info.label} "):
            reason = "unrecordable"
        else:
            reason = f"ended by {type(exc).__name__}"
        tape.end("error", streamed=True, error=f"generator {reason} after {count} items; not saved")

    def _stream_done(self, items: list[Any], offsets: list[float], result: Any, tape: Tape) -> None:
        if tape.action is Action.LIVE:
            tape.end("live", streamed=True)
            return
        response: dict[str, Any] = {
            "body": items,
            "is_streaming": True,
            "chunk_offsets_ms": offsets,
            "duration_ms": tape.elapsed_ms(),
        }
        if result is not None:
            response["return_value"] = self._encode_result(result, "returned")
        tape.save(response, streamed=True)

    # -- replay: generators ------------------------------------------------------------------

    def _decode(self, value: Any, tape: Tape) -> Any:
        self.info.declared_types  # noqa: B018 (put them on the allowlist before decoding)
        try:
            return decode(value)
        except RecordingFormatError as exc:  # data of the wrong shape for its declared type
            found = tape.decision.found
            raise RecordingFormatError(found.path if found else exc.path, exc.problem) from None

    def replay_items(self, tape: Tape) -> Generator[Any, Any, Any]:
        """A generator yielding the recorded items (a non-streamed recording yields its body once)."""
        response = replayed(tape, self)
        for item in _recorded_items(response):
            yield self._decode(item, tape)
        return self._decode(response.get("return_value"), tape)

    async def areplay_items(self, tape: Tape) -> AsyncGenerator[Any, Any]:
        """The async form of :meth:`replay_items`."""
        response = replayed(tape, self)
        for item in _recorded_items(response):
            yield self._decode(item, tape)


async def _ready(value: Any) -> Any:
    return value


def _recorded_items(response: dict[str, Any]) -> list[Any]:
    body = response.get("body")
    if response.get("is_streaming") or isinstance(body, list):
        return body if isinstance(body, list) else []
    return [body]


async def _as_async_generator(items: AsyncIterator[Any]) -> AsyncGenerator[Any, Any]:
    async for item in items:
        yield item


# ---------------------------------------------------------------------------------------------
# Requests, exceptions
# ---------------------------------------------------------------------------------------------


def tool_request(info: ToolInfo, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ToolRequest:
    """The :class:`ToolRequest` for one call: arguments as passed, bound to names, JSON, no credentials.

    Raises ``TypeError`` when the arguments do not fit the signature or one cannot be encoded.
    """
    named: list[tuple[str, Any]] = []
    signature = info.signature
    if signature is None:
        if args:
            named.append((_UNBOUND_ARGS, list(args)))
        named += kwargs.items()
    else:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"tool {info.label}: {exc}") from None
        parameters = signature.parameters
        for position, (param_name, value) in enumerate(bound.arguments.items()):
            kind = parameters[param_name].kind
            if kind is inspect.Parameter.VAR_KEYWORD:
                named += value.items()
            elif position == 0 and param_name in _INSTANCE_PARAMS and kind is not inspect.Parameter.KEYWORD_ONLY:
                continue  # the instance of a decorated method
            else:
                named.append((param_name, value))
    encoded: dict[str, Any] = {}
    for arg_name, value in named:
        if _is_credential_argument(arg_name, value):
            continue
        try:
            scrubbed = scrub(to_jsonable(value), TOOL_CREDENTIAL_NAMES)
            encoded[arg_name] = scrub_tool_argument({arg_name: scrubbed})[arg_name]  # `headers=` is a header map
        except TypeError as exc:
            raise TypeError(
                f"tool {info.label}: argument {arg_name!r} cannot be recorded ({exc}). Arguments must be "
                "JSON data, pydantic models, dataclasses, paths, dates, enums or sets."
            ) from None
    return ToolRequest(provider=info.provider, tool_name=info.name, kwargs=encoded)


def _is_credential_argument(name: str, value: Any) -> bool:
    """A tool argument that is never written nor keyed: a credential name (``token`` included), or
    ``key`` holding a secret-looking string (``get(key="a")`` is data)."""
    return is_credential(name, value, TOOL_CREDENTIAL_NAMES)


def _credential_values(info: ToolInfo, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, ...]:
    """The strings passed under credential-like names, at any depth: the Recorder masks them in
    what it writes (an exception message or a result that echoes one)."""
    named: dict[str, Any] = dict(kwargs)
    if info.signature is not None:
        try:
            bound = info.signature.bind(*args, **kwargs)
        except TypeError:
            pass
        else:
            for param_name, value in bound.arguments.items():
                if info.signature.parameters[param_name].kind is inspect.Parameter.VAR_KEYWORD:
                    named.update(value)
                else:
                    named[param_name] = value
    for name, value in named.items():
        try:
            named[name] = to_jsonable(value)  # a model or dataclass holding a credential field
        except Exception:  # kept as it is: its strings are still found in mappings and lists
            pass
    return request_secrets(body=named, names=TOOL_CREDENTIAL_NAMES) + tool_argument_secrets(named)


def _exception_response(info: ToolInfo, exc: Exception) -> dict[str, Any]:
    """FORMAT.md's exception form for an exception raised by a tool."""
    cls = type(exc)
    exception_data: dict[str, Any] = {
        "category": "tool",
        "provider": info.provider,
        "type": cls.__qualname__,
        "module": cls.__module__,
        "message": str(exc),
    }
    try:
        exception_data["args"] = to_jsonable(list(exc.args))
    except TypeError:
        pass  # rebuilt from the message alone
    return exception_response(exception_data, str(exc))


def recorded_exception(response: dict[str, Any]) -> BaseException:
    """The exception a recorded tool call raised, rebuilt.

    The original class is used when it is on the allowlist (a builtin exception, an SDK error,
    or a class registered with ``nr.register_types``; nothing is imported) and can be built from
    the recorded ``args`` or message; a rebuild whose ``str()`` matches the recorded message is
    preferred. Otherwise it is a :class:`~notebook_recorder.RecordedToolError` carrying the type
    name and message.
    """
    data = response.get("exception_data") or {}
    qualname = str(data.get("type") or "Exception")
    module = data.get("module")
    full_name = f"{module}.{qualname}" if module else qualname
    message = str(data.get("message") if data.get("message") is not None else response.get("exception_message", ""))
    cls = allowed_type(full_name) if module else None
    if cls is None or not issubclass(cls, Exception):
        return RecordedToolError(full_name, message)
    attempts: list[tuple[Any, ...]] = []
    args = data.get("args")
    if isinstance(args, list):
        attempts.append(tuple(args))
    attempts.append((message,))
    built: BaseException | None = None
    for attempt in attempts:
        try:
            candidate = cls(*attempt)
        except Exception:
            continue
        if str(candidate) == message:
            return candidate
        built = built or candidate
    return built if built is not None else RecordedToolError(full_name, message)
