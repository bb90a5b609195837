"""``nr.tool``: record and replay Python functions, with real files in ``tmp_path``.

Every test runs the real decorator under a real ``nr.recording`` block and looks at the files it
wrote; nothing of the recorder is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import enum
import functools
import inspect
import json
import threading
import warnings
from collections.abc import AsyncIterator, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

import openai
import pydantic
import pytest
from agent_loop import run_agent
from wire_server import TEST_API_KEY, WireServer

import notebook_recorder as nr
from notebook_recorder.core._codec import UnknownTypeWarning

FIXTURES = Path(__file__).parent.parent / "fixtures" / "llama-stack"


def recordings(directory: Path) -> list[dict[str, Any]]:
    """Every recording file under ``directory``, parsed."""
    return [json.loads(p.read_text()) for p in sorted(directory.rglob("*.json"))]


def written_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())


class Counter:
    """Counts calls of the functions under test, so replay can prove they did not run."""

    def __init__(self) -> None:
        self.n = 0
        self.lock = threading.Lock()

    def __call__(self) -> None:
        with self.lock:
            self.n += 1


# ---------------------------------------------------------------------------------------------
# The four kinds of function
# ---------------------------------------------------------------------------------------------


def test_sync_round_trip(tmp_path: Path) -> None:
    hits = Counter()

    @nr.tool(provider="tavily", name="web_search")
    def web_search(query: str, max_results: int = 5) -> dict[str, Any]:
        hits()
        return {"id": "res-1", "created": 1700000000, "query": query, "results": ["a", "b"][:max_results]}

    with nr.recording("record", dir=tmp_path):
        live = web_search("python", max_results=1)
    assert hits.n == 1
    [record] = recordings(tmp_path)
    assert record["request"] == {
        "test_id": None,
        "provider": "tavily",
        "tool_name": "web_search",
        "kwargs": {"query": "python", "max_results": 1},
    }
    # A tool's own `id` and `created` are its data: never normalised like inference responses.
    assert record["response"]["body"] == live
    assert record["response"]["is_streaming"] is False
    assert record["id_normalization_mapping"] == {}

    with nr.recording("replay", dir=tmp_path):
        assert web_search("python", max_results=1) == live
    assert hits.n == 1


async def test_async_round_trip(tmp_path: Path) -> None:
    hits = Counter()

    @nr.tool(provider="kb", name="lookup")
    async def lookup(term: str) -> list[str]:
        hits()
        await asyncio.sleep(0)
        return [term, term.upper()]

    assert inspect.iscoroutinefunction(lookup)
    with nr.recording("record", dir=tmp_path):
        assert await lookup("x") == ["x", "X"]
    with nr.recording("replay", dir=tmp_path):
        assert await lookup("x") == ["x", "X"]
    assert hits.n == 1


def test_generator_round_trip(tmp_path: Path) -> None:
    hits = Counter()

    @nr.tool(provider="docs", name="pages")
    def pages(n: int) -> Generator[dict[str, int], None, str]:
        hits()
        for i in range(n):
            yield {"page": i}
        return "done"

    assert inspect.isgeneratorfunction(pages)
    with nr.recording("record", dir=tmp_path):
        assert list(pages(3)) == [{"page": 0}, {"page": 1}, {"page": 2}]
    [record] = recordings(tmp_path)
    assert record["response"]["is_streaming"] is True
    assert record["response"]["body"] == [{"page": 0}, {"page": 1}, {"page": 2}]
    assert len(record["response"]["chunk_offsets_ms"]) == 3

    with nr.recording("replay", dir=tmp_path):
        gen = pages(3)
        assert inspect.isgenerator(gen)
        assert list(gen) == [{"page": 0}, {"page": 1}, {"page": 2}]

        def drive() -> Iterator[Any]:
            result = yield from pages(3)
            return result

        with pytest.raises(StopIteration) as stop:
            g = drive()
            for _ in range(4):
                next(g)
        assert stop.value.value == "done"
    assert hits.n == 1


async def test_async_generator_round_trip(tmp_path: Path) -> None:
    hits = Counter()

    @nr.tool(provider="docs", name="chunks")
    async def chunks(text: str) -> AsyncIterator[str]:
        hits()
        for word in text.split():
            await asyncio.sleep(0)
            yield word

    assert inspect.isasyncgenfunction(chunks)
    with nr.recording("record", dir=tmp_path):
        assert [w async for w in chunks("a b c")] == ["a", "b", "c"]
    with nr.recording("replay", dir=tmp_path):
        agen = chunks("a b c")
        assert inspect.isasyncgen(agen)
        assert [w async for w in agen] == ["a", "b", "c"]
    assert hits.n == 1


def test_generator_send_and_throw_are_delegated(tmp_path: Path) -> None:
    @nr.tool(provider="t", name="echo")
    def echo() -> Iterator[Any]:
        received = yield "ready"
        while True:
            try:
                received = yield f"got {received}"
            except ValueError:
                received = "recovered"

    for mode in ("live", "record"):
        with nr.recording(mode, dir=tmp_path):
            gen = echo()
            assert next(gen) == "ready"
            assert gen.send(1) == "got 1"
            assert gen.throw(ValueError()) == "got recovered"
            gen.close()
    assert recordings(tmp_path) == []  # never exhausted, so never saved


async def test_async_generator_asend_athrow_are_delegated(tmp_path: Path) -> None:
    closed = []

    @nr.tool(provider="t", name="aecho")
    async def aecho() -> AsyncIterator[Any]:
        try:
            received = yield "ready"
            while True:
                try:
                    received = yield f"got {received}"
                except ValueError:
                    received = "recovered"
        finally:
            closed.append(True)

    contexts = [contextlib.nullcontext(), nr.recording("live", dir=tmp_path), nr.recording("record", dir=tmp_path)]
    for context in contexts:
        with context:
            agen = aecho()
            assert await agen.__anext__() == "ready"
            assert await agen.asend(1) == "got 1"
            assert await agen.athrow(ValueError()) == "got recovered"
            await agen.aclose()
    assert closed == [True, True, True]  # aclose() reached the original every time
    assert recordings(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# Decorator forms and introspection
# ---------------------------------------------------------------------------------------------


def search_docs(query: str, limit: int = 3) -> list[str]:
    """Search the docs."""
    return [query] * limit


def test_decorator_forms_and_defaults(tmp_path: Path) -> None:
    bare = nr.tool(search_docs)
    called = nr.tool()(search_docs)
    named = nr.tool(search_docs, provider="docs", name="search")

    for wrapped in (bare, called, named):
        assert wrapped.__name__ == "search_docs"
        assert wrapped.__doc__ == "Search the docs."
        assert inspect.signature(wrapped) == inspect.signature(search_docs)
        assert wrapped.__wrapped__ is search_docs  # type: ignore[attr-defined]

    with nr.recording("record", dir=tmp_path):
        bare("q")
        named("q")
    labels = sorted(f"{r['request']['provider']}/{r['request']['tool_name']}" for r in recordings(tmp_path))
    assert labels == ["docs/search", f"{__name__}/search_docs"]


def test_bound_methods_callables_and_decorated_methods(tmp_path: Path) -> None:
    class Client:
        def __init__(self, secret: str) -> None:
            self.secret = secret
            self.hits = 0

        def search(self, query: str) -> str:
            self.hits += 1
            return f"{query}!"

        @nr.tool(provider="client", name="method")
        def method(self, query: str) -> str:
            self.hits += 1
            return f"{query}?"

        @classmethod
        @nr.tool(provider="client", name="classmethod")
        def make(cls, query: str) -> str:
            return f"{cls.__name__}:{query}"

    class Callable:
        def __call__(self, query: str) -> str:
            return query * 2

    client = Client("sk-canary-method")
    bound = nr.tool(client.search, provider="client", name="bound")
    assert list(inspect.signature(bound).parameters) == ["query"]
    assert bound.__qualname__.endswith("Client.search")
    obj = nr.tool(Callable(), provider="client", name="callable")
    part = nr.tool(functools.partial(search_docs, limit=1))
    assert (obj.__name__, part.__name__) == ("Callable", "search_docs")

    with nr.recording("record", dir=tmp_path):
        assert bound("a") == "a!"
        assert client.method("b") == "b?"
        assert Client.make("c") == "Client:c"
        assert obj("d") == "dd"
        assert part("e") == ["e"]
    kwargs = {r["request"]["tool_name"]: r["request"]["kwargs"] for r in recordings(tmp_path)}
    assert kwargs == {
        "bound": {"query": "a"},
        "method": {"query": "b"},  # `self` is the instance, not an argument
        "classmethod": {"query": "c"},
        "callable": {"query": "d"},
        "search_docs": {"query": "e"},  # partial: only what the caller passed
    }
    other = Client("x")
    with nr.recording("replay", dir=tmp_path):
        assert other.method("b") == "b?"
    assert other.hits == 0


def test_rewrapping_a_tool_renames_it(tmp_path: Path) -> None:
    inner = nr.tool(search_docs, provider="a", name="one")
    outer = nr.tool(inner, provider="b", name="two")
    with nr.recording("record", dir=tmp_path):
        outer("q")
    [record] = recordings(tmp_path)
    assert (record["request"]["provider"], record["request"]["tool_name"]) == ("b", "two")


def test_not_callable() -> None:
    with pytest.raises(TypeError, match=r"needs a callable, not str; give the names as keywords"):
        nr.tool("tavily")  # type: ignore[call-overload]


# ---------------------------------------------------------------------------------------------
# Pass-through
# ---------------------------------------------------------------------------------------------


def test_pass_through_when_no_recorder_is_active(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    sentinel = object()
    seen: list[tuple[Any, ...]] = []

    @nr.tool
    def anything(x: object, *, api_key: object = None) -> object:
        seen.append((x, api_key))
        return sentinel

    # Unencodable arguments and results are fine: nothing is keyed or written.
    assert anything(object, api_key="k") is sentinel
    assert seen == [(object, "k")]
    assert list(tmp_path.iterdir()) == []
    assert nr.calls() == []


async def test_pass_through_async_kinds() -> None:
    @nr.tool
    async def f(x: int) -> int:
        return x + 1

    @nr.tool
    async def g(x: int) -> AsyncIterator[int]:
        yield x

    @nr.tool
    def h(x: int) -> Iterator[int]:
        yield x

    assert await f(1) == 2
    assert [i async for i in g(1)] == [1]
    assert list(h(1)) == [1]
    assert nr.calls() == []


# ---------------------------------------------------------------------------------------------
# Keys: positional vs keyword, credentials, non-JSON arguments
# ---------------------------------------------------------------------------------------------


def test_positional_and_keyword_calls_share_a_recording(tmp_path: Path) -> None:
    hits = Counter()

    @nr.tool(provider="p", name="search")
    def search(query: str, max_results: int = 5, **options: Any) -> str:
        hits()
        return f"{query}/{max_results}/{sorted(options)}"

    with nr.recording("record", dir=tmp_path):
        search("x")
        search("x", 2, lang="en")
    assert len(recordings(tmp_path)) == 2
    kwargs = sorted((r["request"]["kwargs"] for r in recordings(tmp_path)), key=len)
    assert kwargs == [{"query": "x"}, {"query": "x", "max_results": 2, "lang": "en"}]  # **options flattened

    with nr.recording("replay", dir=tmp_path):
        assert search(query="x") == "x/5/[]"
        assert search(max_results=2, query="x", lang="en") == "x/2/['lang']"
        # Defaults are not filled in: passing the default explicitly is a different call.
        with pytest.raises(nr.RecordingNotFoundError):
            search("x", 5)
    assert hits.n == 2


def test_var_positional_and_bad_arguments(tmp_path: Path) -> None:
    @nr.tool(provider="p", name="concat")
    def concat(*parts: str, sep: str = "") -> str:
        return sep.join(parts)

    with nr.recording("record", dir=tmp_path):
        assert concat("a", "b", sep="-") == "a-b"
        with pytest.raises(TypeError, match=r"tool p/concat: .*unexpected keyword argument 'nope'"):
            concat("a", nope=1)
    [record] = recordings(tmp_path)
    assert record["request"]["kwargs"] == {"parts": ["a", "b"], "sep": "-"}


def test_credentials_are_never_written_and_not_needed_for_replay(tmp_path: Path) -> None:
    canaries = ["sk-canary-123", "tok-canary-456", "pw-canary-789", "nested-canary-000", "hdr-canary-111"]
    hits = Counter()

    @nr.tool(provider="tavily", name="web_search")
    def web_search(
        query: str,
        api_key: str | None = None,
        token: str | None = None,
        password: str | None = None,
        options: dict[str, Any] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        hits()
        return {"query": query, "authorized": bool(api_key)}

    with nr.recording("record", dir=tmp_path):
        result = web_search(
            "q",
            "sk-canary-123",  # positionally, still bound to `api_key`
            token="tok-canary-456",
            password="pw-canary-789",
            options={"depth": 2, "client_secret": "nested-canary-000"},
            Authorization="hdr-canary-111",
        )
    assert result == {"query": "q", "authorized": True}  # the function itself got the key
    data = written_bytes(tmp_path)
    assert data
    for canary in canaries:
        assert canary.encode() not in data
    [record] = recordings(tmp_path)
    assert record["request"]["kwargs"] == {"query": "q", "options": {"depth": 2}}

    with nr.recording("replay", dir=tmp_path):
        assert web_search("q", options={"depth": 2}) == result  # no credentials at all
        assert web_search("q", api_key="another-key", options={"depth": 2}) == result
    assert hits.n == 1


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Filter:
    field: str
    values: list[int]


class Query(pydantic.BaseModel):
    text: str
    since: dt.date


def test_non_json_arguments_have_a_stable_encoding(tmp_path: Path) -> None:
    hits = Counter()

    @nr.tool(provider="p", name="fancy")
    def fancy(**kwargs: Any) -> str:
        hits()
        return "ok"

    args = {
        "query": Query(text="t", since=dt.date(2024, 1, 2)),
        "filter": Filter("year", [2023, 2024]),
        "path": PurePosixPath("/data/docs"),
        "when": dt.datetime(2024, 5, 6, 7, 8, 9),
        "color": Color.RED,
        "tags": {"b", "a", "c"},
        "pair": (1, 2),
    }
    with nr.recording("record", dir=tmp_path):
        fancy(**args)
    [record] = recordings(tmp_path)
    assert record["request"]["kwargs"] == {
        "query": {"text": "t", "since": "2024-01-02"},
        "filter": {"field": "year", "values": [2023, 2024]},
        "path": "/data/docs",
        "when": "2024-05-06T07:08:09",
        "color": "red",
        "tags": ["a", "b", "c"],
        "pair": [1, 2],
    }
    # Equal values, built afresh (a set in another order), find the same recording.
    again = {**args, "tags": {"c", "a", "b"}, "query": Query(text="t", since=dt.date(2024, 1, 2))}
    with nr.recording("replay", dir=tmp_path):
        assert fancy(**again) == "ok"
    assert hits.n == 1


def test_unencodable_argument_names_the_argument(tmp_path: Path) -> None:
    @nr.tool(provider="p", name="f")
    def f(query: str, handle: object) -> None:
        raise AssertionError("must not run")

    for mode in ("record", "replay", "live", "record-if-missing"):
        with nr.recording(mode, dir=tmp_path):
            with pytest.raises(
                TypeError, match=r"tool p/f: argument 'handle' cannot be recorded \(cannot encode a lock"
            ):
                f("q", threading.Lock())


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


class Hit(pydantic.BaseModel):
    url: str
    score: float


@dataclasses.dataclass
class Page:
    title: str
    hits: list[Hit]


def test_typed_results_come_back_as_their_types(tmp_path: Path) -> None:
    @nr.tool(provider="p", name="typed")
    def typed(kind: str) -> Hit | Page | list[Hit] | dict[str, Any]:  # declared: replay builds them
        hit = Hit(url="https://a", score=0.5)
        return {
            "model": hit,
            "dataclass": Page("t", [hit]),
            "list": [hit, Hit(url="https://b", score=1.0)],
            "plain": {"x": [1, 2.5, None, True]},
        }[kind]

    kinds = ("model", "dataclass", "list", "plain")
    with nr.recording("record", dir=tmp_path):
        live = {kind: typed(kind) for kind in kinds}
    bodies = {r["request"]["kwargs"]["kind"]: r["response"]["body"] for r in recordings(tmp_path)}
    assert bodies["model"] == {"__type__": f"{__name__}.Hit", "__data__": {"url": "https://a", "score": 0.5}}
    assert bodies["dataclass"]["__type__"] == f"{__name__}.Page"

    with nr.recording("replay", dir=tmp_path):
        replayed = {kind: typed(kind) for kind in kinds}
    assert replayed == live
    assert type(replayed["model"]) is Hit
    assert type(replayed["dataclass"]) is Page and type(replayed["dataclass"].hits[0]) is Hit
    assert [type(h) for h in replayed["list"]] == [Hit, Hit]


def test_unknown_result_type_replays_as_raw_data_with_a_warning(tmp_path: Path) -> None:
    @dataclasses.dataclass
    class LocalResult:  # defined in a function: its `<locals>` name cannot be imported
        content: str
        score: float

    @nr.tool(provider="p", name="local")
    def local() -> LocalResult:
        return LocalResult("text", 0.25)

    with nr.recording("record", dir=tmp_path):
        assert local() == LocalResult("text", 0.25)
    with nr.recording("replay", dir=tmp_path):
        with pytest.warns(UnknownTypeWarning, match="LocalResult"):
            assert local() == {"content": "text", "score": 0.25}
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert local() == {"content": "text", "score": 0.25}  # warned once only


def test_unrecordable_result_is_an_error_in_record_mode(tmp_path: Path) -> None:
    @nr.tool(provider="p", name="opaque")
    def opaque() -> object:
        return threading.Lock()

    @nr.tool(provider="p", name="opaque_items")
    def opaque_items() -> Iterator[object]:
        yield 1
        yield threading.Lock()

    with nr.recording("record", dir=tmp_path):
        with pytest.raises(TypeError, match=r"tool p/opaque returned a lock, which cannot be recorded"):
            opaque()
        with pytest.raises(TypeError, match=r"tool p/opaque_items yielded a lock"):
            list(opaque_items())
    assert recordings(tmp_path) == []
    assert [c.outcome for c in nr.calls()] == ["error", "error"]
    with nr.recording("live", dir=tmp_path):
        assert isinstance(opaque(), type(threading.Lock()))  # live writes nothing, so it needs no encoding


def test_awaitable_from_a_plain_function_is_explained(tmp_path: Path) -> None:
    async def fetch(url: str) -> str:
        return url

    hidden = nr.tool(lambda url: fetch(url), provider="p", name="hidden")  # looks synchronous
    with nr.recording("record", dir=tmp_path), warnings.catch_warnings():
        warnings.simplefilter("error")  # and no "coroutine was never awaited"
        with pytest.raises(TypeError, match=r"apply nr\.tool to the async function itself"):
            hidden("u")
    assert recordings(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# Exceptions
# ---------------------------------------------------------------------------------------------


class QuotaError(Exception):
    """An importable exception whose constructor takes two arguments."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail

    def __str__(self) -> str:
        return f"quota {self.code}: {self.detail}"


