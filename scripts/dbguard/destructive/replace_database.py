"""DESTROYS DATA: replaces the configured database (db-restore, db-seed).

The new content is loaded into a scratch database `<db>_dbguard_new` while the current database
stays as it is (and, when asked, is dumped alongside: the safety dump). Only when the load and
the safety dump both succeeded are other connections closed and the two databases swapped by
two renames in one transaction. The replaced one is kept as `<db>_dbguard_old` until the next
run, which drops it just before its own swap (the plan says so first). A failure before the
swap drops only the scratch database.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..backup_check import CheckedBackup
from ..docker import Container
from ..dumps import take_dump
from ..errors import Failure
from ..kit import Kit
from ..loads import load_backup, report_tables
from ..messages import detail, info, warning
from ..postgres import (connect, connection_failure, explain_connection_error,
                        maintenance_connection, sql_id, table_stats)
from ..settings import Settings


def scratch_names(db: str) -> tuple[str, str]:
    """The database a restore loads into, and the name the replaced one gets until dropped.
    PostgreSQL cuts names at 63 bytes, so the base is cut first."""
    base = db.encode()[:48].decode(errors="ignore")
    return f"{base}_dbguard_new", f"{base}_dbguard_old"


def old_name(settings: Settings) -> str:
    """The name the replaced database keeps until the next run."""
    return scratch_names(settings.db_name)[1]


@dataclass(frozen=True)
class ReplaceState:
    """The server as a replacement finds it, read before the question."""

    tables: dict[str, int] | None   # the current database's tables; None: it does not exist
    kept_old: int | None            # size of <db>_dbguard_old kept by the previous run, if any
    closed: bool                    # the database refuses connections (an interrupted swap)


def preflight_replace(kit: Kit) -> ReplaceState:
    """Reads what a replacement would change. Outside a dry run it also reopens a database
    that an interrupted swap of ours left closed to connections; a dry run changes nothing."""
    s = kit.settings
    _, old = scratch_names(s.db_name)
    try:
        with maintenance_connection(s) as conn:
            found = {r[0]: (r[1], r[2]) for r in conn.execute(
                "SELECT datname, datallowconn, pg_database_size(oid) FROM pg_database")}
            closed = found.get(s.db_name, (True, 0))[0] is False
            if closed and not kit.runner.dry_run:
                # Only an interrupted swap of ours leaves the database closed to connections.
                conn.execute(sql_id("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true", s.db_name))
                info(f"reopened database {s.db_name!r}, left closed by an interrupted restore")
                closed = False
        kept_old = found[old][1] if old in found else None
        if s.db_name not in found:
            return ReplaceState(None, kept_old, False)
        if closed:  # a dry run: it stays closed, so its tables cannot be read
            return ReplaceState({}, kept_old, True)
        with connect(s, autocommit=True) as conn:
            return ReplaceState(table_stats(conn), kept_old, False)
    except Failure:
        raise
    except Exception as exc:
        raise connection_failure(s, exc) from None


def replace_database(kit: Kit, load: Callable[[str], None],
                     safety: Callable[[], Path] | None = None
                     ) -> tuple[dict[str, int], Path | None]:
    """Loads into a scratch database, then swaps it in for the configured one. The replaced
    database is kept as <db>_dbguard_old until the next run (it also holds whatever was
    written while the load ran), and the one the previous run kept is dropped just before the
    swap. A failure before the swap leaves every database as it was. `safety` (the safety dump
    of the current database) runs while the load does, and the swap waits for it. Returns the
    new database's tables with row estimates, and the safety dump's path."""
    from psycopg import Error as PsycopgError

    try:
        return _replace(kit, load, safety)
    except PsycopgError as exc:
        raise Failure(f"the database server refused a step of the replacement "
                      f"({explain_connection_error(kit.settings, exc)})",
                      f"{kit.settings.db_name!r} was left as it was and is open; run again "
                      "(stop the application first if it keeps the database busy)") from None


def _replace(kit: Kit, load: Callable[[str], None], safety: Callable[[], Path] | None
             ) -> tuple[dict[str, int], Path | None]:
    from concurrent.futures import ThreadPoolExecutor

    from psycopg import sql

    s = kit.settings
    db = s.db_name
    new, old = scratch_names(db)
    with maintenance_connection(s) as conn:
        drop_database(conn, new)  # a load of ours that was killed (it may still be running)
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
            with maintenance_connection(s) as conn:
                drop_database(conn, old)  # the previous run's, named in the plan
            swap_databases(s, db, new, old)
        except BaseException:
            with contextlib.suppress(Exception), maintenance_connection(s) as conn:
                drop_database(conn, new)
            raise
    return after, copy


def drop_database(conn, name: str) -> None:
    """Drops `name` if it exists, ending its sessions first (a killed run's pg_restore -j can
    still be loading into it inside the container)."""
    if conn.info.server_version >= 130000:
        conn.execute(sql_id("DROP DATABASE IF EXISTS {} WITH (FORCE)", name))
        return
    conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                 [name])
    conn.execute(sql_id("DROP DATABASE IF EXISTS {}", name))


def swap_databases(settings: Settings, db: str, new: str, old: str) -> None:
    from psycopg import Error as PsycopgError

    with maintenance_connection(settings) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db]).fetchone()
        if not exists:
            conn.execute(sql_id("ALTER DATABASE {} RENAME TO {}", new, db))
            return
        # Close the door first, so nothing reconnects between the terminations and the rename.
        conn.execute(sql_id("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false", db))
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
        except BaseException:
            conn.execute(sql_id("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true", db))  # as it was
            raise
    # Swapped: the new database is open (it never was closed); the replaced one took the closed
    # flag with it and is opened so it can be looked at. Nothing failing here may be reported
    # as a failed restore, so it is a warning.
    try:
        with maintenance_connection(settings) as conn:
            conn.execute(sql_id("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true", old))
    except PsycopgError as exc:
        warning(f"{old!r} stays closed to connections ({explain_connection_error(settings, exc)});"
                f" ALTER DATABASE \"{old}\" WITH ALLOW_CONNECTIONS true opens it")


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
    if before is not None:
        _, old = scratch_names(kit.settings.db_name)
        info(f"the replaced database is kept as {old!r} until the next restore or seed, with "
             "anything written to it while this one ran")
    for line in report_tables(before, after):
        detail(line)
