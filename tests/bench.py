#!/usr/bin/env python3
"""Times the kit's whole commands against what a user types instead, in the same run on the
same data, on a server configured as the official image runs it (fsync, synchronous_commit and
full_page_writes on; the test tier's server turns them off), and writes the table into
docs/benchmarks.md (`make bench [MAJOR=15|17|18] [SIZE_MB=]`).

  make db-dump               vs  docker compose exec -T db pg_dump -Fc > file
  make db-dump FORMAT=plain  vs  ... pg_dump -Fp > file
  make db-restore            vs  docker cp + pg_restore --clean --if-exists -j 2 (same dump)
  make db-restore            vs  psql < plain.sql into a new database (reference only)
  db-snapshot + db-rollback  vs  db-dump + db-restore
  make db-clone              vs  CREATE DATABASE ... TEMPLATE ... STRATEGY FILE_COPY
  make db-info, db-find      with 500 more volumes on the engine
  make db-migrate-volume     vs  compose stop + docker run ... cp -a + compose up -d --wait
  make db-upgrade            vs  a copy of the old cluster + pg_dumpall | psql into a new
                                 server (MAJOR=17: from 15; MAJOR=18: from 17)
  start-up                   the imports of every script (python -X importtime)

Every row has the wall time and the work (busy CPU seconds of the whole machine while the
command ran, less the idle machine's: the kit, docker, the server's backends and helper
containers alike) of both sides, and their ratios: on a shared 2-core machine wall-clock ratios
move by 10-20% from run to run, the work ratio much less. The data is built once per run (a
narrow table and a wide one, each with indexes, >= SIZE_MB of database). Kit and raw runs
alternate, their order switching every round; each figure is the median of --repeat rounds.
The kit's phases come from its own DBGUARD_TIMINGS lines. Works in copies of the kit with
projects of their own and removes what it made.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (KEY, ROOT, Kit, build_test_image, compose_v2_config, copy_kit,  # noqa: E402
                     docker, volume_names)

DOC = ROOT / "docs" / "benchmarks.md"
# Wall-clock targets (kit / raw, whole commands) and work targets (CPU seconds, kit / raw).
WALL = {"dump": (0.6, 0.5), "restore": 1.0, "migrate": 1.3, "upgrade": 1.3, "snap": 0.25,
        "clone": 1.1}
WORK = {"dump": 1.05, "restore": 1.05}
FIND_SECONDS = 5.0


class Meter:
    """Wall time and work of a block: the machine's busy CPU time (/proc/stat: every process,
    so the kit's and docker's, the server's backends and any helper container's), less what
    the idle machine does in the same time (measured once, at the start)."""

    def __init__(self):
        self.idle_rate = 0.0
        a, started = self.busy(), time.monotonic()
        time.sleep(3)
        self.idle_rate = (self.busy() - a) / (time.monotonic() - started)

    @staticmethod
    def busy() -> float:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")

    def measure(self, fn) -> tuple[float, float]:
        busy, started = self.busy(), time.monotonic()
        fn()
        wall = time.monotonic() - started
        return wall, max(0.0, self.busy() - busy - self.idle_rate * wall)


@dataclass
class Row:
    label: str
    kit: float
    raw: float | None
    kit_work: float | None = None
    raw_work: float | None = None
    wall_target: float | None = None   # kit / raw at most
    work_target: float | None = None
    absolute: float | None = None      # seconds at most (no raw command)
    note: str = ""

    def met(self) -> bool | None:
        checks = []
        if self.wall_target and self.raw:
            checks.append(self.kit / self.raw <= self.wall_target)
        if self.work_target and self.raw_work:
            checks.append(self.kit_work / self.raw_work <= self.work_target)
        if self.absolute:
            checks.append(self.kit <= self.absolute)
        return all(checks) if checks else None


class Bench:
    def __init__(self, kit: Kit, repeat: int, meter: Meter):
        self.kit, self.repeat, self.meter = kit, repeat, meter
        self.rows: list[Row] = []
        self.phases: dict[str, dict[str, list[float]]] = {}
        self.limits: list[tuple[str, str]] = []
        self.env = kit.process_env()

    def compose(self, kit: Kit | None = None) -> list[str]:
        return ["docker", "compose", "--project-directory", str((kit or self.kit).root)]

    def raw(self, *argv: str, stdin=None, stdout=subprocess.DEVNULL, cwd=None) -> None:
        r = subprocess.run(list(argv), stdin=stdin, stdout=stdout, stderr=subprocess.PIPE,
                           env=self.env, cwd=cwd or self.kit.root)
        if r.returncode != 0:
            raise SystemExit(f"raw step failed: {argv}\n{r.stderr.decode(errors='replace')}")

    def exec_db(self, *argv: str, **kw) -> None:
        self.raw(*self.compose(), "exec", "-T", "db", *argv, **kw)

    def make(self, label: str, target: str, *variables: str, kit: Kit | None = None) -> None:
        """The kit's whole command as a user types it: `make <target> ...`."""
        kit = kit or self.kit
        r = kit.make(target, *variables, env={"DBGUARD_TIMINGS": "1"})
        if r.returncode != 0:
            raise SystemExit(f"make {target} failed:\n{r.stderr}")
        for m in re.finditer(r"^INFO: timing (\S+) ([\d.]+)s$", r.stderr, re.M):
            self.phases.setdefault(label, {}).setdefault(m[1], []).append(float(m[2]))
        self.last_stderr = r.stderr

    def measure(self, label: str, kit_fn, raw_fn, wall_target=None, work_target=None,
                before=None, after=None, repeat=None, note="") -> Row:
        """Kit and raw alternate, their order switching every round; medians."""
        runs = {"kit": [], "raw": []}
        for round_ in range(repeat or self.repeat):
            order = [("kit", kit_fn), ("raw", raw_fn)]
            for side, fn in (order if round_ % 2 else order[::-1]):
                os.sync()  # each run starts with nothing of the previous one left to write
                if before:
                    before(side)
                runs[side].append(self.meter.measure(fn))
                if after:
                    after(side)
        med = {side: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
               for side, v in runs.items()}
        row = Row(label, med["kit"][0], med["raw"][0], med["kit"][1], med["raw"][1],
                  wall_target, work_target, note=note)
        self.rows.append(row)
        print(f"{label}: kit {row.kit:.2f}s ({row.kit_work:.1f} cpu-s), raw {row.raw:.2f}s "
              f"({row.raw_work:.1f} cpu-s)", file=sys.stderr)
        return row

    def median_phases(self, label: str) -> str:
        found = self.phases.get(label, {})
        return ", ".join(f"{name} {statistics.median(v):.2f}s" for name, v in found.items())


