#!/usr/bin/env python3
"""List the database's snapshots (newest first, with age and size), or drop some.

Snapshots are databases in the same server (`<db>_dbguard_snap_<name>`, see db-snapshot),
including those db-rollback kept of what it replaced (`replaced_<time>`). With DROP=name one
is dropped; with KEEP=n all that db-snapshot took but the newest n are (the kit's own,
before_restore, before_seed and replaced_*, are what db-undo puts back: KEEP leaves them, DROP
drops one). The plan is shown and [y/N] asked first (without a terminal: refused unless
YES=1); KEEP=0 is refused. A dropped snapshot is not kept (it was itself a copy).

examples:
  make db-snapshots
  make db-snapshots JSON=1
  make db-snapshots DROP=before_migration YES=1
  make db-snapshots KEEP=3
"""
from __future__ import annotations

import json
import sys

from dbguard.actions import drop_snapshots, perform
from dbguard.cli import entrypoint, parser
from dbguard.db_snapshots import check_name, list_snapshots
from dbguard.errors import EXIT_OK, UsageError
from dbguard.kit import open_kit
from dbguard.messages import human_age, human_size, info, table


@entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, yes=True, db=True)
    ap.add_argument("--json", action="store_true", help="print the list as JSON on stdout")
    ap.add_argument("--drop", metavar="NAME", help="drop this snapshot")
    ap.add_argument("--keep", metavar="N", help="drop all but the newest N snapshots")
    args = ap.parse_args(argv)
    if args.drop and args.keep:
        raise UsageError("--drop and --keep do not go together", "Use one of them")
    if args.keep is not None and not args.keep.isdigit():
        raise UsageError(f"KEEP={args.keep!r} is not a number of snapshots",
                         "Give a whole number, e.g. KEEP=3")
    if args.drop:
        check_name(args.drop)
    kit = open_kit(args, command="db-snapshots")
    if args.drop or args.keep is not None:
        perform(kit, drop_snapshots, args)
        return EXIT_OK
    snapshots = list_snapshots(kit.server(), kit.db)
    if args.json:
        print(json.dumps([s.to_json() for s in snapshots], indent=2))
    elif not snapshots:
        info(f"no snapshots of {kit.db!r} (`make db-snapshot` takes one)")
    else:
        print("\n".join(table([["NAME", "AGE", "SIZE"]] + [
            [s.name, human_age(s.age), human_size(s.size)] for s in snapshots])))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
