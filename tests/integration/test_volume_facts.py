"""What discovery reads inside a volume, checked on volumes made to order on the real engine."""
from __future__ import annotations

import io
import json
import subprocess
import tarfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import KEY, docker, remove_volumes, shown
from harness import no_anonymous_volume

from dbguard.docker import Container, ImageInfo
from dbguard.runner import Runner
from dbguard.volumes import Volume, inspect_contents

# A cluster's shape, as discovery reads it: PG_VERSION, pg_control, and 12,000 user relation
# files of 8 KiB in one database folder (more than one xargs batch of du). printf is a shell
# builtin here, so making them starts no process per file.
LARGE_CLUSTER = r"""
mkdir -p /v/base/5 /v/global && echo 15 > /v/PG_VERSION
printf '%8s' 12345678 > /v/global/pg_control
cd /v/base/5 && n=16384
while [ $n -lt 28384 ]; do printf '%8192s' '' > $n; n=$((n + 1)); done
du -k /v/base/5/16384 | cut -f1
"""


def test_user_data_size_counts_every_file_of_a_large_cluster(image, token, tmp_path):
    name = f"{token}_{KEY}"
    docker("volume", "create", name)
    try:
        one = docker("run", "--rm", "--network", "none", "--entrypoint", "/bin/sh",
                     *no_anonymous_volume(image), "--mount",
                     f"type=volume,source={name},target=/v", image, "-c", LARGE_CLUSTER).stdout
        facts = inspect_contents(Runner(Path(tmp_path)), ImageInfo(image, True, 15, None),
                                 [(name, True)], tmp_path / "no-project")[0][name]
    finally:
        remove_volumes(name)
    assert facts["user_files"] == 12_000
    assert facts["user_bytes"] == 12_000 * int(one.strip()) * 1024, facts


# Files of very different sizes (as a cluster has: 1 GiB segments and many small files), a
# name with a space, a symlink and an empty file: what the copy check hashes.
MIXED_FILES = r"""
mkdir -p /v/base/1 /v/pg_wal && head -c 40000000 /dev/urandom > /v/base/1/big
head -c 3000000 /dev/urandom > /v/pg_wal/seg && : > /v/empty && echo x > '/v/with space'
i=0; while [ $i -lt 300 ]; do echo $i > /v/base/1/f$i; i=$((i + 1)); done
ln -s base/1/big /v/link
"""


def test_the_copy_check_picks_a_hash_the_image_has_and_every_core_gives_the_same_manifest(
        image, token, tmp_path):
    from dbguard.manifests import MANIFEST_SCRIPT, TOOLS, parse_manifests
    from dbguard.docker import helper_args

    name = f"{token}_{KEY}"
    docker("volume", "create", name)
    try:
        docker("run", "--rm", "--network", "none", "--entrypoint", "/bin/sh",
               *no_anonymous_volume(image), "--mount",
               f"type=volume,source={name},target=/v", image, "-c", MIXED_FILES)

        def manifest(tool: str, jobs: str) -> tuple[str, dict]:
            helper = ImageInfo(image, True, 15, None)
            out = docker(*helper_args(helper, [("volume", name, "/m", True)], MANIFEST_SCRIPT,
                                      tool, jobs, "/m")[1:]).stdout
            return out.splitlines()[0], parse_manifests(out)["/m"]

        first, picked = manifest("pick", "spare")
        tool = first.split()[1]
        assert tool in TOOLS, first
        untimed, _ = manifest("first", "1")
        assert untimed == "hash cksum 1", "untimed: the first of TOOLS, which Debian's image has"
        single = manifest(tool, "1")[1]
        assert manifest(tool, "3")[1] == single == picked, "dealt out or not, the same sums"
        for other in TOOLS:  # every tool the image has reads the same files the same way
            if other != tool:
                sums = manifest(other, "2")[1]
                assert {k: v[:6] for k, v in sums.items()} == {k: v[:6] for k, v in
                                                               single.items()}
        assert len(single) == 309 and single["./with space"][0] == "f"  # 4 folders, 305 more
        assert single["./link"] == ("l", "", "0", "0", "base/1/big")
        docker("run", "--rm", "--network", "none", "--entrypoint", "/bin/sh",
               *no_anonymous_volume(image), "--mount",
               f"type=volume,source={name},target=/v", image, "-c",
               "printf 'X' | dd of=/v/base/1/big bs=1 seek=1000 conv=notrunc 2>/dev/null")
        changed = manifest(tool, "3")[1]
        assert changed["./base/1/big"][6] != single["./base/1/big"][6], "one byte changes its sum"
        assert {k: v for k, v in changed.items() if k != "./base/1/big"} == \
            {k: v for k, v in single.items() if k != "./base/1/big"}
    finally:
        remove_volumes(name)