def build_data(kit: Kit, size_mb: int) -> None:
    """A narrow table (many small rows, two indexes) and a wide one (text bodies, an index on
    the title), about half the size each; indexes built after the load, as a restore does."""
    narrow = size_mb * 1024 * 1024 // 2 // 115
    wide = size_mb * 1024 * 1024 // 2 // 420
    print(f"building about {size_mb} MiB: {narrow:,} narrow rows, {wide:,} wide rows",
          file=sys.stderr)
    kit.sql("CREATE TABLE events (id bigint PRIMARY KEY, account int NOT NULL, "
            "at timestamptz NOT NULL, amount numeric(12,2), kind smallint, done boolean)")
    kit.sql(f"INSERT INTO events SELECT g, g % 50000, timestamptz '2024-01-01' + g * "
            f"interval '1 second', (g % 100000) / 100.0, g % 7, g % 3 = 0 "
            f"FROM generate_series(1, {narrow}) g")
    kit.sql("CREATE INDEX events_account_at ON events (account, at)")
    kit.sql("CREATE TABLE documents (id bigint PRIMARY KEY, title text NOT NULL, body text, "
            "meta jsonb)")
    kit.sql(f"INSERT INTO documents SELECT g, 'document ' || md5(g::text), "
            f"(SELECT string_agg(md5((g * 31 + i)::text), ' ') FROM generate_series(1, 9) i), "
            f"jsonb_build_object('n', g, 'tag', 'tag' || (g % 100)) "
            f"FROM generate_series(1, {wide}) g")
    kit.sql("CREATE INDEX documents_title ON documents (title)")
    kit.sql("VACUUM (ANALYZE, PARALLEL 0)")  # parallel vacuum outgrows Docker's 64 MB /dev/shm
    kit.sql("CHECKPOINT")


def timed_in_container(kit: Kit, volume: str, script: str) -> str:
    return docker("run", "--rm", "--network", "none", "--user", "0:0", "--entrypoint",
                  "/bin/sh", "--mount", f"type=volume,source={volume},target=/v",
                  kit.image, "-c", script).stdout


