"""Taking a dump: pg_dump inside the database container, streamed to a hidden partial file under
the backup folder, read back while it is written, checksummed, and only then given its final
name. Writes new files; changes nothing in the database.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

from .backups import backup_path
from .dump_header import PLAIN_TRAILER
from .errors import Failure
from .files import StreamToFile
from .kit import Kit
from .messages import human_size, info
from .streams import streamed_file


def dump_command(kit: Kit, fmt: str, dbname: str, *extra: str) -> list[str]:
    """pg_dump runs inside the db container over its local socket, which the image trusts: no
    password on any command line. -T because a TTY would mangle a binary dump."""
    s = kit.settings
    return kit.compose.args("exec", "-T", kit.project.service, "pg_dump", "-U", s.db_user,
                            "-d", dbname, "--format", "c" if fmt == "custom" else "p", *extra)


def take_dump(kit: Kit, fmt: str, tag: str | None = None, dbname: str | None = None,
              extra: Sequence[str] = ()) -> Path:
    """pg_dump to a verified, checksummed, owner-only file under the backup folder."""
    dbname = dbname or kit.settings.db_name
    final = backup_path(kit.settings, fmt, tag, dbname)
    started = time.monotonic()
    # Custom: pg_restore reads the archive whole (TOC and every data block) as it is written,
    # so a short or damaged dump fails. Plain: pg_dump's completion trailer, written last.
    reader = None if fmt == "plain" else kit.compose.args(
        "exec", "-T", kit.project.service, "pg_restore", "-f", "/dev/null")
    with streamed_file(kit.runner, dump_command(kit, fmt, dbname, *extra), final,
                       f"dumping {dbname}", reader_argv=reader) as out:
        verify_fresh_dump(out, fmt)
    size = final.stat().st_size
    info(f"wrote {final} ({human_size(size)}, {time.monotonic() - started:.1f}s, "
         f"sha256 in {final.name}.sha256)")
    return final


def verify_fresh_dump(out: StreamToFile, fmt: str) -> None:
    if fmt == "plain" and PLAIN_TRAILER not in out.tail:
        raise Failure("the dump has no completion trailer (pg_dump stopped early)",
                      "Run it again; nothing was kept")
