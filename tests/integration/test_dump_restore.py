"""db-dump and db-restore on the real engine: round trips that compare every row, files that
are only ever whole, bad backups refused with nothing touched, and restores that fail halfway
leaving the database as it was."""
from __future__ import annotations

import json
import re
import signal
import stat
import subprocess
import time

import pytest

from conftest import shown

NAME = re.compile(r"^sum_db_\d{8}_\d{6}\.(dump|sql)$")


def dumps(kit) -> list:
    folder = kit.root / "backups"
    return sorted(p.name for p in folder.iterdir() if NAME.match(p.name))


def streaming(kit, proc, written: int, before: set) -> None:
    """Returns once the dump's new hidden partial file (none of `before`) holds `written`
    bytes, or the dump ended."""
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        for path in set((kit.root / "backups").glob(".*.partial")) - before:
            try:
                if path.stat().st_size >= written:
                    return
            except FileNotFoundError:  # renamed into place meanwhile: the dump ended
                pass
        time.sleep(0.01)


def dump(kit, *args: str):
    r = kit.script("db_dump", *args)
    assert r.returncode == 0, shown(r)
    return kit.root / r.stdout.strip()


KEPT = "sum_db_dbguard_snap_before_restore"  # what a restore replaced, as a snapshot


def databases(kit) -> set[str]:
    return {r[0] for r in kit.sql("SELECT datname FROM pg_database WHERE NOT datistemplate")}


def rich_content(kit) -> None:
    kit.sql("CREATE TABLE kinds (id int PRIMARY KEY, j jsonb, b bytea, t timestamptz, "
            "u text, n numeric(20, 6), a int[])")
    kit.sql("INSERT INTO kinds SELECT g, jsonb_build_object('g', g), decode(md5(g::text), 'hex'),"
            " '2025-12-15 12:44:27+00'::timestamptz + g * interval '1 minute', "
            "'ünïcødé ' || g, g / 7.0, ARRAY[g, g * 2] FROM generate_series(1, 2000) g")
    kit.sql("CREATE VIEW kinds_view AS SELECT id, u FROM kinds")
    kit.sql("CREATE SEQUENCE counter START 42")


# Under v1 too through tests/integration/test_adoption.py's v1 journeys.
@pytest.mark.parametrize("fmt", ["custom", "plain"])
def test_dump_change_restore_gives_back_every_row(running_kit, fmt):
    kit = running_kit
    rich_content(kit)
    before = kit.fingerprint()
    path = dump(kit, "--format", fmt)
    kit.sql("UPDATE pages SET title = 'changed' WHERE id < 100")
    kit.sql("DELETE FROM kinds WHERE id > 1000")
    kit.sql("CREATE TABLE extra AS SELECT 1 AS x")
    changed = kit.fingerprint()
    r = kit.make("db-restore", f"FILE={path}", "YES=1")
    assert r.returncode == 0, shown(r)
    assert kit.fingerprint() == before
    assert kit.sql("SELECT last_value FROM counter") == [(42,)]
    assert "public.extra: 1 -> -" in r.stderr and "tables: 3 -> 2" in r.stderr, shown(r)
    assert "safety dump:" not in r.stderr and "undo: make db-undo" in r.stderr, \
        "the replaced database is the safety copy, not a second dump"
    assert databases(kit) == {"postgres", "sum_db", KEPT}, \
        "no scratch database is left; the replaced one is kept as a snapshot"
    assert kit.fingerprint(KEPT) == changed
    r = kit.script("db_snapshots", "--json")
    assert [s["name"] for s in json.loads(r.stdout)] == ["before_restore"], shown(r)
    r = kit.make("db-undo", "YES=1")
    assert r.returncode == 0 and "put back: snapshot 'before_restore'" in r.stderr, shown(r)
    assert kit.fingerprint() == changed, "one command undoes the restore"


