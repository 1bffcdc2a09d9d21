#!/usr/bin/env python3
"""List the worktrees' databases and what removed checkouts left; PRUNE=1 removes that.

Lists every clone db-clone made in the shared server (the worktree that owns it, its branch,
age, size, and whether the worktree still exists), every checkout of the repository with the
Compose project it resolves to, and the volumes of checkouts that are gone (where each worktree
had a project of its own; the kit records what each checkout used in the repository's common
git folder). PRUNE=1, after a question, drops only the clones whose worktree is gone and
removes only the volumes of gone checkouts that no container uses and no other checkout
resolves to; never the main database, its snapshots, or a live checkout's volume.

examples:
  make db-clones
  make db-clones JSON=1
  make db-clones PRUNE=1
"""
from __future__ import annotations

import json
import sys

from dbguard.actions import perform, prune_clones
from dbguard.cli import entrypoint, parser
from dbguard.errors import EXIT_OK
from dbguard.kit import open_kit
from dbguard.messages import clones_report


@entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, yes=True)
    ap.add_argument("--json", action="store_true", help="print the list as JSON on stdout")
    ap.add_argument("--prune", action="store_true",
                    help="remove the clones and volumes of removed checkouts")
    args = ap.parse_args(argv)
    kit = open_kit(args, command="db-clones")
    if args.prune:
        perform(kit, prune_clones, args)
        return EXIT_OK
    facts = prune_clones.listing(kit)
    print(json.dumps(facts, indent=2) if args.json else clones_report(facts), end="" if not
          args.json else "\n")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
