# Every target creates .venv if missing and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_TEST := $(VENV)/.stamp-test
STAMP_DEV := $(VENV)/.stamp-dev

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP_TEST): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[all,test]'
	touch $@

$(STAMP_DEV): $(STAMP_TEST)
	$(BIN)/pip install --quiet -e '.[all,test,lint]'
	touch $@

demo: $(STAMP_TEST)
	$(BIN)/langchain-runtime run examples/research.yaml --input topic="barn owls"

test: $(STAMP_TEST)
	$(BIN)/python -m pytest

lint: $(STAMP_DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP_TEST)
	$(BIN)/python tests/benchmarks/bench_overhead.py
	$(BIN)/python tests/benchmarks/bench_budget_handler.py
	$(BIN)/python tests/benchmarks/bench_graph.py
	$(BIN)/python tests/benchmarks/bench_server.py
	$(BIN)/python tests/benchmarks/bench_store.py
	$(BIN)/python tests/benchmarks/bench_pgstore.py
	$(BIN)/python tests/benchmarks/bench_sidecar_chain.py
	$(BIN)/python tests/benchmarks/bench_ledger.py
	$(BIN)/python tests/benchmarks/bench_otel.py
	$(BIN)/python tests/benchmarks/bench_replicas.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