def test_exceptions_are_recorded_and_reraised(tmp_path: Path) -> None:
    hits = Counter()

    @nr.tool(provider="p", name="fails")
    def fails(kind: str) -> None:
        hits()
        if kind == "value":
            raise ValueError("bad query")
        if kind == "key":
            raise KeyError("missing")
        raise QuotaError(429, "slow down")

    nr.register_types(QuotaError)  # a class of the user's own is rebuilt only when registered
    with nr.recording("record", dir=tmp_path):
        with pytest.raises(ValueError, match="bad query"):
            fails("value")
        with pytest.raises(KeyError):
            fails("key")
        with pytest.raises(QuotaError):
            fails("quota")
    by_kind = {r["request"]["kwargs"]["kind"]: r["response"] for r in recordings(tmp_path)}
    assert by_kind["value"].pop("duration_ms") >= 0  # how long the tool took to fail
    assert by_kind["value"] == {
        "body": None,
        "is_streaming": False,
        "is_exception": True,
        "exception_data": {
            "category": "tool",
            "provider": "p",
            "type": "ValueError",
            "module": "builtins",
            "message": "bad query",
            "args": ["bad query"],
        },
        "exception_message": "bad query",
    }
    assert by_kind["quota"]["exception_data"]["type"] == "QuotaError"
    assert [c.outcome for c in nr.calls()] == ["recorded"] * 3
    assert [c.error for c in nr.calls()] == ["ValueError", "KeyError", "QuotaError"]

    with nr.recording("replay", dir=tmp_path):
        with pytest.raises(ValueError, match=r"^bad query$"):
            fails("value")
        with pytest.raises(KeyError) as key_error:
            fails("key")
        assert key_error.value.args == ("missing",)
        with pytest.raises(QuotaError) as quota:
            fails("quota")
        assert (quota.value.code, quota.value.detail) == (429, "slow down")
    assert hits.n == 3


