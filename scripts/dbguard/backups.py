"""The backup folder: which files are the kit's dumps (by name; partial files never match), their
age, size, format and checksum state, a summary for db-info, and a fresh name for a new dump.
Reads only, except that it creates the folder (owner-only) when a name is asked for.
"""
from __future__ import annotations

import datetime as dt
import re
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from .errors import Failure
from .files import private_dir, read_checksum, sha256_file
from .names import (BACKUP_RE, FORMAT_EXT, SAFETY_TAGS, SNAPSHOT_FILE_RE, UPGRADE_DUMP_RE,
                    VOLUME_SNAPSHOTS, UPGRADE_DUMPS, file_stem)
from .settings import Settings

@dataclass(frozen=True)
class Backup:
    path: Path
    db: str
    taken: dt.datetime
    tag: str | None
    format: str
    size: int

    @classmethod
    def from_path(cls, path: Path) -> Backup | None:
        match = BACKUP_RE.match(path.name)
        if not match or not path.is_file():
            return None
        taken = dt.datetime.strptime(match["stamp"], "%Y%m%d_%H%M%S").astimezone()
        return cls(path, urllib.parse.unquote(match["db"]), taken, match["tag"],
                   "custom" if match["ext"] == "dump" else "plain", path.stat().st_size)

    def checksum_ok(self) -> bool | None:
        """True: matches its .sha256; False: differs or unreadable; None: no .sha256."""
        expected = read_checksum(self.path)
        if expected is None:
            return None
        return expected != "" and sha256_file(self.path) == expected

    @property
    def safety(self) -> bool:
        """A safety dump, taken by db-restore or db-seed before they replaced a database."""
        return self.tag in SAFETY_TAGS

    @property
    def age(self) -> float:
        return (dt.datetime.now().astimezone() - self.taken).total_seconds()


def list_backups(settings: Settings) -> list[Backup]:
    """Kit backups in the backup folder, newest first. Partial files never match."""
    if not settings.backup_dir.is_dir():
        return []
    found = [b for p in settings.backup_dir.iterdir() if (b := Backup.from_path(p))]
    return sorted(found, key=lambda b: (b.taken, b.path.name), reverse=True)


def backup_summary(settings: Settings, db: str) -> dict:
    """The newest regular dump of `db` (safety dumps are not what the user keeps)."""
    backups = [b for b in list_backups(settings) if b.db == db and not b.safety]
    newest = backups[0] if backups else None
    verified = next((b for b in backups if b.checksum_ok()), None)
    return {"dir": str(settings.backup_dir), "count": len(backups), "database": db,
            "newest_verified": None if verified is None else {
                "file": str(verified.path), "taken": verified.taken.isoformat(),
                "age_seconds": int(verified.age)},
            "max_age_days": settings.backup_max_age_days,
            "newest": None if newest is None else {
                "file": str(newest.path), "taken": newest.taken.isoformat(),
                "age_seconds": int(newest.age), "size_bytes": newest.size,
                "format": newest.format, "checksum_ok": newest.checksum_ok()}}


def backup_path(settings: Settings, fmt: str, tag: str | None = None,
                dbname: str | None = None) -> Path:
    folder = private_dir(settings.backup_dir)
    suffix = f"_{tag}" if tag else ""
    for _ in range(5):
        stamp = dt.datetime.now().strftime("%Y%m%d_%H%M%S")
        name = f"{file_stem(dbname or settings.db_name)}_{stamp}{suffix}.{FORMAT_EXT[fmt]}"
        path = folder / name
        if not path.exists() and not path.with_name(f".{path.name}.partial").exists():
            return path
        time.sleep(1)
    raise Failure(f"cannot pick a free backup name in {folder}", "Run the command again")


def is_kit_partial(path: Path, pattern: re.Pattern) -> bool:
    """A hidden `.partial` file the kit itself writes: a dump (or snapshot, by `pattern`) on
    its way to its final name, or the checksum beside one. Nothing else in a folder that may
    be shared (a DBGUARD_BACKUP_DIR under /tmp, say) is ever taken for the kit's."""
    name = path.name
    if not (name.startswith(".") and name.endswith(".partial")):
        return False
    inner = name[1:-len(".partial")]
    inner = inner[:-len(".sha256")] if inner.endswith(".sha256") else inner
    return bool(pattern.match(inner))


def unfinished_files(settings: Settings) -> tuple[list[Path], list[Path]]:
    """The kit's unfinished dumps in the backup folder and db-upgrade's cluster dumps in
    upgrades/, and unfinished snapshots in volumes/."""
    folder = settings.backup_dir
    volumes, upgrades = folder / VOLUME_SNAPSHOTS, folder / UPGRADE_DUMPS
    dumps = sorted(p for p in folder.glob(".*.partial") if is_kit_partial(p, BACKUP_RE)) \
        if folder.is_dir() else []
    dumps += sorted(p for p in upgrades.glob(".*.partial")
                    if is_kit_partial(p, UPGRADE_DUMP_RE)) if upgrades.is_dir() else []
    snaps = sorted(p for p in volumes.glob(".*.partial")
                   if is_kit_partial(p, SNAPSHOT_FILE_RE)) if volumes.is_dir() else []
    return dumps, snaps
