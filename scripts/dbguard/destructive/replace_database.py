"""DESTROYS DATA: replaces the configured database (db-restore, db-seed).

The new content is loaded into a scratch database `<db>_dbguard_new` while the current database
stays as it is (and, when asked, is dumped alongside: the safety dump). Only when the load and
the safety dump both succeeded are other connections closed and the two databases swapped by
two renames in one transaction; the replaced one, renamed `<db>_dbguard_old`, is dropped after
the swap. A failure before the swap drops only the scratch database.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Callable

from ..backup_check import CheckedBackup
from ..docker import Container
from ..dumps import take_dump
from ..errors import Failure, Refusal
from ..kit import Kit
from ..loads import load_backup, report_tables
from ..messages import detail, info, warning
from ..postgres import (connect, connection_failure, maintenance_connection, sql_id,
                        table_stats)
from ..settings import Settings


def scratch_names(db: str) -> tuple[str, str]:
    """The database a restore loads into, and the name the replaced one gets until dropped.
    PostgreSQL cuts names at 63 bytes, so the base is cut first."""
    base = db.encode()[:48].decode(errors="ignore")
    return f"{base}_dbguard_new", f"{base}_dbguard_old"


def preflight_replace(kit: Kit) -> dict[str, int] | None:
    """Checks the server can take a swap; returns the current tables (None: no database)."""
    s = kit.settings
    _, old = scratch_names(s.db_name)
    try:
        with maintenance_connection(s) as conn:
            names = {r[0]: r[1] for r in conn.execute(
                "SELECT datname, datallowconn FROM pg_database")}
            if old in names:
                raise Refusal(f"a previous restore left the database {old!r} (the database as "
                              "it was before that restore) behind",
                              f"Look at it, then drop it (make db-shell, DROP DATABASE \"{old}\";)"
                              " and run again; nothing was changed")
            if names.get(s.db_name) is False:
                # Only an interrupted swap of ours leaves the database closed to connections.
                conn.execute(sql_id("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true", s.db_name))
    except Failure:
        raise
    except Exception as exc:
        raise connection_failure(s, exc) from None
    if s.db_name not in names:
        return None
    with connect(s, autocommit=True) as conn:
        return table_stats(conn)


def replace_database(kit: Kit, load: Callable[[str], None],
                     safety: Callable[[], Path] | None = None) -> tuple[dict[str, int], Path | None]:
    """Loads into a scratch database, then swaps it in for the configured one and drops the
    replaced one only after the swap. A failure before the swap leaves the database as it was.
    `safety` (the safety dump of the current database) runs while the load does, and the swap
    waits for it: nothing is replaced before the copy is whole. Returns the new database's
    tables with row estimates, and the safety dump's path."""
    from concurrent.futures import ThreadPoolExecutor

    from psycopg import sql

    s = kit.settings
    db = s.db_name
    new, old = scratch_names(db)
    with maintenance_connection(s) as conn:
        conn.execute(sql_id("DROP DATABASE IF EXISTS {}", new))  # a crashed load of ours
        row = conn.execute(
            "SELECT pg_encoding_to_char(encoding), datcollate, datctype "
            "FROM pg_database WHERE datname = %s", [db]).fetchone()
        create = sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(new))
        if row:
            create += sql.SQL(" ENCODING {} LC_COLLATE {} LC_CTYPE {}").format(
                sql.Literal(row[0]), sql.Literal(row[1]), sql.Literal(row[2]))
        conn.execute(create)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(safety) if safety else None
        try:
            try:
                load(new)
                with connect(s, dbname=new, autocommit=True) as conn:
                    conn.execute("ANALYZE")  # row estimates for the report, and the planner
                    after = table_stats(conn)
            except BaseException:
                if pending:
                    pending.exception()  # let the safety dump finish; the load's error counts
                raise
            copy = pending.result() if pending else None  # a failed safety dump stops here
            swap_databases(s, db, new, old)
        except BaseException:
            with contextlib.suppress(Exception), maintenance_connection(s) as conn:
                conn.execute(sql_id("DROP DATABASE IF EXISTS {}", new))
            raise
    with maintenance_connection(s) as conn:
        try:
            conn.execute(sql_id("DROP DATABASE IF EXISTS {}", old))
        except Exception as exc:
            warning(f"the replaced database was kept as {old!r} ({exc}); drop it when you no "
                    "longer need it")
    return after, copy


def swap_databases(settings: Settings, db: str, new: str, old: str) -> None:
    with maintenance_connection(settings) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db]).fetchone()
        if not exists:
            conn.execute(sql_id("ALTER DATABASE {} RENAME TO {}", new, db))
            return
        # Close the door first, so nothing reconnects between the terminations and the rename.
        conn.execute(sql_id("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false", db))
        swapped = False
        try:
            for _ in range(100):
                left = conn.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()", [db]).fetchone()[0]
                if not left:
                    break
                time.sleep(0.1)
            with conn.transaction():
                conn.execute(sql_id("ALTER DATABASE {} RENAME TO {}", db, old))
                conn.execute(sql_id("ALTER DATABASE {} RENAME TO {}", new, db))
            swapped = True
        finally:
            if not swapped:
                conn.execute(sql_id("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true", db))


def replace_with_backup(kit: Kit, backup: CheckedBackup, container: Container,
                        before: dict[str, int] | None, safety_tag: str | None) -> None:
    """db-restore's and db-seed's common end: the safety dump (when `safety_tag` is given)
    alongside the load into a scratch database, the swap, and the report."""
    # Light compression: the safety dump stands in the way of the restore, and zlib level 1
    # is much faster than pg_dump's default for a few per cent more size.
    after, copy = replace_database(
        kit, load_backup(kit, backup, container),
        (lambda: take_dump(kit, "custom", tag=safety_tag, extra=("-Z", "1")))
        if safety_tag else None)
    if copy:
        info(f"safety dump: {copy} (make db-restore FILE={copy} puts it back)")
    for line in report_tables(before, after):
        detail(line)
