"""DESTROYS DATA: replaces the configured database (db-restore, db-seed).

The new content is loaded into a scratch database `<db>_dbguard_new` while the current database
stays as it is (and, when asked, is dumped alongside: the safety dump). Only when the load and
the safety dump both succeeded are other connections closed and the two databases swapped by
two renames in one transaction. The replaced one is kept as the snapshot `before_restore` (or
`before_seed`): a copy that costs nothing, since it is the database itself, and that
`make db-rollback NAME=before_restore` puts back. The next run of the same command drops it
once its question was answered, while its load runs (the plan names it). A failure before the
swap leaves the current database as it was and drops the scratch database.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable

from ..dumps import take_dump
from ..errors import Failure
from ..kit import Kit
from ..loads import Loader, report_tables
from ..db_snapshots import comment, database_of
from ..messages import detail, human_size, info, timing, warning
from ..postgres import (connect, connection_failure, explain_connection_error,
                        maintenance_connection, sql_id, sql_literal, table_stats)
from ..settings import Settings


def scratch_name(db: str) -> str:
    """The database a restore loads into. PostgreSQL cuts names at 63 bytes, so the base is
    cut first."""
    return db.encode()[:48].decode(errors="ignore") + "_dbguard_new"


def kept_snapshot(kind: str) -> str:
    """The snapshot that keeps what a restore or seed replaced, until the next one."""
    return f"before_{kind}"


def old_name(settings: Settings, kind: str) -> str:
    """The database that keeps what a `kind` (restore, seed) replaced until the next one."""
    return database_of(settings.db_name, kept_snapshot(kind))


@dataclass(frozen=True)
class ReplaceState:
    """The server as a replacement finds it, read before the question."""

    tables: dict[str, int] | None   # the current database's tables; None: it does not exist
    kept_old: int | None            # size of what the previous run kept, if it is there
    closed: bool                    # the database refuses connections (an interrupted swap)


def kept_drop(state: ReplaceState, kind: str) -> str | None:
    """What the plan says of the snapshot the previous run kept, if it is there: it is dropped
    once the question is answered, while the load runs, so it is gone even if the load fails."""
    if state.kept_old is None:
        return None
    return (f"snapshot '{kept_snapshot(kind)}' ({human_size(state.kept_old)}), kept by the "
            f"previous {kind}; dropped as the load starts, even if the load then fails")


def preflight_replace(kit: Kit, kind: str) -> ReplaceState:
    """Reads what a replacement would change. Outside a dry run it also reopens a database
    that an interrupted swap of ours left closed to connections; a dry run changes nothing."""
    s = kit.settings
    old = old_name(s, kind)
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


def replace_database(kit: Kit, load: Loader, kind: str,
                     safety: Callable[[], Path] | None = None
                     ) -> tuple[dict[str, int], Path | None]:
    """Loads into a scratch database, then swaps it in for the configured one. The replaced
    database is kept as the snapshot before_<kind> until the next run (it also holds
    whatever was written while the load ran); the one the previous run kept is dropped while
    the load runs. A failure before the swap leaves the current database as it was.
    `safety` (the safety dump of the current database) runs while the load does, and the swap
    waits for it. Returns the new database's tables with row estimates, and the safety dump's
    path."""
    from psycopg import Error as PsycopgError

    try:
        return _replace(kit, load, kind, safety)
    except PsycopgError as exc:
        raise Failure(f"the database server refused a step of the replacement "
                      f"({explain_connection_error(kit.settings, exc)})",
                      f"{kit.settings.db_name!r} was left as it was and is open; run again "
                      "(stop the application first if it keeps the database busy)") from None


def _replace(kit: Kit, load: Loader, kind: str,
             safety: Callable[[], Path] | None) -> tuple[dict[str, int], Path | None]:
    from concurrent.futures import ThreadPoolExecutor

    from psycopg import sql

    s = kit.settings
    db = s.db_name
    new, old = scratch_name(db), old_name(s, kind)
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
    with ThreadPoolExecutor(max_workers=2) as pool:
        # The snapshot the previous run kept, named in the plan and asked about, is dropped
        # while the load runs, not after it: a DROP DATABASE forces a checkpoint, which right
        # after a gigabyte's load has that gigabyte to write (a second and more).
        dropping = pool.submit(drop_kept, s, old)
        pending = pool.submit(safety) if safety else None
        try:
            try:
                with timing("load"):
                    load(new)
                # Row counts for the report come from the statistics the load's sessions left
                # at exit; the planner's statistics from autovacuum within a minute or so, as
                # after any pg_restore (an ANALYZE here cost half a second per gigabyte).
                with connect(s, dbname=new, autocommit=True) as conn:
                    after = table_stats(conn)
            except BaseException:
                for running in (pending, dropping):
                    if running:
                        running.exception()  # let it finish; the load's error counts
                raise
            with timing("safety-dump"):
                copy = pending.result() if pending else None  # a failed one stops here
            with timing("drop-kept"):
                dropping.result()
            with timing("swap"):
                swap_databases(s, db, new, old)
        except BaseException:
            with contextlib.suppress(Exception), maintenance_connection(s) as conn:
                drop_database(conn, new)
            raise
    with contextlib.suppress(Exception), maintenance_connection(s) as conn:
        conn.execute(sql_id("COMMENT ON DATABASE {} IS ", old)
                     + sql_literal(comment(db, f"what db-{kind} replaced")))
    return after, copy


def drop_kept(settings: Settings, name: str) -> None:
    with maintenance_connection(settings) as conn:
        drop_database(conn, name)


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


def replace_with_backup(kit: Kit, load: Loader, before: dict[str, int] | None, kind: str,
                        safety: bool) -> None:
    """db-restore's and db-seed's common end (`kind`: restore, seed): the safety dump (when
    asked) alongside the load into a scratch database, the swap, and the report."""
    after, copy = replace_database(
        kit, load, kind,
        (lambda: take_dump(kit, "custom", tag=f"pre-{kind}")) if safety else None)
    if copy:
        info(f"safety dump: {copy} (make db-restore FILE={copy} puts it back)")
    if before is not None:
        name = kept_snapshot(kind)
        info(f"what it replaced is kept as the snapshot {name!r} until the next {kind}, with "
             f"anything written to it while this one ran; undo: make db-rollback NAME={name}")
    for line in report_tables(before, after):
        detail(line)
