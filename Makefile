# The two commands a newcomer needs: `make demo` and `make test`. Each sets up what is missing.
SHELL := /bin/bash
BIN := .venv/bin
PYTEST_ARGS ?=

.PHONY: setup demo test lint bench up down clean

setup:
	@bash infra/local/setup.sh

up: setup
	@$(BIN)/aios dev up

down:
	@$(BIN)/aios dev down

demo: up
	@bash infra/local/demo.sh

test: setup
	$(BIN)/pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: up
	$(BIN)/python -m bench

clean: down
	rm -rf .aios
