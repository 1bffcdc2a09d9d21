"""db-find: every PostgreSQL cluster on the engine, wherever Compose or Docker left it. Named
volumes, anonymous ones (an image's VOLUME that nothing was mounted on: a mount one level too
high or too low), dangling ones of removed projects, another project's, and this project's
folders. For each: its major version, size, when pg_control was last written, its system
identifier (equal identifiers: copies of one cluster), the containers that use it, the
project that made it, and the command that brings it back. Reads only, in a fixed number of
docker calls: one listing of volumes, one of containers, one throwaway container per 200
volumes (run side by side) and one inspection of the volumes that hold a cluster.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .compose import store_label
from .destructive.recreated import remove_recreated
from .docker import Container, Mount, helper_args, list_containers
from .errors import Failure
from .kit import Kit
from .names import LABEL_PROJECT, LABEL_SOCKET_OF, LABEL_UPGRADE_OF, LABEL_VOLUME

BATCH = 200  # volumes per throwaway container: well under any limit on mounts or argv

# For each mount /v/<n> (and the clusters under the project's folder at /p): where a cluster
# sits (the root, data, pgdata, <major>/docker, or one or two levels down), its PG_VERSION,
# pg_control's system identifier (bytes 0-7) and time of last update (bytes 24-31, seconds
# since 1970), its size, and the kit's mark of an unfinished copy. Volumes without a cluster
# print nothing: on an engine with hundreds of volumes the output stays small.
FIND_SCRIPT = r"""
# find
report() {
  key=$1 d=$2 pg=""
  for c in "$d" "$d/data" "$d/pgdata" "$d"/*/docker "$d"/* "$d"/*/*; do
    if [ -f "$c/PG_VERSION" ] && [ -f "$c/global/pg_control" ]; then pg="$c"; break; fi
  done
  [ -n "$pg" ] || return 0
  ver=$(head -n 1 "$pg/PG_VERSION")
  sysid=$(od -An -tu8 -N8 "$pg/global/pg_control" 2>/dev/null | tr -d ' ')
  written=$(od -An -td8 -j24 -N8 "$pg/global/pg_control" 2>/dev/null | tr -d ' ')
  kib=$(du -sk "$d" | cut -f1)
  marker=0; [ -e "$d/.dbguard-incomplete" ] && marker=1
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$key" ".${pg#$d}" "$ver" "$sysid" "$written" "$kib" \
    "$marker"
}
for d in /v/*; do
  [ -d "$d" ] && report "${d#/v/}" "$d"
done
[ -d /p ] || exit 0
find /p -maxdepth 5 \( -name .git -o -name node_modules -o -name .venv -o -name venv \) -prune \
  -o -name PG_VERSION -type f -print 2>/dev/null | while read -r f; do
  c=${f%/PG_VERSION}
  [ -f "$c/global/pg_control" ] || continue
  case "$c" in /p/*/base/*) continue ;; esac
  report "p:${c#/p/}" "$c"
done
"""

ANONYMOUS = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class Cluster:
    """A volume or folder that holds a PostgreSQL cluster."""

    name: str                     # the volume's name, or the folder's absolute path
    kind: str                     # named, anonymous or folder
    pg_version: str
    pg_path: str                  # where PG_VERSION sits, relative to the root
    system_id: str
    written: str | None           # pg_control's last update, ISO 8601 (UTC)
    size: int                     # bytes
    incomplete: bool
    created: str | None = None
    labels: dict = field(default_factory=dict)
    users: list[Container] = field(default_factory=list)
    keepers: list[Container] = field(default_factory=list)  # db-protect's
    active: bool = False
    group: int = 0                # clusters with the same system identifier share a number
    shown: str = ""

    @property
    def label(self) -> str:
        return self.shown or self.name

    @property
    def dangling(self) -> bool:
        return self.kind != "folder" and not self.users and not self.keepers

    @property
    def project(self) -> str | None:
        """The Compose project that made it: its label, else a project whose container uses
        it."""
        return self.labels.get(LABEL_PROJECT) or next(
            (c.project for c in self.users if c.project), None)

    @property
    def pg_major(self) -> int | None:
        match = re.match(r"^(\d+)", self.pg_version)
        return int(match.group(1)) if match else None

    @property
    def bring_back(self) -> str | None:
        if self.active:
            return None
        return f"make db-migrate-volume FROM={self.label if self.kind == 'folder' else self.name}"

    def to_json(self) -> dict:
        return {"name": self.name, "shown": self.label, "kind": self.kind,
                "dangling": self.dangling, "active": self.active,
                "pg_version": self.pg_version, "pg_path": self.pg_path,
                "system_identifier": self.system_id, "copy_group": self.group,
                "last_written": self.written, "size_bytes": self.size,
                "incomplete_copy": self.incomplete, "created": self.created,
                "project": self.project, "compose_volume": self.labels.get(LABEL_VOLUME),
                "kept_by_upgrade_of": self.labels.get(LABEL_UPGRADE_OF),
                "used_by": [{"name": c.name, "state": c.state, "project": c.project or None}
                            for c in self.users],
                "protected_by": [c.name for c in self.keepers],
                "bring_back": self.bring_back}


def parse_line(line: str) -> tuple[str, dict] | None:
    parts = line.split("\t")
    if len(parts) != 7 or not parts[2]:
        return None
    key, pg_path, version, sysid, written, kib, marker = parts
    when = None
    if re.fullmatch(r"-?\d+", written) and int(written) > 0:
        when = dt.datetime.fromtimestamp(int(written), dt.timezone.utc).isoformat()
    return key, dict(pg_path=pg_path, pg_version=version, system_id=sysid or "?",
                     written=when, size=int(kib or 0) * 1024, incomplete=marker == "1")


def look_inside(kit: Kit, names: list[str], project_dir: Path | None) -> dict[str, dict]:
    """The clusters among the volumes `names` (and under `project_dir`), by volume name or
    folder path: one throwaway container per BATCH volumes, run side by side."""
    image = kit.image
    if not image.present:
        raise Failure(f"the image {image.ref} is not here to look inside volumes with",
                      "`make db-up` pulls or builds it; then run `make db-find` again")
    batches: list[list[str]] = [names[i:i + BATCH] for i in range(0, len(names), BATCH)] or [[]]

    def one(index: int, batch: list[str]) -> list[tuple[str, dict]]:
        mounts: list[Mount] = [("volume", name, f"/v/{n}", True) for n, name in enumerate(batch)]
        if index == 0 and project_dir and project_dir.is_dir():
            mounts.append(("bind", str(project_dir), "/p", True))
        out = kit.runner(helper_args(image, mounts, FIND_SCRIPT, looks=True), reads=True, check=False)
        if out.returncode != 0:
            # A volume removed (or being removed) since the listing fails the whole container:
            # look again at the ones still there, once.
            still = set(kit.runner(["docker", "volume", "ls", "-q"], reads=True
                                   ).stdout.decode().split())
            batch = [name for name in batch if name in still]
            mounts = [m for m in mounts if m[0] == "bind"] + [
                ("volume", name, f"/v/{n}", True) for n, name in enumerate(batch)]
            out = kit.runner(helper_args(image, mounts, FIND_SCRIPT, looks=True), reads=True)
        found = []
        for line in out.stdout.decode(errors="replace").splitlines():
            parsed = parse_line(line)
            if not parsed:
                continue
            key, facts = parsed
            if key.startswith("p:"):
                found.append((os.path.normpath(str(project_dir / key[2:])), facts))
            elif key.isdigit() and int(key) < len(batch):
                found.append((batch[int(key)], facts))
        return found

    with ThreadPoolExecutor(max_workers=min(4, len(batches))) as pool:
        results = list(pool.map(one, range(len(batches)), batches))
    return {name: facts for found in results for name, facts in found}


def find_clusters(kit: Kit) -> tuple[list[Cluster], int]:
    """Every cluster on the engine and in the project's folder, the active store first, then
    the most recently written; and how many volumes the engine has."""
    wanted = (LABEL_PROJECT, LABEL_VOLUME, LABEL_UPGRADE_OF, LABEL_SOCKET_OF)
    fmt = "\t".join(["{{.Name}}", *(f'{{{{.Label "{k}"}}}}' for k in wanted)])
    out = kit.runner(["docker", "volume", "ls", "--format", fmt], reads=True).stdout.decode()
    labels: dict[str, dict] = {}
    sockets = 0
    for line in out.splitlines():
        name, *values = line.split("\t")
        found = {k: v for k, v in zip(wanted, values) if v}
        if LABEL_SOCKET_OF in found:
            # A throwaway server's socket folder (db-upgrade's): never a cluster, and a look
            # holding it would keep the run that made it from removing it.
            sockets += 1
            continue
        labels[name] = found
    project = kit.project
    here = project.directory.resolve()
    created = created_at(kit, sorted(labels))  # what is gone already is not looked into
    contents = look_inside(kit, sorted(created), here)
    forget_recreated(kit, created, [n for n in created if n not in contents])
    if project.folder:  # the data folder itself, wherever it is (found below it: left out)
        inside = project.volume.rstrip("/") + "/"
        contents = {n: f for n, f in contents.items() if not n.startswith(inside)}
        if os.path.isdir(project.volume):
            contents.update(look_inside_folder(kit, project.volume))
    users: dict[str, list[Container]] = {}
    for c in list_containers(kit.runner):
        if c.looking:  # another command's read-only look, which ends by itself
            continue
        for m in c.volumes:
            key = os.path.normpath(m) if m.startswith("/") else m
            users.setdefault(key, []).append(c)
    clusters = []
    for name, facts in contents.items():
        folder = name.startswith("/")
        kind = "folder" if folder else ("anonymous" if ANONYMOUS.match(name) else "named")
        clusters.append(Cluster(
            name=name, kind=kind, created=created.get(name), labels=labels.get(name, {}),
            users=[c for c in users.get(name, []) if not c.helper and not c.keeper],
            keepers=[c for c in users.get(name, []) if c.keeper],
            active=name == project.volume,
            shown=store_label(name, True, here) if folder else "", **facts))
    groups: dict[str, int] = {}
    ordered = [c for c in clusters if c.active] + sorted(
        (c for c in clusters if not c.active), key=lambda c: c.written or "", reverse=True)
    for c in ordered:
        c.group = groups.setdefault(c.system_id, len(groups) + 1)
    return ordered, len(labels) + sockets


def created_at(kit: Kit, names: list[str]) -> dict[str, str]:
    """Each volume's creation time, by name, for the ones still on the engine."""
    if not names:
        return {}
    out = kit.runner(["docker", "volume", "inspect", *names], reads=True, check=False).stdout
    return {d["Name"]: d.get("CreatedAt") or "" for d in json.loads(out or b"[]") or []}


def forget_recreated(kit: Kit, before: dict[str, str], empty: list[str]) -> None:
    """A volume removed after the listing and before its look-inside container started was
    made again, empty, by that container's mount (Docker creates a missing named volume).
    Those, and only those (a creation time other than the one listed, and no cluster), are
    removed again (destructive/recreated.py): the look was to change nothing."""
    now = created_at(kit, empty)
    remove_recreated(kit, [name for name in empty if name in now and now[name] != before[name]])


def look_inside_folder(kit: Kit, path: str) -> dict[str, dict]:
    """The project's data folder when it lies outside the project's folder."""
    mounts: list[Mount] = [("bind", path, "/v/0", True)]
    out = kit.runner(helper_args(kit.image, mounts, FIND_SCRIPT, looks=True), reads=True)
    for line in out.stdout.decode(errors="replace").splitlines():
        parsed = parse_line(line)
        if parsed and parsed[0] == "0":
            return {path: parsed[1]}
    return {}


def stranded(kit: Kit, major: int | None) -> list[Cluster]:
    """Clusters of `major` elsewhere on the engine (for db-info's verdict when the active
    store is empty), most recently written first."""
    return [c for c in find_clusters(kit)[0] if not c.active and not c.incomplete
            and (major is None or c.pg_major == major)]

