#!/usr/bin/env python3
"""Load the development fixture into the database, so a fresh volume gets real content.

Loads DBGUARD_FIXTURE (default fixtures/dev_content.sql) when the database has no tables. On a
database with tables it refuses (exit 3) unless FORCE=1 / --force; then it REPLACES the
database, after asking [y/N] (without a terminal: refused unless --yes). Loading goes into a
scratch database that is swapped in only when the whole fixture loaded, as db-restore does;
what it replaces is kept as the snapshot before_seed until the next seed, which drops it while
its load runs (DBGUARD_SAFETY_DUMP=1 also dumps it to backups/ first).

examples:
  make db-seed
  make db-seed FORCE=1 YES=1
"""
from __future__ import annotations

import sys

from dbguard.backup_check import check_backup
from dbguard.cli import entrypoint, parser
from dbguard.destructive.delete_backups import remove_unfinished
from dbguard.destructive.replace_database import (kept_drop, preflight_replace,
                                                  replace_with_backup)
from dbguard.errors import EXIT_OK, Failure, Refusal
from dbguard.kit import kit_lock, open_kit
from dbguard.loads import Loader
from dbguard.messages import confirm, info, success
from dbguard.service import require_running


@entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, yes=True)
    ap.add_argument("--force", action="store_true",
                    help="replace a database that already has tables (it is kept as the "
                    "snapshot before_seed)")
    args = ap.parse_args(argv)
    kit = open_kit(args)
    container = require_running(kit)
    s = kit.settings
    if not s.fixture.is_file():
        raise Failure(f"no fixture at {s.fixture}",
                      "Export one from a database with content: make db-fixture")
    with kit_lock(kit, "db-seed"):
        remove_unfinished(kit.settings, kit.runner.dry_run)
        fixture = check_backup(kit, s.fixture, kit.image.pg_major)
        state = preflight_replace(kit, "seed")
        before = state.tables
        if before and not args.force:
            raise Refusal(f"database {s.db_name!r} already has {len(before)} tables; seeding "
                          "would replace them",
                          "FORCE=1 replaces the database with the fixture (what it replaces "
                          "is kept as the snapshot before_seed); nothing was changed")
        info(f"loading {s.fixture} into {s.db_name!r}")
        if drop := kept_drop(state, "seed"):
            info(f"this drops the {drop}")
        if kit.runner.dry_run:
            info("dry run: nothing was changed")
            return EXIT_OK
        with Loader(kit, container) as load:
            load.use(fixture)  # a custom archive: copied into the container meanwhile
            if before or state.kept_old is not None:
                what = f"({len(before)} tables)" if before else "(no tables)"
                confirm(f"Replace database {s.db_name!r} {what} with the fixture?",
                        assume_yes=args.yes)
            replace_with_backup(kit, load, before, "seed", bool(before) and s.safety_dump)
        success(f"{s.db_name!r} seeded from {s.fixture.name}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
