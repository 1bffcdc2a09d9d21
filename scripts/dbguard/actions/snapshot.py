"""db-snapshot: a copy of the database inside the server, in seconds (before a risky change).

plan       the database, and the snapshot's database <db>_dbguard_snap_<NAME>
preflight  the database exists and is open; no database has the snapshot's name
run        CREATE DATABASE ... TEMPLATE with the database closed to other connections for the
           moment the copy takes, then opened again, and the comment that makes the copy this
           database's snapshot (recovery finishes those two if the command is killed)
keeps      nothing is replaced; db-undo drops the snapshot again
"""
from __future__ import annotations

from ..catalog import databases
from ..db_snapshots import Snapshot, list_snapshots, stamp_name, utc_now
from ..destructive import databases as change
from ..journal import Operation
from ..kit import Kit
from ..messages import human_size
from ..names import snapshot_comment, snapshot_database
from . import Plan

COMMAND = "db-snapshot"


def preflight(db: str, snap: str, name: str, found: dict) -> list[str]:
    reasons = []
    if db not in found:
        reasons.append(f"there is no database {db!r} to take a snapshot of (start it with "
                       "`make db-up`, and migrate, first)")
    elif not found[db]["open"]:
        reasons.append(f"database {db!r} is closed to connections, and no interrupted dbguard "
                       "command in the journal closed it; open it yourself first")
    if snap in found:
        reasons.append(f"a snapshot named {name!r} exists already (make db-snapshots "
                       f"DROP={name} drops it; or choose another NAME)")
    return reasons


def plan(kit: Kit, args, ctx=None) -> Plan:
    db, name = kit.db, args.name or stamp_name()
    server = kit.server()
    found = {d["name"]: d for d in databases(server, db)}
    snap = snapshot_database(db, name)
    size = human_size(int(found[db]["size_bytes"])) if db in found else "?"
    return Plan(
        command=COMMAND, doing=f"take a snapshot of {db!r}",
        target={"kind": "database", "name": db},
        copy={"kind": "made", "database": snap, "snapshot": name, "of": db},
        lines=(("copy", f"database {db!r} ({size}) into the snapshot {name!r} ({snap}); other "
                        "connections to it are ended and new ones refused for the moment "
                        "the copy takes"),),
        facts=(db, snap), refusals=tuple(preflight(db, snap, name, found)),
        record={"db": db, "snapshot": name, "snapshot_db": snap,
                "comment": snapshot_comment(db, utc_now())},
        data=server)


def run(kit: Kit, plan: Plan, op: Operation) -> Snapshot:
    server, f = plan.data, plan.record
    op.step("copy")
    change.copy_database(server, f["db"], f["snapshot_db"], f["comment"], close=True)
    return next(s for s in list_snapshots(server, f["db"]) if s.database == f["snapshot_db"])
