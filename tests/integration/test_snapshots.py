"""db-snapshot, db-snapshots and db-rollback on the real server: a snapshot is an exact copy,
a rollback gives back every row and keeps what it replaced (so it can be undone), the
questions and refusals change nothing, and db-info lists the snapshots."""
from __future__ import annotations

import json

from conftest import shown


def snapshots(kit) -> list[dict]:
    r = kit.make("db-snapshots", "JSON=1")
    assert r.returncode == 0, shown(r)
    return json.loads(r.stdout)


def test_snapshot_change_rollback_and_undo_give_back_every_row(running_kit):
    kit = running_kit
    kit.sql("CREATE TABLE notes AS SELECT g AS id, md5(g::text) AS t "
            "FROM generate_series(1, 5000) g")
    before = kit.fingerprint()
    with kit.connect() as app:  # an application holding a connection during the snapshot
        app.execute("SELECT 1")
        r = kit.make("db-snapshot", "NAME=before_migration")
    assert r.returncode == 0, shown(r)
    assert r.stdout.strip() == "before_migration"
    assert "other connections to it are ended and new ones refused for the moment the copy " \
        "takes" in r.stderr, shown(r)
    assert kit.sql("SELECT datallowconn FROM pg_database WHERE datname = 'sum_db'") == [(True,)]
    assert kit.fingerprint("sum_db_dbguard_snap_before_migration") == before, "an exact copy"

    # The risky migration goes wrong.
    kit.sql("DELETE FROM notes WHERE id % 3 = 0")
    kit.sql("ALTER TABLE pages DROP COLUMN body")
    broken = kit.fingerprint()

    r = kit.make("db-rollback")  # no terminal, no YES: the answer is no
    assert r.returncode != 0 and "no terminal to ask for confirmation" in r.stderr, shown(r)
    assert kit.fingerprint() == broken, "refused: nothing changed"
    r = kit.script("db_rollback", "--dry-run")
    assert r.returncode == 0 and "put back: snapshot 'before_migration'" in r.stderr, shown(r)
    assert kit.fingerprint() == broken, "a dry run changes nothing"

    r = kit.make("db-rollback", "YES=1")  # the newest snapshot by default
    assert r.returncode == 0, shown(r)
    assert kit.fingerprint() == before, "every row is back"
    listed = snapshots(kit)
    names = [s["name"] for s in listed]
    assert "before_migration" in names, "the snapshot stays, for another rollback"
    kept = next(n for n in names if n.startswith("replaced_"))
    assert kit.fingerprint(f"sum_db_dbguard_snap_{kept}") == broken, "what it replaced is kept"
    assert names[0] == kept, "newest first"

    r = kit.make("db-undo", "YES=1")  # undo the rollback, from the copy it kept
    assert r.returncode == 0 and f"put back: snapshot {kept!r}" in r.stderr, shown(r)
    assert kit.fingerprint() == broken

    facts = json.loads(kit.script("db_info", "--json").stdout)
    assert [s["name"] for s in facts["snapshots"]] == [s["name"] for s in snapshots(kit)]
    assert len(facts["snapshots"]) == 3, "before_migration and two replaced_"
    history = json.loads(kit.make("db-history", "JSON=1").stdout)
    assert [(e["command"], e["state"]) for e in history] == [
        ("db-snapshot", "done"), ("db-rollback", "done; undone by #3"), ("db-undo", "done")]
    assert "=== Snapshots" in kit.make("db-info").stdout


def test_snapshot_refusals_and_pruning_change_nothing_unasked(running_kit):
    kit = running_kit
    r = kit.make("db-rollback", "YES=1")
    assert r.returncode != 0 and "ERROR: refusing to roll 'sum_db' back: 'sum_db' has no " \
        "snapshot (`make db-snapshots` lists them, `make db-snapshot` takes one). Nothing was " \
        "changed" in r.stderr, shown(r)
    r = kit.make("db-snapshot", "NAME=Bad Name")
    assert r.returncode != 0 and "ERROR: NAME='Bad Name' is not a snapshot name" in r.stderr
    r = kit.make("db-snapshot", "NAME=before_restore")  # the next restore would drop it
    assert r.returncode != 0 and "ERROR: NAME=before_restore is kept for the kit's own " \
        "snapshots" in r.stderr, shown(r)
    assert snapshots(kit) == []
    for name in ("one", "two", "three"):
        assert kit.make("db-snapshot", f"NAME={name}").returncode == 0
    r = kit.make("db-snapshot", "NAME=two")
    assert r.returncode != 0 and "a snapshot named 'two' exists already" in r.stderr, shown(r)
    assert [s["name"] for s in snapshots(kit)] == ["three", "two", "one"]
    r = kit.make("db-snapshots", "KEEP=1")  # no terminal, no YES
    assert r.returncode != 0 and "drop:     snapshot 'two'" in r.stderr, shown(r)
    assert len(snapshots(kit)) == 3
    r = kit.make("db-snapshots", "DROP=nothere", "YES=1")
    assert r.returncode != 0 and "has no snapshot named 'nothere'" in r.stderr, shown(r)
    r = kit.make("db-snapshots", "KEEP=0", "YES=1")
    assert r.returncode != 0 and "KEEP=0 would drop every snapshot of 'sum_db'" in r.stderr, \
        shown(r)
    assert len(snapshots(kit)) == 3
    r = kit.make("db-snapshots", "KEEP=1", "YES=1")
    assert r.returncode == 0, shown(r)
    assert [s["name"] for s in snapshots(kit)] == ["three"]
    assert kit.make("db-snapshots", "DROP=three", "YES=1").returncode == 0
    assert snapshots(kit) == []


def test_a_database_that_shares_the_first_25_bytes_keeps_its_snapshots_apart(running_kit):
    """Snapshot names are cut to fit PostgreSQL's 63 bytes: two databases that begin alike get
    names that begin alike, and only the comment says whose a snapshot is."""
    kit = running_kit
    long_a, long_b = "orders_of_the_shop_2025_eu", "orders_of_the_shop_2025_us"
    for db in (long_a, long_b):
        kit.sql(f"CREATE DATABASE {db}", "postgres")
        kit.sql("CREATE TABLE t AS SELECT generate_series(1, 10) AS x", db)
    assert kit.make("db-snapshot", f"DB={long_a}", "NAME=mine").returncode == 0
    r = kit.make("db-snapshots", f"DB={long_b}", "JSON=1")
    assert json.loads(r.stdout) == [], "the other database's snapshot is not listed as its own"
    r = kit.make("db-rollback", f"DB={long_b}", "NAME=mine", "YES=1")
    assert r.returncode != 0 and "has no snapshot named 'mine'" in r.stderr, shown(r)
    r = kit.make("db-snapshots", f"DB={long_b}", "DROP=mine", "YES=1")
    assert r.returncode != 0 and "has no snapshot named 'mine'" in r.stderr, shown(r)
    assert [s["name"] for s in json.loads(
        kit.make("db-snapshots", f"DB={long_a}", "JSON=1").stdout)] == ["mine"]
