"""DESTROYS DATA: empties a volume and fills it again (db-migrate-volume, and its UNDO).

Every path here first writes the marker `.dbguard-incomplete` into the target (db-up refuses a
volume that carries it), then empties the target, copies into it in a throwaway container, and
compares the result with its source file by file; only a verified copy loses the marker. A
failed copy or check puts the target back as it was (from the snapshot the caller took). It
also recreates a volume to give it Compose's labels (Docker cannot relabel one).
"""
from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from ..docker import LABEL_PROJECT, LABEL_VERSION, LABEL_VOLUME, helper_args
from ..errors import Failure
from ..kit import Kit
from ..manifests import (MANIFEST_SCRIPT, Manifest, ManifestJob, manifest_differences,
                         manifest_of, verify_snapshot_restore)
from ..messages import Progress, info, success, timing, warning
from ..runner import command_failure, kill_tree
from ..snapshots import snapshot_volume
from ..streams import drain
from ..volumes import Volume

# Marks the target (the mark and its folder entry reach the disk: only those two are synced,
# not every dirty page of the machine), empties it (all but the marker: a crash from here on
# leaves the mark), then copies with cp -a (owners, modes, links, timestamps). One process does
# the copy, so its exit status is the copy's (no pipeline to hide a failed read). A reporter
# beside it prints the KiB copied each second; it is stopped (and waited for, so no line of it
# can fall among the manifest's) the moment cp ends, not at its next tick. Then, in the same
# container (no second one to start), the copy's manifest: $1 is
# MANIFEST_SCRIPT, and the hash it uses arrives as one line on stdin, the one the source's side
# picked while the copy ran.
COPY_SCRIPT = r"""
# copy
set -u
touch /to/.dbguard-incomplete && { sync /to/.dbguard-incomplete /to 2>/dev/null || sync; } || exit 1
find /to -mindepth 1 -maxdepth 1 ! -name .dbguard-incomplete -exec rm -rf {} + || exit 1
while :; do printf 'progress %s\n' "$(du -sk /to | cut -f1)"; sleep 1; done &
cp -a /from/. /to/
code=$?
kill $! 2>/dev/null; wait $! 2>/dev/null
[ "$code" -eq 0 ] || exit "$code"
read -r tool || exit 1
case "$tool" in cksum|b2sum|sha1sum|md5sum|sha256sum) ;; *) exit 1 ;; esac
exec /bin/sh -c "$1" manifest "$tool" all /to
"""

# The same for putting a snapshot back: the tar archive arrives on stdin.
UNTAR_SCRIPT = r"""
# untar
set -u
touch /to/.dbguard-incomplete && { sync /to/.dbguard-incomplete /to 2>/dev/null || sync; } || exit 1
find /to -mindepth 1 -maxdepth 1 ! -name .dbguard-incomplete -exec rm -rf {} + || exit 1
tar -C /to -xpf - --exclude ./.dbguard-incomplete
"""


# The copy reaches the disk before the mark goes, and the removal reaches it too.
UNMARK_SCRIPT = "sync && rm -f /to/.dbguard-incomplete && sync"
EMPTY_SCRIPT = "find /to -mindepth 1 -maxdepth 1 -exec rm -rf {} +"


def ensure_volume(kit: Kit, volume: Volume) -> None:
    """Creates the target with the labels Compose gives its own volumes, so Compose adopts it
    without a warning. Docker cannot change a volume's labels, so an existing volume with
    other labels is recreated; the caller has a verified snapshot of it by then."""
    p = kit.project
    labels = ["--label", f"{LABEL_PROJECT}={p.name}", "--label", f"{LABEL_VOLUME}={p.volume_key}",
              "--label", f"{LABEL_VERSION}={kit.compose.version}"]
    if p.external:
        return
    if volume.exists:
        if volume.labels.get(LABEL_PROJECT) == p.name and \
                volume.labels.get(LABEL_VOLUME) == p.volume_key:
            return
        holders = [c for c in volume.users if c.project != p.name or c.service != p.service]
        if holders:
            warning(f"{volume.name} keeps its old labels: {holders[0].name} still refers to it")
            return
        if volume.users:
            kit.runner(["docker", "rm", *[c.id for c in volume.users]], mutates=True)
        kit.runner(["docker", "volume", "rm", volume.name], mutates=True)
    kit.runner(["docker", "volume", "create", *labels, volume.name], mutates=True)


