"""A command's output streamed into a file that counts only once it is whole: the output goes to
a hidden `.partial` file (hashed on the way, optionally walked by a structure check at the same
time), and the caller checks it before it is renamed to its final name.
"""
from __future__ import annotations

import contextlib
import subprocess
import threading
from pathlib import Path
from collections.abc import Iterator

from .errors import Failure
from .files import StreamToFile
from .messages import Progress
from .runner import Runner, command_failure, kill_tree


def drain(stream, into: list[bytes]) -> threading.Thread:
    """Reads a stream to its end in a thread (join it), so a process never blocks on it."""
    thread = threading.Thread(target=lambda: into.append(stream.read()), daemon=True)
    thread.start()
    return thread


@contextlib.contextmanager
def streamed_file(runner: Runner, argv: list[str], final: Path, label: str, *,
                  mode: int = 0o600, checksum: bool = True, walk=None,
                  env: dict | None = None) -> Iterator[StreamToFile]:
    """Runs argv and streams its stdout into `final`'s partial file. The with-block gets the
    written (not yet committed) file once the command succeeded, to check it; raising there
    discards it, and leaving the block commits it (fsync, checksum, rename). With `walk`,
    every byte is also fed to it as it arrives (see archive_walk), for the block to check."""
    procs: list[subprocess.Popen] = []
    out = None
    runner.guard(argv, reads=False)  # it writes a file: never in a dry run
    try:
        out = StreamToFile(final, mode)
        proc = runner.popen(argv, reads=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **({"env": env} if env else {}))
        procs.append(proc)
        errors: list[bytes] = []
        threads = [drain(proc.stderr, errors)]
        out.walk = walk
        progress = Progress(label)
        try:
            out.pump(proc.stdout, progress)
        except BaseException:
            # First end the writers: waiting for a command blocked on a full pipe that nobody
            # reads any more (the disk filled up, say) would wait forever.
            _kill(procs)
            raise
        finally:
            progress.close()
            code = proc.wait()
            for thread in threads:
                thread.join()
        if code != 0:
            raise command_failure(argv, b"".join(errors))
        yield out
        out.commit(checksum=checksum)
    except OSError as exc:  # writing the file failed: a full disk, a folder gone read-only
        _kill(procs)
        if out:
            out.discard()
        raise Failure(f"writing {final} failed ({exc.strerror or exc})",
                      f"Nothing was kept; free space in {final.parent} (or fix its "
                      "permissions) and run again") from None
    except BaseException:
        _kill(procs)
        if out:
            out.discard()
        raise


def _kill(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        kill_tree(p)
