"""Comparing a volume with what it should hold: a manifest (type, mode, owner, size, mtime and
md5 of every file, link targets) read from a volume inside a helper container or from a tar
snapshot, and the differences between two. Reads only.
"""
from __future__ import annotations

import subprocess
import threading
from pathlib import Path
from collections.abc import Sequence

from .docker import helper_args
from .errors import Failure
from .kit import Kit
from .runner import command_failure, kill_tree
from .streams import drain
from .names import INCOMPLETE_MARKER
from .volumes import Volume

# Prints a manifest of each folder given: one line per entry (type|mode|uid|gid|size|mtime|path),
# then `<hash>  path` per regular file, then `path|target` per symlink. The kit's own marker is
# left out. Compared on both sides of a copy, computed inside containers. Arguments: the hash
# tool (or `pick`: time each one of TOOLS the image has on 32 MiB and take the fastest, or
# `first`: the first of TOOLS the image has, untimed; the first line says which), then how
# many hash at once (`all` cores, `spare`: all but one, or a
# number), then the folders. With more than one, the files are dealt out largest first to the least
# loaded worker, each writing to a file of its own in /tmp (a tmpfs), so no two outputs mix.
MANIFEST_SCRIPT = r"""
# manifest
set -eu
tool=$1 jobs=$2
shift 2
if [ "$tool" = pick ] || [ "$tool" = first ]; then
  how=$tool tool= best=
  for t in cksum b2sum sha1sum md5sum sha256sum; do
    command -v "$t" >/dev/null 2>&1 || continue
    if [ "$how" = first ]; then tool=$t; break; fi
    s=$(date +%s%N); head -c 33554432 /dev/zero | "$t" >/dev/null; e=$(date +%s%N)
    case "$s$e" in
      *[!0-9]*) [ -n "$tool" ] || tool=$t ;;
      *) if [ -z "$best" ] || [ $((e - s)) -lt "$best" ]; then tool=$t best=$((e - s)); fi ;;
    esac
  done
fi
cores=$(nproc 2>/dev/null || echo 1)
case "$jobs" in all) jobs=$cores ;; spare) jobs=$((cores - 1)) ;; esac
[ "$jobs" -ge 1 ] || jobs=1
echo "hash $tool $jobs"
for d in "$@"; do
  cd "$d"
  echo "== $d"
  find . ! -name .dbguard-incomplete -exec stat -c '%F|%a|%u|%g|%s|%Y|%n' {} +
  echo "-- sums"
  if [ "$jobs" -gt 1 ]; then
    rm -f /tmp/dbguard-list.* /tmp/dbguard-list-sums.*
    find . -type f ! -name .dbguard-incomplete -exec stat -c '%s %n' {} + | sort -rn |
      awk -v n="$jobs" '{ b = 0; for (i = 1; i < n; i++) if (load[i] < load[b]) b = i
        load[b] += $1; sub(/^[0-9]+ /, ""); print > ("/tmp/dbguard-list." b) }'
    pids=
    for list in /tmp/dbguard-list.*; do
      [ -e "$list" ] || continue
      tr '\n' '\0' < "$list" | xargs -0 "$tool" > "${list%.*}-sums.${list##*.}" &
      pids="$pids $!"
    done
    for pid in $pids; do wait "$pid"; done
    cat /tmp/dbguard-list-sums.* 2>/dev/null || true
  else
    find . -type f ! -name .dbguard-incomplete -exec "$tool" {} +
  fi
  echo "-- links"
  find . -type l -exec sh -c 'for f; do printf "%s|%s\n" "$f" "$(readlink "$f")"; done' sh {} +
done
"""
# What the copy check may pick. It guards against copy errors, not an adversary, and with the
# size beside it; cksum (CRC-32, as ZFS and btrfs check their own blocks with checksums of
# this kind) runs at several GB/s where coreutils has it carry-less multiplied, and busybox's
# is slow, which the timing finds out.
TOOLS = ("cksum", "b2sum", "sha1sum", "md5sum", "sha256sum")
# Below this many bytes to hash, timing the tools (5 x 32 MiB, about half a second of CPU)
# costs more than the slowest of them takes for the whole volume: the first one found is used.
PICK_ABOVE = 64 << 20
# The ones a snapshot's archive can be compared with, by their names in Python.
HASHES = {"b2sum": "blake2b", "sha1sum": "sha1", "md5sum": "md5", "sha256sum": "sha256"}

