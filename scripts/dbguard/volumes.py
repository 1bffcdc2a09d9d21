"""Discovery: the volumes that hold, or once held, this project's database. By Compose label, by
name suffix and by the names older Compose versions would give it; who uses each; and what is
inside each (size, cluster, major version, system identifier, user data), read through one
throwaway container. Reads only. Volumes come out complete and frozen: nothing later changes
them, and a step that changes a volume scans again.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterable

from .compose import Project
from .docker import (LABEL_PROJECT, LABEL_VOLUME, Container, ImageInfo, helper_args,
                     list_containers)
from .messages import human_size, local_time, table
from .names import directory_project_names
from .runner import Runner

# A file the kit writes into a volume before it empties it and removes after a verified copy:
# while it is there the volume holds no trustworthy cluster.
INCOMPLETE_MARKER = ".dbguard-incomplete"


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
    data directory is not on the volume at all (the postgres 18 mount-path mistake)."""
    pgdata = effective_pgdata(project, image).rstrip("/")
    target = project.mount_target.rstrip("/")
    if pgdata == target:
        return "."
    if pgdata.startswith(target + "/"):
        return pgdata[len(target) + 1:]
    return None


@dataclass(frozen=True)
class Volume:
    name: str
    active: bool = False
    exists: bool = True
    found_by: list[str] = field(default_factory=list)
    created: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    size: int | None = None          # bytes, None when not inspected
    entries: int | None = None       # files and folders at the volume root
    pg_path: str | None = None       # where PG_VERSION sits, relative to the volume root
    pg_version: str | None = None
    system_id: str | None = None     # pg_control's system identifier: equal means a copy
    user_bytes: int | None = None    # bytes in user relations (relfilenode >= 16384)
    user_files: int | None = None    # how many files user relations have
    incomplete: bool = False         # the kit's INCOMPLETE_MARKER is there
    elsewhere: str | None = None     # directory of another, still existing project using it
    used_by: list[Container] = field(default_factory=list)  # helpers of the kit included

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
        """The containers that use it, not counting the kit's own leftover helpers."""
        return [c for c in self.used_by if not c.helper]

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
        return {"name": self.name, "active": self.active, "exists": self.exists,
                "found_by": self.found_by, "created": self.created, "labels": self.labels,
                "size_bytes": self.size, "has_cluster": self.has_cluster,
                "pg_version": self.pg_version, "pg_path": self.pg_path,
                "system_identifier": self.system_id, "user_data_bytes": self.user_bytes,
                "user_relation_files": self.user_files,
                "incomplete_copy": self.incomplete, "other_project_dir": self.elsewhere,
                "used_by": [{"name": c.name, "state": c.state, "project": c.project or None}
                            for c in self.used_by]}


def candidate_reasons(name: str, labels_volume: str, project: Project) -> list[str]:
    """Why a volume may hold this project's database: the evidence, strongest first."""
    reasons = []
    if name == project.volume:
        reasons.append("active")
    if labels_volume == project.volume_key:
        reasons.append("label")
    if name.endswith("_" + project.volume_key) and name != project.volume:
        reasons.append("name")
    generations = [gen for gen, n in directory_project_names(project.directory.name).items()
                   if f"{n}_{project.volume_key}" == name]
    if generations and name != project.volume:
        reasons.append(f"directory name ({', '.join(generations)})")
    return reasons


def find_volumes(runner: Runner, project: Project, image: ImageInfo, ignore: Iterable[str] = (),
                 also: Iterable[str] = ()) -> list[Volume]:
    """The active volume and every other volume that may hold the same compose volume's data,
    oldest first, each with its users and contents (`also`: names to include whatever they are
    called). A fixed number of docker calls, however many volumes the machine has."""
    fmt = f'{{{{.Name}}}}\t{{{{.Label "{LABEL_VOLUME}"}}}}'
    out = runner(["docker", "volume", "ls", "--format", fmt]).stdout.decode()
    ignore, also = set(ignore), set(also)
    found: dict[str, list[str]] = {}
    for line in out.splitlines():
        name, _, key = line.partition("\t")
        reasons = candidate_reasons(name, key, project)
        if name in also and not reasons:
            reasons = ["named"]
        if reasons and (name == project.volume or name in also or name not in ignore):
            found[name] = reasons
    details = {d["Name"]: d for d in json.loads(
        runner(["docker", "volume", "inspect", *found]).stdout)} if found else {}
    users: dict[str, list[Container]] = {name: [] for name in found}
    elsewhere: dict[str, str] = {}
    here = project.directory.resolve()
    for c in list_containers(runner):
        for m in c.volumes:
            if m in users:
                users[m].append(c)
                # A container that ran from another directory that still exists: the volume
                # belongs to a neighbouring project, not to this one's past.
                if c.project != project.name and c.working_dir and \
                        Path(c.working_dir).is_dir() and Path(c.working_dir).resolve() != here:
                    elsewhere[m] = c.working_dir
    contents = inspect_contents(runner, image, list(found),
                                pgdata_in_volume(project, image) or ".")
    volumes = [Volume(name, active=name == project.volume, found_by=reasons,
                      created=details[name].get("CreatedAt"),
                      labels=details[name].get("Labels") or {}, elsewhere=elsewhere.get(name),
                      used_by=users[name], **contents.get(name, {}))
               for name, reasons in found.items()]
    if project.volume not in found:
        volumes.append(Volume(project.volume, active=True, exists=False, found_by=["active"]))
    return sorted(volumes, key=lambda v: (v.created or "9999", v.name))


