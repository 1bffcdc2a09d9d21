"""db-prune: remove old dumps from the backup folder, keeping the newest KEEP of each database.

plan       per database: its regular dumps newest first; the newest KEEP that still match
           their checksum are kept, with every file newer than the oldest of them (a newer
           file that fails its check is kept for you to look at, and not counted); older
           regular dumps go, and so do safety dumps older than every kept dump of their
           database; plus unfinished files killed runs left
preflight  KEEP is at least 1
run        deletes exactly the files of the plan, with their .sha256
keeps      nothing: a dump is itself a copy, and deleting old ones is what was asked; db-undo
           refuses to reverse this, saying so
"""
from __future__ import annotations

from pathlib import Path

from ..backups import Backup, list_backups
from ..destructive.delete_backups import delete, kit_partials
from ..journal import Operation
from ..kit import Folder
from ..messages import success
from . import Plan

COMMAND = "db-prune"


def preflight(keep: int) -> list[str]:
    if keep < 1:
        return [f"KEEP={keep} would remove every backup; keep at least one (KEEP=1)"]
    return []


def doomed(backups: list[Backup], keep: int) -> tuple[list[Backup], dict[str, int]]:
    """What goes, and how many verified dumps each database keeps."""
    gone, kept = [], {}
    for db in sorted({b.db for b in backups}):
        mine = [b for b in backups if b.db == db]  # newest first
        regular = [b for b in mine if not b.safety]
        verified, cut = 0, None
        for b in regular:
            if verified >= keep:
                break
            if b.checksum_ok():
                verified += 1
                cut = b.taken
        kept[db] = verified
        if verified < keep or cut is None:
            continue  # fewer good dumps than KEEP: nothing of this database goes
        gone += [b for b in mine if b.taken < cut]
    return gone, kept


def plan(folder: Folder, args, ctx=None) -> Plan:
    settings = folder.settings
    keep = settings.backup_keep if args.keep is None else args.keep
    backups = list_backups(settings) if keep >= 1 else []
    gone, kept = doomed(backups, keep)
    stale = kit_partials(settings)
    files = [f for b in gone for f in (b.path, b.path.with_name(b.path.name + ".sha256"))
             if f.exists()] + stale
    lines = [("remove", b.path.name + (" (safety dump)" if b.safety else "")) for b in gone]
    lines += [("remove", f"{p.name} (unfinished "
                         f"{'snapshot' if p.parent.name == 'volumes' else 'dump'})")
              for p in stale]
    lines += [("keep", f"the newest {n} verified dump(s) of {db!r}") for db, n in kept.items()]
    return Plan(
        command=COMMAND, doing=f"prune {settings.backup_dir}",
        target={"kind": "files", "name": str(settings.backup_dir)},
        copy={"kind": "none", "why": "deleted dumps are not kept: they were copies"},
        lines=tuple(lines),
        question=f"Delete these {len(gone) + len(stale)} file(s)?",
        facts=tuple(str(f) for f in files), refusals=tuple(preflight(keep)),
        nothing="" if files or keep < 1 else
        f"nothing to remove: {len(backups)} backup(s), keeping the newest {keep} of each "
        "database",
        record={"files": [str(f) for f in files], "keep": keep},
        data=files)


def run(folder: Folder, plan: Plan, op: Operation) -> int:
    files: list[Path] = plan.data
    op.step("delete")
    removed = delete(files)
    success(f"removed {removed} file(s)")
    return removed
