#!/usr/bin/env python3
"""Copy an old volume's database into the active volume (after a rename or a new project name).

REPLACES the active volume's contents, after taking a verified snapshot of them under
backups/volumes/ (printed, so you can undo with UNDO=1). The source is mounted read-only and
never changed or deleted; the command to remove it later is printed instead.

Steps, each only after the one before succeeded:
  1. pick the source: the one other volume of the same compose volume that holds a cluster
     (FROM names one when there are several); refuse if it holds no cluster, is the target, or
     was made by another PostgreSQL major version than the image runs;
  2. show the plan and ask [y/N] (without a terminal: refuse unless --yes);
  3. stop every container that uses either volume (refuse if one is not of this project,
     unless --force);
  4. snapshot the target if it holds anything: tar, checksum, read back file by file;
  5. mark the target as unfinished, empty it, copy with `cp -a` in a throwaway container (no
     network), then compare both sides file by file (type, mode, owner, size, md5); on any
     difference, put the snapshot back and exit 1;
  6. give the target the Compose labels of this project, start the service, report.
A copy interrupted at any point leaves the mark, and db-up refuses to start on it.

examples:
  make db-migrate-volume
  make db-migrate-volume FROM=tradesite_sum_db_data YES=1
  make db-migrate-volume UNDO=1        put the newest snapshot of the active volume back
"""
from __future__ import annotations

import sys

from dbguard.cli import entrypoint, parser
from dbguard.destructive.delete_backups import remove_unfinished
from dbguard.destructive.replace_volume import copy_into_volume, ensure_volume, put_snapshot_back
from dbguard.docker import Container
from dbguard.errors import EXIT_OK, Failure, Refusal, UsageError
from dbguard.files import read_checksum, sha256_file
from dbguard.kit import Kit, kit_lock, open_kit
from dbguard.messages import (confirm, detail, headline, human_size, info, plural, success, timing,
                              warning)
from dbguard.postgres import database_summary
from dbguard.service import (RUNNING_STATES, name_holder, remove_leftover_helpers,
                             start_service, stop_containers)
from dbguard.snapshots import list_snapshots, snapshot_volume
from dbguard.migration import plan_copy, start_again
from dbguard.volumes import Volume


def show_plan(kit: Kit, source: Volume, target: Volume, snapshot: bool,
              stops: list[Container]) -> None:
    headline("Plan")
    detail(f"source:   {source.name} ({source.describe()}), read-only, never changed")
    if not target.exists:
        detail(f"target:   {target.name}: does not exist yet; created with the Compose labels "
                 f"of project {kit.project.name}")
    else:
        state = "an unfinished copy" if target.incomplete else target.describe()
        detail(f"target:   {target.name} ({state}): its contents will be REPLACED")
    if snapshot:
        detail(f"snapshot: of {target.name}, under "
                 f"{kit.settings.backup_dir / 'volumes'}/ (before anything is replaced)")
    elif target.exists and target.incomplete:
        detail("snapshot: none (the target holds only an unfinished copy)")
    if stops:
        detail("stops:    " + ", ".join(f"{c.name} ({c.state})" for c in stops))
    leftovers = {c.name for v in (source, target) for c in v.used_by if c.helper}
    if leftovers:
        detail("removes:  " + ", ".join(sorted(leftovers))
                 + " (dbguard helpers left by an interrupted run)")
    holder = name_holder(kit)
    if holder:
        detail(f"removes:  the {holder.state} container {holder.name} of project "
               f"{holder.project or '(none)'}, which holds the container name "
               f"{kit.project.service!r} needs (its volumes are kept)")
    detail(f"then:     copy, compare file by file (md5), start {kit.project.service!r}, "
             "report")