async def test_unimportable_exception_replays_as_recorded_tool_error(tmp_path: Path) -> None:
    class LocalError(Exception):
        pass

    hits = Counter()

    @nr.tool(provider="p", name="afails")
    async def afails() -> None:
        hits()
        raise LocalError("service exploded")

    with nr.recording("record", dir=tmp_path):
        with pytest.raises(LocalError):
            await afails()
    with nr.recording("replay", dir=tmp_path):
        with pytest.raises(nr.RecordedToolError) as info:
            await afails()
    assert (
        info.value.type_name
        == f"{__name__}.test_unimportable_exception_replays_as_recorded_tool_error.<locals>.LocalError"
    )
    assert info.value.message == "service exploded"
    assert "service exploded" in str(info.value)
    assert hits.n == 1


def test_base_exceptions_are_not_recorded(tmp_path: Path) -> None:
    @nr.tool(provider="p", name="interrupted")
    def interrupted() -> None:
        raise KeyboardInterrupt

    with nr.recording("record", dir=tmp_path):
        with pytest.raises(KeyboardInterrupt):
            interrupted()
    assert recordings(tmp_path) == []
    assert [(c.outcome, c.error) for c in nr.calls()] == [("error", "KeyboardInterrupt")]


# ---------------------------------------------------------------------------------------------
# Generators cut short
# ---------------------------------------------------------------------------------------------


