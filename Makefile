# `make run` serves the API on the embedded store; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 0.0.0.0
PORT ?= 8000
WORKERS ?= 1

.PHONY: run test bench install install-dev servers clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

servers: install-dev
	bash scripts/install_test_servers.sh

run: install
	$(BIN)/uvicorn main:app --host $(HOST) --port $(PORT) --workers $(WORKERS)

test: install-dev servers
	$(BIN)/python -m pytest

bench: install-dev servers
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache .servers
