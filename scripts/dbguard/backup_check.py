"""Checking a backup before it is trusted: the file exists, is a pg_dump dump, matches its
checksum, was made by a pg_dump the server can read, and is whole (the plain trailer, or
pg_restore reading the custom archive through). Reads only; a failed check is a Refusal.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable

from .backups import list_backups
from .dump_header import PLAIN_TRAILER, DumpFacts, read_dump_header
from .errors import Refusal, UsageError
from .files import read_checksum, sha256_file
from .kit import Kit
from .messages import warning


def check_archive_reads(kit: Kit, container: str, path: Path) -> None:
    with open(path, "rb") as handle:
        result = kit.runner(["docker", "exec", "-i", container, "pg_restore", "-f", "/dev/null"],
                            stdin_file=handle, check=False, reads=True)
    if result.returncode != 0:
        last = (result.stderr or b"").decode(errors="replace").strip().splitlines()
        raise Refusal(f"{path.name} does not read back as a whole archive "
                      f"({last[-1] if last else 'pg_restore failed'})",
                      "Pick another backup (`make db-backups`); nothing was changed")


@dataclass(frozen=True)
class CheckedBackup:
    path: Path
    facts: DumpFacts
    checksum: bool | None  # True: matched its .sha256; None: had none (read whole instead)


_checked: dict[tuple, CheckedBackup] = {}


def check_backup(kit: Kit, container: str, path: Path, server_major: int | None
                 ) -> CheckedBackup:
    """Everything that must hold before a file is restored; Refusal (exit 3) otherwise. A file
    checked once in this run is not read again while its size, time and checksum file are the
    same (the plan is made again after the question)."""
    if not path.is_file():
        raise UsageError(f"no such backup file: {path}",
                         "`make db-backups` lists the backups; pass one with FILE=")
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns, read_checksum(path), server_major)
    if key in _checked:
        return _checked[key]
    facts = read_dump_header(path)
    expected = read_checksum(path)
    if expected == "":
        raise Refusal(f"{path.name}.sha256 cannot be read as a checksum",
                      "Pick another backup (`make db-backups`); nothing was changed")
    if expected is not None and sha256_file(path) != expected:
        raise Refusal(f"{path.name} does not match its checksum: it was truncated or changed "
                      "after it was written",
                      "Pick another backup (`make db-backups`); nothing was changed")
    if facts.pg_dump_major and server_major and facts.pg_dump_major > server_major:
        raise Refusal(f"{path.name} was made by pg_dump {facts.pg_dump_version}, newer than the "
                      f"server's PostgreSQL {server_major}, which cannot load it",
                      f"Restore it into a PostgreSQL {facts.pg_dump_major} server (DB_IMAGE), "
                      "or dump the source again with a matching pg_dump; nothing was changed")
    if facts.format == "plain":
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - 4096))
            if PLAIN_TRAILER not in handle.read():
                raise Refusal(f"{path.name} ends before pg_dump's completion trailer: it is "
                              "truncated", "Pick another backup (`make db-backups`); nothing "
                              "was changed")
    elif expected is None:
        check_archive_reads(kit, container, path)
    _checked[key] = CheckedBackup(path, facts, None if expected is None else True)
    return _checked[key]


def newest_good_backup(kit: Kit, container: str, server_major: int | None,
                       before_check: Callable[[Path], None] | None = None) -> CheckedBackup:
    """The newest backup of the configured database that passes every check. Safety dumps are
    left out: restoring one by default would undo the restore that took it. `before_check` is
    told each file before it is checked."""
    skipped = []
    mine = [b for b in list_backups(kit.settings)
            if b.db == kit.settings.db_name and not b.safety]
    for backup in mine:
        if before_check:
            before_check(backup.path)
        try:
            return check_backup(kit, container, backup.path, server_major)
        except Refusal as exc:
            warning(f"skipping {backup.path.name}: {exc.message}")
            skipped.append(backup.path.name)
    where = kit.settings.backup_dir
    raise Refusal(f"no backup of {kit.db!r} in {where} passes verification"
                  + (f" ({len(skipped)} skipped)" if skipped else ""),
                  "Take one with `make db-dump`, or pass a file with FILE=; nothing was changed")
