# Two entry points (see README): `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch 2.13.0 CPU is pinned in pyproject.toml; pip takes it from local wheels when present.
PIP    := $(BIN)/python -m pip install --disable-pip-version-check -q

.PHONY: run test lint benchmarks speed clean system-deps lock audit fuzz api-fuzz

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) torch==2.13.0
	$(PIP) -e .
	touch $@

# The test environment installs the versions pinned in requirements.lock (what is audited).
$(VENV)/.installed-test: pyproject.toml requirements.lock $(VENV)/.installed
	$(PIP) -c requirements.lock -e '.[test]'
	touch $@

# The main job: the tutorial from the top. DATA=folder, EXTERNAL=folder and QUICK=1 are optional.
run: $(VENV)/.installed
	$(BIN)/pneumocxr run $(if $(DATA),--data $(DATA)) $(if $(EXTERNAL),--external $(EXTERNAL)) $(if $(QUICK),--quick)

# System packages the tests need (python3-venv, chromium): installed with apt-get, or one
# line saying what to install.
system-deps:
	@tools/system-deps.sh $(PYTHON)

# The whole test suite (what .ci/run calls): lint, the layers of docs/ARCHITECTURE.md
# (import-linter's contracts in pyproject.toml), the dependency audit, pytest in two
# processes (TEST_WORKERS=0: one), a test file per process, one torch thread each (tests/conftest.py),
# CLI commands forked from one warm process per worker (tests/cli_fork.py;
# PNEUMOCXR_TEST_SUBPROCESS=1: a fresh interpreter each): 8.3 minutes of pytest on two cores.
test: system-deps $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/lint-imports --no-cache
	$(BIN)/python tools/audit.py requirements.lock $(if $(AUDIT_REQUIRED),--required)
	$(BIN)/python -m pytest -n $(or $(TEST_WORKERS),2) --dist loadfile --durations=20

# Known vulnerabilities in requirements.lock; AUDIT_REQUIRED=1 also fails when some package
# could not be audited (no network, no data for its release).
audit: $(VENV)/.installed-test
	$(BIN)/python tools/audit.py requirements.lock $(if $(AUDIT_REQUIRED),--required)

# Re-pin requirements.lock to what the test environment holds (after changing dependencies).
lock: $(VENV)/.installed
	$(PIP) -e '.[test]'
	$(BIN)/python -m pip freeze --exclude-editable --disable-pip-version-check | LC_ALL=C sort -f > requirements.lock

# The long fuzzing run of docs/RELIABILITY.md (FUZZ_SECONDS=600 by default).
fuzz: $(VENV)/.installed-test
	$(BIN)/python benchmarks/fuzz.py --seconds $(or $(FUZZ_SECONDS),600) --json benchmarks/results/fuzz.json

# schemathesis against the web API's OpenAPI schema on a real server (API_FUZZ_EXAMPLES=500).
api-fuzz: $(VENV)/.installed-test
	$(BIN)/python benchmarks/api_fuzz.py --examples $(or $(API_FUZZ_EXAMPLES),500) --json benchmarks/results/api_fuzz.json

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools

# Rerun the measurements in docs/BENCHMARKS.md (about 2 hours on 2 CPU cores).
benchmarks: $(VENV)/.installed
	$(BIN)/python benchmarks/run.py all

# Only the speed figures (pneumocxr bench, predict on 2,000 files, cold predict): 6 minutes.
speed: $(VENV)/.installed
	$(BIN)/python benchmarks/run.py speed

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build src/*.egg-info
