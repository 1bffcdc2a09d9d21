#!/usr/bin/env python3
"""Move the database to a new PostgreSQL major without losing a row (15 -> 17, 17 -> 18, ...).

For when the compose file's image runs a newer major than the cluster in the active volume (db-up
refuses that as PG_VERSION_MISMATCH). The plan is shown and [y/N] asked (without a terminal:
refused unless YES=1); then, under the kit's lock:

  1. the containers are stopped, and the old cluster is copied into a volume of its own,
     <volume>_pg<N>_<time>, verified file by file, never touched again (its name is printed);
  2. the old cluster's server (OLD_IMAGE, no network) is read by the NEW image's pg_dumpall:
     roles, every database, large objects, into backups/upgrades/ (the dump is kept too);
  3. the active volume is emptied, the service starts on the new image (which initialises a new
     cluster), and the dump is loaded, stopping at the first error;
  4. every table's row count and checksum, the owners, views, sequences, extensions, large
     objects, databases and roles are compared before and after; any difference fails.

OLD_IMAGE defaults to the configured image with the old major (postgres:17-alpine ->
postgres:15-alpine). For 18+, which keeps its cluster below /var/lib/postgresql, a mount at
/var/lib/postgresql/data is changed (shown, asked, the original kept in backups/upgrades/).

Interrupted at any point, the active volume is never one db-up starts on by mistake: db-up and
db-info name it (UPGRADE_INCOMPLETE); running db-upgrade again starts over from the kept copy,
and UNDO=1 puts the old cluster back (after a snapshot of what the volume holds then).

examples:
  make db-upgrade
  make db-upgrade OLD_IMAGE=postgres:15 YES=1
  make db-upgrade UNDO=1
"""
from __future__ import annotations

import dataclasses
import sys
import time

from dbguard.cli import entrypoint, parser
from dbguard.compose import load_project
from dbguard.destructive.delete_backups import remove_unfinished
from dbguard.destructive.replace_volume import copy_verified, unmark
from dbguard.destructive.upgrade_volume import (empty_volume, load_cluster, put_old_cluster_back,
                                                remove_volumes, stop_old_server)
from dbguard.errors import EXIT_OK, Failure, Refusal
from dbguard.files import keep_copy
from dbguard.kit import Kit, kit_lock, open_kit
from dbguard.messages import confirm, detail, headline, human_size, info, success, warning
from dbguard.service import (RUNNING_STATES, remove_leftover_helpers, start_service,
                             stop_containers)
from dbguard.snapshots import snapshot_volume
from dbguard.upgrade import (LABEL_UPGRADE_MAJOR, LABEL_UPGRADE_OF, UpgradeState,
                             cluster_facts, dump_cluster, fact_differences, kept_volumes,
                             moved_mount, old_image_for, start_old_server)
from dbguard.volumes import pgdata_in_volume


@entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, yes=True)
    ap.add_argument("--old-image", metavar="IMAGE", help="an image of the cluster's major")
    ap.add_argument("--force", action="store_true",
                    help="also stop containers of other projects that use the volume")
    ap.add_argument("--undo", action="store_true",
                    help="put the old cluster back from the volume that keeps it")
    args = ap.parse_args(argv)
    kit = open_kit(args)
    if not kit.image.present or not kit.image.pg_major:
        raise Refusal(f"the image {kit.project.image} is not present here, so its major is "
                      "unknown", "Pull or build it (`make db-up` does) and run again; "
                      "nothing was changed")
    with kit_lock(kit, "db-upgrade"):
        remove_unfinished(kit.settings, kit.runner.dry_run)
        state = UpgradeState.read(kit)
        if args.undo:
            return undo(kit, state, args)
        return upgrade(kit, state, args)


