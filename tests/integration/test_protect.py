"""db-protect on the real engine (#19): the keeper makes Docker refuse to remove the volume to
`docker compose down -v` (v1 and v2), `docker volume rm` (-f too), `docker volume prune -a` and
`docker system prune -a --volumes`, and survives `docker container prune`; what still gets
through is what the docs say; db-info shows it; the kit's own migrate and upgrade pass it by
and keep the data protected.

Every prune here is scoped with `--filter label=dbguard.project=<the test's project>`, a label
both the keeper and the test's volumes carry, so that nothing outside the test is touched (other
workers' volumes live on the same engine). A control volume with the same label and no keeper
is in each prune's reach, so a prune that did nothing cannot pass for protection."""
from __future__ import annotations

import json
import time

import pytest

from conftest import KEY, docker, shown, volume_names


def labelled(kit) -> str:
    """Gives the kit's volume the test's label (before it exists) and returns the filter."""
    compose = kit.root / "docker-compose.yml"
    compose.write_text(compose.read_text().replace(
        f"volumes:\n  {KEY}:", f"volumes:\n  {KEY}:\n    labels:\n      dbguard.project: "
        f"{kit.project}"))
    return f"label=dbguard.project={kit.project}"


def protection(kit) -> dict:
    r = kit.script("db_info", "--json")
    assert r.returncode == 0, shown(r)
    return json.loads(r.stdout)["protection"]


def prune(*args: str) -> None:
    """A prune, again while the engine runs another one (it runs one at a time: the other
    flavour of this test may be pruning on another worker)."""
    for _ in range(600):
        r = docker(*args, check=False)
        if "a prune operation is already running" not in r.stderr:
            assert r.returncode == 0, r.stderr
            return
        time.sleep(0.2)
    raise AssertionError("the engine's other prune never ended")


def prune_volumes(scope: str) -> None:
    """`docker volume prune` of every unused volume in scope: `-a` from API 1.42 (Docker 23),
    which otherwise removes only anonymous ones; before it, that was what prune did."""
    api = docker("version", "--format", "{{.Server.APIVersion}}").stdout.strip()
    everything = ["-a"] if tuple(map(int, api.split("."))) >= (1, 42) else []
    prune("volume", "prune", *everything, "-f", "--filter", scope)


def keepers(kit) -> list[str]:
    return docker("ps", "-a", "--filter", f"label=dbguard.keeper={kit.volume}", "--format",
                  "{{.Names}} {{.State}}").stdout.split("\n")[:-1]


@pytest.mark.compose_v1  # `down -v` is Compose's own: each version removes volumes itself
def test_the_keeper_holds_against_down_v_volume_rm_and_every_prune(running_kit, token):
    kit = running_kit
    scope = labelled(kit)
    kit.compose("down", "-v")  # the label is given at creation: start again on a new volume
    kit.up("--allow-new-volume")
    kit.seed_rows(300)
    rows = kit.fingerprint()
    assert protection(kit)["protected"] is False

    r = kit.make("db-protect")
    assert r.returncode == 0, shown(r)
    assert f"{kit.volume} is protected by the container dbguard-keeper-" in r.stderr
    assert "what still gets through: removing the keeper itself" in r.stderr
    assert protection(kit)["protected"] is True
    assert kit.make("db-protect").returncode == 0, "protecting twice is harmless"
    (keeper,) = keepers(kit)
    assert keeper.endswith(" running")

    control = f"{token}-control"
    docker("volume", "create", "--label", f"dbguard.project={kit.project}", control)
    down = kit.compose("down", "-v", check=False)
    assert kit.volume in volume_names(), shown(down)
    assert "in use" in down.stdout + down.stderr, shown(down)
    if kit.flavor == "v2":  # the engine's own removals, and db-info: alike under either Compose
        engine_removals_and_what_db_info_says(kit, scope, control, keeper, rows)
    else:
        kit.up()
        assert kit.fingerprint() == rows, "every row survived"

    # OFF=1 removes it, and then Docker removes the volume as before (the control for down -v).
    r = kit.make("db-protect", "OFF=1")
    assert r.returncode == 0 and "is no longer protected" in r.stderr, shown(r)
    assert keepers(kit) == [] and protection(kit)["protected"] is False
    kit.compose("down", "-v")
    assert kit.volume not in volume_names()


