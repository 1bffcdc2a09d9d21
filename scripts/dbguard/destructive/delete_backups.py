"""DESTROYS DATA: deletes old dumps from the backup folder (db-prune).

Only files the kit can identify as its own are ever named: dumps that match the backup name
pattern, beyond the newest `keep`, with their `.sha256`; and unfinished dumps (hidden
`.partial` files, dumps and volume snapshots) older than an hour. Anything else in the folder, and volume snapshots, are
never touched. The plan is computed first and shown; `delete` removes exactly what it names.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

from ..backups import Backup, list_backups
from ..errors import UsageError
from ..settings import Settings

# An unfinished dump younger than this may belong to a dump still running.
PARTIAL_GRACE_SECONDS = 3600


@dataclass(frozen=True)
class PrunePlan:
    backups: list[Backup]      # every backup, newest first
    keep: int
    doomed: list[Path]         # the backups to remove
    stale: list[Path]          # unfinished dumps to remove

    @property
    def files(self) -> list[Path]:
        """Every file `delete` removes: the doomed backups, their checksums, the stale ones."""
        paired = [f for p in self.doomed for f in (p, p.with_name(p.name + ".sha256"))
                  if f.exists()]
        return paired + list(self.stale)


def check_keep(keep: int) -> int:
    if keep < 1:
        raise UsageError(f"--keep {keep} would remove every backup",
                         "Keep at least one (KEEP=1); nothing was removed")
    return keep


def plan_prune(settings: Settings, keep: int) -> PrunePlan:
    check_keep(keep)
    backups = list_backups(settings)
    folder = settings.backup_dir
    cutoff = time.time() - PARTIAL_GRACE_SECONDS
    partial = [p for where in (folder, folder / "volumes") if where.is_dir()
               for p in where.glob(".*.partial")]
    stale = sorted(p for p in partial if p.stat().st_mtime < cutoff)
    return PrunePlan(backups, keep, [b.path for b in backups[keep:]], stale)


def delete(plan: PrunePlan) -> int:
    """Removes the plan's files; returns how many."""
    removed = 0
    for f in plan.files:
        with contextlib.suppress(FileNotFoundError):  # removed by hand meanwhile: gone anyway
            f.unlink()
            removed += 1
    return removed
