"""One call's flow, in one place: describe → decide → replay, or call live → save.

As vcrpy's stubs hand a request to the cassette and get a response back, a hook (the Stainless
SDK hook, ``nr.tool``) hands :func:`run` (or :func:`arun`, for a coroutine) an
:class:`Exchange`: the SDK-specific pieces of one call. The flow is here, top to bottom:

1. the exchange **describes** the request; the Recorder **decides** (replay, record, live), or
   raises ``RecordingNotFoundError`` in replay mode when nothing was recorded;
2. **replay**: the exchange rebuilds the SDK's objects from the recorded response, or the
   recorded error is raised; the call is logged as replayed;
3. otherwise the exchange **calls the original** (with a :class:`Tape` when recording), and
   - an error is recorded when the exchange can describe it (an API error, a tool's exception),
     and re-raised;
   - a live result goes back as it is; a recorded one is handed to the exchange to **keep**: a
     plain result is saved at once, a stream or an unread body once it has been read to the end,
     through the tape.

No file I/O happens here: the Recorder writes, the exchange knows the SDK.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any, Protocol
from urllib.parse import urlsplit

from ._errors import NetworkBlockedError
from ._keys import Request
from ._recorder import Action, Decision, Recorder

__all__ = ["Exchange", "Tape", "arun", "begin", "replayed", "run"]


class Tape:
    """A call being recorded or replayed: what the hook uses to save it, or to say how it ended."""

    __slots__ = ("decision",)

    def __init__(self, decision: Decision) -> None:
        self.decision = decision

    @property
    def action(self) -> Action:
        return self.decision.action

    @property
    def started(self) -> float:
        """``time.perf_counter()`` when the call started."""
        return self.decision.started

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.decision.started) * 1000, 3)

    def add_secrets(self, secrets: tuple[str, ...]) -> None:
        """More credential values the request carried (as sent): masked in what is saved."""
        self.decision.secrets += secrets

    def save(self, response: dict[str, Any], *, streamed: bool = False) -> None:
        """Write the recording (FORMAT.md's ``response``) and log the call as recorded."""
        self.decision.recorder.save(self.decision, response, streamed=streamed)

    def end(self, outcome: str, *, streamed: bool = False, error: str | None = None) -> None:
        """Log how a call ended without a recording being written: live, error, replayed."""
        self.decision.recorder.finish(self.decision, outcome, streamed=streamed, error=error)


class Exchange(Protocol):
    """The SDK-specific pieces of one call, which the hook supplies.

    For :func:`arun`, ``replay`` and ``call`` return awaitables.
    """

    @property
    def streamed(self) -> bool:
        """Whether the call streams (logged with the call)."""

    @property
    def sdk_versions(self) -> dict[str, str]:
        """``{"sdk": name, "sdk_version": version}`` written in a recording's ``recorder``, or ``{}``."""

    def describe(self) -> Request:
        """The request, as it is keyed and written."""

    def secrets(self) -> tuple[str, ...]:
        """The credential values the request carries (masked in what is saved)."""

    def unavailable(self, action: Action) -> str | None:
        """Why the call cannot be made now as ``action`` (no real key), or ``None``. Then it is
        missing; in ``live`` it is refused before anything is sent."""

    def replay(self, response: dict[str, Any], tape: Tape) -> Any:
        """The result rebuilt from a recorded (non-exception) response."""

    def replay_error(self, response: dict[str, Any]) -> BaseException:
        """The error a recorded exception response stands for."""

    def call(self, tape: Tape | None) -> Any:
        """Make the call for real; ``tape`` is given when it is being recorded."""

    def keep(self, result: Any, tape: Tape) -> Any:
        """A recorded call's result, handed back to the caller; saved through ``tape`` (now, or
        once a stream or body has been read to the end)."""

    def failure(self, exc: BaseException, tape: Tape) -> dict[str, Any] | None:
        """FORMAT.md's exception response for an error worth recording, or ``None``."""


def run(recorder: Recorder, exchange: Exchange) -> Any:
    """Carry out one call under ``recorder``: replay it, or make it (and record it)."""
    tape = begin(recorder, exchange)
    if tape.action is Action.REPLAY:
        response = _recorded(tape, exchange)
        result = exchange.replay(response, tape)
        tape.end("replayed", streamed=exchange.streamed)
        return result
    try:
        result = exchange.call(tape if tape.action is Action.RECORD else None)
    except BaseException as exc:
        _failed(tape, exchange, exc)
        raise
    return _kept(tape, exchange, result)


async def arun(recorder: Recorder, exchange: Exchange) -> Any:
    """:func:`run` for an exchange whose ``replay`` and ``call`` are coroutines."""
    tape = begin(recorder, exchange)
    if tape.action is Action.REPLAY:
        response = _recorded(tape, exchange)
        result = await _awaited(exchange.replay(response, tape))
        tape.end("replayed", streamed=exchange.streamed)
        return result
    try:
        result = await _awaited(exchange.call(tape if tape.action is Action.RECORD else None))
    except BaseException as exc:
        _failed(tape, exchange, exc)
        raise
    return _kept(tape, exchange, result)


async def _awaited(value: Awaitable[Any]) -> Any:
    return await value


def begin(recorder: Recorder, exchange: Exchange) -> Tape:
    """The first step: describe and decide (a call that cannot go live now is a missing
    recording, or in ``live`` a refused one). Generators (``nr.tool``) take it alone, and go on
    with the tape themselves."""
    decision = recorder.decide(exchange.describe())
    if decision.action is Action.REPLAY:
        return Tape(decision)
    if decision.action is Action.RECORD:
        decision.secrets = exchange.secrets()
        decision.sdk = exchange.sdk_versions
    reason = exchange.unavailable(decision.action)
    if reason is None:
        return Tape(decision)
    if decision.action is not Action.LIVE:
        raise recorder.missing(decision, reason)
    recorder.finish(decision, "live", error=NetworkBlockedError.__name__)
    destination = urlsplit(getattr(decision.request, "url", "")).netloc or "the network"
    raise NetworkBlockedError(
        f"{decision.request.summary()}: not sent to {destination}. {reason}", destination=destination, origin=None
    )


def _recorded(tape: Tape, exchange: Exchange) -> dict[str, Any]:
    """The recorded response to replay; a recorded error is raised (and logged as replayed)."""
    decision = tape.decision
    assert decision.found is not None
    response = decision.recorder.store.replay_response(decision.found, decision.key)
    if response.get("is_exception"):
        exc = exchange.replay_error(response)
        tape.end("replayed", streamed=exchange.streamed, error=type(exc).__name__)
        raise exc
    return response


def replayed(tape: Tape, exchange: Exchange) -> dict[str, Any]:
    """The recorded response, logged as replayed; a recorded error is raised instead."""
    response = _recorded(tape, exchange)
    tape.end("replayed", streamed=exchange.streamed)
    return response


def _failed(tape: Tape, exchange: Exchange, exc: BaseException) -> None:
    """The original raised: record the error when it is worth it; log it either way."""
    if tape.action is Action.RECORD:
        response = exchange.failure(exc, tape)
        if response is not None:
            tape.save(response)
            return
    tape.end("live" if tape.action is Action.LIVE else "error", error=type(exc).__name__)


def _kept(tape: Tape, exchange: Exchange, result: Any) -> Any:
    if tape.action is Action.LIVE:
        tape.end("live", streamed=exchange.streamed)
        return result
    return exchange.keep(result, tape)
