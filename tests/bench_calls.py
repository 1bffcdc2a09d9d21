#!/usr/bin/env python3
"""What the everyday commands cost (`make bench-calls`, not part of `make test`): wall time and
the machine's busy CPU (every process: the kit, the docker CLI, the engine, Compose, the helper
containers, the server) of db-info, db-up on a running database and db-dump, beside what a
user types instead to learn or do the same by hand, run alternately in one session on one
server with fsync on (as users run it).

The by-hand lines, in the kit's folder, for the same project:
- db-info:  `docker compose ps`, `docker volume ls`, and `\\l+` through `docker compose exec`
  psql (which volume is live, what else is there, which databases the server holds);
- db-up:    `docker compose up -d --wait` (Compose's own start-and-wait);
- db-dump:  `docker compose exec -T db pg_dump -Fc` into a file.
db-info also looks inside the volumes for clusters and marks, and asks the server about tables,
snapshots and collation versions, which the lines above do not.

One more row weighs a choice rather than a command: a volume's tar (100 MiB) streamed out of a
throwaway container exactly as the kit's snapshot takes it (`--log-driver none`), beside the
same `docker run` with Docker's default log driver, the way a volume backup is usually typed.

Writes the table into docs/performance.md between its `bench:calls` markers."""
from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import Meter, cleanup, new_kit  # noqa: E402
from harness import (ROOT, build_test_image, compose_v2_config, docker,  # noqa: E402
                     replace_section)
sys.path.insert(0, str(ROOT / "scripts"))
from dbguard.docker import NO_LOG, helper_args, inspect_image  # noqa: E402
from dbguard.runner import Runner  # noqa: E402
from dbguard.snapshots import TAR_SCRIPT  # noqa: E402

DOC = ROOT / "docs" / "performance.md"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7, help="runs of each command (median)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    args = ap.parse_args()
    if docker("info", check=False).returncode != 0:
        print("ERROR: the Docker daemon cannot be reached. Start Docker and run again",
              file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a kill still cleans up
    image = build_test_image(15)
    work = Path(tempfile.mkdtemp(prefix="dbguard-bench-calls-"))
    config = compose_v2_config(work / "docker-config")
    kit = new_kit(work, image, config)
    compose_file = kit.root / "docker-compose.yml"  # fsync on, as users run it
    compose_file.write_text(compose_file.read_text().replace(
        "      POSTGRES_DB:", '      DBGUARD_TEST_DURABLE: "1"\n      POSTGRES_DB:', 1))
    env = kit.process_env()

    def raw(*argvs: list[str], out: Path | None = None):
        def run():
            for argv in argvs:
                with open(out or "/dev/null", "wb") as sink:
                    r = subprocess.run(argv, cwd=kit.root, env=env, stdout=sink,
                                       stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
                assert r.returncode == 0, r.stderr.decode()
        return run

    def script(name: str):
        def run():
            r = kit.script(name)
            assert r.returncode == 0, r.stderr
        return run

    dc = ["docker", "compose"]
    psql = [*dc, "exec", "-T", "db", "psql", "-U", "sum_user", "-d", "sum_db", "-c", r"\l+"]
    tar_volume = f"{kit.token}-tar"
    snapshot = helper_args(inspect_image(Runner(kit.root), image),
                           [("volume", tar_volume, "/v", True)], TAR_SCRIPT)
    at = snapshot.index(NO_LOG[0])
    logged = snapshot[:at] + snapshot[at + len(NO_LOG):]
    pairs = [
        ("a volume's tar, 100 MiB: no log (the kit's) vs Docker's default log driver",
         raw(snapshot, out=work / "tar"), raw(logged, out=work / "tar")),
        ("db-info", script("db_info"),
         raw([*dc, "ps"], ["docker", "volume", "ls"], psql)),
        ("db-up (already running)", script("db_up"), raw([*dc, "up", "-d", "--wait"])),
        ("db-dump (10,000 rows)", script("db_dump"),
         raw([*dc, "exec", "-T", "db", "pg_dump", "-U", "sum_user", "-d", "sum_db", "-Fc"],
             out=work / "by-hand.dump")),
    ]
    rows = []
    try:
        kit.up()
        kit.seed_rows(10000)
        docker("run", "--rm", "--network", "none", "--mount", f"source={tar_volume},target=/v",
               "--entrypoint", "/bin/sh", image, "-c", "head -c 104857600 /dev/urandom > /v/data")
        meter = Meter()
        for label, mine, theirs in pairs:
            samples = {"kit": [], "raw": []}
            for _ in range(args.rounds):
                samples["kit"].append(meter.measure(mine))
                samples["raw"].append(meter.measure(theirs))
            median = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
                      for k, v in samples.items()}
            rows.append((label, *median["kit"], *median["raw"]))
    finally:
        cleanup(kit)
        docker("volume", "rm", "-f", tar_volume, check=False)
        subprocess.run(["rm", "-rf", str(work)])
    table = [f"Medians of {args.rounds} alternating runs on one PostgreSQL 15 server (fsync on), "
             f"on {__import__('time').strftime('%Y-%m-%d')}; CPU is the whole machine's busy "
             "time less its idle rate:", "",
             "| command | kit wall | kit CPU | by hand wall | by hand CPU | CPU ratio |",
             "|---|---:|---:|---:|---:|---:|"]
    table += [f"| {label} | {kw:.2f} s | {kc:.2f} s | {rw:.2f} s | {rc:.2f} s | "
              f"{kc / rc if rc else float('nan'):.1f}x |"
              for label, kw, kc, rw, rc in rows]
    section = "<!-- bench:calls -->\n" + "\n".join(table) + "\n<!-- /bench:calls -->\n"
    print(section)
    if not args.no_write:
        if not replace_section(DOC, "bench:calls", section):
            print("ERROR: docs/performance.md has no bench:calls markers", file=sys.stderr)
            return 1
        print(f"written to {DOC.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
