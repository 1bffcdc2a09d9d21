"""db-migrate-volume on the real engine: which source it takes, every refusal (with nothing
changed), the snapshot before anything is replaced, verification, undo, and interruptions."""
from __future__ import annotations

import json
import signal
import time

import pytest

from conftest import KEY, docker, shown, volume_names
from harness import read_until

# Every file with mode, owner, size, mtime and sha256; folders with mode and owner (a folder's
# mtime moves whenever an entry in it is added or removed, the kit's marker included).
MANIFEST = "cd /v && find . -type d -exec stat -c '%a %u %n' {} + | sort && " \
           "find . ! -type d -exec stat -c '%a %u %s %Y %n' {} + | sort && " \
           "find . -type f -exec sha256sum {} + | sort"


def orphan_volume(make_kit, name: str, rows: int = 300):
    """A volume with a cluster and rows whose project has no container any more: what a
    renamed directory leaves behind. Returns the volume name and the rows' fingerprint."""
    old = make_kit(name, COMPOSE_PROJECT_NAME=name)
    old.up("--allow-new-volume")
    old.seed_rows(rows)
    fingerprint = old.fingerprint()
    old.compose("down")
    return f"{name}_{KEY}", fingerprint


def own_data(kit, rows: int) -> dict:
    """Starts the kit's own (new) volume beside the orphan and puts a table of `rows` rows in
    it: data in the target that a migrate must snapshot first. Returns its fingerprint."""
    kit.up("--allow-new-volume")
    kit.sql(f"CREATE TABLE mine AS SELECT generate_series(1, {rows}) AS x")
    return kit.fingerprint()


def manifest(kit, volume: str) -> str:
    return kit.helper(volume, MANIFEST, readonly=True)


def sleeper(kit, name: str, volume: str, *labels: str) -> None:
    """A running container on `volume` that is not of the kit's project. It ends on
    `docker stop` (docker-init passes the signal on), as an application does: a bare sleep as
    PID 1 ignores SIGTERM, and the stop would wait Docker's 10 s."""
    extra = [arg for label in labels for arg in ("--label", label)]
    docker("run", "-d", "--init", "--name", name, *extra, "--mount",
           f"type=volume,source={volume},target=/data,readonly", "--entrypoint", "sleep",
           kit.image, "300")


def last_error(r) -> str:
    return r.stderr.strip().splitlines()[-1]


@pytest.mark.compose_v1  # the kit parses or calls Compose v1 differently here
def test_the_one_candidate_is_copied_with_plan_labels_and_report(make_kit, token):
    source, rows = orphan_volume(make_kit, "old" + token)
    kit = make_kit()
    before = manifest(kit, source)
    r = kit.make("db-migrate-volume", "YES=1")
    assert r.returncode == 0, shown(r)
    for line in (f"source:   {source} (created ", f"target:   {kit.volume}: does not exist yet",
                 f"WARNING: this will OVERWRITE the contents of {kit.volume}",
                 f"SUCCESS: {kit.volume} now holds a verified copy of {source}",
                 "equal to it file by file; cluster system identifier",
                 "sum_db: 1 table, about 300 rows",
                 f"docker volume rm {source}"):
        assert line in r.stderr, shown(r)
    assert kit.fingerprint() == rows
    assert manifest(kit, source) == before, "the source is untouched"
    labels = json.loads(docker("volume", "inspect", "--format", "{{json .Labels}}",
                               kit.volume).stdout)
    assert labels["com.docker.compose.project"] == kit.token


def test_several_candidates_are_listed_and_from_picks_one(make_kit, token):
    a, rows_a = orphan_volume(make_kit, "a" + token, rows=10)
    b, _ = orphan_volume(make_kit, "b" + token, rows=20)
    kit = make_kit()
    r = kit.script("db_migrate_volume", "--yes")
    assert r.returncode == 3, shown(r)
    assert last_error(r).startswith(f"ERROR: refusing to copy into {kit.volume}: 2 volumes or "
                                    f"folders hold a cluster: {a} (created ")
    assert f"{b} (created " in last_error(r) and "PostgreSQL 15" in last_error(r)
    assert last_error(r).endswith("name the one to copy with FROM=<volume or folder>. Nothing "
                                  "was changed")
    assert kit.volume not in volume_names()
    r = kit.make("db-migrate-volume", f"FROM={a}", "YES=1")
    assert r.returncode == 0, shown(r)
    assert kit.fingerprint() == rows_a