def measure_limits(b: Bench, major: int) -> None:
    kit = b.kit
    scratch = f"{kit.token}_limits"
    docker("volume", "create", scratch)
    try:
        out = timed_in_container(kit, scratch, "dd if=/dev/zero of=/v/f bs=1M count=1024 "
                                 "conv=fdatasync 2>&1 | tail -1")
        b.limits.append(("disk, sequential write with fdatasync (dd, 1 GiB)",
                         out.strip().split(",")[-1].strip()))
        script = ("head -c 1073741824 /dev/urandom > /v/h; cat /v/h > /dev/null; "
                  "for t in cksum md5sum sha1sum sha256sum b2sum; do command -v $t >/dev/null || "
                  "continue; s=$(date +%s%N); $t /v/h >/dev/null; e=$(date +%s%N); "
                  "echo $t $(( 1073741824 * 1000 / (e - s) ))MB/s; done")
        for line in timed_in_container(kit, scratch, script).splitlines():
            tool, speed = line.split()
            b.limits.append((f"hash in the container: {tool} (1 GiB, one core)", speed))
    finally:
        docker("volume", "rm", "-f", scratch)
    started = time.monotonic()
    sum(range(30_000_000))
    b.limits.append(("one core's speed: Python `sum(range(30_000_000))` (compare runs by it)",
                     f"{time.monotonic() - started:.2f}s"))
    blob = os.urandom(256 << 20)
    for name in ("sha256", "md5", "blake2b"):
        started = time.monotonic()
        hashlib.new(name, blob).hexdigest()
        b.limits.append((f"hash on the host: Python {name}",
                         f"{len(blob) / (time.monotonic() - started) / 1e6:.0f}MB/s"))
    started = time.monotonic()
    b.exec_db("head", "-c", str(1 << 30), "/dev/zero")
    b.limits.append(("`compose exec -T` stream out of the container (1 GiB)",
                     f"{(1 << 30) / (time.monotonic() - started) / 1e6:.0f}MB/s"))
    levels = [("-Fc (default compression)", []), ("-Fc -Z 1", ["-Z", "1"]),
              ("-Fc -Z 0", ["-Z", "0"])]
    if major >= 16:
        levels += [("-Fc -Z zstd:1", ["-Z", "zstd:1"]), ("-Fc -Z lz4", ["-Z", "lz4"])]
    for label, extra in levels:
        started = time.monotonic()
        b.exec_db("pg_dump", "-U", "sum_user", "-d", "sum_db", "-Fc", *extra, "--no-sync",
                  "-f", "/dev/null")
        b.limits.append((f"pg_dump {label} to /dev/null inside the container",
                         f"{time.monotonic() - started:.1f}s"))


def import_times(kit: Kit) -> dict[str, float]:
    """Each script's imports in ms (the module's cumulative import time), median of 3."""
    result = {}
    for path in sorted((kit.root / "scripts").glob("db_*.py")):
        runs = []
        subprocess.run([sys.executable, "-c", f"import {path.stem}"], cwd=path.parent,
                       capture_output=True)  # the first run writes the bytecode
        for _ in range(3):
            r = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {path.stem}"],
                               cwd=path.parent, capture_output=True, text=True)
            line = [ln for ln in r.stderr.splitlines() if ln.rstrip().endswith(f"| {path.stem}")]
            runs.append(int(line[-1].split("|")[1]) / 1000)
        result[path.stem] = statistics.median(runs)
    return result


def durable(kit: Kit, major: int) -> None:
    """The server as users run it: the official image's settings (fsync, synchronous_commit and
    full_page_writes on), not the test tier's fast ones; the 18 layout for 18."""
    compose = kit.root / "docker-compose.yml"
    text = compose.read_text().replace(
        "      POSTGRES_DB:", '      DBGUARD_TEST_DURABLE: "1"\n      POSTGRES_DB:', 1)
    if major >= 18:
        text = text.replace(f"{KEY}:/var/lib/postgresql/data", f"{KEY}:/var/lib/postgresql")
    compose.write_text(text)


SETTINGS_SQL = ("SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ', ' ORDER BY "
                "name) FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', "
                "'full_page_writes', 'shared_buffers', 'max_wal_size', 'wal_level', "
                "'checkpoint_timeout', 'maintenance_work_mem', 'file_copy_method')")


def up(kit: Kit, *flags: str) -> None:
    r = kit.script("db_up", *flags)
    if r.returncode != 0:
        raise SystemExit(r.stderr)


