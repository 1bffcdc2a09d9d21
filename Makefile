# dbguard: PostgreSQL under Docker Compose, without losing the data.
# `make` lists the targets. The database targets (db-*) live in dbguard.mk, which another
# repository includes the same way (`make kit-install DEST=path/to/repo` sets that up); each
# calls one script in scripts/ (`--help` on any of them). This file adds the kit's own targets:
# installing it elsewhere, its tests and its measurements.

.DEFAULT_GOAL := help
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DBGUARD_PYTHON := $(PYTHON)
DBGUARD_VENV := $(VENV)
include dbguard.mk

FLAGS := DEST FOLDER PREFIX TAKEOVER COMPOSE_FILE SIZE_MB MAJOR QUICK
unexport $(FLAGS)

.PHONY: help kit-install test test-unit bench bench-idle bench-calls reliability .deps-dev

help: ## Show the targets and what they do
	@$(MAKE) --no-print-directory -s dbguard-help
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  %-20s %s\n", $$1, $$2}' Makefile

kit-install: dbguard-deps ## Put the kit into another repository and wire up make db-* there (DEST=path FOLDER= PREFIX= TAKEOVER=1 COMPOSE_FILE= DRY_RUN=1)
	@$(PY) scripts/kit_install.py $(call dbguard_arg,DEST,) $(call dbguard_arg,FOLDER,--folder) $(call dbguard_arg,PREFIX,--prefix) $(call dbguard_on,TAKEOVER,--takeover) $(call dbguard_arg,COMPOSE_FILE,--compose-file) $(call dbguard_on,DRY_RUN,--dry-run) $(call dbguard_on,YES,--yes)

test: .deps-dev ## Run every test: unit, and the real-Docker tier under Compose v2 and v1
	@$(PY) tests/run.py $(PYTEST_ARGS)

test-unit: .deps-dev ## Run the tests that need no Docker
	@$(PY) -m pytest tests/unit -q $(PYTEST_ARGS)

bench: .deps-dev ## Time the data targets against the raw commands at >= 1 GB; writes docs/benchmarks.md (MAJOR=15 SIZE_MB=1100)
	@$(PY) tests/bench.py $(call dbguard_arg,MAJOR,--major) $(call dbguard_arg,SIZE_MB,--size-mb)

bench-idle: .deps-dev ## What the running database costs while nobody uses it (its health check); writes docs/performance.md
	@$(PY) tests/bench_idle.py

bench-calls: .deps-dev ## What db-info, db-up and db-dump cost beside the commands typed by hand; writes docs/performance.md
	@$(PY) tests/bench_calls.py

reliability: .deps-dev ## Run the fault trials; writes docs/reliability.md (QUICK=1: 3 runs each, no file)
	@$(PY) tests/reliability.py $(call dbguard_on,QUICK,--quick)

.deps-dev: $(VENV)/.deps-dev

$(VENV)/.deps-dev: requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	@touch $@ $(VENV)/.deps
