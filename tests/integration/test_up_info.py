"""db-up, db-down and db-info on the real engine: starting and waiting, the guards that refuse
before anything starts, the diagnosis, and how the kit behaves with bad surroundings."""
from __future__ import annotations

import json
import re
import secrets
import signal
import stat
import subprocess
import sys
import time

import pytest

from conftest import KEY, docker, shown, volume_names


def info(kit, *args: str) -> dict:
    r = kit.script("db_info", "--json", *args)
    assert r.returncode == 0, shown(r)
    return json.loads(r.stdout)


def state(container: str) -> str:
    return docker("inspect", "--format", "{{.State.Status}}", container).stdout.strip()


# Under v1 too through tests/integration/test_adoption.py's v1 journeys.
def test_up_waits_for_health_and_down_keeps_the_volume(kit):
    r = kit.make("db-up")
    assert r.returncode == 0, shown(r)
    assert f"SUCCESS: db is up on 127.0.0.1:{kit.port}, volume {kit.volume}" in r.stderr
    assert kit.sql("SELECT 1") == [(1,)], "healthy means it answers"
    kit.seed_rows(10)
    name = info(kit)["container"]["name"]
    assert kit.make("db-down").returncode == 0
    assert state(name) == "exited" and kit.volume in volume_names()
    kit.up()
    assert kit.sql("SELECT count(*) FROM pages") == [(10,)]


# Under v1 too through tests/integration/test_adoption.py's v1 journeys.
def test_db_info_facts_as_json_and_text(running_kit):
    kit = running_kit
    kit.write_env(DBGUARD_BACKUP_MAX_AGE_DAYS="0")
    facts = info(kit)
    assert facts["project"] == {**facts["project"], "name": kit.token, "source": ".env",
                                "locked": True}
    assert facts["compose"]["flavor"] == kit.flavor
    (vol,) = facts["volumes"]
    assert (vol["name"], vol["active"], vol["pg_version"], vol["has_cluster"]) == (
        kit.volume, True, "15", True)
    assert re.match(r"\d{4}-\d\d-\d\dT", vol["created"])
    assert facts["database"]["reachable"] and facts["database"]["tables"] == 1
    assert facts["connection"]["password"] == "********"
    assert facts["problems"] == []
    assert kit.script("db_info", "--check").returncode == 0
    text = kit.script("db_info").stdout
    for heading in ("=== Docker Compose Configuration ===", f"=== All {KEY} Volumes ===",
                    "=== Database Connection Details (for the application) ===",
                    "=== Container Status ===",
                    "=== Database Contents ===", "=== Backups ===", "=== Verdict ==="):
        assert heading in text
    assert f"Project Name:    {kit.token}" in text and "<- ACTIVE" in text
    assert "OK: the active volume is the only one" in text


@pytest.mark.parametrize("flavor", ["v2"])
def test_docker_calls_do_not_grow_with_the_volumes_on_the_machine(running_kit):
    kit = running_kit

    def calls() -> int:
        r = kit.script("db_info", "-v")
        assert r.returncode == 0, shown(r)
        return sum(1 for line in r.stderr.splitlines() if line.startswith("+ "))

    first = calls()
    for i in range(6):
        docker("volume", "create", f"{kit.token}x{i}_{KEY}")
        docker("volume", "create", f"{kit.token}y{i}")
    assert calls() == first
    facts = info(kit)
    assert len(facts["volumes"]) == 7, "the six look-alikes are candidates, shown as empty"
    assert all(not v["has_cluster"] for v in facts["volumes"] if not v["active"])


def test_version_mismatch_is_refused_before_the_server_crash_loops(running_kit):
    kit = running_kit
    assert kit.script("db_down").returncode == 0
    kit.helper(kit.volume, "echo 14 > /v/PG_VERSION")
    r = kit.script("db_up")
    assert r.returncode == 3, shown(r)
    assert "PG_VERSION_MISMATCH" in r.stderr
    assert f"the cluster in {kit.volume} was made by PostgreSQL 14 but the image" in r.stderr
    assert "make db-upgrade   (moves the data to 15" in r.stderr, "the first fix: db-upgrade"
    assert state(info(kit)["container"]["name"]) == "exited", "nothing was started"
    assert "PG_VERSION_MISMATCH" in [p["code"] for p in info(kit)["problems"]]


