#!/usr/bin/env python3
"""Put the kit into another repository: one folder of its own, `make db-*` there, nothing moved.

Copies the kit into DEST/FOLDER (default dbguard/), adds `include FOLDER/dbguard.mk` to the
repository's Makefile (creating one if there is none) unless a target of the kit's would clash
with one of the repository's (then it refuses and names them; PREFIX=kit- namespaces the kit's
targets instead), adds the .gitignore lines for the kit's .venv, backups and kept originals,
and locks the Compose project name in effect today, so that adopting the kit moves no volume:
`name:` at the top of the compose file under Compose v2 (committed, seen by plain
`docker compose` and by every clone, whatever its folder is called); COMPOSE_PROJECT_NAME in the
project's .env under Compose v1, which has no `name:`. Every host file it changes is first
copied to FOLDER/.originals/<time>/. Run again, it changes nothing.

examples:
  make kit-install DEST=../shop
  make kit-install DEST=../shop DRY_RUN=1
  make kit-install DEST=../shop PREFIX=kit- FOLDER=tools/dbguard
"""
from __future__ import annotations

import sys
from pathlib import Path

from dbguard.cli import entrypoint, parser
from dbguard.compose import Compose, load_project
from dbguard.errors import EXIT_OK, Failure
from dbguard.install import (Plan, add_env_line, check_destination, copy_kit, ignore_lines,
                             lock_text, wire_makefile)
from dbguard.messages import detail, headline, info, success, warning
from dbguard.runner import Runner
from dbguard.settings import load_settings


def lock_project_name(plan: Plan) -> None:
    """Asks Compose which project name it uses for the repository today and locks exactly
    that one."""
    settings = load_settings(plan.folder)
    dest = plan.dest
    inside = dest in (settings.project_dir, *settings.project_dir.parents)
    if not settings.compose_files or not inside:
        warning(f"no compose file in {dest}: the project name is not locked. Once there is "
                "one, run `make kit-install` again")
        return
    compose = Compose.detect(Runner(settings.project_dir), settings)
    project = load_project(compose)
    if project.locked:
        info(f"the project name {project.name!r} is locked already ({project.name_source})")
        return
    first = settings.compose_files[0]
    if compose.v2:
        what = f"the project name: `name: {project.name}` at the top of {first.name}"
        plan.write(first, lock_text(first.read_text(encoding="utf-8"), project.name),
                   "locked " + what, "would lock " + what)
        if not plan.dry_run and load_project(compose).name != project.name:
            raise Failure(f"Compose reads another project name from {first.name} now",
                          f"Put back the copy under {plan.folder}/.originals/ and report this")
        return
    env = settings.project_dir / ".env"
    text = env.read_text(encoding="utf-8") if env.exists() else ""
    what = f"the project name: COMPOSE_PROJECT_NAME={project.name} in {env}"
    plan.write(env, add_env_line(text, "COMPOSE_PROJECT_NAME", project.name), "locked " + what,
               "would lock " + what)
    warning("Compose v1 has no `name:` in the compose file, so the lock is in .env; commit it "
            "(or the same line in every clone's .env), or a clone in a folder of another name "
            "gets another project")


@entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("dest", metavar="DEST", help="the repository to put the kit into")
    ap.add_argument("--folder", default="dbguard", help="the kit's folder in it (dbguard)")
    ap.add_argument("--prefix", default="", help="put this before every target of the kit")
    args = ap.parse_args(argv)
    folder = check_destination(Path(args.dest), args.folder, args.prefix)
    plan = Plan(Path(args.dest).resolve(), folder, dry_run=args.dry_run)
    wire_makefile_check = Plan(plan.dest, folder, dry_run=True)
    wire_makefile(wire_makefile_check, args.prefix)  # refuses a clash before anything changes
    copy_kit(plan)
    wire_makefile(plan, args.prefix)
    ignore_lines(plan)
    lock_project_name(plan)
    headline("dbguard in " + str(plan.dest) + (" (dry run: nothing was changed)"
                                               if plan.dry_run else ""))
    for line in plan.done or ["nothing to do: it is installed and up to date"]:
        detail(line)
    if not plan.dry_run:
        success(f"installed: `make {args.prefix}db-info` in {plan.dest} shows the database "
                "and its volumes")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