def undo(kit: Kit, target: Volume, assume_yes: bool, force: bool, dry_run: bool) -> int:
    snapshots = list_snapshots(kit.settings, target.name)
    if not snapshots:
        raise Refusal(f"there is no snapshot of {target.name} in "
                        f"{kit.settings.backup_dir / 'volumes'}",
                        "Nothing to undo; nothing was changed")
    snapshot = snapshots[0]
    expected = read_checksum(snapshot)
    if not expected or sha256_file(snapshot) != expected:
        raise Refusal(f"{snapshot.name} does not match its checksum",
                        "Put back an older one by hand, or keep the volume as it is; nothing "
                        "was changed")
    foreign = sorted({c.name for c in target.users
                      if c.project != kit.project.name and c.state in RUNNING_STATES})
    if foreign and not force:
        raise Refusal(f"{', '.join(foreign)} (not of project {kit.project.name}) uses "
                        f"{target.name}", "Stop it, or pass --force (FORCE=1); nothing was "
                        "changed")
    keep_current = target.exists and not target.incomplete and bool(target.entries)
    headline("Plan")
    detail(f"put back:  {snapshot} ({human_size(snapshot.stat().st_size)})")
    detail(f"into:      {target.name} ({target.describe()}): its contents will be REPLACED")
    if keep_current:
        detail("snapshot:  of the current contents first")
    if dry_run:
        info("dry run: nothing was changed")
        return EXIT_OK
    confirm(f"Replace the contents of {target.name} with {snapshot.name}?",
              assume_yes=assume_yes)
    remove_leftover_helpers(kit, [target])
    stop_containers(kit, target.users)
    if keep_current:
        current = snapshot_volume(kit, target)
        info(f"snapshot of the current contents: {current}")
    if not target.exists:
        ensure_volume(kit, target)
    put_snapshot_back(kit, target, snapshot)
    success(f"{target.name} holds {snapshot.name} again")
    start_service(kit)
    return EXIT_OK


def report(kit: Kit, source_name: str) -> None:
    volumes = kit.scan(also=[source_name])
    after = next(v for v in volumes if v.active)
    source = next((v for v in volumes if v.name == source_name), Volume(source_name))
    same = after.system_id == source.system_id
    info(f"files: {after.name} {human_size(after.size)} vs {source.name} "
           f"{human_size(source.size)}; cluster {'identical to' if same else 'DIFFERS from'} "
           f"the source (system identifier {after.system_id})")
    kit = kit.reachable()  # started again just now: its address may be new
    db = database_summary(kit.settings)
    if db["reachable"]:
        info(f"databases: {', '.join(d['name'] for d in db['databases'])}; "
               f"{kit.settings.db_name}: {plural(db['tables'], 'table')}, about "
               f"{plural(db['rows_estimate'], 'row')}")
    else:
        warning(f"the server does not answer at {kit.settings.db_host}:"
                  f"{kit.settings.db_port}: {db['error']}")
    info(f"{source.name} was left as it was; once you are sure, remove it with: "
           f"docker volume rm {source.name}")


@entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, yes=True)
    ap.add_argument("--from", dest="source", metavar="VOLUME",
                    help="the volume to copy from (needed when several hold a cluster)")
    ap.add_argument("--force", action="store_true",
                    help="also stop containers of other projects that use either volume")
    ap.add_argument("--undo", action="store_true",
                    help="put the newest snapshot of the active volume back instead")
    args = ap.parse_args(argv)
    if args.undo and args.source:
        raise UsageError("--undo and --from do not go together",
                           "Use one of them (UNDO=1 or FROM=<volume>)")
    kit = open_kit(args)
    if not kit.image.present:
        raise Failure(f"the image {kit.image.ref} is not present locally, and the copy runs "
                        "in a container of it", "Pull it (`docker pull`) and run again")
    with kit_lock(kit, "db-migrate-volume"):
        remove_unfinished(kit.settings, kit.runner.dry_run)
        return migrate(kit, args)


def migrate(kit: Kit, args) -> int:
    volumes = kit.scan(also=[args.source] if args.source else [])
    target = next(v for v in volumes if v.active)
    if args.undo:
        return undo(kit, target, args.yes, args.force, kit.runner.dry_run)
    source, target, stops, snapshot_needed = plan_copy(kit, volumes, args)
    show_plan(kit, source, target, snapshot_needed, stops)
    if kit.runner.dry_run:
        info("dry run: nothing was changed")
        return EXIT_OK
    warning(f"this will OVERWRITE the contents of {target.name}")
    confirm(f"Copy {source.name} into {target.name}?", assume_yes=args.yes)
    # The volumes may have changed while the question waited (a container started on one, say):
    # everything is looked at and checked again, and the copy follows what is there now.
    source, target, stops, snapshot_needed = plan_copy(
        kit, kit.scan(also=[source.name]), args, source.name)
    remove_leftover_helpers(kit, [source, target])
    with timing("stop"):
        stop_containers(kit, stops)
    try:
        copy_into_volume(kit, source, target, snapshot_needed)
    except Failure:
        start_again(kit, stops)
        raise
    with timing("start"):
        start_service(kit, free_name=True)
    report(kit, source.name)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
