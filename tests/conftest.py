"""Shared pytest fixtures.

``wire_server`` is a real local HTTP server speaking OpenAI's wire format (see
``tests/wire_server.py``); ``client`` / ``async_client`` are real openai SDK clients pointed at it.
Append further fixtures below.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import openai
import pytest
from anthropic_wire_server import TEST_API_KEY as ANTHROPIC_TEST_KEY, AnthropicWireServer
from ca_bundle import one_certificate_bundle, remember_machine_ca
from wire_server import TEST_API_KEY, WireServer

import notebook_recorder as nr
from notebook_recorder.core import _config
from notebook_recorder.core._store import forget_indexes
from notebook_recorder.hooks import _placeholder

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell


# pytester's in-process runs (`runpytest_inprocess`) drop every module first imported during the
# run, and the next import makes a second copy. httpx and httpx2 import httpcore/httpcore2 lazily,
# when their first transport is built, and map its exceptions through a table loaded once: with a
# second copy, a refused connection escaped as a raw httpcore2.ConnectError instead of the SDK's
# APIConnectionError. Our own lazily imported modules (hooks, front ends, analysis) likewise got
# second copies whose objects were not the ones `notebook_recorder` exports. Importing them here
# puts them in every snapshot, as a notebook's long-lived process would have them.
def _import_up_front() -> None:
    import pkgutil

    for name in ("httpcore", "httpcore2"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    for module in pkgutil.walk_packages(nr.__path__, f"{nr.__name__}."):
        if module.name.rpartition(".")[2] in ("__main__", "cli"):
            continue  # entry points, not modules to import
        with contextlib.suppress(ImportError):  # an optional extra that is not installed
            importlib.import_module(module.name)


_import_up_front()


def pytest_collection_finish(session: pytest.Session) -> None:
    """What exists once the tests are collected (the SDKs, pandas, IPython, every test module) is
    moved out of the garbage collector's sight (``gc.freeze``): it lives to the end of the session
    anyway. A full collection then looks at what the tests made, not at the ~450,000 objects
    imported: the tests that call ``gc.collect()`` to finalize abandoned streams (each test of
    ``tests/hooks/test_anthropic.py`` does) took about 0.5 s per call before."""
    import gc

    gc.collect()
    gc.freeze()


# The releases the hooks are tested on. `make test` installs the newest ones the declared ranges
# allow, so a new SDK release that breaks a guarantee fails here first: each failure names them.
_WATCHED_RELEASES = ("openai", "anthropic", "httpx", "httpx2", "websockets")


def _releases() -> str:
    import importlib.metadata

    found = []
    for name in _WATCHED_RELEASES:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    return ", ".join(found)


def pytest_report_header() -> str:
    return f"notebook-recorder tested on: {_releases()}"


# The test modules that never touch the openai SDK: the core's store, index and modes, the anthropic
# SDK's own hooks, the layering and public-API checks. They get the `no_openai` marker, and
# `make unit-openai2` (the suite again on openai 2.x, where only openai differs from `.venv`)
# leaves them out: they run once, in `unit`. A module listed here that uses openai after all (imports
# it, or asks for the `client`/`async_client` fixtures) stops the collection.
NO_OPENAI = frozenset(
    {
        "tests/core/test_hooks_registry.py",
        "tests/core/test_index_cache.py",
        "tests/core/test_modes.py",
        "tests/core/test_nearest_search.py",
        "tests/core/test_scale_store.py",
        "tests/core/test_store.py",
        "tests/hooks/test_anthropic_clients.py",
        "tests/hooks/test_anthropic_smoke.py",
        "tests/hooks/test_anthropic_transparency.py",
        "tests/test_anthropic_wire_server.py",
        "tests/test_layers.py",
        "tests/test_make_test.py",
        "tests/test_public_api.py",
        "tests/test_session_cache_dir.py",
    }
)
_OPENAI_FIXTURES = frozenset({"client", "async_client"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(__file__).resolve().parent.parent
    for item in items:
        path = item.path.resolve().relative_to(root).as_posix() if item.path.is_relative_to(root) else ""
        if path not in NO_OPENAI:
            continue
        module = getattr(item, "module", None)
        uses = _OPENAI_FIXTURES & set(getattr(item, "fixturenames", ()))
        if uses or getattr(getattr(module, "openai", None), "__name__", None) == "openai":
            raise pytest.UsageError(f"{item.nodeid} is listed in NO_OPENAI (tests/conftest.py) but uses openai")
        item.add_marker(pytest.mark.no_openai)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed:
        report.sections.append(("SDK releases", f"this failure happened on {_releases()}"))
    return report


_ENV_TO_CLEAR = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "APIREC_MODE",
    "APIREC_DIR",
    "APIREC_DIR_OUT",
    "APIREC_PACE",
)


@pytest.fixture(autouse=True, scope="session")
def _private_user_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The library's cache of large folders (``APIREC_CACHE_DIR``, see ``core/_user_cache.py``)
    is a temporary directory for the whole session, in this process and in every process a test
    starts: the suite never writes to the user's ``~/.cache``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("APIREC_CACHE_DIR", str(tmp_path_factory.mktemp("user-cache")))
        yield


@pytest.fixture(autouse=True, scope="session")
def _small_ca_bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """``SSL_CERT_FILE`` is a bundle of one certificate for the whole session, in this process and
    in every process a test starts: each SDK client loads it when it is built, and the machine's
    whole bundle cost 15 to 30 ms of CPU per client (see ``tests/ca_bundle.py``). No test connects
    over TLS but ``test_serve_proxy.py``'s, which trust a certificate of their own, and
    ``test_install.py``'s ``uv build``, which gets the machine's settings back."""
    remember_machine_ca()  # for the tests whose tools reach the real network (tests/test_install.py)
    bundle = one_certificate_bundle(tmp_path_factory.mktemp("ca") / "one.pem")
    with pytest.MonkeyPatch.context() as patch:
        if bundle is not None:
            patch.setenv("SSL_CERT_FILE", str(bundle))
            patch.delenv("SSL_CERT_DIR", raising=False)
        yield


@pytest.fixture(autouse=True)
def _fresh_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts alike and cleans up after itself.

    No real API key, base URL or recorder mode/dir from the shell; no replay key fallback from this
    session's own plugin; no recorder active, an empty call log, and no directory index or project
    configuration remembered from an earlier test.
    Afterwards recording is stopped (the SDK hook removed) whatever the test did.
    """
    for name in _ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    # This suite is not a user's replaying session: the fallback its own plugin turned on at
    # configure (a keyless client gets the placeholder) is off in each test, as without the plugin.
    monkeypatch.setattr(_placeholder, "_sessions", 0)
    forget_indexes()
    _config.clear_cache()
    nr.clear_calls()
    yield
    nr.stop()
    nr.clear_calls()


