#!/usr/bin/env python3
"""Replace the database with a backup: the newest one that passes verification, or FILE.

REPLACES the configured database. Before anything changes, the file's checksum and format are
checked: a truncated, corrupt, foreign (not pg_dump's) or newer-major dump is refused (exit 3).
Then the plan is shown and [y/N] asked (without a terminal: refused unless --yes); a custom
archive is meanwhile copied into the container, and removed again if the answer is no. The
backup is loaded into a scratch database (custom format: pg_restore -j, stops at the first
error; plain SQL: psql with ON_ERROR_STOP in one transaction). Only when it loaded are other
connections closed and the two databases swapped by renaming them in one transaction. The
replaced database is kept as the snapshot `before_restore` until the next restore, so
`make db-undo` undoes the restore (the next restore drops it once its own load has
succeeded, as its plan says); with DBGUARD_SAFETY_DUMP=1 it is also dumped to backups/ first. A
failure before the swap leaves the current database exactly as it was. Every step is recorded
in the journal first. DB= restores another database of the server.

examples:
  make db-restore
  make db-restore FILE=backups/sum_db_20251215_124427.dump
  make db-restore YES=1                 no question (scripts, CI)
  make db-restore DB=mastodon_production FILE=backups/mastodon_production_20251215_124427.dump
"""
from __future__ import annotations

import sys

from dbguard.actions import perform, restore
from dbguard.cli import entrypoint, parser
from dbguard.errors import EXIT_OK
from dbguard.kit import open_kit


@entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, yes=True, db=True)
    ap.add_argument("--file", help="the backup to restore (default: the newest good one)")
    args = ap.parse_args(argv)
    perform(open_kit(args, command="db-restore"), restore, args)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
