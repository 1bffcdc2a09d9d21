"""db-rollback: put a snapshot back; the database becomes what it was when it was taken.

plan       the snapshot (NAME, or the newest of the database's), the database now, and the
           snapshot replaced_<time> the database will be kept as
preflight  the database has that snapshot; the database is open (if it exists)
run        copy the snapshot into the scratch database (the snapshot itself stays), swap it in
           (one transaction: the live database becomes replaced_<time>), then check that the
           database holds the snapshot's tables, row for row as its catalog records them
keeps      the replaced database, as the snapshot replaced_<time> (db-undo puts it back)
"""
from __future__ import annotations

from ..catalog import databases
from ..db_snapshots import Snapshot, list_snapshots, utc_now
from ..destructive import databases as change
from ..errors import Failure
from ..journal import Operation
from ..kit import Kit
from ..messages import human_age, human_size, success
from ..names import REPLACED_PREFIX, scratch_database, snapshot_comment, snapshot_database
from ..server import Server
from . import Plan

COMMAND = "db-rollback"

# What the catalog records of every table: equal in a file copy and its source.
CATALOG_SQL = """
SELECT format('%I.%I', n.nspname, c.relname) AS name, c.reltuples::bigint AS tuples,
       c.relpages AS pages
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY 1
"""


def free_replaced_name(db: str, found: dict, stamp: str) -> str:
    """replaced_<yymmdd_HHMMSS>[_n]: at most 24 characters, as every snapshot name (a longer
    one would be cut by the server, and could then be another's)."""
    base = REPLACED_PREFIX + stamp[2:]
    name = base
    for n in range(2, 10):  # two within a second
        if snapshot_database(db, name) not in found:
            break
        name = f"{base}_{n}"
    return name


def swap_plan(kit: Kit, server: Server, source: Snapshot | None, found: dict, command: str,
              doing: str, stamp: str, undoes: int | None = None, missing: str = "") -> Plan:
    """The plan of putting a snapshot's copy in place of the database (db-rollback, and
    db-undo of a change inside the server)."""
    db = kit.db
    live = found.get(db)
    kept = free_replaced_name(db, found, stamp)
    keep = snapshot_database(db, kept)
    reasons = []
    if source is None:
        reasons.append(missing or f"{db!r} has no such snapshot")
    if live is not None and not live["open"]:
        reasons.append(f"database {db!r} is closed to connections, and no interrupted dbguard "
                       "command in the journal closed it; open it yourself first")
    lines = []
    if source is not None:
        lines.append(("put back", f"snapshot {source.name!r} ({human_size(source.size)}, "
                                  f"taken {human_age(source.age)})"))
    lines.append(("replace", f"database {db!r}" + (
        f" ({human_size(int(live['size_bytes']))}); kept as the snapshot {kept!r}"
        if live is not None else " (does not exist)")))
    comment = snapshot_comment(db, utc_now(), f"what {command} replaced")
    return Plan(
        command=command, doing=doing, target={"kind": "database", "name": db},
        copy={"kind": "database", "database": keep, "snapshot": kept, "of": db}
        if live is not None else {"kind": "absent", "of": db},
        lines=tuple(lines),
        question=f"Replace database {db!r} with snapshot {source.name!r}?" if source else None,
        facts=(db, source.database if source else None, source.comment if source else None,
               live is not None),
        refusals=tuple(reasons),
        record={"db": db, "keep": keep, "kept": kept, "comment": comment,
                "source": source.database if source else None,
                **({"undoes": undoes} if undoes else {})},
        data={"server": server, "source": source})


def plan(kit: Kit, args, ctx=None) -> Plan:
    server = kit.server()
    snapshots = list_snapshots(server, kit.db)
    chosen = next((s for s in snapshots if s.name == args.name), None) if args.name else \
        (snapshots[0] if snapshots else None)
    found = {d["name"]: d for d in databases(server, kit.db)}
    missing = (f"{kit.db!r} has no snapshot" + (f" named {args.name!r}" if args.name else "")
               + " (`make db-snapshots` lists them, `make db-snapshot` takes one)")
    return swap_plan(kit, server, chosen, found, COMMAND,
                     f"roll {kit.db!r} back" + (f" to {args.name!r}" if args.name else ""),
                     args.stamp, missing=missing)


def copy_and_swap(kit: Kit, plan: Plan, op: Operation) -> None:
    server, source = plan.data["server"], plan.data["source"]
    f = plan.record
    scratch = scratch_database(f["db"])
    op.step("copy")
    change.drop(server, [scratch], f["db"])  # a killed run's
    change.copy_database(server, source.database, scratch, None, close=True)
    # Checked before the swap, while nobody else can be connected to the copy: what the
    # catalog records of every table is equal in a file copy and its source.
    got, want = (server.rows(CATALOG_SQL, name) for name in (scratch, source.database))
    if got != want:
        raise Failure(f"the copy of the snapshot {source.name!r} differs from it",
                      f"{f['db']!r} was left as it was; run again")
    copied = change.oid_of(server, scratch, f["db"])
    op.step("swap")
    change.swap_in(server, f["db"], scratch, f["keep"], f["comment"])
    op.step("verify")
    if change.oid_of(server, f["db"], f["db"]) != copied:
        raise Failure(f"after the swap, {f['db']!r} is not the copy of the snapshot",
                      f"What it replaced is kept as {f['kept']!r}; `make db-undo` puts it "
                      "back")


def run(kit: Kit, plan: Plan, op: Operation) -> str:
    copy_and_swap(kit, plan, op)
    kept, name = plan.record["kept"], plan.data["source"].name
    success(f"{kit.db!r} holds snapshot {name!r} again; what it held is kept as the snapshot "
            f"{kept!r} (make db-undo puts it back)")
    return kept
