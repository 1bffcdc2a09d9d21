"""db-migrate-volume: copy a cluster from another volume or folder into the active one (after a
renamed directory, a new project name, or a move between a folder and a named volume).

plan       the source (FROM: any volume db-find lists, or a folder; else the one other
           candidate that holds a cluster), the target (the active volume or folder), what
           stops, and the snapshot of the target when it holds anything
preflight  the source holds a cluster of the image's major and no unfinished copy, is not the
           target, and no container of another project runs on either (FORCE stops them too);
           the image keeps its data inside the mount
run        stop; snapshot the target (tar, checksum, compared with the volume file by file);
           give it Compose's labels; mark, empty, copy with `cp -a` and compare both sides
           file by file; on any failure put the snapshot back (a target that held nothing
           stays marked and empty: rerun, or db-undo); unmark; start; report
keeps      the target's snapshot under backups/volumes/ (db-undo puts it back); the source is
           mounted read-only and never changed
"""
from __future__ import annotations

import os

from ..catalog import summary
from ..docker import Container
from ..errors import Failure, UsageError
from ..journal import Operation
from ..kit import Kit
from ..layout import layout_problem
from ..messages import human_size, info, plural, success, timing, warning
from ..protect import protect
from ..service import (RUNNING_STATES, name_holder, remove_leftover_helpers, start_service,
                       stop_containers, unowned_leftovers)
from ..snapshots import snapshot_path, snapshot_volume
from ..volumes import Volume, effective_pgdata, pgdata_in_volume
from ..destructive.replace_volume import (copy_verified, ensure_volume, fill_from_snapshot,
                                          unmark)
from . import Plan

COMMAND = "db-migrate-volume"


def source_name(kit: Kit, given: str | None) -> str | None:
    """FROM as given: a volume's name, or a folder (absolute, or relative to the project's
    folder: `./postgres14`)."""
    if not given:
        return None
    if given.startswith(("/", "./", "../", "~")) or os.sep in given:
        path = os.path.expanduser(given)
        return os.path.normpath(path if os.path.isabs(path) else
                                os.path.join(kit.project.directory, path))
    return given


def pick_source(kit: Kit, volumes: list[Volume], wanted: str | None) -> Volume | str:
    """The source, or why there is none (a reason to refuse)."""
    if wanted:
        found = next((v for v in volumes if v.name == wanted), None)
        if found is None:
            raise UsageError(f"there is no volume or folder named {wanted!r}",
                             "`make db-info` (or `make db-find`) lists the candidates; pass "
                             "one with FROM=")
        return found
    holders = [v for v in volumes if not v.active and v.has_cluster]
    if len(holders) == 1:
        return holders[0]
    if not holders:
        return (f"no other volume or folder of {kit.project.store_label} holds a PostgreSQL "
                "cluster, so there is nothing to copy (FROM= names one that is called "
                "otherwise)")
    return (f"{len(holders)} volumes or folders hold a cluster: "
            + ", ".join(f"{v.label} ({v.describe()})" for v in holders)
            + "; name the one to copy with FROM=<volume or folder>")


def preflight(kit: Kit, source: Volume, target: Volume, force: bool) -> list[str]:
    """Every reason to refuse, collected at once."""
    if source.name == target.name:
        return [f"the source {source.label} is the active {target.kind} itself"]
    reasons = []
    if not source.has_cluster:
        reasons.append(f"{source.label} holds no PostgreSQL cluster (no PG_VERSION)")
    if source.incomplete:
        reasons.append(f"{source.label} holds an unfinished copy itself")
    if source.has_cluster and kit.image.pg_major and source.pg_major != kit.image.pg_major:
        reasons.append(
            f"{source.label} holds a PostgreSQL {source.pg_major} cluster but the image runs "
            f"{kit.image.pg_major}; copying files cannot change that (the server would refuse "
            f"them). Set the image to {source.pg_major}, copy, then `make db-upgrade`")
    layout = layout_problem(kit.project, kit.image)
    if layout:
        reasons.append(f"{layout.message} ({'; '.join(layout.fix)})")
    where = pgdata_in_volume(kit.project, kit.image)
    if not layout and where and source.pg_path and \
            os.path.normpath(source.pg_path) != os.path.normpath(where):
        reasons.append(
            f"the cluster sits at {os.path.normpath(source.pg_path)} in {source.label}, but the "
            f"server looks for it at {os.path.normpath(where)} in {target.label} (PGDATA "
            f"{effective_pgdata(kit.project, kit.image)}); a copy would not be found. Set "
            "PGDATA or the mount so that they agree, then copy")
    if not force:
        foreign = {c.name for v in (source, target) for c in v.users
                   if c.project != kit.project.name and c.state in RUNNING_STATES}
        if foreign:
            reasons.append(f"{', '.join(sorted(foreign))} (not of project {kit.project.name}) "
                           "is running on one of them; --force (FORCE=1) stops it too")
    return reasons


