"""Run an SDK's own tests with and without our hook, and compare (``make sdk-suite``).

Record mode must be transparent: whatever the SDK's tests see without notebook-recorder, they must
see with the hook installed in ``live`` mode and in ``record`` mode. The openai and anthropic
sdists on PyPI ship their test suites, so this script, for ``--sdk openai`` (the default) or
``--sdk anthropic``:

1. downloads the sdist of the installed SDK version (``pip download``) into ``.cache/sdk-suite/``
   and extracts everything but its sources (``tests/``, ``pyproject.toml`` with its pytest
   settings, where warnings are errors, and the docs some tests read);
2. starts a loopback stand-in for the Prism mock server (``prism_standin.py``) for the generated
   resource tests it selects (openai: ``tests/api_resources/chat``; anthropic: messages,
   ``count_tokens`` and models); the other selected tests mock the transport (openai's vendored
   respx2, respx on httpx2's alias for anthropic);
3. runs the selection (:class:`Suite`) twice, at the same time, with the ``nr_sdk_hook`` plugin:
   ``live`` and ``record`` (``notebook_recorder.start`` for the whole session, recording into a
   temporary directory); ``deselect_<sdk>.txt`` lists the tests that cannot run here, each with
   its reason. Every run (``none`` too) gets ``SSL_CERT_FILE``, a CA bundle of one certificate:
   each client the suite builds loads it, and the machine's whole bundle took more than half the
   anthropic suite's CPU time (``tests/ca_bundle.py``); no test connects over TLS;
4. starts a run again, once, when its interpreter was killed by a signal (a segmentation fault:
   CPython 3.11's ``ContextVar.set``, called by OpenTelemetry in anthropic 2.17's eager tool
   runner's test, crashed once in the six runs of the suite of 2026-12-07's three fresh-clone
   ``make test``), printing the crash and keeping its log (``NAME.crash.log``); a second crash
   fails it;
5. reruns, once and in the same mode, the tests that failed (the suite has socket tests with
   few-second timeouts that a loaded machine can miss; a test that passes then is listed as such);
6. runs the baseline, ``none`` (no hook), on the tests that did not pass in every hooked mode (a
   test that passes with the hook needs no baseline: it cannot be lost), or on the whole selection
   when ``--modes`` names ``none``;
7. prints each run's counts and every test that passes without the hook but not with it, and exits
   1 if there is one, if a test fails without the hook, or if the deselect file names a test that
   no longer exists.

The SDKs' test dependencies are the ``sdk-suite`` extra; ``make sdk-suite`` installs them in
``.venv-sdk-suite`` and runs this script with that venv's python, once per SDK.  Options:
``--sdk anthropic``, ``--modes record`` to run fewer variants (``--modes none,live,record`` for a
full baseline run too), ``--jobs 1`` to run them one after the other, and ``-- ARGS`` for pytest
(``-- -k stream``). Each set of modes has its own folder of logs and results,
``.cache/sdk-suite/runs/<sdk>/<modes>/`` (``live-record`` by default): ``make test`` runs
``--modes live`` and ``--modes record`` of the anthropic suite as two parts, at the same time.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CACHE = REPO / ".cache" / "sdk-suite"
MODES = ("none", "live", "record")
CA_BUNDLE = "one-ca.pem"
HOOKED = ("live", "record")  # the default; the baseline ("none") runs only where it is needed


@dataclass(frozen=True)
class Suite:
    """One SDK's test suite: what is run, and how."""

    package: str
    selection: tuple[str, ...]
    """Paths under the sdist to run; a directory ending in ``/*`` stands for its entries."""
    left_out: tuple[str, ...] = ()
    """Entries of a ``/*`` directory left out (tests that need the SDK's real mock server)."""
    pytest_args: tuple[str, ...] = ()
    """Plugins its pytest settings load (they are dropped with its ``addopts``)."""
    env_prefixes: tuple[str, ...] = ()
    """Environment variables dropped for its runs (settings of this machine)."""

    @property
    def deselect_file(self) -> Path:
        return HERE / f"deselect_{self.package}.txt"

    def paths(self, root: Path) -> list[str]:
        """The selection as paths that exist in the extracted sdist."""
        found: list[str] = []
        for path in self.selection:
            if path.endswith("/*"):
                folder = root / path[:-2]
                entries = sorted(p for p in folder.iterdir() if p.is_dir() or p.name.startswith("test_"))
                found += [str(p.relative_to(root)) for p in entries if str(p.relative_to(root)) not in self.left_out]
            elif (root / path).exists():
                found.append(path)
        return found


