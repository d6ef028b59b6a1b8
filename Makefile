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

DYNAMODB_PORT ?= 8001

.PHONY: run test bench install install-dev servers image dynamodb-local dynamodb-tables clean

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

# A local DynamoDB-compatible server (Dynoxide, in memory) on DYNAMODB_PORT; Ctrl-C stops it.
dynamodb-local: servers
	.servers/bin/dynoxide serve --host 127.0.0.1 --port $(DYNAMODB_PORT)

# Creates the tables (TTL enabled) where DYNAMODB_ENDPOINT_URL points, local Dynoxide by default.
dynamodb-tables: install
	DYNAMODB_ENDPOINT_URL=$${DYNAMODB_ENDPOINT_URL-http://127.0.0.1:$(DYNAMODB_PORT)} $(BIN)/python scripts/create_dynamodb_tables.py

test: install-dev servers
	$(BIN)/python -m pytest

image:
	docker build -t $(IMAGE) .

bench: install-dev servers
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache .servers
