"""Where discovery reads a volume's contents: inside the running service container when it
mounts every store and no folder of the project can hold a cluster (one `docker exec`), else in
a throwaway container, as before."""
from __future__ import annotations

import json
import os
from pathlib import Path

from fakes import RecordingRunner

from dbguard.docker import Container, ImageInfo
from dbguard.volumes import inspect_contents, may_hold_clusters, mounted_in

IMAGE = ImageInfo("postgres:15", True, 15, "/var/lib/postgresql/data")
SERVICE = Container("c1", "shop-db-1", "running", "Up", "", "shop", "db",
                    ["shop_sum_db_data"])
MOUNTS = [{"Type": "volume", "Name": "shop_sum_db_data", "Source": "/var/lib/docker/volumes/x",
           "Destination": "/var/lib/postgresql/data"},
          {"Type": "bind", "Source": "/home/me/shop/initdb/", "Destination": "/docker-init"}]
LINE = b"0\t40000\t20\t.\t15\t7001\t300\t0\t12\t\n"


def runner_with(tmp_path: Path, mounts=MOUNTS, exec_code: int = 0, asked=None
                ) -> RecordingRunner:
    runner = RecordingRunner(tmp_path)
    runner.answer(["docker", "inspect"], stdout=json.dumps({"Mounts": mounts, "Asked": asked}
                                                           ).encode())
    runner.answer(["docker", "exec"], stdout=LINE, returncode=exec_code)
    runner.answer(["docker", "run"], stdout=LINE)
    return runner


def kinds(runner: RecordingRunner) -> list[str]:
    return [" ".join(args[:2]) for args in runner.recorded]


def test_mounted_in_gives_each_stores_path_in_the_container_or_none_when_one_is_missing(
        tmp_path):
    runner = runner_with(tmp_path)
    assert mounted_in(runner, SERVICE, [("shop_sum_db_data", True)]) == [
        "/var/lib/postgresql/data"]
    assert mounted_in(runner, SERVICE, [("/home/me/shop/initdb", False)]) == ["/docker-init"]
    assert mounted_in(runner, SERVICE, [("shop_sum_db_data", True), ("old_sum_db_data", True)]
                      ) is None
    # A folder of the same name is not the volume, nor the volume a folder.
    assert mounted_in(runner, SERVICE, [("shop_sum_db_data", False)]) is None
    nested = MOUNTS + [{"Type": "volume", "Name": "9f" * 32, "Source": "/var/lib/docker/y",
                        "Destination": "/var/lib/postgresql/data/pgdata"}]
    assert mounted_in(runner_with(tmp_path, nested), SERVICE, [("shop_sum_db_data", True)]
                      ) is None, "a mount inside the store's would be read as the store's"
    subpath = [{"Type": "volume", "Source": "shop_sum_db_data", "Target": "/var/lib/postgresql/"
                "data", "VolumeOptions": {"Subpath": "pg"}}]
    assert mounted_in(runner_with(tmp_path, asked=subpath), SERVICE,
                      [("shop_sum_db_data", True)]) is None, "it sees a part of the volume only"
    whole = [{**subpath[0], "VolumeOptions": {}}]
    assert mounted_in(runner_with(tmp_path, asked=whole), SERVICE,
                      [("shop_sum_db_data", True)]) == ["/var/lib/postgresql/data"]
    for answer in (b"not json", b'{"Status": "running"}', b"[1, 2]", b'{"Mounts": 1}'):
        odd = RecordingRunner(tmp_path)
        odd.answer(["docker", "inspect"], stdout=answer)
        assert mounted_in(odd, SERVICE, [("shop_sum_db_data", True)]) is None, answer