def test_abandoned_generators_are_not_saved(tmp_path: Path) -> None:
    finalized = []

    @nr.tool(provider="p", name="count")
    def count(n: int, fail_at: int = -1) -> Iterator[int]:
        try:
            for i in range(n):
                if i == fail_at:
                    raise RuntimeError("source failed")
                yield i
        finally:
            finalized.append(n)

    with nr.recording("record", dir=tmp_path):
        for i in count(5):  # break
            if i == 1:
                break
        gen = count(6)  # close()
        next(gen)
        gen.close()
        with pytest.raises(RuntimeError):  # an exception inside the generator
            list(count(7, fail_at=2))
        with pytest.raises(ZeroDivisionError):  # an exception thrown in by the caller
            gen = count(8)
            next(gen)
            gen.throw(ZeroDivisionError())
    assert recordings(tmp_path) == []
    assert finalized == [5, 6, 7, 8]  # the original generator was closed every time
    errors = [c.error for c in nr.calls()]
    assert errors == [
        "generator closed early after 2 items; not saved",
        "generator closed early after 1 items; not saved",
        "generator ended by RuntimeError after 2 items; not saved",
        "generator ended by ZeroDivisionError after 1 items; not saved",
    ]
    with nr.recording("record", dir=tmp_path):
        assert list(count(5)) == [0, 1, 2, 3, 4]
    assert len(recordings(tmp_path)) == 1