def test_dump_files_are_whole_owner_only_and_checksummed(running_kit):
    kit = running_kit
    r = kit.script("db_dump")
    assert r.returncode == 0, shown(r)
    path = kit.root / r.stdout.strip()
    assert NAME.match(path.name) and path.suffix == ".dump", "custom is the default"
    assert re.search(rf"INFO: wrote {re.escape(str(path))} \(\d+\.\d KiB, \d+\.\ds, sha256 in ",
                     r.stderr), shown(r)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    sha = path.with_name(path.name + ".sha256").read_text().split()
    import hashlib
    assert sha == [hashlib.sha256(path.read_bytes()).hexdigest(), path.name]
    plain = dump(kit, "--format", "plain")
    assert "-- PostgreSQL database dump complete" in plain.read_text().splitlines()[-6:]


@pytest.mark.parametrize("flavor", ["v2"])
def test_killed_dumps_leave_nothing_restore_or_backups_would_take(running_kit):
    kit = running_kit
    kit.sql("CREATE TABLE big AS SELECT g, md5(g::text) || md5((g * 7)::text) AS v "
            "FROM generate_series(1, 800000) g")
    started = time.monotonic()
    dump(kit)
    full = time.monotonic() - started
    (kit.root / "backups").joinpath(dumps(kit)[0]).unlink()
    for f in (kit.root / "backups").glob("*.sha256"):
        f.unlink()
    for fraction in (0.1, 0.3, 0.5, 0.7, 0.9):
        proc = kit.popen("db_dump")
        time.sleep(full * fraction)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert dumps(kit) == [], f"killed at {fraction:.0%} of a dump"
    # Ctrl-C (SIGINT to the kit alone, as `kill -INT` sends it) once the dump streams into its
    # partial file, at its first bytes and past its first MiB: moments of the dump, not of the
    # clock (a busy machine can still be starting Python after a fixed delay, and a SIGINT
    # before Python's handler is in place ends the process without reaching the kit).
    for written in (1, 1 << 20):
        before = set((kit.root / "backups").glob(".*.partial"))  # the SIGKILLed runs' own
        proc = kit.popen("db_dump")
        streaming(kit, proc, written, before)
        proc.send_signal(signal.SIGINT)
        # The bound is not a speed: before the fix the kit waited forever for Compose, which
        # runs as a child of the docker CLI and outlived it.
        out, err = proc.communicate(timeout=120)
        assert proc.returncode in (0, 130), (proc.returncode, out, err)
        left = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert str(kit.root) not in left, f"a process of the interrupted dump is left:\n{left}"
        sessions, deadline = None, time.monotonic() + 120  # those of the SIGKILLed runs end
        while sessions != [(0,)] and time.monotonic() < deadline:  # when their pipes close
            sessions = kit.sql("SELECT count(*) FROM pg_stat_activity WHERE "
                               "application_name = 'dbguard' AND query LIKE 'COPY %'")
            time.sleep(0.5)
        assert sessions == [(0,)], "no pg_dump session is left in the server"
        for f in (kit.root / "backups").glob("sum_db_*"):
            f.unlink()  # a dump that finished before the signal
    r = kit.script("db_backups")
    assert "no backups in" in r.stdout, shown(r)
    r = kit.script("db_restore", "--yes")
    assert r.returncode == 3, shown(r)
    assert r.stderr.strip().splitlines()[-1].startswith("ERROR: no backup of 'sum_db' in ")


def test_a_dump_that_fails_leaves_nothing(running_kit):
    kit = running_kit
    kit.write_env(DJANGO_DB_NAME="nosuchdb")
    r = kit.script("db_dump")
    assert r.returncode == 1, shown(r)
    assert 'database "nosuchdb" does not exist' in r.stderr.strip().splitlines()[-1], shown(r)
    left = sorted(p.name for p in (kit.root / "backups").iterdir())
    assert left == [".dbguard.lock", ".gitkeep"], "no dump and no partial file, only the lock"


