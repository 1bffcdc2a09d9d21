#!/usr/bin/env python3
"""Dump the database to a verified, timestamped file in backups/.

pg_dump runs inside the db container (`compose exec -T`, no password on any command line) and
its output streams into backups/ under a hidden temporary name. Only when pg_dump succeeded,
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
"""
from __future__ import annotations

import sys

from dbguard.backups import FORMAT_EXT
from dbguard.cli import entrypoint, parser
from dbguard.destructive.delete_backups import remove_unfinished
from dbguard.dumps import compression, dump_command, take_dump
from dbguard.errors import EXIT_OK
from dbguard.kit import kit_lock, open_kit
from dbguard.messages import info
from dbguard.service import require_running


@entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--format", choices=("custom", "plain"),
                    help="custom (pg_dump -Fc) or plain SQL; default DBGUARD_DUMP_FORMAT")
    args = ap.parse_args(argv)
    kit = open_kit(args)
    fmt = args.format or kit.settings.dump_format
    require_running(kit)
    if kit.runner.dry_run:
        level = ("-Z", compression(kit)) if fmt == "custom" else ()
        kit.runner.show(dump_command(kit, fmt, kit.settings.db_name, *level), "would run:")
        info(f"dry run: would write {kit.settings.backup_dir}/{kit.settings.db_name}_"
               f"<time>.{FORMAT_EXT[fmt]}")
        return EXIT_OK
    with kit_lock(kit, "db-dump"):
        remove_unfinished(kit.settings, kit.runner.dry_run)
        path = take_dump(kit, fmt)
    print(path)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
