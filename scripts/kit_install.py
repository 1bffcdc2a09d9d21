#!/usr/bin/env python3
"""Put the kit into another repository: one folder of its own, `make db-*` there, nothing moved.

Works out the whole install first and refuses (exit 3, nothing written) with every reason at
once; then copies the kit into DEST/FOLDER (default dbguard/), adds the .gitignore lines for its
.venv, backups and kept originals, finds the compose file that runs PostgreSQL (Compose's own,
or the only one in the repository, written into the kit's .env as COMPOSE_FILE; COMPOSE_FILE=
names it when there are several), locks the data's volume name in it (`name:` under the volume
in `volumes:`, which Compose v1 and v2 both read, checked with every Compose on the machine
afterwards), and adds `include FOLDER/dbguard.mk` to the repository's Makefile (creating one).
A target of the repository's that the kit also has (its own `db-up`, say) is refused unless
TAKEOVER=1 (or yes on a terminal): then the kit's is the one the team types and the
repository's stays, renamed `db-up-before-dbguard`; PREFIX=kit- installs the kit's as
kit-db-up ... instead. Every host file it changes is copied first to FOLDER/.originals/<time>/
and written atomically; an interrupted install is completed by running it again. Run again, it
changes nothing; with DRY_RUN=1 it shows the plan and changes nothing at all.

examples:
  make kit-install DEST=../shop
  make kit-install DEST=../shop DRY_RUN=1
  make kit-install DEST=../shop TAKEOVER=1
  make kit-install DEST=../shop COMPOSE_FILE=docker/docker-compose.yml FOLDER=tools/dbguard
"""
from __future__ import annotations

import sys
from pathlib import Path

from dbguard.cli import entrypoint, parser
from dbguard.errors import EXIT_OK, refusal
from dbguard.install import KEPT_SUFFIX, apply, plan_install
from dbguard.messages import confirm, detail, headline, info, success
from dbguard.runner import Runner


@entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, yes=True)
    ap.add_argument("dest", metavar="DEST", help="the repository to put the kit into")
    ap.add_argument("--folder", default="dbguard", help="the kit's folder in it (dbguard)")
    ap.add_argument("--prefix", default="", help="put this before every target of the kit")
    ap.add_argument("--takeover", action="store_true",
                    help="make the kit's db-* targets the ones the repository's Makefile runs")
    ap.add_argument("--compose-file", metavar="FILES",
                    help="the compose file(s) the kit guards, relative to DEST")
    args = ap.parse_args(argv)
    dest = Path(args.dest)
    runner = Runner(dest.resolve() if dest.is_dir() else Path.cwd(), args.verbose)
    plan, lock, typed = plan_install(dest, args.folder, args.prefix, args.takeover,
                                     args.compose_file, runner)
    clash = [r for r in plan.refusals if "TAKEOVER=1" in r]
    if clash and len(plan.refusals) == 1 and sys.stdin.isatty() and not args.dry_run:
        detail(clash[0])
        confirm(f"Make the kit's targets the ones `make` runs (yours kept as *{KEPT_SUFFIX})?",
                assume_yes=False)
        plan, lock, typed = plan_install(dest, args.folder, args.prefix, True,
                                         args.compose_file, runner)
    if plan.refusals:
        raise refusal(f"install dbguard into {plan.dest}", plan.refusals)
    lines = plan.lines(args.dry_run)
    headline("dbguard in " + str(plan.dest) + (" (dry run: nothing was changed)"
                                               if args.dry_run else ""))
    for line in lines or ["nothing to do: it is installed and up to date"]:
        detail(line)
    for note in plan.notes:
        detail(f"note: {note}")
    if args.dry_run:
        return EXIT_OK
    apply(plan, runner, lock)
    if typed:
        info(f"the team types `{typed}` in {plan.dest}: the kit's, guarded")
    success(f"installed: `make {args.prefix}db-info` in {plan.dest} shows the database and "
            "its volumes")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
