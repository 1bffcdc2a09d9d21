"""db-find's reading of what its throwaway container prints: one line per cluster, with
pg_control's system identifier and last write (seconds since 1970) as od prints them."""
from dbguard.find import ANONYMOUS, parse_line


def test_a_cluster_line_becomes_its_facts():
    key, facts = parse_line("7\t./18/docker\t18\t7412345678901234567\t1765000000\t46848\t0")
    assert key == "7"
    assert facts == {"pg_path": "./18/docker", "pg_version": "18",
                     "system_id": "7412345678901234567",
                     "written": "2025-12-06T05:46:40+00:00", "size": 46848 * 1024,
                     "incomplete": False}


def test_a_torn_or_empty_line_is_no_cluster():
    assert parse_line("7\t.\t\t\t\t0\t0") is None, "no PG_VERSION"
    assert parse_line("garbage") is None
    _, facts = parse_line("p:data/pg\t.\t15\t\t\t10\t1")
    assert (facts["system_id"], facts["written"], facts["incomplete"]) == ("?", None, True)


def test_anonymous_volumes_are_docker_named():
    assert ANONYMOUS.match("a" * 64) and not ANONYMOUS.match("myapp_pgdata")


def test_a_helper_covers_the_images_volume_paths_so_it_never_makes_an_anonymous_volume():
    from dbguard.docker import ImageInfo, helper_args
    image = ImageInfo("postgres:18", True, 18, "/var/lib/postgresql/18/docker",
                      ("/var/lib/postgresql",))
    argv = helper_args(image, [("volume", "app_pgdata", "/v/0", True)], "true")
    assert "type=tmpfs,target=/var/lib/postgresql,tmpfs-size=65536" in argv
    assert argv[argv.index("-c") - 1] == "postgres:18", "the image by its reference"


def test_only_a_volume_the_look_made_again_is_removed_again():
    """A volume removed between the listing and its look-inside container is made again,
    empty, by the mount: that one (a new creation time) is removed, nothing else."""
    import json
    from types import SimpleNamespace

    from dbguard.find import forget_recreated

    calls = []

    def runner(args, reads=False, check=True):
        calls.append(list(args))
        now = {"gone": "2026-12-06T10:00:05Z", "empty": "2026-12-06T09:00:00Z"}
        found = [{"Name": n, "CreatedAt": now[n]} for n in args[3:] if n in now]
        return SimpleNamespace(stdout=json.dumps(found).encode(), returncode=0)

    before = {"gone": "2026-12-06T09:59:00Z", "empty": "2026-12-06T09:00:00Z",
              "removed": "2026-12-06T09:30:00Z"}
    forget_recreated(SimpleNamespace(runner=runner), before, ["gone", "empty", "removed"])
    assert calls[-1] == ["docker", "volume", "rm", "gone"], calls


def test_db_find_never_looks_into_a_throwaway_servers_socket_volume(tmp_path):
    """db-upgrade's socket volumes hold a socket, never a cluster, and a look that mounts one
    keeps the upgrade that made it from removing it ('volume is in use'): they are counted,
    never mounted."""
    import json

    from fakes import RecordingRunner, make_kit

    from dbguard.find import find_clusters

    runner = RecordingRunner(tmp_path)
    kit = make_kit(tmp_path, runner)
    runner.answer(["docker", "volume", "ls"], stdout=b"old_sum_db_data\told\tsum_db_data\t\t\n"
                  b"shop-sock\t\t\t\tsumplatform\n")
    runner.answer(["docker", "volume", "inspect"], stdout=json.dumps(
        [{"Name": "old_sum_db_data", "CreatedAt": "2026-12-01T09:00:00Z"}]).encode())
    runner.answer(["docker", "run"], stdout=b"0\t./\t15\t7001\t1765000000\t40000\t0\n")
    clusters, volumes = find_clusters(kit)
    assert [c.name for c in clusters] == ["old_sum_db_data"] and volumes == 2, clusters
    inspected = next(a for a in runner.recorded if a[:3] == ["docker", "volume", "inspect"])
    looks = [a for a in runner.recorded if a[:2] == ["docker", "run"]]
    assert looks and "shop-sock" not in inspected, runner.recorded
    assert not any("shop-sock" in arg for a in looks for arg in a), looks
