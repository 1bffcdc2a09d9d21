"""Talking to PostgreSQL from the host: connections (the password passed in-process, never on a
command line), the table statistics the reports use, what db-info shows of the live server, and
connection errors explained with the password masked. psycopg is imported only here, and only
when a connection is made.
"""
from __future__ import annotations

from .errors import Failure
from .settings import Settings


def connect(settings: Settings, dbname: str | None = None, timeout: int = 5, **kwargs):
    """A psycopg connection with the password passed in-process (never on a command line)."""
    import psycopg

    return psycopg.connect(host=settings.db_host, port=settings.db_port, user=settings.db_user,
                           password=settings.db_password, dbname=dbname or settings.db_name,
                           connect_timeout=timeout, application_name="dbguard", **kwargs)


def maintenance_connection(settings: Settings):
    """A connection to the `postgres` database in autocommit mode: CREATE, DROP and ALTER
    DATABASE cannot run inside a transaction block, nor on the database they change."""
    return connect(settings, dbname="postgres", autocommit=True)


TABLE_STATS_SQL = """
    SELECT n.nspname, c.relname,
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
     ORDER BY 1, 2
"""


def table_stats(conn) -> dict[str, int]:
    """Tables of the connected database with a row estimate each."""
    return {f"{schema}.{name}": int(rows)
            for schema, name, rows in conn.execute(TABLE_STATS_SQL).fetchall()}


def database_summary(settings: Settings) -> dict:
    """What is in the live server, or why it could not be asked."""
    try:
        with connect(settings, timeout=3, autocommit=True) as conn:
            dbs = conn.execute(
                "SELECT datname, pg_database_size(oid) FROM pg_database "
                "WHERE NOT datistemplate ORDER BY datname").fetchall()
            tables = table_stats(conn)
            version = conn.execute("SHOW server_version").fetchone()[0]
    except Exception as exc:  # any connection problem is a fact to report, not a crash
        return {"reachable": False, "error": explain_connection_error(settings, exc)}
    size = next((s for d, s in dbs if d == settings.db_name), None)
    return {"reachable": True, "server_version": version,
            "databases": [{"name": d, "size_bytes": s} for d, s in dbs],
            "tables": len(tables), "rows_estimate": sum(tables.values()), "size_bytes": size}


def explain_connection_error(settings: Settings, exc: Exception) -> str:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    first = first.replace(settings.db_password, "********")
    if "password authentication failed" in first:
        first += (" (a cluster keeps the password it was created with: POSTGRES_PASSWORD only "
                  "applies when the image initialises an empty volume, so DJANGO_DB_PASSWORD "
                  "must be the cluster's)")
    return first


def connection_failure(settings: Settings, exc: Exception) -> Failure:
    first = explain_connection_error(settings, exc)
    return Failure(f"cannot connect to PostgreSQL at {settings.db_host}:{settings.db_port} as "
                   f"{settings.db_user!r}: {first}",
                   "Check DJANGO_DB_HOST/PORT/USER/PASSWORD in .env and `make db-info`")


def sql_id(template: str, *names: str):
    from psycopg import sql

    return sql.SQL(template).format(*[sql.Identifier(n) for n in names])
