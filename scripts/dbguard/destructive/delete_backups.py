"""DESTROYS DATA: deletes dump files from the backup folder (db-prune), and the unfinished files
killed runs left there.

Only files the kit can identify as its own are ever named: dumps matching the backup name
pattern, with their `.sha256`; and unfinished dumps and snapshots (hidden `.partial` files,
which only killed runs leave, since everything that writes them runs under the kit's lock).
Anything else in the folder, and finished volume snapshots, are never touched.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from ..backups import unfinished_files
from ..messages import info
from ..settings import Settings


def delete(files: list[Path]) -> int:
    """Removes exactly these files; returns how many."""
    removed = 0
    for f in files:
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
    removed = delete(kit_partials(settings))
    if removed:
        info(f"removed {removed} unfinished file(s) that an interrupted run left in "
             f"{settings.backup_dir}")
    return removed
