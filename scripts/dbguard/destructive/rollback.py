"""DESTROYS DATA: replaces the database with one of its snapshots (db-rollback), and drops
snapshots (db-snapshots DROP= / KEEP=).

A rollback copies the snapshot into a scratch database (the snapshot itself stays, so the same
rollback can be done again), then swaps it in by two renames in one transaction, as db-restore
does; what it replaces is kept as a new snapshot, `replaced_<time>`, so a rollback is undone
by rolling back to that one. A failure before the swap drops only the scratch database.
"""
from __future__ import annotations

import contextlib

from ..db_snapshots import (Snapshot, comment, copy_database, database_of, end_sessions,
                            stamp_name)
from ..messages import info
from ..postgres import maintenance_connection, sql_id, sql_literal
from ..settings import Settings
from .replace_database import drop_database, scratch_name, swap_databases


def roll_back(settings: Settings, snapshot: Snapshot) -> str:
    """Swaps a copy of `snapshot` in for the database; returns the short name under which
    what it replaced is kept."""
    db = settings.db_name
    new = scratch_name(db)
    with maintenance_connection(settings) as conn:
        taken = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
        kept = "replaced_" + stamp_name()
        for n in range(2, 100):  # two rollbacks within a second
            if database_of(db, kept) not in taken:
                break
            kept = f"replaced_{stamp_name()}_{n}"
        drop_database(conn, new)  # a killed run's
        end_sessions(conn, snapshot.database)  # someone looking at the snapshot
        info(f"copying snapshot {snapshot.name!r}")
        copy_database(conn, snapshot.database, new)
    try:
        swap_databases(settings, db, new, database_of(db, kept))
    except BaseException:
        with contextlib.suppress(Exception), maintenance_connection(settings) as conn:
            drop_database(conn, new)
        raise
    with maintenance_connection(settings) as conn:
        conn.execute(sql_id("COMMENT ON DATABASE {} IS ", database_of(db, kept))
                     + sql_literal(comment(db, f"what the rollback to {snapshot.name} replaced")))
    return kept


def drop_snapshots(settings: Settings, snapshots: list[Snapshot]) -> None:
    with maintenance_connection(settings) as conn:
        for snapshot in snapshots:
            drop_database(conn, snapshot.database)
            info(f"dropped snapshot {snapshot.name!r}")
