#!/usr/bin/env python3
"""Open psql inside the database container, as the configured user on the configured database.

Uses the container's local socket (`docker exec`), so no password is asked for or passed and
no port needs to be published. Changes nothing by itself (what you type in psql is yours).

examples:
  make db-shell
  make db-shell DB=postgres
  echo 'SELECT 1' | python scripts/db_shell.py
"""
from __future__ import annotations

import subprocess
import sys

from dbguard.cli import entrypoint, parser
from dbguard.kit import open_kit


@entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__, dry_run=False, db=True).parse_args(argv)
    kit = open_kit(args)
    server = kit.server()
    options, env = server.exec_options(reads=True)
    tty = ["-it"] if sys.stdin.isatty() else ["-i"]
    command = ["docker", "exec", *tty, *options, server.container, "psql", "-U", server.user,
               "-d", kit.db]
    if args.verbose:
        kit.runner.show(command)
    return subprocess.call(command, cwd=kit.settings.project_dir, env=env)


if __name__ == "__main__":
    sys.exit(main())