@pytest.fixture(scope="session")
def busybox_image(image, tmp_path_factory) -> str:
    """An image with nothing but busybox (from Debian's busybox-static, which the 15 test image
    carries): the shell and tools of alpine-based postgres images, where the kit's helper
    containers run when a project uses one."""
    tag = image.replace("dbguard-test-pg:", "dbguard-test-busybox:")
    if docker("image", "inspect", tag, check=False).returncode == 0:
        return tag
    folder = tmp_path_factory.mktemp("busybox")
    cid = docker("create", image).stdout.strip()
    try:
        docker("cp", f"{cid}:/bin/busybox", str(folder / "busybox"))
    finally:
        docker("rm", "-v", cid)
    applets = docker("run", "--rm", "--network", "none", "--entrypoint", "/bin/busybox", image,
                     "--list").stdout.split()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(folder / "busybox", arcname="bin/busybox")
        for name in ("tmp", "from", "to", "m"):
            entry = tarfile.TarInfo(name)
            entry.type, entry.mode = tarfile.DIRTYPE, 0o1777
            archive.addfile(entry)
        for applet in applets:
            if applet != "busybox":
                link = tarfile.TarInfo(f"bin/{applet}")
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                archive.addfile(link)
    subprocess.run(["docker", "import", "-c", "ENV PATH=/bin", "-", tag], check=True,
                   input=buffer.getvalue(), capture_output=True)
    return tag


def test_a_volume_copy_is_made_and_checked_under_busybox_as_in_an_alpine_image(
        busybox_image, token, tmp_path, monkeypatch):
    from dbguard.destructive import replace_volume
    from dbguard.manifests import volume_manifests

    from dbguard.snapshots import snapshot_volume

    kit = SimpleNamespace(image=ImageInfo(busybox_image, True, None, None), runner=Runner(tmp_path),
                          project=SimpleNamespace(name=token),
                          settings=SimpleNamespace(backup_dir=tmp_path / "backups"))
    source, target = f"{token}_from", f"{token}_to"
    for name in (source, target):
        docker("volume", "create", name)
    try:
        docker("run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", "--mount",
               f"type=volume,source={source},target=/v", busybox_image, "-c", MIXED_FILES)
        assert replace_volume.copy_verified(kit, Volume(source), Volume(target)) == []
        before, after = volume_manifests(kit, [Volume(source), Volume(target)])
        assert after == before and len(after) == 309, "the copy is whole, by a second look"
        assert docker("run", "--rm", "--mount", f"type=volume,source={target},target=/to",
                      busybox_image, "ls", "-a", "/to").stdout.split().count(
                          ".dbguard-incomplete") == 1, "the mark stays for the caller"
        # And the check can fail there: a copy changed after cp, before its manifest.
        monkeypatch.setattr(replace_volume, "COPY_SCRIPT", replace_volume.COPY_SCRIPT.replace(
            "cp -a /from/. /to/\n", "cp -a /from/. /to/ && echo x >> /to/empty\n"))
        assert replace_volume.copy_verified(kit, Volume(source), Volume(target))[0].startswith(
            "differs ./empty")
        # A snapshot taken and put back there (busybox's tar has no --exclude).
        tar = snapshot_volume(kit, Volume(source, size=1))
        assert replace_volume.fill_from_snapshot(kit, tar, Volume(target)) == []
        assert volume_manifests(kit, [Volume(target)])[0] == before
        assert ".dbguard-incomplete" in docker(
            "run", "--rm", "--mount", f"type=volume,source={target},target=/to", busybox_image,
            "ls", "-a", "/to").stdout.split(), "marked until unmark"
    finally:
        remove_volumes(source, target)


