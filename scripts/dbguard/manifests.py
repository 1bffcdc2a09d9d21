"""Comparing a volume with what it should hold: a manifest (type, mode, owner, size, mtime and
md5 of every file, link targets) read from a volume inside a helper container or from a tar
snapshot, and the differences between two. Reads only.
"""
from __future__ import annotations

import hashlib
import subprocess
import tarfile
from pathlib import Path
from typing import Sequence

from .docker import helper_args
from .kit import Kit
from .runner import command_failure, kill_tree
from .volumes import INCOMPLETE_MARKER

# Prints a manifest of each folder given: one line per entry (type|mode|uid|gid|size|mtime|path),
# then `md5  path` per regular file, then `path|target` per symlink. The kit's own marker is
# left out. Compared on both sides of a copy, computed inside containers. MD5 because it guards
# against copy errors, not an adversary, and runs twice as fast as sha256sum (coreutils and
# busybox both have it); the dump files at rest keep their sha256.
MANIFEST_SCRIPT = r"""
# manifest
set -e
for d in "$@"; do
  cd "$d"
  echo "== $d"
  find . ! -name .dbguard-incomplete -exec stat -c '%F|%a|%u|%g|%s|%Y|%n' {} +
  echo "-- sums"
  find . -type f ! -name .dbguard-incomplete -exec md5sum {} +
  echo "-- links"
  find . -type l -exec sh -c 'for f; do printf "%s|%s\n" "$f" "$(readlink "$f")"; done' sh {} +
done
"""

Manifest = dict[str, tuple]  # path -> (type, mode, uid, gid[, size, mtime][, md5 or link])


def parse_manifests(text: str) -> dict[str, Manifest]:
    result: dict[str, Manifest] = {}
    current: Manifest = {}
    section = ""
    sums: dict[str, str] = {}
    links: dict[str, str] = {}

    def finish() -> None:
        for path, entry in current.items():
            if entry[0] == "f":
                current[path] = entry + (sums.get(path),)
            elif entry[0] == "l":
                current[path] = entry + (links.get(path),)

    name = None
    for line in text.splitlines():
        if line.startswith("== "):
            if name is not None:
                finish()
                result[name] = current
            name, current, sums, links, section = line[3:], {}, {}, {}, "stat"
        elif line == "-- sums":
            section = "sums"
        elif line == "-- links":
            section = "links"
        elif section == "stat":
            kind, mode, uid, gid, size, mtime, path = line.split("|", 6)
            kind = {"directory": "d", "symbolic link": "l"}.get(
                kind, "f" if kind.startswith("regular") else kind)
            if kind == "d":
                current[path] = ("d", mode, uid, gid)
            elif kind == "f":
                current[path] = ("f", mode, uid, gid, int(size), int(mtime))
            else:
                current[path] = (kind, "", uid, gid)
        elif section == "sums":
            digest, _, path = line.partition("  ")
            sums[path] = digest
        elif section == "links":
            path, _, target = line.partition("|")
            links[path] = target
    if name is not None:
        finish()
        result[name] = current
    return result


def tar_manifest(path: Path) -> Manifest:
    """The manifest of a snapshot, read from the archive itself (a short or damaged archive
    raises): what the volume must look like after the snapshot is put back."""
    manifest: Manifest = {}
    with tarfile.open(path, "r:") as archive:
        for member in archive:
            name = member.name.rstrip("/")
            name = name[2:] if name.startswith("./") else name
            name = "." if name in ("", ".") else "./" + name
            if name == f"./{INCOMPLETE_MARKER}":
                continue
            mode = format(member.mode & 0o7777, "o")
            if member.isdir():
                manifest[name] = ("d", mode, str(member.uid), str(member.gid))
            elif member.issym():
                manifest[name] = ("l", "", str(member.uid), str(member.gid), member.linkname)
            elif member.isfile() or member.islnk():
                digest = hashlib.md5(usedforsecurity=False)
                handle = archive.extractfile(member)
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
                manifest[name] = ("f", mode, str(member.uid), str(member.gid), member.size,
                                  int(member.mtime), digest.hexdigest())
            else:
                manifest[name] = ("other", "", str(member.uid), str(member.gid))
    return manifest


def manifest_differences(expected: Manifest, actual: Manifest, limit: int = 5) -> list[str]:
    out = []
    for path in sorted(set(expected) | set(actual)):
        if path not in actual:
            out.append(f"missing {path}")
        elif path not in expected:
            out.append(f"extra {path}")
        elif expected[path] != actual[path]:
            out.append(f"differs {path}: {expected[path][:6]} vs {actual[path][:6]}")
        if len(out) >= limit:
            break
    return out


def volume_manifests(kit: Kit, volumes: Sequence[str]) -> list[Manifest]:
    """One container per volume, all at once: hashing is the slow part of verification, and
    both sides of a copy hash in parallel."""
    procs = [kit.runner.popen(helper_args(kit.image.ref, [(v, "/m", True)], MANIFEST_SCRIPT, "/m"),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE) for v in volumes]
    try:
        results = [proc.communicate() for proc in procs]
    except BaseException:  # Ctrl-C: the helper containers' clients go too
        for proc in procs:
            kill_tree(proc)
        raise
    manifests = []
    for proc, (out, err) in zip(procs, results):
        if proc.returncode != 0:
            raise command_failure(proc.args, err)
        manifests.append(parse_manifests(out.decode(errors="replace")).get("/m", {}))
    return manifests


def verify_copy(kit: Kit, source: str, target: str) -> list[str]:
    want, got = volume_manifests(kit, [source, target])
    if not want:
        return ["the source manifest is empty"]
    return manifest_differences(want, got)


def verify_snapshot_restore(kit: Kit, snapshot: Path, target: str) -> list[str]:
    (got,) = volume_manifests(kit, [target])
    return manifest_differences(tar_manifest(snapshot), got)
