#!/usr/bin/env python3
"""Stop the database service. Volumes are never removed: the data stays where it is.

Runs `compose stop` for the database service only (other services keep running), under the
kit's lock; the container stays, and `make db-up` starts it again.

examples:
  make db-down
"""
from __future__ import annotations

import sys

from dbguard.actions.up import down
from dbguard.cli import entrypoint, parser
from dbguard.errors import EXIT_OK
from dbguard.kit import open_kit


@entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__).parse_args(argv)
    down(open_kit(args, command="db-down"))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
