#!/usr/bin/env python3
"""List the database's snapshots (newest first, with age and size), or drop some.

Snapshots are databases in the same server (`<db>_dbguard_snap_<name>`, see db-snapshot),
including those db-rollback kept of what it replaced (`replaced_<time>`). With DROP=name one
is dropped; with KEEP=n all but the newest n are: the plan is shown and [y/N] asked first
(without a terminal: refused unless YES=1).

examples:
  make db-snapshots
  make db-snapshots JSON=1
  make db-snapshots DROP=before_migration YES=1
  make db-snapshots KEEP=3
"""
from __future__ import annotations

import json
import sys

from dbguard.cli import entrypoint, parser
from dbguard.db_snapshots import check_name, list_snapshots
from dbguard.destructive.rollback import drop_snapshots
from dbguard.errors import EXIT_OK, Refusal, UsageError
from dbguard.kit import kit_lock, open_kit
from dbguard.messages import confirm, detail, headline, human_age, human_size, info, table
from dbguard.postgres import maintenance_connection
from dbguard.service import require_running


@entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, yes=True)
    ap.add_argument("--json", action="store_true", help="print the list as JSON on stdout")
    ap.add_argument("--drop", metavar="NAME", help="drop this snapshot")
    ap.add_argument("--keep", metavar="N", help="drop all but the newest N snapshots")
    args = ap.parse_args(argv)
    if args.drop and args.keep:
        raise UsageError("--drop and --keep do not go together", "Use one of them")
    if args.keep is not None and not (args.keep.isdigit() and int(args.keep) >= 0):
        raise UsageError(f"KEEP={args.keep!r} is not a number of snapshots",
                         "Give a whole number, e.g. KEEP=3")
    kit = open_kit(args)
    require_running(kit)
    db = kit.settings.db_name
    with maintenance_connection(kit.settings) as conn:
        snapshots = list_snapshots(conn, db)
    if not (args.drop or args.keep is not None):
        if args.json:
            print(json.dumps([s.to_json() for s in snapshots], indent=2))
        elif not snapshots:
            info(f"no snapshots of {db!r} (`make db-snapshot` takes one)")
        else:
            print("\n".join(table([["NAME", "AGE", "SIZE"]] + [
                [s.name, human_age(s.age) if s.taken else "-", human_size(s.size)]
                for s in snapshots])))
        return EXIT_OK
    if args.drop:
        doomed = [s for s in snapshots if s.name == check_name(args.drop)]
        if not doomed:
            raise Refusal(f"{db!r} has no snapshot named {args.drop!r}",
                          "`make db-snapshots` lists them; nothing was changed")
    else:
        doomed = snapshots[int(args.keep):]
        if not doomed:
            info(f"{len(snapshots)} snapshot(s), none beyond the newest {args.keep}: nothing "
                 "to drop")
            return EXIT_OK
    headline("Plan")
    for s in doomed:
        detail(f"drop:     snapshot {s.name!r} ({human_size(s.size)})")
    if kit.runner.dry_run:
        info("dry run: nothing was changed")
        return EXIT_OK
    confirm(f"Drop {len(doomed)} snapshot(s) of {db!r}?", assume_yes=args.yes)
    with kit_lock(kit, "db-snapshots"):
        drop_snapshots(kit.settings, doomed)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