@pytest.mark.parametrize("flavor", ["v2"])
def test_postgres_18_mount_path_is_explained_not_crash_looped(kit):
    tag = f"{kit.token}-pg18:test"
    cid = docker("create", kit.image).stdout.strip()
    try:
        docker("commit", "--change", "ENV PG_MAJOR=18", "--change",
               "ENV PGDATA=/var/lib/postgresql/18/docker", cid, tag)
        kit.write_env(DB_IMAGE=tag)
        r = kit.script("db_up")
        assert r.returncode == 3, shown(r)
        assert "PG18_MOUNT_PATH" in r.stderr and "/var/lib/postgresql/18/docker" in r.stderr
        assert kit.volume not in volume_names()
        compose = kit.root / "docker-compose.yml"
        compose.write_text(compose.read_text().replace(
            f"{KEY}:/var/lib/postgresql/data", f"{KEY}:/var/lib/postgresql"))
        facts = info(kit)
        assert facts["service"]["pgdata"] == "/var/lib/postgresql/18/docker"
        assert "PG18_MOUNT_PATH" not in [p["code"] for p in facts["problems"]]
    finally:
        docker("rm", "-v", cid, check=False)
        docker("image", "rm", tag, check=False)


@pytest.mark.parametrize("flavor", ["v2"])  # the wait is the kit's own, not Compose's
def test_a_server_that_never_gets_healthy_fails_with_its_log(kit):
    """The server listens on its socket only (never over TCP) and the health check always
    fails. The server is started first and the test waits until its log says it is ready (a
    condition, not a time); then db-up, given 3 s, finds the service running but never
    answering and fails with the timeout and that log."""
    compose = kit.root / "docker-compose.yml"
    compose.write_text(compose.read_text().replace(
        '"pg_isready -h 127.0.0.1', '"echo never >&2; exit 1; pg_isready -h 127.0.0.1').replace(
        "    healthcheck:\n", '    command: ["postgres", "-c", "listen_addresses="]\n'
        "    healthcheck:\n"))
    kit.compose("up", "-d", "db")
    service = kit.compose("ps", "-q", "db").stdout.strip()
    deadline = time.monotonic() + 600  # a bound for a server that never starts, nothing else
    while "ready to accept connections" not in docker("logs", service).stderr:
        assert time.monotonic() < deadline, docker("logs", service).stderr
        time.sleep(0.2)
    kit.write_env(DBGUARD_UP_TIMEOUT="3")
    r = kit.script("db_up")
    assert r.returncode == 1, shown(r)
    assert "did not become healthy within 3s (state: running, health: " in r.stderr, shown(r)
    assert "  | " in r.stderr and "ready to accept connections" in r.stderr, "its log is shown"
    assert kit.compose("ps", "-q", "db").stdout.strip() == service, "the same container"


@pytest.mark.parametrize("flavor", ["v2"])  # the wait is the kit's own, not Compose's
def test_db_up_returns_once_the_server_answers_not_after_dockers_first_check(kit):
    """The health check's interval is an hour: Docker has run no check yet when db-up returns
    (the health is still "starting"), and the server answers. And the kit's own compose file
    checks every 5 seconds, not every half second (each check is a process all day long)."""
    compose = kit.root / "docker-compose.yml"
    assert "      interval: 5s\n" in compose.read_text()
    compose.write_text(compose.read_text().replace("interval: 5s", "interval: 1h"))
    r = kit.script("db_up")
    assert r.returncode == 0, shown(r)
    service = kit.compose("ps", "-q", "db").stdout.strip()
    assert docker("inspect", "--format", "{{.State.Health.Status}}", service
                  ).stdout.strip() == "starting"
    assert kit.sql("SELECT 1") == [(1,)]


def test_a_server_that_exits_while_starting_fails_with_its_log(kit):
    docker("volume", "create", kit.volume)
    kit.helper(kit.volume, "echo 15 > /v/PG_VERSION && chown -R 999 /v")  # no real cluster
    r = kit.script("db_up")
    assert r.returncode == 1, shown(r)
    assert "stopped while starting (exit code" in r.stderr, shown(r)
    assert "  | " in r.stderr


def test_first_run_creates_env_from_the_example(kit):
    example = (kit.root / ".env").read_text()
    (kit.root / ".env.example").write_text(example)
    (kit.root / ".env").unlink()
    r = kit.script("db_up", "--dry-run")
    assert r.returncode == 0 and not (kit.root / ".env").exists(), "a dry run creates nothing"
    r = kit.make("db-up")
    assert r.returncode == 0, shown(r)
    assert "INFO: created .env from .env.example" in r.stderr
    assert (kit.root / ".env").read_text() == example
    assert stat.S_IMODE((kit.root / ".env").stat().st_mode) == 0o600


def test_dry_run_up_creates_nothing(kit):
    r = kit.script("db_up", "--dry-run")
    assert r.returncode == 0, shown(r)
    assert f"dry run: would start 'db' on {kit.volume}; nothing was changed" in r.stderr, \
        shown(r)
    assert kit.volume not in volume_names()
    assert docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={kit.token}"
                  ).stdout.strip() == ""