def plan(kit: Kit, args, ctx=None) -> Plan:
    wanted = source_name(kit, args.source)
    volumes = kit.scan(also=[wanted] if wanted else [])
    target = kit.active(volumes)
    source = pick_source(kit, volumes, wanted)
    if isinstance(source, str):
        return Plan(COMMAND, f"copy into {target.label}", {}, {}, refusals=(source,))
    reasons = preflight(kit, source, target, args.force)
    stops = list({c.id: c for v in (source, target) for c in v.users
                  if c.state in RUNNING_STATES}.values())
    snapshot = target.exists and bool(target.entries) and not target.incomplete
    tar = snapshot_path(kit.settings, target, args.stamp) if snapshot else None
    lines = [("source", f"{source.label} ({source.describe()}), read-only, never changed")]
    if not target.exists:
        lines.append(("target", f"{target.label}: does not exist yet; created" +
                      ("" if target.folder else
                       f" with the Compose labels of project {kit.project.name}")))
    else:
        state = "an unfinished copy" if target.incomplete else target.describe()
        lines.append(("target", f"{target.label} ({state}): its contents will be REPLACED"))
    if snapshot:
        lines.append(("snapshot", f"of {target.label}, to {tar} (before anything is replaced;"
                                  " undo: make db-undo)"))
    elif target.exists and target.incomplete:
        lines.append(("snapshot", "none (the target holds only an unfinished copy)"))
    if stops:
        lines.append(("stops", ", ".join(f"{c.name} ({c.state})" for c in stops)))
    users = [c for v in (source, target) for c in v.used_by]
    leftovers = {c.name for c in unowned_leftovers(users)} | {
        c.name for c in users if c.helper and c.owner == kit.project.name}
    if leftovers:
        lines.append(("removes", ", ".join(sorted(leftovers))
                      + " (dbguard helpers left by an interrupted run)"))
    holder = name_holder(kit)
    if holder:
        lines.append(("removes", f"the {holder.state} container {holder.name} of project "
                                 f"{holder.project or '(none)'}, which holds the container name "
                                 f"{kit.project.service!r} needs (its volumes are kept)"))
    lines.append(("then", f"copy, compare file by file, start {kit.project.service!r}, "
                          "report"))
    copy = ({"kind": "tar", "path": str(tar), "store": target.name, "folder": target.folder}
            if snapshot else
            {"kind": "empty-store" if target.exists else "no-store", "store": target.name,
             "folder": target.folder})
    return Plan(
        command=COMMAND, doing=f"copy {source.label} into {target.label}",
        target={"kind": target.kind, "name": target.name, "shown": target.label},
        copy=copy, lines=tuple(lines),
        question=f"Copy {source.label} into {target.label}?",
        warning=f"this will OVERWRITE the contents of {target.label}",
        facts=(source.name, source.system_id, source.pg_version, target.name, target.exists,
               target.entries, target.system_id, target.incomplete,
               tuple(sorted(c.id for c in stops))),
        refusals=tuple(reasons),
        record={"source": source.name, "source_shown": source.label, "snapshot": snapshot},
        data={"source": source, "target": target, "stops": stops, "tar": tar,
              "restart": [c for c in stops if c in source.users]
              if getattr(args, "restart_source", False) else []})