def copy_volume(kit: Kit, source: Volume, target: str, hash_tool: Callable[[], str]
                ) -> Manifest:
    """Marks and empties the target, copies the source into it with progress, and returns the
    copy's manifest, taken in the same container once cp is done, with the hash `hash_tool`
    names (asked while the copy runs). The marker stays until the caller has compared and
    removes it."""
    argv = helper_args(kit.image.ref, [(source.name, "/from", True), (target, "/to", False)],
                       COPY_SCRIPT, MANIFEST_SCRIPT, interactive=True)
    progress = Progress(f"copying {source.name}", source.size)
    proc = kit.runner.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    errors: list[bytes] = []
    reader = drain(proc.stderr, errors)  # at once: a flood of errors must not block the copy
    # Joined only after a copy that worked (which read its line, so it is done). After one that
    # failed it may still wait on the source's side; an unanswered container ends anyway.
    feeder = threading.Thread(target=name_hash, args=(proc, hash_tool), daemon=True)
    feeder.start()
    manifest: list[bytes] = []
    try:
        for line in proc.stdout:
            parts = line.split()
            if len(parts) == 2 and parts[0] == b"progress" and parts[1].isdigit():
                progress.update(int(parts[1]) * 1024)
            else:
                manifest.append(line)
    except BaseException:
        kill_tree(proc)
        raise
    finally:
        progress.close()
        code = proc.wait()
        reader.join()
    if code != 0:
        raise command_failure(argv, b"".join(errors))
    feeder.join()
    return manifest_of(b"".join(manifest), "/to")


def name_hash(proc: subprocess.Popen, hash_tool: Callable[[], str]) -> None:
    """Writes the hash the source's side chose to the copy container, then closes its stdin:
    at once, with nothing written, if the source's side failed (copy_verified says why)."""
    try:
        proc.stdin.write(hash_tool().encode() + b"\n")
    except (Failure, OSError):  # OSError: the container is gone already (the copy failed)
        pass
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()


def copy_verified(kit: Kit, source: Volume, target: str) -> list[str]:
    """Copies `source` into `target` and compares the two file by file; returns the
    differences. The source's manifest is taken while the copy runs (its containers are
    stopped and it is mounted read-only, so nothing changes it), with the fastest hash the
    image has and all cores but one; the target's right after the copy, in the copying
    container, with every core."""
    want = ManifestJob(kit, source.name, "pick", "spare")
    try:
        with timing("copy"):  # and the copy's manifest
            try:
                actual = copy_volume(kit, source, target, want.hash_tool)
            except Failure:
                want.hash_tool()  # if the source's side failed first, its error explains
                raise
        with timing("verify"):  # what is left of the source's manifest
            expected = want.result()
    finally:
        want.kill()
    if not expected:
        return ["the source manifest is empty"]
    return manifest_differences(expected, actual)


def fill_from_snapshot(kit: Kit, snapshot: Path, target: str) -> None:
    argv = helper_args(kit.image.ref, [(target, "/to", False)], UNTAR_SCRIPT, interactive=True)
    with open(snapshot, "rb") as handle:
        kit.runner(argv, stdin_file=handle)


def unmark(kit: Kit, target: str) -> None:
    kit.runner(helper_args(kit.image.ref, [(target, "/to", False)], UNMARK_SCRIPT))


def copy_into_volume(kit: Kit, source: Volume, target: Volume, snapshot_needed: bool) -> None:
    """Snapshot (if asked), label, mark, empty, copy, verify, unmark. On a verification failure
    the target is put back as it was (from the snapshot, or emptied/removed) and Failure raised.
    The containers using either volume must be stopped already."""
    snapshot = None
    if snapshot_needed:
        with timing("snapshot"):
            snapshot = snapshot_volume(kit, target)
        info(f"snapshot of {target.name}: {snapshot} (undo: make db-migrate-volume UNDO=1)")
    ensure_volume(kit, target)
    info(f"copying {source.name} -> {target.name}")
    put_back = (f"{target.name} was put back as it was; {source.name} is untouched. Fix the "
                "cause and run again")
    try:
        diff = copy_verified(kit, source, target.name)
    except Failure as exc:  # the copy or its check failed (a full disk, say): undo, then say
        put_snapshot_back(kit, target, snapshot)
        raise Failure(f"copying {source.name} into {target.name} failed ({exc.message})",
                      put_back) from None
    if diff:
        put_snapshot_back(kit, target, snapshot)
        raise Failure(f"the copy differs from {source.name} ({'; '.join(diff)})", put_back)
    with timing("sync"):
        unmark(kit, target.name)
    success(f"{target.name} now holds a verified copy of {source.name}")


def put_snapshot_back(kit: Kit, target: Volume, snapshot: Path | None) -> None:
    """Empties the target and fills it from the snapshot (or leaves it empty, or removes it if
    it did not exist before), verified against the archive, and removes the mark."""
    if snapshot is None:
        # Nothing was in the target before: back to nothing.
        if not target.exists:
            kit.runner(["docker", "volume", "rm", target.name], check=False)
        else:
            kit.runner(helper_args(kit.image.ref, [(target.name, "/to", False)], EMPTY_SCRIPT))
        return
    fill_from_snapshot(kit, snapshot, target.name)
    diff = verify_snapshot_restore(kit, snapshot, target.name)
    if diff:
        raise Failure(f"putting the snapshot back into {target.name} failed verification "
                      f"({'; '.join(diff)})",
                      f"The snapshot is intact in {snapshot}; the marker keeps db-up from "
                      "starting on the volume. Run `make db-migrate-volume UNDO=1` again")
    unmark(kit, target.name)
