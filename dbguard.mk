# dbguard's database targets, for inclusion in a Makefile: `include dbguard/dbguard.mk` (the line
# `make kit-install` writes). Everything here is named dbguard-*, DBGUARD_* or db-*, so nothing
# of the including Makefile is overridden; DBGUARD_PREFIX, set before the include, puts a
# prefix on every target (DBGUARD_PREFIX := kit- gives kit-db-up, ...).
# Make variables given on the command line become the scripts' flags: JSON=1 CHECK=1 YES=1
# FORCE=1 ALLOW_NEW_VOLUME=1 UNDO=1 FROM=<volume or folder> FILE=<path> FORMAT=custom|plain
# KEEP=<n> NAME=<snapshot> DROP=<snapshot> OLD_IMAGE=<image> DB=<database> OP=<n> OFF=1
# REFRESH=1 PRUNE=1 SEED=1, and on every
# target V=1 (show each docker command) and DRY_RUN=1 (show what would change, change nothing).

# The kit's folder, from this file's own path; its Python environment, apart from the host's.
DBGUARD_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
DBGUARD_PREFIX ?=
DBGUARD_PYTHON ?= python3
DBGUARD_VENV ?= $(DBGUARD_DIR)/.venv
DBGUARD_PY = $(DBGUARD_VENV)/bin/python
DBGUARD_RUN = @$(DBGUARD_PY) $(DBGUARD_DIR)/scripts

# What you type after `make db-x` reaches the script as data, never as code: only variables
# given on the make command line count (many shells set NAME or FILE for other reasons), their
# values are taken unexpanded ($(value)), single-quoted for the shell, and kept out of the
# recipes' environment (make would expand an exported `$(shell ...)` there); a value with a line
# break is refused before anything runs. The scripts then refuse a value that is not what it
# should be.
DBGUARD_FLAGS := V DRY_RUN JSON CHECK YES FORCE ALLOW_NEW_VOLUME UNDO FROM FILE FORMAT KEEP \
	NAME DROP OLD_IMAGE DB OP OFF REFRESH PRUNE SEED
unexport $(DBGUARD_FLAGS)
define dbguard_newline


endef
dbguard_given = $(and $(filter command line,$(origin $(1))),$(value $(1)))
dbguard_whole = $(if $(findstring $(dbguard_newline),$(value $(1))),$(error ERROR: $(1) holds a \
	line break, which no dbguard value has. Give it on one line; nothing was run))
dbguard_on = $(call dbguard_whole,$(1))$(if $(filter 1 y yes true,$(call dbguard_given,$(1))),$(2))
dbguard_arg = $(call dbguard_whole,$(1))$(if $(call dbguard_given,$(1)),$(2) \
	'$(subst ','\'',$(value $(1)))')
DBGUARD_COMMON = $(call dbguard_on,V,--verbose) $(call dbguard_on,DRY_RUN,--dry-run)
DBGUARD_DB = $(call dbguard_arg,DB,--db)
DBGUARD_TARGETS := db-up db-down db-info db-find db-protect db-migrate-volume db-dump db-restore db-backups \
	db-prune db-snapshot db-snapshots db-rollback db-upgrade db-history db-undo db-reindex db-clone db-clones db-fixture \
	db-seed db-shell db-logs

.PHONY: dbguard-help dbguard-deps $(addprefix $(DBGUARD_PREFIX),$(DBGUARD_TARGETS))

dbguard-help: ## Show dbguard's database targets
	@awk -v p='$(DBGUARD_PREFIX)' 'BEGIN {FS = ":.*## "} /^\$$\(DBGUARD_PREFIX\)[a-z-]+:.*## / \
		{sub(/^\$$\(DBGUARD_PREFIX\)/, "", $$1); printf "  %-20s %s\n", p $$1, $$2}' \
		$(DBGUARD_DIR)/dbguard.mk

$(DBGUARD_PREFIX)db-up: dbguard-deps ## Start the database, after checking its volume is the right one (ALLOW_NEW_VOLUME=1 SEED=1)
	$(DBGUARD_RUN)/db_up.py $(DBGUARD_COMMON) $(call dbguard_on,ALLOW_NEW_VOLUME,--allow-new-volume) $(call dbguard_on,SEED,--seed) $(call dbguard_on,YES,--yes)

