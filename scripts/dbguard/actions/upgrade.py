"""db-upgrade: move the cluster to the image's newer PostgreSQL major without losing a row.

plan       the active volume's cluster and its major, the old image that reads it (OLD_IMAGE, or
           the configured image with the old major), the volume that will keep it, the 18
           mount change in the compose file when one is needed; a rerun after an interrupted or
           failed upgrade starts from the volume that run kept (the journal names it)
preflight  the image runs a newer major than the cluster, the old image is here and runs the
           old major, the mount can be changed safely when it must be, no container of another
           project runs on the volume (FORCE stops it)
run        stop; copy the old cluster into a volume of its own, compared file by file; read it
           with the old image's server and dump it with the new pg_dumpall (no network
           anywhere); mark and empty the active volume; initialise and load the new cluster in
           a throwaway server of the new image with no network (nothing can reach a half-loaded
           cluster); compare every table's rows and checksum, owners, views, sequences,
           extensions, large objects, databases and roles; change the compose file (atomic,
           original kept); unmark; start the service
keeps      the old cluster, in the volume <volume>_pg<N>_<time> (db-undo puts it back), and the
           cluster dump under backups/upgrades/
"""
from __future__ import annotations

import dataclasses
import time

from ..compose import load_project
from ..destructive.recreated import remove_dangling_sockets
from ..destructive.replace_volume import copy_verified, empty, remove_volume, unmark
from ..errors import Failure
from ..files import atomic_write, private_dir
from ..journal import Operation
from ..kit import Kit
from ..messages import human_size, info, success, timing
from ..names import LABEL_UPGRADE_MAJOR, LABEL_UPGRADE_OF, UPGRADE_DUMPS, kept_cluster_volume
from ..service import RUNNING_STATES, remove_leftover_helpers, start_service, stop_containers
from ..snapshots import snapshot_path, snapshot_volume
from ..upgrade import (cluster_facts, dump_cluster, fact_differences, kept_volumes, load_cluster,
                       moved_mount, new_server, old_image_for, old_server, stop_server)
from ..volumes import Volume, pgdata_in_volume
from . import Plan

COMMAND = "db-upgrade"


def rerun_of(kit: Kit) -> dict | None:
    """The copy an interrupted or failed upgrade of the active volume kept, if there is one."""
    for entry in reversed(kit.journal.open_entries()):
        if entry.command == COMMAND and entry.target.get("name") == kit.project.volume:
            return {"entry": entry.id, **entry.copy, "old_image": entry.facts.get("old_image")}
    return None


def keep_name_of(earlier: dict | None) -> str | None:
    return earlier["volume"] if earlier else None