Manifest = dict[str, tuple]  # path -> (type, mode, uid, gid[, size, mtime][, md5 or link])


def parse_manifests(text: str) -> dict[str, Manifest]:
    """The manifests a MANIFEST_SCRIPT printed, by folder. A regular file without a hash (a
    hashing process that failed quietly) raises: an unhashed file must never compare equal."""
    result: dict[str, Manifest] = {}
    current: Manifest = {}
    section = ""
    sums: dict[str, str] = {}
    links: dict[str, str] = {}

    def finish() -> None:
        for path, entry in current.items():
            if entry[0] == "f":
                if path not in sums:
                    raise ValueError(f"no hash for {path}")
                current[path] = entry + (sums[path],)
            elif entry[0] == "l":
                current[path] = entry + (links.get(path),)

    name, tool = None, ""
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
        elif line.startswith("hash ") and name is None:
            tool = line.split()[1]
        elif section == "sums":
            if tool == "cksum":  # crc, size, path
                crc, size, path = line.split(" ", 2)
                digest = f"crc32:{crc}:{size}"
            else:
                digest, _, path = line.partition("  ")
            sums[path] = digest
        elif section == "links":
            path, _, target = line.partition("|")
            links[path] = target
    if name is not None:
        finish()
        result[name] = current
    return result


def manifest_of(output: bytes, folder: str) -> Manifest:
    """The manifest of `folder` in a MANIFEST_SCRIPT's output; an incomplete one is a Failure."""
    try:
        return parse_manifests(output.decode(errors="replace")).get(folder, {})
    except ValueError as exc:
        raise Failure(f"a volume's manifest is incomplete ({exc})", "Run again") from None


def tar_manifest(path: Path, tool: str = "md5sum") -> Manifest:
    """The manifest of a snapshot, read from the archive itself (a short or damaged archive
    raises): what the volume must look like after the snapshot is put back."""
    import hashlib  # here, like tarfile: slow to import, and only snapshots need them
    import tarfile

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
                digest = hashlib.new(HASHES[tool], usedforsecurity=False)
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


class ManifestJob:
    """A manifest being computed in a helper container while the caller does something else
    (the copy it will check). `tool` is the hash it uses (`pick`: the fastest the image has;
    `hash_tool()` says which once the container has chosen)."""

    def __init__(self, kit: Kit, volume: Volume, tool: str = "md5sum", jobs: str = "all"):
        self.argv = helper_args(kit.image, [volume.mount("/m", True)], MANIFEST_SCRIPT,
                                tool, jobs, "/m", owner=kit.project.name)
        self.proc = kit.runner.popen(self.argv, reads=True, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.first, self.out, self.err = b"", [], []
        self.chosen = threading.Event()
        self.errors = drain(self.proc.stderr, self.err)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        self.first = self.proc.stdout.readline()
        self.chosen.set()
        self.out.append(self.proc.stdout.read())

    def hash_tool(self) -> str:
        self.chosen.wait()
        parts = self.first.split()
        if len(parts) != 3 or parts[0] != b"hash" or parts[1].decode() not in TOOLS:
            self.result()  # the container failed: its error
            raise Failure("the manifest container did not name its hash", "Run again")
        return parts[1].decode()

    def result(self) -> Manifest:
        try:
            self.reader.join()
            self.errors.join()
            code = self.proc.wait()
        except BaseException:  # Ctrl-C: the helper container's client goes too
            self.kill()
            raise
        if code != 0:
            raise command_failure(self.argv, b"".join(self.err))
        return manifest_of(self.first + b"".join(self.out), "/m")

    def kill(self) -> None:
        kill_tree(self.proc)


def volume_manifests(kit: Kit, volumes: Sequence[Volume], tool: str = "md5sum"
                     ) -> list[Manifest]:
    """One container per volume, all at once: hashing is the slow part of verification, and
    both sides of a copy hash in parallel."""
    jobs = [ManifestJob(kit, v, tool, "all" if len(volumes) == 1 else "1") for v in volumes]
    try:
        return [job.result() for job in jobs]
    except BaseException:
        for job in jobs:
            job.kill()
        raise


def verify_snapshot_restore(kit: Kit, snapshot: Path, target: Volume) -> list[str]:
    (got,) = volume_manifests(kit, [target])
    return manifest_differences(tar_manifest(snapshot), got)
