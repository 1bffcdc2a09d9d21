"""A dry run cannot change anything, by construction: every data-changing command is walked
through its dry run against a world that answers every read (containers, volumes, databases,
the journal) and fails the test on the first call that would change something. Each command
must show its plan and end with "dry run: nothing was changed"."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import db_down
import db_dump
import db_fixture
import db_migrate_volume
import db_prune
import db_restore
import db_rollback
import db_seed
import db_snapshot
import db_snapshots
import db_undo
import db_up
import db_upgrade
from dbguard.journal import Journal
from fakes import World, make_kit


@pytest.fixture
def world(tmp_path, monkeypatch):
    runner = World(tmp_path)
    kit = make_kit(tmp_path, runner)
    for module in (db_down, db_dump, db_fixture, db_migrate_volume, db_restore, db_rollback,
                   db_seed, db_snapshot, db_snapshots, db_undo, db_up, db_upgrade):
        monkeypatch.setattr(module, "open_kit", lambda args, command="", kit=kit: kit)
    monkeypatch.setattr(db_prune, "load_settings", lambda: kit.settings)
    monkeypatch.setattr(db_up, "init_env_file", lambda: None)
    monkeypatch.setattr(db_up, "needs_env_file", lambda: False)
    return kit


def backup(kit, name="sum_db_20251215_124427.sql") -> Path:
    folder = kit.settings.backup_dir
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_bytes(b"--\n-- PostgreSQL database dump\n--\n-- Dumped by pg_dump version 15.10"
                     b"\nCREATE TABLE t();\n-- PostgreSQL database dump complete\n")
    (folder / f"{name}.sha256").write_text(
        f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {name}\n")
    return path


def journal(kit, *entries: tuple) -> None:
    j = Journal(kit.settings.backup_dir)
    kit.settings.backup_dir.mkdir(exist_ok=True)
    for command, target, copy in entries:
        op = j.begin(command, target, copy, {"db": target["name"]})
        op.end("done", settled=True)


def tar(kit) -> str:
    folder = kit.settings.backup_dir / "volumes"
    folder.mkdir(parents=True)
    path = folder / "sumplatform_sum_db_data_20251201_000000.tar"
    path.write_bytes(b"x" * 512)
    (folder / f"{path.name}.sha256").write_text(
        f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n")
    return str(path)


def dry(main, *args: str, capsys) -> str:
    code = main(["--dry-run", *args])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "dry run" in err and ("nothing was changed" in err or "nothing was removed" in err), \
        err
    return err


COMMANDS = {
    "db-up": (db_up.main, []),
    "db-down": (db_down.main, []),
    "db-dump": (db_dump.main, []),
    "db-fixture": (db_fixture.main, []),
    "db-migrate-volume": (db_migrate_volume.main, ["--from", "tradesite_sum_db_data"]),
    "db-snapshot": (db_snapshot.main, ["--name", "before_y"]),
    "db-rollback": (db_rollback.main, ["--name", "before_x"]),
    "db-snapshots DROP": (db_snapshots.main, ["--drop", "before_x"]),
    "db-snapshots KEEP": (db_snapshots.main, ["--keep", "1"]),
}


@pytest.mark.parametrize("command", COMMANDS)
def test_a_dry_run_makes_no_changing_call(world, command, capsys):
    main, args = COMMANDS[command]
    dry(main, *args, capsys=capsys)
    assert world.runner.changes == []
    assert world.runner.recorded or command == "db-down", "it read what it would change"


def test_a_dry_run_of_restore_and_seed_makes_no_changing_call(world, capsys):
    path = backup(world)
    err = dry(db_restore.main, "--file", str(path), capsys=capsys)
    assert "restore:  " in err and "replace:  database 'sum_db'" in err
    world.settings.fixture.parent.mkdir(parents=True)
    world.settings.fixture.write_bytes(path.read_bytes())
    err = dry(db_seed.main, "--force", capsys=capsys)
    assert "seed:     " in err
    assert world.runner.changes == []


def test_a_dry_run_of_prune_makes_no_changing_call(world, capsys):
    for day in range(1, 4):
        backup(world, f"sum_db_2025120{day}_000000.sql")
    err = dry(db_prune.main, "--keep", "1", capsys=capsys)
    assert "remove:   sum_db_20251201_000000.sql" in err
    assert len(list(world.settings.backup_dir.glob("*.sql"))) == 3


def test_a_dry_run_of_upgrade_makes_no_changing_call(tmp_path, monkeypatch, capsys):
    kit = make_kit(tmp_path, World(tmp_path), major=17, image="postgres:17")
    monkeypatch.setattr(db_upgrade, "open_kit", lambda args, command="": kit)
    err = dry(db_upgrade.main, capsys=capsys)
    assert "from PostgreSQL 15 to 17" in err and "postgres:15 (no network)" in err
    assert kit.runner.changes == []


@pytest.mark.parametrize("kind", ["database", "made", "tar"])
def test_a_dry_run_of_undo_makes_no_changing_call_for_each_kind_of_copy(world, kind, capsys):
    copy = {"database": {"kind": "database", "database": "sum_db_dbguard_snap_before_restore",
                         "snapshot": "before_restore", "of": "sum_db"},
            "made": {"kind": "made", "database": "sum_db_dbguard_snap_before_x",
                     "snapshot": "before_x", "of": "sum_db"}}.get(kind)
    target = {"kind": "database", "name": "sum_db"}
    if kind == "tar":
        copy = {"kind": "tar", "path": tar(world), "store": "sumplatform_sum_db_data"}
        target = {"kind": "volume", "name": "sumplatform_sum_db_data"}
    journal(world, ("db-restore" if kind != "tar" else "db-migrate-volume", target, copy))
    err = dry(db_undo.main, capsys=capsys)
    assert "undo:     #1" in err
    assert world.runner.changes == []


def test_the_runner_refuses_a_changing_call_in_a_dry_run_and_the_world_fails_on_one(tmp_path):
    from dbguard.runner import DryRunViolation, Runner

    runner = Runner(tmp_path, dry_run=True)
    with pytest.raises(DryRunViolation):
        runner(["docker", "volume", "rm", "x"])
    with pytest.raises(DryRunViolation):
        runner.popen(["docker", "run", "--rm", "image"])
    assert runner.calls == 0, "nothing was started"
    world = World(tmp_path, dry_run=False)
    with pytest.raises(AssertionError, match="a changing call"):
        world(["docker", "volume", "rm", "x"])
    assert world(["docker", "volume", "ls"], reads=True).returncode == 0
