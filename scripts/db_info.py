#!/usr/bin/env python3
"""Show which volume holds the database, spot "parallel universes", and say what to fix.

Reads only: the compose configuration, Docker's lists of volumes and containers, the contents
of each volume that may hold this project's data (through one throwaway container of the db
image: no network, read-only mounts, nothing pulled) and, when it answers, the server itself.
It changes nothing, and the number of docker calls does not grow with the volumes on the machine.

Problems it names, each with a stable code and the commands that fix it:
  PARALLEL_UNIVERSE        the active volume is missing, empty or fresh while another holds data
  PG_VERSION_MISMATCH      the volume's cluster was made by another PostgreSQL major version
  PG18_MOUNT_PATH          a postgres 18+ image with its volume at /var/lib/postgresql/data
  PGDATA_NOT_ON_VOLUME     the cluster would land in an anonymous volume, tmpfs or no volume
  PGDATA_ELSEWHERE         the volume's cluster is not where the server looks (PGDATA)
  INCOMPLETE_COPY          the active volume holds an unfinished copy (the journal names it)
  UPGRADE_INCOMPLETE       an unfinished db-upgrade: db-upgrade finishes it, db-undo reverses it
  INTERRUPTED_OPERATION    another command the journal records as unfinished, named exactly
  PROJECT_NAME_NOT_LOCKED  the project name comes from the directory name
  COLLATION_DRIFT          a database's collation version changed under it (glibc, ICU)
  BACKUP_STALE             the newest dump is older than DBGUARD_BACKUP_MAX_AGE_DAYS
  DATABASE_CLOSED          the database refuses connections, and no dbguard command closed it
  STRANDED_CLUSTERS        the active volume is empty; clusters of its major wait elsewhere
  DATA_IN_WORK_TREE        the data folder sits untracked in a git work tree (git clean)

examples:
  make db-info
  make db-info JSON=1               the same facts as JSON on stdout
  make db-info CHECK=1              exit 1 when a problem is found (scripts, CI)
  python scripts/db_info.py --json --check
"""
from __future__ import annotations

import json
import sys

from dbguard.cli import entrypoint, parser
from dbguard.errors import EXIT_FAILED, EXIT_OK
from dbguard.facts import collect
from dbguard.kit import open_kit
from dbguard.messages import info_report


@entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, dry_run=False, db=True)
    ap.add_argument("--json", action="store_true", help="print the facts as JSON on stdout")
    ap.add_argument("--check", action="store_true", help="exit 1 when a problem is found")
    args = ap.parse_args(argv)
    facts, volumes = collect(open_kit(args))
    print(json.dumps(facts, indent=2) if args.json else info_report(facts, volumes))
    return EXIT_FAILED if args.check and facts["problems"] else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
