# dbguard: PostgreSQL under Docker Compose, without losing the data.
# `make` lists the targets. Each target calls one script in scripts/ (`--help` on any of them).
# Make variables become the scripts' flags: JSON=1 CHECK=1 YES=1 FORCE=1 ALLOW_NEW_VOLUME=1
# FROM=<volume> FILE=<path> FORMAT=custom|plain KEEP=<n> UNDO=1, and on every target
# V=1 (show each docker command) and DRY_RUN=1 (show what would change, change nothing).

.DEFAULT_GOAL := help
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

# What you type after `make db-x` reaches the script as data, never as code: the values are
# taken unexpanded ($(value)), single-quoted for the shell, and kept out of the recipes'
# environment (make would expand an exported `$(shell ...)` there). The scripts then refuse a
# value that is not what it should be.
FLAGS := V DRY_RUN JSON CHECK YES FORCE ALLOW_NEW_VOLUME UNDO FROM FILE FORMAT KEEP SIZE_MB \
	QUICK
unexport $(FLAGS)
on = $(if $(filter 1 y yes true,$(value $(1))),$(2))
arg = $(if $(value $(1)),$(2) '$(subst ','\'',$(value $(1)))')
COMMON = $(call on,V,--verbose) $(call on,DRY_RUN,--dry-run)

.PHONY: help db-up db-down db-info db-migrate-volume db-dump db-restore db-backups db-prune \
	db-fixture db-seed db-shell db-logs test test-unit bench reliability .deps .deps-dev

help: ## Show the targets and what they do
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  %-20s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

db-up: .deps ## Start the database, after checking its volume is the right one (ALLOW_NEW_VOLUME=1)
	@$(PY) scripts/db_up.py $(COMMON) $(call on,ALLOW_NEW_VOLUME,--allow-new-volume)

db-down: .deps ## Stop the database (volumes are never removed)
	@$(PY) scripts/db_down.py $(COMMON)

db-info: .deps ## Show which volume is live, spot parallel universes, name problems (JSON=1 CHECK=1)
	@$(PY) scripts/db_info.py $(call on,V,--verbose) $(call on,JSON,--json) $(call on,CHECK,--check)

db-migrate-volume: .deps ## Copy an old volume's data into the active one (FROM=volume YES=1 FORCE=1 UNDO=1)
	@$(PY) scripts/db_migrate_volume.py $(COMMON) $(call arg,FROM,--from) $(call on,YES,--yes) $(call on,FORCE,--force) $(call on,UNDO,--undo)

db-dump: .deps ## Dump the database to a verified, timestamped file in backups/ (FORMAT=custom|plain)
	@$(PY) scripts/db_dump.py $(COMMON) $(call arg,FORMAT,--format)

db-restore: .deps ## Replace the database with a backup, newest good one by default (FILE=path YES=1)
	@$(PY) scripts/db_restore.py $(COMMON) $(call arg,FILE,--file) $(call on,YES,--yes)

db-backups: .deps ## List the backups, newest first, with age, size, format and checksum
	@$(PY) scripts/db_backups.py $(call on,V,--verbose) $(call on,JSON,--json)

db-prune: .deps ## Remove old backups, keeping the newest (KEEP=n YES=1)
	@$(PY) scripts/db_prune.py $(COMMON) $(call arg,KEEP,--keep) $(call on,YES,--yes)

db-fixture: .deps ## Export the database to the development fixture (plain SQL meant for git)
	@$(PY) scripts/db_fixture.py $(COMMON)

db-seed: .deps ## Load the development fixture into a database with no tables (FORCE=1 YES=1)
	@$(PY) scripts/db_seed.py $(COMMON) $(call on,FORCE,--force) $(call on,YES,--yes)

db-shell: .deps ## Open psql inside the database container
	@$(PY) scripts/db_shell.py $(call on,V,--verbose)

db-logs: .deps ## Follow the database's log
	@$(PY) scripts/db_logs.py $(call on,V,--verbose)

test: .deps-dev ## Run every test: unit, and the real-Docker tier under Compose v2 and v1
	@$(PY) tests/run.py $(PYTEST_ARGS)

test-unit: .deps-dev ## Run the tests that need no Docker
	@$(PY) -m pytest tests/unit -q $(PYTEST_ARGS)

bench: .deps-dev ## Time db-dump and db-migrate-volume against raw pg_dump and cp -a (SIZE_MB=n)
	@$(PY) tests/bench.py $(call arg,SIZE_MB,--size-mb)

reliability: .deps-dev ## Run the fault trials; writes docs/reliability.md (QUICK=1: 3 runs each, no file)
	@$(PY) tests/reliability.py $(call on,QUICK,--quick)

# The virtual environment: made by the first target that needs it, and again whenever a
# dependency list changes.
.deps: $(VENV)/.deps
.deps-dev: $(VENV)/.deps-dev

$(VENV)/.deps: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	@touch $@

$(VENV)/.deps-dev: requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	@touch $@ $(VENV)/.deps