def run(kit: Kit, plan: Plan, op: Operation) -> None:
    d = plan.data
    source, target, stops = d["source"], d["target"], d["stops"]
    remove_leftover_helpers(kit, [c for v in (source, target) for c in v.used_by])
    op.step("stop")
    with timing("stop"):
        stop_containers(kit, stops)
    if d["tar"]:
        op.step("snapshot")
        try:
            with timing("snapshot"):
                snapshot_volume(kit, target, d["tar"])
        except Failure:  # nothing was changed yet: what was stopped runs again
            start_again(kit, stops)
            raise
        info(f"snapshot of {target.label}: {d['tar']} (undo: make db-undo)")
    op.step("copy")
    ensure_volume(kit, target)
    info(f"copying {source.label} -> {target.label}")
    try:
        diff = copy_verified(kit, source, target)
        if diff:
            raise Failure(f"the copy differs from {source.label} ({'; '.join(diff)})",
                          "Run again")
    except Failure as exc:
        raise undone(kit, op, source, target, d["tar"], stops, exc.message) from None
    op.step("unmark")
    with timing("sync"):
        unmark(kit, target)
    success(f"{target.label} now holds a verified copy of {source.label}")
    if not target.folder and (source.keepers or target.keepers):
        protect(kit.runner, kit.project.name, target.name, kit.image)
        info(f"{target.label} is protected (db-protect), as "
             f"{'its source was' if source.keepers else 'it was'}")
    op.step("start")
    with timing("start"):
        start_service(kit, free_name=True)
    if d["restart"]:  # db-up SEED=1: the checkout the copy came from runs again
        start_again(kit, d["restart"])
    report(kit, source)


def undone(kit: Kit, op: Operation, source: Volume, target: Volume, tar, stops: list,
           why: str) -> Failure:
    """After a copy that failed or differs: the target back as it was, from its snapshot, and
    what was stopped started again. A target that held nothing stays marked and empty (an
    empty, unmarked target beside the data is the incident's state): rerun, or db-undo."""
    if tar is None:
        return Failure(f"copying {source.label} into {target.label} failed ({why})",
                       f"{target.label} is marked as unfinished, so nothing starts on it; run "
                       "again to copy once more, or `make db-undo` to leave it empty")
    op.step("put back")
    diff = fill_from_snapshot(kit, tar, target)
    if diff:
        return Failure(f"copying failed ({why}), and putting the snapshot back into "
                       f"{target.label} failed verification ({'; '.join(diff)})",
                       f"The snapshot is intact in {tar}; the mark keeps db-up off "
                       f"{target.label}. Run `make db-undo` again")
    unmark(kit, target)
    start_again(kit, stops)
    return Failure(f"copying {source.label} into {target.label} failed ({why})",
                   f"{target.label} was put back as it was; {source.label} is untouched. Fix "
                   "the cause and run again")


def start_again(kit: Kit, stopped: list[Container]) -> None:
    """After a failed copy that was put back: what was stopped for it runs again."""
    if not stopped:
        return
    info("starting again what the copy stopped: " + ", ".join(c.name for c in stopped))
    others = [c.id for c in stopped if (c.project, c.service) !=
              (kit.project.name, kit.project.service)]
    try:
        if others:
            kit.runner(["docker", "start", *others])
        if len(others) < len(stopped):
            start_service(kit)  # and wait until it is healthy, as db-up does
    except Failure as exc:
        warning(f"starting them again failed ({exc.message}); `make db-up` starts the database")


def report(kit: Kit, source: Volume) -> None:
    """What was copied: the copy was compared with its source file by file, so its size and
    cluster (system identifier) are the source's; and what the server now serves."""
    again = source
    info(f"files: {human_size(source.size)} copied from {source.label}, equal to it file by "
         f"file; cluster system identifier {source.system_id}")
    db = summary(kit.server(), kit.db)
    if db["reachable"]:
        info(f"databases: {', '.join(d['name'] for d in db['databases'])}; "
             f"{kit.db}: {plural(db['tables'], 'table')}, about "
             f"{plural(db['rows_estimate'], 'row')}")
    else:
        warning(f"the server does not answer: {db['error']}")
    # A data folder belongs to the server's user inside the container: root removes it.
    removal = f"sudo rm -r {again.name}" if again.folder else f"docker volume rm {again.name}"
    info(f"{again.label} was left as it was; once you are sure, remove it with: {removal}")
