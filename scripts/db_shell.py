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

from dbguard.cli import entrypoint, parser
from dbguard.kit import open_kit
from dbguard.service import require_running


@entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__, dry_run=False).parse_args(argv)
    kit = open_kit(args)
    require_running(kit)
    s = kit.settings
    tty = [] if sys.stdin.isatty() else ["-T"]
    command = kit.compose.args("exec", *tty, kit.project.service, "psql", "-U", s.db_user,
                             "-d", s.db_name)
    if args.verbose:
        kit.runner.show(command)
    return subprocess.call(command, cwd=s.project_dir)


if __name__ == "__main__":
    sys.exit(main())