def test_bad_backups_are_refused_with_nothing_changed(running_kit):
    kit = running_kit
    good = dump(kit)
    kit.sql("INSERT INTO pages (title) VALUES ('after the dump')")
    before = kit.fingerprint()
    cut = kit.root / "backups" / "sum_db_20200101_000000.dump"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    cut.with_name(cut.name + ".sha256").write_text(
        good.with_name(good.name + ".sha256").read_text().replace(good.name, cut.name))
    wrong = kit.root / "backups" / "sum_db_20200102_000000.dump"
    wrong.write_bytes(good.read_bytes())
    wrong.with_name(wrong.name + ".sha256").write_text("0" * 64 + f"  {wrong.name}\n")
    junk = kit.root / "junk.dump"
    junk.write_bytes(bytes(range(256)) * 64)
    short = kit.root / "short.dump"  # a foreign cut archive without a checksum
    short.write_bytes(good.read_bytes()[:-200])
    cases = {cut: "does not match its checksum: it was truncated or changed after it was "
                  "written",
             wrong: "does not match its checksum",
             junk: "is not a PostgreSQL dump",
             short: "does not read back as a whole archive"}
    files = sorted(p.name for p in (kit.root / "backups").iterdir() if p.name != ".dbguard.lock")
    for path, message in cases.items():
        r = kit.script("db_restore", "--file", str(path), "--yes")
        assert r.returncode == 3, shown(r)
        assert message in r.stderr.strip().splitlines()[-1], shown(r)
        assert r.stderr.strip().endswith("nothing was changed"), shown(r)
    assert kit.fingerprint() == before
    # Three of them begin like archives, so each was copied into the container while it was
    # checked; every refused one's copy is gone.
    assert "dbguard-restore-" not in container_tmp(kit)
    assert sorted(p.name for p in (kit.root / "backups").iterdir()
                  if p.name != ".dbguard.lock") == files, "no safety dump was needed"
    assert databases(kit) == {"postgres", "sum_db"}


def test_the_newest_good_backup_is_the_default(running_kit):
    kit = running_kit
    older = dump(kit)
    before = kit.fingerprint()
    time.sleep(1.1)
    kit.sql("DELETE FROM pages")
    newer = dump(kit)
    with open(newer, "r+b") as handle:
        handle.truncate(newer.stat().st_size - 10)
    r = kit.script("db_restore", "--yes")
    assert r.returncode == 0, shown(r)
    assert f"WARNING: skipping {newer.name}: {newer.name} does not match its checksum" in r.stderr
    assert f"restore:  {older}" in r.stderr
    assert kit.fingerprint() == before


@pytest.mark.parametrize("fmt", ["plain", "custom"])
def test_a_restore_that_fails_halfway_leaves_the_database_as_it_was(running_kit, fmt):
    kit = running_kit
    if fmt == "plain":
        path = dump(kit, "--format", "plain")
        text = path.read_text()
        cut = text.index("\\.\n") + 3  # after the first table's rows
        bad = kit.root / "bad.sql"
        bad.write_text(text[:cut] + "\nSELECT 1 / 0;\n" + text[cut:])
        expected = "division by zero"
    else:
        kit.sql("CREATE ROLE ghost")
        kit.sql("CREATE TABLE haunted AS SELECT generate_series(1, 10) AS x")
        kit.sql("ALTER TABLE haunted OWNER TO ghost")
        bad = dump(kit)
        kit.sql("DROP TABLE haunted")
        kit.sql("DROP ROLE ghost")
        expected = 'role "ghost" does not exist'
    kit.sql("INSERT INTO pages (title) VALUES ('current')")
    good = dump(kit)
    assert kit.script("db_restore", "--file", str(good), "--yes").returncode == 0
    kept = kit.fingerprint(KEPT)  # what the good restore replaced: its before_restore
    before = kit.fingerprint()
    watcher = kit.connect()  # another client stays connected throughout
    r = kit.script("db_restore", "--file", str(bad), "--yes")
    assert r.returncode == 1, shown(r)
    assert expected in r.stderr and "The current database was left as it was" in r.stderr, \
        shown(r)
    assert kit.fingerprint() == before
    assert kit.fingerprint(KEPT) == kept, "the previous copy is kept until a load succeeds"
    assert databases(kit) == {"postgres", "sum_db", KEPT}
    assert watcher.execute("SELECT 1").fetchone() == (1,), "nothing was swapped or closed"
    watcher.close()
    history = json.loads(kit.make("db-history", "JSON=1").stdout)
    assert (history[-1]["command"], history[-1]["state"], history[-1]["settled"]) == (
        "db-restore", "failed at load", True), history[-1]


