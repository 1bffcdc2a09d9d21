"""The exact docker and compose argument lists of every command that changes state: compose up
and stop, the copy and snapshot containers, pg_dump, pg_restore and psql, stopping and removing
containers, and (re)creating volumes. A runner that records calls stands in for Docker; the
Runner's own dry-run and verbose logic stays real. The real-Docker tier runs the same code."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

import db_down
from dbguard.backup_check import CheckedBackup
from dbguard.compose import Project
from dbguard.destructive.replace_volume import (COPY_SCRIPT, UNTAR_SCRIPT, copy_verified,
                                                copy_volume, ensure_volume, name_hash)
from dbguard.docker import Container, ImageInfo
from dbguard.dump_header import DumpFacts
from dbguard.dumps import take_dump
from dbguard.errors import Failure, Refusal
from dbguard.kit import Kit, with_credentials
from dbguard.files import read_checksum
from dbguard.loads import Loader
from dbguard.manifests import MANIFEST_SCRIPT, tar_manifest
from dbguard.server import FEED, Server
from dbguard.service import remove_leftover_helpers, start_service, stop_containers
from dbguard.settings import load_settings
from dbguard.snapshots import TAR_SCRIPT, snapshot_volume
from dbguard.volumes import Volume
from fakes import (HELPER, PASSWORD, FakeProcess, RecordingRunner, compose_args, make_kit,
                   ps_line)


@pytest.fixture
def kit(tmp_path) -> Kit:
    return make_kit(tmp_path)


def no_password_in_any_argv(kit: Kit) -> None:
    assert not [a for a in kit.runner.recorded if any(PASSWORD in x for x in a)]


def container(cid: str, state: str = "running", project: str = "sumplatform",
              helper: bool = False, owner: str = "", looking: bool = False) -> Container:
    return Container(cid, f"{project}-{cid}", state, "", "", project, "db", [], "", helper,
                     owner, "", looking)


def server(kit: Kit) -> Server:
    return kit.server_in("c1")


def psql(script: str, db: str, app: str = "dbguard", /, **variables) -> list[str]:
    argv = ["docker", "exec", "-e", f"PGAPPNAME={app}", "c1", "sh", "-c", FEED, "dbguard-sql",
            script, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-U", "sum_user", "-d", db,
            "-f", "-"]
    for k, v in variables.items():
        argv += ["-v", f"{k}={v}"]
    return argv


def test_compose_up_starts_only_the_database_service_pinned_to_the_project(kit):
    ps = ps_line("c1", "sumplatform-db-1")
    kit.runner.answer(["docker", "ps"], stdout=ps.encode())
    kit.runner.answer(["docker", "inspect"],
                      stdout=json.dumps({"Status": "running", "Health": {"Status": "healthy"}})
                      .encode())
    start_service(kit)
    before, up, ps_call, inspect = kit.runner.recorded
    assert before[:3] == ["docker", "ps", "-a"], "who runs the server now"
    assert up == compose_args(kit, "up", "-d", "db")
    assert ps_call[:3] == ["docker", "ps", "-a"]
    assert inspect == ["docker", "inspect", "--format", "{{json .State}}", "c1"]
    no_password_in_any_argv(kit)


def test_a_server_another_checkout_started_is_never_recreated_from_here(kit):
    """Worktrees sharing one Compose project: this checkout's .env names its own database, so
    its configuration differs, and a plain `up` would recreate the server under the others."""
    ps = ps_line("c1", "sumplatform-db-1", workdir="/src/main-checkout")
    kit.runner.answer(["docker", "ps"], stdout=ps.encode())
    kit.runner.answer(["docker", "inspect"],
                      stdout=json.dumps({"Status": "running", "Health": {"Status": "healthy"}})
                      .encode())
    start_service(kit)
    assert kit.runner.recorded[1] == compose_args(kit, "up", "-d", "--no-recreate", "db")


def test_db_down_stops_only_the_database_service_under_the_lock(kit, monkeypatch, capsys):
    from dbguard.errors import EXIT_REFUSED
    from dbguard.kit import kit_lock

    monkeypatch.setattr(db_down, "open_kit", lambda args, command="": kit)
    with kit_lock(kit, "db-migrate-volume"):
        assert db_down.main([]) == EXIT_REFUSED
    assert kit.runner.recorded == [], "nothing stopped while another command worked"
    assert "another dbguard command is running (db-migrate-volume, pid" in \
        capsys.readouterr().err
    assert db_down.main([]) == 0
    assert kit.runner.recorded == [compose_args(kit, "stop", "db")]


COPY_ARGV = HELPER + [
    "-i", "--mount", "type=volume,source=tradesite_sum_db_data,target=/from,readonly",
    "--mount", "type=volume,source=sumplatform_sum_db_data,target=/to",
    "postgres:15", "-c", COPY_SCRIPT, "dbguard", MANIFEST_SCRIPT]


def test_the_copy_container_copies_read_only_then_hashes_the_copy_with_the_sources_hash(kit):
    kit.runner.answer(COPY_ARGV, stdout=b"progress 512\nprogress 1024\nhash cksum 2\n== /to\n"
                      b"regular file|600|999|999|3|1|./PG_VERSION\n-- sums\n"
                      b"123 3 ./PG_VERSION\n-- links\n")
    got = copy_volume(kit, Volume("tradesite_sum_db_data", size=1 << 20),
                      Volume("sumplatform_sum_db_data"), lambda: "cksum")
    assert kit.runner.recorded == [COPY_ARGV]
    assert kit.runner.processes[0].stdin.kept == b"cksum\n", "the source's pick, on stdin"
    assert got == {"./PG_VERSION": ("f", "600", "999", "999", 3, 1, "crc32:123:3")}, \
        "progress lines are not part of the manifest"
    # The script marks and empties the target before it copies, in that order, and hashes
    # only a copy that cp finished.
    marks, empties, copies, fails, hashes = (COPY_SCRIPT.index(s) for s in (
        "touch /to/.dbguard-incomplete", "-exec rm -rf", "cp -a", '|| exit "$code"',
        'exec /bin/sh -c "$1"'))
    assert marks < empties < copies < fails < hashes


def test_a_copy_container_that_fails_is_a_failure_naming_docker_run(kit):
    kit.runner.answer(HELPER, returncode=1, stderr=b"cp: write error: No space left on device")
    with pytest.raises(Failure) as err:
        copy_volume(kit, Volume("tradesite_sum_db_data"), Volume("sumplatform_sum_db_data"),
                    lambda: "cksum")
    assert err.value.message == "`docker run` failed: cp: write error: No space left on device"


def test_a_source_side_that_names_no_hash_is_the_error_not_the_copys_silent_exit(kit):
    source = HELPER + ["--mount", "type=volume,source=tradesite_sum_db_data,target=/m,readonly"]
    kit.runner.answer(source, returncode=1, stderr=b"find: /m: Permission denied")
    kit.runner.answer(HELPER, returncode=1)  # what the copy script does on an empty stdin
    with pytest.raises(Failure) as err:
        copy_verified(kit, Volume("tradesite_sum_db_data"), Volume("sumplatform_sum_db_data"))
    assert err.value.message == "`docker run` failed: find: /m: Permission denied"


def test_the_hash_is_timed_only_for_a_volume_big_enough_to_repay_the_timing(kit):
    """Timing five tools on 32 MiB each costs more than hashing a small volume with the
    slowest; a volume of unknown size is timed."""
    from dbguard.manifests import PICK_ABOVE
    source = HELPER + ["--mount", "type=volume,source=tradesite_sum_db_data,target=/m,readonly"]
    kit.runner.answer(source, returncode=1, stderr=b"stop here")
    chosen = {}
    for size in (PICK_ABOVE, PICK_ABOVE + 1, None):
        with pytest.raises(Failure):
            copy_verified(kit, Volume("tradesite_sum_db_data", size=size),
                          Volume("sumplatform_sum_db_data"))
        argv = next(a for a in reversed(kit.runner.recorded) if a[:len(source)] == source)
        chosen[size] = argv[argv.index(MANIFEST_SCRIPT) + 2:]  # after $0
    assert chosen == {PICK_ABOVE: ["first", "spare", "/m"],
                      PICK_ABOVE + 1: ["pick", "spare", "/m"], None: ["pick", "spare", "/m"]}


def test_the_copy_container_gets_the_sources_hash_or_an_empty_stdin(kit):
    def no_hash():
        raise Failure("the manifest container did not name its hash", "Run again")

    named, unnamed = FakeProcess([]), FakeProcess([])
    name_hash(named, lambda: "b2sum")
    name_hash(unnamed, no_hash)
    assert named.stdin.kept == b"b2sum\n"
    assert unnamed.stdin.kept == b"", "closed with nothing: the script exits, hashing nothing"


def test_a_copys_manifest_with_a_file_but_no_hash_is_a_failure_not_equal(kit):
    kit.runner.answer(COPY_ARGV, stdout=b"hash cksum 2\n== /to\n"
                      b"regular file|600|999|999|3|1|./PG_VERSION\n-- sums\n-- links\n")
    with pytest.raises(Failure) as err:
        copy_volume(kit, Volume("tradesite_sum_db_data"), Volume("sumplatform_sum_db_data"),
                    lambda: "cksum")
    assert err.value.message == "a volume's manifest is incomplete (no hash for ./PG_VERSION)"


def snapshot_stream(tmp_path: Path) -> tuple[bytes, str]:
    """A tar stream of a small cluster folder, and the manifest the volume side would print."""
    folder = tmp_path / "volume"
    folder.mkdir()
    (folder / "PG_VERSION").write_text("15\n")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(folder, arcname=".")
    data = buffer.getvalue()
    archive_path = tmp_path / "a.tar"
    archive_path.write_bytes(data)
    stat_lines, sums = [], []
    for path, entry in tar_manifest(archive_path).items():
        if entry[0] == "d":
            stat_lines.append(f"directory|{entry[1]}|{entry[2]}|{entry[3]}|4096|0|{path}")
        else:
            stat_lines.append(f"regular file|{entry[1]}|{entry[2]}|{entry[3]}|{entry[4]}|"
                              f"{entry[5]}|{path}")
            sums.append(f"{entry[6]}  {path}")
    return data, "\n".join(["== /m", *stat_lines, "-- sums", *sums, "-- links"]) + "\n"


def test_the_snapshot_container_reads_the_volume_read_only_and_is_checked_file_by_file(
        kit, tmp_path):
    data, manifest = snapshot_stream(tmp_path)
    kit.runner.answer(HELPER + ["--mount", "type=volume,source=sumplatform_sum_db_data,"
                                "target=/v,readonly"], stdout=data)
    kit.runner.answer(HELPER + ["--mount", "type=volume,source=sumplatform_sum_db_data,"
                                "target=/m,readonly"], stdout=manifest.encode())
    path = snapshot_volume(kit, Volume("sumplatform_sum_db_data", size=4096))
    tar, check = kit.runner.recorded
    assert tar == HELPER + ["--mount", "type=volume,source=sumplatform_sum_db_data,target=/v,"
                            "readonly", "postgres:15", "-c", TAR_SCRIPT, "dbguard"]
    assert check == HELPER + ["--mount", "type=volume,source=sumplatform_sum_db_data,target=/m,"
                              "readonly", "postgres:15", "-c", MANIFEST_SCRIPT, "dbguard", "md5sum",
                              "all", "/m"]
    assert path.read_bytes() == data and path.with_name(path.name + ".sha256").exists()


def test_a_snapshot_that_differs_from_the_volume_is_not_kept(kit, tmp_path):
    data, manifest = snapshot_stream(tmp_path)
    kit.runner.answer(HELPER + ["--mount", "type=volume,source=sumplatform_sum_db_data,"
                                "target=/v,readonly"], stdout=data)
    kit.runner.answer(HELPER + ["--mount", "type=volume,source=sumplatform_sum_db_data,"
                                "target=/m,readonly"],
                      stdout=manifest.replace("|15\n", "|16\n").replace("  ./PG_VERSION",
                                                                         "x  ./PG_VERSION")
                      .encode())
    with pytest.raises(Failure) as err:
        snapshot_volume(kit, Volume("sumplatform_sum_db_data", size=4096))
    assert err.value.message.startswith("the snapshot of sumplatform_sum_db_data differs from "
                                        "the volume (differs ./PG_VERSION")
    assert list((kit.settings.backup_dir / "volumes").iterdir()) == []


PG_DUMP = ["docker", "exec", "-e", "PGAPPNAME=dbguard", "c1", "pg_dump", "-U", "sum_user", "-d",
           "sum_db", "--format"]


def test_pg_dump_runs_in_the_container_over_its_socket_and_is_walked_as_it_is_written(kit):
    body = (Path(__file__).parent / "data" / "pg15.dump").read_bytes()
    dump = PG_DUMP + ["c", "-Z", "1"]
    kit.runner.answer(dump, stdout=body)
    path = take_dump(kit, server(kit), "custom", tag="pre-restore")
    assert kit.runner.recorded == [dump], "one stream: no second read through pg_restore"
    assert path.read_bytes() == body and path.name.endswith("_pre-restore.dump")
    assert read_checksum(path) == hashlib.sha256(body).hexdigest()
    no_password_in_any_argv(kit)


@pytest.mark.parametrize("reads", [True, False])
def test_an_archive_version_the_walk_does_not_know_is_read_back_whole(kit, reads):
    body = bytearray((Path(__file__).parent / "data" / "pg15.dump").read_bytes())
    body[6] = 15  # archive version 1.15 (PostgreSQL 16): not checked against a real one here
    read = ["docker", "exec", "-i", "c1", "pg_restore", "-f", "/dev/null"]
    kit.runner.answer(read, returncode=0 if reads else 1,
                      stderr=b"" if reads else b"pg_restore: error: unexpected end of file")
    kit.runner.answer(PG_DUMP, stdout=bytes(body))
    if reads:
        assert take_dump(kit, server(kit), "custom").read_bytes() == bytes(body)
    else:
        with pytest.raises(Failure, match="does not read back whole"):
            take_dump(kit, server(kit), "custom")
        assert list(kit.settings.backup_dir.iterdir()) == [], "nothing kept"
    assert kit.runner.recorded[-1] == read


@pytest.mark.parametrize("cut", [1, 100, 2000])
def test_a_cut_archive_stream_keeps_nothing_even_when_pg_dump_says_0(kit, cut):
    body = (Path(__file__).parent / "data" / "pg15.dump").read_bytes()
    kit.runner.answer(PG_DUMP, stdout=body[:-cut])
    with pytest.raises(Failure) as err:
        take_dump(kit, server(kit), "custom")
    assert err.value.message.startswith("the dump is not a whole archive: it ends inside")
    assert list(kit.settings.backup_dir.iterdir()) == [], "nothing kept, not even a partial"


@pytest.mark.parametrize("major, setting, level", [
    (15, "auto", "1"), (None, "auto", "1"), (16, "auto", "zstd:1"), (18, "auto", "zstd:1"),
    (15, "6", "6"), (17, "lz4", "lz4")])
def test_custom_dumps_compress_by_what_the_images_pg_dump_can_do(kit, major, setting, level):
    kit = dataclasses.replace(
        kit, settings=dataclasses.replace(kit.settings, dump_compression=setting),
        image=dataclasses.replace(kit.image, pg_major=major))
    dump = PG_DUMP + ["c", "-Z", level]
    kit.runner.answer(dump, stdout=b"PGDMP" + os.urandom(64))
    take_dump(kit, server(kit), "custom")
    assert kit.runner.recorded[0] == dump


@pytest.mark.parametrize("setting", ["zstd", "lz4:3", "gzip:5", "none"])
def test_a_compression_pg_dump_15_does_not_know_is_refused_before_anything_runs(kit, setting):
    kit = dataclasses.replace(
        kit, settings=dataclasses.replace(kit.settings, dump_compression=setting),
        image=dataclasses.replace(kit.image, pg_major=15))
    with pytest.raises(Failure) as err:
        take_dump(kit, server(kit), "custom")
    assert err.value.message.startswith(f"DBGUARD_DUMP_COMPRESSION={setting} needs pg_dump 16")
    assert kit.runner.recorded == [] and not kit.settings.backup_dir.exists()


def test_a_pg_dump_without_zstd_gets_zlib_level_1_with_a_warning(kit, capsys):
    kit = dataclasses.replace(kit, image=dataclasses.replace(kit.image, pg_major=16))
    zstd = PG_DUMP + ["c", "-Z", "zstd:1"]
    kit.runner.answer(zstd, returncode=1,
                      stderr=b"pg_dump: error: this build does not support compression with zstd")
    zlib = zstd[:-1] + ["1"]
    kit.runner.answer(zlib, stdout=b"PGDMP" + os.urandom(64))
    path = take_dump(kit, server(kit), "custom")
    assert [a for a in kit.runner.recorded if "pg_dump" in a] == [zstd, zlib] and path.exists()
    assert "this pg_dump cannot compress with zstd:1; using zlib level 1" in capsys.readouterr().err


def test_plain_pg_dump_has_no_reader_and_needs_its_trailer(kit):
    dump = PG_DUMP + ["p"]
    kit.runner.answer(dump, stdout=b"--\n-- PostgreSQL database dump\n--\nCREATE TABLE t();\n")
    with pytest.raises(Failure) as err:
        take_dump(kit, server(kit), "plain")
    assert kit.runner.recorded == [dump]
    assert err.value.message == "the dump has no completion trailer (pg_dump stopped early)"
    assert list(kit.settings.backup_dir.iterdir()) == [], "nothing kept, not even a partial"


def custom_backup(tmp_path, name="sum_db_20251215_124427.dump") -> CheckedBackup:
    dump = tmp_path / name
    dump.write_bytes(b"PGDMP")
    return CheckedBackup(dump, DumpFacts("custom", "sum_db", "15.1", "15.1"), True)


CLEAN = ["docker", "exec", "c1", "sh", "-c", f"rm -f /tmp/dbguard-restore-{os.getpid()}-*.dump"]
LEFTOVERS = ["docker", "exec", "c1", "ls", "/tmp"]
APP = ["-e", f"PGAPPNAME=dbguard:dbguard:{os.getpid()}"]


def loader(kit, backup: CheckedBackup) -> Loader:
    load = Loader(kit, server(kit))
    load.stage(backup.path)
    load.use(backup)
    return load


def test_pg_restore_loads_a_custom_archive_in_parallel_from_a_copy_in_the_container(
        kit, tmp_path):
    backup = custom_backup(tmp_path)
    with Loader(kit, server(kit)) as load:
        load.stage(backup.path)
        inside = f"/tmp/dbguard-restore-{os.getpid()}-1.dump"
        copy = ["docker", "cp", str(backup.path), f"c1:{inside}"]
        assert kit.runner.recorded == [LEFTOVERS, copy], "the copy starts before the checks"
        load.use(backup)
        load("sum_db_dbguard_new")
        assert kit.runner.recorded[-1] == CLEAN, "the copy goes while the swap runs"
    jobs = str(max(1, min(4, os.cpu_count() or 1)))
    assert kit.runner.recorded == [
        LEFTOVERS, copy, ["docker", "exec", *APP, "c1", "pg_restore", "-U", "sum_user", "-d",
                          "sum_db_dbguard_new", "--exit-on-error", "-j", jobs, inside], CLEAN]


def test_copies_a_killed_run_left_in_the_container_are_removed_only_if_their_run_is_gone(
        kit, tmp_path):
    gone = 2 ** 22 + 7  # above any pid this machine hands out
    kit.runner.answer(LEFTOVERS, stdout=f"dbguard-restore-{gone}-1.dump\n"
                      f"dbguard-restore-1-1.dump\nother.dump\n".encode())
    with Loader(kit, server(kit)):
        pass
    assert kit.runner.recorded == [LEFTOVERS, ["docker", "exec", "c1", "rm", "-f",
                                               f"/tmp/dbguard-restore-{gone}-1.dump"]]


def test_a_backup_refused_by_its_checks_has_its_copy_replaced_by_the_next_ones(kit, tmp_path):
    refused, good = custom_backup(tmp_path, "new.dump"), custom_backup(tmp_path, "old.dump")
    (tmp_path / "plain.sql").write_text("SELECT 1;\n")
    with Loader(kit, server(kit)) as load:
        load.stage(tmp_path / "plain.sql")  # plain SQL goes through stdin: no copy
        load.stage(tmp_path / "missing.dump")  # the checks will say so: no copy
        load.stage(refused.path)
        load.stage(good.path)
        load.use(good)
        load("sum_db_dbguard_new")
    copies = [a for a in kit.runner.recorded if a[:2] == ["docker", "cp"]]
    assert [c[2] for c in copies] == [str(refused.path), str(good.path)]
    assert copies[0][3] != copies[1][3], "a stopped copy never writes into the next one's file"
    restore = next(a for a in kit.runner.recorded if "pg_restore" in a)
    assert restore[-1] == copies[1][3].split(":", 1)[1] and kit.runner.recorded[-1] == CLEAN


def test_a_declined_restore_removes_the_copy_it_started_and_a_dry_run_copies_nothing(
        kit, tmp_path):
    backup = custom_backup(tmp_path)
    with pytest.raises(Refusal), loader(kit, backup):
        raise Refusal("answered no", "nothing was changed")
    assert [a[:2] for a in kit.runner.recorded] == [["docker", "cp"], ["docker", "exec"],
                                                    ["docker", "exec"]]
    assert kit.runner.recorded[2] == CLEAN
    dry = dataclasses.replace(kit, runner=RecordingRunner(tmp_path, dry_run=True))
    with loader(dry, backup):
        pass
    assert dry.runner.recorded == []


def test_a_failed_copy_into_the_container_is_one_error_before_the_load(kit, tmp_path):
    kit.runner.answer(["docker", "cp"], returncode=1,
                      stderr=b"Error response from daemon: no space left on device")
    with pytest.raises(Failure) as err, loader(kit, custom_backup(tmp_path)) as load:
        load("sum_db_dbguard_new")
    assert err.value.message == "`docker cp` failed: Error response from daemon: no space left " \
                                "on device"
    assert not [a for a in kit.runner.recorded if "pg_restore" in a]
    assert kit.runner.recorded[-1] == CLEAN


def test_a_failed_pg_restore_still_removes_its_copy_in_the_container(kit, tmp_path):
    kit.runner.answer(["docker", "exec", *APP, "c1", "pg_restore"], returncode=1,
                      stderr=b'pg_restore: error: role "app" does not exist')
    with pytest.raises(Failure) as err, loader(kit, custom_backup(tmp_path, "x.dump")) as load:
        load("sum_db_dbguard_new")
    assert err.value.message == 'loading x.dump failed: pg_restore: error: role "app" does not ' \
                                'exist'
    assert kit.runner.recorded[-1] == CLEAN


def test_plain_sql_loads_with_psql_stopping_at_the_first_error_in_one_transaction(
        kit, tmp_path):
    dump = tmp_path / "sum_db_20251215_124427.sql"
    dump.write_text("SELECT 1;\n")
    backup = CheckedBackup(dump, DumpFacts("plain", None, "15.1", "15.1"), True)
    with loader(kit, backup) as load:
        load("sum_db_dbguard_new")
    assert kit.runner.recorded[1:] == [[
        "docker", "exec", "-i", *APP, "c1", "psql", "-X", "-q", "-U", "sum_user",
        "-d", "sum_db_dbguard_new", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f", "-"]]


def test_only_running_containers_are_stopped_and_only_this_projects_helpers_removed(kit):
    stop_containers(kit, [container("run"), container("gone", state="exited"),
                          container("paused", state="paused")])
    ps = "\n".join([ps_line("h1", "x", helper="1", owner="sumplatform", project=""),
                    ps_line("h2", "y", helper="1", owner="shop", project=""),
                    ps_line("h3", "z", helper="look", project=""),
                    ps_line("app", "sumplatform-db-1")])
    kit.runner.answer(["docker", "ps"], stdout=ps.encode())
    old = container("h0", project="", helper=True)  # an older kit's, on one of our volumes
    # On our volumes too: another project's helper, and a scan at work (db-info or db-find of
    # another terminal or project, every mount read-only), which is not a leftover.
    theirs = container("h2", project="", helper=True, owner="shop")
    looks = container("h3", project="", helper=True, looking=True)
    remove_leftover_helpers(kit, [old, theirs, looks, container("app")])
    assert kit.runner.recorded[0] == ["docker", "stop", "run", "paused"]
    assert kit.runner.recorded[-1] == ["docker", "rm", "-f", "-v", "h1", "h0"], \
        "another project's helper (h2) and a scan at work (h3) are not ours to touch"


def test_a_helper_that_only_looks_is_labelled_so_and_mounts_nothing_writable():
    from dbguard.docker import ImageInfo, helper_args
    image = ImageInfo("postgres:17", True, 17, "/var/lib/postgresql/data", ())
    ro, rw = ("volume", "app_pgdata", "/v/0", True), ("volume", "app_pgdata", "/v/0", False)
    assert "dbguard.helper=look" in helper_args(image, [ro], "true", looks=True)
    assert "dbguard.helper=1" in helper_args(image, [rw], "true")
    with pytest.raises(ValueError):
        helper_args(image, [ro, rw], "true", looks=True)


def test_a_throwaway_container_whose_output_the_kit_reads_keeps_no_log(kit):
    """A volume's tar, a manifest of every file, a whole cluster's dump: read through the
    attached client, never also written by Docker's log driver as JSON on the engine's disk."""
    from types import SimpleNamespace

    from dbguard.docker import ImageInfo, helper_args
    from dbguard.upgrade import CLUSTER_TRAILER, dump_cluster
    image = ImageInfo("postgres:17", True, 17, "/var/lib/postgresql/data", ())
    argvs = [helper_args(image, [("volume", "app_pgdata", "/v/0", True)], "true", looks=looks)
             for looks in (True, False)]
    kit.runner.answer(["docker", "inspect"], stdout=b"socketvolume\n")
    kit.runner.answer(["docker", "run"], stdout=b"-- dump\n-- " + CLUSTER_TRAILER + b"\n")
    dump_cluster(kit, SimpleNamespace(container="old-server"), 15)
    argvs.append(kit.runner.recorded[-1])  # pg_dumpall's
    for argv in argvs:
        at = argv.index("--log-driver")
        assert argv[at + 1] == "none" and at < argv.index("--entrypoint"), argv


LABELS = ["--label", "com.docker.compose.project=sumplatform", "--label",
          "com.docker.compose.volume=sum_db_data", "--label",
          "com.docker.compose.version=2.40.3"]


def test_a_new_target_volume_is_created_with_the_labels_compose_gives_its_own(kit):
    ensure_volume(kit, Volume("sumplatform_sum_db_data", exists=False))
    assert kit.runner.recorded == [["docker", "volume", "create", *LABELS,
                                    "sumplatform_sum_db_data"]]


def test_an_unlabelled_target_is_recreated_with_labels_after_its_stopped_users_go(kit):
    old = container("c9", state="exited")
    ensure_volume(kit, Volume("sumplatform_sum_db_data", labels={}, used_by=[old]))
    assert kit.runner.recorded == [
        ["docker", "rm", "c9"], ["docker", "volume", "rm", "sumplatform_sum_db_data"],
        ["docker", "volume", "create", *LABELS, "sumplatform_sum_db_data"]]


def test_a_target_another_project_refers_to_keeps_its_labels(kit):
    ensure_volume(kit, Volume("sumplatform_sum_db_data", labels={},
                              used_by=[container("x", project="other")]))
    assert kit.runner.recorded == []


def test_a_folder_target_is_created_on_the_host_and_never_labelled(kit, tmp_path):
    folder = tmp_path / "postgres14"
    ensure_volume(kit, Volume(str(folder), exists=False, folder=True))
    assert folder.is_dir() and kit.runner.recorded == []


def test_putting_a_snapshot_back_writes_the_mark_first_and_again_after_untar():
    """busybox's tar has no --exclude: the archive is extracted whole and the mark written
    again, so the target stays marked until `unmark`."""
    assert "--exclude" not in UNTAR_SCRIPT
    touch, empty, untar, again = (UNTAR_SCRIPT.index(s) for s in (
        "touch /to/.dbguard-incomplete &&", "-exec rm -rf", "tar -C /to -xpf -",
        "\ntouch /to/.dbguard-incomplete\n"))
    assert touch < empty < untar < again


def test_only_the_destructive_modules_drop_rename_or_empty_anything():
    package = Path(__file__).resolve().parents[2] / "scripts" / "dbguard"
    primitives = ("DROP DATABASE", "RENAME TO", "rm -rf", '"volume", "rm"', ".unlink()",
                  "EMPTY_SCRIPT", "ALLOW_CONNECTIONS false")
    for path in package.rglob("*.py"):
        text = path.read_text()
        found = [p for p in primitives if p in text]
        if path.parent.name == "destructive" or path.name == "files.py":
            continue
        assert not found, f"{path.relative_to(package)} holds {found}: it belongs in destructive/"
    files = (package / "files.py").read_text()
    assert files.count(".unlink()") == 2 and "self.partial.unlink()" in files \
        and "tmp.unlink()" in files, "files.py removes only its own partial files"


def test_db_dump_waits_its_turn_behind_a_command_that_changes_data(kit, monkeypatch):
    import db_dump
    from dbguard.errors import EXIT_REFUSED
    from dbguard.kit import kit_lock

    kit.runner.answer(["docker", "ps"], stdout=ps_line("c1", "sumplatform-db-1").encode())
    monkeypatch.setattr(db_dump, "open_kit", lambda args, command="": kit)
    with kit_lock(kit, "db-restore"):
        assert db_dump.main([]) == EXIT_REFUSED
    assert not [a for a in kit.runner.recorded if "pg_dump" in a], "no pg_dump started"


def test_db_prune_waits_its_turn_and_deletes_nothing_meanwhile(kit, monkeypatch, capsys):
    import db_prune
    from dbguard.errors import EXIT_REFUSED
    from dbguard.kit import kit_lock

    folder = kit.settings.backup_dir
    folder.mkdir()
    names = [f"sum_db_2025121{i}_124427.dump" for i in range(3)]
    for name in names:
        (folder / name).write_bytes(b"PGDMP")
        (folder / f"{name}.sha256").write_text(
            f"{hashlib.sha256(b'PGDMP').hexdigest()}  {name}\n")
    monkeypatch.setattr(db_prune, "load_settings", lambda: kit.settings)
    with kit_lock(kit, "db-restore"):
        assert db_prune.main(["--keep", "1", "--yes"]) == EXIT_REFUSED
    assert capsys.readouterr().err.startswith(
        "ERROR: another dbguard command is running (db-restore, pid ")
    assert sorted(p.name for p in folder.glob("*.dump")) == names
    assert db_prune.main(["--keep", "1", "--yes"]) == 0
    assert [p.name for p in folder.glob("*.dump")] == [names[-1]]


def test_an_image_that_cannot_be_pulled_is_one_error_pointing_at_composes_output(
        kit, monkeypatch, capsys):
    import db_up

    absent = dataclasses.replace(kit, image=ImageInfo("postgres:15", False, 15, None))
    monkeypatch.setattr(db_up, "open_kit", lambda args, command="": absent)
    monkeypatch.setattr(db_up, "init_env_file", lambda: False)
    kit.runner.answer(compose_args(kit, "pull"), returncode=1)
    assert db_up.main([]) == 1
    assert kit.runner.recorded == [compose_args(kit, "pull", "db")]
    assert capsys.readouterr().err.splitlines()[-1] == (
        "ERROR: `docker compose pull` failed (its output is above). Make the image postgres:15 "
        "available (check its name, or build or load it) and run again; nothing was started")


def test_a_server_error_is_one_error_line_with_the_servers_words_and_no_password(kit):
    script = "ALTER DATABASE :\"db\" RENAME TO x;"
    kit.runner.answer(["docker", "exec"], returncode=3, stderr=(
        'psql:<stdin>:1: ERROR:  database "sum_db" is being accessed by other users\n'
        "DETAIL:  There is 1 other session using the database.\n").encode())
    with pytest.raises(Failure) as err:
        server(kit).run(script, "postgres", db="sum_db")
    assert err.value.line() == (
        "ERROR: the database server refused a step (ERROR: database \"sum_db\" is being "
        "accessed by other users). Fix what it says and run again; `make db-info` shows the "
        "state")
    assert kit.runner.recorded == [psql(script, "postgres", f"dbguard:dbguard:{os.getpid()}",
                                        db="sum_db")], "the script whole in argv, not a pipe"
    no_password_in_any_argv(kit)


def test_the_password_reaches_psql_only_through_the_environment_and_only_when_asked(kit):
    kit.runner.answer(["docker", "exec", "-e", "PGAPPNAME=dbguard", "c1"], returncode=2,
                      stderr=b'psql: error: connection to server on socket "/var/run/'
                      b'postgresql/.s.PGSQL.5432" failed: FATAL:  password authentication '
                      b'failed for user "sum_user"\n')
    kit.runner.answer(["docker", "exec", "-e", "PGAPPNAME=dbguard", "-e", "PGPASSWORD"],
                      stdout=b'[{"n": 1}]')
    assert server(kit).rows("SELECT 1 AS n", "postgres") == [{"n": 1}]
    first, second = kit.runner.recorded
    assert "PGPASSWORD" not in first and second[:6] == [
        "docker", "exec", "-e", "PGAPPNAME=dbguard", "-e", "PGPASSWORD"]
    assert kit.runner.envs[0] is None and kit.runner.envs[1]["PGPASSWORD"] == PASSWORD
    no_password_in_any_argv(kit)


def test_a_backup_removed_by_hand_while_db_prune_runs_is_no_error(kit):
    from dbguard.destructive.delete_backups import delete

    folder = kit.settings.backup_dir
    folder.mkdir()
    files = [folder / f"sum_db_2025120{day}_000000.dump" for day in (1, 2, 3)]
    for f in files:
        f.write_bytes(b"PGDMP")
    files[0].unlink()  # listed, then removed by hand before the deletion
    assert delete(files[:2]) == 1
    assert [p.name for p in folder.iterdir()] == ["sum_db_20251203_000000.dump"]


def test_db_backups_lists_safety_dumps_and_unfinished_snapshots_apart(kit, monkeypatch, capsys):
    import db_backups

    folder = kit.settings.backup_dir
    (folder / "volumes").mkdir(parents=True)
    (folder / "sum_db_20251201_000000.dump").write_bytes(b"PGDMP")
    (folder / "sum_db_20251202_000000_pre-restore.dump").write_bytes(b"PGDMP")
    (folder / "volumes" / ".sumplatform_sum_db_data_20251202_000000.tar.partial").write_bytes(
        b"half")
    monkeypatch.setattr(db_backups, "load_settings", lambda: kit.settings)
    assert db_backups.main([]) == 0
    out = capsys.readouterr().out
    own, safety = out.split("safety dumps")
    assert "sum_db_20251201_000000.dump" in own and "pre-restore" not in own
    assert "sum_db_20251202_000000_pre-restore.dump" in safety
    assert "1 unfinished snapshot(s)" in out
    assert db_backups.main(["--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [b["name"] for b in listed["safety_dumps"]] == [
        "sum_db_20251202_000000_pre-restore.dump"]
    assert listed["unfinished_snapshots"] == [
        ".sumplatform_sum_db_data_20251202_000000.tar.partial"]


def test_a_data_command_clears_only_the_kits_own_leftover_partial_files(kit, monkeypatch):
    """Under the lock, the kit's `.partial` files are a killed run's debris and go when db-dump
    starts (db-upgrade's cluster dumps too); a partial file of another program in a shared
    folder is never touched."""
    import db_dump

    folder = kit.settings.backup_dir
    (folder / "volumes").mkdir(parents=True)
    (folder / "upgrades").mkdir(parents=True)
    ours = [folder / ".sum_db_20251201_000000.dump.partial",
            folder / ".sum_db_20251201_000000.dump.sha256.partial",
            folder / "volumes" / ".sumplatform_sum_db_data_20251201_000000.tar.partial",
            folder / "upgrades" / ".20251201_000000_pg15_cluster.sql.partial"]
    theirs = [folder / ".download.partial", folder / "volumes" / ".notes.partial"]
    for path in ours + theirs:
        path.write_bytes(b"half")
    monkeypatch.setattr(db_dump, "open_kit", lambda args, command="": kit)
    kit.runner.answer(["docker", "ps"], stdout=ps_line("c1", "sumplatform-db-1").encode())
    kit.runner.answer(PG_DUMP, stdout=b"PGDMP" + os.urandom(64))
    assert db_dump.main([]) == 0
    assert [p.exists() for p in ours] == [False] * 4
    assert [p.exists() for p in theirs] == [True, True], "not the kit's: kept"


# Credentials in a repository that sets none of the kit's keys.

def bare_settings(tmp_path, **env):
    (tmp_path / "compose.yaml").write_text("services: {}\n")
    return load_settings(tmp_path, environ=env)


@pytest.mark.parametrize("service_env, env, db, expected", [
    ({}, {}, None, ("postgres", "postgres", "")),
    ({"POSTGRES_USER": "shop", "POSTGRES_PASSWORD": "pw1"}, {}, None, ("shop", "shop", "pw1")),
    ({"POSTGRES_USER": "shop", "POSTGRES_DB": "shopdb", "POSTGRES_PASSWORD": "pw1"}, {}, None,
     ("shopdb", "shop", "pw1")),
    ({"POSTGRES_USER": "shop", "POSTGRES_PASSWORD": "pw1"},
     {"DJANGO_DB_NAME": "other", "DJANGO_DB_USER": "app", "DJANGO_DB_PASSWORD": "pw2"}, None,
     ("other", "app", "pw1")),
    ({"POSTGRES_PASSWORD_FILE": "/run/secrets/pw"}, {"DJANGO_DB_PASSWORD": "pw2"}, None,
     ("postgres", "postgres", "pw2")),
    ({"POSTGRES_HOST_AUTH_METHOD": "trust"}, {}, "mastodon_production",
     ("mastodon_production", "postgres", "")),
])
def test_credentials_come_from_the_service_as_compose_resolved_it(tmp_path, service_env, env,
                                                                   db, expected):
    """Name and user: DB= (the command line), else DJANGO_DB_* when set, else the service's
    POSTGRES_*, else the image's defaults; the password: the service's, DJANGO_DB_PASSWORD only
    where it shows none."""
    project = Project(name="p", name_source="directory", directory=tmp_path, service="db",
                      image="postgres:17", volume_key="d", volume="p_d", external=False,
                      mount_target="/var/lib/postgresql/data", service_pgdata=None,
                      environment=service_env)
    s = with_credentials(bare_settings(tmp_path, **env), project, db)
    assert (s.db_name, s.db_user, s.db_password) == expected


@pytest.mark.parametrize("ports, expected", [
    ({"5432/tcp": [{"HostIp": "0.0.0.0", "HostPort": "55432"}]}, ("127.0.0.1", 55432)),
    ({"5432/tcp": [{"HostIp": "127.0.0.1", "HostPort": "6001"}]}, ("127.0.0.1", 6001)),
    ({"5432/tcp": None}, None),
])
def test_the_application_is_told_the_published_port_and_the_kit_needs_none(kit, ports,
                                                                           expected):
    kit.runner.answer(["docker", "ps"], stdout=ps_line("c1", "sumplatform-db-1").encode())
    kit.runner.answer(["docker", "inspect"], stdout=json.dumps(ports).encode())
    bare = dataclasses.replace(kit, settings=dataclasses.replace(kit.settings, db_host="",
                                                                 db_port=0))
    assert bare.endpoint() == expected


def test_a_fixed_container_name_held_by_another_project_is_refused_or_freed_by_migrate(kit):
    """db-up refuses with the command that frees the name; migrate (free_name) removes the
    stopped holder (without -v: its volumes stay) before `compose up`."""
    kit = dataclasses.replace(kit, project=dataclasses.replace(kit.project,
                                                               container_name="shop_pg"))
    ps = ps_line("old1", "shop_pg", "exited", "tradesite", mounts="tradesite_sum_db_data") + \
        "\n" + ps_line("c1", "sumplatform-db-1")
    kit.runner.answer(["docker", "ps"], stdout=ps.encode())
    kit.runner.answer(["docker", "inspect"],
                      stdout=json.dumps({"Status": "running", "Health": {"Status": "healthy"}})
                      .encode())
    with pytest.raises(Refusal) as err:
        start_service(kit)
    assert err.value.line() == (
        "ERROR: the container name 'shop_pg' that service 'db' sets (container_name) is taken "
        "by a exited container of project tradesite. Remove it with `docker rm shop_pg` (its "
        "volumes stay), or stop it first if it still runs, and run again; nothing was started")
    assert not [a for a in kit.runner.recorded if a[:2] != ["docker", "ps"]], "nothing started"
    start_service(kit, free_name=True)
    assert ["docker", "rm", "old1"] in kit.runner.recorded
    assert kit.runner.recorded.index(["docker", "rm", "old1"]) < next(
        i for i, a in enumerate(kit.runner.recorded) if "up" in a)


def test_every_data_changing_command_clears_the_partial_files_a_killed_run_left(kit):
    """A killed migrate leaves its volume snapshot's `.partial`, a killed upgrade its cluster
    dump's: the next command run through the common sequence (perform) removes them under the
    lock before it plans, and leaves them alone in a dry run."""
    from types import SimpleNamespace

    from dbguard.actions import Plan, perform

    folder = kit.settings.backup_dir
    (folder / "volumes").mkdir(parents=True)
    (folder / "upgrades").mkdir(parents=True)
    left = [folder / "volumes" / ".sumplatform_sum_db_data_20251201_000000.tar.partial",
            folder / "upgrades" / ".20251201_000000_pg15_cluster.sql.partial"]
    for path in left:
        path.write_bytes(b"half")
    nothing = SimpleNamespace(COMMAND="db-test", plan=lambda kit, args, ctx: Plan(
        command="db-test", doing="test", target={}, copy={}, nothing="nothing to do"))
    kit.runner.dry_run = True
    perform(kit, nothing, SimpleNamespace(yes=True))
    assert all(p.exists() for p in left), "a dry run removes nothing"
    kit.runner.dry_run = False
    perform(kit, nothing, SimpleNamespace(yes=True))
    assert not any(p.exists() for p in left)