@pytest.mark.parametrize("flavor", ["v2"])
def test_refusals_name_the_reason_and_change_nothing(make_kit, token):
    source, _ = orphan_volume(make_kit, "old" + token)
    kit = make_kit()
    empty = f"empty{token}"
    docker("volume", "create", empty)
    source_before = manifest(kit, source)

    def refused(*args, code=3, env=None):
        r = kit.script("db_migrate_volume", *args, env=env)
        assert r.returncode == code, shown(r)
        assert kit.volume not in volume_names(), "nothing was created"
        assert manifest(kit, source) == source_before, "the source is untouched"
        return last_error(r)

    assert refused("--from", "nope" + token, "--yes", code=2) == (
        f"ERROR: there is no volume or folder named 'nope{token}'. `make db-info` (or `make "
        "db-find`) lists the candidates; pass one with FROM=")
    assert refused("--from", empty, "--yes") == (
        f"ERROR: refusing to copy {empty} into {kit.volume}: {empty} holds no PostgreSQL "
        "cluster (no PG_VERSION). Nothing was changed")
    assert refused() == (
        "ERROR: no terminal to ask for confirmation, and --yes was not given. Run it in a "
        "terminal, or confirm ahead with YES=1 (make) or --yes (script); nothing was changed")
    assert refused("--undo", "--from", source, code=2) == (
        "ERROR: --undo and --from do not go together. Use one of them (UNDO=1 or "
        "FROM=<volume>)")
    assert refused("--undo", "--yes") == (
        f"ERROR: the journal records no db-migrate-volume of {kit.volume}. Nothing to undo; "
        "nothing was changed")
    # A helper that a killed run left on the source: named in the plan, kept after a "no".
    sleeper(kit, f"{token}-leftover", source, "dbguard.helper=1")
    code, out = kit.tty("db_migrate_volume", answer="n")
    assert code == 3 and "ERROR: not confirmed. Nothing was changed" in out, out
    assert f"removes:  {token}-leftover (dbguard helpers left by an interrupted run)" in out, out
    assert kit.volume not in volume_names() and manifest(kit, source) == source_before
    assert docker("inspect", "--format", "{{.State.Running}}", f"{token}-leftover"
                  ).stdout.strip() == "true", "answering no removed nothing"
    docker("rm", "-f", "-v", f"{token}-leftover")

    # A foreign container running on the source.
    sleeper(kit, f"{token}-foreign", source)
    assert refused("--yes") == (
        f"ERROR: refusing to copy {source} into {kit.volume}: {token}-foreign (not of project "
        f"{kit.token}) is running on one of them; --force (FORCE=1) stops it too. "
        "Nothing was changed")
    docker("rm", "-f", "-v", f"{token}-foreign")

    # The active volume as source, and a source of another major version.
    kit.up("--allow-new-volume")
    r = kit.script("db_migrate_volume", "--from", kit.volume, "--yes")
    assert r.returncode == 3, shown(r)
    assert last_error(r) == (
        f"ERROR: refusing to copy {kit.volume} into {kit.volume}: the source {kit.volume} is "
        "the active volume itself. Nothing was changed")
    kit.helper(source, "echo 14 > /v/PG_VERSION")
    r = kit.script("db_migrate_volume", "--from", source, "--yes")
    assert r.returncode == 3, shown(r)
    assert f"{source} holds a PostgreSQL 14 cluster but the image runs 15" in last_error(r)
    assert "Set the image to 14, copy, then `make db-upgrade`" in last_error(r)


def test_a_scan_at_work_is_left_alone_and_an_old_kits_leftover_is_removed(make_kit, token):
    """A helper that only looks (db-info or db-find in another terminal or project: every
    volume mounted read-only for a moment) is at work, not left over: db-info does not list it
    as a user, and a migrate neither names nor removes it. An older kit's helper (no owner)
    on the source is named in the plan and removed."""
    source, rows = orphan_volume(make_kit, "old" + token)
    kit = make_kit()
    sleeper(kit, f"{token}-looks", source, "dbguard.helper=look")
    sleeper(kit, f"{token}-old", source, "dbguard.helper=1")
    info = kit.script("db_info")
    row = next(line for line in info.stdout.splitlines() if line.strip().startswith(source))
    assert f"{token}-looks" not in row and f"{token}-old (running)" in row, row
    code, out = kit.tty("db_migrate_volume", answer="y")
    assert code == 0, out
    assert f"{token}-old (dbguard helpers left by an interrupted run)" in out, out
    assert f"{token}-looks" not in out, out

    def running(name: str) -> bool:
        return docker("ps", "-q", "--filter", f"name=^{name}$").stdout.strip() != ""
    assert running(f"{token}-looks"), "the scan at work was left alone"
    assert not running(f"{token}-old"), "the old kit's leftover was removed"
    assert kit.fingerprint() == rows
    docker("rm", "-f", "-v", f"{token}-looks")


