"""db-reindex: after the collation library under a database changed (collation.py), the indexes
that depend on the changed collation are checked and rebuilt, and only then is the new version
recorded; never the other way round (a recorded version that claims the indexes are fine while
they are not is what makes the drift silent).

plan       the database's drift (default collation and its own collations), the indexes that
           depend on it, how each is checked (amcheck's bt_index_check for a B-tree when the
           server has amcheck; otherwise none possible, so it is rebuilt), and the snapshot
           reindex_<yymmdd_HHMMSS> kept first
preflight  the database exists and is open; it has drifted
run        the snapshot (as db-snapshot takes it); the checks (amcheck installed for the
           moment, if the database did not have it, and removed again); REINDEX of every index
           that failed its check or could not be checked; then ALTER DATABASE ... REFRESH
           COLLATION VERSION and ALTER COLLATION ... REFRESH VERSION
keeps      the snapshot: db-undo puts the database back as it was (indexes, recorded version)
"""
from __future__ import annotations

import json

from ..catalog import databases
from ..collation import amcheck, drifted
from ..db_snapshots import utc_now
from ..destructive import databases as change
from ..errors import Failure
from ..journal import Operation
from ..kit import Kit
from ..messages import info, plural, success, warning
from ..names import REINDEX_PREFIX, snapshot_comment, snapshot_database
from . import Plan

COMMAND = "db-reindex"

# Each B-tree index checked against the order the server's collation gives now; the error of
# each that fails (an order the index does not have), as one JSON line. A function in pg_temp
# catches each error, so that one bad index does not hide the others.
CHECK_SQL = r"""-- check
CREATE FUNCTION pg_temp.dbguard_check(idx oid) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM bt_index_check(idx::regclass);
  RETURN NULL;
EXCEPTION WHEN others THEN
  RETURN SQLERRM;
END $$;
SELECT coalesce(json_agg(json_build_object('oid', o, 'error', e)), '[]'::json)
  FROM (SELECT o, pg_temp.dbguard_check(o) AS e FROM unnest(:'oids'::oid[]) AS o) q
 WHERE e IS NOT NULL;
"""

REFRESH_SQL = r"""-- refresh
SELECT format('ALTER COLLATION %s REFRESH VERSION', oid::regcollation)
  FROM pg_collation WHERE oid = ANY (:'collations'::oid[]) \gexec
\if :refresh_default
ALTER DATABASE :"db" REFRESH COLLATION VERSION;
\endif
"""


def plan(kit: Kit, args, ctx=None) -> Plan:
    db, server = kit.db, kit.server()
    found = {d["name"]: d for d in databases(server, db)}
    reasons = []
    if db not in found:
        reasons.append(f"there is no database {db!r}")
    elif not found[db]["open"]:
        reasons.append(f"database {db!r} is closed to connections, and no interrupted dbguard "
                       "command in the journal closed it; open it yourself first")
    drift = next((d for d in drifted(server, db, every=False) if d.db == db), None) \
        if not reasons else None
    if not reasons and drift is None:
        return Plan(COMMAND, f"reindex {db!r}", {"kind": "database", "name": db}, {},
                    nothing=f"{db!r}: every collation it uses is at the version the server "
                            "provides (or records none, as C and C.UTF-8 do); nothing to do")
    if reasons:
        return Plan(COMMAND, f"reindex {db!r}", {"kind": "database", "name": db}, {},
                    refusals=tuple(reasons))
    available, installed = amcheck(server, db)
    checkable = [i for i in drift.indexes if i["method"] == "btree" and available]
    blind = [i for i in drift.indexes if i not in checkable]
    name = REINDEX_PREFIX + args.stamp[2:]
    snap = snapshot_database(db, name)
    lines = [("drift", drift.describe()),
             ("indexes", ", ".join(i["name"] for i in drift.indexes) or "none depends on it"),
             ("snapshot", f"of {db!r} first, as {name!r} (db-undo puts it back)"),
             ("check", (f"{plural(len(checkable), 'B-tree index')} with amcheck" +
                        ("" if installed else " (installed for the check, removed after)"))
              if checkable else "none possible" + ("" if available else
                                                   " (the server has no amcheck)")),
             ("rebuild", ("the ones that fail their check" if checkable else "") +
              (("; " if checkable else "") + "every one that cannot be checked: " +
               ", ".join(i["name"] for i in blind) if blind else "")),
             ("then", "record the new version (REFRESH COLLATION VERSION)")]
    return Plan(
        command=COMMAND, doing=f"reindex {db!r}", target={"kind": "database", "name": db},
        copy={"kind": "database", "database": snap, "snapshot": name, "of": db},
        lines=tuple(lines),
        question=f"Check and rebuild the indexes of {db!r}, then record the new collation "
                 "version?",
        facts=(db, drift.default, tuple(c["oid"] for c in drift.collations),
               tuple(i["oid"] for i in drift.indexes)),
        record={"db": db, "snapshot": name, "snapshot_db": snap,
                "comment": snapshot_comment(db, utc_now(), "before db-reindex")},
        data={"server": server, "drift": drift, "checkable": checkable, "blind": blind,
              "installed": installed})


