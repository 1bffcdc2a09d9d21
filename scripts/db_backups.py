#!/usr/bin/env python3
"""List the backups in backups/, newest first: name, age, size, format, and whether the file
still matches the checksum written when it was made. Reads only.

Safety dumps (taken by db-restore and db-seed before they replace a database) are listed apart:
db-restore never picks one by itself. Unfinished dumps and snapshots (hidden .partial files)
are never listed as backups; they are counted at the end. Volume snapshots (backups/volumes/)
are listed after the dumps.

examples:
  make db-backups
  make db-backups JSON=1
"""
from __future__ import annotations

import json
import sys

from dbguard.backups import list_backups, unfinished_files
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
    rows = [{"file": str(b.path), "name": b.path.name, "database": b.db,
             "taken": b.taken.isoformat(), "age_seconds": int(b.age), "size_bytes": b.size,
             "format": b.format, "checksum_ok": b.checksum_ok(), "safety": b.safety}
            for b in backups]
    folder, volumes = settings.backup_dir, settings.backup_dir / "volumes"
    unfinished, unfinished_snapshots = unfinished_files(settings)
    partial = [p.name for p in unfinished]
    partial_snapshots = [p.name for p in unfinished_snapshots]
    snapshots = sorted(volumes.glob("*.tar"), reverse=True) if volumes.is_dir() else []
    if args.json:
        print(json.dumps({"backups": [r for r in rows if not r["safety"]],
                          "safety_dumps": [r for r in rows if r["safety"]],
                          "unfinished": partial, "snapshots": [str(s) for s in snapshots],
                          "unfinished_snapshots": partial_snapshots}, indent=2))
        return EXIT_OK
    header = ("NAME", "AGE", "SIZE", "FORMAT", "CHECKSUM")

    def listing(chosen: list[dict]) -> str:
        return "\n".join(table([header] + [
            (r["name"], human_age(r["age_seconds"]), human_size(r["size_bytes"]), r["format"],
             STATE[r["checksum_ok"]]) for r in chosen]))

    own = [r for r in rows if not r["safety"]]
    safety = [r for r in rows if r["safety"]]
    print(listing(own) if own else f"no backups in {folder} (`make db-dump` takes one)")
    if safety:
        print("\nsafety dumps (taken before a restore or seed replaced the database; never "
              "restored by default, FILE= restores one):")
        print(listing(safety))
    for s in snapshots:
        print(f"snapshot: {s.name} ({human_size(s.stat().st_size)})")
    if partial:
        print(f"{len(partial)} unfinished dump(s) (not backups; `make db-prune` removes them)")
    if partial_snapshots:
        print(f"{len(partial_snapshots)} unfinished snapshot(s) in {volumes} (not snapshots; "
              "`make db-prune` removes them)")
    return EXIT_OK

if __name__ == "__main__":
    sys.exit(main())