def test_restore_closes_other_connections_and_swaps(running_kit):
    kit = running_kit
    path = dump(kit)
    before = kit.fingerprint()
    kit.sql("DELETE FROM pages")
    idle = kit.connect()
    r = kit.script("db_restore", "--file", str(path), "--yes")
    assert r.returncode == 0, shown(r)
    with pytest.raises(Exception):
        idle.execute("SELECT 1")
    assert kit.fingerprint() == before


@pytest.mark.parametrize("flavor", ["v2"])
def container_tmp(kit) -> str:
    service = kit.compose("ps", "-q", "db").stdout.strip()
    return subprocess.run(["docker", "exec", service, "ls", "/tmp"], capture_output=True,
                          text=True, check=True).stdout


def test_restore_questions_and_settings(running_kit):
    kit = running_kit
    path = dump(kit)
    kit.sql("DELETE FROM pages WHERE id < 10")
    before = kit.fingerprint()
    count = len(dumps(kit))
    r = kit.script("db_restore", "--file", str(path))
    assert r.returncode == 3 and "no terminal to ask for confirmation" in r.stderr, shown(r)
    code, out = kit.tty("db_restore", "--file", str(path), answer="n")
    assert code == 3 and "ERROR: not confirmed. Nothing was changed" in out, out
    assert "[y/N]" in out
    # The dump's copy into the container started before the question; a "no" removes it.
    assert "dbguard-restore-" not in container_tmp(kit)
    r = kit.script("db_restore", "--file", str(path), "--dry-run")
    assert r.returncode == 0 and "dry run: nothing was changed" in r.stderr, shown(r)
    assert kit.fingerprint() == before and len(dumps(kit)) == count
    kit.sql(f"CREATE DATABASE {KEPT}")  # as the previous restore keeps it
    kit.sql("CREATE TABLE from_before (x int)", dbname=KEPT)
    r = kit.script("db_restore", "--file", str(path), "--dry-run")
    assert r.returncode == 0 and "drops:    the snapshot 'before_restore'" in r.stderr, shown(r)
    assert "the previous restore kept, once the new load has succeeded" in r.stderr, shown(r)
    assert kit.fingerprint(KEPT) == {"public.from_before": "0:"}
    r = kit.script("db_restore", "--file", str(path), "--yes")
    assert r.returncode == 0, shown(r)
    assert "drops:    the snapshot 'before_restore'" in r.stderr, shown(r)
    assert kit.fingerprint(KEPT) == before, "now it holds the replaced database"
    assert len(dumps(kit)) == count, "no safety dump unless asked"
    kit.write_env(DBGUARD_SAFETY_DUMP="1")
    r = kit.script("db_restore", "--file", str(path), "--yes")
    assert r.returncode == 0, shown(r)
    safety = re.search(r"safety dump: (\S+)", r.stderr)[1]
    assert safety.endswith("_pre-restore.dump") and (kit.root / safety).is_file(), shown(r)
    assert "first:    a safety dump of it" in r.stderr, shown(r)


@pytest.mark.parametrize("flavor", ["v2"])
def test_dump_and_restore_need_the_server(kit):
    for script in ("db_dump", "db_restore"):
        r = kit.script(script, "--yes") if script == "db_restore" else kit.script(script)
        assert r.returncode == 1, shown(r)
        assert r.stderr.strip() == ("ERROR: the 'db' service is not running. Start it with "
                                    "`make db-up` and run again")


