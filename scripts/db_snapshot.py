#!/usr/bin/env python3
"""Take a snapshot of the database inside the server, in seconds: before a risky migration.

Copies the configured database with CREATE DATABASE ... TEMPLATE (a file copy) into
`<db>_dbguard_snap_<NAME>` (NAME: default the time, e.g. 20251215_124427). PostgreSQL copies a
database only while nobody is connected to it, so other connections to it are ended and new ones
refused for the moment the copy takes; the application reconnects afterwards. `make db-rollback`
puts a snapshot back; `make db-snapshots` lists them.

A snapshot lives in the same cluster, on the same volume: it undoes a bad migration or a wrong
DELETE, not the loss or corruption of the volume (`make db-dump` is for that). The names
before_restore, before_seed and replaced_* are the kit's own (the next restore or seed replaces
before_*), so NAME= refuses them.

examples:
  make db-snapshot
  make db-snapshot NAME=before_migration
"""
from __future__ import annotations

import sys

from dbguard.cli import entrypoint, parser
from dbguard.db_snapshots import check_new_name, database_of, stamp_name, take_snapshot
from dbguard.errors import EXIT_OK
from dbguard.kit import kit_lock, open_kit
from dbguard.messages import human_size, info, success
from dbguard.service import require_running


@entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--name", help="the snapshot's name (default: the time)")
    args = ap.parse_args(argv)
    name = check_new_name(args.name) if args.name else stamp_name()
    kit = open_kit(args)
    require_running(kit)
    db = kit.settings.db_name
    if kit.runner.dry_run:
        info(f"dry run: would copy {db!r} into {database_of(db, name)!r}; nothing was changed")
        return EXIT_OK
    with kit_lock(kit, "db-snapshot"):
        snapshot = take_snapshot(kit.settings, name)
    success(f"snapshot {snapshot.name!r} of {db!r} ({human_size(snapshot.size)}); "
            f"make db-rollback NAME={snapshot.name} puts it back")
    print(snapshot.name)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
