"""Every target on a cluster whose server encoding is not UTF8: SQL_ASCII, what initdb makes
with the C locale and no -E (POSTGRES_INITDB_ARGS=--locale=C). psycopg hands such text over
as bytes unless told otherwise; nothing may crash or miscount on it."""
from __future__ import annotations

import json

import pytest

from conftest import shown


def c_locale(kit) -> None:
    compose = kit.root / "docker-compose.yml"
    compose.write_text(compose.read_text().replace(
        "      POSTGRES_DB:", "      POSTGRES_INITDB_ARGS: --locale=C\n      POSTGRES_DB:"))


@pytest.mark.parametrize("flavor", ["v2"])
def test_every_target_works_on_a_sql_ascii_cluster(make_kit, token):
    old = make_kit("old" + token, COMPOSE_PROJECT_NAME="old" + token)
    c_locale(old)
    old.up("--allow-new-volume")
    assert old.sql("SHOW server_encoding") == [("SQL_ASCII",)]
    old.sql("CREATE TABLE notes (id int PRIMARY KEY, body text)")
    old.sql("INSERT INTO notes SELECT g, 'café ' || g FROM generate_series(1, 500) g")
    before = old.fingerprint()

    r = old.script("db_info", "--json")
    assert r.returncode == 0, shown(r)
    database = json.loads(r.stdout)["database"]
    assert database["reachable"] and database["tables"] == 1, database

    r = old.script("db_dump")
    assert r.returncode == 0, shown(r)
    old.sql("DELETE FROM notes WHERE id > 100")
    r = old.script("db_restore", "--file", r.stdout.strip(), "--yes")
    assert r.returncode == 0, shown(r)
    assert old.fingerprint() == before
    assert old.sql("SHOW server_encoding") == [("SQL_ASCII",)]
    assert old.sql("SELECT pg_encoding_to_char(encoding) FROM pg_database "
                   "WHERE datname = 'sum_db'") == [("SQL_ASCII",)], "restored as it was"
    old.compose("down")

    kit = make_kit()
    c_locale(kit)
    r = kit.script("db_migrate_volume", "--yes")
    assert r.returncode == 0 and "Traceback" not in r.stderr, shown(r)
    assert "sum_db: 1 table, about 500 rows" in r.stderr, shown(r)
    assert kit.fingerprint() == before
