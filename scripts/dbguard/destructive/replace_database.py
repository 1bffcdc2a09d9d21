"""DESTROYS DATA: replaces a database with a freshly loaded one (db-restore, db-seed).

The new content is loaded into the scratch database while the live one stays as it is (and,
when asked, is dumped alongside: the safety dump). Only when the load (and the safety dump)
succeeded is the scratch database swapped in, in one transaction that also keeps the replaced
database as the snapshot before_restore (or before_seed) and moves the previous kept one out of
the way, to be dropped right after: the previous copy is kept until the new load has succeeded.
A failure before the swap leaves the live database as it was; the scratch database is dropped
by the recovery that settles the failed run.
"""
from __future__ import annotations

from pathlib import Path
from collections.abc import Callable

from ..catalog import table_stats
from ..errors import Failure
from ..journal import Operation
from ..kit import Kit
from ..loads import Loader
from ..messages import timing
from ..server import Server
from . import databases


def load_and_swap(kit: Kit, server: Server, load: Loader, op: Operation, db: str, keep: str,
                  comment: str, safety: Callable[[], Path] | None = None
                  ) -> tuple[dict[str, int], Path | None]:
    """Loads into the scratch database, then swaps it in for `db`, keeping what `db` held as
    `keep`. `safety` (a dump of the live database) runs while the load does, and the swap waits
    for it. Returns the new database's tables with row estimates, and the safety dump."""
    from concurrent.futures import ThreadPoolExecutor

    op.step("load")
    scratch = databases.create_scratch(server, db)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(safety) if safety else None
        try:
            with timing("load"):
                load(scratch)
            # Row counts for the report come from the statistics the load's sessions left
            # at exit; the planner's statistics from autovacuum within a minute or so, as
            # after any pg_restore.
            after = table_stats(server, scratch)
            loaded = databases.oid_of(server, scratch, db)
        except BaseException:
            if pending:
                pending.exception()  # let it finish; the load's error counts
            raise
        with timing("safety-dump"):
            copy = pending.result() if pending else None  # a failed one stops here
    op.step("swap")
    with timing("swap"):
        databases.swap_in(server, db, scratch, keep, comment)
    op.step("verify")
    if databases.oid_of(server, db, db) != loaded:
        raise Failure(f"after the swap, {db!r} is not the database that was loaded",
                      f"What it replaced is kept as {keep!r}; `make db-undo` puts it back")
    return after, copy
