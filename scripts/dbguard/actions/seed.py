"""db-seed: load the development fixture into a database, so a fresh volume gets real content.

plan       the fixture (DBGUARD_FIXTURE), checked like a backup; the database now
preflight  the fixture exists; a database with tables is only replaced with FORCE (and is
           open)
run        as db-restore: load into the scratch database, swap it in, check the tables
keeps      a replaced database, as the snapshot before_seed (db-undo puts it back); the
           previous before_seed is dropped once the new load has succeeded
"""
from __future__ import annotations

from ..backup_check import check_backup
from ..errors import Failure
from ..journal import Operation
from ..kit import Kit
from ..loads import Loader
from . import Plan
from . import restore

COMMAND = "db-seed"
session = restore.session


def plan(kit: Kit, args, load: Loader) -> Plan:
    fixture = kit.settings.fixture
    if not fixture.is_file():
        raise Failure(f"no fixture at {fixture}",
                      "Export one from a database with content: make db-fixture")
    backup = check_backup(kit, load.cid, fixture, kit.image.pg_major)
    load.use(backup)  # a custom archive: copied into the container meanwhile
    tables = restore.state_of(kit, load, "seed")["tables"]
    refusals = []
    if tables and not args.force:
        refusals.append(f"database {kit.db!r} already has {len(tables)} tables, which seeding "
                        "would replace; FORCE=1 replaces them (what it replaces is kept as "
                        "the snapshot before_seed)")
    return restore.replacement_plan(kit, args, load, backup, "seed", refusals)


def run(kit: Kit, plan: Plan, op: Operation) -> None:
    restore.run(kit, plan, op)
