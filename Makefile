# `make demo`, `make test` and `make real` (the monthly experiment on the real files in
# ../shared/data/real). Each creates .venv if missing and installs the project.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo real test lint install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/fluxbridge demo --out runs/demo

REAL_DATA ?= ../shared/data/real

real: $(STAMP)
	$(BIN)/fluxbridge run examples/real-monthly/experiment.yaml --data-dir $(REAL_DATA)

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

clean:
	rm -rf runs build .pytest_cache
