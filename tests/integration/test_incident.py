"""The incident of the seed report, replayed end to end: a project in `tradesite` with real
rows, the directory renamed to `sum-platform` (or the kit's locked name adopted), and the kit
refusing to start an empty database, naming the volume that holds the data, and bringing every
row back with db-migrate-volume."""
from __future__ import annotations

import json

import pytest

from conftest import KEY, docker, shown, volume_names

# The report's own names: every test that uses them runs in one xdist worker, one at a time
# (project names are shared by containers and networks, whatever the volume key).
pytestmark = pytest.mark.xdist_group("report-names")
NAMES = [f"tradesite_{KEY}", f"sum-platform_{KEY}", f"sumplatform_{KEY}"]
MANIFEST = "cd /v && find . -exec stat -c '%a %u %s %Y %n' {} + | sort && " \
           "find . -type f -exec sha256sum {} + | sort"  # the source must not change at all


@pytest.fixture
def tradesite(make_kit):
    clash = volume_names() & set(NAMES)
    if clash:
        pytest.fail(f"volumes {sorted(clash)} exist already; this test needs those names and "
                    "does not touch volumes it did not make (remove them if they are leftovers)")
    make_kit.fixed_names.extend(NAMES)
    kit = make_kit("tradesite", COMPOSE_PROJECT_NAME=None)
    r = kit.make("db-up")
    assert r.returncode == 0, shown(r)
    assert "PROJECT_NAME_NOT_LOCKED" in r.stderr, "an unlocked name is warned about at db-up"
    kit.seed_rows(1000)
    before = kit.fingerprint()
    r = kit.make("db-down")  # the overnight restart of the report
    assert r.returncode == 0, shown(r)
    return kit, before


def assert_refused_and_explained(kit, active: str) -> None:
    r = kit.make("db-up")
    assert r.returncode != 0 and "Error 3" in r.stderr, shown(r)
    assert "PARALLEL_UNIVERSE" in r.stderr and f"tradesite_{KEY}" in r.stderr, shown(r)
    assert f"make db-migrate-volume FROM=tradesite_{KEY}" in r.stderr, shown(r)
    assert "make db-up ALLOW_NEW_VOLUME=1" in r.stderr, shown(r)
    r = kit.script("db_up")
    assert r.returncode == 3, shown(r)
    assert r.stderr.strip().splitlines()[-1] == (
        "ERROR: refusing to start 'db' (PARALLEL_UNIVERSE). Take one of the ways forward "
        "above; nothing was started or created"), shown(r)
    assert active not in volume_names(), "the refusal created no volume"

    r = kit.make("db-info")
    assert r.returncode == 0, shown(r)
    table = r.stdout.split(f"=== All {KEY} Volumes ===")[1].split("===")[0]
    assert f"tradesite_{KEY}" in table and "tables:" in table, r.stdout
    assert f"{active}" in table and "<- ACTIVE" in table, r.stdout
    facts = json.loads(kit.script("db_info", "--json").stdout)
    assert facts["active_volume"] == active
    old = next(v for v in facts["volumes"] if v["name"] == f"tradesite_{KEY}")
    assert old["has_cluster"] and old["pg_version"] == "15" and old["user_relation_files"] > 0
    assert not next(v for v in facts["volumes"] if v["active"])["exists"]
    codes = [p["code"] for p in facts["problems"]]
    assert "PARALLEL_UNIVERSE" in codes, facts["problems"]
    assert kit.script("db_info", "--check").returncode == 1


def assert_migrated(kit, before: dict, active: str, project: str) -> None:
    source_before = kit.helper(f"tradesite_{KEY}", MANIFEST, readonly=True)
    r = kit.make("db-migrate-volume", "YES=1")
    assert r.returncode == 0, shown(r)
    assert f"docker volume rm tradesite_{KEY}" in r.stderr, shown(r)
    assert kit.fingerprint() == before, "every row is back in the active volume"
    labels = json.loads(docker("volume", "inspect", "--format", "{{json .Labels}}",
                               active).stdout)
    assert labels["com.docker.compose.project"] == project
    assert labels["com.docker.compose.volume"] == KEY
    assert kit.helper(f"tradesite_{KEY}", MANIFEST, readonly=True) == source_before, \
        "the source volume is untouched"
    up = kit.compose("up", "-d", "db")
    assert "already exists" not in up.stderr and "created for project" not in up.stderr, \
        shown(up)
    facts = json.loads(kit.script("db_info", "--json").stdout)
    assert "PARALLEL_UNIVERSE" not in [p["code"] for p in facts["problems"]]
    assert any(f"tradesite_{KEY} holds a copy" in n for n in facts["notes"]), facts


@pytest.mark.compose_v1  # the kit parses or calls Compose v1 differently here
def test_renamed_directory_refused_explained_and_recovered(tradesite):
    kit, before = tradesite
    kit.rename("sum-platform")
    assert_refused_and_explained(kit, f"sum-platform_{KEY}")
    assert_migrated(kit, before, f"sum-platform_{KEY}", "sum-platform")


def test_adopted_locked_name_refused_explained_and_recovered(tradesite):
    kit, before = tradesite
    kit.write_env(COMPOSE_PROJECT_NAME="sumplatform")
    assert_refused_and_explained(kit, f"sumplatform_{KEY}")
    assert_migrated(kit, before, f"sumplatform_{KEY}", "sumplatform")


def test_pgdata_in_a_subfolder_of_the_volume_is_guarded_too(make_kit, token):
    """The common layout PGDATA=/var/lib/postgresql/data/pgdata: the old volume's cluster is
    found in its subfolder, so a renamed directory is refused with nothing created, and
    migrate brings every row back."""
    def subfolder(kit):
        compose = kit.root / "docker-compose.yml"
        compose.write_text(compose.read_text().replace(
            "      POSTGRES_DB:", "      PGDATA: /var/lib/postgresql/data/pgdata\n"
                               "      POSTGRES_DB:"))

    old = make_kit("old" + token, COMPOSE_PROJECT_NAME=None)
    subfolder(old)
    old.up()
    old.seed_rows(700)
    before = old.fingerprint()
    facts = json.loads(old.script("db_info", "--json").stdout)
    active = next(v for v in facts["volumes"] if v["active"])
    assert active["pg_path"] == "./pgdata" and active["user_relation_files"] > 0, active
    assert "PGDATA_ELSEWHERE" not in [p["code"] for p in facts["problems"]]
    assert old.script("db_down").returncode == 0
    old.rename("new" + token)  # the directory is renamed: another project name, another volume
    new_volume = f"new{token}_{KEY}"
    r = old.script("db_up")
    assert r.returncode == 3 and "PARALLEL_UNIVERSE" in r.stderr, shown(r)
    assert f"old{token}_{KEY}" in r.stderr, shown(r)
    assert new_volume not in volume_names(), "the refusal created no volume"
    r = old.script("db_migrate_volume", "--yes")
    assert r.returncode == 0, shown(r)
    assert old.fingerprint() == before
