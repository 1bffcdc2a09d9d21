"""DESTROYS DATA: empties a volume or folder and fills it again (db-migrate-volume, db-upgrade,
db-undo of those).

Every path here first writes the marker `.dbguard-incomplete` into the target (db-up refuses a
volume or folder that carries it), then empties the target, copies into it in a throwaway
container, and compares the result with its source file by file; only a verified copy loses
the marker, and only by `unmark`. Emptying keeps the marker: an emptied target is never left
unmarked while its data sits elsewhere. It also recreates a volume to give it Compose's labels
(Docker cannot relabel one), after the caller took its snapshot.
"""
from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from ..docker import helper_args
from .volume_rm import remove_volumes
from ..errors import Failure
from ..kit import Kit
from ..manifests import (MANIFEST_SCRIPT, PICK_ABOVE, Manifest, ManifestJob,
                         manifest_differences, manifest_of, verify_snapshot_restore)
from ..messages import Progress, timing, warning
from ..names import LABEL_PROJECT, LABEL_VERSION, LABEL_VOLUME
from ..protect import protect, unprotect
from ..runner import command_failure, kill_tree
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

# The same for putting a snapshot back: the tar archive arrives on stdin (busybox's tar has no
# --exclude, so an archive's own marker, if any, is simply written over).
UNTAR_SCRIPT = r"""
# untar
set -u
touch /to/.dbguard-incomplete && { sync /to/.dbguard-incomplete /to 2>/dev/null || sync; } || exit 1
find /to -mindepth 1 -maxdepth 1 ! -name .dbguard-incomplete -exec rm -rf {} + || exit 1
tar -C /to -xpf - || exit 1
touch /to/.dbguard-incomplete
"""


# The copy reaches the disk before the mark goes, and the removal reaches it too.
UNMARK_SCRIPT = "sync && rm -f /to/.dbguard-incomplete && sync"
# Empties the target but for its marker, which it writes first.
EMPTY_SCRIPT = r"""
# empty
touch /to/.dbguard-incomplete && { sync /to/.dbguard-incomplete /to 2>/dev/null || sync; } || exit 1
find /to -mindepth 1 -maxdepth 1 ! -name .dbguard-incomplete -exec rm -rf {} +
"""
MARK_SCRIPT = "touch /to/.dbguard-incomplete && sync"


def ensure_volume(kit: Kit, volume: Volume) -> None:
    """Creates the target with the labels Compose gives its own volumes, so Compose adopts it
    without a warning. Docker cannot change a volume's labels, so an existing volume with
    other labels is recreated; the caller has a verified snapshot of it by then. A folder is
    created if it is missing."""
    p = kit.project
    if volume.folder:
        Path(volume.name).mkdir(parents=True, exist_ok=True)
        return
    labels = ["--label", f"{LABEL_PROJECT}={p.name}", "--label", f"{LABEL_VOLUME}={p.volume_key}",
              "--label", f"{LABEL_VERSION}={kit.compose.shown_version()}"]
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
            kit.runner(["docker", "rm", *[c.id for c in volume.users]])
        kept = unprotect(kit.runner, volume.name, volume.used_by)
        remove_volumes(kit.runner, [volume.name])
        kit.runner(["docker", "volume", "create", *labels, volume.name])
        if kept:  # the protection goes with the volume's name
            protect(kit.runner, p.name, volume.name, kit.image)
        return
    kit.runner(["docker", "volume", "create", *labels, volume.name])


def copy_volume(kit: Kit, source: Volume, target: Volume, hash_tool: Callable[[], str]
                ) -> Manifest:
    """Marks and empties the target, copies the source into it with progress, and returns the
    copy's manifest, taken in the same container once cp is done, with the hash `hash_tool`
    names (asked while the copy runs). The marker stays until the caller has compared and
    removes it."""
    argv = helper_args(kit.image, [source.mount("/from", True), target.mount("/to", False)],
                       COPY_SCRIPT, MANIFEST_SCRIPT, interactive=True, owner=kit.project.name)
    progress = Progress(f"copying {source.label}", source.size)
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


def copy_verified(kit: Kit, source: Volume, target: Volume) -> list[str]:
    """Copies `source` into `target` and compares the two file by file; returns the
    differences. The source's manifest is taken while the copy runs (its containers are
    stopped and it is mounted read-only, so nothing changes it), with the fastest hash the
    image has (for a small volume, the first it has: see PICK_ABOVE) and all cores but one;
    the target's right after the copy, in the copying container, with every core."""
    small = source.size is not None and source.size <= PICK_ABOVE
    want = ManifestJob(kit, source, "first" if small else "pick", "spare")
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


def helper(kit: Kit, target: Volume, script: str, **kwargs) -> list[str]:
    return helper_args(kit.image, [target.mount("/to", False)], script,
                       owner=kit.project.name, **kwargs)


def fill_from_snapshot(kit: Kit, snapshot: Path, target: Volume) -> list[str]:
    """Marks and empties the target and extracts the snapshot into it; returns how it differs
    from the archive (nothing: it holds the snapshot; it stays marked until `unmark`)."""
    with open(snapshot, "rb") as handle:
        kit.runner(helper(kit, target, UNTAR_SCRIPT, interactive=True), stdin_file=handle)
    return verify_snapshot_restore(kit, snapshot, target)


def empty(kit: Kit, target: Volume) -> None:
    """Marks and empties the target (the mark stays)."""
    kit.runner(helper(kit, target, EMPTY_SCRIPT))


def mark(kit: Kit, target: Volume) -> None:
    kit.runner(helper(kit, target, MARK_SCRIPT))


def unmark(kit: Kit, target: Volume) -> None:
    kit.runner(helper(kit, target, UNMARK_SCRIPT))


def remove_volume(kit: Kit, target: Volume) -> bool:
    """Removes a volume the kit itself created (Docker refuses while a container, even a
    stopped one, refers to it; a keeper of db-protect is taken down first); True if it is
    gone."""
    unprotect(kit.runner, target.name)
    return remove_volumes(kit.runner, [target.name], check=False).returncode == 0
