"""Loading a checked backup into a database named by the caller (always a scratch database:
see destructive/replace_database.py): parallel pg_restore for custom archives, psql stopping at
the first error in one transaction for plain SQL; and the before/after table report.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from .backup_check import CheckedBackup
from .errors import Failure
from .kit import Kit
from .messages import timing
from .names import restore_copy
from .runner import command_failure, kill_tree
from .server import Server

COPIES_RE = re.compile(r"^dbguard-restore-(?P<pid>\d+)-\d+\.dump$")


class Loader:
    """Loads one checked backup. A custom archive is loaded by pg_restore -j inside the
    container, which needs a seekable file there: its copy into the container starts as soon as
    the file is named (`stage`), so it runs while the file is checked, the server read and the
    question asked, and `close` removes it whatever happened. Plain SQL goes to psql through
    stdin, stopping at the first error, in one transaction. Use it as a context manager, under
    the kit's lock; in a dry run it copies nothing."""

    def __init__(self, kit: Kit, server: Server):
        self.kit, self.server, self.cid = kit, server, server.container
        self.backup: CheckedBackup | None = None
        self.staged: Path | None = None      # the file being copied in (not yet checked)
        self.inside = ""
        self.copy: subprocess.Popen | None = None
        self.removal: subprocess.Popen | None = None  # of the copies, once the load is done
        self.copied = False
        self.copies = 0

    def __enter__(self) -> Loader:
        if not self.kit.runner.dry_run:
            self.clear_leftovers()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def clear_leftovers(self) -> None:
        """Copies that killed runs left in the container (their process is gone)."""
        from .actions.recovery import pid_alive

        listing = self.kit.runner(["docker", "exec", self.cid, "ls", "/tmp"],
                                  check=False, reads=True).stdout.decode(errors="replace")
        stale = [f"/tmp/{n}" for n in listing.split()
                 if (m := COPIES_RE.match(n)) and not pid_alive(int(m["pid"]))]
        if stale:
            self.kit.runner(["docker", "exec", self.cid, "rm", "-f", *stale],
                            check=False)

    def stage(self, path: Path) -> None:
        """Starts copying `path` into the container if it looks like a custom archive (the
        checks come after, and decide whether it is used); a copy of another file stops."""
        if self.kit.runner.dry_run or path == self.staged:
            return
        try:
            with open(path, "rb") as handle:
                if handle.read(5) != b"PGDMP":
                    return
        except OSError:
            return  # the checks say what is wrong with it
        self.discard()
        self.copies += 1
        # A name per copy: a stopped copy's last bytes can never land in the next one.
        self.staged, self.copied = path, False
        self.inside = restore_copy(os.getpid(), self.copies)
        self.copy = self.kit.runner.popen(self.copy_args(), stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def use(self, backup: CheckedBackup) -> None:
        """The backup that passed its checks: the one to load."""
        self.backup = backup
        if backup.facts.format != "plain":
            self.stage(backup.path)

    def copy_args(self) -> list[str]:
        return ["docker", "cp", str(self.staged), f"{self.cid}:{self.inside}"]

    def ready(self) -> None:
        """Waits for the copy into the container; a failed copy is an error before anything
        changed."""
        if self.copy is None or self.copied:
            return
        with timing("copy-in"):
            _, err = self.copy.communicate()
        if self.copy.returncode != 0:
            raise command_failure(self.copy_args(), err)
        self.copied = True

    def __call__(self, dbname: str) -> None:
        s, backup = self.kit.settings, self.backup
        app, env = self.server.exec_options(reads=False)
        if backup.facts.format == "plain":
            with open(backup.path, "rb") as handle:
                result = self.kit.runner(
                    ["docker", "exec", "-i", *app, self.cid, "psql", "-X", "-q",
                     "-U", s.db_user, "-d", dbname, "-v", "ON_ERROR_STOP=1",
                     "--single-transaction", "-f", "-"], stdin_file=handle,
                    stdout=subprocess.DEVNULL, check=False, env=env)
        else:
            self.ready()
            jobs = str(max(1, min(4, os.cpu_count() or 1)))
            with timing("pg_restore"):
                result = self.kit.runner(
                    ["docker", "exec", *app, self.cid, "pg_restore", "-U", s.db_user,
                     "-d", dbname, "--exit-on-error", "-j", jobs, self.inside], check=False,
                    env=env)
            # The copy has served: it is removed while the databases are swapped.
            self.removal = self.kit.runner.popen(self.removal_args(), stdin=subprocess.DEVNULL,
                                                 stdout=subprocess.DEVNULL,
                                                 stderr=subprocess.DEVNULL)
        if result.returncode != 0:
            raise load_failure(backup.path, result.stderr)

    def discard(self) -> None:
        if self.copy is not None:
            kill_tree(self.copy)  # not needed (declined, refused, failed): stop it
            self.copy.wait()

    def close(self) -> None:
        if not self.copies:
            return
        self.discard()
        self.copy = None
        if self.removal is not None and self.removal.wait() == 0:
            return  # started when the load ended
        self.kit.runner(self.removal_args(), check=False)

    def removal_args(self) -> list[str]:
        # Every copy of this run (a stopped copy may still be landing): one call.
        return ["docker", "exec", self.cid, "sh", "-c",
                f"rm -f /tmp/dbguard-restore-{os.getpid()}-*.dump"]


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
