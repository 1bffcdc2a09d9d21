#!/usr/bin/env python3
"""Give this git worktree a database of its own in the server every checkout shares.

Run in a worktree (`git worktree add ../feature`) whose Compose project is the main checkout's
(the project name locked in the committed compose file, or COMPOSE_PROJECT_NAME in .env): one
server, a database per worktree. Copies the main database inside the server from an idle copy
of it (the snapshot clone_source: taken the first time, when the main database's connections
are ended for the moment the copy takes, and reused after that; REFRESH=1 takes a new one),
counts every table's rows against that copy, records which worktree owns the clone (its
comment), and points this worktree's own untracked .env at it (DJANGO_DB_NAME, and any variable
or PostgreSQL URL there that names the main database; the original is kept under
backups/originals/). The name comes from the branch (`<db>_<branch>`); NAME= chooses one.
`make db-clones` lists the clones; `make db-clones PRUNE=1` drops those of removed worktrees.

examples:
  make db-clone
  make db-clone NAME=sum_db_review REFRESH=1 YES=1
"""
from __future__ import annotations

import sys

from dbguard.actions import clone, perform
from dbguard.cli import entrypoint, parser
from dbguard.errors import EXIT_OK
from dbguard.kit import open_kit


@entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, yes=True)
    ap.add_argument("--name", help="the clone's name (default: <db>_<branch>)")
    ap.add_argument("--refresh", action="store_true",
                    help="take a new idle copy of the main database first")
    args = ap.parse_args(argv)
    perform(open_kit(args, command="db-clone"), clone, args)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