async def test_abandoned_async_generator_is_not_saved(tmp_path: Path) -> None:
    @nr.tool(provider="p", name="acount")
    async def acount(n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    with nr.recording("record", dir=tmp_path):
        agen = acount(5)
        async for i in agen:
            if i == 2:
                break
        await agen.aclose()
    assert recordings(tmp_path) == []
    assert [c.error for c in nr.calls()] == ["generator closed early after 3 items; not saved"]
    with nr.recording("record", dir=tmp_path):
        assert [i async for i in acount(5)] == [0, 1, 2, 3, 4]
    assert len(recordings(tmp_path)) == 1


# ---------------------------------------------------------------------------------------------
# Modes, the call log, sessions
# ---------------------------------------------------------------------------------------------


def test_all_four_modes(tmp_path: Path) -> None:
    hits = Counter()

    @nr.tool(provider="p", name="now")
    def now(query: str) -> int:
        hits()
        return hits.n

    with nr.recording("live", dir=tmp_path):
        assert now("q") == 1
        assert now("q") == 2
    assert recordings(tmp_path) == []

    with nr.recording("replay", dir=tmp_path), pytest.raises(nr.RecordingNotFoundError):
        now("q")
    assert hits.n == 2

    with nr.recording("record-if-missing", dir=tmp_path):
        assert now("q") == 3  # missing: runs and records
        assert now("q") == 3  # present: replays
    assert hits.n == 3

    with nr.recording("record", dir=tmp_path):
        assert now("q") == 4  # runs and overwrites
    [record] = recordings(tmp_path)
    assert record["response"]["body"] == 4

    with nr.recording("replay", dir=tmp_path):
        assert now("q") == 4
    assert hits.n == 4

    log = [(c.mode, c.outcome) for c in nr.calls()]
    assert log == [
        ("live", "live"),
        ("live", "live"),
        ("replay", "missing"),
        ("record-if-missing", "recorded"),
        ("record-if-missing", "replayed"),
        ("record", "recorded"),
        ("replay", "replayed"),
    ]


def test_environment_forces_replay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    @nr.tool(provider="p", name="env")
    def env(q: str) -> str:
        raise AssertionError("must not run")

    monkeypatch.setenv("APIREC_MODE", "replay")
    with nr.recording("record", dir=tmp_path):
        with pytest.raises(nr.RecordingNotFoundError, match="APIREC_MODE=replay is set"):
            env("q")


def test_calls_log_entries(tmp_path: Path) -> None:
    @nr.tool(provider="tavily", name="web_search")
    def web_search(query: str) -> str:
        return query

    with nr.recording("record", dir=tmp_path, scope="nb.ipynb"):
        web_search("a")
    with nr.recording("replay", dir=tmp_path, scope="nb.ipynb"):
        web_search("a")
    with nr.recording("replay", dir=tmp_path, scope="other"), pytest.raises(nr.RecordingNotFoundError):
        web_search("a")  # tool keys include the scope, as API keys do (issue 22)
    first, second, _ = nr.calls()
    assert first.kind == second.kind == "tool"
    assert first.endpoint == second.endpoint == "tavily/web_search"
    assert first.model == ""
    assert (first.outcome, second.outcome) == ("recorded", "replayed")
    assert first.path == second.path and first.path is not None and first.path.endswith(f"{first.key}.json")
    assert (first.test_id, second.test_id) == ("nb.ipynb", "nb.ipynb")
    [record] = recordings(tmp_path)
    assert record["test_id"] == record["request"]["test_id"] == "nb.ipynb"


def test_session_start_and_stop(tmp_path: Path) -> None:
    hits = Counter()

    @nr.tool(provider="p", name="s")
    def s(q: str) -> str:
        hits()
        return q

    nr.start("record-if-missing", dir=tmp_path)
    try:
        s("a")
        s("a")
    finally:
        nr.stop()
    assert hits.n == 1
    s("a")  # after stop: live, logged nowhere
    assert hits.n == 2
    assert [c.outcome for c in nr.calls()] == ["recorded", "replayed"]


def test_missing_recording_names_tool_arguments_and_nearest_call(tmp_path: Path) -> None:
    @nr.tool(provider="tavily", name="web_search")
    def web_search(query: str, max_results: int = 5) -> str:
        return query

    with nr.recording("record", dir=tmp_path):
        web_search("latest python 3.12 release")
        web_search("llama", max_results=3)
        nr.tool(search_docs, provider="docs", name="search")("latest python 3.13 release", 2)

    with nr.recording("replay", dir=tmp_path):
        with pytest.raises(nr.RecordingNotFoundError) as info:
            web_search("latest python 3.13 release", max_results=2)
    message = str(info.value)
    assert "tool tavily/web_search(query='latest python 3.13 release', max_results=2)" in message
    nearest = [line for line in message.splitlines() if line.startswith("Nearest recorded request")]
    assert len(nearest) == 1
    # Both candidates differ in two places; the one with the closer query wins.
    assert "    kwargs.query: 'latest python 3.12 release' -> 'latest python 3.13 release'" in message
    assert "    kwargs.max_results: (absent) -> 2" in message
    assert "record-if-missing" in message
    assert info.value.key == info.value.request.key(None)  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------
# Concurrency
# ---------------------------------------------------------------------------------------------


def test_thread_pool(tmp_path: Path) -> None:
    hits = Counter()

    @nr.tool(provider="p", name="square")
    def square(x: int) -> dict[str, int]:
        hits()
        return {"x": x, "square": x * x}

    with nr.recording("record", dir=tmp_path):
        with ThreadPoolExecutor(8) as pool:
            live = list(pool.map(square, range(64)))
    assert len(recordings(tmp_path)) == 64
    with nr.recording("replay", dir=tmp_path):
        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(square, range(64))) == live
    assert hits.n == 64
    assert sorted(c.outcome for c in nr.calls()) == ["recorded"] * 64 + ["replayed"] * 64


