"""Removes volumes (`docker volume rm`), waiting out another command's read-only look."""
from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence

from ..names import HELPER_LOOKS, LABEL_HELPER
from ..runner import Runner, command_failure


def remove_volumes(runner: Runner, names: Sequence[str], check: bool = True,
                   reads: bool = False, wait: float = 30.0) -> subprocess.CompletedProcess:
    """`docker volume rm`. Docker refuses a volume any container mounts, and a look of another
    dbguard command (db-find or db-info of another project, reading every volume for a
    second or two in a throwaway container labelled as a look, read-only) may mount it at that
    moment: while only looks hold what is left, it is tried again, for at most `wait` seconds.
    Any other holder is the answer at once."""
    names, deadline = list(names), time.monotonic() + wait
    while True:
        result = runner(["docker", "volume", "rm", *names], check=False, reads=reads)
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        left = set(runner(["docker", "volume", "ls", "-q"], reads=True).stdout.decode().split())
        names = [n for n in names if n in left]  # the others were removed
        if not names:
            result = subprocess.CompletedProcess(result.args, 0, b"", b"")
            break
        if not all(runner(
                ["docker", "ps", "-q", "--filter", f"volume={n}", "--filter",
                 f"label={LABEL_HELPER}={HELPER_LOOKS}"], reads=True).stdout.strip()
                for n in names):
            break
        time.sleep(0.5)
    if check and result.returncode != 0:
        raise command_failure(result.args, result.stderr, result.returncode)
    return result
