#!/usr/bin/env python3
"""Put a snapshot back: the database becomes what it was when the snapshot was taken.

REPLACES the configured database with a copy of the snapshot (the newest by default, or NAME).
The plan is shown and [y/N] asked (without a terminal: refused unless YES=1). The copy is made
beside the database (a file copy, seconds per gigabyte), then other connections are ended and
the two are swapped by renaming them in one transaction. What it replaces is kept as a new
snapshot, `replaced_<time>`, so the rollback itself is undone by rolling back to that one; the
snapshot rolled back to stays as well.

examples:
  make db-rollback
  make db-rollback NAME=before_migration YES=1
"""
from __future__ import annotations

import sys

from dbguard.cli import entrypoint, parser
from dbguard.db_snapshots import check_name, list_snapshots
from dbguard.destructive.rollback import roll_back
from dbguard.errors import EXIT_OK, Refusal
from dbguard.kit import kit_lock, open_kit
from dbguard.messages import confirm, detail, headline, human_age, human_size, info, success
from dbguard.postgres import maintenance_connection
from dbguard.service import require_running


@entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, yes=True)
    ap.add_argument("--name", help="the snapshot to put back (default: the newest)")
    args = ap.parse_args(argv)
    wanted = check_name(args.name) if args.name else None
    kit = open_kit(args)
    require_running(kit)
    db = kit.settings.db_name
    with kit_lock(kit, "db-rollback"):
        with maintenance_connection(kit.settings) as conn:
            snapshots = list_snapshots(conn, db)
            size = conn.execute("SELECT pg_database_size(%s)", [db]).fetchone()[0] \
                if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                [db]).fetchone() else None
        chosen = next((s for s in snapshots if s.name == wanted), None) if wanted else \
            (snapshots[0] if snapshots else None)
        if chosen is None:
            raise Refusal(f"{db!r} has no snapshot" + (f" named {wanted!r}" if wanted else ""),
                          "`make db-snapshots` lists them, `make db-snapshot` takes one; "
                          "nothing was changed")
        headline("Plan")
        age = f", taken {human_age(chosen.age)} ago" if chosen.taken else ""
        detail(f"put back: snapshot {chosen.name!r} ({human_size(chosen.size)}{age})")
        detail(f"replace:  database {db!r}" + (f" ({human_size(size)}); kept as a snapshot "
                                               "replaced_<time>" if size is not None else
                                               " (does not exist)"))
        if kit.runner.dry_run:
            info("dry run: nothing was changed")
            return EXIT_OK
        confirm(f"Replace database {db!r} with snapshot {chosen.name!r}?", assume_yes=args.yes)
        kept = roll_back(kit.settings, chosen)
    success(f"{db!r} holds snapshot {chosen.name!r} again; what it held is snapshot {kept!r} "
            f"(make db-rollback NAME={kept} undoes this)")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