@pytest.mark.parametrize("flavor", ["v2"])
def test_writes_made_while_a_restore_runs_are_kept(running_kit):
    """An application keeps writing during the restore. Every row it committed is kept: in
    the replaced database, which the restore keeps as the snapshot before_restore."""
    import threading

    kit = running_kit
    kit.seed_rows(100_000)  # a load that takes a while
    path = dump(kit)
    kit.sql("CREATE TABLE log (id int PRIMARY KEY)")  # not in the dump
    stop, committed = threading.Event(), []

    def application():
        while not stop.is_set():
            try:
                with kit.connect() as conn:
                    while not stop.is_set():
                        conn.execute("INSERT INTO log VALUES (%s)", [len(committed)])
                        committed.append(len(committed))
            except Exception:  # terminated at the swap, or no log table after it: retry
                time.sleep(0.05)

    writer = threading.Thread(target=application, daemon=True)
    writer.start()
    while not committed:  # the application is writing before the restore begins
        time.sleep(0.05)
    r = kit.script("db_restore", "--file", str(path), "--yes")
    stop.set()
    writer.join(60)
    assert r.returncode == 0, shown(r)
    assert "kept as the snapshot 'before_restore'" in r.stderr, shown(r)
    kept = {row[0] for row in kit.sql("SELECT id FROM log", dbname=KEPT)}
    assert set(committed) <= kept, f"{len(set(committed) - kept)} committed rows were lost"


@pytest.mark.parametrize("flavor", ["v2"])
def test_a_restore_killed_while_loading_is_cleared_by_the_next_run(running_kit):
    kit = running_kit
    kit.seed_rows(400_000)
    before = kit.fingerprint()
    path = dump(kit)
    # The test holds a lock the swap waits for (a rename of 'sum_db'), so the restore cannot
    # end before the kill, however fast the machine loads.
    holder = kit.connect("postgres")
    holder.execute("BEGIN")
    holder.execute("COMMENT ON DATABASE sum_db IS NULL")
    proc = kit.popen("db_restore", "--file", str(path), "--yes")
    # Under way: loading, or past it (on a fast machine) and waiting for the test's lock.
    loading = ("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE "
               "'dbguard:db-restore:%' AND (datname = 'sum_db_dbguard_new' "
               "OR wait_event_type = 'Lock')")
    deadline = time.monotonic() + 300  # a bound for a hang only
    while kit.sql(loading, dbname="postgres") == [(0,)]:
        assert proc.poll() is None, "the restore ended before it could be killed"
        assert time.monotonic() < deadline, "the restore never started loading"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    holder.close()
    r = kit.script("db_restore", "--file", str(path), "--yes")
    assert r.returncode == 0, shown(r)
    assert kit.fingerprint() == before
    assert databases(kit) == {"postgres", "sum_db", KEPT}
    left = container_tmp(kit)
    assert "dbguard-restore-" not in left, left


@pytest.mark.parametrize("flavor", ["v2"])
def test_a_database_closed_by_hand_is_named_as_such_and_left_to_its_owner(running_kit):
    """Only what the journal says a dbguard command closed is reopened; a database someone
    closed on purpose is named, and a restore or snapshot refuses it rather than guess."""
    kit = running_kit
    path = dump(kit)
    kit.sql("ALTER DATABASE sum_db WITH ALLOW_CONNECTIONS false", dbname="postgres")
    allowed = "SELECT datallowconn FROM pg_database WHERE datname = 'sum_db'"
    problems = json.loads(kit.script("db_info", "--json").stdout)["problems"]
    closed = next(p for p in problems if p["code"] == "DATABASE_CLOSED")
    assert "no dbguard command in the journal closed it: someone closed it by hand" in \
        closed["message"], closed
    assert kit.script("db_up").returncode == 0
    assert kit.sql(allowed, dbname="postgres") == [(False,)], "db-up leaves it to its owner"
    for script, args in (("db_restore", ["--file", str(path), "--yes"]),
                         ("db_snapshot", [])):
        r = kit.script(script, *args)
        assert r.returncode == 3 and "is closed to connections, and no interrupted dbguard " \
            "command in the journal closed it" in r.stderr, shown(r)
    assert kit.sql(allowed, dbname="postgres") == [(False,)], "nothing changed"
