"""Volume snapshots: a tar archive of a volume under <backups>/volumes/, written through a
partial file, checksummed, and compared with the volume file by file before it counts. Reads
the volume; writes only new files.
"""
from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

from .docker import helper_args
from .errors import Failure
from .files import private_dir
from .kit import Kit
from .manifests import manifest_differences, tar_manifest, volume_manifests
from .messages import human_size, info
from .settings import Settings
from .streams import streamed_file
from .volumes import Volume

TAR_SCRIPT = "cd /v && tar -cf - ."


def snapshot_volume(kit: Kit, volume: Volume) -> Path:
    """A tar archive of the volume under <backups>/volumes/, written through a partial file,
    checksummed, and verified against the volume file by file before it counts."""
    folder = private_dir(kit.settings.backup_dir / "volumes")
    stamp = dt.datetime.now().strftime("%Y%m%d_%H%M%S")
    final = folder / f"{volume.name}_{stamp}.tar"
    info(f"taking a snapshot of {volume.name} ({human_size(volume.size)})")
    argv = helper_args(kit.image.ref, [(volume.name, "/v", True)], TAR_SCRIPT)

    with streamed_file(kit.runner, argv, final, f"snapshot of {volume.name}") as out:
        os.fsync(out.fd)
        try:
            from_archive = tar_manifest(out.partial)
        except Exception as exc:
            raise Failure(f"the snapshot of {volume.name} does not read back ({exc})",
                          "Nothing was changed; check free disk space and run again") from None
        (from_volume,) = volume_manifests(kit, [volume.name])
        diff = manifest_differences(from_volume, from_archive)
        if diff:
            raise Failure(f"the snapshot of {volume.name} differs from the volume "
                          f"({'; '.join(diff)})", "Nothing was changed; run again")
    return final


def list_snapshots(settings: Settings, volume: str) -> list[Path]:
    folder = settings.backup_dir / "volumes"
    if not folder.is_dir():
        return []
    pattern = re.compile(re.escape(volume) + r"_\d{8}_\d{6}\.tar$")
    return sorted((p for p in folder.iterdir() if pattern.match(p.name)), reverse=True)
