#!/usr/bin/env python3
"""Stop the database service. Volumes are never removed: the data stays where it is.

Runs `compose stop` for the database service only (other services keep running); the
container stays, and `make db-up` starts it again.

examples:
  make db-down
"""
from __future__ import annotations

import sys

import _dbguard as g


@g.entrypoint
def main(argv: list[str] | None = None) -> int:
    args = g.parser(__doc__).parse_args(argv)
    kit = g.open_kit(args)
    kit.compose("stop", kit.project.service, mutates=True)
    if not kit.run.dry_run:
        g.success(f"{kit.project.service} stopped; volume {kit.project.volume} kept")
    return g.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
