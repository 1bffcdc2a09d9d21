#!/usr/bin/env python3
"""Put a snapshot back: the database becomes what it was when the snapshot was taken.

REPLACES the configured database with a copy of the snapshot (the newest by default, or NAME).
The plan is shown and [y/N] asked (without a terminal: refused unless YES=1). The copy is made
beside the database (a file copy, seconds per gigabyte), then other connections are ended and
the two are swapped by renaming them in one transaction. What it replaces is kept as a new
snapshot, `replaced_<time>`, so the rollback itself is undone by `make db-undo` (or by rolling
back to that one); the snapshot rolled back to stays as well.

examples:
  make db-rollback
  make db-rollback NAME=before_migration YES=1
"""
from __future__ import annotations

import sys

from dbguard.actions import perform, rollback
from dbguard.cli import entrypoint, parser
from dbguard.db_snapshots import check_name
from dbguard.errors import EXIT_OK
from dbguard.kit import open_kit


@entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, yes=True, db=True)
    ap.add_argument("--name", help="the snapshot to put back (default: the newest)")
    args = ap.parse_args(argv)
    if args.name:
        check_name(args.name)
    perform(open_kit(args, command="db-rollback"), rollback, args)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
