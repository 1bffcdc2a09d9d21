#!/usr/bin/env python3
"""Remove old dumps from backups/, keeping the newest KEEP (default DBGUARD_BACKUP_KEEP).

DELETES files, after showing which and asking [y/N] (without a terminal: refuses unless
--yes). Only files it can identify as kit backups are touched: <db>_<YYYYmmdd_HHMMSS>.dump or
.sql with their .sha256, and unfinished dumps (.partial) older than an hour. Anything else in
the folder, and volume snapshots, are left alone.

examples:
  make db-prune
  make db-prune KEEP=3 YES=1
"""
from __future__ import annotations

import sys
import time

import _dbguard as g


@g.entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = g.parser(__doc__, yes=True)
    ap.add_argument("--keep", type=int, metavar="N", help="how many of the newest to keep")
    args = ap.parse_args(argv)
    settings = g.load_settings()
    keep = settings.backup_keep if args.keep is None else args.keep
    if keep < 1:
        raise g.UsageError(f"--keep {keep} would remove every backup",
                           "Keep at least one (KEEP=1); nothing was removed")
    backups = g.list_backups(settings)
    doomed = [b.path for b in backups[keep:]]
    folder = settings.backup_dir
    hour_ago = time.time() - 3600
    stale = [p for p in folder.glob(".*.partial") if p.stat().st_mtime < hour_ago] \
        if folder.is_dir() else []
    files = [f for p in doomed for f in (p, p.with_name(p.name + ".sha256")) if f.exists()]
    files += stale
    if not files:
        g.info(f"nothing to remove: {len(backups)} backup(s), keeping {keep}")
        return g.EXIT_OK
    g.headline(f"Remove {len(doomed)} of {len(backups)} backups (keeping the newest {keep})")
    for p in doomed:
        g.detail(p.name)
    for p in stale:
        g.detail(f"{p.name} (unfinished dump)")
    if args.dry_run:
        g.info("dry run: nothing was removed")
        return g.EXIT_OK
    g.confirm(f"Delete these {len(doomed) + len(stale)} file(s)?", assume_yes=args.yes)
    for f in files:
        f.unlink()
    g.success(f"removed {len(files)} file(s); {min(keep, len(backups))} backup(s) kept")
    return g.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