def run(kit: Kit, args, major: int) -> str:
    b = Bench(kit, args.repeat, Meter())
    durable(kit, major)
    up(kit)
    build_data(kit, args.size_mb)
    version = kit.sql("SELECT version()")[0][0]
    settings = kit.sql(SETTINGS_SQL)[0][0]
    db_size = kit.sql("SELECT pg_database_size('sum_db')")[0][0]
    rows = kit.sql("SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM documents)")[0][0]
    volume_size = int(timed_in_container(kit, kit.volume, "du -sk /v | cut -f1")) * 1024
    measure_limits(b, major)
    backups = kit.root / "backups"
    raw_file = kit.root / "raw.out"

    def clean_backups(_=None):
        for p in backups.iterdir():
            if p.is_file() and p.name != ".gitkeep" and p.suffix in (".dump", ".sql",
                                                                     ".sha256"):
                p.unlink()

    def raw_dump(fmt: str):
        def go():
            with open(raw_file, "wb") as out:
                b.exec_db("pg_dump", "-U", "sum_user", "-d", "sum_db", f"-F{fmt}", stdout=out)
        return go

    sizes = {}
    dump_row = b.measure("db-dump vs `docker compose exec -T db pg_dump -Fc > file`",
                         lambda: b.make("dump", "db-dump"), raw_dump("c"),
                         WALL["dump"][0 if major < 16 else 1], WORK["dump"],
                         after=lambda side: sizes.update(
                             {p.suffix: p.stat().st_size for p in backups.glob("*.dump")},
                             raw_c=raw_file.stat().st_size if raw_file.exists() else 0))
    clean_backups()
    b.measure("db-dump FORMAT=plain vs `pg_dump -Fp > file`",
              lambda: b.make("plain", "db-dump", "FORMAT=plain"), raw_dump("p"),
              before=clean_backups)
    clean_backups()
    raw_plain = kit.root / "plain.sql"
    raw_dump("p")()
    raw_file.rename(raw_plain)
    r = kit.script("db_dump")
    dump = Path(r.stdout.strip())
    sizes["kit_dump"] = dump.stat().st_size
    container = docker("ps", "-q", "--filter", f"label=com.docker.compose.project={kit.token}"
                       ).stdout.strip()

    def raw_restore():
        b.raw("docker", "cp", str(dump), f"{container}:/tmp/raw.dump")
        b.exec_db("pg_restore", "-U", "sum_user", "-d", "sum_db", "--clean", "--if-exists",
                  "-j", "2", "/tmp/raw.dump")
        b.exec_db("rm", "-f", "/tmp/raw.dump")

    def raw_psql():
        b.exec_db("dropdb", "-U", "sum_user", "--if-exists", "bench_psql")
        b.exec_db("createdb", "-U", "sum_user", "bench_psql")
        with open(raw_plain, "rb") as handle:
            b.exec_db("psql", "-X", "-q", "-U", "sum_user", "-d", "bench_psql", stdin=handle)

    def kit_restore():
        b.make("restore", "db-restore", f"FILE={dump}", "YES=1")

    def drop_psql(side):
        if side == "raw":
            b.exec_db("dropdb", "-U", "sum_user", "--if-exists", "bench_psql")

    restore_row = b.measure("db-restore vs `docker cp` + `pg_restore --clean -j 2` (same dump)",
                            kit_restore, raw_restore, WALL["restore"], WORK["restore"])
    b.measure("db-restore vs `psql < plain.sql` into a new database (reference: no target)",
              kit_restore, raw_psql, after=drop_psql)
    raw_plain.unlink()

    def snapshot_rollback():
        b.make("snapshot", "db-snapshot", "NAME=bench")
        b.make("rollback", "db-rollback", "NAME=bench", "YES=1")

    def drop_snapshots(side=None):
        listed = json.loads(kit.script("db_snapshots", "--json").stdout or "[]")
        names = [sn["name"] for sn in (listed.get("snapshots", []) if isinstance(listed, dict)
                                       else listed)]
        if "bench" in names:
            r = kit.script("db_snapshots", "--drop", "bench", "--yes")
            if r.returncode != 0:
                raise SystemExit(r.stderr)

    snaps = []
    for _ in range(args.repeat):
        drop_snapshots()
        snaps.append(b.meter.measure(snapshot_rollback))
    drop_snapshots()
    b.rows.append(Row("db-snapshot + db-rollback vs db-dump + db-restore (both the kit's)",
                      statistics.median(w for w, _ in snaps), dump_row.kit + restore_row.kit,
                      statistics.median(c for _, c in snaps),
                      dump_row.kit_work + restore_row.kit_work, WALL["snap"]))

    clone_rows(b, kit)

    info_plain = [b.meter.measure(lambda: b.make("info", "db-info")) for _ in range(3)]
    extra = [f"{kit.token}v{i}_data" for i in range(500)]
    for i, name in enumerate(extra):
        labels = ["--label", f"com.docker.compose.project={kit.token}p{i}", "--label",
                  "com.docker.compose.volume=data"] if i % 2 else []
        docker("volume", "create", *labels, name)
    try:
        info_500 = [b.meter.measure(lambda: b.make("info500", "db-info")) for _ in range(3)]
        find_500 = [b.meter.measure(lambda: b.make("find", "db-find")) for _ in range(3)]
    finally:
        for start in range(0, len(extra), 100):
            docker("volume", "rm", "-f", *extra[start:start + 100], check=False)
    b.rows.append(Row("db-info, with 500 more volumes vs without", statistics.median(
        w for w, _ in info_500), statistics.median(w for w, _ in info_plain), statistics.median(
        c for _, c in info_500), statistics.median(c for _, c in info_plain), 1.5))
    b.rows.append(Row(f"db-find, every volume on the engine ({len(extra)} and more)",
                      statistics.median(w for w, _ in find_500), None,
                      statistics.median(c for _, c in find_500), None,
                      absolute=FIND_SECONDS))
    migrate_rows(b, kit)
    imports = import_times(kit)
    return report(b, kit, args, major, version, settings, db_size, rows, volume_size, sizes,
                  imports)


