"""DESTROYS DATA: deletes old dumps from the backup folder (db-prune).

Only files the kit can identify as its own are ever named: dumps that match the backup name
pattern, beyond the newest `keep`, with their `.sha256`; and unfinished dumps and snapshots
(hidden `.partial` files, which only killed runs leave, since all of this runs under the kit's
lock). Anything else in the folder, and finished volume snapshots, are never touched. The
plan is computed first and shown; `delete` removes exactly what it names.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from ..backups import Backup, list_backups, unfinished_files
from ..errors import UsageError
from ..messages import info
from ..settings import Settings

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
    stale = kit_partials(settings)
    return PrunePlan(backups, keep, [b.path for b in backups[keep:]], stale)


def delete(plan: PrunePlan) -> int:
    """Removes the plan's files; returns how many."""
    removed = 0
    for f in plan.files:
        with contextlib.suppress(FileNotFoundError):  # removed by hand meanwhile: gone anyway
            f.unlink()
            removed += 1
    return removed


def kit_partials(settings: Settings) -> list[Path]:
    """The kit's own `.partial` files (backups.unfinished_files). Called under the kit's lock,
    when no other kit command runs: each is what a killed run left behind."""
    dumps, snapshots = unfinished_files(settings)
    return dumps + snapshots


def remove_unfinished(settings: Settings, dry_run: bool = False) -> int:
    """Removes what killed runs left (see kit_partials) and says so; returns how many.
    Never a backup: a file gets its final name only once it is whole."""
    if dry_run:
        return 0
    removed = 0
    for path in kit_partials(settings):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    if removed:
        info(f"removed {removed} unfinished file(s) that an interrupted run left in "
             f"{settings.backup_dir}")
    return removed
