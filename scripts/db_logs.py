#!/usr/bin/env python3
"""Follow the database service's log (the last 100 lines, then new ones; Ctrl-C stops).

Reads only.

examples:
  make db-logs
"""
from __future__ import annotations

import subprocess
import sys

from dbguard.cli import entrypoint, parser
from dbguard.errors import EXIT_OK
from dbguard.kit import open_kit


@entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__, dry_run=False).parse_args(argv)
    kit = open_kit(args)
    command = kit.compose.args("logs", "--follow", "--tail", "100", kit.project.service)
    if args.verbose:
        kit.runner.show(command)
    proc = subprocess.Popen(command, cwd=kit.settings.project_dir)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        if proc.poll() is None:  # Ctrl-C outside a terminal reaches only us: end the follower
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    sys.exit(main())