def plan(kit: Kit, args, ctx=None) -> Plan:
    volumes = kit.scan()
    active = kit.active(volumes)
    new_major = kit.image.pg_major
    earlier = rerun_of(kit)
    reasons, kept = [], None
    if earlier:
        kept = next((v for v in kit.scan(also=[earlier["volume"]])
                     if v.name == earlier["volume"]), None)
        if kept is None or kept.incomplete or not kept.has_cluster:
            reasons.append(f"the upgrade #{earlier['entry']} that is unfinished kept the old "
                           f"cluster in {earlier['volume']}, which is "
                           f"{'missing' if kept is None else 'not a whole cluster'}; look at "
                           "`make db-history` and `docker volume ls`")
        old_major = int(earlier.get("major") or 0)
    else:
        old_major = active.pg_major or 0
        if not active.has_cluster:
            reasons.append(f"{active.label} holds no PostgreSQL cluster, so there is nothing to "
                           "upgrade (`make db-up` starts a new one)")
        elif not new_major:
            reasons.append(f"the image {kit.project.image} is not present here, so its major is "
                           "unknown (`make db-up` pulls or builds it)")
        elif old_major == new_major:
            reasons.append(f"the cluster in {active.label} is PostgreSQL {old_major}, as the "
                           "image runs: there is nothing to upgrade")
        elif old_major > new_major:
            reasons.append(f"the cluster in {active.label} is PostgreSQL {old_major}, newer than "
                           f"the image's {new_major}: db-upgrade only moves to a newer major "
                           f"(set the image back to a {old_major} one)")
    old_image, why = (earlier.get("old_image"), None) if earlier and earlier.get("old_image") \
        else old_image_for(kit, args.old_image, old_major) if old_major and not reasons \
        else (args.old_image, None)
    if why:
        reasons.append(why)
    foreign = sorted({c.name for c in active.users if c.project != kit.project.name
                      and c.state in RUNNING_STATES})
    if foreign and not args.force:
        reasons.append(f"{', '.join(foreign)} (not of project {kit.project.name}) is running "
                       f"on {active.label}; stop it, or pass FORCE=1")
    # The 18 layout: the volume belongs at /var/lib/postgresql.
    compose_change, mount_target = None, kit.project.mount_target
    if new_major and pgdata_in_volume(kit.project, kit.image) is None:
        files = [f for f in kit.settings.compose_files
                 if moved_mount(f.read_text(encoding="utf-8"), kit.project.volume_key)]
        if len(files) != 1 or kit.project.folder:
            reasons.append(f"the image {kit.project.image} keeps its data outside the mount "
                           f"({kit.project.mount_target}), and the kit cannot change that "
                           "mount in the compose file safely: mount it at /var/lib/postgresql "
                           "(postgres 18 and later) yourself")
        else:
            compose_change, mount_target = files[0], "/var/lib/postgresql"
    stamp = args.stamp
    keep_name = earlier["volume"] if earlier else kept_cluster_volume(active.name, old_major,
                                                                       stamp)
    stops = [c for c in active.users if c.state in RUNNING_STATES]
    # Copies of the old cluster that a killed run did not finish (labelled as this volume's,
    # marked or still empty): the kit's own, never a kept cluster (a finished copy is whole
    # and has lost its mark).
    labelled = kept_volumes(kit, active.name)
    unfinished = [v.name for v in kit.scan(also=labelled) if v.name in labelled
                  and (v.incomplete or not v.has_cluster)
                  and v.name != keep_name_of(earlier)] if labelled else []
    tar = snapshot_path(kit.settings, active, stamp) \
        if earlier and active.exists and active.entries and not active.incomplete else None
    original = kit.settings.backup_dir / UPGRADE_DUMPS / \
        f"{compose_change.stem}_{stamp}{compose_change.suffix}" if compose_change else None
    lines = [("upgrade", f"{active.label} ({(kept or active).describe()}) from PostgreSQL "
                         f"{old_major} to {new_major} ({kit.project.image})")]
    if earlier:
        lines.append(("from", f"the old cluster kept by the unfinished upgrade "
                              f"#{earlier['entry']} in {keep_name}"))
    else:
        lines.append(("keep", f"the old cluster, copied and verified, in the volume {keep_name}"))
    if tar:
        lines.append(("snapshot", f"of what {active.label} holds now, to {tar} first"))
    lines += [("read", f"with {old_image} (no network), dumped by the new pg_dumpall into "
                       f"{kit.settings.backup_dir / UPGRADE_DUMPS}/"),
              ("then", f"empty {active.label}, initialise and load the new cluster in a "
                       f"throwaway server of {kit.project.image} (no network), compare every "
                       f"table before and after, start {kit.project.service!r}")]
    if compose_change:
        lines.append(("compose", f"{compose_change.name}: the volume moves from "
                                 "/var/lib/postgresql/data to /var/lib/postgresql (18 keeps its "
                                 f"data there); the original is kept as {original}"))
    if stops:
        lines.append(("stops", ", ".join(f"{c.name} ({c.state})" for c in stops)))
    if unfinished:
        lines.append(("removes", ", ".join(unfinished) + " (an interrupted run's unfinished "
                                                         "copy of the old cluster)"))
    return Plan(
        command=COMMAND, doing=f"upgrade {active.label}",
        target={"kind": active.kind, "name": active.name, "shown": active.label},
        copy={"kind": "volume", "volume": keep_name, "major": old_major,
              "compose_file": str(compose_change) if compose_change else None,
              "compose_original": str(original) if original else None},
        lines=tuple(lines),
        question=f"Upgrade {active.label} to PostgreSQL {new_major}" +
                 (f", and change the mount in {compose_change.name}?" if compose_change
                  else "?"),
        warning=f"this REPLACES the contents of {active.label} (the old cluster is kept in "
                f"{keep_name})",
        facts=(active.name, active.system_id, active.exists, active.entries, old_major,
               new_major, old_image, keep_name if earlier else None,
               str(compose_change), tuple(sorted(c.id for c in stops))),
        refusals=tuple(reasons),
        record={"old_image": old_image, "old_major": old_major, "new_major": new_major,
                **({"rerun_of": earlier["entry"]} if earlier else {})},
        data={"active": active, "kept": kept, "keep_name": keep_name, "stops": stops,
              "unfinished": unfinished,
              "tar": tar, "compose_change": compose_change, "original": original,
              "mount_target": mount_target, "old_image": old_image, "old_major": old_major})


