#!/usr/bin/env python3
"""Times the kit's data targets against the raw commands a user types, in the same run on the
same data, and writes the table into docs/benchmarks.md (`make bench [MAJOR=15] [SIZE_MB=]`).

  db-dump (custom)        vs  docker compose exec -T db pg_dump -Fc > file
  db-dump FORMAT=plain    vs  docker compose exec -T db pg_dump -Fp > file
  db-restore              vs  docker cp + pg_restore --clean --if-exists -j 2 of the same dump
  db-restore              vs  psql < plain.sql (the incident report's way), into a new database
  db-migrate-volume       vs  docker run ... cp -a /from/. /to/ into a new volume
  db-snapshot+db-rollback vs  db-dump + db-restore
  db-info                 with the machine's volumes, and with 500 more
  start-up                the imports of every script (python -X importtime)

The data is built once per run (a narrow table and a wide one, each with indexes, >= SIZE_MB
of database). Kit and raw runs alternate, their order switching every round; each figure is the
median of --repeat rounds. The kit's phases come from its own DBGUARD_TIMINGS lines. The same
run measures the physical limits: the disk, the hashes, the `compose exec` stream and pg_dump
writing to /dev/null inside the container. Works in a copy of the kit with a project of its
own and removes what it made.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (KEY, ROOT, Kit, build_test_image, copy_kit, docker,  # noqa: E402
                     volume_names)

DOC = ROOT / "docs" / "benchmarks.md"
TARGETS = {"dump": (0.6, 0.5), "restore_pg": 1.0, "restore_psql": 0.6, "migrate": 2.0,
           "snap": 0.25}


class Bench:
    def __init__(self, kit: Kit, repeat: int):
        self.kit, self.repeat = kit, repeat
        self.rows: list[tuple[str, float, float | None, str]] = []  # label, kit, raw, target
        self.phases: dict[str, dict[str, float]] = {}
        self.limits: list[tuple[str, str]] = []
        self.compose = ["docker", "compose", "--project-directory", str(kit.root)]
        self.env = kit.process_env()

    def raw(self, *argv: str, stdin=None, stdout=subprocess.DEVNULL) -> None:
        r = subprocess.run(list(argv), stdin=stdin, stdout=stdout, stderr=subprocess.PIPE,
                           env=self.env, cwd=self.kit.root)
        if r.returncode != 0:
            raise SystemExit(f"raw step failed: {argv}\n{r.stderr.decode(errors='replace')}")

    def exec_db(self, *argv: str, **kw) -> None:
        self.raw(*self.compose, "exec", "-T", "db", *argv, **kw)

    def kit_run(self, label: str, name: str, *args: str) -> float:
        started = time.monotonic()
        r = self.kit.script(name, *args, env={"DBGUARD_TIMINGS": "1"}, timeout=3600)
        took = time.monotonic() - started
        if r.returncode != 0:
            raise SystemExit(f"{name} failed:\n{r.stderr}")
        for m in re.finditer(r"^INFO: timing (\S+) ([\d.]+)s$", r.stderr, re.M):
            self.phases.setdefault(label, {}).setdefault(m[1], []).append(float(m[2]))
        return took

    def measure(self, label: str, kit_fn, raw_fn, target: str = "", before=None,
                after=None) -> tuple[float, float]:
        kit_times, raw_times = [], []
        for round_ in range(self.repeat):
            order = [(kit_fn, kit_times), (raw_fn, raw_times)]
            for fn, into in (order if round_ % 2 else order[::-1]):
                os.sync()  # each run starts with nothing of the previous one left to write
                if before:
                    before()
                started = time.monotonic()
                extra = fn()
                into.append(extra if isinstance(extra, float) else time.monotonic() - started)
                if after:
                    after()
        k, r = statistics.median(kit_times), statistics.median(raw_times)
        self.rows.append((label, k, r, target))
        print(f"{label}: kit {k:.2f}s, raw {r:.2f}s ({k / r:.2f}x)", file=sys.stderr)
        return k, r

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


@contextlib.contextmanager
def cpu_busy(into: list[tuple[float, float]]):
    """Appends the share of the machine's CPU time that was busy while the block ran, and the
    busy core-seconds (/proc/stat: everything but idle and iowait). Near 100% means more
    parallelism cannot help; only less work can. Core-seconds / cores is the least time the
    same work can take on this machine."""
    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields) - fields[3] - fields[4], sum(fields)
    busy0, total0 = sample()
    yield
    busy1, total1 = sample()
    into.append(((busy1 - busy0) / max(1, total1 - total0),
                 (busy1 - busy0) / os.sysconf("SC_CLK_TCK")))


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


def run(kit: Kit, args, major: int) -> str:
    b = Bench(kit, args.repeat)
    r = kit.script("db_up")
    if r.returncode != 0:
        raise SystemExit(r.stderr)
    build_data(kit, args.size_mb)
    version = kit.sql("SELECT version()")[0][0]
    db_size = kit.sql("SELECT pg_database_size('sum_db')")[0][0]
    rows = kit.sql("SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM documents)")[0][0]
    volume_size = int(timed_in_container(kit, kit.volume, "du -sk /v | cut -f1")) * 1024
    measure_limits(b, major)
    backups = kit.root / "backups"
    raw_file = kit.root / "raw.out"

    def clean_backups():
        for p in backups.iterdir():
            if p.is_file() and p.name != ".gitkeep":
                p.unlink()

    def raw_dump(fmt: str):
        def go():
            with open(raw_file, "wb") as out:
                b.exec_db("pg_dump", "-U", "sum_user", "-d", "sum_db", f"-F{fmt}", stdout=out)
        return go

    sizes = {}
    target = TARGETS["dump"][0 if major < 16 else 1]
    kd, rd = b.measure("db-dump (custom) vs pg_dump -Fc > file",
                       lambda: b.kit_run("dump", "db_dump"), raw_dump("c"), f"<= {target}x",
                       after=lambda: sizes.update(
                           {p.suffix: p.stat().st_size for p in backups.glob("*.dump")},
                           raw_c=raw_file.stat().st_size if raw_file.exists() else 0))
    clean_backups()
    b.measure("db-dump FORMAT=plain vs pg_dump -Fp > file",
              lambda: b.kit_run("plain", "db_dump", "--format", "plain"), raw_dump("p"),
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

    busy: dict[str, list[tuple[float, float]]] = {
        "docker cp + pg_restore --clean -j 2": [], "psql < plain.sql": [], "db-restore": []}

    def raw_restore():
        with cpu_busy(busy["docker cp + pg_restore --clean -j 2"]):
            b.raw("docker", "cp", str(dump), f"{container}:/tmp/raw.dump")
            b.raw("docker", "exec", container, "pg_restore", "-U", "sum_user", "-d", "sum_db",
                  "--clean", "--if-exists", "-j", "2", "/tmp/raw.dump")
            b.raw("docker", "exec", container, "rm", "-f", "/tmp/raw.dump")

    def raw_psql():
        b.exec_db("dropdb", "-U", "sum_user", "--if-exists", "bench_psql")
        started = time.monotonic()
        b.exec_db("createdb", "-U", "sum_user", "bench_psql")
        with open(raw_plain, "rb") as handle, cpu_busy(busy["psql < plain.sql"]):
            b.exec_db("psql", "-X", "-q", "-U", "sum_user", "-d", "bench_psql", stdin=handle)
        took = time.monotonic() - started
        b.exec_db("dropdb", "-U", "sum_user", "bench_psql")
        return took

    def kit_restore():
        with cpu_busy(busy["db-restore"]):
            return b.kit_run("restore", "db_restore", "--file", str(dump), "--yes")

    kr, _ = b.measure("db-restore vs docker cp + pg_restore --clean -j 2 (same dump)",
                      kit_restore, raw_restore, f"<= {TARGETS['restore_pg']}x")
    _, rp = b.measure("db-restore vs psql < plain.sql into a new database", kit_restore,
                      raw_psql, f"<= {TARGETS['restore_psql']}x")
    raw_plain.unlink()
    cores = os.cpu_count()
    for label, runs in busy.items():
        share = statistics.median(r[0] for r in runs)
        work = statistics.median(r[1] for r in runs)
        who = "the kit's" if label == "db-restore" else "the raw"
        b.limits.append((f"CPU while {who} {label} ran (all {cores} cores)",
                         f"{share:.0%} busy, {work:.1f} core-seconds: no faster than "
                         f"{work / cores:.2f} s here, {work / cores / rp:.2f}x the psql load"))

    def snapshot_rollback():
        return b.kit_run("snapshot", "db_snapshot", "--name", "bench") + \
            b.kit_run("rollback", "db_rollback", "--name", "bench", "--yes")

    def drop_snapshots():
        r = kit.script("db_snapshots", "--keep", "0", "--yes")
        if r.returncode != 0:
            raise SystemExit(r.stderr)

    ks = []
    for _ in range(args.repeat):
        ks.append(snapshot_rollback())
        drop_snapshots()
    k = statistics.median(ks)
    b.rows.append(("db-snapshot + db-rollback vs db-dump + db-restore", k, kd + kr,
                   f"<= {TARGETS['snap']}x"))

    info_plain = [b.kit_run("info", "db_info") for _ in range(3)]
    extra = [f"{kit.token}v{i}_data" for i in range(500)]
    for i, name in enumerate(extra):
        labels = ["--label", f"com.docker.compose.project={kit.token}p{i}", "--label",
                  "com.docker.compose.volume=data"] if i % 2 else []
        docker("volume", "create", *labels, name)
    try:
        info_500 = [b.kit_run("info500", "db_info") for _ in range(3)]
    finally:
        for start in range(0, len(extra), 100):
            docker("volume", "rm", "-f", *extra[start:start + 100], check=False)
    b.rows.append(("db-info, with 500 more volumes vs without", statistics.median(info_500),
                   statistics.median(info_plain), "<= 1.5 s, flat"))

    # Migration: the active volume becomes an orphan of an old project name, as after a rename.
    source = f"old{kit.token}_{KEY}"
    raw_target = f"raw{kit.token}"
    r = kit.script("db_down")
    docker("volume", "create", source)
    docker("run", "--rm", "--network", "none", "--mount", f"type=volume,source={kit.volume},"
           "target=/from,readonly", "--mount", f"type=volume,source={source},target=/to",
           "--entrypoint", "cp", kit.image, "-a", "/from/.", "/to/")
    remove_project(kit)

    def raw_copy():
        docker("volume", "create", raw_target)
        started = time.monotonic()
        docker("run", "--rm", "--network", "none", "--mount",
               f"type=volume,source={source},target=/from,readonly", "--mount",
               f"type=volume,source={raw_target},target=/to", "--entrypoint", "cp",
               kit.image, "-a", "/from/.", "/to/")
        return time.monotonic() - started

    def migrate_cleanup():
        remove_project(kit)
        docker("volume", "rm", "-f", raw_target)

    km, rm = b.measure("db-migrate-volume, copy and verification vs cp -a",
                       lambda: phase_sum(b, "migrate", ("copy", "verify"),
                                         b.kit_run("migrate", "db_migrate_volume", "--yes")),
                       raw_copy, f"<= {TARGETS['migrate']}x", after=migrate_cleanup)
    total = statistics.median(b.phases["migrate"]["total"])
    b.rows.append(("db-migrate-volume, whole run vs cp -a", total, rm, ""))
    imports = import_times(kit)
    docker("volume", "rm", "-f", source)
    return report(b, kit, args, major, version, db_size, rows, volume_size, sizes, imports)


def phase_sum(b: Bench, label: str, names: tuple[str, ...], total: float) -> float:
    found = b.phases[label]
    found.setdefault("total", []).append(total)
    return sum(found[n][-1] for n in names if n in found)


def remove_project(kit: Kit) -> None:
    ids = docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={kit.token}"
                 ).stdout.split()
    if ids:
        docker("rm", "-f", "-v", *ids)
    docker("volume", "rm", "-f", kit.volume)


def machine() -> str:
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text()
                  .splitlines() if ln.startswith("model name")), platform.processor())
    mem = next(int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()
               if ln.startswith("MemTotal")) / 1024 / 1024
    engine = docker("version", "--format", "{{.Server.Version}}").stdout.strip()
    return (f"{os.cpu_count()} cores ({model}), {mem:.0f} GiB, Linux {platform.release()}, "
            f"Docker Engine {engine}")


def report(b: Bench, kit: Kit, args, major, version, db_size, rows, volume_size, sizes,
           imports) -> str:
    mib = 1024 * 1024
    lines = [f"<!-- bench:{major} -->", f"## PostgreSQL {major}", "",
             f"`make bench MAJOR={major}` on {time.strftime('%Y-%m-%d')}: {machine()}.  ",
             f"Server: {version.split(' on ')[0]}. Database {db_size / mib:,.0f} MiB "
             f"({rows:,} rows in two tables with three indexes), volume "
             f"{volume_size / mib:,.0f} MiB; the kit's custom dump {sizes['kit_dump'] / mib:,.0f}"
             f" MiB, raw `pg_dump -Fc` {sizes.get('raw_c', 0) / mib:,.0f} MiB. Median of "
             f"{args.repeat} rounds, kit and raw alternating.", "",
             "| operation | dbguard | raw | ratio | target |", "|---|---|---|---|---|"]
    for label, k, r, target in b.rows:
        ratio = f"{k / r:.2f}x" if r else ""
        lines.append(f"| {label} | {k:.2f} s | {r:.2f} s | {ratio} | {target} |")
    lines += ["", "Where the kit's time goes (its own DBGUARD_TIMINGS lines, medians):", ""]
    for label in ("dump", "plain", "restore", "snapshot", "rollback", "migrate", "info"):
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--major", type=int, default=15, help="PostgreSQL major (15, 17, 18)")
    ap.add_argument("--size-mb", type=int, default=1100, help="database size to build (MiB)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds per measurement")
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
    token = "dbgb" + secrets.token_hex(4)
    work = Path(tempfile.mkdtemp(prefix="dbguard-bench-"))
    config = work / "docker-config"
    import compose

    (config / "cli-plugins").mkdir(parents=True)
    (config / "cli-plugins" / "docker-compose").symlink_to(Path(compose.__file__).parent /
                                                           "docker-compose")
    # Volumes already on the machine (a developer's own projects) are left out of the kit's view.
    kit = Kit(work / token, "v2", image, config, token, password="pw-" + token,
              foreign_volumes=tuple(sorted(volume_names())))
    copy_kit(kit.root)
    kit.write_env()
    try:
        section = run(kit, args, args.major)
    finally:
        remove_project(kit)
        docker("network", "rm", f"{token}_default", check=False)
        leftovers = docker("volume", "ls", "-q", "--filter", f"name={token}").stdout.split()
        if leftovers:
            docker("volume", "rm", "-f", *leftovers, check=False)
        subprocess.run(["rm", "-rf", str(work)])
    print(section)
    if not args.no_write:
        publish(section, args.major)
        print(f"written to {DOC.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