def upgrade(kit: Kit, state: UpgradeState | None, args) -> int:
    started = time.monotonic()
    volumes = kit.scan()
    active = next(v for v in volumes if v.active)
    new_major = kit.image.pg_major
    kept = None
    if state:
        kept = next((v for v in kept_volumes(kit, active.name) if v.name == state.kept), None)
        if kept is None or kept.incomplete:
            raise Failure(f"an interrupted upgrade of {active.name} left "
                          f"{UpgradeState.path(kit)}, but the "
                          f"volume that keeps the old cluster, {state.kept}, is "
                          f"{'missing' if kept is None else 'unfinished'}",
                          "Look at `make db-info` and `docker volume ls`; nothing was changed")
        old_major = state.old_major
        info(f"an interrupted upgrade is finished from {kept.name} (PostgreSQL {old_major})")
    else:
        if not active.has_cluster:
            raise Refusal(f"{active.name} holds no PostgreSQL cluster, so there is nothing to "
                          "upgrade", "`make db-up` starts a new one; nothing was changed")
        old_major = active.pg_major
        if old_major == new_major:
            raise Refusal(f"the cluster in {active.name} is PostgreSQL {old_major}, as the image "
                          "runs: nothing to upgrade", "Nothing was changed")
        if old_major > new_major:
            raise Refusal(f"the cluster in {active.name} is PostgreSQL {old_major}, newer than "
                          f"the image's {new_major}: db-upgrade only moves to a newer major",
                          f"Set the image back to a {old_major} one; nothing was changed")
    old_image = state.old_image if state else old_image_for(kit, args.old_image, old_major)
    foreign = sorted({c.name for c in active.users if c.project != kit.project.name
                      and c.state in RUNNING_STATES})
    if foreign and not args.force:
        raise Refusal(f"{', '.join(foreign)} (not of project {kit.project.name}) is running on "
                      f"{active.name}", "Stop it, or pass FORCE=1; nothing was changed")

    # The 18 layout: the volume belongs at /var/lib/postgresql.
    compose_change = None
    if pgdata_in_volume(kit.project, kit.image) is None:
        files = [f for f in kit.settings.compose_files
                 if moved_mount(f.read_text(encoding="utf-8"), kit.project.volume_key)]
        if len(files) != 1:
            raise Refusal(f"the image {kit.project.image} keeps its data outside the volume's "
                          f"mount ({kit.project.mount_target}), and the kit cannot change that "
                          "mount in the compose file safely",
                          "Mount the volume at /var/lib/postgresql (postgres 18 and later) and "
                          "run again; nothing was changed")
        compose_change = files[0]

    stops = [c for c in active.users if c.state in RUNNING_STATES and not c.helper]
    stamp = time.strftime("%Y%m%d_%H%M%S")
    keep_name = state.kept if state else f"{active.name}_pg{old_major}_{stamp}"
    headline("Plan")
    detail(f"upgrade:  {active.name} ({(kept or active).describe()}) from PostgreSQL "
           f"{old_major} to {new_major} ({kit.project.image})")
    if state:
        detail(f"first:    the old cluster back from {kept.name} (an interrupted upgrade's)")
    else:
        detail(f"keep:     the old cluster, copied and verified, in the volume {keep_name}")
    detail(f"read:     with {old_image} (no network), dumped by the new pg_dumpall into "
           f"{kit.settings.backup_dir / 'upgrades'}/")
    detail(f"then:     empty {active.name}, start {kit.project.service!r} on "
           f"{kit.project.image}, load the dump, compare every table before and after")
    if compose_change:
        detail(f"compose:  {compose_change.name}: the volume moves from "
               "/var/lib/postgresql/data to /var/lib/postgresql (18 keeps its data there); "
               "the original is kept")
    if stops:
        detail("stops:    " + ", ".join(f"{c.name} ({c.state})" for c in stops))
    if kit.runner.dry_run:
        info("dry run: nothing was changed")
        return EXIT_OK
    warning(f"this REPLACES the contents of {active.name} (the old cluster is kept in "
            f"{keep_name})")
    confirm(f"Upgrade {active.name} to PostgreSQL {new_major}?", assume_yes=args.yes)
    if compose_change:
        confirm(f"Change the mount in {compose_change.name}?", assume_yes=args.yes)

    remove_leftover_helpers(kit, [active])
    stop_containers(kit, stops)
    if state:
        put_old_cluster_back(kit, kept, active.name)
    else:
        remove_volumes(kit, [v.name for v in kept_volumes(kit, active.name) if v.incomplete])
        kit.runner(["docker", "volume", "create", "--label",
                    f"{LABEL_UPGRADE_OF}={active.name}", "--label",
                    f"{LABEL_UPGRADE_MAJOR}={old_major}", keep_name])
        info(f"copying the old cluster: {active.name} -> {keep_name}")
        diff = copy_verified(kit, active, keep_name)
        if diff:
            raise Failure(f"the copy of {active.name} differs ({'; '.join(diff)})",
                          f"{active.name} is untouched; run again")
        unmark(kit, keep_name)
        state = UpgradeState(active.name, keep_name, old_major, old_image)
        state.write(kit)  # from here on db-up refuses the volume until this is done or undone
    kept = kept or next(v for v in kept_volumes(kit, active.name) if v.name == keep_name)

    server = start_old_server(kit, old_image, active.name, kept.pg_path or ".")
    try:
        info(f"reading the PostgreSQL {old_major} cluster")
        before = cluster_facts(kit, server.container)
        dump = dump_cluster(kit, server, old_major)
    finally:
        stop_old_server(kit, server)
    info(f"cluster dump: {dump} ({human_size(dump.stat().st_size)})")

    empty_volume(kit, active.name)
    if compose_change and not state.compose_file:
        original = keep_copy(compose_change, kit.settings.backup_dir / "upgrades")
        state = dataclasses.replace(state, compose_file=str(compose_change),
                                    compose_original=str(original))
        state.write(kit)
        compose_change.write_text(moved_mount(compose_change.read_text(encoding="utf-8"),
                                              kit.project.volume_key), encoding="utf-8")
        info(f"{compose_change.name}: the volume is mounted at /var/lib/postgresql now "
             f"(the original: {original})")
        kit = dataclasses.replace(kit, project=load_project(kit.compose))
    start_service(kit)
    container = kit.service_container()
    load_cluster(kit, container.id, dump)
    after = cluster_facts(kit, container.id)
    diff = fact_differences(before, after)
    if diff:
        raise Failure(f"the new cluster differs from the old one ({'; '.join(diff)})",
                      f"The old cluster is intact in {kept.name}; `make db-upgrade UNDO=1` "
                      "puts it back")
    UpgradeState.clear(kit)
    tables = sum(x.startswith("table ") for lines in after.values() for x in lines)
    databases = ", ".join(sorted(db for db in after if db != "(cluster)"))
    roles = sorted(x.split()[1] for x in after["(cluster)"] if x.startswith("role "))
    extensions = sorted({x.split()[1] for lines in after.values() for x in lines
                         if x.startswith("extension ")})
    info(f"roles: {', '.join(roles)}; extensions: {', '.join(extensions) or 'none'}")
    success(f"{active.name} runs PostgreSQL {new_major}: databases {databases}; {tables} "
            f"tables, every row equal (counts and checksums), in "
            f"{time.monotonic() - started:.0f}s")
    now = next(v for v in kit.scan() if v.active)
    info(f"sizes: old cluster {human_size(kept.size)}, dump {human_size(dump.stat().st_size)}, "
         f"new cluster {human_size(now.size)}")
    info(f"the old cluster stays in {kept.name}; once you are sure: "
         f"docker volume rm {kept.name}")
    return EXIT_OK


