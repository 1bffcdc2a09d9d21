"""db-backups, db-prune, db-fixture, db-seed, the backup facts in db-info, and dry runs that
change nothing, on the real engine."""
from __future__ import annotations

import json
import os
import shutil
import stat
import time

import pytest

from conftest import KEY, docker, shown, volume_names


def dump(kit, *args: str):
    r = kit.script("db_dump", *args)
    assert r.returncode == 0, shown(r)
    return kit.root / r.stdout.strip()


def backdate(path, days: float):
    """Renames a dump (and its checksum) as if it had been taken `days` ago."""
    stamp = time.strftime("%Y%m%d_%H%M%S", time.localtime(time.time() - days * 86400))
    new = path.with_name(f"{path.name.rsplit('_', 2)[0]}_{stamp}{path.suffix}")
    sha = path.with_name(path.name + ".sha256")
    new.with_name(new.name + ".sha256").write_text(sha.read_text().replace(path.name, new.name))
    sha.unlink()
    path.rename(new)
    return new


@pytest.mark.parametrize("flavor", ["v2"])
def test_backups_are_listed_newest_first_with_their_state(running_kit):
    kit = running_kit
    old = backdate(dump(kit), 3)
    new = dump(kit, "--format", "plain")
    with open(old, "ab") as handle:
        handle.write(b"x")
    (kit.root / "backups" / ".sum_db_20250101_000000.dump.partial").write_bytes(b"half")
    r = kit.make("db-backups")
    assert r.returncode == 0, shown(r)
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAME", "AGE", "SIZE", "FORMAT", "CHECKSUM"]
    assert lines[1].split()[0] == new.name and lines[1].split()[-2:] == ["plain", "verified"]
    assert lines[2].split()[0] == old.name and "3 days ago" in lines[2]
    assert lines[2].split()[-3:] == ["custom", "CHECKSUM", "MISMATCH"]
    assert "1 unfinished dump(s) (not backups" in r.stdout
    rows = json.loads(kit.script("db_backups", "--json").stdout)
    assert [b["name"] for b in rows["backups"]] == [new.name, old.name]
    assert [b["checksum_ok"] for b in rows["backups"]] == [True, False]


@pytest.mark.parametrize("flavor", ["v2"])
def test_prune_keeps_the_newest_asks_and_touches_only_kit_backups(running_kit):
    kit = running_kit
    folder = kit.root / "backups"
    paths = [backdate(dump(kit), days) for days in (5, 4, 3)] + [dump(kit)]
    (folder / "notes.txt").write_text("mine")
    (folder / "sum_db_latest.dump").write_bytes(b"not a kit name")
    stale = folder / ".sum_db_20200101_000000.dump.partial"
    stale.write_bytes(b"half")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    everything = sorted(p.name for p in folder.iterdir())

    r = kit.script("db_prune", "--keep", "2")
    assert r.returncode == 3 and "no terminal to ask for confirmation" in r.stderr, shown(r)
    code, out = kit.tty("db_prune", "--keep", "2", answer="n")
    assert code == 3 and "not confirmed" in out and paths[0].name in out, out
    r = kit.script("db_prune", "--keep", "2", "--dry-run")
    assert r.returncode == 0 and "dry run: nothing was changed" in r.stderr, shown(r)
    r = kit.script("db_prune", "--keep", "0", "--yes")
    assert r.returncode == 3 and "KEEP=0 would remove every backup; keep at least one" in \
        r.stderr, shown(r)
    assert sorted(p.name for p in folder.iterdir()) == everything

    r = kit.make("db-prune", "KEEP=2", "YES=1")
    assert r.returncode == 0, shown(r)
    left = sorted(p.name for p in folder.iterdir())
    assert paths[0].name not in left and paths[1].name not in left
    assert paths[0].name + ".sha256" not in left and stale.name not in left
    for kept in (paths[2].name, paths[3].name, "notes.txt", "sum_db_latest.dump", ".gitkeep"):
        assert kept in left


def test_prune_counts_per_database_only_verified_regular_dumps(running_kit):
    """KEEP=2 once kept another database's dump and a safety dump, and deleted the configured
    database's only regular dump. Each database keeps its own newest KEEP dumps that still
    match their checksum; safety dumps and other databases' files do not count."""
    kit = running_kit
    folder = kit.root / "backups"
    mine = dump(kit)
    kit.sql("CREATE DATABASE other", "postgres")
    kit.sql("CREATE TABLE t AS SELECT 1 AS x", "other")
    other = [backdate(dump(kit, "--db", "other"), 2), dump(kit, "--db", "other")]
    kit.write_env(DBGUARD_SAFETY_DUMP="1")
    r = kit.script("db_restore", "--file", str(mine), "--yes")
    assert r.returncode == 0, shown(r)
    safety = next(folder.glob("sum_db_*_pre-restore.dump"))
    broken = folder / "sum_db_20300101_000000.dump"  # newer, but does not match its checksum
    broken.write_bytes(mine.read_bytes()[:-10])
    broken.with_name(broken.name + ".sha256").write_text(
        mine.with_name(mine.name + ".sha256").read_text().replace(mine.name, broken.name))
    r = kit.make("db-prune", "KEEP=1", "YES=1")
    assert r.returncode == 0, shown(r)
    left = {p.name for p in folder.iterdir()}
    assert mine.name in left, "the only good regular dump of sum_db stays"
    assert broken.name in left, "a newer file that fails its check is kept to look at"
    assert safety.name in left, "not older than the kept dump of its database"
    assert other[1].name in left and other[0].name not in left, "each database its own KEEP"


