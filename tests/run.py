#!/usr/bin/env python3
"""The test command (`make test`): prepares the Docker tier, then runs every test with it
required. Builds the PostgreSQL test images (15, 17 and 18, at once) from Debian's packages
when their recipe changed (tests/testbed/build_image.sh), and fails, never skips, when Docker
cannot be reached.
Extra arguments go to pytest (`make test PYTEST_ARGS='-k migrate'`).

The tests run on DBGUARD_TEST_WORKERS pytest-xdist workers (3 by default; 1 runs them in this
one process). A test spends much of its time waiting on container starts and stops, so three
workers overlap those waits even on a 2-core machine, where the tier is bound by the CPU of
the engine, Compose and the kit. How long it takes depends on the machine more than on any
change of late: CI ran the whole of `.ci/run` (install, image builds and tests) of 9de4c0d in
530 s. On 2026-12-07 fresh-clone runs of that tree took 601-625 s on one 2-core machine, and
three of 67219fa and later took 1,019-1,033 s (925-935 s of tests) on another (an AMD EPYC),
where a container start cost twice the CPU (0.41 against 0.22 CPU-s,
`docker run --rm --network none`). The tier keeps both cores busy (95%), and four workers took
as long, with 8% more CPU. Each worker keeps to its
own volume key and port range, and the tests that need the incident report's fixed project
names share one worker."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    if subprocess.run(["docker", "info"], stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL).returncode != 0:
        print("ERROR: the Docker daemon cannot be reached, and the integration tier needs it. "
              "Start Docker and run `make test` again (`make test-unit` runs without it)",
              file=sys.stderr)
        return 1
    env = dict(os.environ, DBGUARD_REQUIRE_DOCKER="1")
    # The three builds run at once: each spends most of its time fetching packages one by one
    # from Debian's mirror, so together they take little longer than the slowest alone.
    builds = {major: subprocess.Popen(["bash", str(HERE / "testbed" / "build_image.sh"),
                                       str(major)], stdout=subprocess.PIPE, text=True)
              for major in (15, 17, 18)}
    failed = [major for major, build in builds.items() if build.wait() != 0]
    for major in failed:
        print(f"ERROR: building the PostgreSQL {major} test image failed (its output is "
              "above)", file=sys.stderr)
    if failed:
        return 1
    for major, build in builds.items():
        env["DBGUARD_TEST_IMAGE" + ("" if major == 15 else f"_{major}")] = \
            build.stdout.read().strip()
    workers = os.environ.get("DBGUARD_TEST_WORKERS", "3")
    if not workers.isdigit() or int(workers) < 1:
        print(f"ERROR: DBGUARD_TEST_WORKERS={workers!r} is not a number of workers (1 or more)",
              file=sys.stderr)
        return 2
    parallel = ["-n", workers, "--dist", "loadgroup"] if int(workers) > 1 else []
    code = subprocess.run([sys.executable, "-m", "pytest", str(HERE), "-ra", "--durations=15",
                           *parallel, *sys.argv[1:]], env=env).returncode
    return 1 if code == 5 else code  # 5: pytest collected no test, which is a failure here


if __name__ == "__main__":
    sys.exit(main())
