"""db-upgrade on real majors: 15 -> 17, and 17 -> 18 with the mount change, on data with
indexes, views, sequences, a second database, a second role owning objects and large objects;
every row equal afterwards, db-up starting and db-info clean. Killed halfway, the volume is
never one db-up starts on; a rerun finishes and UNDO=1 puts the old cluster back. Refusals
change nothing."""
from __future__ import annotations

import json
import signal

import pytest

from conftest import KEY, docker, shown, volume_names
from harness import read_until


def real_data(kit) -> None:
    kit.seed_rows(2000)
    kit.sql("CREATE INDEX pages_title ON pages (title)")
    kit.sql("CREATE VIEW long_pages AS SELECT id, title FROM pages WHERE length(body) > 10")
    kit.sql("CREATE SEQUENCE invoice_no START 1000")
    kit.sql("SELECT nextval('invoice_no') FROM generate_series(1, 7)")
    kit.sql("CREATE ROLE editor LOGIN PASSWORD 'ed-pw'")
    kit.sql("CREATE TABLE drafts (id int PRIMARY KEY, note text)")
    kit.sql("INSERT INTO drafts SELECT g, 'draft ' || g FROM generate_series(1, 300) g")
    kit.sql("ALTER TABLE drafts OWNER TO editor")
    kit.sql("SELECT lo_from_bytea(0, convert_to(repeat('large object ', 5000), 'UTF8'))")
    kit.sql("CREATE DATABASE analytics")
    kit.sql("CREATE TABLE events AS SELECT g AS id, md5(g::text) AS h FROM "
            "generate_series(1, 1500) g", dbname="analytics")


def everything(kit) -> dict:
    return {"sum_db": kit.fingerprint(), "analytics": kit.fingerprint("analytics"),
            "roles": kit.sql("SELECT rolname FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY 1"),
            "owner": kit.sql("SELECT tableowner FROM pg_tables WHERE tablename = 'drafts'"),
            "sequence": kit.sql("SELECT last_value FROM invoice_no"),
            "lo": kit.sql("SELECT md5(lo_get(oid)) FROM pg_largeobject_metadata")}


def info(kit) -> dict:
    return json.loads(kit.script("db_info", "--json").stdout)


def upgraded_kit(make_kit, old_image, new_image):
    kit = make_kit(DB_IMAGE=old_image)
    kit.up()
    real_data(kit)
    before = everything(kit)
    kit.script("db_down")
    kit.write_env(DB_IMAGE=new_image)
    return kit, before


def test_15_to_17_every_row_equal_then_db_up_and_info_clean(make_kit, image, image17):
    kit, before = upgraded_kit(make_kit, image, image17)
    r = kit.script("db_up")
    assert r.returncode == 3 and "PG_VERSION_MISMATCH" in r.stderr, shown(r)
    assert "make db-upgrade   (moves the data to 17" in r.stderr, "the fix names db-upgrade first"
    r = kit.make("db-upgrade", f"OLD_IMAGE={image}", "DRY_RUN=1")
    assert r.returncode == 0 and "dry run: nothing was changed" in r.stderr, shown(r)
    assert info(kit)["volumes"][0]["pg_version"] == "15", "a dry run changes nothing"
    # A socket volume a killed run left (labelled with the project, no container on it) goes;
    # another project's stays.
    mine, theirs = f"{kit.token}-left-socket", f"{kit.token}-their-socket"
    docker("volume", "create", "--label", f"dbguard.socket-of={kit.project}", mine)
    docker("volume", "create", "--label", f"dbguard.socket-of=x{kit.project}", theirs)
    r = kit.make("db-upgrade", f"OLD_IMAGE={image}", "YES=1")
    assert r.returncode == 0, shown(r)
    assert "runs PostgreSQL 17: databases analytics, postgres, sum_db; 3 tables, every row " \
        "equal" in r.stderr, shown(r)
    assert mine not in volume_names() and theirs in volume_names()
    kept = f"{kit.volume}_pg15_"
    assert any(v.startswith(kept) for v in volume_names()), "the old cluster is kept"
    assert f"docker volume rm {kept}" in r.stderr
    kit.up()
    assert everything(kit) == before
    facts = info(kit)
    assert not [p for p in facts["problems"] if p["code"] != "BACKUP_STALE"], facts["problems"]
    assert facts["database"]["server_version"].startswith("17")
    assert list((kit.root / "backups" / "upgrades").glob("*_pg15_cluster.sql"))


