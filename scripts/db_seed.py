#!/usr/bin/env python3
"""Load the development fixture into the database, so a fresh volume gets real content.

Loads DBGUARD_FIXTURE (default fixtures/dev_content.sql) when the database has no tables. On a
database with tables it refuses (exit 3) unless FORCE=1 / --force; then it REPLACES the
database, after asking [y/N] (without a terminal: refused unless --yes) and after a safety dump
(unless DBGUARD_SAFETY_DUMP=0). Loading goes into a scratch database that is swapped in only
when the whole fixture loaded, as db-restore does.

examples:
  make db-seed
  make db-seed FORCE=1 YES=1
"""
from __future__ import annotations

import sys

import _dbguard as g


@g.entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = g.parser(__doc__, yes=True)
    ap.add_argument("--force", action="store_true",
                    help="replace a database that already has tables (after a safety dump)")
    args = ap.parse_args(argv)
    kit = g.open_kit(args)
    container = g.require_running(kit)
    s = kit.settings
    if not s.fixture.is_file():
        raise g.Failure(f"no fixture at {s.fixture}",
                        "Export one from a database with content: make db-fixture")
    with g.kit_lock(kit, "db-seed"):
        fixture = g.check_backup(kit, s.fixture, kit.image.pg_major)
        before = g.preflight_replace(kit)
        if before and not args.force:
            raise g.Refusal(f"database {s.db_name!r} already has {len(before)} tables; seeding "
                            "would replace them",
                            "FORCE=1 replaces the database with the fixture (after a safety "
                            "dump); nothing was changed")
        g.info(f"loading {s.fixture} into {s.db_name!r}")
        if kit.run.dry_run:
            g.info("dry run: nothing was changed")
            return g.EXIT_OK
        if before:
            g.confirm(f"Replace database {s.db_name!r} ({len(before)} tables) with the "
                      "fixture?", assume_yes=args.yes)
        g.replace_with_backup(kit, fixture, container, before,
                              "pre-seed" if before and s.safety_dump else None)
        g.success(f"{s.db_name!r} seeded from {s.fixture.name}")
    return g.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
