"""What db-upgrade leaves out of the cluster dump it loads: the new server's own superuser's
CREATE ROLE and the internal pg_attver column option, among the statements only; the rows of a
COPY pass untouched, even a row that reads exactly like a left-out statement, at any block
size (the end marker may straddle two blocks)."""
import random

import pytest

from dbguard import upgrade


@pytest.mark.parametrize("block", [1, 3, 7, 1000, 1 << 20])
def test_statements_are_filtered_and_rows_pass_untouched(tmp_path, monkeypatch, block):
    rng = random.Random(block)
    rows = b"".join(b"%d\tCREATE ROLE sum_user;\n" % i if i % 7 == 0 else
                    b"%d\tx%s\n" % (i, b"y" * rng.randint(0, 300)) for i in range(3000))
    dump = (b"SET x;\nCREATE ROLE sum_user;\nALTER ROLE sum_user WITH SUPERUSER;\n"
            b"COPY public.t (a, b) FROM stdin;\n" + rows + b"\\.\n\n"
            b"COPY public.empty (a) FROM stdin;\n\\.\n"
            b"ALTER TABLE ONLY public.t ALTER COLUMN a SET (pg_attver=1);\n"
            b"CREATE INDEX i ON t (a);\n")
    path = tmp_path / "cluster.sql"
    path.write_bytes(dump)
    monkeypatch.setattr(upgrade, "BLOCK", block)
    with open(path, "rb") as handle:
        out = b"".join(upgrade.filtered(handle, {b"CREATE ROLE sum_user;"}))
    assert out == dump.replace(b"SET x;\nCREATE ROLE sum_user;\n", b"SET x;\n").replace(
        b"ALTER TABLE ONLY public.t ALTER COLUMN a SET (pg_attver=1);\n", b"")
    assert out.count(b"CREATE ROLE sum_user;") == 3000 // 7 + 1, "the rows that read so stay"
