"""db-snapshots DROP=name / KEEP=n: drop snapshots of the database.

plan       DROP: that snapshot; KEEP: the snapshots db-snapshot took, beyond the newest n (the
           kit's own, before_restore, before_seed and replaced_*, are kept: they are what
           db-undo puts back; DROP=name drops one of them)
preflight  DROP names a snapshot of this database; KEEP is at least 1 (KEEP=0 would drop every
           snapshot: DROP them one by one if that is meant)
run        drops each (its sessions are ended first)
keeps      nothing: a snapshot is itself a copy, and dropping it is what was asked; db-undo
           refuses to reverse this, saying so
"""
from __future__ import annotations

from ..db_snapshots import list_snapshots
from ..destructive import databases as change
from ..journal import Operation
from ..kit import Kit
from ..messages import human_size, info
from ..names import is_kit_snapshot_name
from . import Plan

COMMAND = "db-snapshots"


def preflight(db: str, drop: str | None, keep: int | None, names: list[str]) -> list[str]:
    reasons = []
    if drop is not None and drop not in names:
        reasons.append(f"{db!r} has no snapshot named {drop!r} (`make db-snapshots` lists "
                       "them)")
    if keep is not None and keep < 1:
        reasons.append(f"KEEP={keep} would drop every snapshot of {db!r}; keep at least one "
                       "(KEEP=1), or drop them one by one with DROP=name")
    return reasons


def plan(kit: Kit, args, ctx=None) -> Plan:
    db = kit.db
    server = kit.server()
    snapshots = list_snapshots(server, db)
    keep = int(args.keep) if args.keep is not None else None
    if args.drop:
        doomed = [s for s in snapshots if s.name == args.drop]
    else:
        taken = [s for s in snapshots if not is_kit_snapshot_name(s.name)]
        doomed = taken[keep:] if keep and keep > 0 else []
    reasons = preflight(db, args.drop, keep, [s.name for s in snapshots])
    return Plan(
        command=COMMAND, doing=f"drop snapshots of {db!r}",
        target={"kind": "database", "name": db},
        copy={"kind": "none", "why": "a dropped snapshot is not kept: it was itself a copy"},
        lines=tuple(("drop", f"snapshot {s.name!r} ({human_size(s.size)})") for s in doomed),
        question=f"Drop {len(doomed)} snapshot(s) of {db!r}?" if doomed else None,
        facts=tuple(s.database + (s.comment or "") for s in doomed),
        refusals=tuple(reasons),
        record={"db": db, "drops": [s.database for s in doomed]},
        data={"server": server, "doomed": doomed, "count": len(snapshots)})


def run(kit: Kit, plan: Plan, op: Operation) -> int:
    doomed = plan.data["doomed"]
    if not doomed:
        info(f"{plan.data['count']} snapshot(s), none to drop")
        return 0
    for snapshot in doomed:
        op.step(f"drop {snapshot.name}")
        change.drop(plan.data["server"], [snapshot.database], kit.db)
        info(f"dropped snapshot {snapshot.name!r}")
    return len(doomed)
