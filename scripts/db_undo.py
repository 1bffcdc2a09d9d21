#!/usr/bin/env python3
"""Reverse the last data-changing operation (finished or interrupted) from the copy it kept.

REPLACES what the operation changed with the copy it kept (the journal, `make db-history`,
says which), after the same steps as every destructive command: the plan, a [y/N] question
(without a terminal: refused unless YES=1), everything read again after the answer, a copy of
what it replaces (a database as the snapshot replaced_<time>; a volume's contents as a tar
under backups/volumes/), and a check of the result. So db-undo itself can be undone.

  restore, seed, rollback     the database it replaced, kept inside the server, is swapped back
  snapshot                    the snapshot it took is dropped
  migrate-volume              the target's snapshot (tar) is put back, or it is emptied again
  upgrade                     the old cluster is copied back from the volume that keeps it,
                              and the compose file it changed is put back
It refuses, saying why, when the operation kept no copy (db-prune and dropped snapshots: they
deleted copies) or that copy is gone. OP=<n> undoes an earlier one.

examples:
  make db-undo
  make db-undo OP=12 YES=1
"""
from __future__ import annotations

import sys

from dbguard.actions import perform, undo
from dbguard.cli import entrypoint, parser
from dbguard.errors import EXIT_OK
from dbguard.kit import open_kit


@entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, yes=True)
    ap.add_argument("--op", type=int, metavar="N", help="the operation to undo (db-history)")
    ap.add_argument("--force", action="store_true",
                    help="also stop containers of other projects that use the volume")
    args = ap.parse_args(argv)
    perform(open_kit(args, command="db-undo"), undo, args)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
