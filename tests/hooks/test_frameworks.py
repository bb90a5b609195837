"""Frameworks built on the openai SDK record and replay like the SDK itself.

Each test records one call made through a framework (against the loopback wire server), stops the
server, replays it with no API key, and compares what the framework handed back. The frameworks
are the ``frameworks`` dependency group: ``make frameworks`` (a part of ``make test``) installs it
in .venv-frameworks beside .venv's openai and runs this file there, where a missing framework
fails (``NR_REQUIRE_FRAMEWORKS``); elsewhere a test is skipped, with the reason, when its package is
not installed. llama-index is not here: llama-index-llms-openai requires openai<3, so it does not
install beside openai 3.x.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from wire_server import TEST_API_KEY, WireServer

import notebook_recorder as nr

QUESTION = "What is the latest version of Python?"
ABSENT = "optional framework not installed (make frameworks)"
# pydantic's notes on litellm's own TypedDicts, raised when litellm builds them lazily on first use
LITELLM_NOTES = pytest.mark.filterwarnings("ignore:Item.*ReadOnly:UserWarning")

Answer = tuple[str, str]  # (content, id) as the framework reports them
Run = Callable[[str, str | None], Answer]  # (base_url, api_key or None for the environment's)


def framework(name: str) -> Any:
    """The framework's module: skipped when it is not installed, but where it must be."""
    if os.environ.get("NR_REQUIRE_FRAMEWORKS"):
        return importlib.import_module(name)
    return pytest.importorskip(name, reason=ABSENT)


def record_then_replay(tmp_path: Path, run: Run) -> tuple[Answer, Answer]:
    """``run`` once recording against a live wire server, once replaying after it has stopped."""
    with pytest.MonkeyPatch.context() as env:
        for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "APIREC_MODE", "APIREC_DIR"):
            env.delenv(name, raising=False)
        with WireServer() as server:
            base_url = server.base_url
            with nr.recording("record", dir=tmp_path):
                recorded = run(base_url, TEST_API_KEY)
            served = len(server.requests)
        assert served >= 1
        with nr.recording("replay", dir=tmp_path):
            replayed = run(base_url, None)  # no key: the recorder's placeholder stands in
            # given at the clients' constructors, never put in the environment
            assert "OPENAI_API_KEY" not in os.environ
    assert recorded[0], "the framework returned no content"
    return recorded, replayed


# --- langchain-openai -----------------------------------------------------------------------


def _langchain(base_url: str, api_key: str | None) -> Answer:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="gpt-4o", base_url=base_url, api_key=api_key, max_retries=0)
    message = llm.invoke(QUESTION)
    return str(message.content), str(message.response_metadata["id"])


@pytest.fixture(scope="module")
def langchain_answers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Answer, Answer]:
    framework("langchain_openai")
    return record_then_replay(tmp_path_factory.mktemp("langchain"), _langchain)


def test_langchain_openai_replays_the_recorded_content(langchain_answers: tuple[Answer, Answer]) -> None:
    recorded, replayed = langchain_answers
    assert replayed[0] == recorded[0]


def test_langchain_openai_replays_the_recorded_id(langchain_answers: tuple[Answer, Answer]) -> None:
    recorded, replayed = langchain_answers
    assert replayed[1] == recorded[1]


# --- litellm --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def litellm_module() -> Iterator[Any]:
    """litellm, told to use its bundled model cost map (it fetches one at import otherwise)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        env.setenv("LITELLM_TELEMETRY", "False")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydantic's notes on litellm's own types
            module = framework("litellm")
        yield module


@pytest.fixture(scope="module")
def litellm_answers(litellm_module: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Answer, Answer]:
    def run(base_url: str, api_key: str | None) -> Answer:
        response = litellm_module.completion(
            model="openai/gpt-4o",
            messages=[{"role": "user", "content": QUESTION}],
            api_base=base_url,
            api_key=api_key,
            max_retries=0,
        )
        return str(response.choices[0].message.content), str(response.id)

    return record_then_replay(tmp_path_factory.mktemp("litellm"), run)


@LITELLM_NOTES
def test_litellm_replays_the_recorded_content(litellm_answers: tuple[Answer, Answer]) -> None:
    recorded, replayed = litellm_answers
    assert replayed[0] == recorded[0]


@LITELLM_NOTES
def test_litellm_replays_the_recorded_id(litellm_answers: tuple[Answer, Answer]) -> None:
    recorded, replayed = litellm_answers
    assert replayed[1] == recorded[1]


# --- openai-agents --------------------------------------------------------------------------


def _agents(base_url: str, api_key: str | None) -> Answer:
    import openai
    from agents import Agent, OpenAIResponsesModel, RunConfig, Runner

    async def run() -> Answer:
        async with openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0) as client:
            model = OpenAIResponsesModel(model="gpt-4o", openai_client=client)
            agent = Agent(name="assistant", instructions="Answer briefly.", model=model)
            result = await Runner.run(agent, QUESTION, run_config=RunConfig(tracing_disabled=True))
            return str(result.final_output), str(result.raw_responses[-1].response_id)

    return asyncio.run(run())


@pytest.fixture(scope="module")
def agents_answers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Answer, Answer]:
    framework("agents")
    return record_then_replay(tmp_path_factory.mktemp("agents"), _agents)


def test_openai_agents_replays_the_recorded_output(agents_answers: tuple[Answer, Answer]) -> None:
    recorded, replayed = agents_answers
    assert replayed[0] == recorded[0]


def test_openai_agents_replays_the_recorded_response_id(agents_answers: tuple[Answer, Answer]) -> None:
    recorded, replayed = agents_answers
    assert replayed[1] == recorded[1]
