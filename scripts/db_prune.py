#!/usr/bin/env python3
"""Remove old dumps from backups/, keeping the newest KEEP of each database (default
DBGUARD_BACKUP_KEEP).

DELETES files, after showing which and asking [y/N] (without a terminal: refuses unless
--yes). KEEP counts, per database, the regular dumps that still match their checksum: a
database with fewer loses nothing, safety dumps and other databases' dumps never count, and a
newer file that fails its check is kept for you to look at. Only files it can identify as kit
backups are touched: <db>_<YYYYmmdd_HHMMSS>.dump or .sql with their .sha256 (safety dumps
older than every kept dump of their database too), and unfinished dumps and snapshots
(.partial), which only killed runs leave. Anything else in the folder, and finished volume
snapshots, are left alone. It takes the kit's lock and records what it deletes in the
journal; needs neither Docker nor a compose file.

examples:
  make db-prune
  make db-prune KEEP=3 YES=1          the newest 3 verified dumps of each database stay
"""
from __future__ import annotations

import sys

from dbguard.actions import perform, prune
from dbguard.cli import entrypoint, parser
from dbguard.errors import EXIT_OK
from dbguard.kit import Folder
from dbguard.runner import Runner
from dbguard.settings import load_settings


@entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, yes=True)
    ap.add_argument("--keep", type=int, metavar="N",
                    help="how many of the newest verified dumps of each database to keep")
    args = ap.parse_args(argv)
    settings = load_settings()
    perform(Folder(settings, Runner(settings.project_dir, args.verbose, args.dry_run)), prune,
            args)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
