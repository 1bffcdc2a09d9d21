"""Snapshots of the database inside the server (db-snapshot, db-snapshots, db-rollback): whole
copies made with CREATE DATABASE ... TEMPLATE (a file copy, seconds per gigabyte), named
`<db>_dbguard_snap_<name>` and carrying a comment that says whose snapshot it is and when it was
taken. They live in the same cluster and volume as the database: they undo a bad migration or a
wrong DELETE, not the loss of the volume (db-dump is for that).
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from .errors import Refusal, UsageError
from .messages import info
from .postgres import maintenance_connection, sql_id, sql_literal
from .settings import Settings

INFIX = "_dbguard_snap_"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,23}$")
COMMENT_RE = re.compile(r"^dbguard snapshot of (?P<db>.*) taken (?P<at>\S+)")


@dataclass(frozen=True)
class Snapshot:
    name: str                  # the short name (NAME=)
    database: str              # the database that holds it
    taken: datetime | None
    size: int

    @property
    def age(self) -> float:
        return time.time() - self.taken.timestamp() if self.taken else 0.0

    def to_json(self) -> dict:
        return {"name": self.name, "database": self.database, "size_bytes": self.size,
                "taken": self.taken.isoformat() if self.taken else None}


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise UsageError(f"NAME={name!r} is not a snapshot name",
                         "Use up to 24 lowercase letters, digits and '_', starting with a "
                         "letter or digit (e.g. NAME=before_migration)")
    return name


def check_new_name(name: str) -> str:
    """A name db-snapshot may give: not one the kit's own commands keep and replace
    (before_restore and before_seed are dropped by the next restore or seed; replaced_<time> are
    db-rollback's)."""
    check_name(name)
    if name in ("before_restore", "before_seed") or name.startswith("replaced_"):
        raise UsageError(f"NAME={name} is kept for the kit's own snapshots (the next restore or "
                         "seed drops before_*; replaced_* are db-rollback's)",
                         "Choose another NAME (e.g. NAME=before_migration); nothing was changed")
    return name


def stamp_name() -> str:
    return time.strftime("%Y%m%d_%H%M%S")


def database_of(db: str, name: str) -> str:
    """The snapshot's database name; PostgreSQL cuts names at 63 bytes, so the base is cut."""
    return db.encode()[:25].decode(errors="ignore") + INFIX + name


def comment(db: str, note: str = "") -> str:
    at = datetime.now(timezone.utc).isoformat()  # to the microsecond: the list's order
    return f"dbguard snapshot of {db} taken {at}" + (f" ({note})" if note else "")


def list_snapshots(conn, db: str) -> list[Snapshot]:
    """This database's snapshots, newest first."""
    prefix = database_of(db, "")
    rows = conn.execute(
        "SELECT datname, pg_database_size(oid), shobj_description(oid, 'pg_database') "
        "FROM pg_database WHERE starts_with(datname, %s)", [prefix]).fetchall()
    found = []
    for datname, size, note in rows:
        match = COMMENT_RE.match(note or "")
        if match and match["db"] != db:
            continue  # another database's whose name begins alike
        taken = datetime.fromisoformat(match["at"]) if match else None
        found.append(Snapshot(datname[len(prefix):], datname, taken, int(size)))
    return sorted(found, key=lambda s: (s.taken or datetime.min.replace(tzinfo=timezone.utc),
                                        s.name), reverse=True)


def copy_database(conn, source: str, target: str) -> None:
    """CREATE DATABASE target TEMPLATE source, as a file copy where the server can choose (15+:
    the WAL-logged default writes the whole database to the WAL as well)."""
    from psycopg import sql

    statement = sql_id("CREATE DATABASE {} TEMPLATE {}", target, source)
    if conn.info.server_version >= 150000:
        statement += sql.SQL(" STRATEGY FILE_COPY")
    conn.execute(statement)


def end_sessions(conn, db: str, tries: int = 100) -> None:
    """Ends every other session on `db` (a copy of a database needs it to itself)."""
    for _ in range(tries):
        left = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid()", [db]).fetchone()[0]
        if not left:
            return
        time.sleep(0.1)


def take_snapshot(settings: Settings, name: str) -> Snapshot:
    """Copies the database into a snapshot. Other connections to it are ended and new ones
    refused for the moment the copy takes; it is open again afterwards (and an interrupted
    run's closed database is reopened by db-up, which db-info names)."""
    db = settings.db_name
    target = database_of(db, name)
    with maintenance_connection(settings) as conn:
        names = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
        if db not in names:
            raise Refusal(f"there is no database {db!r} to take a snapshot of",
                          "Start it with `make db-up` (and migrate) first; nothing was changed")
        if target in names:
            raise Refusal(f"a snapshot named {name!r} exists already",
                          "Choose another NAME, or drop that one first (make db-snapshots "
                          "DROP=name); nothing was changed")
        info(f"closing {db!r} to other connections while it is copied")
        conn.execute(sql_id("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false", db))
        try:
            end_sessions(conn, db)
            copy_database(conn, db, target)
        finally:
            conn.execute(sql_id("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true", db))
        conn.execute(sql_id("COMMENT ON DATABASE {} IS ", target) + sql_literal(comment(db)))
        return next(s for s in list_snapshots(conn, db) if s.name == name)