async def test_asyncio_gather(tmp_path: Path) -> None:
    hits = Counter()

    @nr.tool(provider="p", name="slow")
    async def slow(x: int) -> int:
        hits()
        await asyncio.sleep(0.001 * (x % 3))
        return x * 10

    @nr.tool(provider="p", name="stream")
    async def stream(x: int) -> AsyncIterator[int]:
        for i in range(x % 4):
            await asyncio.sleep(0)
            yield x + i

    async def collect(x: int) -> list[int]:
        return [i async for i in stream(x)]

    with nr.recording("record", dir=tmp_path):
        live = await asyncio.gather(*(slow(x) for x in range(32)), *(collect(x) for x in range(32)))
    with nr.recording("replay", dir=tmp_path):
        replayed = await asyncio.gather(*(slow(x) for x in range(32)), *(collect(x) for x in range(32)))
    assert replayed == live
    assert hits.n == 32


# ---------------------------------------------------------------------------------------------
# llama-stack's recordings
# ---------------------------------------------------------------------------------------------


def _web_search_recordings() -> list[Path]:
    found = []
    for path in sorted(FIXTURES.rglob("*.json")):
        record = json.loads(path.read_text())
        request = record.get("request") if isinstance(record, dict) else None
        if isinstance(request, dict) and request.get("tool_name") == "web_search":
            found.append(path)
    return found


