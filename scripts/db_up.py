#!/usr/bin/env python3
"""Start the database, after checking that the volume or folder it will use is the right one.

Before anything starts it refuses (exit 3, nothing created) when:
  - the active volume or folder does not exist yet, or holds no cluster, while another of the
    project's holds one: a renamed directory, a changed project name or data folder, the
    incident this kit exists for (ALLOW_NEW_VOLUME=1 / --allow-new-volume starts empty anyway);
  - the cluster was made by another PostgreSQL major version than the image runs;
  - a postgres 18+ image would keep its data outside the mount (the mount-path change);
  - the cluster is in another folder than the one PGDATA names (the server would initialise
    a new, empty cluster beside it);
  - the journal or the unfinished-copy mark says a copy or upgrade into it is unfinished.
It takes the kit's lock (no other dbguard command changes data meanwhile), removes helper
containers a killed run of this project left, runs `compose up -d` for the database service
and waits until it is healthy (on a timeout it shows the last log lines), then settles what an
interrupted change inside the server left, naming the command from the journal. On first run
in the kit's own repository it creates .env from .env.example. It never removes, empties or
rewrites a volume.

examples:
  make db-up
  make db-up ALLOW_NEW_VOLUME=1     start on a new, empty volume although another holds data
  python scripts/db_up.py --dry-run
"""
from __future__ import annotations

import sys

from dbguard.actions.up import up
from dbguard.cli import entrypoint, parser
from dbguard.errors import EXIT_OK
from dbguard.kit import open_kit
from dbguard.messages import info
from dbguard.checkouts import env_from_main_checkout
from dbguard.settings import init_env_file, needs_env_file


@entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, yes=True)
    ap.add_argument("--allow-new-volume", action="store_true",
                    help="start on a new, empty volume even though another volume holds data")
    ap.add_argument("--seed", action="store_true",
                    help="in a checkout with a Compose project of its own: copy the volume of "
                         "the checkout it came from into its new, empty one first")
    args = ap.parse_args(argv)
    copied = env_from_main_checkout(dry_run=args.dry_run)
    if copied:
        info(f"created .env from the main checkout's ({copied}): the same Compose project, so "
             "the same server; `make db-clone` gives this worktree a database of its own")
    if args.dry_run and needs_env_file():
        info("dry run: would create .env from .env.example, then check and start; nothing "
             "was changed")
        return EXIT_OK
    locked = init_env_file()
    if locked:
        info(f"created .env from .env.example with COMPOSE_PROJECT_NAME={locked}, the name "
             "Compose uses for this folder (review it: it also holds the database password)")
    up(open_kit(args, command="db-up"), args.allow_new_volume, seed=args.seed, yes=args.yes)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
