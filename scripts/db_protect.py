#!/usr/bin/env python3
"""Protect the active volume from `docker compose down -v`, `docker volume prune` and friends.

Starts a keeper: a small running container that refers to the volume read-only, so Docker
refuses to remove the volume ("volume is in use") under Compose v1 and v2, and the prunes of
stopped containers pass it by. It restarts with Docker, carries no Compose label (so `compose
down`, even with --remove-orphans, does not take it), and never stands in the kit's way:
db-migrate-volume and db-upgrade keep the data protected. What still gets through: removing
the keeper itself, stopping it and then pruning, and deleting Docker's whole data. A data folder
needs no keeper (Docker never removes folders). OFF=1 removes the keeper; the data stays.

examples:
  make db-protect
  make db-protect OFF=1
  make db-info                      shows whether the volume is protected
"""
from __future__ import annotations

import sys

from dbguard.actions.protect import run
from dbguard.cli import entrypoint, parser
from dbguard.errors import EXIT_OK
from dbguard.kit import open_kit


@entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--off", action="store_true", help="remove the protection (the keeper)")
    args = ap.parse_args(argv)
    run(open_kit(args, command="db-protect"), args.off)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
