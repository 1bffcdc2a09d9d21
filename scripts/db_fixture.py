#!/usr/bin/env python3
"""Export the database as the development fixture: plain SQL meant for git.

Writes DBGUARD_FIXTURE (default fixtures/dev_content.sql) with pg_dump's plain format, without
owners or privileges (so it loads for any user), under a stable name, atomically (a failed
export leaves the previous fixture in place). A fixture it replaces with different content is
kept under backups/fixtures/ first. Where pg_dump has --restrict-key, a fixed key is
used so the file does not change when the data does not. Changes nothing in the database.

examples:
  make db-fixture
  make db-seed        load it into a new, empty database
"""
from __future__ import annotations

import sys

from dbguard.actions.export import fixture
from dbguard.cli import entrypoint, parser
from dbguard.errors import EXIT_OK
from dbguard.kit import open_kit


@entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__, db=True).parse_args(argv)
    fixture(open_kit(args, command="db-fixture"))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
