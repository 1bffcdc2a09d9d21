"""The mount table (#19): for each layout of a PostgreSQL service (15, 17, 18; mounted at
/var/lib/postgresql, /var/lib/postgresql/data or .../data/pgdata; PGDATA set or not; folders;
the 18 layout; a mount one level too high or too low; anonymous volumes and tmpfs), what Compose
itself does decides which layouts are safe, and the kit's db-up must agree: it starts every
layout whose data outlives the container and refuses every other one before anything exists.

The truth comes from Compose alone, not from the kit: a row written, `down` (which keeps named
volumes and folders and forgets anonymous ones), `up` again, and the row is there or not. A
server that never becomes ready keeps nothing either. Where the kit started the service, the row
goes into the cluster it started (Compose's `down` and `up` still decide); where it refused,
Compose starts the layout itself."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

import pytest

from conftest import KEY, docker, remove_volumes, shown, volume_names

DATA = "/var/lib/postgresql/data"
ROOT = "/var/lib/postgresql"


@dataclass(frozen=True)
class Layout:
    name: str
    major: int
    mount: str          # the service's `volumes:` entry ("" for none), {key} for the volume key
    pgdata: str = ""    # PGDATA in the service's environment
    safe: bool = True   # what Compose does with it (checked by the test, not assumed)

    def compose_file(self) -> str:
        lines = ["services:", "  db:", "    image: ${DB_IMAGE}", "    environment:",
                 "      POSTGRES_DB: sum_db", "      POSTGRES_USER: sum_user",
                 "      POSTGRES_PASSWORD: ${DJANGO_DB_PASSWORD}"]
        if self.pgdata:
            lines.append(f"      PGDATA: {self.pgdata}")
        if self.mount:
            lines += ["    volumes:", *(f"      {m}" for m in self.mount.format(
                key=KEY).split("\n"))]
        lines += ["    ports:", '      - "127.0.0.1:${DJANGO_DB_PORT}:5432"',
                  "    healthcheck:",
                  '      test: ["CMD-SHELL", "pg_isready -h 127.0.0.1 -U sum_user -d sum_db"]',
                  "      interval: 500ms", "      retries: 240", "volumes:", f"  {KEY}:"]
        return "\n".join(lines) + "\n"


LAYOUTS = [
    Layout("17 at .../data", 17, "- {key}:" + DATA),
    Layout("17 PGDATA .../data/pgdata", 17, "- {key}:" + DATA, pgdata=DATA + "/pgdata"),
    Layout("17 too high", 17, "- {key}:" + ROOT, safe=False),
    Layout("17 too high, PGDATA in the image's VOLUME", 17, "- {key}:" + ROOT,
           pgdata=DATA + "/pgdata", safe=False),
    Layout("17 too high, PGDATA beside the image's VOLUME", 17, "- {key}:" + ROOT,
           pgdata=ROOT + "/pgdata"),
    Layout("17 too low", 17, "- {key}:" + DATA + "/pgdata", safe=False),
    Layout("17 too low, PGDATA on it", 17, "- {key}:" + DATA + "/pgdata",
           pgdata=DATA + "/pgdata"),
    Layout("17 folder", 17, "- ./pgdata:" + DATA),
    Layout("17 no mount", 17, "", safe=False),
    Layout("17 anonymous", 17, "- " + DATA, safe=False),
    Layout("17 tmpfs", 17, "- type: tmpfs\n  target: " + DATA, safe=False),
    Layout("15 at .../data", 15, "- {key}:" + DATA),
    Layout("15 too high", 15, "- {key}:" + ROOT, safe=False),
    Layout("15 elsewhere, PGDATA on it", 15, "- {key}:/srv/pg", pgdata="/srv/pg/data"),
    Layout("18 at /var/lib/postgresql", 18, "- {key}:" + ROOT),
    Layout("18 at .../data (the old layout)", 18, "- {key}:" + DATA, safe=False),
    Layout("18 at .../data with PGDATA kept there", 18, "- {key}:" + DATA, pgdata=DATA),
    Layout("18 exactly at its PGDATA", 18, "- {key}:" + ROOT + "/18/docker"),
    Layout("18 folder", 18, "- ./pgdata:" + ROOT),
    Layout("18 too low", 18, "- {key}:" + ROOT + "/18/docker/base", safe=False),
]


def container_of(kit) -> str:
    return kit.compose("ps", "-a", "-q", "db").stdout.strip()


def ready(kit, cid: str) -> bool:
    """Waits until the service's container `cid` is healthy (True) or has stopped for good
    (False): conditions the engine reports, with a bound only for a server that hangs. Asks
    the engine alone while it waits (a Compose start costs ten times a `docker inspect`, and
    under v1 thirty)."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        state = json.loads(docker("inspect", "--format", "{{json .State}}", cid).stdout)
        if (state.get("Health") or {}).get("Status") == "healthy":
            return True
        if state["Status"] in ("exited", "dead"):
            return False
        time.sleep(0.2)
    raise AssertionError(f"the service neither got ready nor stopped: {shown(kit.compose('logs'))}")


