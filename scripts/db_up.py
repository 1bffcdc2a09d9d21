#!/usr/bin/env python3
"""Start the database, after checking that the volume it will use is the right one.

Before anything starts it refuses (exit 3, nothing created) when:
  - the active volume does not exist yet, or holds no cluster, while another volume of the same
    compose volume holds one: a renamed directory or a changed project name, the incident this
    kit exists for (ALLOW_NEW_VOLUME=1 / --allow-new-volume starts empty anyway);
  - the volume's cluster was made by another PostgreSQL major version than the image runs;
  - a postgres 18+ image would keep its data outside the volume (the mount-path change);
  - the volume's cluster is in another folder than the one PGDATA names (the server would
    initialise a new, empty cluster beside it);
  - the volume holds an unfinished db-migrate-volume copy.
Otherwise it runs `compose up -d` for the database service and waits until it is healthy; on a
timeout it shows the last log lines. On first run it creates .env from .env.example. It never
removes, empties or rewrites a volume.

examples:
  make db-up
  make db-up ALLOW_NEW_VOLUME=1     start on a new, empty volume although another holds data
  python scripts/db_up.py --dry-run
"""
from __future__ import annotations

import sys

from dbguard.cli import entrypoint, parser
from dbguard.diagnosis import diagnose
from dbguard.docker import inspect_image
from dbguard.errors import EXIT_OK, Failure, Refusal
from dbguard.kit import open_kit
from dbguard.messages import info, success, warning
from dbguard.postgres import reopen_if_closed
from dbguard.service import start_service
from dbguard.settings import init_env_file, needs_env_file
from dbguard.upgrade import upgrade_in_progress
from dbguard.volumes import volume_table


@entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--allow-new-volume", action="store_true",
                    help="start on a new, empty volume even though another volume holds data")
    args = ap.parse_args(argv)
    if args.dry_run and needs_env_file():
        info("dry run: would create .env from .env.example, then check and start; nothing "
               "was changed")
        return EXIT_OK
    locked = init_env_file()
    if locked:
        info(f"created .env from .env.example with COMPOSE_PROJECT_NAME={locked}, the name "
             "Compose uses for this folder (review it: it also holds the database password)")
    kit = open_kit(args)
    p = kit.project
    if not kit.image.present:
        verb = "build" if p.builds else "pull"
        info(f"{verb}ing {p.image} (not present locally)")
        made = kit.compose(verb, p.service, mutates=True, stdout=None, stderr=None,
                           check=False)
        if made.returncode != 0:  # Compose printed why, right above
            raise Failure(f"`{' '.join(kit.compose.command)} {verb}` failed (its output is "
                          "above)",
                          f"Make the image {p.image} available (check its name, or build or "
                          "load it) and run again; nothing was started")
        kit = kit.with_image(inspect_image(kit.runner, p.image))
    volumes = kit.scan()
    problems, _ = diagnose(p, kit.image, volumes, upgrade=upgrade_in_progress(kit))
    active = next(v for v in volumes if v.active)
    blocking = [pr for pr in problems if pr.blocking and not (
        args.allow_new_volume and pr.code == "PARALLEL_UNIVERSE")]
    if blocking:
        details = [f"Volumes of {p.volume_key!r}:", *volume_table(volumes), ""]
        for pr in blocking:
            details += [f"{pr.code}: {pr.message}.", "Ways forward:",
                        *[f"  {f}" for f in pr.fix], ""]
        codes = ", ".join(pr.code for pr in blocking)
        raise Refusal(f"refusing to start {p.service!r} ({codes})",
                        "Take one of the ways forward above; nothing was started or created",
                        details)
    for pr in problems:
        if not pr.blocking:
            warning(f"{pr.code}: {pr.message}; fix: {pr.fix[0]}")
    if not active.exists:
        others = "" if len(volumes) == 1 else " (ALLOW_NEW_VOLUME=1)"
        info(f"creating the new volume {active.name}{others}")
    start_service(kit)
    if not kit.runner.dry_run:
        kit = kit.reachable()  # the container's port or address exists only now
        if reopen_if_closed(kit.settings):
            warning(f"reopened database {kit.settings.db_name!r}: an interrupted restore had "
                    "left it closed to connections")
        success(f"{p.service} is up on {kit.settings.db_host}:{kit.settings.db_port}, volume "
                  f"{active.name}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