def test_a_target_with_data_is_snapshotted_and_undo_puts_it_back(make_kit, token):
    source, old_rows = orphan_volume(make_kit, "old" + token)
    kit = make_kit()
    mine = own_data(kit, 77)
    r = kit.script("db_migrate_volume", "--yes")
    assert r.returncode == 0, shown(r)
    snapshots = sorted((kit.root / "backups" / "volumes").glob(f"{kit.volume}_*.tar"))
    assert len(snapshots) == 1 and f"snapshot of {kit.volume}: {snapshots[0]}" in r.stderr
    assert (snapshots[0].parent / (snapshots[0].name + ".sha256")).exists()
    assert oct(snapshots[0].stat().st_mode & 0o777) == "0o600"
    assert kit.fingerprint() == old_rows
    time.sleep(1.1)  # snapshots are named by the second
    r = kit.make("db-migrate-volume", "UNDO=1", "YES=1")
    assert r.returncode == 0, shown(r)
    assert f"put back: {snapshots[0]} into {kit.volume}" in r.stderr, shown(r)
    assert f"{kit.volume} holds what it held before #1" in r.stderr, shown(r)
    assert kit.fingerprint() == mine
    after = sorted((kit.root / "backups" / "volumes").glob(f"{kit.volume}_*.tar"))
    assert len(after) == 2 and f"snapshot of what {kit.volume} held: {after[1]}" in r.stderr, \
        "undo keeps what it replaces, too"
    r = kit.make("db-undo", "YES=1")  # and db-undo reverses the undo, from that copy
    assert r.returncode == 0, shown(r)
    assert kit.fingerprint() == old_rows
    history = json.loads(kit.make("db-history", "JSON=1").stdout)
    assert [(e["command"], e["state"]) for e in history] == [
        ("db-migrate-volume", "done; undone by #2"), ("db-undo", "done; undone by #3"),
        ("db-undo", "done")]


@pytest.mark.parametrize("fault, error", [
    ("corrupt-copy", "ERROR: copying {source} into {target} failed (the copy differs from "
                     "{source} (differs ./PG_VERSION"),
    ("fail-copy", "ERROR: copying {source} into {target} failed (`docker run` failed"),
])
def test_a_copy_that_fails_or_fails_verification_is_undone(make_kit, token, fault, error):
    source, _ = orphan_volume(make_kit, "old" + token)
    kit = make_kit()
    expected = error.format(source=source, target=kit.volume)

    # Into a volume that did not exist: it stays marked and empty (an empty, unmarked volume
    # beside the data would be the incident's state), db-up refuses it, and db-undo removes it.
    r = kit.script("db_migrate_volume", "--yes", fault=fault)
    assert r.returncode == 1 and last_error(r).startswith(expected), shown(r)
    assert "is marked as unfinished, so nothing starts on it" in last_error(r), shown(r)
    r = kit.script("db_up", "--allow-new-volume")
    assert r.returncode == 3 and "INCOMPLETE_COPY: db-migrate-volume #1" in r.stderr, shown(r)
    r = kit.make("db-undo", "YES=1")
    assert r.returncode == 0, shown(r)
    assert kit.volume not in volume_names(), "it did not exist before: it is gone again"

    # Into a volume with data: its snapshot is put back exactly.
    mine = own_data(kit, 5)
    kit.script("db_down")
    before = manifest(kit, kit.volume)
    r = kit.script("db_migrate_volume", "--yes", fault=fault)
    assert r.returncode == 1 and last_error(r).startswith(expected), shown(r)
    assert f"{kit.volume} was put back as it was" in last_error(r)
    codes = {p["code"] for p in json.loads(kit.script("db_info", "--json").stdout)["problems"]}
    assert not codes & {"INCOMPLETE_COPY", "INTERRUPTED_OPERATION"}, "settled: nothing to do"
    assert manifest(kit, kit.volume) == before, "the snapshot was put back exactly"
    kit.up()
    assert kit.fingerprint() == mine

    if fault != "fail-copy":
        return  # the rest is the same code path for both faults
    # With the database running: it is stopped for the copy and runs again after the undo.
    r = kit.script("db_migrate_volume", "--yes", fault=fault)
    assert r.returncode == 1 and last_error(r).startswith(expected), shown(r)
    assert "starting again what the copy stopped" in r.stderr, shown(r)
    assert kit.fingerprint() == mine, "running again, on the data it had"


