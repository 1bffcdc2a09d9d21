#!/usr/bin/env python3
"""Move the database to a new PostgreSQL major without losing a row (15 -> 17, 17 -> 18, ...).

For when the compose file's image runs a newer major than the cluster in the active volume (db-up
refuses that as PG_VERSION_MISMATCH). The plan is shown and [y/N] asked (without a terminal:
refused unless YES=1); then, under the kit's lock:

  1. the containers are stopped, and the old cluster is copied into a volume of its own,
     <volume>_pg<N>_<time>, verified file by file, never touched again (its name is printed);
  2. the old cluster's server (OLD_IMAGE, no network) is read by the NEW image's pg_dumpall:
     roles, every database, large objects, into backups/upgrades/ (the dump is kept too);
  3. the active volume is marked and emptied; a throwaway server of the new image, with no
     network, initialises the new cluster (as the service would) and loads the dump, stopping
     at the first error; nothing can reach the cluster while it is half loaded;
  4. every table's row count and checksum, the owners, views, sequences, extensions, large
     objects, databases and roles are compared before and after; any difference fails, with
     the service stopped and the volume marked;
  5. only then is the mark removed and the service started.

OLD_IMAGE defaults to the configured image with the old major (postgres:17-alpine ->
postgres:15-alpine). For 18+, which keeps its cluster below /var/lib/postgresql, a mount at
/var/lib/postgresql/data is changed (shown, asked, the original kept in backups/upgrades/).

Interrupted at any point, the active volume is never one db-up starts on by mistake: the
journal records every step, and db-up and db-info name it (UPGRADE_INCOMPLETE); running
db-upgrade again starts over from the kept copy, and `make db-undo` (or UNDO=1) puts the old
cluster back (after a snapshot of what the volume holds then).

examples:
  make db-upgrade
  make db-upgrade OLD_IMAGE=postgres:15 YES=1
  make db-upgrade UNDO=1
"""
from __future__ import annotations

import sys

from dbguard.actions import perform, undo, upgrade
from dbguard.cli import entrypoint, parser
from dbguard.errors import EXIT_OK
from dbguard.kit import open_kit


@entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, yes=True)
    ap.add_argument("--old-image", metavar="IMAGE", help="an image of the cluster's major")
    ap.add_argument("--force", action="store_true",
                    help="also stop containers of other projects that use the volume")
    ap.add_argument("--undo", action="store_true",
                    help="reverse the newest db-upgrade of the active volume (the same as "
                         "db-undo OP=<its number>)")
    args = ap.parse_args(argv)
    kit = open_kit(args, command="db-upgrade")
    if args.undo:
        args.op = undo.newest(kit, "db-upgrade")
        perform(kit, undo, args)
    else:
        perform(kit, upgrade, args)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
