"""Discovery: the volumes and folders that hold, or once held, this project's database. Named
volumes by Compose label, by name suffix and by the names older Compose versions would give it;
folders (bind mounts) in the project's folder that hold a cluster; who uses each; and what is
inside each (size, cluster, major version, system identifier, user data), read in one container:
the running service when it mounts everything there is to read, else one throwaway container.
Reads only. Results come out complete and frozen: a step that changes a
volume scans again.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterable

from .compose import Project, store_label
from .docker import Container, ImageInfo, Mount, helper_args, list_containers
from .messages import human_size, local_time
from .names import LABEL_PROJECT, LABEL_VOLUME, directory_project_names
from .runner import Runner


def effective_pgdata(project: Project, image: ImageInfo) -> str:
    if project.service_pgdata:
        return project.service_pgdata
    if image.pgdata:
        return image.pgdata
    if image.pg_major and image.pg_major >= 18:
        return f"/var/lib/postgresql/{image.pg_major}/docker"
    return "/var/lib/postgresql/data"


def pgdata_in_volume(project: Project, image: ImageInfo) -> str | None:
    """Where the server looks for its cluster, relative to the volume root; None when the
    data directory is not on the volume at all (the postgres 18 mount-path mistake, or no
    named volume at all)."""
    if project.anonymous:
        return None
    pgdata = effective_pgdata(project, image).rstrip("/")
    target = project.mount_target.rstrip("/")
    if pgdata == target:
        return "."
    if pgdata.startswith(target + "/"):
        return pgdata[len(target) + 1:]
    return None


@dataclass(frozen=True)
class Volume:
    """A named volume or a host folder that may hold the cluster (`folder`: `name` is the
    folder's absolute path)."""

    name: str
    active: bool = False
    exists: bool = True
    found_by: list[str] = field(default_factory=list)
    created: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    size: int | None = None          # bytes, None when not inspected
    entries: int | None = None       # files and folders at the root
    pg_path: str | None = None       # where PG_VERSION sits, relative to the root
    pg_version: str | None = None
    system_id: str | None = None     # pg_control's system identifier: equal means a copy
    user_bytes: int | None = None    # bytes in user relations (relfilenode >= 16384)
    user_files: int | None = None    # how many files user relations have
    incomplete: bool = False         # the kit's INCOMPLETE_MARKER is there
    elsewhere: str | None = None     # directory of another, still existing project using it
    used_by: list[Container] = field(default_factory=list)  # helpers of the kit included
    folder: bool = False
    shown: str = ""                  # how it is named to people ("" : its name)

    @property
    def label(self) -> str:
        return self.shown or self.name

    @property
    def kind(self) -> str:
        return "folder" if self.folder else "volume"

    def mount(self, target: str, readonly: bool) -> Mount:
        return ("bind" if self.folder else "volume", self.name, target, readonly)

    @property
    def has_cluster(self) -> bool:
        return self.pg_version is not None

    @property
    def has_user_data(self) -> bool:
        return bool(self.user_files)

    @property
    def pg_major(self) -> int | None:
        if not self.pg_version:
            return None
        match = re.match(r"^(\d+)", self.pg_version)
        return int(match.group(1)) if match else None

    @property
    def users(self) -> list[Container]:
        """The containers that use it, not counting the kit's own: leftover helpers, and the
        keeper of db-protect (which never blocks the kit)."""
        return [c for c in self.used_by if not c.helper and not c.keeper]

    @property
    def keepers(self) -> list[Container]:
        return [c for c in self.used_by if c.keeper]

    @property
    def project_label(self) -> str | None:
        return self.labels.get(LABEL_PROJECT)

    def describe(self) -> str:
        parts = [f"created {local_time(self.created)}" if self.created else "does not exist",
                 human_size(self.size) if self.size is not None else None,
                 f"PostgreSQL {self.pg_version}" if self.pg_version else
                 ("no cluster" if self.size is not None and self.exists else None)]
        return ", ".join(p for p in parts if p)

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "shown": self.label,
                "active": self.active, "exists": self.exists,
                "found_by": self.found_by, "created": self.created, "labels": self.labels,
                "size_bytes": self.size, "has_cluster": self.has_cluster,
                "pg_version": self.pg_version, "pg_path": self.pg_path,
                "system_identifier": self.system_id, "user_data_bytes": self.user_bytes,
                "user_relation_files": self.user_files,
                "incomplete_copy": self.incomplete, "other_project_dir": self.elsewhere,
                "used_by": [{"name": c.name, "state": c.state, "project": c.project or None}
                            for c in self.used_by if not c.keeper],
                "protected_by": [{"name": c.name, "state": c.state} for c in self.keepers]}