def clone_rows(b: Bench, kit: Kit) -> None:
    """db-clone in a git worktree that shares the server, against the raw CREATE DATABASE ...
    TEMPLATE ... STRATEGY FILE_COPY of the same idle copy."""
    (kit.root / ".gitignore").write_text(".env\nbackups/\n.venv/\n__pycache__/\n*.out\n")
    git = ["git", "-c", "user.email=b@example.test", "-c", "user.name=b"]
    tree = kit.root.parent / "wt"
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "x"],
                 ["worktree", "add", "-q", "-b", "wt", str(tree)]):
        b.raw(*git, *args)
    wt = dataclasses.replace(kit, root=tree)
    (tree / ".env").write_text((kit.root / ".env").read_text())
    b.make("clone", "db-clone", "YES=1", kit=wt)  # the idle copy, once (not timed)
    b.phases.pop("clone", None)
    env = (tree / ".env").read_text()
    source = "sum_db_dbguard_snap_clone_source"

    def kit_clone():
        b.make("clone", "db-clone", "NAME=bench_clone", "YES=1", kit=wt)

    def raw_clone():
        b.exec_db("psql", "-X", "-q", "-U", "sum_user", "-d", "postgres", "-c",
                  f"CREATE DATABASE raw_clone TEMPLATE {source} STRATEGY FILE_COPY")

    def drop(side):
        name = "bench_clone" if side == "kit" else "raw_clone"
        b.exec_db("dropdb", "-U", "sum_user", "--if-exists", name)
        (tree / ".env").write_text(env)

    b.measure("db-clone (whole command, in a worktree) vs `CREATE DATABASE ... TEMPLATE ... "
              "STRATEGY FILE_COPY` of the same idle copy", kit_clone, raw_clone,
              WALL["clone"], after=drop)
    method = re.search(r"in [\d.]+s by (.+?); ", b.last_stderr or "")
    b.limits.append(("db-clone's file copy method", method[1] if method else "?"))


def migrate_rows(b: Bench, kit: Kit) -> None:
    """db-migrate-volume, the whole command, against the sequence a user types instead:
    `docker compose stop db`, `docker run ... cp -a /from/. /to/`, `docker compose up -d
    --wait db`. Before each run the active volume is gone and the data sits in the volume of
    an old project name, as after a rename."""
    source = f"old{kit.token}_{KEY}"
    assert kit.script("db_down").returncode == 0
    docker("volume", "create", source)
    docker("run", "--rm", "--network", "none", "--mount", f"type=volume,source={kit.volume},"
           "target=/from,readonly", "--mount", f"type=volume,source={source},target=/to",
           "--entrypoint", "cp", kit.image, "-a", "/from/.", "/to/")
    remove_project(kit)

    def raw_sequence():
        b.raw(*b.compose(), "stop", "db")
        b.raw("docker", "run", "--rm", "--network", "none", "--mount",
              f"type=volume,source={source},target=/from,readonly", "--mount",
              f"type=volume,source={kit.volume},target=/to", "--entrypoint", "cp",
              kit.image, "-a", "/from/.", "/to/")
        b.raw(*b.compose(), "up", "-d", "--wait", "db")

    def clean(side):
        remove_project(kit)

    b.measure("db-migrate-volume (whole command) vs `compose stop` + `docker run ... cp -a` + "
              "`compose up -d --wait`", lambda: b.make("migrate", "db-migrate-volume",
                                                       f"FROM={source}", "YES=1"),
              raw_sequence, WALL["migrate"], before=clean, after=clean)
    docker("volume", "rm", "-f", source)


