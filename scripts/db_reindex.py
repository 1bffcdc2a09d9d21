#!/usr/bin/env python3
"""Check and rebuild the indexes a collation change left behind, then record the new version.

When the image's glibc or ICU changes (a new Debian under the same postgres tag: bookworm to
trixie took glibc from 2.36 to 2.41), text sorts differently and indexes built under the old
order can be silently wrong; PostgreSQL warns "collation version mismatch" and `make db-info`
lists the indexes that depend on the changed collation (COLLATION_DRIFT). This command takes a
snapshot of the database first (reindex_<time>), checks each dependent B-tree index with amcheck
where the server has it (installing it for the moment if the database lacks it), rebuilds every
index that fails its check or cannot be checked, and only then records the new collation
version (ALTER DATABASE ... REFRESH COLLATION VERSION), never the other way round. Databases
made with C or C.UTF-8 record no version: nothing to do. `make db-undo` puts the snapshot back.

examples:
  make db-reindex
  make db-reindex DB=other YES=1
"""
from __future__ import annotations

import sys

from dbguard.actions import perform, reindex
from dbguard.cli import entrypoint, parser
from dbguard.errors import EXIT_OK
from dbguard.kit import open_kit


@entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__, yes=True, db=True).parse_args(argv)
    perform(open_kit(args, command="db-reindex"), reindex, args)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
