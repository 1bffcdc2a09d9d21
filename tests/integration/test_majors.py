"""The core of the kit on the other PostgreSQL majors users run: 17 (Debian trixie's packages)
and 18 (Debian sid's, with 18's own layout: PGDATA=/var/lib/postgresql/18/docker and the volume
at /var/lib/postgresql). db-up, db-info, db-dump and db-restore, both dump formats. The whole
tier runs on 15; these run on 17 and 18 what depends on the server's version."""
from __future__ import annotations

import json
import subprocess

import pytest

from conftest import KEY, shown
from test_dump_restore import dump, rich_content


@pytest.mark.parametrize("major", [17, 18])
def test_up_info_dump_and_restore_on_each_major(make_kit, major, request):
    image = request.getfixturevalue(f"image{major}")
    kit = make_kit(DB_IMAGE=image)
    if major >= 18:  # the 18 image keeps its data below /var/lib/postgresql
        compose = kit.root / "docker-compose.yml"
        compose.write_text(compose.read_text().replace(f"{KEY}:/var/lib/postgresql/data",
                                                       f"{KEY}:/var/lib/postgresql"))
    kit.up()
    kit.seed_rows(300)
    rich_content(kit)
    facts = json.loads(kit.script("db_info", "--json").stdout)
    active = next(v for v in facts["volumes"] if v["active"])
    assert (active["pg_version"], facts["service"]["image_pg_major"]) == (str(major), major)
    assert facts["database"]["server_version"].startswith(str(major)), facts["database"]
    before = kit.fingerprint()
    for fmt in ("custom", "plain"):
        path = dump(kit, "--format", fmt)
        if fmt == "custom":  # 16 and later: zstd level 1, as the image's pg_dump says it is
            with open(kit.root / path, "rb") as handle:
                header = subprocess.run(
                    ["docker", "exec", "-i", kit.compose("ps", "-q", "db").stdout.strip(),
                     "pg_restore", "-l"], stdin=handle, capture_output=True, text=True).stdout
            assert "Compression: zstd" in header, header[:400]
        kit.sql("DELETE FROM pages WHERE id > 10")
        kit.sql("UPDATE kinds SET u = 'changed'")
        r = kit.make("db-restore", f"FILE={path}", "YES=1")
        assert r.returncode == 0, shown(r)
        assert kit.fingerprint() == before, f"a {fmt} dump on {major} gave back every row"
    facts = json.loads(kit.script("db_info", "--json").stdout)
    assert facts["problems"] == [], facts["problems"]
