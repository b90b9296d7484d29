# tuixp: every entry point a person or CI needs. `make test` and `make demo` work on a fresh machine.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STORE ?= demo/tuixp.duckdb

.PHONY: install test check lint demo screenshots bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check tuixp tests bench

test: install lint
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

check: test
	$(BIN)/mypy tuixp

demo: install
	$(BIN)/tuixp demo --store $(DEMO_STORE)
	$(BIN)/tuixp --store $(DEMO_STORE)

screenshots: install
	$(BIN)/python -m tuixp.tui.screenshots screenshots

bench: install
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) demo .pytest_cache .ruff_cache .mypy_cache