SUITES = {
    "openai": Suite(
        "openai",
        selection=(
            "tests/test_client.py",
            "tests/lib/chat",
            "tests/lib/streaming",
            "tests/lib/responses",
            "tests/api_resources/chat",
        ),
        env_prefixes=("OPENAI_", "AZURE_OPENAI_"),
    ),
    # Every test outside api_resources (those need the SDK's Prism mock server, whose OpenAPI spec
    # the sdist lacks), and the resource tests of messages, count_tokens and models against the
    # stand-in.
    "anthropic": Suite(
        "anthropic",
        selection=("tests/*", "tests/api_resources/test_messages.py", "tests/api_resources/test_models.py"),
        left_out=("tests/api_resources",),
        pytest_args=("-p", "tests._alias_httpx"),
        env_prefixes=("ANTHROPIC_", "AWS_", "GOOGLE_", "CLOUDSDK_", "GCLOUD_"),
    ),
}
Results = dict[str, Any]  # what nr_sdk_hook writes: {"tests": {id: [outcome, message]}, "unmatched_deselects": [...]}

sys.path[:0] = [str(HERE), str(HERE.parent)]
from ca_bundle import one_certificate_bundle  # noqa: E402
from prism_standin import PrismStandIn  # noqa: E402


@contextlib.contextmanager
def cache_lock() -> Iterator[None]:
    """Held while an sdist is downloaded and extracted: ``make test`` runs the anthropic suite's
    live and record runs as two parts, which start at the same time."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def sdist_tests(package: str, version: str) -> Path:
    """The extracted sdist of ``package`` ``version`` (all but its sources), downloaded once."""
    root = CACHE / f"{package}-{version}"
    with cache_lock():
        if not (root / "tests").is_dir():
            _download(package, version, root)
    return root


def _download(package: str, version: str, root: Path) -> None:
    """Download the sdist (``pip download``) and extract all but its sources to ``root``."""
    archive = CACHE / f"{package}-{version}.tar.gz"
    if not archive.exists():
        print(f"sdk-suite: downloading the {package} {version} sdist", flush=True)
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
        subprocess.run(
            [*pip, "--no-binary", ":all:", "--no-deps", f"{package}=={version}", "-d", str(CACHE)], check=True
        )
    prefix = f"{package}-{version}/"
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp, tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(prefix) and not m.name.startswith(prefix + "src/")]
        tar.extractall(tmp, members=members, filter="data")
        shutil.rmtree(root, ignore_errors=True)
        os.replace(Path(tmp) / f"{package}-{version}", root)


def start_run(
    suite: Suite, mode: str, name: str, root: Path, base_url: str, out: Path, args: list[str]
) -> subprocess.Popen[bytes]:
    """Start pytest on ``args`` in ``mode``; results go to ``out/NAME.json``, output to ``out/NAME.log``."""
    dropped = (*suite.env_prefixes, "APIREC_", "PYTEST_", "NR_SDK_SUITE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    # Every client the suite builds loads SSL_CERT_FILE: one certificate (written by main()) in every
    # mode, not the machine's ~150, which took more than half the suite's CPU (tests/ca_bundle.py).
    # No test connects over TLS.
    if (out / CA_BUNDLE).is_file():
        env.pop("SSL_CERT_DIR", None)
        env["SSL_CERT_FILE"] = str(out / CA_BUNDLE)
    # The library keeps a large folder's index in the user's cache directory (the anthropic suite
    # records ~27,600 files in one): each run keeps its own, beside its log, never in ~/.cache.
    user_cache = out / f"{name}.user-cache"
    shutil.rmtree(user_cache, ignore_errors=True)
    env.update(
        APIREC_CACHE_DIR=str(user_cache),
        NR_SDK_SUITE_MODE=mode,
        NR_SDK_SUITE_RESULTS=str(out / f"{name}.json"),
        NR_SDK_SUITE_DESELECT=str(suite.deselect_file),
        TEST_API_BASE_URL=base_url,
        PYTHONPATH=os.pathsep.join([str(HERE), str(REPO)]),
    )
    # Our own pytest plugin stays out (it would replay by default, with the key fallback): the hook is
    # installed by nr_sdk_hook, in the one mode of this run.
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:notebook_recorder"]
    command += ["-o", "addopts=", *suite.pytest_args, "-p", "nr_sdk_hook"]
    log = (out / f"{name}.log").open("wb")
    return subprocess.Popen([*command, *args], cwd=root, env=env, stdout=log, stderr=log)


def run_all(
    suite: Suite, runs: dict[str, tuple[str, list[str]]], root: Path, out: Path, jobs: int
) -> dict[str, Results]:
    """Run ``{name: (mode, pytest args)}``, ``jobs`` at a time, against one Prism stand-in."""
    results: dict[str, Results] = {}
    crashed: set[str] = set()
    with PrismStandIn() as standin:
        pending = list(runs)
        running: dict[str, subprocess.Popen[bytes]] = {}
        while pending or running:
            while pending and len(running) < max(1, jobs):
                name = pending.pop(0)
                mode, args = runs[name]
                running[name] = start_run(suite, mode, name, root, standin.base_url, out, args)
            for name, proc in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[name]
                path = out / f"{name}.json"
                if proc.returncode < 0 and name not in crashed:
                    # The interpreter was killed by a signal (a segmentation fault in a C extension
                    # or CPython): said, its log kept, and the run started once more; a second
                    # crash fails it.
                    crashed.add(name)
                    log = out / f"{name}.crash.log"
                    os.replace(out / f"{name}.log", log)
                    print(f"{name}: pytest was killed by signal {-proc.returncode}; running it once more", flush=True)
                    for line in crash_summary(log):
                        print(f"    {line}", flush=True)
                    pending.append(name)
                    continue
                if proc.returncode not in (0, 1) or not path.exists():
                    print(f"{name}: pytest exited {proc.returncode} (not a test failure); see {out / name}.log")
                    continue
                results[name] = json.loads(path.read_text(encoding="utf-8"))
            time.sleep(0.2)
    return results


def crash_summary(log: Path) -> list[str]:
    """What faulthandler wrote of a crash: its first line and the test the crashing thread was
    running (the frames of the thread that crashed, under "Current thread", from a test file)."""
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    fatal = [line[line.index("Fatal Python error") :] for line in lines if "Fatal Python error" in line][:1]
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("Current thread"))
    except StopIteration:
        return [*fatal, f"(see {log})"]
    frames = []
    for line in lines[start + 1 :]:
        if not line.startswith("  File "):
            break
        frames.append(line.strip())
    in_tests = [f for f in frames if "/tests/" in f][:2]
    return [*fatal, *frames[:1], *in_tests, f"(the whole log: {log})"]


def main(argv: list[str] | None = None) -> int:
    """Run the variants, rerun what failed, print the comparison, return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdk", default="openai", choices=sorted(SUITES), help="whose test suite (default openai)")
    parser.add_argument("--modes", default=",".join(HOOKED), help="comma-separated, from: none, live, record")
    parser.add_argument("--jobs", type=int, default=len(HOOKED), help="variants run at the same time (default 2)")
    parser.add_argument("pytest_args", nargs="*", help="after --: extra pytest arguments")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    if bad := [m for m in modes if m not in MODES]:
        parser.error(f"--modes: unknown {', '.join(bad)}; valid: {', '.join(MODES)}")
    full_baseline = "none" in modes
    modes = ["none", *(m for m in modes if m != "none")]  # the baseline the others are compared with
    if len(modes) == 1:
        parser.error("--modes: name live or record too; none alone compares nothing")

    suite = SUITES[args.sdk]
    version = importlib.metadata.version(suite.package)
    root = sdist_tests(suite.package, version)
    first = modes if full_baseline else modes[1:]
    # One folder per set of modes: `make test` runs --modes live and --modes record at the same time.
    out = CACHE / "runs" / suite.package / "-".join(first)
    out.mkdir(parents=True, exist_ok=True)
    one_certificate_bundle(out / CA_BUNDLE)
    runs = ", ".join(modes) if full_baseline else f"{', '.join(modes[1:])} (none: where they do not pass)"
    print(f"sdk-suite: {suite.package} {version} sdist tests, {runs}; logs in {out}", flush=True)
    started = time.monotonic()
    selection = suite.paths(root)
    results = run_all(suite, {mode: (mode, [*selection, *args.pytest_args]) for mode in first}, root, out, args.jobs)
    if len(results) != len(first):
        return 1
    # A test that failed is run once more, alone with the others that failed, in the same mode: the
    # suite has socket tests with few-second timeouts that a loaded machine can miss.
    failed = {mode: sorted(t for t, (o, _) in results[mode]["tests"].items() if o == "failed") for mode in first}
    reruns = {f"{mode}-rerun": (mode, ids) for mode, ids in failed.items() if ids}
    rerun_results = run_all(suite, reruns, root, out, args.jobs)
    flaky: dict[str, list[str]] = {}
    for mode in first:
        again = rerun_results.get(f"{mode}-rerun", {"tests": {}})["tests"]
        flaky[mode] = [t for t in failed[mode] if again.get(t, ["failed"])[0] == "passed"]
        for test in flaky[mode]:
            results[mode]["tests"][test] = again[test]
    if not full_baseline:
        results["none"] = baseline(suite, modes[1:], results, root, out)
        flaky["none"] = []
    print(f"sdk-suite: {time.monotonic() - started:.0f} s", flush=True)
    return compare(suite, modes, results, flaky, check_deselects=not args.pytest_args)