WEB_SEARCH_RECORDINGS = _web_search_recordings()


def test_llama_stack_web_search_recordings_exist() -> None:
    generations = {p.relative_to(FIXTURES).parts[0] for p in WEB_SEARCH_RECORDINGS}
    assert len(WEB_SEARCH_RECORDINGS) >= 5 and generations == {"oct2025", "head"}


@pytest.mark.filterwarnings("ignore::notebook_recorder.core._codec.UnknownTypeWarning")
@pytest.mark.parametrize("path", WEB_SEARCH_RECORDINGS, ids=lambda p: f"{p.parts[-5]}-{p.stem[:12]}")
def test_llama_stack_web_search_replays(path: Path) -> None:
    record = json.loads(path.read_text())
    body = record["response"]["body"]
    assert body["__type__"] in (
        "llama_stack.apis.tools.tools.ToolInvocationResult",
        "ogx_api.tools.ToolInvocationResult",
    )

    def some_fn(**kwargs: Any) -> Any:
        raise AssertionError("replay must not call the tool")

    web_search = nr.tool(some_fn, provider="tavily", name="web_search")
    with nr.recording("replay", dir=path.parent, scope=record["test_id"]):
        result = web_search(**record["request"]["kwargs"])
    assert result == body["__data__"]
    assert json.loads(result["content"])["query"] == record["request"]["kwargs"]["query"]
    [call] = nr.calls()
    assert (call.kind, call.endpoint, call.outcome) == ("tool", "tavily/web_search", "replayed")
    assert call.path is not None and Path(call.path).resolve() == path.resolve()