def test_allow_new_volume_starts_empty_beside_data(make_kit, token):
    old = make_kit("old" + token, COMPOSE_PROJECT_NAME="old" + token)
    old.up()
    old.seed_rows(5)
    old.compose("-p", "old" + token, "down")  # no container left: the volume looks orphaned
    new = make_kit()
    r = new.script("db_up")
    assert r.returncode == 3 and f"old{token}_{KEY}" in r.stderr, shown(r)
    r = new.make("db-up", "ALLOW_NEW_VOLUME=1")
    assert r.returncode == 0, shown(r)
    assert f"INFO: creating the new volume {new.volume} (ALLOW_NEW_VOLUME=1)" in r.stderr
    assert new.sql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]


@pytest.mark.parametrize("flavor", ["v2"])
def test_a_neighbouring_project_with_the_same_volume_key_is_no_alarm(make_kit, token):
    neighbour = make_kit("nb" + token, COMPOSE_PROJECT_NAME="nb" + token)
    neighbour.up()
    neighbour.seed_rows(5)
    kit = make_kit()
    kit.up()
    facts = info(kit)
    assert "PARALLEL_UNIVERSE" not in [p["code"] for p in facts["problems"]]
    assert any(f"nb{token}_{KEY} belongs to the project in {neighbour.root}" in n
               for n in facts["notes"]), facts["notes"]


@pytest.mark.parametrize("flavor", ["v2"])
def test_ignored_volumes_are_left_out(make_kit, token):
    old = make_kit("old" + token, COMPOSE_PROJECT_NAME="old" + token)
    old.up()
    old.compose("-p", "old" + token, "down")
    kit = make_kit(DBGUARD_IGNORE_VOLUMES=f"old{token}_{KEY}")
    kit.up()


@pytest.fixture
def planted(image):
    """A volume with a cluster and a table in it, made before the test's kits: a developer's
    own project on the machine that runs the tests."""
    name = f"mine{secrets.token_hex(4)}_{KEY}"
    cid = docker("run", "-d", "--network", "none", "-e", "POSTGRES_PASSWORD=x", "-v",
                 f"{name}:/var/lib/postgresql/data", image).stdout.strip()
    try:
        deadline = time.monotonic() + 60
        while docker("exec", cid, "psql", "-U", "postgres", "-c", "CREATE TABLE t AS SELECT 1",
                     check=False).returncode != 0:
            assert time.monotonic() < deadline, docker("logs", cid, check=False).stderr
            time.sleep(0.5)
    finally:
        docker("rm", "-f", "-v", cid)
    yield name
    kept = name in volume_names()
    docker("volume", "rm", name, check=False)
    assert kept, "a test's teardown removed a volume the test did not make"


@pytest.mark.parametrize("flavor", ["v2"])
def test_volumes_from_before_the_test_are_left_out_and_kept(planted, make_kit):
    kit = make_kit()
    r = kit.script("db_info", "--json", env={"DBGUARD_IGNORE_VOLUMES": ""})
    assert r.returncode == 0, shown(r)
    seen = {v["name"]: v for v in json.loads(r.stdout)["volumes"]}
    assert seen[planted]["has_cluster"], "without the harness, the planted cluster is a candidate"
    kit.up()  # refused as PARALLEL_UNIVERSE if the planted volume were seen
    assert planted not in [v["name"] for v in info(kit)["volumes"]]


@pytest.mark.compose_v1  # the kit parses or calls Compose v1 differently here
def test_another_repos_names_work_unchanged(kit):
    compose = kit.root / "docker-compose.yml"
    key = KEY.replace("sum_db_data", "pgdata")  # still this worker's own (see harness.KEY)
    text = compose.read_text().replace(KEY, key).replace("  db:", "  postgres:")
    compose.write_text(text)
    kit.up()
    facts = info(kit)
    assert (facts["service"]["name"], facts["active_volume"]) == ("postgres",
                                                                  f"{kit.token}_{key}")


@pytest.mark.parametrize("flavor", ["v2"])
def test_from_any_directory_through_docker_host(kit, tmp_path):
    r = kit.script("db_info", "--json", cwd=tmp_path,
                   env={"DOCKER_HOST": "unix:///var/run/docker.sock"})
    assert r.returncode == 0, shown(r)
    assert json.loads(r.stdout)["active_volume"] == kit.volume


@pytest.mark.parametrize("flavor", ["v2"])
def test_a_stopped_daemon_is_one_error_line(kit, tmp_path):
    sock = f"unix://{tmp_path}/no-docker.sock"
    for script in ("db_info", "db_up", "db_dump", "db_migrate_volume", "db_restore"):
        r = kit.script(script, env={"DOCKER_HOST": sock})
        assert r.returncode == 1, shown(r)
        assert r.stderr.strip().splitlines()[-1] == (
            f"ERROR: cannot reach the Docker daemon ({sock}). Start Docker (or fix DOCKER_HOST "
            "/ DOCKER_CONTEXT) and run again; `docker info` shows what is wrong"), shown(r)


