"""Walking a pg_dump custom archive as it streams past, the way pg_restore reads one: the header,
every entry of the table of contents, then one data block for each entry that has data, chunk
by chunk, to the last byte. A short, cut or garbled stream fails the walk; the contents of the
compressed chunks are left to zlib or zstd at restore time. Costs a few parsed integers per
chunk, where reading the archive back through pg_restore costs a second stream and a
decompression of everything. Reads only.
"""
from __future__ import annotations

# Archive versions walked here, each checked against real archives (tests/unit/data): 1.14
# (PostgreSQL 12 to 15) and 1.16 (17, 18). Any other is read back whole by pg_restore.
KNOWN = ((1, 14, 0), (1, 16, 0))
BLK_DATA, BLK_BLOBS = 1, 3
POS_NOT_SET, POS_SET, NO_DATA = 1, 2, 3


class BadArchive(Exception):
    """The stream is not a whole custom archive; the message says where it broke."""


class NeedMore(Exception):
    pass


class ArchiveWalk:
    """feed() every byte of a custom archive in order, then finish(). `supported` is False for
    an archive version this walk does not know (the caller reads it back another way)."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.pos = 0
        self.stage = "toc"
        self.supported = True
        self.int_size = 4
        self.expected: set[int] = set()
        self.seen: set[int] = set()
        self.skip = 0          # payload bytes of the current chunk still to pass
        self.state = "block"   # block, chunks, lo
        self.in_lo = False
        self.block = 0
        self.tried_at = 0
        self.error: BadArchive | None = None
        self.toc_end = 0

    # -- reading from the buffer (NeedMore when it does not hold enough yet)

    def _byte(self) -> int:
        if self.pos >= len(self.buf):
            raise NeedMore
        self.pos += 1
        return self.buf[self.pos - 1]

    def _int(self) -> int:
        end = self.pos + 1 + self.int_size
        if end > len(self.buf):
            raise NeedMore
        sign = self.buf[self.pos]
        value = int.from_bytes(self.buf[self.pos + 1:end], "little")
        self.pos = end
        return -value if sign else value

    def _str(self) -> bytes | None:
        length = self._int()
        if length < 0:
            return None
        if self.pos + length > len(self.buf):
            raise NeedMore
        self.pos += length
        return bytes(self.buf[self.pos - length:self.pos])

    # -- the stream

    def feed(self, chunk: bytes) -> None:
        """Never raises: what is wrong is kept for finish() to say."""
        view = memoryview(chunk)
        try:
            for start in range(0, len(view), 1 << 16):  # small pieces keep the buffer small
                self._feed(view[start:start + (1 << 16)])
        except BadArchive as exc:
            self.error = exc

    def _feed(self, view: memoryview) -> None:
        if not self.supported or self.error:
            return
        if self.skip:
            passed = min(self.skip, len(view))
            self.skip -= passed
            view = view[passed:]
            if not view:
                return
        self.buf += view
        if self.stage == "toc":
            # The head and table of contents are parsed whole, again each time the buffer has
            # doubled (linear in all), since an entry can end anywhere.
            if len(self.buf) < 2 * self.tried_at:
                return
            self.tried_at = len(self.buf)
            self.pos = 0
            try:
                self._head_and_toc()
            except NeedMore:
                return
            self.stage = "blocks"
        self._blocks()

    def _head_and_toc(self) -> None:
        if bytes(self.buf[:5]) != b"PGDMP" and len(self.buf) >= 5:
            raise BadArchive("it does not begin with PGDMP")
        self.pos = 5
        version = (self._byte(), self._byte(), self._byte())
        if version not in KNOWN:
            self.supported = False
            raise NeedMore
        self.int_size = self._byte()
        offset_size = self._byte()
        if not 1 <= self.int_size <= 8 or not 1 <= offset_size <= 8:
            raise BadArchive("its header is damaged")
        if self._byte() != 1:
            raise BadArchive("it is not in the custom format")
        if version >= (1, 15, 0):
            self._byte()  # compression algorithm
        else:
            self._int()  # compression level
        for _ in range(7):
            self._int()  # the time it was made
        for _ in range(3):
            self._str()  # database, server version, pg_dump version
        count = self._int()
        if count < 0:
            raise BadArchive("its table of contents is damaged")
        for _ in range(count):
            dump_id = self._int()
            if dump_id <= 0:
                raise BadArchive("a table of contents entry is damaged")
            self._int()  # had a dumper
            for _ in range(4):
                self._str()  # table oid, oid, tag, description
            self._int()  # section
            for _ in range(6 if version >= (1, 14, 0) else 5):
                self._str()  # definition, drop, copy, namespace, tablespace[, table am]
            if version >= (1, 16, 0):
                self._int()  # relkind
            self._str()  # owner
            self._str()  # "with oids"
            while self._str() is not None:
                pass  # dependencies
            flag = self._byte()
            self.pos += offset_size
            if self.pos > len(self.buf):
                raise NeedMore
            if flag not in (POS_NOT_SET, POS_SET, NO_DATA):
                raise BadArchive("a data offset flag is damaged")
            if flag != NO_DATA:
                self.expected.add(dump_id)
        self.toc_end = self.pos  # where the data blocks begin
        del self.buf[:self.pos]
        self.pos = 0

    def _blocks(self) -> None:
        buf = self.buf
        while True:
            start = self.pos
            try:
                if self.state == "block":
                    kind = self._byte()
                    self.block = self._int()
                    if kind not in (BLK_DATA, BLK_BLOBS):
                        raise BadArchive(f"a data block has the unknown type {kind}")
                    if self.block not in self.expected or self.block in self.seen:
                        raise BadArchive(f"a data block belongs to no entry ({self.block})")
                    self.seen.add(self.block)
                    self.state = "lo" if kind == BLK_BLOBS else "chunks"
                    self.in_lo = kind == BLK_BLOBS
                elif self.state == "lo":
                    oid = self._int()
                    self.state = "block" if oid == 0 else "chunks"
                else:
                    length = self._int()
                    if length < 0:
                        raise BadArchive("a data chunk has a negative length")
                    if length == 0:
                        self.state = "lo" if self.in_lo else "block"
                    else:
                        have = len(buf) - self.pos
                        if length > have:
                            self.skip = length - have
                            self.pos = len(buf)
                        else:
                            self.pos += length
            except NeedMore:
                self.pos = start
                break
            if self.skip:
                break
        del buf[:self.pos]
        self.pos = 0

    def finish(self) -> None:
        """Raises BadArchive unless the stream ended exactly after the last data block."""
        if self.error:
            raise self.error
        if not self.supported:
            return
        if self.stage == "toc":
            self.tried_at = 0
            self.pos = 0
            try:
                self._head_and_toc()
            except NeedMore:
                if self.supported:
                    raise BadArchive("it ends inside its table of contents") from None
                return
            self.stage = "blocks"
            self._blocks()
        if self.skip or self.buf or self.state != "block":
            raise BadArchive("it ends inside a data block")
        missing = self.expected - self.seen
        if missing:
            raise BadArchive(f"{len(missing)} table(s) of contents entries have no data block")
