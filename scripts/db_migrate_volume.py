#!/usr/bin/env python3
"""Copy a cluster from another volume or folder into the active one (after a renamed directory,
a new project name, a moved data folder, or to move between a folder and a named volume).

REPLACES the active volume's (or folder's) contents, after taking a verified snapshot of them
under backups/volumes/ (printed; `make db-undo` puts it back). The source is mounted read-only
and never changed or deleted; the command to remove it later is printed instead.

Steps, each only after the one before succeeded, each recorded in the journal first:
  1. pick the source: the one other volume or folder of the project that holds a cluster
     (FROM names one: any volume, `make db-find` lists them, or a folder such as
     ./postgres14); refuse if it holds no cluster, is the target, or was made by another
     PostgreSQL major version than the image runs;
  2. show the plan and ask [y/N] (without a terminal: refuse unless --yes); look at
     everything again after the answer, and refuse if it changed;
  3. stop every container that uses either volume (refuse if one is not of this project,
     unless --force);
  4. snapshot the target if it holds anything: tar, checksum, read back file by file;
  5. mark the target as unfinished, empty it, copy with `cp -a` in a throwaway container (no
     network), then compare both sides file by file (type, mode, owner, size, checksum); on
     any difference, put the snapshot back and exit 1 (a target that held nothing stays
     marked and empty: run again, or `make db-undo`);
  6. give the target the Compose labels of this project, start the service, report.
A copy interrupted at any point leaves the mark, and db-up refuses to start on it.

examples:
  make db-migrate-volume
  make db-migrate-volume FROM=tradesite_sum_db_data YES=1
  make db-migrate-volume FROM=./postgres14 YES=1     from a bind-mounted folder
  make db-migrate-volume UNDO=1        reverse the newest migrate of the active volume (db-undo)
"""
from __future__ import annotations

import sys

from dbguard.actions import migrate, perform, undo
from dbguard.cli import entrypoint, parser
from dbguard.errors import EXIT_OK, UsageError
from dbguard.kit import open_kit


@entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, yes=True)
    ap.add_argument("--from", dest="source", metavar="VOLUME",
                    help="the volume or folder to copy from (needed when several hold one)")
    ap.add_argument("--force", action="store_true",
                    help="also stop containers of other projects that use either volume")
    ap.add_argument("--undo", action="store_true",
                    help="reverse the newest db-migrate-volume of the active volume instead "
                         "(the same as db-undo OP=<its number>)")
    args = ap.parse_args(argv)
    if args.undo and args.source:
        raise UsageError("--undo and --from do not go together",
                         "Use one of them (UNDO=1 or FROM=<volume>)")
    kit = open_kit(args, command="db-migrate-volume")
    if args.undo:
        args.op = undo.newest(kit, "db-migrate-volume")
        perform(kit, undo, args)
    else:
        perform(kit, migrate, args)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
