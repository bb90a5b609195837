# The two commands a newcomer needs: `make demo` and `make test`.
# Both create their virtual environments on first use and reuse them afterwards.

PYTHON ?= python3

# Python's bytecode caches go under .cache/pycache, and are written even where PYTHONDONTWRITEBYTECODE
# is set. A test run starts many interpreters (kernels, pytest sessions, the CLI); without the caches
# each one compiles the SDKs' modules from source again, and pytest rewrites its plugins' modules again
# (with them, the suite takes half the CPU time).
unexport PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX := $(CURDIR)/.cache/pycache
VENV := .venv
VENV2 := .venv-openai2
VENVLOW := .venv-lowest
VENV_SDK := .venv-sdk-suite
VENV_SPARK := .venv-spark
VENV_FW := .venv-frameworks
BIN := $(VENV)/bin
BIN2 := $(VENV2)/bin
BINLOW := $(VENVLOW)/bin
PIP_FLAGS := --disable-pip-version-check --quiet

# The venvs are built with uv, which installs many times faster than pip and caches what it
# downloaded. uv itself comes from pip, once, into a venv of its own under .cache/.
UV_HOME := .cache/uv
UV := $(UV_HOME)/bin/uv
# A venv (with pip in it, as `python -m venv` makes) for $(PYTHON) exactly, not any other python.
UV_VENV = $(UV) venv --quiet --allow-existing --seed --python "$$($(PYTHON) -c 'import sys; print(sys.executable)')"
UV_PIP := $(UV) pip install --quiet

# The official openai npm package, which tests/frontends/test_serve.py runs with Node against
# `notebook-recorder serve` (6.x: the newest major that runs on Node 20). Installed once under .cache/npm.
NODE_OPENAI := 6.30.1
NODE_OPENAI_PKG := .cache/npm/node_modules/openai/package.json

.PHONY: demo test venvs checks summary lint typecheck unit unit-openai2 test-lowest notebooks docs sdk-suite sdk-suite-openai sdk-suite-anthropic sdk-suite-anthropic-live sdk-suite-anthropic-record spark frameworks bench clean

$(UV):
	$(PYTHON) -m venv $(UV_HOME)
	$(UV_HOME)/bin/python -m pip install $(PIP_FLAGS) uv

# Set-up: the project with its runtime dependencies (newest openai 3.x).
$(BIN)/.installed: pyproject.toml | $(UV)
	$(UV_VENV) $(VENV)
	$(UV_PIP) --python $(BIN)/python -e .
	touch $@

# Set-up for tests: the same venv plus the `dev` and `docs` dependency groups (PEP 735,
# pyproject.toml's [dependency-groups]: the test tools and the docs site's; not published as extras).
$(BIN)/.installed-dev: $(BIN)/.installed
	$(UV_PIP) --python $(BIN)/python --group dev --group docs -e .
	touch $@

# A second venv pinned to the newest openai 2.x (built on httpx, where 3.x uses httpx2).
$(BIN2)/.installed-dev: pyproject.toml | $(UV)
	$(UV_VENV) $(VENV2)
	$(UV_PIP) --python $(BIN2)/python --group dev -e . 'openai>=2,<3'
	touch $@

# A third venv with the lowest versions pyproject.toml allows for every runtime dependency
# (uv's --resolution lowest-direct), so the declared floors are tested, not hoped for.
$(BINLOW)/.installed-dev: pyproject.toml | $(UV)
	$(UV_VENV) $(VENVLOW)
	$(UV_PIP) --python $(BINLOW)/python --resolution lowest-direct -e .
	$(UV_PIP) --python $(BINLOW)/python pytest pytest-asyncio pytest-timeout hypothesis
	touch $@

# The openai and anthropic SDKs' own tests need their own dev dependencies: a venv with the same
# openai and anthropic as .venv.
$(VENV_SDK)/bin/.installed-sdk-suite: pyproject.toml $(BIN)/.installed-dev
	$(UV_VENV) $(VENV_SDK)
	$(UV_PIP) --python $(VENV_SDK)/bin/python --group sdk-suite -e . \
		"openai==$$($(BIN)/python -c 'import openai; print(openai.__version__)')" \
		"anthropic==$$($(BIN)/python -c 'import anthropic; print(anthropic.__version__)')"
	touch $@

# PySpark (local mode; Java 17 from the machine) for the Spark example over an exported dataset.
$(VENV_SPARK)/bin/.installed-spark: pyproject.toml | $(UV)
	$(UV_VENV) $(VENV_SPARK)
	$(UV_PIP) --python $(VENV_SPARK)/bin/python -e '.[spark]' pytest pytest-timeout pytest-asyncio
	touch $@

demo: $(BIN)/.installed
	$(BIN)/notebook-recorder run notebooks/01_quickstart.ipynb --mode replay --check