def candidate_reasons(name: str, labels: dict, project: Project) -> list[str]:
    """Why a volume may hold this project's database: the evidence, strongest first."""
    reasons = []
    if name == project.volume and not project.folder:
        reasons.append("active")
    key = project.volume_key
    if key and labels.get(LABEL_VOLUME) == key:
        reasons.append("label")
    if key and name.endswith("_" + key) and name != project.volume:
        reasons.append("name")
    generations = [gen for gen, n in directory_project_names(project.directory.name).items()
                   if key and f"{n}_{key}" == name]
    if generations and name != project.volume:
        reasons.append(f"directory name ({', '.join(generations)})")
    if not reasons and labels.get(LABEL_PROJECT) == project.name:
        reasons.append("project")  # a volume of this project: kept only if it holds a cluster
    return reasons


def find_volumes(runner: Runner, project: Project, image: ImageInfo, ignore: Iterable[str] = (),
                 also: Iterable[str] = ()) -> list[Volume]:
    """The active volume or folder and every other one that may hold the same database, oldest
    first, each with its users and contents (`also`: volume names or absolute folder paths to
    include whatever they are). A fixed number of docker calls, however many volumes the
    machine has."""
    fmt = f'{{{{.Name}}}}\t{{{{.Label "{LABEL_VOLUME}"}}}}\t{{{{.Label "{LABEL_PROJECT}"}}}}'
    out = runner(["docker", "volume", "ls", "--format", fmt], reads=True).stdout.decode()
    ignore, also = set(ignore), set(also)
    names = {}
    for line in out.splitlines():
        name, _, rest = line.partition("\t")
        key, _, owner = rest.partition("\t")
        names[name] = {LABEL_VOLUME: key, LABEL_PROJECT: owner}
    found: dict[str, list[str]] = {}
    for name, labels in names.items():
        reasons = candidate_reasons(name, labels, project)
        if name in also and not reasons:
            reasons = ["named"]
        if reasons and (name == project.volume or name in also or name not in ignore):
            found[name] = reasons
    details = {d["Name"]: d for d in json.loads(
        runner(["docker", "volume", "inspect", *found], reads=True).stdout)} if found else {}
    folders = {p for p in also if p.startswith("/")}
    if project.folder:
        folders.add(project.volume)
    here = project.directory.resolve()
    mounts = [(name, True) for name in found] + \
        [(path, False) for path in sorted(folders) if os.path.isdir(path)]
    containers = list_containers(runner)
    service = next((c for c in containers if c.state == "running" and not c.helper and
                    c.project == project.name and c.service == project.service), None)
    contents, searched = inspect_contents(runner, image, mounts, here,
                                          pgdata_in_volume(project, image) or ".", service)
    for path in searched:
        if path not in folders and path not in ignore and \
                store_label(path, True, here) not in ignore:
            folders.add(path)
    users: dict[str, list[Container]] = {name: [] for name in (*found, *folders)}
    elsewhere: dict[str, str] = {}
    for c in containers:
        for m in c.volumes:
            m = os.path.normpath(m) if m.startswith("/") else m
            if m in users:
                users[m].append(c)
                # A container that ran from another directory that still exists: the volume
                # belongs to a neighbouring project, not to this one's past.
                if c.project != project.name and c.working_dir and \
                        Path(c.working_dir).is_dir() and Path(c.working_dir).resolve() != here:
                    elsewhere[m] = c.working_dir
    volumes = []
    for name, reasons in found.items():
        facts = contents.get(name, {})
        if reasons == ["project"] and not facts.get("pg_version"):
            continue  # another service's volume of this project (a cache, say)
        volumes.append(Volume(name, active=name == project.volume and not project.folder,
                              found_by=reasons, created=details[name].get("CreatedAt"),
                              labels=details[name].get("Labels") or {},
                              elsewhere=elsewhere.get(name), used_by=users[name], **facts))
    for path in sorted(folders):
        active = project.folder and path == project.volume
        facts = dict(contents.get(path, {}))
        exists = os.path.isdir(path)
        if not active and path not in also and not facts.get("pg_version"):
            continue
        reasons = ["active"] if active else (["named"] if path in also else ["project folder"])
        volumes.append(Volume(path, active=active, exists=exists, found_by=reasons,
                              created=facts.pop("created", None), used_by=users.get(path, []),
                              folder=True, shown=store_label(path, True, here), **facts))
    if not any(v.active for v in volumes):
        volumes.append(Volume(project.volume, active=True, exists=False, found_by=["active"],
                              folder=project.folder, shown=project.store_label or
                              "(an anonymous volume)"))
    return sorted(volumes, key=lambda v: (v.created or "9999", v.name))


