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

import _dbguard as g

STATE = {True: "verified", False: "CHECKSUM MISMATCH", None: "no checksum"}


@g.entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = g.parser(__doc__, dry_run=False)
    ap.add_argument("--json", action="store_true", help="print the list as JSON on stdout")
    args = ap.parse_args(argv)
    settings = g.load_settings()
    backups = g.list_backups(settings)
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
        return g.EXIT_OK
    if not rows:
        print(f"no backups in {folder} (`make db-dump` takes one)")
    else:
        table = [("NAME", "AGE", "SIZE", "FORMAT", "CHECKSUM")] + [
            (r["name"], g.human_age(r["age_seconds"]), g.human_size(r["size_bytes"]),
             r["format"], STATE[r["checksum_ok"]]) for r in rows]
        widths = [max(len(row[i]) for row in table) for i in range(5)]
        for row in table:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    for s in snapshots:
        print(f"snapshot: {s.name} ({g.human_size(s.stat().st_size)})")
    if partial:
        print(f"{len(partial)} unfinished dump(s) (not backups; `make db-prune` removes them)")
    return g.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
