#!/usr/bin/env python3
"""Dump the database to a verified, timestamped file in backups/.

pg_dump runs inside the db container (`docker exec`, over its local socket: no password on any
command line) and its output streams into backups/ under a hidden temporary name. Only when pg_dump succeeded,
the file is whole (custom: the archive's structure, walked as it streams in, ends exactly after
the data block of every table its table of contents names; plain: pg_dump's completion trailer
is there) and its sha256 is written beside it, is it renamed to
backups/<db>_<YYYYmmdd_HHMMSS>.<dump|sql>, readable by the owner only. A dump that fails, is
interrupted or killed leaves no file that db-restore or db-backups would take for a backup.

Formats: custom (default: restored in parallel, checkable as a whole) or plain SQL. Custom
dumps are compressed fast: zstd level 1 from PostgreSQL 16, zlib level 1 before
(DBGUARD_DUMP_COMPRESSION chooses otherwise). Changes nothing in the database.

examples:
  make db-dump
  make db-dump FORMAT=plain
  make db-dump DB=mastodon_production
"""
from __future__ import annotations

import sys

from dbguard.actions.export import dump
from dbguard.cli import entrypoint, parser
from dbguard.errors import EXIT_OK
from dbguard.kit import open_kit


@entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, db=True)
    ap.add_argument("--format", choices=("custom", "plain"),
                    help="custom (pg_dump -Fc) or plain SQL; default DBGUARD_DUMP_FORMAT")
    args = ap.parse_args(argv)
    kit = open_kit(args, command="db-dump")
    path = dump(kit, args.format or kit.settings.dump_format)
    if path:
        print(path)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