def upgrade_rows(b: Bench, old_kit: Kit, old_image: str, new_image: str, old_major: int,
                 new_major: int) -> None:
    """db-upgrade old -> new, the whole command, against the raw path a user would script: a
    copy of the old cluster, the old server's pg_dumpall piped into psql on a new server of the
    new major (on a new volume), both stopped after. Each run starts from the same old
    cluster (a pristine copy made once)."""
    kit = old_kit
    pristine = f"{kit.token}pristine"
    kit.script("db_down")
    docker("volume", "create", pristine)
    copy_volume(kit.image, kit.volume, pristine)
    compose = kit.root / "docker-compose.yml"
    original_compose = compose.read_text()
    mount = "/var/lib/postgresql" if old_major >= 18 else "/var/lib/postgresql/data"
    new_mount = "/var/lib/postgresql" if new_major >= 18 else "/var/lib/postgresql/data"
    kept_raw, new_raw = f"{kit.token}rawkeep", f"{kit.token}rawnew"

    def reset(side):
        for name in ("old", "new"):
            docker("rm", "-f", f"{kit.token}-{name}", check=False)
        remove_project(kit, keep_volume=False)
        for name in kept_volumes(kit) + [kept_raw, new_raw]:
            docker("volume", "rm", "-f", name, check=False)
        compose.write_text(original_compose)
        docker("volume", "create", kit.volume)
        copy_volume(kit.image, pristine, kit.volume)
        kit.write_env(DB_IMAGE=old_image)
        up(kit)  # the user's state: the service runs on the old major
        if side == "kit":
            kit.write_env(DB_IMAGE=new_image)  # and the image is changed to the new one

    def kit_upgrade():
        b.make("upgrade", "db-upgrade", f"OLD_IMAGE={old_image}", "YES=1")

    def raw_upgrade():
        b.raw(*b.compose(), "stop", "db")
        docker("volume", "create", kept_raw)
        copy_volume(old_image, kit.volume, kept_raw)
        b.raw("docker", "run", "-d", "--name", f"{kit.token}-old", "--network", "none",
              "-e", f"POSTGRES_PASSWORD={kit.password}", "-e", "DBGUARD_TEST_DURABLE=1",
              "--mount", f"type=volume,source={kit.volume},target={mount}", old_image)
        b.raw("docker", "run", "-d", "--name", f"{kit.token}-new", "--network", "none",
              "-e", f"POSTGRES_PASSWORD={kit.password}", "-e", "POSTGRES_USER=sum_user",
              "-e", "DBGUARD_TEST_DURABLE=1",
              "--mount", f"type=volume,source={new_raw},target={new_mount}", new_image)
        for name in ("old", "new"):
            wait_ready(f"{kit.token}-{name}")
        dumpall = subprocess.Popen(["docker", "exec", f"{kit.token}-old", "pg_dumpall", "-U",
                                    "sum_user"], stdout=subprocess.PIPE)
        b.raw("docker", "exec", "-i", f"{kit.token}-new", "psql", "-X", "-q", "-U",
              "sum_user", "-d", "postgres", stdin=dumpall.stdout)
        dumpall.stdout.close()
        if dumpall.wait() != 0:
            raise SystemExit("raw pg_dumpall failed")
        b.raw("docker", "stop", f"{kit.token}-old", f"{kit.token}-new")

    b.measure(f"db-upgrade {old_major} -> {new_major} (whole command, every row compared) vs "
              "copy of the old cluster + `pg_dumpall` piped into `psql` on a new server",
              kit_upgrade, raw_upgrade, WALL["upgrade"], before=reset, repeat=b.repeat)
    reset("raw")
    for name in ("old", "new"):
        docker("rm", "-f", f"{kit.token}-{name}", check=False)
    docker("volume", "rm", "-f", pristine, kept_raw, new_raw, check=False)


def kept_volumes(kit: Kit) -> list[str]:
    return docker("volume", "ls", "-q", "--filter", f"label=dbguard.upgrade-of={kit.volume}"
                  ).stdout.split()