def baseline(suite: Suite, hooked: list[str], results: dict[str, Results], root: Path, out: Path) -> Results:
    """The ``none`` results: run without the hook on the tests that did not pass in every hooked
    mode; a test that passed in all of them counts as passed (it cannot be lost)."""
    tests: dict[str, Any] = {}
    for mode in hooked:
        tests.update(results[mode]["tests"])
    passed = {t for t in tests if all(results[m]["tests"].get(t, ["missing"])[0] == "passed" for m in hooked)}
    rest = sorted(set(tests) - passed)
    base: Results = {"tests": {t: ["passed", ""] for t in passed}, "unmatched_deselects": [], "only": rest}
    if rest:
        print(f"sdk-suite: {len(rest)} tests did not pass with the hook; running them without it", flush=True)
        ran = run_all(suite, {"none": ("none", rest)}, root, out, 1).get("none", {"tests": {}})["tests"]
        base["tests"].update({t: ran.get(t, ["failed", "not run without the hook"]) for t in rest})
    return base


def compare(
    suite: Suite, modes: list[str], results: dict[str, Results], flaky: dict[str, list[str]], check_deselects: bool
) -> int:
    """Print counts and lost tests; 0 when every mode passes what the baseline passes."""
    status = 0
    tests = {mode: results[mode]["tests"] for mode in modes}
    for mode in modes:
        only = results[mode].get("only")  # the baseline ran on these tests alone
        counts = Counter(tests[mode][t][0] for t in (tests[mode] if only is None else only))
        line = ", ".join(f"{counts[k]} {k}" for k in ("passed", "failed", "skipped", "xfailed"))
        if only is not None:
            line += f" (run on the {len(only)} tests that did not pass with the hook)"
        print(f"{mode:>7}: {line}" + (f" ({len(flaky[mode])} passed only when rerun)" if flaky[mode] else ""))
        for test in flaky[mode]:
            print(f"           rerun passed: {test}")
        if check_deselects and results[mode]["unmatched_deselects"]:
            unmatched = results[mode]["unmatched_deselects"]
            print(f"{suite.deselect_file.name} names tests that {mode} did not collect: {unmatched}")
            status = 1
    base = tests["none"]
    base_failed = sorted(t for t, (outcome, _) in base.items() if outcome == "failed")
    if base_failed:
        status = 1
        where = suite.deselect_file.name
        print(f"\n{len(base_failed)} tests fail WITHOUT the hook (fix the environment or add them to {where}):")
        for test in base_failed:
            print(f"  {test}  -- {base[test][1]}")
    for mode in modes[1:]:
        passes = {t for t, (outcome, _) in tests[mode].items() if outcome == "passed"}
        lost = sorted(t for t, (outcome, _) in base.items() if outcome == "passed" and t not in passes)
        if not lost:
            print(f"{mode}: every test that passes without the hook passes")
            continue
        status = 1
        print(f"\n{mode}: {len(lost)} tests pass without the hook but not with it, by message:")
        groups: dict[str, list[str]] = defaultdict(list)
        for test in lost:
            outcome, message = tests[mode].get(test, ["missing", "not run"])
            groups[f"{outcome}: {message}"[:160]].append(test)
        for message, ids in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            print(f"  [{len(ids)}] {message}")
            for test in ids:
                print(f"      {test}")
    return status


if __name__ == "__main__":
    sys.exit(main())