$(DBGUARD_PREFIX)db-down: dbguard-deps ## Stop the database (volumes are never removed)
	$(DBGUARD_RUN)/db_down.py $(DBGUARD_COMMON)

$(DBGUARD_PREFIX)db-info: dbguard-deps ## Show which volume is live, spot parallel universes, name problems (JSON=1 CHECK=1 DB=)
	$(DBGUARD_RUN)/db_info.py $(call dbguard_on,V,--verbose) $(call dbguard_on,JSON,--json) $(call dbguard_on,CHECK,--check) $(DBGUARD_DB)

$(DBGUARD_PREFIX)db-find: dbguard-deps ## List every PostgreSQL cluster on the engine (anonymous, dangling, other projects') and how to bring it back (JSON=1)
	$(DBGUARD_RUN)/db_find.py $(call dbguard_on,V,--verbose) $(call dbguard_on,JSON,--json)

$(DBGUARD_PREFIX)db-protect: dbguard-deps ## Keep the volume from `down -v`, `volume rm` and the prunes with a keeper container (OFF=1 removes it)
	$(DBGUARD_RUN)/db_protect.py $(DBGUARD_COMMON) $(call dbguard_on,OFF,--off)

$(DBGUARD_PREFIX)db-migrate-volume: dbguard-deps ## Copy a cluster from another volume or folder into the active one (FROM= YES=1 FORCE=1 UNDO=1)
	$(DBGUARD_RUN)/db_migrate_volume.py $(DBGUARD_COMMON) $(call dbguard_arg,FROM,--from) $(call dbguard_on,YES,--yes) $(call dbguard_on,FORCE,--force) $(call dbguard_on,UNDO,--undo)

$(DBGUARD_PREFIX)db-dump: dbguard-deps ## Dump the database to a verified, timestamped file in backups/ (FORMAT=custom|plain DB=)
	$(DBGUARD_RUN)/db_dump.py $(DBGUARD_COMMON) $(call dbguard_arg,FORMAT,--format) $(DBGUARD_DB)

$(DBGUARD_PREFIX)db-restore: dbguard-deps ## Replace the database with a backup, newest good one by default (FILE= YES=1 DB=)
	$(DBGUARD_RUN)/db_restore.py $(DBGUARD_COMMON) $(call dbguard_arg,FILE,--file) $(call dbguard_on,YES,--yes) $(DBGUARD_DB)

$(DBGUARD_PREFIX)db-backups: dbguard-deps ## List the backups, newest first, with age, size, format and checksum
	$(DBGUARD_RUN)/db_backups.py $(call dbguard_on,V,--verbose) $(call dbguard_on,JSON,--json)

$(DBGUARD_PREFIX)db-prune: dbguard-deps ## Remove old backups, keeping the newest verified ones of each database (KEEP=n YES=1)
	$(DBGUARD_RUN)/db_prune.py $(DBGUARD_COMMON) $(call dbguard_arg,KEEP,--keep) $(call dbguard_on,YES,--yes)

$(DBGUARD_PREFIX)db-snapshot: dbguard-deps ## Copy the database inside the server in seconds, before a risky change (NAME= DB=)
	$(DBGUARD_RUN)/db_snapshot.py $(DBGUARD_COMMON) $(call dbguard_arg,NAME,--name) $(DBGUARD_DB)

$(DBGUARD_PREFIX)db-snapshots: dbguard-deps ## List the snapshots with age and size, or drop some (JSON=1 DROP=name KEEP=n YES=1 DB=)
	$(DBGUARD_RUN)/db_snapshots.py $(DBGUARD_COMMON) $(call dbguard_on,JSON,--json) $(call dbguard_arg,DROP,--drop) $(call dbguard_arg,KEEP,--keep) $(call dbguard_on,YES,--yes) $(DBGUARD_DB)

