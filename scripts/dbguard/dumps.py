"""Taking a dump: pg_dump inside the database container, streamed to a hidden partial file under
the backup folder, its structure walked while it is written, checksummed, and only then given
its final name. Writes new files; changes nothing in the database.
"""
from __future__ import annotations

import time
from pathlib import Path
from collections.abc import Sequence

from .archive_walk import ArchiveWalk, BadArchive
from .backups import backup_path
from .dump_header import PLAIN_TRAILER
from .errors import Failure
from .files import StreamToFile
from .kit import Kit
from .messages import human_size, info, timing, warning
from .server import Server
from .streams import streamed_file


def dump_command(server: Server, fmt: str, dbname: str, *extra: str) -> list[str]:
    """pg_dump runs inside the db container over its local socket, which the image trusts: no
    password on any command line (and `docker exec` without -t: a TTY would mangle a binary
    dump)."""
    options, _ = server.exec_options(reads=True)
    return ["docker", "exec", *options, server.container, "pg_dump", "-U", server.user,
            "-d", dbname, "--format", "c" if fmt == "custom" else "p", *extra]


def compression(kit: Kit) -> str:
    """pg_dump's -Z for a custom dump: the setting, or the fastest that keeps the file small
    by what the image's pg_dump can do. From 16, zstd level 1 (about as fast as no compression
    and a third of the bytes through the `compose exec` stream); before, zlib level 1 (about
    2.5x faster than pg_dump's default level 6 for a few per cent more bytes)."""
    chosen = kit.settings.dump_compression
    major = kit.image.pg_major
    if chosen == "auto":
        return "zstd:1" if major and major >= 16 else "1"
    if major and major < 16 and not chosen.isdigit():
        # pg_dump before 16 takes only a zlib level; it would fail with its own message.
        raise Failure(f"DBGUARD_DUMP_COMPRESSION={chosen} needs pg_dump 16 or later; the "
                      f"image {kit.image.ref} has PostgreSQL {major}",
                      "Set a zlib level 0-9 (or auto) in .env; nothing was written")
    return chosen


def take_dump(kit: Kit, server: Server, fmt: str, tag: str | None = None,
              dbname: str | None = None, extra: Sequence[str] = ()) -> Path:
    """pg_dump to a verified, checksummed, owner-only file under the backup folder. A custom
    dump is compressed as `compression` says; a pg_dump built without zstd gets zlib."""
    if fmt == "custom" and not any(a.startswith("-Z") for a in extra):
        level = compression(kit)
        try:
            return _take_dump(kit, server, fmt, tag, dbname, ("-Z", level, *extra))
        except Failure as exc:
            if "does not support compression" not in exc.message or \
                    kit.settings.dump_compression != "auto":
                raise
            warning(f"this pg_dump cannot compress with {level}; using zlib level 1")
            return _take_dump(kit, server, fmt, tag, dbname, ("-Z", "1", *extra))
    return _take_dump(kit, server, fmt, tag, dbname, extra)


def _take_dump(kit: Kit, server: Server, fmt: str, tag: str | None, dbname: str | None,
               extra: Sequence[str]) -> Path:
    dbname = dbname or kit.db
    final = backup_path(kit.settings, fmt, tag, dbname)
    started = time.monotonic()
    # Custom: the archive's structure is walked as it streams past (every block of every table
    # the table of contents names, to the last byte), so a short or damaged dump fails.
    # Plain: pg_dump's completion trailer, written last.
    walk = ArchiveWalk() if fmt == "custom" else None
    _, env = server.exec_options(reads=True)
    with timing("dump"), streamed_file(kit.runner, dump_command(server, fmt, dbname, *extra),
                                       final, f"dumping {dbname}", walk=walk, env=env) as out:
        verify_fresh_dump(kit, server, out, fmt)
    size = final.stat().st_size
    info(f"wrote {final} ({human_size(size)}, {time.monotonic() - started:.1f}s, "
         f"sha256 in {final.name}.sha256)")
    return final


def verify_fresh_dump(kit: Kit, server: Server, out: StreamToFile, fmt: str) -> None:
    if fmt == "plain":
        if PLAIN_TRAILER not in out.tail:
            raise Failure("the dump has no completion trailer (pg_dump stopped early)",
                          "Run it again; nothing was kept")
        return
    try:
        out.walk.finish()
    except BadArchive as exc:
        raise Failure(f"the dump is not a whole archive: {exc}",
                      "Run it again; nothing was kept") from None
    if not out.walk.supported:
        # An archive version newer than the walk knows: pg_restore reads the file whole.
        with open(out.partial, "rb") as handle:
            result = kit.runner(["docker", "exec", "-i", server.container, "pg_restore", "-f",
                                 "/dev/null"], stdin_file=handle, check=False, reads=True)
        if result.returncode != 0:
            last = (result.stderr or b"").decode(errors="replace").strip().splitlines()
            raise Failure(f"the dump does not read back whole ({last[-1] if last else ''})",
                          "Run it again; nothing was kept")
