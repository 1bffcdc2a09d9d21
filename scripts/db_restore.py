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
`make db-rollback NAME=before_restore` undoes the restore (the next restore drops it while its
load runs, as its plan says); with DBGUARD_SAFETY_DUMP=1 it is also dumped to backups/ first. A
failure before the swap leaves the current database exactly as it was.

examples:
  make db-restore
  make db-restore FILE=backups/sum_db_20251215_124427.dump
  make db-restore YES=1                 no question (scripts, CI)
"""
from __future__ import annotations

import sys
from pathlib import Path

from dbguard.backup_check import CheckedBackup, check_backup, newest_good_backup
from dbguard.cli import entrypoint, parser
from dbguard.destructive.delete_backups import remove_unfinished
from dbguard.destructive.replace_database import (kept_drop, preflight_replace,
                                                  replace_with_backup)
from dbguard.errors import EXIT_OK
from dbguard.kit import Kit, kit_lock, open_kit
from dbguard.loads import Loader
from dbguard.messages import confirm, detail, headline, human_size, info, success
from dbguard.service import require_running
from dbguard.settings import KIT_ROOT


def resolve(name: str) -> Path:
    path = Path(name)
    if not path.exists() and not path.is_absolute() and (KIT_ROOT / path).exists():
        return KIT_ROOT / path
    return path


@entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, yes=True)
    ap.add_argument("--file", help="the backup to restore (default: the newest good one)")
    args = ap.parse_args(argv)
    kit = open_kit(args)
    container = require_running(kit)
    with kit_lock(kit, "db-restore"):
        remove_unfinished(kit.settings, kit.runner.dry_run)
        major = kit.image.pg_major
        with Loader(kit, container) as load:
            # Each file is copied into the container while it is checked (and the question
            # asked); the copy is removed again if it is not used.
            if args.file:
                load.stage(resolve(args.file))
                backup = check_backup(kit, resolve(args.file), major)
            else:
                backup = newest_good_backup(kit, major, load.stage)
            load.use(backup)
            restore(kit, args, backup, load)
    return EXIT_OK


def restore(kit: Kit, args, backup: CheckedBackup, load: Loader) -> None:
    """The plan, the question, and the replacement."""
    state = preflight_replace(kit, "restore")
    before = state.tables
    s = kit.settings
    headline("Plan")
    made = f", made by pg_dump {backup.facts.pg_dump_version}" \
        if backup.facts.pg_dump_version else ""
    check = "checksum verified" if backup.checksum else "no checksum file: read whole"
    detail(f"restore:  {backup.path} ({backup.facts.format}, "
           f"{human_size(backup.path.stat().st_size)}{made}; {check})")
    now = "does not exist" if before is None else \
        "closed to connections by an interrupted restore; reopened first" if state.closed \
        else f"{len(before)} tables, about {sum(before.values()):,} rows"
    detail(f"replace:  database {s.db_name!r} ({now})" + (
        "" if before is None else "; kept as the snapshot 'before_restore' (undo: "
        "make db-rollback NAME=before_restore)"))
    safety = s.safety_dump and before is not None
    if safety:
        detail(f"first:    a safety dump of it to {s.backup_dir} (DBGUARD_SAFETY_DUMP=1)")
    if drop := kept_drop(state, "restore"):
        detail(f"drops:    {drop}")
    if kit.runner.dry_run:
        info("dry run: nothing was changed")
        return
    confirm(f"Replace database {s.db_name!r} with {backup.path.name}?", assume_yes=args.yes)
    replace_with_backup(kit, load, before, "restore", safety)
    success(f"{s.db_name!r} now holds {backup.path.name}")


if __name__ == "__main__":
    sys.exit(main())
