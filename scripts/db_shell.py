#!/usr/bin/env python3
"""Open psql inside the database container, as the configured user on the configured database.

Uses the container's local socket, so no password is asked for or passed. Changes nothing by
itself (what you type in psql is yours).

examples:
  make db-shell
  echo 'SELECT 1' | python scripts/db_shell.py
"""
from __future__ import annotations

import subprocess
import sys

import _dbguard as g


@g.entrypoint
def main(argv: list[str] | None = None) -> int:
    args = g.parser(__doc__, dry_run=False).parse_args(argv)
    kit = g.open_kit(args)
    g.require_running(kit)
    s = kit.settings
    tty = [] if sys.stdin.isatty() else ["-T"]
    argv_ = kit.compose.args("exec", *tty, kit.project.service, "psql", "-U", s.db_user,
                             "-d", s.db_name)
    if args.verbose:
        kit.run.show(argv_)
    return subprocess.call(argv_, cwd=s.root)


if __name__ == "__main__":
    sys.exit(main())
