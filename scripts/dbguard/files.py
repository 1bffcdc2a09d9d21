"""Files on the host written so that a crash never leaves a half-written file under a trusted
name: owner-only folders, writes through a hidden `.partial` file renamed only when whole and
synced, sha256 checksums beside them, and a dated copy of a file before it is replaced.
"""
from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path

from .errors import Failure
from .messages import Progress


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    import hashlib  # here: OpenSSL's start-up is a few ms that most commands do not need

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_checksum(path: Path, digest: str) -> Path:
    """`<file>.sha256` in sha256sum's format, written atomically beside the file."""
    target = path.with_name(path.name + ".sha256")
    tmp = path.with_name(f".{target.name}.partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"{digest}  {path.name}\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, target)
    return target


def read_checksum(path: Path) -> str | None:
    sha = path.with_name(path.name + ".sha256")
    try:
        first = sha.read_text().split()
    except OSError:
        return None
    return first[0] if first and re.fullmatch(r"[0-9a-f]{64}", first[0]) else ""


def private_dir(path: Path) -> Path:
    """The folder, created owner-only when it is missing. One that exists keeps its mode: it
    may be shared (a 1777 /tmp), and it is not the kit's to change. It must be writable."""
    try:
        if not path.is_dir():
            path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):  # made meanwhile: then it is not ours
                path.mkdir(mode=0o700)
                os.chmod(path, 0o700)  # whatever the umask says
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(13, "not writable")
    except OSError as exc:
        raise folder_failure(path, exc) from None
    return path


def folder_failure(path: Path, exc: OSError) -> Failure:
    why = "a file stands where a folder should be" \
        if isinstance(exc, (FileExistsError, NotADirectoryError)) else exc.strerror or str(exc)
    return Failure(f"cannot write in {path} ({why})",
                   "Make it writable, or point DBGUARD_BACKUP_DIR in .env elsewhere; nothing "
                   "was changed")


class StreamToFile:
    """Streams a process's stdout into `<dir>/.<name>.partial` (owner-only), hashing as it
    goes; `commit()` flushes it to disk and renames it to its final name. Anything that goes
    wrong before `commit()` removes the partial file, and a killed process leaves only the
    hidden .partial, which nothing takes for a backup."""

    def __init__(self, final: Path, mode: int = 0o600):
        self.final = final
        self.partial = final.with_name(f".{final.name}.partial")
        self.fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        import hashlib

        self.digest = hashlib.sha256()
        self.walk = None  # what checks the stream's structure as it passes (archive_walk)
        self.size = 0
        self.head = b""
        self.tail = b""

    def write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
        self.digest.update(chunk)
        if self.walk is not None:
            self.walk.feed(chunk)
        self.size += len(chunk)
        if len(self.head) < 4096:
            self.head += chunk[:4096 - len(self.head)]
        self.tail = (self.tail + chunk)[-4096:]

    def pump(self, stream, progress: Progress | None = None) -> None:
        """Copies the stream in whatever pieces the pipe holds (read1), so the writer is never
        left waiting on a full pipe while a large piece fills."""
        for chunk in iter(lambda: stream.read1(1 << 20), b""):
            self.write(chunk)
            if progress:
                progress.update(self.size)

    def commit(self, checksum: bool = True) -> Path:
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = -1
        if checksum:
            write_checksum(self.final, self.digest.hexdigest())
        os.rename(self.partial, self.final)
        fsync_dir(self.final.parent)
        return self.final

    def discard(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        with contextlib.suppress(FileNotFoundError):
            self.partial.unlink()


def atomic_write(path: Path, data: bytes) -> None:
    """Replaces a file (a user's compose file, say) so that a crash leaves either the old one
    or the new one, never half of either: written beside it, synced, renamed over it, with
    the old file's mode."""
    tmp = path.with_name(f".{path.name}.dbguard-tmp")
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def keep_copy(path: Path, folder: Path) -> Path:
    """Copies `path` into `folder` (owner-only) under a dated name, before it is replaced."""
    kept = private_dir(folder) / f"{path.stem}_{time.strftime('%Y%m%d_%H%M%S')}{path.suffix}"
    import shutil  # here: it is slow to import, and few commands copy a file

    shutil.copy2(path, kept)
    os.chmod(kept, 0o600)
    return kept
