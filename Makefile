# Developer and CI entry points. `make test` is what CI runs (through .ci/run).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of this release lies on the dev/CI machines' disk; asking pip for any other torch first
# would download a multi-GB CUDA build. Installed before the project so its torch range is already met.
TORCH_VERSION ?= 2.13.0

HOST ?= 127.0.0.1
PORT ?= 8000

# Real servers for the API and worker tests (.ci/services starts them).
TEST_DATABASE_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
export TEST_DATABASE_URL TEST_REDIS_URL
PYTEST_ARGS ?=

COMPOSE := docker compose -f docker/compose.yaml

.PHONY: help venv serve lint format test test-vllm services up down

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

venv: $(VENV)/.installed ## Create .venv and install the project with its dev tools

# The stamp makes a second `make venv` a no-op until pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet 'torch==$(TORCH_VERSION)'
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

serve: venv ## Run the service in embedded mode (SQLite, in-process Redis and worker, real model)
	$(BIN)/judge serve --host $(HOST) --port $(PORT)

lint: venv ## ruff (lint and format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: venv ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint ## Lint, type-check, then the test suite (needs `make services`)
	$(BIN)/pytest -q $(PYTEST_ARGS)

# vLLM pulls its own CUDA torch build, so it gets a venv of its own, never .venv.
VLLM_VENV ?= .venv-vllm

test-vllm: ## vLLM backend tests against the real vllm package (the [vllm] extra, in $(VLLM_VENV)); the engine test needs a GPU
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install --quiet -e '.[vllm,dev]'
	$(VLLM_VENV)/bin/pytest -q tests/engine/test_vllm_backend.py tests/workers/test_handover.py $(PYTEST_ARGS)

services: ## Start the local PostgreSQL and Redis that the tests use, if they are down
	bash .ci/services

up: ## Build and run the whole stack in Docker (see docker/README.md)
	$(COMPOSE) up --build

down: ## Stop the Docker stack (volumes are kept)
	$(COMPOSE) down
