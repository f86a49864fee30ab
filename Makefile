# The two commands a newcomer needs: `make demo` and `make test`. Each sets up what is missing.
SHELL := /bin/bash
BIN := .venv/bin
PYTEST_ARGS ?=

.PHONY: setup demo test test-hermetic test-cluster lint bench up down clean compose-check replay-record faults

setup:
	@bash infra/local/setup.sh

up: setup
	@$(BIN)/aios dev up

down:
	@$(BIN)/aios dev down

demo: up
	@bash infra/local/demo.sh

# The warm suite. The worker-kill scenarios (minutes of kills and restarts) run in `make faults`;
# tests/integration/test_worker_crash.py keeps a SIGKILL mid-effect in this one. The cluster
# profile runs in `make test-cluster` (it builds the real server first).
test: setup
	$(BIN)/pytest --ignore=tests/faults/test_worker_kills.py --ignore=tests/cluster $(PYTEST_ARGS)

# The suite on moved ports from a fresh data directory, and its refusal beside a foreign stack
# (two checkouts on one machine, README). PYTEST_ARGS narrows the suite run.
test-hermetic: setup
	PYTEST_ARGS="$(PYTEST_ARGS)" bash .ci/hermetic

# The real Temporal server on Postgres (aios dev up --profile cluster) on stacks of its own:
# builds the server, its SQL tool and the ui-server with Go first (minutes, once), runs
# tests/cluster, then a reduced integration and fault suite against the cluster (.ci/cluster-suite).
test-cluster: setup
	$(BIN)/aios dev install --profile cluster
	$(BIN)/pytest -q tests/cluster
	PYTEST_ARGS="$(PYTEST_ARGS)" bash .ci/cluster-suite

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# The fault suite at full size (100 runs per scenario); writes docs/RELIABILITY.md. Then the
# cluster column: worker kills and server/Postgres restarts against the cluster profile, into
# docs/RELIABILITY-cluster.md (builds the cluster's binaries first, once).
faults: up
	AIOS_FAULTS_FULL=1 $(BIN)/pytest -q tests/faults $(PYTEST_ARGS)
	$(BIN)/aios dev install --profile cluster
	AIOS_FAULTS_FULL=1 AIOS_FAULTS_DOC=$$PWD/docs/RELIABILITY-cluster.md \
	  CLUSTER_SUITE_TESTS="tests/faults/test_worker_kills.py tests/faults/test_stack_restarts.py" \
	  bash .ci/cluster-suite

# Installs the `bench` extra (LangGraph, matplotlib, psutil) first; rewrites docs/BENCHMARKS.md.
bench: up
	$(BIN)/pip install -q -e '.[dev,bench]'
	$(BIN)/python -m bench

# Re-records tests/replay/histories/ from real runs (see tests/replay/record.py first).
replay-record: up
	$(BIN)/python -m tests.replay.record

clean: down
	rm -rf .aios

# Builds Docker Compose v2 with Go into .aios/bin (no Docker engine needed), then lets the
# test suite's `docker compose config` check run. Minutes and ~2 GB of Go modules, once. Built
# inside its own module (its go.mod has `exclude` directives, which `go install pkg@v` refuses).
COMPOSE_VERSION := v2.40.3
compose-check: setup
	@test -x .aios/bin/docker-compose || { \
	  dir=$$(go mod download -json github.com/docker/compose/v2@$(COMPOSE_VERSION) | $(BIN)/python -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') && \
	  out=$$PWD/.aios/bin/docker-compose && (cd "$$dir" && go build -trimpath \
	    -ldflags "-X github.com/docker/compose/v2/internal.Version=$(COMPOSE_VERSION)" -o "$$out" ./cmd); }
	$(BIN)/pytest -q tests/unit/test_compose_file.py
