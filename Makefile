# One dev entry point. `make demo` and `make test` do all set-up on a fresh Debian machine (as root: the Docker
# engine too). Variables can be overridden: `make demo WORKERS=1`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HARNESS := $(VENV)/bin/harness
TASK := task_specs/nyc-flight-delays
SUBMISSIONS := examples/submissions/nyc-flight-delays
DEMO_HOME := .harness/demo
WORKERS ?= $(shell nproc)
PYTEST_ARGS ?=

.PHONY: setup venv docker test-tools demo test test-unit lint format bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[data,dev,lab,distributed]'
	touch $@

docker:
	bash scripts/ensure-docker.sh

test-tools:
	bash scripts/ensure-test-tools.sh

setup: venv docker

demo: setup
	$(HARNESS) task prepare $(TASK)
	$(HARNESS) image build $(TASK)
	$(HARNESS) run $(TASK) $(SUBMISSIONS) --home $(DEMO_HOME) --workers $(WORKERS)
	$(HARNESS) leaderboard nyc-flight-delays --home $(DEMO_HOME) --split public --output $(DEMO_HOME)/leaderboard-public.md --format markdown
	$(HARNESS) leaderboard nyc-flight-delays --home $(DEMO_HOME) --split public
	$(HARNESS) report nyc-flight-delays --home $(DEMO_HOME)

test: setup test-tools
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: venv
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check harness tests evaluators task_specs benchmarks examples
	$(VENV)/bin/ruff format --check harness tests evaluators task_specs benchmarks examples
	$(VENV)/bin/mypy

format: venv
	$(VENV)/bin/ruff format harness tests evaluators task_specs benchmarks
	$(VENV)/bin/ruff check --fix harness tests evaluators task_specs benchmarks

bench: setup
	$(PY) benchmarks/bench_sandbox.py
	$(PY) benchmarks/bench_run.py
	$(PY) benchmarks/bench_validation.py

clean:
	rm -rf .harness reports build *.egg-info
