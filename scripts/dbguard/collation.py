"""Collation drift: a database records the version of the collation library (glibc, ICU) it
was created or last refreshed under (pg_database.datcollversion, pg_collation.collversion,
PostgreSQL 15 and later); when the image's library changes (the postgres images moved their
default tags from Debian bookworm to trixie: glibc 2.36 to 2.41), text sorts differently and
an index built under the old order can be silently wrong. This reads, for each database, the
recorded version beside the one the server provides now, and the indexes that depend on a
collation that changed. Clusters initialised with C or C.UTF-8 (libc) record no version at all:
their order never changes. Reads only.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .server import VERSION_SQL, Server, Step

# Every database that takes connections, and whether its default collation's recorded version
# differs from the library's (one question answers both: which drifted, and which exist).
DATABASES_SQL = """
SELECT name, provider, recorded, actual,
       recorded IS NOT NULL AND recorded IS DISTINCT FROM actual AS changed
  FROM (SELECT datname AS name, datlocprovider::text AS provider, datcollversion AS recorded,
               pg_database_collation_actual_version(oid) AS actual
          FROM pg_database WHERE datallowconn) d
 ORDER BY 1
"""

# In one database: the collations its indexes use whose recorded version differs.
COLLATIONS_SQL = """
SELECT c.oid::bigint AS oid, c.collname AS name, c.collversion AS recorded,
       pg_collation_actual_version(c.oid) AS actual
  FROM pg_collation c
 WHERE c.oid IN (SELECT unnest(indcollation::oid[]) FROM pg_index)
   AND c.collversion IS NOT NULL
   AND c.collversion IS DISTINCT FROM pg_collation_actual_version(c.oid)
 ORDER BY 2
"""

# In one database: the indexes (outside the system catalogs) with a column or expression in
# the database's default collation (when it changed) or in one of the changed collations.
INDEXES_SQL = """
SELECT format('%I.%I', n.nspname, ic.relname) AS name, i.indexrelid::bigint AS oid,
       format('%I.%I', tn.nspname, t.relname) AS "table", am.amname AS method,
       ic.relfilenode::bigint AS relfilenode
  FROM pg_index i
  JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_namespace n ON n.oid = ic.relnamespace
  JOIN pg_class t ON t.oid = i.indrelid
  JOIN pg_namespace tn ON tn.oid = t.relnamespace
  JOIN pg_am am ON am.oid = ic.relam
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
   AND EXISTS (SELECT 1 FROM unnest(i.indcollation::oid[]) AS u(coll)
                WHERE (u.coll = 100 AND :'default_changed'::boolean)
                   OR u.coll = ANY (:'changed'::oid[]))
 ORDER BY 1
"""

AMCHECK_SQL = """
SELECT (SELECT count(*) FROM pg_available_extensions WHERE name = 'amcheck') > 0 AS available,
       (SELECT count(*) FROM pg_extension WHERE extname = 'amcheck') > 0 AS installed
"""


@dataclass
class Drift:
    """One database whose collation changed under it."""

    db: str
    default: tuple[str, str] | None          # recorded and actual version, when it changed
    collations: list[dict] = field(default_factory=list)   # the other changed collations
    indexes: list[dict] = field(default_factory=list)      # the indexes that depend on them

    def to_json(self) -> dict:
        return {"database": self.db,
                "default_collation": None if self.default is None else {
                    "recorded": self.default[0], "actual": self.default[1]},
                "collations": self.collations, "indexes": self.indexes}

    def describe(self) -> str:
        parts = []
        if self.default:
            parts.append(f"its default collation was recorded under version {self.default[0]} "
                         f"and the server provides {self.default[1]}")
        parts += [f"collation {c['name']} recorded {c['recorded']}, now {c['actual']}"
                  for c in self.collations]
        return "; ".join(parts)


def supported(server: Server, db: str) -> bool:
    """PostgreSQL 15 and later record a database's collation version."""
    return server.version(db)[1] >= 150000


def drift_in(server: Server, db: str, default: tuple[str, str] | None) -> Drift | None:
    """The drift of one database (its default collation's, given, and its own collations'),
    with the indexes that depend on what changed; None when nothing changed."""
    collations = server.rows(COLLATIONS_SQL, db)
    if default is None and not collations:
        return None
    changed = "{" + ",".join(str(c["oid"]) for c in collations) + "}"
    indexes = server.rows(INDEXES_SQL, db, default_changed="true" if default else "false",
                          changed=changed)
    return Drift(db, default, collations, indexes)


def drift_questions(server: Server, db: str) -> list[Step]:
    """What drifted() asks in the usual case, for a prefetch."""
    maintenance = server.maintenance(db)
    return [Step.of(VERSION_SQL, maintenance), Step.of(DATABASES_SQL, maintenance, since=150000),
            Step.of(COLLATIONS_SQL, db, since=150000)]


def drifted(server: Server, db: str, every: bool = True) -> list[Drift]:
    """The databases whose collation changed: every database's default collation (one query,
    from the shared catalog), and `db`'s own collations as well; each with its dependent
    indexes. Empty before PostgreSQL 15. The usual three questions go through one psql."""
    maintenance = server.maintenance(db)
    with server.ahead(drift_questions(server, db)):
        if not supported(server, db):
            return []
        found = {}
        rows = server.rows(DATABASES_SQL, maintenance)
        for row in rows:
            if row["changed"] and (every or row["name"] == db):
                found[row["name"]] = drift_in(server, row["name"],
                                              (row["recorded"], row["actual"]))
        if db not in found and any(row["name"] == db for row in rows):
            own = drift_in(server, db, None)
            if own:
                found[db] = own
    return [d for d in found.values() if d]


def amcheck(server: Server, db: str) -> tuple[bool, bool]:
    """Whether the server has amcheck (contrib), and whether `db` has it installed."""
    row = server.rows(AMCHECK_SQL, db)[0]
    return bool(row["available"]), bool(row["installed"])
