"""What the live server holds, read through server.Server: every database with its size and
whether it takes connections, the tables of one with a row estimate each, and the summary
db-info shows. Reads only.
"""
from __future__ import annotations

from .errors import Failure
from .server import VERSION_SQL, Server, Step

DATABASES_SQL = """
SELECT datname AS name, pg_database_size(oid) AS size_bytes, datallowconn AS open,
       shobj_description(oid, 'pg_database') AS note
  FROM pg_database WHERE NOT datistemplate ORDER BY datname
"""

TABLE_STATS_SQL = """
SELECT format('%s.%s', n.nspname, c.relname) AS name,
       -- The statistics collector follows every insert and delete; reltuples only moves
       -- with VACUUM or ANALYZE, so it is the fallback for tables the collector forgot.
       CASE WHEN s.n_tup_ins + s.n_tup_del > 0 OR s.last_analyze IS NOT NULL
                 OR s.last_autoanalyze IS NOT NULL THEN s.n_live_tup
            WHEN c.reltuples >= 0 THEN c.reltuples::bigint
            ELSE 0 END AS rows
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
 WHERE c.relkind IN ('r', 'p')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\\_toast%'
 ORDER BY 1
"""

TABLE_COUNT_SQL = """
SELECT count(*) AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
"""


def questions(server: Server, db: str) -> list[Step]:
    """What summary() asks of every server (the other databases' tables aside), for one
    prefetch with whatever else the caller asks."""
    maintenance = server.maintenance(db)
    return [Step.of(DATABASES_SQL, maintenance), Step.of(VERSION_SQL, maintenance),
            Step.of(TABLE_STATS_SQL, db)]


def databases(server: Server, maintenance_of: str = "") -> list[dict]:
    """Every database but the templates: name, size_bytes, open, note (its comment)."""
    return server.rows(DATABASES_SQL, server.maintenance(maintenance_of))


def table_stats(server: Server, db: str) -> dict[str, int]:
    """Tables of a database with a row estimate each."""
    return {r["name"]: int(r["rows"] or 0) for r in server.rows(TABLE_STATS_SQL, db)}


def summary(server: Server, db: str) -> dict:
    """What db-info shows of the live server, or why it could not be asked. Asked through the
    maintenance database first, so a database closed to connections is reported as such."""
    try:
        dbs = databases(server, db)
        version = server.version(db)[0]
        mine = next((d for d in dbs if d["name"] == db), None)
        closed = mine is not None and not mine["open"]
        tables = table_stats(server, db) if mine and not closed else {}
        others = [d for d in dbs
                  if d["open"] and d["name"] != db and "_dbguard_" not in d["name"]]
        with server.ahead([Step.of(TABLE_COUNT_SQL, d["name"]) for d in others]):
            for d in dbs:  # every database's tables, counted (for the application's one)
                if d in others:
                    d["tables"] = int(server.value(TABLE_COUNT_SQL, d["name"]) or 0)
                elif d["name"] == db:
                    d["tables"] = len(tables)
    except Failure as exc:  # a server that cannot be asked is a fact to report, not a crash
        return {"reachable": False, "error": exc.message}
    return {"reachable": True, "server_version": version, "closed": closed,
            "exists": mine is not None,
            "databases": [{"name": d["name"], "size_bytes": int(d["size_bytes"]),
                           "open": d["open"], "tables": d.get("tables")} for d in dbs],
            "tables": len(tables), "rows_estimate": sum(tables.values()),
            "size_bytes": int(mine["size_bytes"]) if mine else None}
