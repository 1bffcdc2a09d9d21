"""The journal on the real engine: db-history lists what each data-changing command did and the
copy it kept; db-undo reverses each kind of operation from that copy (rows compared) or says
why it cannot; an operation interrupted halfway is named exactly by db-info and settled by the
next command (db-up included), never guessed from leftovers; and interrupted means stopped:
nothing serves a half-made volume."""
from __future__ import annotations

import json
import signal
import time

import pytest

from conftest import KEY, docker, shown


def history(kit) -> list[dict]:
    r = kit.make("db-history", "JSON=1")
    assert r.returncode == 0, shown(r)
    return json.loads(r.stdout)


def problems(kit) -> dict[str, dict]:
    facts = json.loads(kit.script("db_info", "--json").stdout)
    return {p["code"]: p for p in facts["problems"]}


def undo(kit, *args: str):
    r = kit.make("db-undo", "YES=1", *args)
    assert r.returncode == 0, shown(r)
    return r


@pytest.mark.parametrize("flavor", ["v2"])
def test_undo_reverses_each_kind_of_operation_inside_the_server(running_kit):
    kit = running_kit
    start = kit.fingerprint()
    # A seed, reversed: the database it replaced comes back.
    r = kit.make("db-fixture")
    assert r.returncode == 0, shown(r)
    kit.sql("CREATE TABLE later AS SELECT 1 AS x")
    grown = kit.fingerprint()
    assert kit.make("db-seed", "FORCE=1", "YES=1").returncode == 0
    assert kit.fingerprint() == start
    r = undo(kit)
    assert "undo:     #1 db-seed of database 'sum_db'" in r.stderr, shown(r)
    assert kit.fingerprint() == grown
    # A snapshot, reversed: it is dropped again, and the data is not touched.
    assert kit.make("db-snapshot", "NAME=keepme").returncode == 0
    r = undo(kit)
    assert "drop:     snapshot 'keepme'" in r.stderr, shown(r)
    assert kit.sql("SELECT count(*) FROM pg_database WHERE datname LIKE '%snap_keepme'",
                   "postgres") == [(0,)]
    assert kit.fingerprint() == grown
    # A restore into a database that did not exist, reversed: it is set aside, not dropped.
    r = kit.script("db_dump")
    path = kit.root / r.stdout.strip()
    assert kit.make("db-restore", f"FILE={path}", "DB=copy_of_sum", "YES=1").returncode == 0
    assert kit.fingerprint("copy_of_sum") == grown
    r = undo(kit)
    assert "set aside: database 'copy_of_sum', kept as the snapshot 'replaced_" in r.stderr, \
        shown(r)
    names = {row[0] for row in kit.sql("SELECT datname FROM pg_database", "postgres")}
    assert "copy_of_sum" not in names
    (aside,) = [n for n in names if n.startswith("copy_of_sum_dbguard_snap_replaced_")]
    assert kit.fingerprint(aside) == grown, "nothing of it was lost"
    states = [(e["command"], e["state"]) for e in history(kit)]
    assert states == [("db-seed", "done; undone by #2"), ("db-undo", "done"),
                      ("db-snapshot", "done; undone by #4"), ("db-undo", "done"),
                      ("db-restore", "done; undone by #6"), ("db-undo", "done")], states


@pytest.mark.parametrize("flavor", ["v2"])
def test_undo_refuses_what_kept_no_copy_or_lost_it(running_kit):
    kit = running_kit
    for name in ("a", "b"):
        assert kit.make("db-snapshot", f"NAME={name}").returncode == 0
    assert kit.make("db-snapshots", "DROP=a", "YES=1").returncode == 0
    r = kit.make("db-undo", "YES=1")
    assert r.returncode != 0 and "ERROR: refusing to undo #3 db-snapshots: #3 db-snapshots " \
        "kept no copy to go back to (a dropped snapshot is not kept: it was itself a copy). " \
        "Nothing was changed" in r.stderr, shown(r)
    dump = kit.root / kit.script("db_dump").stdout.strip()
    assert kit.make("db-restore", f"FILE={dump}", "YES=1").returncode == 0
    kit.sql("DROP DATABASE sum_db_dbguard_snap_before_restore", "postgres")
    before = kit.fingerprint()
    r = kit.make("db-undo", "YES=1")
    assert r.returncode != 0 and "the copy it kept, the snapshot 'before_restore', is gone" \
        in r.stderr, shown(r)
    assert kit.fingerprint() == before
    r = kit.make("db-undo", "OP=99", "YES=1")
    assert r.returncode != 0 and "ERROR: the journal has no operation #99" in r.stderr, shown(r)
    with open(kit.root / "backups" / "journal.jsonl", "a") as journal:
        journal.write('{"op": 7, "event": "beg')  # a torn last line: a crash in a write
    assert [e["id"] for e in history(kit)] == [1, 2, 3, 4], "the torn line is ignored"