@pytest.mark.parametrize("flavor", ["v2"])
def test_refusals_without_a_source_or_with_a_bad_snapshot(kit, token):
    from dbguard.journal import Journal

    r = kit.script("db_migrate_volume", "--yes")
    assert r.returncode == 3, shown(r)
    assert last_error(r) == (
        f"ERROR: refusing to copy into {kit.volume}: no other volume or folder of {kit.volume} "
        "holds a PostgreSQL cluster, so there is nothing to copy (FROM= names one that is "
        "called otherwise). Nothing was changed")
    docker("volume", "create", kit.volume)
    folder = kit.root / "backups" / "volumes"
    folder.mkdir(parents=True)
    snap = folder / f"{kit.volume}_20250101_000000.tar"
    snap.write_bytes(b"x" * 1024)
    (folder / (snap.name + ".sha256")).write_text("0" * 64 + f"  {snap.name}\n")
    op = Journal(kit.root / "backups").begin(
        "db-migrate-volume", {"kind": "volume", "name": kit.volume},
        {"kind": "tar", "path": str(snap), "store": kit.volume}, {})
    op.end("done", settled=True)
    r = kit.script("db_migrate_volume", "--undo", "--yes")
    assert r.returncode == 3, shown(r)
    assert last_error(r) == (
        f"ERROR: refusing to undo #1 db-migrate-volume of {kit.volume}: the copy it kept is not "
        f"there to go back to: the snapshot {snap} does not match its checksum. Nothing was "
        "changed")
    import hashlib
    (folder / (snap.name + ".sha256")).write_text(
        hashlib.sha256(snap.read_bytes()).hexdigest() + f"  {snap.name}\n")
    sleeper(kit, f"{token}-foreign", kit.volume)
    try:
        before = manifest(kit, kit.volume)
        r = kit.script("db_migrate_volume", "--undo", "--yes")
        assert r.returncode == 3, shown(r)
        assert last_error(r) == (
            f"ERROR: refusing to undo #1 db-migrate-volume of {kit.volume}: {token}-foreign "
            f"(not of project {kit.token}) uses {kit.volume}; stop it, or pass FORCE=1. "
            "Nothing was changed")
        assert manifest(kit, kit.volume) == before
    finally:
        docker("rm", "-f", "-v", f"{token}-foreign", check=False)
    snap.unlink()
    r = kit.make("db-undo", "YES=1")
    assert r.returncode != 0 and f"the snapshot {snap} is gone" in r.stderr, shown(r)


def big_orphan(make_kit, name: str):
    old = make_kit(name, COMPOSE_PROJECT_NAME=name)
    old.up("--allow-new-volume")
    old.sql("CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g + 1)::text) AS v "
            "FROM generate_series(1, 600000) g")
    rows = old.fingerprint()
    old.compose("down")
    return f"{name}_{KEY}", rows


def held_copy(kit, proc) -> str:
    """Pauses migrate's copy container once it has marked its target; returns its id. The
    copy container is the one of the kit's helpers for this project that mounts the target
    read-write (looks mount it read-only)."""
    deadline = time.monotonic() + 300
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        for cid in docker("ps", "-q", "--filter", f"label=dbguard.project={kit.project}",
                          "--filter", f"volume={kit.volume}").stdout.split():
            seen = docker("exec", cid, "ls", "-a", "/to", check=False)
            if ".dbguard-incomplete" in seen.stdout.split():
                assert docker("pause", cid, check=False).returncode == 0, \
                    "the copy ended between the look at its mark and the pause"
                return cid
        time.sleep(0.1)


def kill_after(kit, marker: str, delay: float, *args: str) -> str:
    proc = kit.popen("db_migrate_volume", "--yes", *args)
    seen = read_until(proc, marker, timeout=120)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return seen


