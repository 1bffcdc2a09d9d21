"""db-up and db-down: starting and stopping the database, under the same lock as every command
that changes data (so db-up cannot start a server on a volume another command is copying).

db-up      pulls or builds a missing image; removes helper containers a killed run of this
           project left; refuses (exit 3, nothing started or created) while a blocking problem
           stands (a parallel universe, a major mismatch, a data directory outside the mount,
           an unfinished copy or upgrade the journal or a mark names); starts the service and
           waits for its health check; then settles what an interrupted change inside the
           server left (reopening a database it closed), naming the command from the journal
db-down    `compose stop` of the database service; never removes a volume
"""
from __future__ import annotations

import argparse

from ..checkouts import others, remember
from ..collation import drifted
from ..diagnosis import collation_problems, diagnose
from ..docker import inspect_image
from ..errors import Failure, Refusal
from ..kit import Kit, kit_lock
from ..messages import info, success, volume_table, warning
from ..service import remove_leftover_helpers, start_service
from . import recovery


def other_checkouts(kit: Kit) -> dict[str, str]:
    return others(kit.settings.project_dir, kit.settings.root)


def up(kit: Kit, allow_new_volume: bool, seed: bool = False, yes: bool = False) -> None:
    if seed:
        return seed_from_checkout(kit, yes)
    p = kit.project
    with kit_lock(kit, "db-up"):
        if not kit.image.present:
            if kit.runner.dry_run:
                info(f"dry run: would {'build' if p.builds else 'pull'} {p.image}; nothing "
                     "was changed")
                return
            kit = make_image(kit)
        if not kit.runner.dry_run:
            remove_leftover_helpers(kit)
            recovery.settle_all(kit, by="db-up")
        volumes = kit.scan()
        problems, _ = diagnose(p, kit.image, volumes,
                               unsettled=kit.journal.open_entries(),
                               checkouts=other_checkouts(kit))
        active = kit.active(volumes)
        blocking = [pr for pr in problems if pr.blocking and not (
            allow_new_volume and pr.code == "PARALLEL_UNIVERSE")]
        if blocking:
            details = [] if p.anonymous else [
                f"Volumes of {p.volume_key or p.store_label!r}:", *volume_table(volumes), ""]
            for pr in blocking:
                details += [f"{pr.code}: {pr.message}.", "Ways forward:",
                            *[f"  {f}" for f in pr.fix], ""]
            codes = ", ".join(dict.fromkeys(pr.code for pr in blocking))
            raise Refusal(f"refusing to start {p.service!r} ({codes})",
                          "Take one of the ways forward above; nothing was started or created",
                          details)
        for pr in problems:
            if not pr.blocking:
                warning(f"{pr.code}: {pr.message}; fix: {pr.fix[0]}")
        if kit.runner.dry_run:
            info(f"dry run: would start {p.service!r} on {active.label}; nothing was changed")
            return
        if not active.exists:
            others = "" if len(volumes) == 1 else " (ALLOW_NEW_VOLUME=1)"
            info(f"creating the new {active.kind} {active.label}{others}")
        start_service(kit)
        remember(kit.settings.project_dir, project=p.name,
                 volume=None if p.folder else p.volume)
        recovery.settle_all(kit, by="db-up")  # a change inside the server needs it running
        try:
            for problem in collation_problems(drifted(kit.server(), kit.db)):
                warning(f"{problem.code}: {problem.message}; fix: {problem.fix[0]}")
        except Failure as exc:
            warning(f"could not compare collation versions ({exc.message})")
        where = kit.endpoint()
        at = f" on {where[0]}:{where[1]}" if where else " (no port published: the kit works " \
            "inside the container)"
        success(f"{p.service} is up{at}, {active.kind} {active.label}")


def seed_from_checkout(kit: Kit, yes: bool) -> None:
    """db-up SEED=1: a worktree with a Compose project of its own gets a verified copy of the
    volume of the checkout it came from (db-migrate-volume's sequence, the source read-only;
    that checkout's server is stopped for the copy and started again), then starts."""
    from . import migrate, perform

    volumes = kit.scan()
    problems, _ = diagnose(kit.project, kit.image, volumes, checkouts=other_checkouts(kit))
    twin = next((pr for pr in problems if pr.code == "PARALLEL_UNIVERSE" and pr.subject),
                None)
    if twin is None:
        raise Refusal("SEED=1 copies the volume of the checkout this one came from into its "
                      "new, empty volume, and there is no such pair here",
                      "`make db-info` shows the volumes; nothing was changed")
    args = argparse.Namespace(source=twin.subject, force=True, yes=yes, restart_source=True,
                              stamp=None)
    if perform(kit, migrate, args) is not None or not kit.runner.dry_run:
        remember(kit.settings.project_dir, project=kit.project.name, volume=kit.project.volume)


def make_image(kit: Kit) -> Kit:
    p = kit.project
    verb = "build" if p.builds else "pull"
    info(f"{verb}ing {p.image} (not present locally)")
    made = kit.compose(verb, p.service, stdout=None, stderr=None, check=False)
    if made.returncode != 0:  # Compose printed why, right above
        raise Failure(f"`{' '.join(kit.compose.command)} {verb}` failed (its output is above)",
                      f"Make the image {p.image} available (check its name, or build or load "
                      "it) and run again; nothing was started")
    return kit.with_image(inspect_image(kit.runner, p.image))


def down(kit: Kit) -> None:
    with kit_lock(kit, "db-down"):
        if kit.runner.dry_run:
            info(f"dry run: would stop {kit.project.service!r}; nothing was changed")
            return
        kit.compose("stop", kit.project.service)
        success(f"{kit.project.service} stopped; {kit.project.store_label} kept")