# Runs in a throwaway container of the db image, with every candidate read-only at /v/<n> and
# the project's folder read-only at /p, or in the running service container, where they are
# mounted already. $1: the folder (relative to a volume's root) where the configured server
# keeps its cluster; $2: "p" to search /p; then a key and a path for each volume or folder.
# One line per volume or folder: its key, KiB used, entries
# at the root, where PG_VERSION is, its content, the cluster's system identifier (first 8 bytes
# of pg_control), KiB in user relations (files numbered from 16384, the first OID initdb leaves
# to users), the marker, how many such files there are (a new table's file can still be empty
# before a checkpoint), and when PG_VERSION was written. Folders of the project that hold a
# cluster are found under /p (not in .git, node_modules or virtual environments), each printed
# with the key p:<path below the project's folder>.
INSPECT_SCRIPT = r"""
# inspect
where=$1 search=$2
shift 2
facts() {
  key=$1 d=$2
  pg=""; ver=""; sysid=""; user=0; marker=0; born=""
  want="$d/$where"; [ "$where" = . ] && want="$d"
  # Where the configured server looks first, then the usual places, then any folder one or two
  # levels down (PGDATA in a subfolder of the volume is common). A cluster has pg_control too:
  # base/<oid>/PG_VERSION alone is not one.
  for c in "$want" "$d" "$d/data" "$d"/*/docker "$d"/* "$d"/*/*; do
    if [ -f "$c/PG_VERSION" ] && [ -f "$c/global/pg_control" ]; then pg="$c"; break; fi
  done
  kib=$(du -sk "$d" | cut -f1)
  entries=$(ls -A "$d" | grep -cv '^lost+found$')
  [ -e "$d/.dbguard-incomplete" ] && marker=1
  if [ -n "$pg" ]; then
    ver=$(head -n 1 "$pg/PG_VERSION")
    born=$(stat -c %Y "$pg/PG_VERSION" 2>/dev/null)
    sysid=$(od -An -tu8 -N8 "$pg/global/pg_control" 2>/dev/null | tr -d ' ')
    rels=$(find "$pg/base" -mindepth 2 -maxdepth 2 -type f -name '[0-9]*' 2>/dev/null \
      | awk -F/ '{ split($NF, a, /[._]/); if (a[1] + 0 >= 16384) print }')
    nrel=$(printf '%s' "$rels" | grep -c . || true)
    # Summed by awk: xargs may run du several times, and each batch prints its own total.
    user=$(printf '%s\n' "$rels" | xargs -r du -k | awk '{ s += $1 } END { print s + 0 }')
    pg=".${pg#$d}"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$key" "$kib" "$entries" "$pg" "$ver" \
    "$sysid" "${user:-0}" "$marker" "${nrel:-0}" "$born"
}
while [ $# -ge 2 ]; do
  [ -d "$2" ] && facts "$1" "$2"
  shift 2
done
[ "$search" = p ] && [ -d /p ] || exit 0
find /p -maxdepth 5 \( -name .git -o -name node_modules -o -name .venv -o -name venv \) -prune \
  -o -name PG_VERSION -type f -print 2>/dev/null | while read -r f; do
  c=${f%/PG_VERSION}
  [ -f "$c/global/pg_control" ] || continue
  # The folder that is mounted: the cluster's, less the server's path inside the mount.
  case "$where" in
    .) s=$c ;;
    *) case "$c" in */"$where") s=${c%/"$where"} ;; *) s=$c ;; esac ;;
  esac
  [ "$s" = /p ] && continue
  facts "p:${s#/p/}" "$s"
done
"""