$(DBGUARD_PREFIX)db-rollback: dbguard-deps ## Put a snapshot back, the newest by default; keeps what it replaces (NAME= YES=1 DB=)
	$(DBGUARD_RUN)/db_rollback.py $(DBGUARD_COMMON) $(call dbguard_arg,NAME,--name) $(call dbguard_on,YES,--yes) $(DBGUARD_DB)

$(DBGUARD_PREFIX)db-upgrade: dbguard-deps ## Move the cluster to the image's newer PostgreSQL major, every row compared (OLD_IMAGE= YES=1 FORCE=1 UNDO=1)
	$(DBGUARD_RUN)/db_upgrade.py $(DBGUARD_COMMON) $(call dbguard_arg,OLD_IMAGE,--old-image) $(call dbguard_on,YES,--yes) $(call dbguard_on,FORCE,--force) $(call dbguard_on,UNDO,--undo)

$(DBGUARD_PREFIX)db-history: dbguard-deps ## List what the data-changing commands did, the copy each kept, and its state (JSON=1)
	$(DBGUARD_RUN)/db_history.py $(call dbguard_on,V,--verbose) $(call dbguard_on,JSON,--json)

$(DBGUARD_PREFIX)db-undo: dbguard-deps ## Reverse the last data-changing operation from the copy it kept (OP=n YES=1 FORCE=1)
	$(DBGUARD_RUN)/db_undo.py $(DBGUARD_COMMON) $(call dbguard_arg,OP,--op) $(call dbguard_on,YES,--yes) $(call dbguard_on,FORCE,--force)

$(DBGUARD_PREFIX)db-reindex: dbguard-deps ## After a collation change: snapshot, check and rebuild the dependent indexes, then record the new version (YES=1 DB=)
	$(DBGUARD_RUN)/db_reindex.py $(DBGUARD_COMMON) $(call dbguard_on,YES,--yes) $(DBGUARD_DB)

$(DBGUARD_PREFIX)db-clone: dbguard-deps ## Give this git worktree its own database in the shared server, and point its .env at it (NAME= REFRESH=1 YES=1)
	$(DBGUARD_RUN)/db_clone.py $(DBGUARD_COMMON) $(call dbguard_arg,NAME,--name) $(call dbguard_on,REFRESH,--refresh) $(call dbguard_on,YES,--yes)

$(DBGUARD_PREFIX)db-clones: dbguard-deps ## List the worktrees' databases and what removed checkouts left (JSON=1 PRUNE=1 YES=1)
	$(DBGUARD_RUN)/db_clones.py $(DBGUARD_COMMON) $(call dbguard_on,JSON,--json) $(call dbguard_on,PRUNE,--prune) $(call dbguard_on,YES,--yes)

$(DBGUARD_PREFIX)db-fixture: dbguard-deps ## Export the database to the development fixture (plain SQL meant for git; DB=)
	$(DBGUARD_RUN)/db_fixture.py $(DBGUARD_COMMON) $(DBGUARD_DB)

$(DBGUARD_PREFIX)db-seed: dbguard-deps ## Load the development fixture into a database with no tables (FORCE=1 YES=1 DB=)
	$(DBGUARD_RUN)/db_seed.py $(DBGUARD_COMMON) $(call dbguard_on,FORCE,--force) $(call dbguard_on,YES,--yes) $(DBGUARD_DB)

$(DBGUARD_PREFIX)db-shell: dbguard-deps ## Open psql inside the database container (DB=)
	$(DBGUARD_RUN)/db_shell.py $(call dbguard_on,V,--verbose) $(DBGUARD_DB)

$(DBGUARD_PREFIX)db-logs: dbguard-deps ## Follow the database's log
	$(DBGUARD_RUN)/db_logs.py $(call dbguard_on,V,--verbose)

# The kit's virtual environment: made by the first target that needs it, and again whenever
# its requirements change.
dbguard-deps: $(DBGUARD_VENV)/.deps

$(DBGUARD_VENV)/.deps: $(DBGUARD_DIR)/requirements.txt
	@test -x $(DBGUARD_PY) || $(DBGUARD_PYTHON) -m venv $(DBGUARD_VENV)
	@$(DBGUARD_PY) -m pip install -q --disable-pip-version-check -r $(DBGUARD_DIR)/requirements.txt
	@touch $@
