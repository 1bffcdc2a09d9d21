"""The walk of a custom archive that db-dump does while the dump streams in: real archives of
15, 17 (zlib and zstd) and 18 (tests/unit/data/pg*.dump: a table, an empty table and a large
object) pass in any split; every cut and damaged framing fails."""
import random
from pathlib import Path

import pytest

from dbguard.archive_walk import ArchiveWalk, BadArchive

DATA = Path(__file__).parent / "data"
ARCHIVES = ["pg15.dump", "pg17.dump", "pg17-zstd.dump", "pg18.dump", "tiny.dump"]


def walk(data: bytes, seed: int = 0) -> ArchiveWalk:
    rnd, w, i = random.Random(seed), ArchiveWalk(), 0
    while i < len(data):
        n = rnd.choice([1, 3, 17, 512, 4096, 70000])
        w.feed(data[i:i + n])
        i += n
    w.finish()
    return w


@pytest.mark.parametrize("name", ARCHIVES)
def test_a_whole_archive_passes_in_any_split_and_every_data_entry_is_seen(name):
    data = (DATA / name).read_bytes()
    for seed in range(5):
        w = walk(data, seed)
        assert w.supported and w.expected == w.seen
    if name != "tiny.dump":
        assert len(w.expected) == 3, "pages, empty and the large objects each have a block"


@pytest.mark.parametrize("name", ARCHIVES)
def test_every_cut_fails(name):
    data = (DATA / name).read_bytes()
    for cut in range(0, len(data), max(1, len(data) // 150)):
        with pytest.raises(BadArchive):
            walk(data[:cut])
    with pytest.raises(BadArchive):
        walk(data[:-1])


@pytest.mark.parametrize("name", ["pg15.dump", "pg18.dump"])
def test_damaged_framing_and_extra_bytes_fail(name):
    data = (DATA / name).read_bytes()
    with pytest.raises(BadArchive, match="ends inside a data block"):
        walk(data + b"\x00")
    with pytest.raises(BadArchive, match="does not begin with PGDMP"):
        walk(b"PGDMX" + data[5:])
    # The first data block: its type byte and dump id sit right after the table of contents.
    first_block = walk(data).toc_end
    assert data[first_block] in (1, 3), "a data or large-object block begins there"
    for damage, message in ((b"\x07", "unknown type 7"), (b"\x02", "unknown type 2")):
        broken = data[:first_block] + damage + data[first_block + 1:]
        with pytest.raises(BadArchive, match=message):
            walk(broken)
    wrong_id = bytearray(data)
    wrong_id[first_block + 2] ^= 0x40  # the dump id's low byte
    with pytest.raises(BadArchive):
        walk(bytes(wrong_id))


def test_an_unknown_archive_version_is_left_to_pg_restore():
    data = bytearray((DATA / "pg15.dump").read_bytes())
    data[6] = 99  # archive version 1.99
    w = walk(bytes(data))
    assert not w.supported, "db-dump reads such an archive back with pg_restore instead"
