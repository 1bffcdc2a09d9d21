"""What discovery reads inside a volume, checked on volumes made to order on the real engine."""
from __future__ import annotations

from pathlib import Path

from conftest import KEY, docker

from dbguard.docker import ImageInfo
from dbguard.runner import Runner
from dbguard.volumes import inspect_contents

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
        one = docker("run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", "--mount",
                     f"type=volume,source={name},target=/v", image, "-c", LARGE_CLUSTER).stdout
        facts = inspect_contents(Runner(Path(tmp_path)), ImageInfo(image, True, 15, None),
                                 [name])[name]
    finally:
        docker("volume", "rm", "-f", name)
    assert facts["user_files"] == 12_000
    assert facts["user_bytes"] == 12_000 * int(one.strip()) * 1024, facts
