"""dbguard: PostgreSQL under Docker Compose without losing the data.

The shared code of the scripts in the folder above (one script per make target). Data flows one
way through these modules:

  settings -> compose / docker -> volumes (discovery) -> diagnosis -> actions -> output

- errors, messages, cli       exit codes and failures; what the kit says; argv and entrypoint
- settings, names             .env and the environment; Compose project names (pure)
- runner                      every subprocess (argument lists only; -v and --dry-run)
- compose, compose_v1         the compose project as Compose resolves it (v2 JSON, v1 YAML)
- docker                      images, containers, and the throwaway helper container
- volumes                     discovery: candidate volumes, their users and contents
- diagnosis                   the verdict: problems with codes and fixes (pure)
- kit                         the opened kit (frozen) and the one-command-at-a-time lock
- postgres                    connections from the host and what they report
- service                     start, wait for health, stop containers
- files, streams              partial-then-rename files, checksums, streamed command output
- backups, dump_header        the backup folder; what a dump file says of itself
- archive_walk                a custom archive's structure, checked as a dump streams in
- dumps, backup_check, loads  taking a dump; checking one before trusting it; loading one
- manifests, snapshots        comparing volumes file by file; tar snapshots of a volume
- migration                   db-migrate-volume's decisions before anything changes
- install                     make kit-install: the kit into another repository
- db_snapshots                snapshots of the database inside the server (db-snapshot)
- upgrade                     db-upgrade's old server, cluster dump and facts compared
- destructive/                the only code that destroys or replaces data (see its __init__)
"""

import os as _os
import signal as _signal
import sys as _sys


def _interrupted_at_start(signum, frame):  # pragma: no cover - replaced once main() runs
    _sys.stderr.write("ERROR: interrupted while starting. Nothing was changed\n")
    _os._exit(130)


# Ctrl-C while a script is still importing is one line, not a traceback; cli.entrypoint hands
# SIGINT back to Python (KeyboardInterrupt) as soon as main() runs.
if _sys.argv and _os.path.basename(_sys.argv[0]).startswith("db_"):
    _signal.signal(_signal.SIGINT, _interrupted_at_start)
