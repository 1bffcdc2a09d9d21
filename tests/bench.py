#!/usr/bin/env python3
"""Times the kit's data targets against the raw commands they wrap, in the same run on the
same data, and prints the ratios (`make bench`, SIZE_MB=n for the table data; default 200).

  db-dump (custom)        vs  docker compose exec -T db pg_dump -Fc > file
  db-dump FORMAT=plain    vs  docker compose exec -T db pg_dump -Fp > file
  db-restore (custom)     vs  pg_restore --clean --if-exists -j N of the same file
  db-migrate-volume       vs  docker run ... cp -a /from/. /to/ into a new volume

What the kit adds is the price of its promises: verification (reading every dump back,
comparing every copied file's sha256 on both sides), checksums, a safety dump before a restore,
a scratch database and swap, stopping and restarting the service. Each figure is the median
of --repeat runs. Works in a copy of the kit with its own project and removes what it made.
"""
from __future__ import annotations

import argparse
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Kit, build_test_image, copy_kit, docker  # noqa: E402


def timed(fn) -> float:
    started = time.monotonic()
    fn()
    return time.monotonic() - started


def check(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    if r.returncode != 0:
        raise SystemExit(f"benchmark step failed:\n{r.stderr}")
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=200, help="table data to generate (MiB)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement")
    args = ap.parse_args()
    if docker("info", check=False).returncode != 0:
        print("ERROR: the Docker daemon cannot be reached. Start Docker and run again",
              file=sys.stderr)
        return 1
    image = build_test_image()
    token = "dbgb" + secrets.token_hex(4)
    work = Path(tempfile.mkdtemp(prefix="dbguard-bench-"))
    v2 = work / "docker-config"
    import compose

    (v2 / "cli-plugins").mkdir(parents=True)
    (v2 / "cli-plugins" / "docker-compose").symlink_to(Path(compose.__file__).parent /
                                                       "docker-compose")
    kit = Kit(work / token, "v2", image, v2, token, password="pw-" + token)
    copy_kit(kit.root)
    kit.write_env(DBGUARD_SAFETY_DUMP="1")
    source = f"old{token}_sum_db_data"
    made = [kit.volume, source]
    try:
        return run(kit, args, source, made)
    finally:
        ids = docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={token}"
                     ).stdout.split()
        if ids:
            docker("rm", "-f", "-v", *ids, check=False)
        docker("network", "rm", f"{token}_default", check=False)
        docker("volume", "rm", "-f", *made, check=False)
        subprocess.run(["rm", "-rf", str(work)])


def run(kit: Kit, args, source: str, made: list[str]) -> int:
    check(kit.script("db_up"))
    rows = args.size_mb * 1024 * 1024 // 100  # about 100 bytes a row on disk
    print(f"generating about {args.size_mb} MiB of rows ...", file=sys.stderr)
    kit.sql("CREATE TABLE bench (id bigint PRIMARY KEY, a text, b text, n numeric)")
    kit.sql(f"INSERT INTO bench SELECT g, md5(g::text), md5((g * 3)::text), g / 7.0 "
            f"FROM generate_series(1, {rows}) g")
    kit.sql("VACUUM ANALYZE bench")
    size = kit.sql("SELECT pg_database_size('sum_db')")[0][0]
    compose = ["docker", "compose", "--env-file", str(kit.root / ".env"), "-f",
               str(kit.root / "docker-compose.yml")]
    results = []

    def measure(label: str, kit_fn, raw_fn, cleanup=lambda: None) -> None:
        kit_times, raw_times = [], []
        for _ in range(args.repeat):
            raw_times.append(timed(raw_fn))
            cleanup()
            kit_times.append(timed(kit_fn))
            cleanup()
        k, r = statistics.median(kit_times), statistics.median(raw_times)
        results.append((label, k, r))
        print(f"{label}: kit {k:.2f}s, raw {r:.2f}s", file=sys.stderr)

    raw_file = kit.root / "raw.dump"

    def raw_dump(fmt: str):
        def go():
            with open(raw_file, "wb") as out:
                check(subprocess.run([*compose, "exec", "-T", "db", "pg_dump", "-U", "sum_user",
                                      "-d", "sum_db", f"-F{fmt}"], stdout=out,
                                     stderr=subprocess.PIPE, env=kit.process_env()))
        return go

    def clean_backups():
        for p in (kit.root / "backups").iterdir():
            if p.name != ".gitkeep" and p.is_file():
                p.unlink()

    measure("db-dump (custom)", lambda: check(kit.script("db_dump")), raw_dump("c"),
            clean_backups)
    measure("db-dump FORMAT=plain", lambda: check(kit.script("db_dump", "--format", "plain")),
            raw_dump("p"), clean_backups)

    check(kit.script("db_dump"))
    dump = next(p for p in (kit.root / "backups").iterdir() if p.suffix == ".dump")
    container = docker("ps", "-q", "--filter",
                       f"label=com.docker.compose.project={kit.token}").stdout.strip()

    def raw_restore():
        docker("cp", str(dump), f"{container}:/tmp/raw.dump")
        check(subprocess.run(["docker", "exec", container, "pg_restore", "-U", "sum_user",
                              "-d", "sum_db", "--clean", "--if-exists", "-j", "2",
                              "/tmp/raw.dump"], capture_output=True, text=True))

    def restore_cleanup():
        for p in (kit.root / "backups").glob("*pre-restore*"):
            p.unlink()

    measure("db-restore (custom)",
            lambda: check(kit.script("db_restore", "--file", str(dump), "--yes")), raw_restore,
            restore_cleanup)

    # Migration: the active volume becomes the source of an orphan, as after a rename.
    check(kit.script("db_down"))
    docker("volume", "create", source)
    docker("run", "--rm", "--network", "none", "--mount", f"type=volume,source={kit.volume},"
           "target=/from,readonly", "--mount", f"type=volume,source={source},target=/to",
           "--entrypoint", "cp", kit.image, "-a", "/from/.", "/to/")
    ids = docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={kit.token}"
                 ).stdout.split()
    docker("rm", "-f", *ids)
    docker("volume", "rm", kit.volume)
    raw_target = f"raw{kit.token}"
    made.append(raw_target)

    def raw_copy():
        docker("volume", "create", raw_target)
        docker("run", "--rm", "--network", "none", "--mount",
               f"type=volume,source={source},target=/from,readonly", "--mount",
               f"type=volume,source={raw_target},target=/to", "--entrypoint", "cp",
               kit.image, "-a", "/from/.", "/to/")

    def migrate_cleanup():
        ids = docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={kit.token}"
                     ).stdout.split()
        if ids:
            docker("rm", "-f", "-v", *ids)
        docker("volume", "rm", "-f", kit.volume, raw_target)

    measure("db-migrate-volume", lambda: check(kit.script("db_migrate_volume", "--yes")),
            raw_copy, migrate_cleanup)

    print(f"\nDatabase: {size / 1048576:.0f} MiB ({rows:,} rows); median of {args.repeat} runs; "
          f"{time.strftime('%Y-%m-%d')}\n")
    print("| operation | dbguard | raw command | ratio |")
    print("|---|---|---|---|")
    for label, k, r in results:
        print(f"| {label} | {k:.2f} s | {r:.2f} s | {k / r:.2f}x |")
    return 0




if __name__ == "__main__":
    sys.exit(main())