def test_killed_copy_leaves_a_mark_that_db_up_refuses_and_a_rerun_completes(make_kit, token):
    source, rows = big_orphan(make_kit, "old" + token)
    kit = make_kit()
    # Killed while the copy is held: its container has marked the target and is frozen
    # (`docker pause`), so the kit cannot get past the copy before the kill, however fast the
    # copy or slow the machine. A kill before the mark is a different case, which the journal
    # names; one after the copy another (test_journal).
    proc = kit.popen("db_migrate_volume", "--yes")
    read_until(proc, "INFO: copying", timeout=120)
    copier = held_copy(kit, proc)
    try:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        docker("unpause", copier, check=False)  # it goes on as it would after a real kill
    r = kit.script("db_up")
    assert r.returncode == 3, shown(r)
    assert "INCOMPLETE_COPY" in r.stderr, shown(r)
    r = kit.script("db_migrate_volume", "--yes")
    assert r.returncode == 0, shown(r)
    assert kit.fingerprint() == rows
    facts = json.loads(kit.script("db_info", "--json").stdout)
    assert not next(v for v in facts["volumes"] if v["active"])["incomplete_copy"]


@pytest.mark.parametrize("flavor", ["v2"])
def test_killed_snapshot_leaves_the_target_as_it_was(make_kit, token):
    big_orphan(make_kit, "old" + token)
    kit = make_kit()
    mine = own_data(kit, 1000000)
    kill_after(kit, "INFO: taking a snapshot of", 0.2)
    assert not list((kit.root / "backups" / "volumes").glob("*.tar")), \
        "no snapshot file that looks finished"
    r = kit.up("--allow-new-volume")
    assert "settled db-migrate-volume #1: it stopped before its first change (snapshot): " \
        "nothing of" in r.stderr, shown(r)
    assert kit.fingerprint() == mine


@pytest.mark.parametrize("flavor", ["v2"])
def test_progress_on_a_terminal(make_kit, token):
    big_orphan(make_kit, "old" + token)
    kit = make_kit()
    code, out = kit.tty("db_migrate_volume", "--yes", answer="")
    assert code == 0, out
    assert f"copying old{token}_{KEY}: " in out and "%)" in out, out


@pytest.mark.parametrize("flavor", ["v2"])
def test_force_stops_a_foreign_container_and_proceeds(make_kit, token):
    source, rows = orphan_volume(make_kit, "old" + token)
    kit = make_kit()
    sleeper(kit, f"{token}-foreign", source)
    try:
        r = kit.make("db-migrate-volume", "YES=1", "FORCE=1")
        assert r.returncode == 0, shown(r)
        assert f"stopping {token}-foreign" in r.stderr, shown(r)
        assert docker("inspect", "--format", "{{.State.Running}}", f"{token}-foreign"
                      ).stdout.strip() == "false"
        assert kit.fingerprint() == rows
    finally:
        docker("rm", "-f", "-v", f"{token}-foreign", check=False)


@pytest.mark.parametrize("flavor", ["v2"])
def test_undo_answered_no_changes_nothing(make_kit, token):
    orphan_volume(make_kit, "old" + token)
    kit = make_kit()
    own_data(kit, 1)
    assert kit.script("db_migrate_volume", "--yes").returncode == 0
    migrated = kit.fingerprint()
    code, out = kit.tty("db_migrate_volume", "--undo", answer="n")
    assert code == 3 and "ERROR: not confirmed. Nothing was changed" in out, out
    assert "[y/N]" in out and kit.fingerprint() == migrated
    assert len(list((kit.root / "backups" / "volumes").glob("*.tar"))) == 1


@pytest.mark.parametrize("flavor", ["v2"])
def test_what_changes_while_the_question_waits_is_checked_again(make_kit, token):
    """The plan is shown and asked about; before the answer, another project's container
    starts on the target. The copy looks again after the answer and refuses."""
    source, _ = orphan_volume(make_kit, "old" + token)
    kit = make_kit()
    mine = own_data(kit, 5)
    code, out = kit.tty("db_migrate_volume", answer="y", before_answer=lambda: sleeper(
        kit, f"{token}-intruder", kit.volume, "com.docker.compose.project=elsewhere"))
    assert code == 3, out
    assert f"{token}-intruder (not of project {kit.token}) is running on one of them" \
        in out, out
    assert kit.fingerprint() == mine, "nothing was stopped or changed"
