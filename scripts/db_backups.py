#!/usr/bin/env python3
"""List the backups in backups/, newest first: name, age, size, format, and whether the file
still matches the checksum written when it was made. Reads only.

Unfinished dumps (hidden .partial files) are never listed as backups; they are counted at the
end. Volume snapshots (backups/volumes/) are listed after the dumps.

examples:
  make db-backups
  make db-backups JSON=1
"""
from __future__ import annotations

import json
import sys

from dbguard.backups import list_backups
from dbguard.cli import entrypoint, parser
from dbguard.errors import EXIT_OK
from dbguard.messages import human_age, human_size, table
from dbguard.settings import load_settings

STATE = {True: "verified", False: "CHECKSUM MISMATCH", None: "no checksum"}


@entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, dry_run=False)
    ap.add_argument("--json", action="store_true", help="print the list as JSON on stdout")
    args = ap.parse_args(argv)
    settings = load_settings()
    backups = list_backups(settings)
    rows = [{"file": str(b.path), "name": b.path.name, "taken": b.taken.isoformat(),
             "age_seconds": int(b.age), "size_bytes": b.size, "format": b.format,
             "checksum_ok": b.checksum_ok()} for b in backups]
    folder = settings.backup_dir
    partial = sorted(p.name for p in folder.glob(".*.partial")) if folder.is_dir() else []
    snapshots = sorted((folder / "volumes").glob("*.tar"), reverse=True) \
        if (folder / "volumes").is_dir() else []
    if args.json:
        print(json.dumps({"backups": rows, "unfinished": partial,
                          "snapshots": [str(s) for s in snapshots]}, indent=2))
        return EXIT_OK
    if not rows:
        print(f"no backups in {folder} (`make db-dump` takes one)")
    else:
        print("\n".join(table([("NAME", "AGE", "SIZE", "FORMAT", "CHECKSUM")] + [
            (r["name"], human_age(r["age_seconds"]), human_size(r["size_bytes"]),
             r["format"], STATE[r["checksum_ok"]]) for r in rows])))
    for s in snapshots:
        print(f"snapshot: {s.name} ({human_size(s.stat().st_size)})")
    if partial:
        print(f"{len(partial)} unfinished dump(s) (not backups; `make db-prune` removes them)")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
