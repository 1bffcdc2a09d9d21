#!/usr/bin/env python3
"""List what the kit's data-changing commands did: time, command, target, the copy each kept,
and its state (done, failed or interrupted at a step, settled or undone later), oldest first.

Reads the journal (backups/journal.jsonl), which every data-changing command writes before its
first change and at each step; changes nothing. `make db-undo` reverses the last one.

examples:
  make db-history
  make db-history JSON=1
"""
from __future__ import annotations

import json
import sys

from dbguard.cli import entrypoint, parser
from dbguard.errors import EXIT_OK
from dbguard.journal import Journal
from dbguard.messages import history_table, info
from dbguard.settings import load_settings


@entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, dry_run=False)
    ap.add_argument("--json", action="store_true", help="print the list as JSON on stdout")
    args = ap.parse_args(argv)
    journal = Journal(load_settings().backup_dir)
    entries = journal.entries()
    if args.json:
        print(json.dumps([e.to_json() for e in entries], indent=2))
    elif not entries:
        info(f"the journal {journal.path} records no operation yet")
    else:
        print("\n".join(history_table(entries)))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
