# One dev entry point. `make demo` and `make test` do all set-up on a fresh Debian machine (as root: the Docker
# engine too). Variables can be overridden: `make demo WORKERS=1`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HARNESS := $(VENV)/bin/harness
# Every task under task_specs/ is judged by `make demo`; its example submissions are examples/submissions/<id>/.
TASKS := $(patsubst %/task.yaml,%,$(sort $(wildcard task_specs/*/task.yaml)))
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

# The whole hackathon: per task prepare, build (tasks with the same packages share the image's layers), judge the
# examples, export the leaderboard, write the judges' report; then one overview of every task.
demo: setup
	@set -e; for task in $(TASKS); do \
	  id=$$(basename $$task); echo "== $$id"; \
	  $(HARNESS) task prepare $$task; \
	  $(HARNESS) image build $$task; \
	  $(HARNESS) run $$task examples/submissions/$$id --home $(DEMO_HOME) --workers $(WORKERS); \
	  $(HARNESS) leaderboard $$task --home $(DEMO_HOME) --split public --output $(DEMO_HOME)/leaderboard-$$id-public.md --format markdown; \
	  $(HARNESS) leaderboard $$task --home $(DEMO_HOME) --split public; \
	  $(HARNESS) report $$task --home $(DEMO_HOME); \
	done
	$(HARNESS) overview task_specs --home $(DEMO_HOME)

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
	$(PY) benchmarks/bench_throughput.py
	$(PY) benchmarks/bench_validation.py
	$(PY) benchmarks/bench_similar.py
	$(PY) benchmarks/bench_rescore.py
	$(PY) benchmarks/bench_intervals.py

clean:
	rm -rf .harness reports build *.egg-info