def engine_removals_and_what_db_info_says(kit, scope: str, control: str, keeper: str,
                                          rows: dict) -> None:
    for force in ((), ("-f",)):
        rm = docker("volume", "rm", *force, kit.volume, check=False)
        assert rm.returncode != 0 and "in use" in rm.stderr, rm.stderr
    prune("container", "prune", "-f", "--filter", scope)
    assert keepers(kit) == [keeper], "a running keeper is not pruned"
    prune_volumes(scope)
    assert control not in volume_names(), "the prune did remove what nothing protects"
    docker("volume", "create", "--label", f"dbguard.project={kit.project}", control)
    prune("system", "prune", "-a", "-f", "--volumes", "--filter", scope)  # -a: images too
    assert control not in volume_names() and kit.volume in volume_names()
    assert keepers(kit) == [keeper]

    kit.up()
    assert kit.fingerprint() == rows, "every row survived"
    text = kit.script("db_info").stdout
    assert "=== Protection ===" in text and f"protected by {keeper.split()[0]} (running)" in text
    assert "newest verified dump: none" in text
    assert kit.script("db_dump").returncode == 0
    assert "newest verified dump: just now" in kit.script("db_info").stdout

    # What still gets through, as the docs say: a stopped keeper is pruned like any container.
    docker("stop", keeper.split()[0])
    assert "(its keeper" in kit.script("db_info").stdout
    prune("container", "prune", "-f", "--filter", scope)
    assert keepers(kit) == []
    assert "NOT protected" in kit.script("db_info").stdout
    r = kit.make("db-protect")
    assert r.returncode == 0 and len(keepers(kit)) == 1, shown(r)


@pytest.mark.parametrize("flavor", ["v2"])
def test_refusals_and_a_folder(make_kit):
    kit = make_kit()
    r = kit.script("db_protect")
    assert r.returncode == 3, shown(r)
    (line,) = [ln for ln in r.stderr.splitlines() if ln.startswith("ERROR:")]
    assert f"the volume {kit.volume} does not exist yet" in line and "make db-up" in line
    assert kit.script("db_protect", "--dry-run").returncode == 3
    folder = make_kit("withfolder")
    compose = folder.root / "docker-compose.yml"
    compose.write_text(compose.read_text().replace(f"- {KEY}:/var/lib/postgresql/data",
                                                   "- ./pgdata:/var/lib/postgresql/data"))
    r = folder.script("db_protect")
    assert r.returncode == 0 and "is a folder: no Docker command removes it" in r.stderr, \
        shown(r)
    assert keepers(folder) == []


@pytest.mark.parametrize("flavor", ["v2"])
def test_migrate_and_upgrade_pass_the_keeper_and_keep_the_data_protected(make_kit, token,
                                                                         image17):
    old = make_kit("old" + token, COMPOSE_PROJECT_NAME="old" + token)
    old.up("--allow-new-volume")
    old.seed_rows(200)
    wanted = old.fingerprint()
    old.compose("down")
    kit = make_kit()
    kit.up("--allow-new-volume")
    kit.sql("CREATE TABLE mine AS SELECT 1 AS x")
    assert kit.make("db-protect").returncode == 0
    (keeper,) = keepers(kit)

    r = kit.make("db-migrate-volume", f"FROM=old{token}_{KEY}", "YES=1")
    assert r.returncode == 0, shown(r)
    assert kit.fingerprint() == wanted
    assert keepers(kit) == [keeper] and protection(kit)["protected"]

    kit.write_env(DB_IMAGE=image17)
    r = kit.make("db-upgrade", f"OLD_IMAGE={kit.image}", "YES=1")
    assert r.returncode == 0, shown(r)
    assert kit.fingerprint() == wanted
    assert kit.sql("SHOW server_version_num")[0][0].startswith("17")
    assert [k.split()[1] for k in keepers(kit)] == ["running"]
    assert protection(kit)["protected"]
