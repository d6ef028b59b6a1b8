# `make run` serves the API on the embedded store; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 0.0.0.0
PORT ?= 8000
WORKERS ?= 1
# Seconds in-flight requests get to finish after SIGTERM (the Dockerfile's CMD uses the same).
GRACEFUL_SECONDS ?= 20
IMAGE ?= feature-store-api

.PHONY: run test install install-dev servers image clean

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
	$(BIN)/uvicorn main:app --host $(HOST) --port $(PORT) --workers $(WORKERS) --timeout-graceful-shutdown $(GRACEFUL_SECONDS)

test: install-dev servers
	$(BIN)/python -m pytest

image:
	docker build -t $(IMAGE) .

clean:
	rm -rf $(VENV) .pytest_cache .servers
