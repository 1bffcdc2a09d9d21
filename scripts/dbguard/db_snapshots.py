"""Snapshots of a database inside the server (db-snapshot, db-snapshots, db-rollback): whole
copies made with CREATE DATABASE ... TEMPLATE (a file copy, seconds per gigabyte), named
`<db>_dbguard_snap_<name>` and carrying a comment that says whose snapshot it is and when it was
taken. Only a database whose comment names `db` is one of `db`'s snapshots: names alone can
share their first 25 bytes with another database's. They live in the same cluster and volume as
the database: they undo a bad migration or a wrong DELETE, not the loss of the volume (db-dump
is for that). Reads only.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone

from .errors import UsageError
from .names import (COMMENT_RE, SNAPSHOT_NAME_RE, is_kit_snapshot_name, snapshot_database)
from .server import Server, Step


@dataclass(frozen=True)
class Snapshot:
    name: str                  # the short name (NAME=)
    database: str              # the database that holds it
    taken: datetime
    size: int
    comment: str = ""

    @property
    def age(self) -> float:
        return time.time() - self.taken.timestamp()

    def to_json(self) -> dict:
        return {"name": self.name, "database": self.database, "size_bytes": self.size,
                "taken": self.taken.isoformat()}


def check_name(name: str) -> str:
    if not SNAPSHOT_NAME_RE.match(name):
        raise UsageError(f"NAME={name!r} is not a snapshot name",
                         "Use up to 24 lowercase letters, digits and '_', starting with a "
                         "letter or digit (e.g. NAME=before_migration)")
    return name


def check_new_name(name: str) -> str:
    """A name db-snapshot may give: not one the kit's own commands keep and replace
    (before_restore and before_seed are dropped by the next restore or seed; replaced_<time> are
    what db-rollback and db-undo kept)."""
    check_name(name)
    if is_kit_snapshot_name(name):
        raise UsageError(f"NAME={name} is kept for the kit's own snapshots (the next restore or "
                         "seed drops before_*; replaced_* are db-rollback's and db-undo's)",
                         "Choose another NAME (e.g. NAME=before_migration); nothing was changed")
    return name


def stamp_name() -> str:
    return time.strftime("%Y%m%d_%H%M%S")


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat()  # to the microsecond: the list's order


SNAPSHOTS_SQL = """
SELECT datname AS database, pg_database_size(oid) AS size, datallowconn AS open,
       shobj_description(oid, 'pg_database') AS note
  FROM pg_database WHERE left(datname, length(:'prefix')) = :'prefix'
"""


def snapshot_questions(server: Server, db: str) -> list[Step]:
    """What list_snapshots() asks, for a prefetch."""
    return [Step.of(SNAPSHOTS_SQL, server.maintenance(db), prefix=snapshot_database(db, ""))]


def list_snapshots(server: Server, db: str) -> list[Snapshot]:
    """`db`'s snapshots, newest first: the databases named like them whose comment says they
    are `db`'s (an interrupted db-snapshot's uncommented copy is given its comment by the
    recovery that reads the journal, not taken on its name)."""
    prefix = snapshot_database(db, "")
    rows = server.rows(SNAPSHOTS_SQL, server.maintenance(db), prefix=prefix)
    found = []
    for row in rows:
        match = COMMENT_RE.match(row["note"] or "")
        if not match or match["db"] != db:
            continue
        taken = datetime.fromisoformat(match["at"])
        found.append(Snapshot(row["database"][len(prefix):], row["database"], taken,
                              int(row["size"]), row["note"]))
    return sorted(found, key=lambda s: (s.taken, s.name), reverse=True)
