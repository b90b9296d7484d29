# tuixp: every entry point a person or CI needs. `make test` and `make demo` work on a fresh machine.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STORE ?= demo/tuixp.duckdb

.PHONY: install test check lint format demo screenshots bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# What CI gates on (`make test` runs it first): formatting, lint, types, the import contracts.
lint: install
	$(BIN)/ruff format --check tuixp tests bench
	$(BIN)/ruff check tuixp tests bench
	$(BIN)/mypy tuixp
	$(BIN)/lint-imports

test: install lint
	$(BIN)/python -m pytest -q -p no:cacheprovider --snapshot-warn-unused $(PYTEST_ARGS)

# The same gate as CI, under the name Harlequin and its peers use.
check: test

format: install
	$(BIN)/ruff format tuixp tests bench
	$(BIN)/ruff check --fix tuixp tests bench

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
