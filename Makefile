# Two entry points (see README): `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch 2.13.0 CPU is pinned in pyproject.toml; pip takes it from local wheels when present.
PIP    := $(BIN)/python -m pip install --disable-pip-version-check -q

.PHONY: run test lint benchmarks speed clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) torch==2.13.0
	$(PIP) -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(PIP) -e '.[test]'
	touch $@

# The main job: the tutorial from the top. DATA=folder and QUICK=1 are optional.
run: $(VENV)/.installed
	$(BIN)/pneumocxr run $(if $(DATA),--data $(DATA)) $(if $(QUICK),--quick)

# The whole test suite (what .ci/run calls).
test: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

# Rerun the measurements in docs/BENCHMARKS.md (about 2 hours on 2 CPU cores).
benchmarks: $(VENV)/.installed
	$(BIN)/python benchmarks/run.py all

# Only the speed figures (pneumocxr bench, predict on 2,000 files, cold predict): 6 minutes.
speed: $(VENV)/.installed
	$(BIN)/python benchmarks/run.py speed

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build src/*.egg-info