# Runs in a throwaway container of the db image, with every volume read-only at /v/<n>, and as
# $1 the folder (relative to a volume's root) where the configured server keeps its cluster. One
# line per volume: index, KiB used, entries at the root, where PG_VERSION is, its content, the
# cluster's system identifier (first 8 bytes of pg_control), KiB in user relations (files
# numbered from 16384, the first OID initdb leaves to users), the marker, and how many such
# files there are (a new table's file can still be empty before a checkpoint).
INSPECT_SCRIPT = r"""
# inspect
for d in /v/*; do
  [ -d "$d" ] || continue
  pg=""; ver=""; sysid=""; user=0; marker=0
  want="$d/$1"; [ "$1" = . ] && want="$d"
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
    sysid=$(od -An -tu8 -N8 "$pg/global/pg_control" 2>/dev/null | tr -d ' ')
    rels=$(find "$pg/base" -mindepth 2 -maxdepth 2 -type f -name '[0-9]*' 2>/dev/null \
      | awk -F/ '{ split($NF, a, /[._]/); if (a[1] + 0 >= 16384) print }')
    nrel=$(printf '%s' "$rels" | grep -c . || true)
    # Summed by awk: xargs may run du several times, and each batch prints its own total.
    user=$(printf '%s\n' "$rels" | xargs -r du -k | awk '{ s += $1 } END { print s + 0 }')
    pg=".${pg#$d}"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "${d#/v/}" "$kib" "$entries" "$pg" "$ver" \
    "$sysid" "${user:-0}" "$marker" "${nrel:-0}"
done
"""


def inspect_contents(runner: Runner, image: ImageInfo, names: list[str],
                     where: str = ".") -> dict[str, dict]:
    """Size, cluster and marker facts of existing volumes, read in one container, as Volume
    fields by volume name (nothing for any volume when the image is not there to read with).
    `where`: the folder in a volume where the configured server keeps its cluster."""
    if not names or not image.present:
        return {}
    mounts = [(name, f"/v/{i}", True) for i, name in enumerate(names)]
    out = runner(helper_args(image.ref, mounts, INSPECT_SCRIPT, where)).stdout.decode()
    facts = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) != 9 or not parts[0].isdigit():
            continue
        facts[names[int(parts[0])]] = dict(
            size=int(parts[1] or 0) * 1024, entries=int(parts[2] or 0),
            pg_path=parts[3] or None, pg_version=parts[4] or None, system_id=parts[5] or None,
            user_bytes=int(parts[6] or 0) * 1024, incomplete=parts[7] == "1",
            user_files=int(parts[8] or 0))
    return facts


def volume_table(volumes: list[Volume], indent: str = "  ") -> list[str]:
    rows = [("NAME", "CREATED", "SIZE", "PG", "DATA", "FOUND BY", "USED BY", "")]
    for v in volumes:
        if not v.exists:
            data = "-"
        elif v.incomplete:
            data = "unfinished copy"
        elif v.size is None:
            data = "not read"
        elif v.has_cluster:
            data = f"tables: {human_size(v.user_bytes)}" if v.has_user_data else "no tables"
        else:
            data = "empty" if not v.entries else "no cluster"
        used = ", ".join(f"{c.name} ({c.state})" for c in v.used_by) or "-"
        rows.append((v.name, local_time(v.created) if v.exists else "(missing)",
                     human_size(v.size) if v.size is not None else "-",
                     v.pg_version or "-", data, ", ".join(v.found_by), used,
                     "<- ACTIVE" if v.active else ""))
    return table(rows, indent)