# The venvs are built first, two at a time. Then the parts run two at a time, the longest first
# (-j2; -k: every part runs and reports, and any failure fails `make test`). Each part writes its
# output to .cache/logs/PART.log and prints a line when it starts and when it ends (with the
# log's last lines when it failed). Last, `summary` names the parts that failed, with their
# FAILED and ERROR lines. Both suites use two xdist workers that steal queued tests from each
# other (--dist worksteal), so that a core is idle only at the very end.
LOGS := .cache/logs
test:
	@$(MAKE) --no-print-directory -j2 venvs
	@rm -rf $(LOGS) && mkdir -p $(LOGS)
	@$(MAKE) --no-print-directory -k -j2 checks; status=$$?; \
		$(MAKE) --no-print-directory summary; exit $$status

venvs: $(BIN)/.installed-dev $(BIN2)/.installed-dev $(BINLOW)/.installed-dev $(VENV_SDK)/bin/.installed-sdk-suite \
	$(VENV_SPARK)/bin/.installed-spark $(VENV_FW)/bin/.installed-frameworks $(NODE_OPENAI_PKG)

$(NODE_OPENAI_PKG):
	mkdir -p .cache/npm
	test -f .cache/npm/package.json || echo '{"private": true}' > .cache/npm/package.json
	cd .cache/npm && npm install --no-audit --no-fund --loglevel=error openai@$(NODE_OPENAI)

# The parts, longest first: make starts the next one in this list whenever one ends, so the two
# cores stay busy and the short ones fill in at the end. The anthropic SDK's suite is two parts, its
# record run (the longest part: a file written per call, ~28,000 of them) and its live run; `unit`
# runs two xdist workers, which take whatever CPU the part beside it leaves.
CHECKS := sdk-suite-anthropic-record unit sdk-suite-anthropic-live unit-openai2 sdk-suite-openai test-lowest \
	spark notebooks frameworks typecheck docs lint
checks: $(addprefix logged-,$(CHECKS))

# One part of `make test`, its output in $(LOGS)/PART.log.
logged-%:
	@mkdir -p $(LOGS) && rm -f $(LOGS)/$*.failed
	@echo "[$$(date +%T)] $* started (output: $(LOGS)/$*.log)"
	@start=$$(date +%s); \
	if $(MAKE) --no-print-directory $* > $(LOGS)/$*.log 2>&1; then \
		echo "[$$(date +%T)] $* passed ($$(( $$(date +%s) - start )) s)"; \
	else \
		touch $(LOGS)/$*.failed; \
		echo "[$$(date +%T)] $* FAILED ($$(( $$(date +%s) - start )) s); the end of $(LOGS)/$*.log:"; \
		tail -n 25 $(LOGS)/$*.log | sed 's/^/    /'; \
		exit 1; \
	fi

