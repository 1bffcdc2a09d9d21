#!/usr/bin/env python3
"""The test command (`make test`): prepares the Docker tier, then runs every test with it
required. Builds the PostgreSQL test image from Debian's packages when its recipe changed
(tests/testbed/build_image.sh), and fails, never skips, when Docker cannot be reached.
Extra arguments go to pytest (`make test PYTEST_ARGS='-k migrate'`)."""
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
    build = subprocess.run(["bash", str(HERE / "testbed" / "build_image.sh")],
                           stdout=subprocess.PIPE, text=True)
    if build.returncode != 0:
        print("ERROR: building the PostgreSQL test image failed (its output is above)",
              file=sys.stderr)
        return 1
    env = dict(os.environ, DBGUARD_TEST_IMAGE=build.stdout.strip(), DBGUARD_REQUIRE_DOCKER="1")
    code = subprocess.run([sys.executable, "-m", "pytest", str(HERE), "-ra", "--durations=15",
                           *sys.argv[1:]], env=env).returncode
    return 1 if code == 5 else code  # 5: pytest collected no test, which is a failure here


if __name__ == "__main__":
    sys.exit(main())
