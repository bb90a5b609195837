"""pytest plugin for an SDK's own test suite (``-p nr_sdk_hook``; ``run.py`` loads it).

* ``NR_SDK_SUITE_MODE``: ``none`` (no hook), or a recorder mode (``live``, ``record``) that
  ``notebook_recorder.start`` installs for the whole session, recording into a temporary dir.
* ``NR_SDK_SUITE_DESELECT``: the file of tests to deselect (``deselect_<sdk>.txt`` beside this
  file, each test with its reason there; openai's by default).
* ``NR_SDK_SUITE_RESULTS``: a JSON file that gets ``{"tests": {nodeid: [outcome, message]}, ...}``
  for every test, outcome being ``passed``, ``failed``, ``skipped`` or ``xfailed``, and the
  deselect file's ids that matched no collected test (``"unmatched_deselects"``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

DESELECT_FILE = Path(os.environ.get("NR_SDK_SUITE_DESELECT") or Path(__file__).with_name("deselect_openai.txt"))
_RANK = {"passed": 0, "xfailed": 1, "skipped": 2, "failed": 3}


def deselected_ids(path: Path = DESELECT_FILE) -> set[str]:
    """The test ids listed in the deselect file (``#`` starts a comment; an id without ``[...]``
    stands for all its parametrizations)."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return {line for line in lines if line}


class _Plugin:
    def __init__(self, mode: str, results: str | None) -> None:
        self.mode = mode
        self.results_path = results
        self.results: dict[str, tuple[str, str]] = {}
        self.unmatched_deselects: list[str] = []
        self.tmp: str | None = None

    def pytest_configure(self, config: pytest.Config) -> None:
        if self.mode != "none":
            import notebook_recorder as nr

            self.tmp = tempfile.mkdtemp(prefix=f"nr-sdk-suite-{self.mode}-")
            nr.start(self.mode, dir=self.tmp)
            # Record mode says once that websocket (realtime) calls are not recorded, as designed;
            # the SDK's suite turns every warning into an error, so the first such test would fail.
            config.addinivalue_line("filterwarnings", "ignore::notebook_recorder.NotRecordedWarning")

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.mode != "none":
            import notebook_recorder as nr

            nr.stop()
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if self.results_path:
            data = {"tests": self.results, "unmatched_deselects": self.unmatched_deselects}
            Path(self.results_path).write_text(json.dumps(data, indent=0, sort_keys=True), encoding="utf-8")

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        skip = deselected_ids()
        dropped = [item for item in items if {item.nodeid, item.nodeid.split("[", 1)[0]} & skip]
        kept = [item for item in items if item not in dropped]
        matched = {item.nodeid for item in dropped} | {item.nodeid.split("[", 1)[0] for item in dropped}
        self.unmatched_deselects = sorted(skip - matched)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            outcome = "failed"
        elif report.skipped:
            outcome = "xfailed" if hasattr(report, "wasxfail") else "skipped"
        elif report.when == "call":
            outcome = "passed"
        else:
            return
        message = ""
        if report.failed:
            crash = getattr(report.longrepr, "reprcrash", None)
            message = f"{report.when}: {crash.message if crash else str(report.longrepr)[-300:]}"
            message = message.splitlines()[0] if message else message
        previous = self.results.get(report.nodeid)
        if previous is None or _RANK[outcome] > _RANK[previous[0]]:
            self.results[report.nodeid] = (outcome, message)


def pytest_configure(config: pytest.Config) -> None:
    """Register the plugin object with the mode and results file from the environment."""
    mode = os.environ.get("NR_SDK_SUITE_MODE", "none")
    config.pluginmanager.register(_Plugin(mode, os.environ.get("NR_SDK_SUITE_RESULTS")), "nr_sdk_hook_state")