# What failed, last: each failed part's FAILED/ERROR lines (pytest's short summary, the notebooks',
# mypy's and ruff's errors, mkdocs' warnings), or its last lines when it has none.
SUMMARY_LINES := ^(FAILED|ERROR)|[Ee]rror:|^WARNING|^[^ :]+:[0-9]+:[0-9]+: [A-Z]+[0-9]+|^Would reformat|^=+ .*(failed|error)
summary:
	@failed=$$(for f in $(LOGS)/*.failed; do [ -e "$$f" ] && basename "$$f" .failed; done); \
	if [ -z "$$failed" ]; then echo "make test: every part passed: $(CHECKS)"; exit 0; fi; \
	for part in $$failed; do \
		echo ""; echo "==== $$part FAILED (the whole output: $(LOGS)/$$part.log)"; \
		if grep -qE '$(SUMMARY_LINES)' $(LOGS)/$$part.log; then \
			grep -E '$(SUMMARY_LINES)' $(LOGS)/$$part.log | head -n 60 | sed 's/^/    /'; \
		else tail -n 15 $(LOGS)/$$part.log | sed 's/^/    /'; fi; \
	done; \
	echo ""; echo "make test: FAILED:" $$failed

lint: $(BIN)/.installed-dev
	$(BIN)/ruff check notebook_recorder tests benchmarks
	$(BIN)/ruff format --check notebook_recorder tests benchmarks

typecheck: $(BIN)/.installed-dev
	$(BIN)/mypy

unit: $(BIN)/.installed-dev $(NODE_OPENAI_PKG)
	$(BIN)/python -c "import openai; print('openai', openai.__version__)"
	$(BIN)/python -m pytest -n 2 --dist worksteal

# The suite on openai 2.x: every test that drives the SDK in this process, where 2.x and 3.x differ
# (httpx and httpx2, the SDK's internals), and the end-to-end kernel and pytest-session tests.
# .venv-openai2 differs from .venv in openai alone, so what does not use openai would prove nothing
# twice. Left out, as they run in `unit`: the tests marked `frontend`, which start kernels, pytest
# sessions or the CLI to test our front ends' own behaviour (run and --check, the plugin's options,
# the README's blocks); the modules marked `no_openai` (tests/conftest.py's NO_OPENAI: the store,
# the anthropic hooks, the layering; checked at collection not to use openai); and tests/analysis/,
# which exercises pandas, not openai (it runs on 2.x in `test-lowest`).
unit-openai2: $(BIN2)/.installed-dev
	$(BIN2)/python -c "import openai; print('openai', openai.__version__)"
	$(BIN2)/python -m pytest -n 2 --dist worksteal -m "not frontend and not no_openai" --ignore=tests/analysis

# The tests that exercise each runtime dependency (openai, pandas, IPython, ipykernel, nbclient,
# orjson, tqdm), on the declared minimum versions; optional extras are absent there, so their
# tests skip. The rest of the suite does not depend on those versions and runs in `unit`.
LOWEST_TESTS := tests/analysis/test_analysis.py tests/hooks/test_openai_record_replay.py \
	tests/frontends/test_magics.py tests/frontends/test_kernel.py tests/core/test_codec.py
test-lowest: $(BINLOW)/.installed-dev
	$(BINLOW)/python -c "import openai, pandas, IPython; print('lowest: openai', openai.__version__, 'pandas', pandas.__version__, 'ipython', IPython.__version__)"
	$(BINLOW)/python -m pytest -q -p no:cacheprovider $(LOWEST_TESTS)

# Every tutorial notebook replays offline, with its stored outputs checked.
notebooks: $(BIN)/.installed-dev
	env -u OPENAI_API_KEY $(BIN)/notebook-recorder run notebooks/*.ipynb --mode replay --check

# The PySpark example computes the per-model token totals that pandas and DuckDB compute, from an
# exported dataset (Spark in local mode, on loopback only). NR_REQUIRE_SPARK: a missing pyspark fails.
spark: $(VENV_SPARK)/bin/.installed-spark
	NR_REQUIRE_SPARK=1 $(VENV_SPARK)/bin/python -m pytest -q -p no:cacheprovider tests/analysis/test_spark.py

# The documentation site: the README's sections as pages, the tutorials and the API reference from
# the docstrings (mkdocs.yml, docs/). --strict: a broken link or reference fails the build. Nothing
# is fetched from the network (no web fonts, no external inventories). Open .cache/site/index.html.
docs: $(BIN)/.installed-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir $(CURDIR)/.cache/site

# The openai and anthropic sdists' own tests pass with the hook in live and record mode as they
# do without it (each SDK's two runs side by side). `make test` runs the anthropic suite's live and
# record runs as two parts of their own (`--modes`), each then rerunning without the hook what did
# not pass with it, so that make can schedule them on whichever core is free.
sdk-suite: sdk-suite-openai sdk-suite-anthropic

sdk-suite-openai sdk-suite-anthropic: $(VENV_SDK)/bin/.installed-sdk-suite
	$(VENV_SDK)/bin/python tests/sdk_suite/run.py --sdk $(@:sdk-suite-%=%)

sdk-suite-anthropic-live sdk-suite-anthropic-record: $(VENV_SDK)/bin/.installed-sdk-suite
	$(VENV_SDK)/bin/python tests/sdk_suite/run.py --sdk anthropic --modes $(@:sdk-suite-anthropic-%=%)

# langchain-openai, litellm and openai-agents record and replay like the SDK, in a venv of their own
# (.venv-frameworks) with .venv's openai (a framework may otherwise downgrade it), so that .venv,
# where `unit` runs, does not load their pytest plugins. NR_REQUIRE_FRAMEWORKS: a missing one fails.
$(VENV_FW)/bin/.installed-frameworks: pyproject.toml $(BIN)/.installed-dev
	$(UV_VENV) $(VENV_FW)
	$(UV_PIP) --python $(VENV_FW)/bin/python --group dev --group frameworks -e . \
		"openai==$$($(BIN)/python -c 'import openai; print(openai.__version__)')"
	touch $@

frameworks: $(VENV_FW)/bin/.installed-frameworks
	NR_REQUIRE_FRAMEWORKS=1 $(VENV_FW)/bin/python -m pytest -q -p no:cacheprovider tests/hooks/test_frameworks.py

# The openai 2.x venv lets bench_replay measure vcrpy, which cannot hook openai 3.x's httpx2.
bench: $(BIN)/.installed-dev $(BIN2)/.installed-dev
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) $(VENV2) $(VENVLOW) $(VENV_SDK) $(VENV_SPARK) $(VENV_FW) .cache .mypy_cache .pytest_cache .ruff_cache