def test_a_project_folder_may_hold_a_cluster_where_the_containers_search_would_look(tmp_path):
    """The same depth and the same skipped folders as the search in the container (find
    -maxdepth 5, pruning .git, node_modules, .venv and venv)."""
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "a" / "b" / "c" / "notes.txt").write_text("x")
    assert not may_hold_clusters(tmp_path)
    deep = tmp_path / "a" / "b" / "c" / "d"
    deep.mkdir()
    (deep / "PG_VERSION").write_text("15\n")
    assert may_hold_clusters(tmp_path), "PG_VERSION 5 levels down is found"
    (deep / "PG_VERSION").rename(tmp_path / "PG_VERSION.bak")
    (deep / "e").mkdir()
    (deep / "e" / "PG_VERSION").write_text("15\n")
    assert not may_hold_clusters(tmp_path), "6 levels down the container does not look either"
    for skipped in (".git", "node_modules", ".venv", "venv"):
        (tmp_path / skipped / "pg").mkdir(parents=True)
        (tmp_path / skipped / "pg" / "PG_VERSION").write_text("15\n")
    assert not may_hold_clusters(tmp_path)
    (tmp_path / "pgdata").mkdir()
    (tmp_path / "pgdata" / "PG_VERSION").write_text("15\n")
    assert may_hold_clusters(tmp_path)
    assert not may_hold_clusters(tmp_path / "missing"), "no folder: nothing to search"


def test_a_folder_the_user_cannot_read_may_hold_a_cluster(tmp_path, monkeypatch):
    """A bind-mounted cluster is its owner's only (0700): the host cannot tell, so the
    throwaway container, run as root, looks. (Forced here: the tests may run as root.)"""
    (tmp_path / "postgres14").mkdir()
    real = os.scandir

    def scandir(path):
        if str(path).endswith("postgres14"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert may_hold_clusters(tmp_path)


def test_the_running_service_is_read_with_one_exec_when_it_mounts_everything(tmp_path):
    runner = runner_with(tmp_path)
    facts, searched = inspect_contents(runner, IMAGE, [("shop_sum_db_data", True)], tmp_path,
                                       ".", SERVICE)
    assert kinds(runner) == ["docker inspect", "docker exec"], runner.recorded
    exec_args = runner.recorded[1]
    assert exec_args[-3:] == ["-", "0", "/var/lib/postgresql/data"], exec_args
    assert "--user" in exec_args and "0:0" in exec_args, "reads the 0700 folder as root"
    assert facts["shop_sum_db_data"]["system_id"] == "7001" and searched == set()


def test_a_throwaway_container_looks_when_the_service_cannot(tmp_path):
    """Not running, a store it does not mount, a folder of the project that may hold a
    cluster, or an exec that fails: the throwaway container, with the project's folder."""
    stores = [("shop_sum_db_data", True)]
    cases = {"no service": (runner_with(tmp_path), stores, None),
             "a store not mounted": (runner_with(tmp_path), stores + [("old_sum_db_data", True)],
                                     SERVICE),
             "exec failed": (runner_with(tmp_path, exec_code=1), stores, SERVICE)}
    for case, (runner, these, service) in cases.items():
        facts, _ = inspect_contents(runner, IMAGE, these, tmp_path, ".", service)
        assert kinds(runner)[-1] == "docker run", (case, runner.recorded)
        helper = runner.recorded[-1]
        assert f"type=bind,source={tmp_path},target=/p,readonly" in helper, case
        pairs = [arg for i in range(len(these)) for arg in (str(i), f"/v/{i}")]
        assert helper[helper.index("dbguard") + 1:] == [".", "p", *pairs], (case, helper)
        assert facts["shop_sum_db_data"]["pg_version"] == "15", case
    (tmp_path / "pgdata").mkdir()
    (tmp_path / "pgdata" / "PG_VERSION").write_text("15\n")
    runner = runner_with(tmp_path)
    inspect_contents(runner, IMAGE, stores, tmp_path, ".", SERVICE)
    assert kinds(runner) == ["docker run"], runner.recorded  # the service is not even asked


def test_with_nothing_to_read_no_container_starts(tmp_path):
    """A project's first db-up: no volume yet and no folder that can hold a cluster. With such
    a folder, the throwaway container searches it."""
    runner = runner_with(tmp_path)
    assert inspect_contents(runner, IMAGE, [], tmp_path, ".", None) == ({}, set())
    assert runner.recorded == []
    (tmp_path / "pgdata").mkdir()
    (tmp_path / "pgdata" / "PG_VERSION").write_text("15\n")
    inspect_contents(runner, IMAGE, [], tmp_path, ".", None)
    assert kinds(runner) == ["docker run"], runner.recorded
