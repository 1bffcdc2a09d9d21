"""Worktree clones of a database inside the shared server (db-clone, db-clones): what they are
called, how a clone says whose it is (its comment: the database it copies, the worktree that
owns it, its branch and when it was made), the idle copy they are made from (the snapshot
`clone_source`, taken once and reused until REFRESH=1), and the row counts that verify a clone.
Reads only.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime

from .names import snapshot_database
from .server import Server

SOURCE_NAME = "clone_source"  # the snapshot clones are made from
COMMENT = "dbguard clone of {db} for {path} (branch {branch}), made {at}"
COMMENT_RE = re.compile(r"^dbguard clone of (?P<db>\S+) for (?P<path>.+) \(branch "
                        r"(?P<branch>.*)\), made (?P<at>\S+)$", re.S)
CLONE_NAME_RE = re.compile(r"^[a-z0-9_]{1,63}$")

CLONES_SQL = """
SELECT datname AS name, pg_database_size(oid) AS size,
       shobj_description(oid, 'pg_database') AS note
  FROM pg_database WHERE shobj_description(oid, 'pg_database') LIKE 'dbguard clone of %'
 ORDER BY 1
"""

# Every table's exact row count: what a clone must have of its source.
COUNTS_SQL = r"""-- counts
SELECT coalesce(json_object_agg(t, n), '{}'::json) FROM (
  SELECT format('%I.%I', schemaname, relname) AS t,
         (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I.%I',
                                                     schemaname, relname), false, true, '')))[1]
           ::text::bigint AS n
    FROM pg_stat_user_tables) q;
"""


@dataclass(frozen=True)
class Clone:
    name: str
    of: str
    owner: str          # the worktree's path
    branch: str
    made: datetime
    size: int

    @property
    def age(self) -> float:
        return time.time() - self.made.timestamp()


def clone_name(db: str, branch: str) -> str:
    """`<db>_<branch>`, lowercase, [a-z0-9_] only, at most 63 bytes (the server's limit)."""
    tail = re.sub(r"[^a-z0-9]+", "_", branch.lower()).strip("_") or "worktree"
    return f"{db[:30]}_{tail}"[:63].rstrip("_")


def source_database(db: str) -> str:
    return snapshot_database(db, SOURCE_NAME)


def list_clones(server: Server, maintenance: str) -> list[Clone]:
    found = []
    for row in server.rows(CLONES_SQL, maintenance):
        match = COMMENT_RE.match(row["note"] or "")
        if not match:
            continue
        try:
            made = datetime.fromisoformat(match["at"])
        except ValueError:
            continue
        found.append(Clone(row["name"], match["db"], match["path"], match["branch"], made,
                           int(row["size"])))
    return found


def counts(server: Server, db: str) -> dict[str, int]:
    """Every user table's exact row count."""
    import json

    out = server.read(COUNTS_SQL, db)
    return json.loads(out.splitlines()[-1]) if out else {}