def run(kit: Kit, plan: Plan, op: Operation) -> list[str]:
    d, f = plan.data, plan.record
    server, drift, db = d["server"], d["drift"], f["db"]
    op.step("snapshot")
    change.copy_database(server, db, f["snapshot_db"], f["comment"], close=True)
    info(f"snapshot of {db!r}: {f['snapshot']!r}")
    failing = []
    if d["checkable"]:
        op.step("check")
        failing = check(server, db, d["checkable"], d["installed"])
        for index, error in failing:
            warning(f"{index['name']}: {error}")
    rebuild = [i for i, _ in failing] + d["blind"]
    if rebuild:
        op.step("reindex")
        server.run("SELECT format('REINDEX INDEX %s', o::regclass) FROM unnest(:'oids'::oid[]) "
                   "AS o \\gexec", db, oids="{" + ",".join(str(i["oid"]) for i in rebuild) + "}")
        info(f"rebuilt {', '.join(i['name'] for i in rebuild)}")
    op.step("refresh")
    server.run(REFRESH_SQL, db, db=db, refresh_default="true" if drift.default else "false",
               collations="{" + ",".join(str(c["oid"]) for c in drift.collations) + "}")
    left = [x for x in drifted(server, db, every=False) if x.db == db]
    if left:
        raise Failure(f"{db!r} still records another collation version ({left[0].describe()})",
                      f"The snapshot {f['snapshot']!r} holds it as it was; run again")
    checked = len(d["checkable"]) - len(failing)
    success(f"{db!r}: {plural(checked, 'index')} checked and sound, "
            f"{plural(len(rebuild), 'index')} rebuilt; the collation version is recorded "
            f"anew (the snapshot {f['snapshot']!r} keeps it as it was: make db-undo)")
    return [i["name"] for i in rebuild]


def check(server, db: str, indexes: list[dict], installed: bool) -> list[tuple[dict, str]]:
    """amcheck on each index (installed for the moment when the database lacks it): the ones
    whose order is not the one the collation gives now, with amcheck's words."""
    oids = "{" + ",".join(str(i["oid"]) for i in indexes) + "}"
    script = ("" if installed else "CREATE EXTENSION IF NOT EXISTS amcheck;\n") + CHECK_SQL + \
        ("" if installed else "DROP EXTENSION IF EXISTS amcheck;\n")
    out = server.run(script, db, oids=oids)
    line = next((ln for ln in reversed(out.splitlines()) if ln.startswith("[")), "[]")
    errors = {e["oid"]: e["error"] for e in json.loads(line)}
    return [(i, errors[i["oid"]]) for i in indexes if i["oid"] in errors]
