"""What a dump file says of itself, without a server: pg_dump's custom archive header (parsed as
pg_restore does) or a plain SQL dump's opening comment, and the trailer a whole plain dump ends
with.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import Refusal

PLAIN_TRAILER = b"-- PostgreSQL database dump complete"


@dataclass(frozen=True)
class DumpFacts:
    """What a dump file says of itself, read from its header (no server needed)."""

    format: str
    dbname: str | None
    server_version: str | None
    pg_dump_version: str | None

    @property
    def pg_dump_major(self) -> int | None:
        match = re.match(r"^(\d+)", self.pg_dump_version or "")
        return int(match.group(1)) if match else None


def read_dump_header(path: Path) -> DumpFacts:
    """Recognises pg_dump's custom archive (by its PGDMP header, parsed as pg_restore does) and
    plain SQL dumps (by their opening comment). Anything else raises Refusal."""
    with open(path, "rb") as handle:
        head = handle.read(8192)
    if head.startswith(b"PGDMP"):
        return _custom_header(head, path)
    text = head.decode("utf-8", errors="replace")
    if text.startswith("--\n-- PostgreSQL database dump"):
        server = re.search(r"^-- Dumped from database version (\S+)", text, re.M)
        dumper = re.search(r"^-- Dumped by pg_dump version (\S+)", text, re.M)
        return DumpFacts("plain", None, server and server[1], dumper and dumper[1])
    raise Refusal(f"{path} is not a PostgreSQL dump (neither pg_dump's custom format nor plain "
                  "SQL)", "Pick a file made by `make db-dump` (`make db-backups` lists them); "
                  "nothing was changed")


def _custom_header(head: bytes, path: Path) -> DumpFacts:
    bad = Refusal(f"{path} has a damaged pg_dump header",
                  "Pick another backup (`make db-backups`); nothing was changed")
    pos = 5

    def byte() -> int:
        nonlocal pos
        if pos >= len(head):
            raise bad
        pos += 1
        return head[pos - 1]

    vmaj, vmin = byte(), byte()
    vrev = byte() if (vmaj, vmin) > (1, 0) else 0
    version = (vmaj, vmin, vrev)
    int_size = byte()
    if not 1 <= int_size <= 8:
        raise bad
    if version >= (1, 7, 0):
        byte()  # offset size

    def integer() -> int:
        sign = byte()
        value = 0
        for shift in range(int_size):
            value |= byte() << (8 * shift)
        return -value if sign else value

    def string() -> str | None:
        length = integer()
        nonlocal pos
        if length < 0:
            return None
        if length > 1024 or pos + length > len(head):
            raise bad
        pos += length
        return head[pos - length:pos].decode("utf-8", errors="replace")

    if byte() != 1:  # archCustom
        raise bad
    if version >= (1, 15, 0):
        byte()
    elif version >= (1, 4, 0):
        integer()
    if version >= (1, 4, 0):
        for _ in range(7):
            integer()
        dbname = string()
    else:
        dbname = None
    server = dumper = None
    if version >= (1, 10, 0):
        server, dumper = string(), string()
    return DumpFacts("custom", dbname, server, dumper)
