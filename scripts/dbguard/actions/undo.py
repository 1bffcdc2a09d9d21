"""db-undo: reverse the last data-changing operation (or OP=<n> from db-history), finished or
interrupted, from the copy it kept, with the same care as the others: a plan, a question, a
copy of what it replaces, a check.

plan       the journal's operation and its copy: a database kept inside the server (restore,
           seed, rollback, an undo of those), a snapshot it made (db-snapshot: dropped again),
           a database that did not exist before (set aside as a snapshot), a tar snapshot of a
           volume or folder (migrate, an undo of a volume), a volume that keeps an upgraded
           cluster (db-upgrade), or an empty volume or folder
preflight  the operation is in the journal, kept a copy, and that copy is still there and
           intact; nothing of another project runs on the volume (FORCE stops it)
run        as db-rollback for a database; for a volume or folder: stop what runs on it, take a
           snapshot of what it holds now, put the copy back (marked while it runs, compared
           file by file), unmark, start it if the image can run it
keeps      what it replaces: a database as the snapshot replaced_<time>, a volume's contents
           as a tar under backups/volumes/ (so db-undo can reverse db-undo)
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ..catalog import databases
from ..db_snapshots import list_snapshots, utc_now
from ..destructive import databases as change
from ..destructive.replace_volume import (copy_verified, empty, fill_from_snapshot,
                                          remove_volume, unmark)
from ..errors import Failure, Refusal, UsageError
from ..files import atomic_write
from ..journal import Entry, Operation
from ..kit import Kit
from ..messages import info, success, warning
from ..names import snapshot_comment, snapshot_database
from ..service import RUNNING_STATES, remove_leftover_helpers, start_service, stop_containers
from ..snapshots import snapshot_intact, snapshot_path, snapshot_volume
from ..volumes import Volume
from . import Plan
from . import rollback

COMMAND = "db-undo"


def chosen(kit: Kit, op: int | None) -> Entry:
    entries = kit.journal.entries()
    if not entries:
        raise UsageError(f"the journal {kit.journal.path} records no operation",
                         "Nothing to undo; `make db-history` lists what the kit changed")
    if op is None:
        return entries[-1]
    found = next((e for e in entries if e.id == op), None)
    if found is None:
        raise UsageError(f"the journal has no operation #{op}",
                         "`make db-history` lists them")
    return found


def newest(kit: Kit, command: str) -> int:
    """The newest operation of `command` on the active volume (its UNDO=1 undoes it)."""
    found = [e.id for e in kit.journal.entries() if e.command == command
             and e.target.get("name") == kit.project.volume]
    if not found:
        raise Refusal(f"the journal records no {command} of {kit.project.store_label}",
                      "Nothing to undo; nothing was changed")
    return found[-1]


def plan(kit: Kit, args, ctx=None) -> Plan:
    entry = chosen(kit, args.op)
    copy = entry.copy or {"kind": "none", "why": "it recorded no copy"}
    later = [e for e in kit.journal.entries() if e.id > entry.id
             and e.target.get("name") == entry.target.get("name") and e.command != COMMAND]
    head = [("undo", f"#{entry.id} {entry.command} of {entry.target.get('kind')} "
                     f"{entry.target.get('shown') or entry.target.get('name')!r} "
                     f"({entry.state}, {entry.started[:19].replace('T', ' ')} UTC)")]
    if later:
        names = ", ".join(f"#{e.id} {e.command}" for e in later)
        head.append(("note", f"later operations on the same target ({names}) are replaced "
                             "too"))
    kind = copy.get("kind")
    if kind in ("database", "made", "absent"):
        return database_plan(kit, entry, copy, head, args.stamp)
    if kind in ("tar", "volume", "empty-store", "no-store"):
        return volume_plan(kit, entry, copy, head, args.force, args.stamp)
    return Plan(COMMAND, f"undo #{entry.id} {entry.command}", entry.target, {},
                refusals=(f"#{entry.id} {entry.command} kept no copy to go back to "
                          f"({copy.get('why', 'none recorded')})",))


def database_plan(kit: Kit, entry: Entry, copy: dict, head: list, stamp: str) -> Plan:
    db = copy.get("of") or entry.target["name"]
    kit = dataclasses.replace(kit, settings=dataclasses.replace(kit.settings, db_name=db))
    server = kit.server()
    found = {d["name"]: d for d in databases(server, db)}
    doing = f"undo #{entry.id} {entry.command} of {db!r}"
    if copy["kind"] == "made":  # a snapshot it took: dropped again
        snap = copy["database"]
        reasons = [] if snap in found else [f"the snapshot {copy['snapshot']!r} it made is gone "
                                            "already"]
        return Plan(COMMAND, doing, {"kind": "database", "name": db},
                    {"kind": "none", "why": "dropping a snapshot keeps no copy of it"},
                    tuple(head + [("drop", f"snapshot {copy['snapshot']!r}")]),
                    question=f"Drop snapshot {copy['snapshot']!r} of {db!r}?",
                    facts=(snap, snap in found), refusals=tuple(reasons),
                    record={"db": db, "drops": [snap], "undoes": entry.id},
                    data={"server": server, "kind": "drop", "kit": kit, "snap": snap})
    if copy["kind"] == "absent":  # the database did not exist: it is set aside
        kept = rollback.free_replaced_name(db, found, stamp)
        keep = snapshot_database(db, kept)
        reasons = [] if db in found else [f"{db!r} does not exist: there is nothing to undo"]
        return Plan(COMMAND, doing, {"kind": "database", "name": db},
                    {"kind": "database", "database": keep, "snapshot": kept, "of": db},
                    tuple(head + [("set aside", f"database {db!r}, kept as the snapshot "
                                                f"{kept!r} (it did not exist before)")]),
                    question=f"Set database {db!r} aside?", facts=(db, db in found),
                    refusals=tuple(reasons),
                    record={"db": db, "keep": keep, "kept": kept, "undoes": entry.id,
                            "comment": snapshot_comment(db, utc_now(), "what db-undo set "
                                                        "aside")},
                    data={"server": server, "kind": "aside", "kit": kit})
    source = next((s for s in list_snapshots(server, db) if s.database == copy["database"]),
                  None)
    swap = rollback.swap_plan(kit, server, source, found, COMMAND, doing, stamp,
                              undoes=entry.id)
    reasons = list(swap.refusals)
    if source is None:
        reasons[0] = (f"the copy it kept, the snapshot {copy.get('snapshot')!r}, is gone "
                      f"(dropped, or replaced by a later {entry.command})")
    return dataclasses.replace(swap, lines=tuple(head) + swap.lines, refusals=tuple(reasons),
                               data={**swap.data, "kind": "swap", "kit": kit})


def volume_plan(kit: Kit, entry: Entry, copy: dict, head: list, force: bool, stamp: str
                ) -> Plan:
    name = copy.get("store") or entry.target["name"]
    volumes = kit.scan(also=[name])
    target = next((v for v in volumes if v.name == name), None) or \
        Volume(name, exists=False, folder=bool(copy.get("folder")))
    kind, reasons, lines = copy["kind"], [], list(head)
    source = None
    if kind == "tar":
        why = snapshot_intact(Path(copy["path"]))
        if why:
            reasons.append(f"the copy it kept is not there to go back to: {why}")
        lines.append(("put back", f"{copy['path']} into {target.label}"))
    elif kind == "volume":
        source = next((v for v in kit.scan(also=[copy["volume"]]) if v.name == copy["volume"]),
                      None)
        if source is None or not source.has_cluster or source.incomplete:
            reasons.append(f"the volume that keeps the old cluster, {copy['volume']}, is "
                           f"{'gone' if source is None else 'not a whole cluster'}")
        lines.append(("put back", f"the PostgreSQL {copy.get('major', '?')} cluster from "
                                  f"{copy['volume']} into {target.label}"))
        if copy.get("compose_file"):
            lines.append(("compose", f"{copy['compose_file']} back from "
                                     f"{copy['compose_original']}"))
    else:
        lines.append(("empty", f"{target.label} (it held nothing before #{entry.id})"))
    # What it holds now is kept first, unless it is the kit's own unfinished copy (marked).
    snapshot = target.exists and bool(target.entries) and not target.incomplete
    tar = snapshot_path(kit.settings, target, stamp) if snapshot else None
    if snapshot:
        lines.append(("snapshot", f"of what {target.label} holds now ({target.describe()}), "
                                  f"to {tar} first"))
    stops = [c for c in target.users if c.state in RUNNING_STATES]
    foreign = sorted({c.name for c in stops if c.project != kit.project.name})
    if foreign and not force:
        reasons.append(f"{', '.join(foreign)} (not of project {kit.project.name}) uses "
                       f"{target.label}; stop it, or pass FORCE=1")
    if stops:
        lines.append(("stops", ", ".join(f"{c.name} ({c.state})" for c in stops)))
    return Plan(
        command=COMMAND, doing=f"undo #{entry.id} {entry.command} of {target.label}",
        target={"kind": target.kind, "name": target.name, "shown": target.label},
        copy={"kind": "tar", "path": str(tar), "store": target.name, "folder": target.folder}
        if tar else {"kind": "empty-store" if target.exists else "no-store",
                     "store": target.name, "folder": target.folder},
        lines=tuple(lines), question=f"Replace the contents of {target.label}?",
        warning=f"this REPLACES the contents of {target.label}",
        facts=(target.name, target.exists, target.entries, target.system_id,
               tuple(c.id for c in stops), copy.get("path"), copy.get("volume")),
        refusals=tuple(reasons), record={"undoes": entry.id},
        data={"kind": kind, "target": target, "tar": tar, "stops": stops, "copy": copy,
              "source": source, "entry": entry})


def run(kit: Kit, plan: Plan, op: Operation) -> None:
    d = plan.data
    if d["kind"] == "swap":
        rollback.copy_and_swap(d["kit"], plan, op)
        success(f"{plan.record['db']!r} holds what #{plan.record['undoes']} replaced again; "
                f"what it held is kept as the snapshot {plan.record['kept']!r}")
    elif d["kind"] == "drop":
        op.step("drop")
        change.drop(d["server"], [d["snap"]], plan.record["db"])
        success(f"dropped the snapshot #{plan.record['undoes']} made")
    elif d["kind"] == "aside":
        op.step("swap")
        change.set_aside(d["server"], plan.record["db"], plan.record["keep"],
                         plan.record["comment"])
        success(f"{plan.record['db']!r} is set aside as the snapshot {plan.record['kept']!r}")
    else:
        run_volume(kit, plan, op)


def run_volume(kit: Kit, plan: Plan, op: Operation) -> None:
    d = plan.data
    target, copy = d["target"], d["copy"]
    remove_leftover_helpers(kit, target.used_by)
    op.step("stop")
    stop_containers(kit, d["stops"])
    if d["tar"]:
        op.step("snapshot")
        snapshot_volume(kit, target, d["tar"])
        info(f"snapshot of what {target.label} held: {d['tar']}")
    op.step("replace")
    if d["kind"] == "tar":
        diff = fill_from_snapshot(kit, Path(copy["path"]), target)
    elif d["kind"] == "volume":
        diff = copy_verified(kit, d["source"], target)
    else:
        diff = []
        if target.exists:
            empty(kit, target)
    if diff:
        raise Failure(f"putting the copy back into {target.label} failed verification "
                      f"({'; '.join(diff)})", f"The copy is intact; the mark keeps db-up off "
                      f"{target.label}. Run `make db-undo OP={plan.record['undoes']}` again")
    if d["kind"] == "volume" and copy.get("compose_file"):
        atomic_write(Path(copy["compose_file"]), Path(copy["compose_original"]).read_bytes())
        info(f"{copy['compose_file']} is back as it was")
    op.step("unmark")
    if d["kind"] == "no-store" and not target.folder and remove_volume(kit, target):
        pass  # it did not exist before
    elif target.exists or d["kind"] in ("tar", "volume"):
        unmark(kit, target)  # (a volume a stopped container still refers to stays, empty)
    success(f"{target.label} holds what it held before #{plan.record['undoes']}")
    now = next((v for v in kit.scan(also=[target.name]) if v.name == target.name), None)
    if now and now.active and now.has_cluster and now.pg_major == kit.image.pg_major:
        op.step("start")
        start_service(kit)
    elif now and now.has_cluster:
        warning(f"{target.label} holds a PostgreSQL {now.pg_major} cluster and the image runs "
                f"{kit.image.pg_major}: set the service's image back to {now.pg_major} before "
                "`make db-up`")

