"""Running docker and docker compose: argument lists only, never a shell. Every subprocess of the
kit goes through a Runner, which shows commands with -v, turns a missing program or an
unreachable daemon into one error, and enforces the dry run: a call that is not marked as
reading only (`reads=True`) is a change, and a change in a dry run is refused as the bug it is.
Throwaway containers count as changes unless their caller marks them read-only.
"""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from collections.abc import Sequence

from .errors import Failure

DAEMON_DOWN = ("Cannot connect to the Docker daemon", "error during connect",
               "Is the docker daemon running", "connect: no such file or directory",
               "connection refused")


class DryRunViolation(AssertionError):
    """A call that changes something reached the runner during a dry run. Never expected: it
    is a bug of the kit, so it keeps its traceback (and changed nothing)."""


def daemon_failure() -> Failure:
    where = (os.environ.get("DOCKER_HOST") or os.environ.get("DOCKER_CONTEXT")
             or "the default socket")
    return Failure(f"cannot reach the Docker daemon ({where})",
                   "Start Docker (or fix DOCKER_HOST / DOCKER_CONTEXT) and run again; "
                   "`docker info` shows what is wrong")


def shown_argument(arg: str) -> str:
    """A script passed to a helper container or to psql is shown by its name, which its first
    line gives as a comment (`# copy`, `-- swap`), not as dozens of lines."""
    if "\n" not in arg:
        return arg
    first = arg.lstrip("\n").split("\n", 1)[0]
    name = first[2:].strip() if first.startswith(("# ", "--")) else "script"
    return f"<{name.lstrip('- ')} script>"


class Runner:
    """Runs argument lists (never a shell). -v prints each command; in a dry run only calls
    marked `reads=True` run, and any other call raises DryRunViolation."""

    def __init__(self, cwd: Path, verbose: bool = False, dry_run: bool = False):
        self.cwd, self.verbose, self.dry_run = cwd, verbose, dry_run
        self.calls = 0

    def show(self, args: Sequence[str], prefix: str = "+") -> None:
        print(f"{prefix} {shlex.join(shown_argument(a) for a in args)}", file=sys.stderr,
              flush=True)

    def guard(self, args: Sequence[str], reads: bool) -> None:
        if self.dry_run and not reads:
            raise DryRunViolation(f"a changing call in a dry run: {shlex.join(args)}")

    def __call__(self, args: Sequence[str], *, reads: bool = False, check: bool = True,
                 stdin_file=None, input: bytes | None = None, stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE, env: dict | None = None
                 ) -> subprocess.CompletedProcess:
        args = list(args)
        self.guard(args, reads)
        if self.verbose:
            self.show(args)
        self.calls += 1
        if input is not None:
            stdin = subprocess.PIPE
        else:
            stdin = stdin_file if stdin_file is not None else subprocess.DEVNULL
        result = self.execute(args, stdin, stdout, stderr, input, env)
        if check and result.returncode != 0:
            raise command_failure(args, result.stderr, result.returncode)
        return result

    def popen(self, args: Sequence[str], *, reads: bool = False, **kwargs) -> subprocess.Popen:
        """For streams (dumps, copies); the caller owns the process."""
        args = list(args)
        self.guard(args, reads)
        if self.verbose:
            self.show(args)
        self.calls += 1
        kwargs.setdefault("cwd", self.cwd)
        return self.spawn(args, **kwargs)

    # The two places a process is really started (a test runner replaces just these).

    def execute(self, args: list[str], stdin, stdout, stderr, input: bytes | None = None,
                env: dict | None = None) -> subprocess.CompletedProcess:
        proc = self.spawn(args, cwd=self.cwd, stdin=stdin, stdout=stdout, stderr=stderr,
                          **({"env": env} if env is not None else {}))
        try:
            out, err = proc.communicate(input)
        except BaseException:  # Ctrl-C, or a signal turned into one: nothing of ours goes on
            kill_tree(proc)
            raise
        return subprocess.CompletedProcess(args, proc.returncode, out, err)

    def spawn(self, args: list[str], **kwargs) -> subprocess.Popen:
        """Every command in a process group of its own: `docker compose` runs Compose as a
        child of the docker CLI, and killing the CLI alone would leave Compose (and the
        pg_dump it attached to) running, holding our pipes open. kill_tree ends the group."""
        try:
            return subprocess.Popen(args, start_new_session=True, **kwargs)
        except FileNotFoundError:
            raise not_installed(args[0]) from None


def kill_tree(proc: subprocess.Popen) -> None:
    """Kills a command the runner started, with every process it started (its group)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def not_installed(program: str) -> Failure:
    return Failure(f"{program} is not installed (or not on PATH)",
                   "Install Docker (with Compose) and run again")


def command_failure(args: Sequence[str], stderr: bytes | str | None,
                    returncode: int | None = None) -> Failure:
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else (stderr or "")
    if any(s in text for s in DAEMON_DOWN):
        return daemon_failure()
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else "no error output" + (
        "; exit code 137: its container was killed (`docker rm -f`, `docker kill` or the "
        "out-of-memory killer)" if returncode == 137 else
        f"; exit code {returncode}" if returncode is not None else "")
    words = args[:3] if args[:2] == ["docker", "compose"] else args[:2]
    return Failure(f"`{' '.join(words)}` failed: {last}",
                   "Run again with -v (V=1) to see every command")