@pytest.fixture
def wire_server() -> Iterator[WireServer]:
    """A started WireServer, stopped after the test."""
    with WireServer() as server:
        yield server


@pytest.fixture
def anthropic_server() -> Iterator[AnthropicWireServer]:
    """A started AnthropicWireServer (the Messages API on 127.0.0.1), stopped after the test."""
    with AnthropicWireServer() as server:
        yield server


@pytest.fixture
def claude(anthropic_server: AnthropicWireServer) -> Iterator[Any]:
    """A sync anthropic client talking to ``anthropic_server`` (no retries); skips without anthropic."""
    anthropic = pytest.importorskip("anthropic")
    with anthropic.Anthropic(base_url=anthropic_server.base_url, api_key=ANTHROPIC_TEST_KEY, max_retries=0) as c:
        yield c


@pytest.fixture
async def aclaude(anthropic_server: AnthropicWireServer) -> AsyncIterator[Any]:
    """An async anthropic client talking to ``anthropic_server`` (no retries); skips without anthropic."""
    anthropic = pytest.importorskip("anthropic")
    async with anthropic.AsyncAnthropic(
        base_url=anthropic_server.base_url, api_key=ANTHROPIC_TEST_KEY, max_retries=0
    ) as c:
        yield c


@pytest.fixture
def client(wire_server: WireServer) -> Iterator[openai.OpenAI]:
    """A sync openai client talking to ``wire_server`` (no retries)."""
    with openai.OpenAI(base_url=wire_server.base_url, api_key=TEST_API_KEY, max_retries=0) as sync_client:
        yield sync_client


@pytest.fixture
async def async_client(wire_server: WireServer) -> AsyncIterator[openai.AsyncOpenAI]:
    """An async openai client talking to ``wire_server`` (no retries)."""
    async with openai.AsyncOpenAI(base_url=wire_server.base_url, api_key=TEST_API_KEY, max_retries=0) as aclient:
        yield aclient


@pytest.fixture
def ip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    """IPython's global test shell with the extension loaded, in an empty working directory and
    with no notebook named by the environment; the extension is unloaded afterwards."""
    from IPython.testing import globalipapp

    from notebook_recorder.frontends._discovery import ENV_NOTEBOOK

    monkeypatch.chdir(tmp_path)
    for name in (ENV_NOTEBOOK, "JPY_SESSION_NAME"):
        monkeypatch.delenv(name, raising=False)
    globalipapp.start_ipython()
    shell = globalipapp.get_ipython()
    shell.user_ns.pop("__vsc_ipynb_file__", None)
    shell.run_line_magic("load_ext", "notebook_recorder")
    nr.clear_calls()
    try:
        yield shell
    finally:
        shell.run_line_magic("unload_ext", "notebook_recorder")