def test_fixture_is_plain_portable_stable_and_seeds_a_fresh_volume(running_kit, make_kit,
                                                                   token):
    kit = running_kit
    r = kit.make("db-fixture")
    assert r.returncode == 0, shown(r)
    fixture = kit.root / "fixtures" / "dev_content.sql"
    text = fixture.read_text()
    assert text.startswith("--\n-- PostgreSQL database dump")
    assert "OWNER TO" not in text and "GRANT " not in text
    assert stat.S_IMODE(fixture.stat().st_mode) == 0o644
    r = kit.make("db-fixture")
    assert r.returncode == 0 and "kept the fixture" not in r.stderr, shown(r)
    assert fixture.read_text() == text, "the same data gives the same file"
    content = kit.fingerprint()
    kit.sql("CREATE TABLE scratch AS SELECT 1 AS x")
    r = kit.make("db-fixture")
    assert r.returncode == 0, shown(r)
    (kept,) = (kit.root / "backups" / "fixtures").glob("dev_content_*.sql")
    assert f"kept the fixture it replaces as {kept}" in r.stderr
    assert kept.read_text() == text and "scratch" in fixture.read_text()
    kit.sql("DROP TABLE scratch")
    assert kit.make("db-fixture").returncode == 0
    text = fixture.read_text()

    fresh = make_kit("fresh" + token, COMPOSE_PROJECT_NAME="fresh" + token)
    fresh.write_env(DJANGO_DB_PORT=str(fresh.port))
    fresh.up("--allow-new-volume")
    shutil.copy(fixture, fresh.root / "fixtures" / "dev_content.sql")
    r = fresh.make("db-seed")
    assert r.returncode == 0, shown(r)
    assert fresh.fingerprint() == content

    fresh.sql("INSERT INTO pages (title) VALUES ('local work')")
    r = fresh.script("db_seed", "--yes")
    assert r.returncode == 3, shown(r)
    assert r.stderr.strip().splitlines()[-1] == (
        "ERROR: refusing to seed dev_content.sql into 'sum_db': database 'sum_db' already has 1 "
        "tables, which seeding would replace; FORCE=1 replaces them (what it replaces is kept "
        "as the snapshot before_seed). Nothing was changed")
    code, out = fresh.tty("db_seed", "--force", answer="n")
    assert code == 3 and "not confirmed" in out, out
    assert fresh.sql("SELECT count(*) FROM pages WHERE title = 'local work'") == [(1,)]
    r = fresh.make("db-seed", "FORCE=1", "YES=1")
    assert r.returncode == 0, shown(r)
    assert "undo: make db-undo" in r.stderr, shown(r)
    assert fresh.fingerprint() == content
    assert fresh.sql("SELECT count(*) FROM pages WHERE title = 'local work'",
                     dbname="sum_db_dbguard_snap_before_seed") == [(1,)], "the replaced one is kept"


@pytest.mark.parametrize("flavor", ["v2"])
def test_seed_without_a_fixture_says_how_to_make_one(running_kit):
    r = running_kit.script("db_seed")
    assert r.returncode == 1, shown(r)
    assert r.stderr.strip().endswith("Export one from a database with content: make db-fixture")


@pytest.mark.parametrize("flavor", ["v2"])
def test_db_info_shows_the_newest_backup_and_flags_an_old_one(running_kit):
    kit = running_kit
    facts = json.loads(kit.script("db_info", "--json").stdout)
    assert facts["backups"]["newest"] is None
    assert [p["code"] for p in facts["problems"]] == ["BACKUP_STALE"]
    path = backdate(dump(kit), 10)
    r = kit.script("db_info")
    assert f"newest: {path} (10 days ago" in r.stdout, r.stdout
    assert "PROBLEM BACKUP_STALE: the newest dump is 10 days ago (older than " \
           "DBGUARD_BACKUP_MAX_AGE_DAYS=7)" in r.stdout
    assert kit.script("db_info", "--check").returncode == 1
    dump(kit)
    facts = json.loads(kit.script("db_info", "--json").stdout)
    assert facts["problems"] == [] and facts["backups"]["count"] == 2
    assert facts["backups"]["newest"]["checksum_ok"] is True


@pytest.mark.parametrize("flavor", ["v2"])
def test_dry_runs_change_nothing(running_kit, make_kit, token):
    kit = running_kit
    dump(kit)
    old = make_kit("old" + token, COMPOSE_PROJECT_NAME="old" + token)
    old.up("--allow-new-volume")
    old.compose("down")

    def state():
        return (sorted(p.name for p in (kit.root / "backups").iterdir()),
                sorted(p.name for p in (kit.root / "fixtures").iterdir()),
                kit.fingerprint(), sorted(v for v in volume_names() if token in v),
                docker("ps", "-q", "--filter", f"label=com.docker.compose.project={kit.token}"
                       ).stdout)

    before = state()
    for script, args in (("db_dump", ()), ("db_fixture", ()), ("db_prune", ("--keep", "1")),
                         ("db_migrate_volume", ("--from", f"old{token}_{KEY}")),
                         ("db_migrate_volume", ("--undo",)), ("db_down", ()),
                         ("db_up", ())):
        r = kit.script(script, "--dry-run", *args)
        assert r.returncode in (0, 3), shown(r)
        assert state() == before, f"{script} --dry-run changed something"
    r = kit.script("db_down", "--dry-run", "-v")
    assert "dry run: would stop 'db'; nothing was changed" in r.stderr, shown(r)
    for script, args in (("db_snapshot", ()), ("db_snapshots", ("--keep", "1")),
                         ("db_undo", ()), ("db_upgrade", ()), ("db_seed", ("--force",))):
        r = kit.script(script, "--dry-run", *args)
        assert r.returncode in (0, 1, 2, 3), shown(r)
        assert "Traceback" not in r.stderr, shown(r)
        assert state() == before, f"{script} --dry-run changed something"