# ---------------------------------------------------------------------------------------------
# The tools tutorial's example: a function-calling loop against the local wire server
# ---------------------------------------------------------------------------------------------


def test_function_calling_loop_records_and_replays_offline(
    tmp_path: Path, wire_server: WireServer, client: openai.OpenAI
) -> None:
    # The search results are real ones: what Tavily answered in one of llama-stack's recordings.
    tavily = json.loads(json.loads(WEB_SEARCH_RECORDINGS[0].read_text())["response"]["body"]["__data__"]["content"])
    hits = Counter()

    def tavily_search(query: str, max_results: int = 3, api_key: str = "") -> dict[str, Any]:
        assert api_key == "tvly-canary-222"
        hits()
        return {"query": query, "results": tavily["top_k"][:max_results]}

    search = nr.tool(functools.partial(tavily_search, api_key="tvly-canary-222"), provider="tavily", name="web_search")
    question = "What is the latest version of Python?"

    with nr.recording("record", dir=tmp_path):
        recorded = run_agent(client, question, search)

    # 1. the model asked for web_search, 2. the tool ran, 3. its result went back, 4. the model answered.
    assert [m["role"] for m in recorded] == ["user", "assistant", "tool", "assistant"]
    [tool_call] = recorded[1]["tool_calls"]
    assert tool_call["function"]["name"] == "web_search"
    query = json.loads(tool_call["function"]["arguments"])["query"]
    assert json.loads(recorded[2]["content"])["query"] == query
    assert recorded[2]["tool_call_id"] == tool_call["id"]
    assert isinstance(recorded[3]["content"], str) and recorded[3]["content"]
    assert hits.n == 1
    sent = [r.json for r in wire_server.requests]
    assert len(sent) == 2 and sent[1]["messages"][-1] == recorded[2]
    assert [(c.kind, c.endpoint, c.outcome) for c in nr.calls()] == [
        ("inference", "/v1/chat/completions", "recorded"),
        ("tool", "tavily/web_search", "recorded"),
        ("inference", "/v1/chat/completions", "recorded"),
    ]
    tool_files = [r for r in recordings(tmp_path) if "tool_name" in r["request"]]
    assert [r["request"]["kwargs"] for r in tool_files] == [{"query": query}]
    data = written_bytes(tmp_path)
    assert b"tvly-canary-222" not in data and TEST_API_KEY.encode() not in data

    # Offline: the server is gone, and the same loop replays the same conversation.
    wire_server.stop()
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": question}])
    nr.clear_calls()
    with nr.recording("replay", dir=tmp_path):
        replayed = run_agent(client, question, search)
    assert replayed == recorded
    assert hits.n == 1
    assert [c.outcome for c in nr.calls()] == ["replayed"] * 3


# ---------------------------------------------------------------------------------------------
# %%apirec
# ---------------------------------------------------------------------------------------------


def test_tool_inside_cell_magic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from IPython.testing import globalipapp

    monkeypatch.chdir(tmp_path)
    globalipapp.start_ipython()
    shell = globalipapp.get_ipython()
    shell.run_line_magic("load_ext", "notebook_recorder")
    hits = Counter()

    @nr.tool(provider="p", name="cell")
    def cell_tool(q: str) -> dict[str, str]:
        hits()
        return {"q": q}

    shell.user_ns["cell_tool"] = cell_tool
    try:
        shell.run_cell("%%apirec record --dir rec\nfirst = cell_tool('x')").raise_error()
        shell.run_cell("%%apirec replay --dir rec\nagain = cell_tool('x')").raise_error()
        assert shell.user_ns["first"] == shell.user_ns["again"] == {"q": "x"}
        assert hits.n == 1
        shell.run_cell("cell_tool('y')").raise_error()  # after the cell: no recorder, a plain call
        assert hits.n == 2
        assert [(c.endpoint, c.outcome) for c in nr.calls()] == [("p/cell", "recorded"), ("p/cell", "replayed")]
        assert [r["request"]["kwargs"] for r in recordings(tmp_path / "rec")] == [{"q": "x"}]
    finally:
        shell.run_line_magic("unload_ext", "notebook_recorder")