def test_17_to_18_moves_the_mount_and_keeps_the_original_compose_file(make_kit, image17,
                                                                      image18):
    kit, before = upgraded_kit(make_kit, image17, image18)
    compose = (kit.root / "docker-compose.yml").read_text()
    r = kit.make("db-upgrade", f"OLD_IMAGE={image17}")  # no terminal, no YES
    assert r.returncode != 0 and "no terminal to ask for confirmation" in r.stderr, shown(r)
    assert "compose:  docker-compose.yml: the volume moves from /var/lib/postgresql/data" \
        in r.stderr, shown(r)
    assert (kit.root / "docker-compose.yml").read_text() == compose
    r = kit.make("db-upgrade", f"OLD_IMAGE={image17}", "YES=1")
    assert r.returncode == 0, shown(r)
    assert f"- {KEY}:/var/lib/postgresql\n" in (kit.root / "docker-compose.yml").read_text()
    kept = list((kit.root / "backups" / "upgrades").glob("docker-compose_*.yml"))
    assert len(kept) == 1 and kept[0].read_text() == compose
    kit.up()
    assert everything(kit) == before
    facts = info(kit)
    active = next(v for v in facts["volumes"] if v["active"])
    assert (active["pg_version"], active["pg_path"]) == ("18", "./18/docker"), active
    assert not [p for p in facts["problems"] if p["code"] != "BACKUP_STALE"], facts["problems"]


def test_killed_upgrades_leave_nothing_db_up_starts_a_rerun_finishes_undo_goes_back(
        make_kit, image, image17):
    kit, before = upgraded_kit(make_kit, image, image17)
    for marker, code in (("INFO: copying the old cluster", "PG_VERSION_MISMATCH"),
                         ("INFO: emptying ", "UPGRADE_INCOMPLETE"),
                         ("INFO: loading ", "UPGRADE_INCOMPLETE")):
        proc = kit.popen("db_upgrade", "--old-image", image, "--yes")
        read_until(proc, marker)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        r = kit.script("db_up")  # until the copy is verified, the volume is as it was
        assert r.returncode == 3 and code in r.stderr, shown(r)
    r = kit.script("db_upgrade", "--old-image", image, "--yes")  # the rerun finishes
    assert r.returncode == 0, shown(r)
    assert len([v for v in volume_names() if v.startswith(f"{kit.volume}_pg15_")]) == 1, \
        "the copy the first kill left unfinished is gone; the one kept is the rerun's"
    helpers = docker("ps", "-aq", "--filter", "label=dbguard.helper=1", "--filter",
                     f"label=dbguard.project={kit.token}").stdout.split()
    assert helpers == [], "no server of a killed run is left"
    kit.up()
    assert everything(kit) == before
    kit.sql("CREATE TABLE written_on_17 AS SELECT 1 AS x")
    kit.script("db_down")
    r = kit.make("db-upgrade", "UNDO=1", "YES=1")  # and going back puts 15 back
    assert r.returncode == 0, shown(r)
    assert f"INFO: snapshot of what {kit.volume} held: " in r.stderr, "what 17 held is kept"
    assert list((kit.root / "backups" / "volumes").glob(f"{kit.volume}_*.tar"))
    assert "set the service's image back to 15 before `make db-up`" in r.stderr, shown(r)
    kit.write_env(DB_IMAGE=image)
    kit.up()
    assert everything(kit) == before
    assert info(kit)["database"]["server_version"].startswith("15")


@pytest.mark.parametrize("flavor", ["v2"])
def test_refusals_change_nothing(make_kit, image, image17, token):
    kit = make_kit(DB_IMAGE=image17)
    kit.up()
    kit.seed_rows(10)
    kit.script("db_down")
    kit.write_env(DB_IMAGE=image)  # the image is older than the cluster
    r = kit.make("db-upgrade", "YES=1")
    assert r.returncode != 0 and f"ERROR: refusing to upgrade {kit.volume}: the cluster in" \
        in r.stderr and "newer than the image's 15: db-upgrade only moves to a newer major" \
        in r.stderr, shown(r)
    kit.write_env(DB_IMAGE=image17)
    r = kit.make("db-upgrade", "YES=1")
    assert r.returncode != 0 and "as the image runs: there is nothing to upgrade" in r.stderr, \
        shown(r)

    old = make_kit(f"o{token}", COMPOSE_PROJECT_NAME=f"o{token}", DB_IMAGE=image)
    old.up()
    old.script("db_down")
    old.write_env(DB_IMAGE=image17)
    r = old.make("db-upgrade", "OLD_IMAGE=dbguard-no-such-image:15", "YES=1")
    assert r.returncode != 0 and "the image dbguard-no-such-image:15 is not available here" \
        in r.stderr, shown(r)
    r = old.make("db-upgrade", "YES=1")  # not the official image's name: cannot derive
    assert r.returncode != 0 and "cannot tell which image runs PostgreSQL 15" in r.stderr
    docker("run", "-d", "--name", f"{token}-foreign", "--mount",
           f"type=volume,source={old.volume},target=/data,readonly", "--entrypoint", "sleep",
           image, "300")
    try:
        r = old.make("db-upgrade", f"OLD_IMAGE={image}", "YES=1")
        assert r.returncode != 0 and f"{token}-foreign (not of project o{token}) is running " \
            f"on {old.volume}" in r.stderr, shown(r)
    finally:
        docker("rm", "-f", "-v", f"{token}-foreign", check=False)  # and its anonymous volume
    assert not [v for v in volume_names() if v.startswith(f"{old.volume}_pg")]
    active = next(v for v in info(old)["volumes"] if v["active"])
    assert active["pg_version"] == "15", "nothing was changed"
