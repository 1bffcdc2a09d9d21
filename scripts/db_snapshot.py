#!/usr/bin/env python3
"""Take a snapshot of the database inside the server, in seconds: before a risky migration.

Copies the configured database with CREATE DATABASE ... TEMPLATE (a file copy) into
`<db>_dbguard_snap_<NAME>` (NAME: default the time, e.g. 20251215_124427). PostgreSQL copies a
database only while nobody is connected to it, so other connections to it are ended and new ones
refused for the moment the copy takes; the application reconnects afterwards. `make db-rollback`
puts a snapshot back; `make db-snapshots` lists them; `make db-undo` right after drops it again.
Killed halfway, the next dbguard command (db-up included) reopens the database and completes
or discards the copy, as the journal records.

A snapshot lives in the same cluster, on the same volume: it undoes a bad migration or a wrong
DELETE, not the loss or corruption of the volume (`make db-dump` is for that). The names
before_restore, before_seed and replaced_* are the kit's own (the next restore or seed replaces
before_*), so NAME= refuses them.

examples:
  make db-snapshot
  make db-snapshot NAME=before_migration
  make db-snapshot DB=postgres
"""
from __future__ import annotations

import sys

from dbguard.actions import perform, snapshot
from dbguard.cli import entrypoint, parser
from dbguard.db_snapshots import check_new_name
from dbguard.errors import EXIT_OK
from dbguard.kit import open_kit
from dbguard.messages import human_size, success


@entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, db=True)
    ap.add_argument("--name", help="the snapshot's name (default: the time)")
    args = ap.parse_args(argv)
    if args.name:
        check_new_name(args.name)
    kit = open_kit(args, command="db-snapshot")
    made = perform(kit, snapshot, args)
    if made:
        success(f"snapshot {made.name!r} of {kit.db!r} ({human_size(made.size)}); "
                f"make db-rollback NAME={made.name} puts it back")
        print(made.name)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
