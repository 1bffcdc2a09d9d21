#!/usr/bin/env python3
"""Load the development fixture into the database, so a fresh volume gets real content.

Loads DBGUARD_FIXTURE (default fixtures/dev_content.sql) when the database has no tables. On a
database with tables it refuses (exit 3) unless FORCE=1 / --force; then it REPLACES the
database, after asking [y/N] (without a terminal: refused unless --yes). Loading goes into a
scratch database that is swapped in only when the whole fixture loaded, as db-restore does;
what it replaces is kept as the snapshot before_seed until the next seed, which drops it once
its own load has succeeded (DBGUARD_SAFETY_DUMP=1 also dumps it to backups/ first); `make
db-undo` puts it back.

examples:
  make db-seed
  make db-seed FORCE=1 YES=1
"""
from __future__ import annotations

import sys

from dbguard.actions import perform, seed
from dbguard.cli import entrypoint, parser
from dbguard.errors import EXIT_OK
from dbguard.kit import open_kit


@entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, yes=True, db=True)
    ap.add_argument("--force", action="store_true",
                    help="replace a database that already has tables (it is kept as the "
                    "snapshot before_seed)")
    args = ap.parse_args(argv)
    perform(open_kit(args, command="db-seed"), seed, args)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