def big(kit, rows: int = 1_500_000) -> None:
    kit.sql(f"CREATE TABLE big AS SELECT g AS id, md5(g::text) AS v "
            f"FROM generate_series(1, {rows}) g")


def kill_in_the_server(kit, command: str, query: str, hold: str = "") -> None:
    """SIGKILL of the command once its statement runs in the server, and of that statement's
    session too: what a crash of the machine or of the container leaves. (A killed command
    alone leaves its statement to finish in the server, which makes the same state more rarely.)
    `hold`: as in crash_in_the_server, a lock the statement waits for until it is killed.
    """
    script = command.replace("-", "_")
    holder = kit.connect("postgres") if hold else None
    if holder:
        holder.execute("BEGIN")
        holder.execute(hold)
    proc = kit.popen(script, "--yes") if command != "db-snapshot" else kit.popen(script)
    running = ("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE "
               f"'dbguard:{command}:%' AND query LIKE '{query}%'"
               + (" AND wait_event_type = 'Lock'" if hold else ""))  # waiting for the test
    deadline = time.monotonic() + 300
    with kit.connect("postgres") as watch:  # one session asks, not a new one every 20 ms
        while watch.execute(running).fetchall() == [(0,)]:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    kit.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name "
            f"LIKE 'dbguard:{command}:%'", "postgres")
    if holder:
        holder.close()


def crash_in_the_server(kit, command: str, query: str, hold: str = "") -> None:
    """The container killed the moment the command's statement runs in the server, then the
    command itself: what a crash of the machine or of the container leaves. Whatever the
    statement was doing is rolled back, and what the command had committed before it stays,
    however fast or slow the machine. The container is started again as Docker would.
    `hold`: a statement the test runs first in a transaction it keeps open (in the database
    `postgres`), so that the command's statement waits for its lock until the crash."""
    script = command.replace("-", "_")
    holder = kit.connect("postgres") if hold else None
    if holder:
        holder.execute("BEGIN")
        holder.execute(hold)
    proc = kit.popen(script, "--yes") if command != "db-snapshot" else kit.popen(script)
    running = ("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE "
               f"'dbguard:{command}:%' AND query LIKE '{query}%'")
    deadline = time.monotonic() + 300
    with kit.connect("postgres") as watch:  # one session asks, not a new one every 20 ms
        while watch.execute(running).fetchall() == [(0,)]:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.02)
    container = kit.compose("ps", "-q", "db").stdout.strip()
    # Frozen first, so the command cannot see its connection drop and record a failure of its
    # own before it is killed: the crash takes both at the same moment, as a machine's would.
    proc.send_signal(signal.SIGSTOP)
    docker("kill", container)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    if holder:
        holder.close()  # its server is gone
    docker("start", container)
    deadline = time.monotonic() + 300
    while True:  # until the server has recovered and answers (a bound only for a hang)
        try:
            kit.sql("SELECT 1", "postgres")
            return
        except Exception:
            assert time.monotonic() < deadline, "the server never came back"
            time.sleep(0.2)


