"""Snapshots of a volume or folder: a tar archive under <backups>/volumes/, written through a
partial file, checksummed, and compared with the volume file by file before it counts. Reads
the volume; writes only new files.
"""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from .docker import helper_args
from .errors import Failure
from .files import private_dir, read_checksum, sha256_file
from .kit import Kit
from .manifests import manifest_differences, tar_manifest, volume_manifests
from .messages import human_size, info
from .names import VOLUME_SNAPSHOTS, volume_snapshot_file
from .settings import Settings
from .streams import streamed_file
from .volumes import Volume

TAR_SCRIPT = "cd /v && tar -cf - ."


def snapshot_path(settings: Settings, volume: Volume, stamp: str | None = None) -> Path:
    """Where a snapshot of the volume taken now goes (the folder is made when it is taken)."""
    stamp = stamp or dt.datetime.now().strftime("%Y%m%d_%H%M%S")
    return settings.backup_dir / VOLUME_SNAPSHOTS / volume_snapshot_file(volume.name, stamp)


def snapshot_volume(kit: Kit, volume: Volume, final: Path | None = None) -> Path:
    """A tar archive of the volume under <backups>/volumes/, written through a partial file,
    checksummed, and verified against the volume file by file before it counts."""
    final = final or snapshot_path(kit.settings, volume)
    private_dir(final.parent)
    info(f"taking a snapshot of {volume.label} ({human_size(volume.size)})")
    argv = helper_args(kit.image, [volume.mount("/v", True)], TAR_SCRIPT,
                       owner=kit.project.name)

    with streamed_file(kit.runner, argv, final, f"snapshot of {volume.label}") as out:
        os.fsync(out.fd)
        try:
            from_archive = tar_manifest(out.partial)
        except Exception as exc:
            raise Failure(f"the snapshot of {volume.label} does not read back ({exc})",
                          "Nothing was changed; check free disk space and run again") from None
        (from_volume,) = volume_manifests(kit, [volume])
        diff = manifest_differences(from_volume, from_archive)
        if diff:
            raise Failure(f"the snapshot of {volume.label} differs from the volume "
                          f"({'; '.join(diff)})", "Nothing was changed; run again")
    return final


def snapshot_intact(path: Path) -> str | None:
    """Why a snapshot cannot be put back (gone, or not matching its checksum), or None."""
    if not path.is_file():
        return f"the snapshot {path} is gone"
    expected = read_checksum(path)
    if not expected or sha256_file(path) != expected:
        return f"the snapshot {path} does not match its checksum"
    return None