@pytest.mark.compose_v1  # the kit parses or calls Compose v1 differently here
@pytest.mark.parametrize("flavor", ["v2", "v1"])
def test_compose_auto_detection_prefers_v2(kit):
    kit.write_env(DBGUARD_COMPOSE="auto")
    assert info(kit)["compose"]["flavor"] == kit.flavor, \
        "auto takes v2 where the plugin is installed, v1 where only docker-compose is"


@pytest.mark.parametrize("flavor", ["v2"])
def test_bad_names_are_one_error_line(kit):
    kit.write_env(DBGUARD_SERVICE="database")
    r = kit.script("db_info")
    assert r.returncode == 2, shown(r)
    assert r.stderr.strip() == ("ERROR: DBGUARD_SERVICE='database' is not a service of the "
                                "compose file (services: db). Set DBGUARD_SERVICE in .env to "
                                "the database service")
    kit.write_env(DBGUARD_SERVICE=None, COMPOSE_FILE="compose.prod.yml")
    r = kit.script("db_up")
    assert r.returncode == 2 and "compose file not found" in r.stderr, shown(r)
    assert kit.volume not in volume_names()


@pytest.mark.parametrize("flavor", ["v2"])
def test_docker_context_is_honoured(kit):
    ctx = f"{kit.token}-ctx"
    docker("--config", str(kit.docker_config), "context", "create", ctx, "--docker",
           "host=unix:///var/run/docker.sock")
    try:
        r = kit.script("db_info", "--json", env={"DOCKER_CONTEXT": ctx})
        assert r.returncode == 0, shown(r)
        r = kit.script("db_info", env={"DOCKER_CONTEXT": f"{kit.token}-nosuch"})
        assert r.returncode == 1 and r.stderr.startswith("ERROR: "), shown(r)
    finally:
        docker("--config", str(kit.docker_config), "context", "rm", "-f", ctx, check=False)


@pytest.mark.compose_v1  # the kit parses or calls Compose v1 differently here
def test_shell_and_logs(running_kit):
    kit = running_kit
    r = subprocess.run([sys.executable, str(kit.root / "scripts/db_shell.py")],
                       input="SELECT count(*) FROM pages;\n", capture_output=True, text=True,
                       env=kit.process_env())
    assert r.returncode == 0 and " 500\n" in r.stdout, shown(r)
    proc = kit.popen("db_logs")
    seen, deadline = "", time.monotonic() + 120  # however slow the machine: the log decides
    while "ready to accept connections" not in seen and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen += line
    assert "database system is ready to accept connections" in seen, seen
    proc.send_signal(signal.SIGINT)  # Ctrl-C ends following the log, with exit 0
    proc.communicate(timeout=60)
    assert proc.returncode == 0


@pytest.mark.parametrize("flavor", ["v2"])
def test_no_password_on_any_command_line_of_a_whole_session(running_kit, make_kit, token):
    kit = running_kit
    (kit.root / "fixtures").mkdir(exist_ok=True)
    commands = [("db_info", "-v"), ("db_dump", "-v"), ("db_dump", "-v", "--format", "plain"),
                ("db_restore", "-v", "--yes"), ("db_fixture", "-v"),
                ("db_seed", "-v", "--force", "--yes"), ("db_backups", "-v"),
                ("db_prune", "-v", "--keep", "1", "--yes"), ("db_down", "-v"),
                ("db_migrate_volume", "-v", "--yes", "--from", kit.volume), ("db_up", "-v")]
    shown_commands = 0
    for name, *args in commands:
        r = kit.script(name, *args)  # Kit.script asserts the password is not in the output
        assert r.returncode in (0, 3), shown(r)
        shown_commands += sum(1 for line in r.stderr.splitlines() if line.startswith("+ "))
    assert shown_commands > 40, "-v printed the command lines that were checked"


def test_dump_shows_progress_on_a_terminal(running_kit):
    code, out = running_kit.tty("db_dump", answer="")
    assert code == 0, out
    assert "dumping sum_db: " in out and "INFO: wrote " in out, out


@pytest.mark.parametrize("flavor", ["v2"])
def test_a_name_in_the_compose_file_counts_as_locked(kit):
    kit.write_env(COMPOSE_PROJECT_NAME=None)
    compose = kit.root / "docker-compose.yml"
    compose.write_text(f"name: {kit.token}n\n" + compose.read_text())
    facts = info(kit)
    assert facts["project"]["name"] == f"{kit.token}n"
    assert (facts["project"]["source"], facts["project"]["locked"]) == ("compose file", True)
    assert facts["active_volume"] == f"{kit.token}n_{KEY}"