@pytest.mark.parametrize("flavor", ["v2"])
def test_a_killed_snapshot_is_named_exactly_and_the_next_command_reopens_the_database(
        running_kit):
    kit = running_kit
    big(kit)
    before = kit.fingerprint()
    count = "SELECT count(*) FROM pg_database"
    databases = kit.sql(count, "postgres")
    # The copy waits for a lock the test holds on the database (COMMENT takes one that
    # CREATE DATABASE ... TEMPLATE waits for), so the crash always finds it unfinished with
    # the database closed, however fast the machine copies.
    crash_in_the_server(kit, "db-snapshot", "CREATE DATABASE",
                        hold="COMMENT ON DATABASE sum_db IS 'held by the test'")
    assert kit.sql(count, "postgres") == databases, "the copy was rolled back by the crash"
    outcome = "no snapshot made; reopened"
    closed = "SELECT datallowconn FROM pg_database WHERE datname = 'sum_db'"
    assert kit.sql(closed, "postgres") == [(False,)], "the state the issue found"
    found = problems(kit)
    assert "DATABASE_CLOSED" not in found, "not blamed on anybody else"
    message = found["INTERRUPTED_OPERATION"]["message"]
    assert message.startswith("db-snapshot #1 of database 'sum_db' was interrupted at step "
                              "'copy'"), message
    r = kit.script("db_up")
    assert r.returncode == 0, shown(r)
    assert f"settled db-snapshot #1 of 'sum_db', interrupted at copy: {outcome}" in r.stderr, \
        shown(r)
    assert "reopened 'sum_db'" in r.stderr, shown(r)
    assert kit.sql(closed, "postgres") == [(True,)] and kit.fingerprint() == before
    assert "INTERRUPTED_OPERATION" not in problems(kit)
    r = kit.script("db_snapshot")  # the same command again works
    assert r.returncode == 0, shown(r)
    state = history(kit)[0]["state"]
    assert state.startswith(f"interrupted at copy; {outcome}") and state.endswith(
        "reopened 'sum_db' (db-up)"), history(kit)[0]


# Where db-rollback is killed, the statement it runs, the lock the test holds so that the
# statement is still running when the kill comes (however fast the machine), and what
# settling it does besides. Killed in its copy, the unfinished copy is rolled back with its
# session; killed in its swap, the finished copy is left and 'sum_db' is closed.
ROLLBACK_KILLS = {
    "copy": ('CREATE DATABASE', 'COMMENT ON DATABASE sum_db_dbguard_snap_base IS NULL', ""),
    "swap": ('ALTER DATABASE "sum_db" RENAME', "COMMENT ON DATABASE sum_db IS NULL",
             "; dropped its unfinished 'sum_db_dbguard_new', reopened 'sum_db'"),
}


@pytest.mark.parametrize("flavor", ["v2"])
@pytest.mark.parametrize("step", sorted(ROLLBACK_KILLS))
def test_a_killed_rollback_is_named_as_a_rollback_and_settled(running_kit, step):
    kit = running_kit
    query, hold, besides = ROLLBACK_KILLS[step]
    big(kit, 200_000)
    assert kit.make("db-snapshot", "NAME=base").returncode == 0
    kit.sql("DELETE FROM big WHERE id % 2 = 0")
    changed = kit.fingerprint()
    kill_in_the_server(kit, "db-rollback", query, hold)
    message = problems(kit)["INTERRUPTED_OPERATION"]["message"]
    assert message.startswith("db-rollback #2 of database 'sum_db' was interrupted at step "
                              f"'{step}'"), message
    assert "restore or seed" not in json.dumps(problems(kit)), "no other command is blamed"
    r = kit.script("db_rollback", "--yes")  # any command settles it first, then works
    assert r.returncode == 0, shown(r)
    settled = (f"settled db-rollback #2 of 'sum_db', interrupted at {step}: 'sum_db' is as it "
               f"was before{besides}\n")
    assert settled in r.stderr, shown(r)
    undo(kit)
    assert kit.fingerprint() == changed


