"""db-restore: replace a database with a backup, keeping what it replaces as a snapshot.

plan       the backup (FILE, or the newest of the database that passes every check: checksum,
           pg_dump's format, a major the server can load, whole), the database now (tables and
           rows, or missing), the snapshot before_restore it will be kept as, and the previous
           before_restore, dropped once the new load has succeeded
preflight  the database is open (a closed one is someone else's doing: not touched)
run        load into the scratch database (with the safety dump alongside when asked), swap it
           in (one transaction: the live database becomes before_restore), check the tables
keeps      the replaced database, as the snapshot before_restore (db-undo, or db-rollback
           NAME=before_restore, puts it back); with DBGUARD_SAFETY_DUMP=1 a dump of it too
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from ..backup_check import CheckedBackup, check_backup, newest_good_backup
from ..catalog import databases, table_stats
from ..dumps import take_dump
from ..journal import Operation
from ..kit import Kit
from ..loads import Loader, report_tables
from ..messages import detail, human_size, info, success
from ..names import KEPT_BY, snapshot_comment, snapshot_database
from ..db_snapshots import utc_now
from ..destructive.replace_database import load_and_swap
from ..settings import KIT_ROOT
from . import Plan

COMMAND = "db-restore"


@contextlib.contextmanager
def session(kit: Kit, args):
    """The loader, whose copies into the container live from the plan to the load."""
    with Loader(kit, kit.server()) as load:
        yield load


def resolve(name: str) -> Path:
    path = Path(name)
    if not path.exists() and not path.is_absolute() and (KIT_ROOT / path).exists():
        return KIT_ROOT / path
    return path


def pick(kit: Kit, args, load: Loader) -> CheckedBackup:
    """FILE, or the newest good backup of the database; each file is copied into the container
    while it is checked (and the question asked), and the copy is removed if it is not used."""
    major = kit.image.pg_major
    if args.file:
        load.stage(resolve(args.file))
        backup = check_backup(kit, load.cid, resolve(args.file), major)
    else:
        backup = newest_good_backup(kit, load.cid, major, load.stage)
    load.use(backup)
    return backup


def state_of(kit: Kit, load: Loader, kind: str) -> dict:
    """The database as a replacement finds it: its tables (None: it does not exist), whether
    it is open, and the size of the snapshot the previous run of `kind` kept."""
    server, db = load.server, kit.db
    found = {d["name"]: d for d in databases(server, db)}
    keep = snapshot_database(db, KEPT_BY[kind])
    live = found.get(db)
    return {"tables": table_stats(server, db) if live and live["open"] else
            (None if live is None else {}),
            "exists": live is not None, "open": bool(live and live["open"]),
            "size": int(live["size_bytes"]) if live else None,
            "kept_old": int(found[keep]["size_bytes"]) if keep in found else None,
            "keep": keep}


def preflight(kit: Kit, state: dict) -> list[str]:
    if state["exists"] and not state["open"]:
        return [f"database {kit.db!r} is closed to connections, and no interrupted dbguard "
                "command in the journal closed it (someone did, by hand); open it yourself "
                "first"]
    return []


def plan(kit: Kit, args, load: Loader) -> Plan:
    backup = pick(kit, args, load)
    return replacement_plan(kit, args, load, backup, "restore")


def replacement_plan(kit: Kit, args, load: Loader, backup: CheckedBackup, kind: str,
                     extra_refusals: list[str] = ()) -> Plan:
    """The plan of db-restore, and of db-seed (`kind`: restore or seed)."""
    state = state_of(kit, load, kind)
    db, before = kit.db, state["tables"]
    made = f", made by pg_dump {backup.facts.pg_dump_version}" \
        if backup.facts.pg_dump_version else ""
    check = "checksum verified" if backup.checksum else "no checksum file: read whole"
    now = "does not exist" if before is None else \
        f"{len(before)} tables, about {sum(before.values()):,} rows"
    name = KEPT_BY[kind]
    lines = [(kind, f"{backup.path} ({backup.facts.format}, "
                    f"{human_size(backup.path.stat().st_size)}{made}; {check})"),
             ("replace", f"database {db!r} ({now})" + ("" if before is None else
                         f"; kept as the snapshot {name!r} (undo: make db-undo)"))]
    safety = kit.settings.safety_dump and before is not None
    if safety:
        lines.append(("first", f"a safety dump of it to {kit.settings.backup_dir} "
                               "(DBGUARD_SAFETY_DUMP=1)"))
    if state["kept_old"] is not None:
        lines.append(("drops", f"the snapshot {name!r} ({human_size(state['kept_old'])}) the "
                               f"previous {kind} kept, once the new load has succeeded"))
    comment = snapshot_comment(db, utc_now(), f"what db-{kind} replaced")
    stat = backup.path.stat()
    return Plan(
        command=f"db-{kind}", doing=f"{kind} {backup.path.name} into {db!r}",
        target={"kind": "database", "name": db},
        copy={"kind": "database", "database": state["keep"], "snapshot": name, "of": db}
        if before is not None else {"kind": "absent", "of": db},
        lines=tuple(lines),
        question=f"Replace database {db!r} with {backup.path.name}?"
        if bool(before) or state["kept_old"] is not None or kind == "restore" else None,
        facts=(db, str(backup.path), stat.st_size, stat.st_mtime_ns, state["exists"],
               state["kept_old"] is not None),
        refusals=tuple([*preflight(kit, state), *extra_refusals]),
        record={"db": db, "keep": state["keep"], "comment": comment,
                "file": str(backup.path), "safety_dump": safety},
        data={"backup": backup, "load": load, "before": before, "safety": safety,
              "kind": kind})


def run(kit: Kit, plan: Plan, op: Operation) -> None:
    d = plan.data
    load, kind, before = d["load"], d["kind"], d["before"]
    server = load.server
    safety = (lambda: take_dump(kit, server, "custom", tag=f"pre-{kind}")) if d["safety"] \
        else None
    after, copy = load_and_swap(kit, server, load, op, kit.db, plan.record["keep"],
                                plan.record["comment"], safety)
    if copy:
        info(f"safety dump: {copy} (make db-restore FILE={copy} puts it back)")
    if before is not None:
        name = KEPT_BY[kind]
        info(f"what it replaced is kept as the snapshot {name!r} until the next {kind}, with "
             f"anything written to it while this one ran; undo: make db-undo")
    for line in report_tables(before, after):
        detail(line)
    success(f"{kit.db!r} now holds {d['backup'].path.name}")
