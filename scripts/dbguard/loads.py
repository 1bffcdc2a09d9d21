"""Loading a checked backup into a database named by the caller (always a scratch database:
see destructive/replace_database.py): parallel pg_restore for custom archives, psql stopping at
the first error in one transaction for plain SQL; and the before/after table report.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Callable

from .backup_check import CheckedBackup
from .docker import Container
from .errors import Failure
from .kit import Kit
from .messages import timing

CLEAN_LEFTOVERS = "rm -f /tmp/dbguard-restore-*.dump"


def load_backup(kit: Kit, backup: CheckedBackup, container: Container) -> Callable[[str], None]:
    """A loader for replace_database: parallel pg_restore for custom archives (from a copy in
    the container, since -j needs a seekable file), psql stopping at the first error in one
    transaction for plain SQL."""
    s = kit.settings

    def load(dbname: str) -> None:
        if backup.facts.format == "plain":
            with open(backup.path, "rb") as handle:
                result = kit.runner(kit.compose.args(
                    "exec", "-T", kit.project.service, "psql", "-X", "-q", "-U", s.db_user,
                    "-d", dbname, "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f", "-"),
                    stdin_file=handle, stdout=subprocess.DEVNULL, check=False)
            if result.returncode != 0:
                raise load_failure(backup.path, result.stderr)
            return
        inside = f"/tmp/dbguard-restore-{os.getpid()}.dump"
        with timing("copy-in"):
            kit.runner(["docker", "cp", str(backup.path), f"{container.id}:{inside}"])
        try:
            jobs = str(max(1, min(4, os.cpu_count() or 1)))
            with timing("pg_restore"):
                result = kit.runner(kit.compose.args(
                    "exec", "-T", kit.project.service, "pg_restore", "-U",
                    s.db_user, "-d", dbname, "--exit-on-error", "-j", jobs, inside), check=False)
            if result.returncode != 0:
                raise load_failure(backup.path, result.stderr)
        finally:
            # This run's copy, and any that a killed run left (the kit's lock says no other
            # load of ours is running): one call.
            kit.runner(["docker", "exec", container.id, "sh", "-c", CLEAN_LEFTOVERS],
                       check=False)

    return load


def load_failure(path: Path, stderr: bytes | None) -> Failure:
    lines = [ln for ln in (stderr or b"").decode(errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if "ERROR" in ln or "error" in ln] or lines
    return Failure(f"loading {path.name} failed: {errors[0].strip() if errors else 'no output'}"
                   , "The current database was left as it was; fix the dump (or pick another) "
                   "and run again")


def report_tables(before: dict[str, int] | None, after: dict[str, int]) -> list[str]:
    before = before or {}
    lines = [f"tables: {len(before)} -> {len(after)}; rows (estimate): "
             f"{sum(before.values()):,} -> {sum(after.values()):,}"]
    changed = sorted(set(before) | set(after))
    diffs = [t for t in changed if before.get(t) != after.get(t)]
    for t in diffs[:15]:
        b = "-" if t not in before else f"{before[t]:,}"
        a = "-" if t not in after else f"{after[t]:,}"
        lines.append(f"  {t}: {b} -> {a}")
    if len(diffs) > 15:
        lines.append(f"  ... and {len(diffs) - 15} more tables changed")
    return lines