def copy_volume(image: str, source: str, target: str) -> None:
    docker("run", "--rm", "--network", "none", "--user", "0:0", "--mount",
           f"type=volume,source={source},target=/from,readonly", "--mount",
           f"type=volume,source={target},target=/to", "--entrypoint", "cp", image, "-a",
           "/from/.", "/to/")


def wait_ready(container: str) -> None:
    for _ in range(1200):
        r = docker("exec", container, "pg_isready", "-h", "127.0.0.1", check=False)
        if r.returncode == 0:
            return
        if docker("inspect", "--format", "{{.State.Running}}", container,
                  check=False).stdout.strip() != "true":
            raise SystemExit(docker("logs", container, check=False).stderr)
        time.sleep(0.25)
    raise SystemExit(f"{container} never became ready")


def remove_project(kit: Kit, keep_volume: bool = False) -> None:
    ids = docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={kit.project}"
                 ).stdout.split()
    if ids:
        docker("rm", "-f", "-v", *ids)
    if not keep_volume:
        docker("volume", "rm", "-f", kit.volume, check=False)


def machine() -> str:
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text()
                  .splitlines() if ln.startswith("model name")), platform.processor())
    mem = next(int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()
               if ln.startswith("MemTotal")) / 1024 / 1024
    engine = docker("version", "--format", "{{.Server.Version}}").stdout.strip()
    return (f"{os.cpu_count()} cores ({model}), {mem:.0f} GiB, Linux {platform.release()}, "
            f"Docker Engine {engine}")


def report(b: Bench, kit: Kit, args, major, version, settings, db_size, rows, volume_size,
           sizes, imports) -> str:
    mib = 1024 * 1024
    lines = [f"<!-- bench:{major} -->", f"## PostgreSQL {major}", "",
             f"`make bench MAJOR={major}` on {time.strftime('%Y-%m-%d')}: {machine()}.  ",
             f"Server: {version.split(' on ')[0]}, configured as the official image runs it: "
             f"{settings}.  ",
             f"Database {db_size / mib:,.0f} MiB ({rows:,} rows in two tables with three "
             f"indexes), volume {volume_size / mib:,.0f} MiB; the kit's custom dump "
             f"{sizes['kit_dump'] / mib:,.0f} MiB, raw `pg_dump -Fc` "
             f"{sizes.get('raw_c', 0) / mib:,.0f} MiB. Whole commands (`make db-...` against "
             f"what a user types instead); {'mean' if args.repeat == 2 else 'median'} of "
             f"{args.repeat} rounds, kit and raw alternating. Work: the machine's busy CPU seconds while the command ran (every "
             "process: the kit, docker, the server's backends, helper containers), less the "
             "idle machine's.", "",
             "| operation | dbguard | raw | ratio | dbguard CPU | raw CPU | CPU ratio | target "
             "| met |", "|---|---|---|---|---|---|---|---|---|"]
    for r in b.rows:
        ratio = f"{r.kit / r.raw:.2f}x" if r.raw else ""
        work = f"{r.kit_work / r.raw_work:.2f}x" if r.raw_work else ""
        target = "; ".join(t for t in (
            f"<= {r.wall_target}x" if r.wall_target else "",
            f"CPU <= {r.work_target}x" if r.work_target else "",
            f"<= {r.absolute:.0f} s" if r.absolute else "") if t)
        met = {True: "yes", False: "**no**", None: ""}[r.met()]
        raw = f"{r.raw:.2f} s" if r.raw is not None else "-"
        raw_cpu = f"{r.raw_work:.1f} s" if r.raw_work is not None else "-"
        lines.append(f"| {r.label} | {r.kit:.2f} s | {raw} | {ratio} | {r.kit_work:.1f} s | "
                     f"{raw_cpu} | {work} | {target} | {met} |")
    lines += ["", "Where the kit's time goes (its own DBGUARD_TIMINGS lines, medians; for "
              "db-upgrade, `keep` is the old cluster's copy):", ""]
    for label in ("dump", "plain", "restore", "snapshot", "rollback", "clone", "migrate",
                  "upgrade"):
        if label in b.phases:
            lines.append(f"- {label}: {b.median_phases(label)}")
    worst = max(imports, key=imports.get)
    lines += ["", f"Start-up: imports {min(imports.values()):.0f}-{imports[worst]:.0f} ms per "
              f"script (slowest: {worst}; db_info {imports.get('db_info', 0):.0f} ms), "
              "`python -X importtime`, bytecode cached, median of 3.", "",
              "Physical limits, same run:", ""]
    lines += [f"- {label}: {value}" for label, value in b.limits]
    lines += [f"<!-- /bench:{major} -->", ""]
    return "\n".join(lines)