def psql(cid: str, sql: str) -> str:
    return docker("exec", cid, "psql", "-X", "-At", "-U", "sum_user", "-d", "sum_db", "-c",
                  sql).stdout.strip()


def keeps_its_data(kit, running: bool) -> bool:
    """What Compose does with the layout, without the kit (`running`: the service is up
    already, started by the kit's db-up; otherwise Compose starts it)."""
    forgotten: list[str] = []
    try:
        if not running:
            kit.compose("up", "-d", "db")
        cid = container_of(kit)
        # `down` leaves the first container's anonymous volumes behind, nameless: noted here
        # to be removed at the end.
        forgotten = [m for m in docker("inspect", "--format",
                                       "{{range .Mounts}}{{.Name}} {{end}}",
                                       cid).stdout.split() if len(m) == 64]
        if not ready(kit, cid):
            return False
        psql(cid, "CREATE TABLE kept AS SELECT 42 AS answer")
        kit.compose("down")
        kit.compose("up", "-d", "db")
        cid = container_of(kit)
        if not ready(kit, cid):
            return False
        return psql(cid, "SELECT to_regclass('kept') IS NOT NULL") == "t"
    finally:
        kit.compose("down", "-v", check=False)
        if forgotten:
            remove_volumes(*forgotten)


def images(image, image17, image18) -> dict[int, str]:
    return {15: image, 17: image17, 18: image18}


def check_layout(make_kit, layout: Layout, tag: str) -> None:
    kit = make_kit(DB_IMAGE=tag)
    (kit.root / "docker-compose.yml").write_text(layout.compose_file())
    r = kit.script("db_up")
    try:
        if layout.safe:
            assert r.returncode == 0, shown(r)
            facts = json.loads(kit.script("db_info", "--json").stdout)
            (active,) = [v for v in facts["volumes"] if v["active"]]
            assert active["has_cluster"] and active["pg_version"] == str(layout.major), facts
        else:
            assert r.returncode == 3, shown(r)
            assert "PGDATA_NOT_ON_VOLUME" in r.stderr or "PG18_MOUNT_PATH" in r.stderr, shown(r)
            assert "mount `" in r.stderr, "the refusal names the mount line to write"
            assert not container_of(kit), "no container was created (so no anonymous volume)"
            assert not [v for v in volume_names() if kit.token in v], "no volume was created"
    except BaseException:  # anonymous volumes carry no name of the test's: removed with their
        kit.compose("down", "-v", check=False)  # container
        raise

    if kit.flavor == "v1" and not layout.safe:
        return  # what Compose does with a layout the kit refuses: the table's, checked under v2
    assert keeps_its_data(kit, running=r.returncode == 0) == layout.safe, \
        f"{layout.name}: Compose {'loses' if layout.safe else 'keeps'} the data, contrary to " \
        "the table"


@pytest.mark.parametrize("layout", LAYOUTS, ids=[layout.name for layout in LAYOUTS])
def test_db_up_starts_every_safe_layout_and_refuses_every_unsafe_one(make_kit, image, image17,
                                                                     image18, layout):
    check_layout(make_kit, layout, images(image, image17, image18)[layout.major])


V1_LAYOUTS = [layout for layout in LAYOUTS if layout.name in (
    "17 too high", "17 anonymous", "17 tmpfs", "17 folder", "18 exactly at its PGDATA")]


@pytest.mark.parametrize("flavor", ["v1"])
@pytest.mark.parametrize("layout", V1_LAYOUTS, ids=[layout.name for layout in V1_LAYOUTS])
def test_compose_v1_reads_the_same_layouts_the_same_way(make_kit, image, image17, image18,
                                                        layout):
    """v1 prints its configuration as YAML with its own short forms (an anonymous volume, a
    tmpfs): the kit parses that itself, and must come to the same verdict. A layout it starts
    keeps its data through v1's own `down` and `up`; what Compose does with a layout the kit
    refuses is the table's, checked under v2 (each check costs v1 four starts of
    docker-compose and two initdb)."""
    check_layout(make_kit, layout, images(image, image17, image18)[layout.major])


def test_the_table_covers_what_the_issue_asks():
    """At least 12 layouts over 15, 17 and 18, safe and unsafe, PGDATA set and unset."""
    assert len(LAYOUTS) >= 12
    assert {layout.major for layout in LAYOUTS} == {15, 17, 18}
    assert {layout.safe for layout in LAYOUTS} == {True, False}
    assert any(layout.pgdata for layout in LAYOUTS) and any(not layout.pgdata
                                                            for layout in LAYOUTS)
