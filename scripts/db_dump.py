#!/usr/bin/env python3
"""Dump the database to a verified, timestamped file in backups/.

pg_dump runs inside the db container (`compose exec -T`, no password on any command line) and
its output streams into backups/ under a hidden temporary name. Only when pg_dump succeeded,
the file reads back (custom: pg_restore reads the whole archive; plain: pg_dump's completion
trailer is there) and its sha256 is written beside it, is it renamed to
backups/<db>_<YYYYmmdd_HHMMSS>.<dump|sql>, readable by the owner only. A dump that fails, is
interrupted or killed leaves no file that db-restore or db-backups would take for a backup.

Formats: custom (default: compressed, restored in parallel, checkable as a whole) or plain SQL.
Changes nothing in the database.

examples:
  make db-dump
  make db-dump FORMAT=plain
"""
from __future__ import annotations

import sys

import _dbguard as g


@g.entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = g.parser(__doc__)
    ap.add_argument("--format", choices=("custom", "plain"),
                    help="custom (pg_dump -Fc) or plain SQL; default DBGUARD_DUMP_FORMAT")
    args = ap.parse_args(argv)
    kit = g.open_kit(args)
    fmt = args.format or kit.settings.dump_format
    g.require_running(kit)
    if kit.run.dry_run:
        kit.run.show(g.dump_command(kit, fmt, kit.settings.db_name), "would run:")
        g.info(f"dry run: would write {kit.settings.backup_dir}/{kit.settings.db_name}_"
               f"<time>.{g.FORMAT_EXT[fmt]}")
        return g.EXIT_OK
    path = g.take_dump(kit, fmt)
    print(path)
    return g.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