def test_a_running_service_is_read_in_place_with_the_facts_a_throwaway_container_reads(
        running_kit, tmp_path):
    """db-info on a running database reads the volume inside the service container (one
    `docker exec`), with no throwaway container; and what it reads there is what a throwaway
    container reads on the same volume."""
    kit = running_kit
    r = kit.script("db_info", "-v")
    assert r.returncode == 0, shown(r)
    calls = [line for line in r.stderr.splitlines() if line.startswith("+ docker")]
    assert any(c.startswith("+ docker exec --user 0:0 ") and "<inspect script>" in c
               for c in calls), calls
    assert not [c for c in calls if c.startswith("+ docker run")], "no throwaway container"

    class Recording(Runner):
        def __call__(self, args, **kwargs):
            self.seen.append(list(args[:2]))
            return super().__call__(args, **kwargs)

    runner = Recording(tmp_path)
    runner.seen = []
    cid = docker("ps", "-q", "--no-trunc", "--filter",
                 f"label=com.docker.compose.project={kit.project}").stdout.strip()
    service = Container(cid, "db", "running", "Up", "", kit.project, "db", [kit.volume])
    image = ImageInfo(kit.image, True, 15, "/var/lib/postgresql/data")
    inside, _ = inspect_contents(runner, image, [(kit.volume, True)], kit.root, ".", service)
    assert runner.seen == [["docker", "inspect"], ["docker", "exec"]], runner.seen
    outside, _ = inspect_contents(runner, image, [(kit.volume, True)], kit.root, ".")
    assert runner.seen[-1] == ["docker", "run"], runner.seen
    # The server may write between the two reads: sizes can move, nothing else.
    steady = ("size", "user_bytes")
    assert {k: v for k, v in inside[kit.volume].items() if k not in steady} == \
        {k: v for k, v in outside[kit.volume].items() if k not in steady}
    assert inside[kit.volume]["pg_version"] == "15" and inside[kit.volume]["user_files"] > 0


def test_a_volume_mounted_too_high_is_not_read_through_the_service(make_kit):
    """The named volume at /var/lib/postgresql, started by plain Compose (db-up refuses the
    layout): the image's VOLUME puts an anonymous volume at .../data inside it, and the cluster
    lands there. Read through the service, that cluster would pass for the named volume's; a
    throwaway container sees the named volume alone, with no cluster."""
    kit = make_kit()
    compose = kit.root / "docker-compose.yml"
    text = compose.read_text()
    assert f"- {KEY}:/var/lib/postgresql/data\n" in text
    compose.write_text(text.replace(f"- {KEY}:/var/lib/postgresql/data\n",
                                    f"- {KEY}:/var/lib/postgresql\n"))
    assert kit.compose("up", "-d", "db").returncode == 0
    cid = kit.compose("ps", "-q", "db").stdout.strip()
    deadline = time.monotonic() + 300  # a bound for a server that hangs, not a timing
    while docker("exec", cid, "test", "-f", "/var/lib/postgresql/data/global/pg_control",
                 check=False).returncode != 0:
        assert time.monotonic() < deadline, "the image made no cluster"
        time.sleep(0.2)
    r = kit.script("db_info", "--json", "-v")
    assert not [line for line in r.stderr.splitlines()
                if line.startswith("+ docker exec") and "<inspect script>" in line], r.stderr
    (active,) = [v for v in json.loads(r.stdout)["volumes"] if v["active"]]
    assert not active["has_cluster"] and not active["pg_version"], active
