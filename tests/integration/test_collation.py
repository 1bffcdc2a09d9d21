"""Collation drift and db-reindex on the real engine (#19), on 15, 17 and 18.

The drift is produced honestly but not naturally: the test images are built once, so their
glibc and ICU never change under a cluster. An ICU database (`LOCALE_PROVIDER icu`) records its
collation version; the test rewrites that record in pg_database (`UPDATE pg_database SET
datcollversion = ...`, as a superuser may), which is exactly what the server compares with the
library's version, so the server, db-info, db-up and db-reindex see what they would see after a
real library change. What the test cannot produce is an index truly out of order: amcheck finds
the B-tree sound, so it is checked and kept, while the hash index, which amcheck cannot check,
is rebuilt. (Clusters made with C or C.UTF-8, as the test images' are, record no version.)"""
from __future__ import annotations

import json

import pytest

from conftest import KEY, shown

FAKE = "1.0"  # the recorded version the test writes: no ICU or glibc release is called that


def relfilenodes(kit) -> dict:
    return dict(kit.sql("SELECT relname, relfilenode::bigint FROM pg_class WHERE relname IN "
                        "('words_w_idx', 'words_w_hash')", "icu_db"))


def recorded(kit) -> tuple:
    return kit.sql("SELECT datcollversion, datcollversion = "
                   "pg_database_collation_actual_version(oid) FROM pg_database WHERE datname "
                   "= 'icu_db'", "postgres")[0]


@pytest.mark.parametrize("major", [15, 17, 18])
def test_a_drifted_icu_database_is_named_checked_rebuilt_then_recorded(make_kit, major,
                                                                      request):
    image = request.getfixturevalue("image" if major == 15 else f"image{major}")
    kit = make_kit(DB_IMAGE=image)
    if major >= 18:
        compose = kit.root / "docker-compose.yml"
        compose.write_text(compose.read_text().replace(f"{KEY}:/var/lib/postgresql/data",
                                                       f"{KEY}:/var/lib/postgresql"))
    kit.up()
    kit.sql("CREATE DATABASE icu_db TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' "
            "LOCALE 'C.UTF-8'", "postgres")
    kit.sql("CREATE TABLE words (id int PRIMARY KEY, w text)", "icu_db")
    kit.sql("INSERT INTO words SELECT g, md5(g::text) FROM generate_series(1, 2000) g",
            "icu_db")
    kit.sql("CREATE INDEX words_w_idx ON words (w)", "icu_db")
    kit.sql("CREATE INDEX words_w_hash ON words USING hash (w)", "icu_db")
    real, fine = recorded(kit)
    assert real and fine, "an ICU database records its collation version"
    facts = json.loads(kit.script("db_info", "--json").stdout)
    assert "COLLATION_DRIFT" not in [p["code"] for p in facts["problems"]]

    kit.sql(f"UPDATE pg_database SET datcollversion = '{FAKE}' WHERE datname = 'icu_db'",
            "postgres")
    facts = json.loads(kit.script("db_info", "--json").stdout)
    (drift,) = [p for p in facts["problems"] if p["code"] == "COLLATION_DRIFT"]
    assert f"database 'icu_db': its default collation was recorded under version {FAKE} and " \
           f"the server provides {real}" in drift["message"]
    assert "public.words_w_hash" in drift["message"] and "public.words_w_idx" in \
        drift["message"]
    assert "words_pkey" not in drift["message"], "an integer index does not depend on it"
    assert drift["fix"][0].startswith("make db-reindex DB=icu_db")
    assert kit.script("db_down").returncode == 0
    r = kit.script("db_up")
    assert r.returncode == 0 and "WARNING: COLLATION_DRIFT: database 'icu_db'" in r.stderr, \
        shown(r)

    before = relfilenodes(kit)
    r = kit.make("db-reindex", "DB=icu_db")  # no terminal and no YES=1: refused
    assert r.returncode != 0 and "YES=1" in r.stderr, shown(r)
    assert recorded(kit)[0] == FAKE and relfilenodes(kit) == before, "nothing changed"

    r = kit.make("db-reindex", "DB=icu_db", "YES=1")
    assert r.returncode == 0, shown(r)
    assert "1 B-tree index with amcheck" in r.stderr
    after = relfilenodes(kit)
    assert after["words_w_idx"] == before["words_w_idx"], "checked sound by amcheck: kept"
    assert after["words_w_hash"] != before["words_w_hash"], "cannot be checked: rebuilt"
    assert recorded(kit) == (real, True), "the new version is recorded, after the rebuild"
    assert kit.sql("SELECT count(*) FROM pg_extension WHERE extname = 'amcheck'",
                   "icu_db") == [(0,)], "amcheck was installed for the check only"
    history = json.loads(kit.script("db_history", "--json").stdout)
    last = history[-1]
    assert last["command"] == "db-reindex" and last["state"] == "done"
    assert last["steps"] == ["snapshot", "check", "reindex", "refresh"], \
        "the version is recorded last, never before the indexes are rebuilt"
    assert kit.sql("SELECT count(*) FROM words WHERE w > 'a'", "icu_db")[0][0] > 0
    r = kit.make("db-reindex", "DB=icu_db", "YES=1")
    assert r.returncode == 0 and "nothing to do" in r.stderr, shown(r)

    # The snapshot it kept puts the database back as it was, recorded version included.
    r = kit.make("db-undo", "YES=1")
    assert r.returncode == 0, shown(r)
    assert recorded(kit)[0] == FAKE

    # A restore into an ICU database keeps it an ICU database (the scratch database is made
    # with the live one's locale provider).
    r = kit.make("db-dump", "DB=icu_db")
    assert r.returncode == 0, shown(r)
    r = kit.make("db-restore", "DB=icu_db", "YES=1")
    assert r.returncode == 0, shown(r)
    assert kit.sql("SELECT datlocprovider::text FROM pg_database WHERE datname = 'icu_db'",
                   "postgres") == [("i",)]