def run(kit: Kit, plan: Plan, op: Operation) -> None:
    d = plan.data
    started = time.monotonic()
    active: Volume = d["active"]
    remove_leftover_helpers(kit, active.used_by)
    remove_dangling_sockets(kit)
    for name in d["unfinished"]:
        remove_volume(kit, Volume(name))
    op.step("stop")
    stop_containers(kit, d["stops"])
    with timing("keep"):  # the old cluster's copy, reported on its own line by make bench
        kept = d["kept"] or keep_old_cluster(kit, op, active, d["keep_name"], d["old_major"])
    op.step("dump")
    server = old_server(kit, d["old_image"], kept)
    try:
        info(f"reading the PostgreSQL {d['old_major']} cluster")
        with timing("dump"):
            before = cluster_facts(server)
            dump = dump_cluster(kit, server, d["old_major"])
    finally:
        stop_server(kit, server)
    info(f"cluster dump: {dump} ({human_size(dump.stat().st_size)})")
    if d["tar"]:
        op.step("snapshot")
        snapshot_volume(kit, active, d["tar"])
    op.step("empty")
    info(f"emptying {active.label} for the new cluster (the old one is kept in {kept.name})")
    empty(kit, active)
    op.step("load")
    # Truly empty for a moment (the journal keeps db-up off it meanwhile): Docker then gives
    # the new container's mount the image's own folder, owner and mode, as `compose up` on a
    # new volume does; the old major's postgres user may have another uid.
    unmark(kit, active)
    server = new_server(kit, active, d["mount_target"])
    try:
        kit.runner(["docker", "exec", server.container, "touch",
                    f"{d['mount_target']}/.dbguard-incomplete"])
        with timing("load"):
            load_cluster(kit, server, dump)
        op.step("compare")
        with timing("compare"):
            after = cluster_facts(server)
        diff = fact_differences(before, after)
    finally:
        stop_server(kit, server)
    if diff:
        raise Failure(f"the new cluster differs from the old one ({'; '.join(diff)})",
                      f"The old cluster is intact in {kept.name}; `make db-undo` puts it back, "
                      "`make db-upgrade` tries again")
    change = d["compose_change"]
    if change:
        op.step("mount")
        private_dir(d["original"].parent)
        atomic_write(d["original"], change.read_bytes())
        atomic_write(change, moved_mount(change.read_text(encoding="utf-8"),
                                         kit.project.volume_key).encode())
        info(f"{change.name}: the volume is mounted at /var/lib/postgresql now (the original: "
             f"{d['original']})")
        kit = dataclasses.replace(kit, project=load_project(kit.compose))
    op.step("unmark")
    unmark(kit, active)
    op.step("start")
    with timing("start"):
        start_service(kit)
    report(kit, after, kept, dump, started)


def keep_old_cluster(kit: Kit, op: Operation, active: Volume, name: str, major: int) -> Volume:
    """The old cluster copied into a volume of its own, compared file by file; a copy that
    fails is removed (it was the kit's own, and the active volume is untouched)."""
    op.step("keep")
    kit.runner(["docker", "volume", "create", "--label", f"{LABEL_UPGRADE_OF}={active.name}",
                "--label", f"{LABEL_UPGRADE_MAJOR}={major}", name])
    kept = Volume(name)
    info(f"copying the old cluster: {active.label} -> {name}")
    try:
        diff = copy_verified(kit, active, kept)
        if diff:
            raise Failure(f"the copy of {active.label} differs ({'; '.join(diff)})",
                          f"{active.label} is untouched; run again")
        unmark(kit, kept)
    except BaseException:
        remove_volume(kit, kept)
        raise
    return next(v for v in kit.scan(also=[name]) if v.name == name)


def report(kit: Kit, after: dict, kept: Volume, dump, started: float) -> None:
    tables = sum(x.startswith("table ") for lines in after.values() for x in lines)
    databases = ", ".join(sorted(db for db in after if db != "(cluster)"))
    roles = sorted(x.split()[1] for x in after["(cluster)"] if x.startswith("role "))
    extensions = sorted({x.split()[1] for lines in after.values() for x in lines
                         if x.startswith("extension ")})
    info(f"roles: {', '.join(roles)}; extensions: {', '.join(extensions) or 'none'}")
    success(f"{kit.project.store_label} runs PostgreSQL {kit.image.pg_major}: databases "
            f"{databases}; {tables} tables, every row equal (counts and checksums), in "
            f"{time.monotonic() - started:.0f}s")
    now = kit.active(kit.scan())
    info(f"sizes: old cluster {human_size(kept.size)}, dump {human_size(dump.stat().st_size)}, "
         f"new cluster {human_size(now.size)}")
    info(f"the old cluster stays in {kept.name}; once you are sure: "
         f"docker volume rm {kept.name}")