def inspect_contents(runner: Runner, image: ImageInfo, stores: list[tuple[str, bool]],
                     project_dir: Path, where: str = ".", service: Container | None = None
                     ) -> tuple[dict[str, dict], set[str]]:
    """Size, cluster and marker facts of existing volumes and folders (`stores`: name, and
    whether it is a volume), read in one container, as Volume fields by name; and the folders
    of the project that hold a cluster (absolute paths). Nothing when the image is not there
    to read with. `where`: the folder in a volume where the configured server keeps its
    cluster. `service`: the project's running service container. When it mounts every store
    and no folder of the project can hold a cluster, the facts are read inside it (one
    `docker exec`), which costs the engine about a third of a new container; otherwise, or
    when that fails, in a throwaway container. With no store and no such folder, in none."""
    if not image.present:
        return {}, set()
    search = may_hold_clusters(project_dir)
    if not stores and not search:
        return {}, set()  # nothing to read (a project's first db-up): no container at all
    out = None
    inside = mounted_in(runner, service, stores) if service and stores and not search else None
    if inside is not None:
        pairs = [arg for i, path in enumerate(inside) for arg in (str(i), path)]
        out = runner(["docker", "exec", "--user", "0:0", service.id, "sh", "-c", INSPECT_SCRIPT,
                      "dbguard", where, "-", *pairs], reads=True, check=False)
        out = out if out.returncode == 0 else None
    if out is None:
        mounts: list[Mount] = [("volume" if is_volume else "bind", name, f"/v/{i}", True)
                               for i, (name, is_volume) in enumerate(stores)]
        if project_dir.is_dir():
            mounts.append(("bind", str(project_dir), "/p", True))
        pairs = [arg for i in range(len(stores)) for arg in (str(i), f"/v/{i}")]
        out = runner(helper_args(image, mounts, INSPECT_SCRIPT, where, "p", *pairs, looks=True),
                     reads=True)
    facts, searched = {}, set()
    for line in out.stdout.decode(errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) != 10:
            continue
        key = parts[0]
        if key.startswith("p:"):
            name = os.path.normpath(str(project_dir / key[2:]))
            searched.add(name)
        elif key.isdigit() and int(key) < len(stores):
            name = stores[int(key)][0]
        else:
            continue
        entry = dict(
            size=int(parts[1] or 0) * 1024, entries=int(parts[2] or 0),
            pg_path=parts[3] or None, pg_version=parts[4] or None, system_id=parts[5] or None,
            user_bytes=int(parts[6] or 0) * 1024, incomplete=parts[7] == "1",
            user_files=int(parts[8] or 0))
        if parts[9].isdigit():
            import datetime as dt
            entry["created"] = dt.datetime.fromtimestamp(int(parts[9]), dt.timezone.utc
                                                         ).isoformat()
        facts.setdefault(name, entry)
    for name, is_volume in stores:  # a volume's creation time comes from Docker instead
        if is_volume:
            facts.get(name, {}).pop("created", None)
    return facts, searched


def mounted_in(runner: Runner, container: Container, stores: list[tuple[str, bool]]
               ) -> list[str] | None:
    """Where `container` mounts each of `stores` (volume names, host folders), in their order;
    None when it mounts one of them not at all, or something else below one of them (an
    anonymous volume the image's VOLUME put inside a volume mounted too high, say: read there,
    its cluster would pass for the store's), or mounts a volume's subfolder only, or cannot be
    inspected."""
    out = runner(["docker", "inspect", "--format",
                  '{"Mounts": {{json .Mounts}}, "Asked": {{json .HostConfig.Mounts}}}',
                  container.id], reads=True, check=False)
    if out.returncode != 0:
        return None
    try:
        inspected = json.loads(out.stdout or b"null")
    except ValueError:
        return None
    listed = inspected.get("Mounts") if isinstance(inspected, dict) else None
    asked = (inspected.get("Asked") if isinstance(inspected, dict) else None) or []
    # A volume mounted from a subfolder (`volume-subpath`, engines from 26): the container sees
    # only part of it.
    if any(isinstance(m, dict) and ((m.get("VolumeOptions") or {}).get("Subpath"))
           for m in (asked if isinstance(asked, list) else [])):
        return None
    at: dict[tuple[bool, str], str] = {}
    targets: list[str] = []
    for m in listed if isinstance(listed, list) else []:
        if not isinstance(m, dict):
            continue
        kind, dest = m.get("Type"), os.path.normpath(str(m.get("Destination") or "/"))
        targets.append(dest)
        if kind == "volume" and m.get("Name"):
            at.setdefault((True, m["Name"]), dest)
        elif kind == "bind" and m.get("Source"):
            at.setdefault((False, os.path.normpath(m["Source"])), dest)
    paths = [at.get((is_volume, name if is_volume else os.path.normpath(name)))
             for name, is_volume in stores]
    if not all(p and p.startswith("/") and p != "/" for p in paths):
        return None
    if any(t.startswith(p + "/") for p in paths for t in targets):
        return None
    return paths


# What the container's search of the project's folder skips (INSPECT_SCRIPT's find), and how
# deep it looks: PG_VERSION files in folders up to 4 levels below.
SKIPPED = frozenset({".git", "node_modules", ".venv", "venv"})


def may_hold_clusters(project_dir: Path) -> bool:
    """Whether the container's search of the project's folder could find a cluster: a
    PG_VERSION file where it looks, or a folder this user cannot read (a cluster's folder is
    its owner's only). False only when the host has seen every folder and no such file."""
    def search(path: str, depth: int) -> bool:
        try:
            with os.scandir(path) as entries:
                for entry in entries:
                    if entry.name in SKIPPED:
                        continue
                    if entry.name == "PG_VERSION" and entry.is_file(follow_symlinks=False):
                        return True
                    if depth < 4 and entry.is_dir(follow_symlinks=False) and \
                            search(entry.path, depth + 1):
                        return True
        except OSError:
            return True
        return False
    return project_dir.is_dir() and search(str(project_dir), 0)
