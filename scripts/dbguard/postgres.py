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

    # client_encoding: on a SQL_ASCII server psycopg would otherwise hand text over as bytes.
    return psycopg.connect(host=settings.db_host, port=settings.db_port, user=settings.db_user,
                           password=settings.db_password, dbname=dbname or settings.db_name,
                           connect_timeout=timeout, application_name="dbguard",
                           client_encoding="utf8", **kwargs)


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
    """What is in the live server, or why it could not be asked. Asked through the `postgres`
    database first, so a database closed to connections is reported as such."""
    try:
        with connect(settings, dbname="postgres", timeout=3, autocommit=True) as conn:
            dbs = conn.execute(
                "SELECT datname, pg_database_size(oid), datallowconn FROM pg_database "
                "WHERE NOT datistemplate ORDER BY datname").fetchall()
            version = conn.execute("SHOW server_version").fetchone()[0]
        closed = any(d == settings.db_name and not allowed for d, _, allowed in dbs)
        tables = {}
        if not closed and any(d == settings.db_name for d, _, _ in dbs):
            with connect(settings, timeout=3, autocommit=True) as conn:
                tables = table_stats(conn)
    except Exception as exc:  # any connection problem is a fact to report, not a crash
        return {"reachable": False, "error": explain_connection_error(settings, exc)}
    size = next((s for d, s, _ in dbs if d == settings.db_name), None)
    return {"reachable": True, "server_version": version, "closed": closed,
            "databases": [{"name": d, "size_bytes": s} for d, s, _ in dbs],
            "tables": len(tables), "rows_estimate": sum(tables.values()), "size_bytes": size}


def reopen_if_closed(settings: Settings) -> bool:
    """Allows connections again to the configured database when an interrupted swap of the
    kit's left it closed (nothing else the kit does closes one). True if it did; False too
    when the server cannot be asked from here (db-info explains why)."""
    from psycopg import Error as PsycopgError

    try:
        with maintenance_connection(settings) as conn:
            row = conn.execute("SELECT datallowconn FROM pg_database WHERE datname = %s",
                               [settings.db_name]).fetchone()
            if row is None or row[0]:
                return False
            conn.execute(sql_id("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true",
                                settings.db_name))
            return True
    except PsycopgError:
        return False


def explain_connection_error(settings: Settings, exc: Exception) -> str:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if settings.db_password:
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


def sql_literal(text: str):
    from psycopg import sql

    return sql.Literal(text)