def undo(kit: Kit, state: UpgradeState | None, args) -> int:
    volumes = kit.scan()
    active = next(v for v in volumes if v.active)
    candidates = [v for v in kept_volumes(kit, active.name) if not v.incomplete]
    kept = next((v for v in candidates if state and v.name == state.kept), None) or \
        (sorted(candidates, key=lambda v: v.created or "")[-1] if candidates else None)
    if kept is None:
        raise Refusal(f"no volume keeps an old cluster of {active.name}",
                      "Nothing to undo; nothing was changed")
    old_major = kept.labels.get(LABEL_UPGRADE_MAJOR, "?")
    headline("Plan")
    detail(f"put back: the PostgreSQL {old_major} cluster from {kept.name} into {active.name}"
           f" ({active.describe()}: REPLACED, after a snapshot under backups/volumes/)")
    if state and state.compose_file:
        detail(f"compose:  {state.compose_file} back from {state.compose_original}")
    if kit.runner.dry_run:
        info("dry run: nothing was changed")
        return EXIT_OK
    confirm(f"Put the old cluster back into {active.name}?", assume_yes=args.yes)
    remove_leftover_helpers(kit, [active])
    stop_containers(kit, [c for c in active.users if c.state in RUNNING_STATES])
    if active.exists and active.entries:  # what the new major holds now (rows written since)
        info(f"snapshot of the current contents: {snapshot_volume(kit, active)}")
    put_old_cluster_back(kit, kept, active.name)
    if state and state.compose_file:
        from pathlib import Path
        Path(state.compose_file).write_bytes(Path(state.compose_original).read_bytes())
    UpgradeState.clear(kit)
    success(f"{active.name} holds the PostgreSQL {old_major} cluster again; {kept.name} is "
            "kept as it is")
    moved = "" if state else f"; the mount too, if it moved ({kit.settings.backup_dir}/upgrades)"
    warning(f"set the service's image back to PostgreSQL {old_major} before `make db-up` "
            f"(it runs {kit.image.pg_major} now){moved}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
