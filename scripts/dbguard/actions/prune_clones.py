"""db-clones: the worktrees' clones in the shared server, and what removed checkouts left;
PRUNE=1 removes exactly that.

plan       the clones (db-clone's, by their comment) whose worktree folder is gone, and the
           volumes the registry in the common git folder records for checkouts that are gone
           (the per-worktree layout), with their sizes
preflight  nothing to refuse: what may not go is left out of the plan, each with why (the
           main database, its snapshots and the live checkouts' volumes never qualify; a
           volume a container still uses, or another checkout resolves to, is kept)
run        each clone dropped (its sessions ended), each volume removed,
           and the gone checkouts forgotten in the registry
keeps      nothing: a clone of a removed worktree is its branch's scratch copy (db-undo refuses)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..checkouts import Checkout, checkouts, forget, registry
from ..clones import Clone, list_clones
from ..destructive import databases as change
from ..destructive.replace_volume import remove_volume
from ..docker import list_containers
from ..journal import Operation
from ..kit import Kit
from ..messages import human_age, human_size, info, plural, success, warning
from ..settings import COMPOSE_NAMES
from ..volumes import Volume
from . import Plan

COMMAND = "db-clones"


@dataclass
class Leftovers:
    clones: list[Clone]             # of worktrees that are gone
    live_clones: list[Clone]
    volumes: list[tuple[str, str, int | None]]   # (volume, gone checkout, size)
    kept: list[tuple[str, str]]     # (gone checkout, why its volume must stay)
    checkouts: list[Checkout]
    gone_paths: list[str]


def survey(kit: Kit) -> Leftovers:
    s = kit.settings
    found = checkouts(s.project_dir, s.root, COMPOSE_NAMES)
    live = {str(c.path) for c in found if c.exists}
    container = kit.service_container()
    clones: list[Clone] = []
    if container is not None and container.state == "running":
        server = kit.server(container)
        clones = list_clones(server, server.maintenance(kit.db))
    gone = [c for c in clones if c.owner not in live and not Path(c.owner).is_dir()]
    records = registry(s.project_dir).get("checkouts", {})
    gone_paths = [p for p in records if p not in live and not Path(p).is_dir()]
    live_projects = {c.project for c in found if c.exists} | {kit.project.name}
    live_volumes = {records[p].get("volume") for p in records if p in live} | \
        {kit.project.volume}
    users = {}
    # A read-only look (db-info's or db-find's, of any project) ends by itself, and the
    # removal waits it out (destructive/volume_rm.py): it holds no volume back.
    for c in list_containers(kit.runner):
        if c.looking:
            continue
        for m in c.volumes:
            users.setdefault(m, []).append(c)
    volumes, kept = [], []
    names = {name for name in (records[p].get("volume") for p in gone_paths) if name}
    existing = {v.name: v for v in kit.scan(also=sorted(names))} if names else {}
    for path in gone_paths:
        entry = records[path]
        name, project = entry.get("volume"), entry.get("project")
        if not name or name in live_volumes:
            continue  # the shared layout: the live checkouts' volume
        volume = existing.get(name)
        if volume is None or not volume.exists:
            continue
        using = [c.name for c in users.get(name, [])]
        if using:
            kept.append((path, f"{name} (of {path}): used by {', '.join(using)}; remove those "
                               "containers first"))
        elif project in live_projects:
            kept.append((path, f"{name} (of {path}): project {project} is a live "
                               "checkout's"))
        else:
            volumes.append((name, path, volume.size))
    return Leftovers(gone, [c for c in clones if c not in gone], volumes, kept, found,
                     gone_paths)


def listing(kit: Kit) -> dict:
    found = survey(kit)
    return {"clones": [clone_json(c, True) for c in found.live_clones] +
            [clone_json(c, False) for c in found.clones],
            "gone_volumes": [{"volume": v, "checkout": p, "size_bytes": size}
                             for v, p, size in found.volumes],
            "kept": [why for _, why in found.kept],
            "checkouts": [c.to_json() for c in found.checkouts]}


def clone_json(c: Clone, exists: bool) -> dict:
    return {"name": c.name, "of": c.of, "worktree": c.owner, "branch": c.branch,
            "made": c.made.isoformat(), "age": human_age(c.age), "size_bytes": c.size,
            "worktree_exists": exists}


def plan(kit: Kit, args, ctx=None) -> Plan:
    found = survey(kit)
    doing = "remove what removed worktrees left"
    if not found.clones and not found.volumes:
        for _, why in found.kept:
            warning(f"kept: {why}")
        return Plan(COMMAND, doing, {"kind": "database", "name": kit.db}, {},
                    nothing="no clone or volume of a removed checkout: nothing to prune")
    lines = [("drop", f"clone {c.name!r} ({human_size(c.size)}, of {c.owner}, branch "
                      f"{c.branch}, made {human_age(c.age)})") for c in found.clones]
    lines += [("remove", f"volume {v} ({human_size(size)}, of {path})")
              for v, path, size in found.volumes]
    lines += [("keeps", why) for _, why in found.kept]
    lines.append(("never", f"the main database {kit.db!r}, its snapshots, the live "
                           "worktrees' clones and volumes"))
    return Plan(
        command=COMMAND, doing=doing, target={"kind": "database", "name": kit.db},
        copy={"kind": "none", "why": "clones and volumes of removed checkouts are not kept"},
        lines=tuple(lines),
        question=f"Remove {plural(len(found.clones), 'clone')} and "
                 f"{plural(len(found.volumes), 'volume')} of removed checkouts?",
        warning="what the removed worktrees' branches changed in them is lost",
        facts=(tuple(c.name for c in found.clones), tuple(v for v, _, _ in found.volumes)),
        record={"drops": [c.name for c in found.clones],
                "volumes": [v for v, _, _ in found.volumes]},
        data=found)


def run(kit: Kit, plan: Plan, op: Operation) -> None:
    found: Leftovers = plan.data
    if found.clones:
        op.step("drop clones")
        server = kit.server()
        change.drop(server, [c.name for c in found.clones], kit.db)
        info("dropped " + ", ".join(repr(c.name) for c in found.clones))
    failed = []
    if found.volumes:
        op.step("remove volumes")
        for name, _, _ in found.volumes:
            if not remove_volume(kit, Volume(name)):
                failed.append(name)
    staying = {p for v, p, _ in found.volumes if v in failed} | {p for p, _ in found.kept}
    forget(kit.settings.project_dir, [p for p in found.gone_paths if p not in staying])
    if failed:
        warning(f"Docker kept {', '.join(failed)} (in use again?); `make db-clones` lists it")
    success(f"removed {plural(len(found.clones), 'clone')} and "
            f"{plural(len(found.volumes) - len(failed), 'volume')} of removed checkouts")
