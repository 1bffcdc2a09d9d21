#!/usr/bin/env python3
"""Remove old dumps from backups/, keeping the newest KEEP (default DBGUARD_BACKUP_KEEP).

DELETES files, after showing which and asking [y/N] (without a terminal: refuses unless
--yes). Only files it can identify as kit backups are touched: <db>_<YYYYmmdd_HHMMSS>.dump or
.sql with their .sha256, and unfinished dumps and snapshots (.partial) older than an hour.
Anything else in the folder, and finished volume snapshots, are left alone. It takes the kit's
lock, so it never deletes a file that a running restore is using.

examples:
  make db-prune
  make db-prune KEEP=3 YES=1
"""
from __future__ import annotations

import sys

from dbguard.cli import entrypoint, parser
from dbguard.destructive.delete_backups import check_keep, delete, plan_prune
from dbguard.errors import EXIT_OK
from dbguard.kit import backup_folder_lock
from dbguard.messages import confirm, detail, headline, info, success
from dbguard.settings import load_settings


@entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, yes=True)
    ap.add_argument("--keep", type=int, metavar="N", help="how many of the newest to keep")
    args = ap.parse_args(argv)
    settings = load_settings()
    keep = check_keep(settings.backup_keep if args.keep is None else args.keep)
    with backup_folder_lock(settings, "db-prune", args.dry_run):
        return prune(settings, keep, args)


def prune(settings, keep: int, args) -> int:
    plan = plan_prune(settings, keep)
    total = len(plan.backups)
    if not plan.files:
        info(f"nothing to remove: {total} backup(s), keeping {plan.keep}")
        return EXIT_OK
    headline(f"Remove {len(plan.doomed)} of {total} backups (keeping the newest {plan.keep})")
    for p in plan.doomed:
        detail(p.name)
    for p in plan.stale:
        kind = "snapshot" if p.parent.name == "volumes" else "dump"
        detail(f"{p.name} (unfinished {kind})")
    if args.dry_run:
        info("dry run: nothing was removed")
        return EXIT_OK
    confirm(f"Delete these {len(plan.doomed) + len(plan.stale)} file(s)?", assume_yes=args.yes)
    removed = delete(plan)
    success(f"removed {removed} file(s); {min(plan.keep, total)} backup(s) kept")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
