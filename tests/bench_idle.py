#!/usr/bin/env python3
"""What a running kit costs when nobody uses it (`make bench-idle`, not part of `make test`):
the machine's busy CPU time over a quiet minute with the kit's database up, under the kit's
own compose file (a health check every 5 seconds) and under the same file with the check
every half second (the kit's file before 2026-12-07, and a common choice), each less the
same minute with no container running. Each check is a process started inside the
container (docker exec: runc, a shell, pg_isready, a server backend), all day long.

Writes the table into docs/performance.md between its `bench:idle` markers."""
from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import Meter, cleanup, new_kit  # noqa: E402
from harness import (ROOT, build_test_image, compose_v2_config, docker,  # noqa: E402
                     replace_section)

DOC = ROOT / "docs" / "performance.md"


def quiet_minute(seconds: float) -> float:
    """Busy CPU seconds of the whole machine over `seconds` of doing nothing."""
    start = Meter.busy()
    time.sleep(seconds)
    return Meter.busy() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60, help="length of each quiet spell")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    args = ap.parse_args()
    if docker("info", check=False).returncode != 0:
        print("ERROR: the Docker daemon cannot be reached. Start Docker and run again",
              file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a kill still cleans up
    image = build_test_image(15)
    work = Path(tempfile.mkdtemp(prefix="dbguard-bench-idle-"))
    config = compose_v2_config(work / "docker-config")
    kit = new_kit(work, image, config)
    rows = []
    try:
        baseline = quiet_minute(args.seconds)
        compose_file = kit.root / "docker-compose.yml"
        text = compose_file.read_text()
        interval = re.search(r"^\s+interval: (\S+)$", text, re.M).group(1)
        for label, body in ((f"the kit's compose file (every {interval})", text),
                            ("the same, checked every 500ms",
                             text.replace(f"interval: {interval}", "interval: 500ms"))):
            compose_file.write_text(body)
            kit.up()
            time.sleep(10)  # the server settles after its start
            busy = quiet_minute(args.seconds) - baseline
            rows.append((label, busy))
            kit.script("db_down")
    finally:
        cleanup(kit)
        subprocess.run(["rm", "-rf", str(work)])
    table = [f"Busy CPU over a quiet {args.seconds:.0f} s with the database up, less the "
             f"same time with nothing running ({baseline:.2f} s), on "
             f"{time.strftime('%Y-%m-%d')}:", "",
             "| health check | CPU seconds | share of one core |", "|---|---:|---:|"]
    table += [f"| {label} | {busy:.2f} | {100 * busy / args.seconds:.1f}% |"
              for label, busy in rows]
    section = "<!-- bench:idle -->\n" + "\n".join(table) + "\n<!-- /bench:idle -->\n"
    print(section)
    if not args.no_write:
        if not replace_section(DOC, "bench:idle", section):
            print("ERROR: docs/performance.md has no bench:idle markers", file=sys.stderr)
            return 1
        print(f"written to {DOC.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