@pytest.mark.parametrize("flavor", ["v2"])
def test_an_upgrade_killed_while_loading_serves_nothing_and_is_refused(make_kit, image,
                                                                       image17):
    kit = make_kit(DB_IMAGE=image)
    kit.up()
    big(kit, 400_000)
    kit.script("db_down")
    kit.write_env(DB_IMAGE=image17)
    proc = kit.popen("db_upgrade", "--old-image", image, "--yes")
    from harness import read_until
    read_until(proc, "INFO: loading ")
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    service = docker("ps", "-q", "--filter", f"label=com.docker.compose.project={kit.token}",
                     "--filter", "status=running").stdout.split()
    assert service == [], "no container of the project serves the half-loaded cluster"
    # Started by hand anyway (plain `docker compose up`): the next dbguard command stops it.
    kit.compose("up", "-d", "db", check=False)
    r = kit.script("db_up")
    assert r.returncode == 3 and "UPGRADE_INCOMPLETE: db-upgrade #1 of volume" in r.stderr, \
        shown(r)
    assert "was interrupted at step 'load'" in r.stderr and "make db-upgrade   (finishes it)" \
        in r.stderr and "or make db-undo   (reverses it)" in r.stderr, shown(r)
    assert "runs on" in r.stderr and "stopping it" in r.stderr, shown(r)
    running = docker("ps", "-q", "--filter", f"label=com.docker.compose.project={kit.token}",
                     "--filter", "status=running").stdout.split()
    leftovers = docker("ps", "-aq", "--filter", f"label=dbguard.project={kit.token}").stdout
    assert running == [] and leftovers.strip() == "", "stopped, and the helper server removed"
    r = kit.make("db-upgrade", "YES=1", f"OLD_IMAGE={image}")
    assert r.returncode == 0, shown(r)
    assert not list((kit.root / "backups" / "upgrades").glob(".*.partial")), "no leftover dump"
    assert [v for v in docker("volume", "ls", "-q").stdout.split()
            if "socket" in v] == [], "no socket volume survives"
    assert history(kit)[0]["state"].startswith("interrupted at load; finished (db-upgrade #2)")


@pytest.mark.parametrize("flavor", ["v2"])
def test_db_up_waits_for_a_command_that_changes_data(running_kit):
    """db-up could once start PostgreSQL on a volume between migrate's stop and its mark."""
    from dbguard.kit import backup_folder_lock
    from dbguard.settings import load_settings

    kit = running_kit
    kit.script("db_down")
    with backup_folder_lock(load_settings(kit.root), "db-migrate-volume"):
        r = kit.script("db_up")
        assert r.returncode == 3 and "another dbguard command is running (db-migrate-volume" \
            in r.stderr, shown(r)
        running = docker("ps", "-q", "--filter",
                         f"label=com.docker.compose.project={kit.token}").stdout
        assert running.strip() == "", "nothing was started"
    assert kit.script("db_up").returncode == 0


@pytest.mark.parametrize("flavor", ["v2"])
def test_a_full_volume_fails_a_snapshot_in_one_line_and_reopens_the_database(make_kit, token):
    """The server's data on a small tmpfs volume: a copy that does not fit is one ERROR line
    (no traceback), and the database is open again, with no half-made snapshot."""
    kit = make_kit()
    docker("volume", "create", "--driver", "local", "--opt", "type=tmpfs", "--opt",
           "device=tmpfs", "--opt", "o=size=96m", "--label",
           f"com.docker.compose.project={kit.token}", "--label",
           f"com.docker.compose.volume={KEY}", kit.volume)
    kit.up()
    kit.sql("CREATE TABLE fill (g int, v text)")
    service = kit.compose("ps", "-q", "db").stdout.strip()

    def free_kib() -> int:
        out = docker("exec", service, "df", "-k", "/var/lib/postgresql/data").stdout
        return int(out.splitlines()[-1].split()[3])

    size = "SELECT pg_database_size('sum_db') / 1024"
    while free_kib() > kit.sql(size)[0][0] * 1.2:  # until the database no longer fits twice
        kit.sql("INSERT INTO fill SELECT g, repeat(md5(g::text), 8) "
                "FROM generate_series(1, 10000) g")
        kit.sql("CHECKPOINT")
    r = kit.script("db_snapshot", "--name", "nofit")
    assert r.returncode == 1, shown(r)
    errors = [line for line in r.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and "No space left on device" in errors[0], shown(r)
    assert "Traceback" not in r.stderr
    assert kit.sql("SELECT datallowconn FROM pg_database WHERE datname = 'sum_db'",
                   "postgres") == [(True,)]
    assert kit.sql("SELECT count(*) FROM pg_database WHERE datname LIKE '%snap_nofit'",
                   "postgres") == [(0,)]
    assert history(kit)[-1]["state"].startswith("failed at copy"), history(kit)[-1]