def publish(section: str, major: int) -> None:
    head = ("# Benchmarks\n\nWritten by `make bench` (tests/bench.py): the kit's data targets "
            "against the raw commands a user would type, same machine, same data, same run. "
            "Each major's section is replaced by its own run.\n\n")
    text = DOC.read_text() if DOC.exists() else head
    pattern = re.compile(rf"<!-- bench:{major} -->.*?<!-- /bench:{major} -->\n?", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else \
        text.rstrip("\n") + "\n\n" + section
    DOC.write_text(text)


def new_kit(work: Path, image: str, config: Path, suffix: str = "") -> Kit:
    token = "dbgb" + secrets.token_hex(4) + suffix
    # Volumes already on the machine (a developer's own projects) are left out of its view.
    kit = Kit(work / token, "v2", image, config, token, password="pw-" + token,
              foreign_volumes=tuple(sorted(volume_names())))
    copy_kit(kit.root)
    kit.write_env()
    return kit


def cleanup(kit: Kit) -> None:
    ids = docker("ps", "-aq", "--filter", f"name={kit.token}").stdout.split()
    if ids:
        docker("rm", "-f", "-v", *ids, check=False)
    remove_project(kit)
    for name in kept_volumes(kit):
        docker("volume", "rm", "-f", name, check=False)
    docker("network", "rm", f"{kit.project}_default", check=False)
    leftovers = docker("volume", "ls", "-q", "--filter", f"name={kit.token}").stdout.split()
    if leftovers:
        docker("volume", "rm", "-f", *leftovers, check=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--major", type=int, default=15, help="PostgreSQL major (15, 17, 18)")
    ap.add_argument("--size-mb", type=int, default=1100, help="database size to build (MiB)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds per measurement")
    ap.add_argument("--upgrade-repeat", type=int, default=0,
                    help="rounds of the upgrade row (default: --repeat); each takes minutes")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    args = ap.parse_args()
    if docker("info", check=False).returncode != 0:
        print("ERROR: the Docker daemon cannot be reached. Start Docker and run again",
              file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a kill still cleans up
    # Timed as users run the scripts: Python caches their bytecode after the first run (the
    # copy of the kit lives in a temporary folder), unless a workplace switched that off.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    image = build_test_image(args.major)
    older = {17: 15, 18: 17}.get(args.major)
    work = Path(tempfile.mkdtemp(prefix="dbguard-bench-"))
    config = compose_v2_config(work / "docker-config")
    kits = [new_kit(work, image, config)]
    try:
        section = run(kits[0], args, args.major)
        cleanup(kits[0])
        if older:  # the upgrade into this major, from data built on the older one
            old_image = build_test_image(older)
            old = new_kit(work, old_image, config, "u")
            kits.append(old)
            durable(old, older)
            up(old)
            build_data(old, args.size_mb)
            b = Bench(old, args.upgrade_repeat or args.repeat, Meter())
            upgrade_rows(b, old, old_image, image, older, args.major)
            extra = report_upgrade(b)
            section = section.replace(f"<!-- /bench:{args.major} -->", extra +
                                      f"<!-- /bench:{args.major} -->")
    finally:
        for kit in kits:
            cleanup(kit)
        subprocess.run(["rm", "-rf", str(work)])
    print(section)
    if not args.no_write:
        publish(section, args.major)
        import bench_summary
        bench_summary.rewrite()
        print(f"written to {DOC.relative_to(ROOT)} and README.md's summary", file=sys.stderr)
    return 0


def report_upgrade(b: Bench) -> str:
    (r,) = b.rows
    rounds = f"median of {b.repeat} rounds" if b.repeat > 1 else "one round"
    lines = ["", "The upgrade into this major (data of the same size built on the older one; "
             f"{rounds}):",
             "", "| operation | dbguard | raw | ratio | dbguard CPU | raw CPU | CPU ratio | "
             "target | met |", "|---|---|---|---|---|---|---|---|---|",
             f"| {r.label} | {r.kit:.2f} s | {r.raw:.2f} s | {r.kit / r.raw:.2f}x | "
             f"{r.kit_work:.1f} s | {r.raw_work:.1f} s | {r.kit_work / r.raw_work:.2f}x | "
             f"<= {r.wall_target}x | {'yes' if r.met() else '**no**'} |", "",
             f"- upgrade phases: {b.median_phases('upgrade')}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
