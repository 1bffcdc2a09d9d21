"""db-clone: a git worktree gets a database of its own in the server every checkout shares.

plan       this worktree, the main checkout and the database it uses (the source), the clone's
           name (from the branch, or NAME=), the idle copy it is made from (the snapshot
           clone_source of the source: taken now if there is none or REFRESH=1, when the
           source's connections are ended for the moment the copy takes; else reused, with its
           age), and the change to this worktree's own env file
preflight  a worktree of a git repository, not the main checkout; it resolves to the same
           Compose project as the main checkout (one server); the server runs; the name is
           free, or this worktree's clone already; the env file is not tracked by git
run        the snapshot (if needed) and its row counts; CREATE DATABASE <clone>_dbguard_new
           TEMPLATE the snapshot (file_copy_method = clone on 18), commented with its owner;
           the exact row count of every table compared with the snapshot's; the rename to the
           clone's name; the env file written (its original kept under backups/originals/);
           the checkout recorded in the repository's common git folder
keeps      nothing is replaced; db-undo drops the clone again
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from ..catalog import databases
from ..checkouts import Checkout, checkouts, common_dir, registry, remember
from ..clones import (CLONE_NAME_RE, COMMENT, SOURCE_NAME, clone_name, counts, list_clones,
                      source_database)
from ..db_snapshots import utc_now
from ..destructive import databases as change
from ..envfile import point_at
from ..errors import Failure, UsageError
from ..files import atomic_write, private_dir
from ..gitinfo import git
from ..journal import Operation
from ..kit import Kit
from ..settings import COMPOSE_NAMES
from ..messages import human_age, human_size, info, parse_time, success, timing
from ..names import COMMENT_RE as SNAPSHOT_COMMENT_RE, scratch_database, snapshot_comment
from . import Plan

COMMAND = "db-clone"


def env_tracked(path: Path) -> bool:
    return git("ls-files", "--error-unmatch", path.name, cwd=path.parent) is not None


def main_database(kit: Kit, main: Checkout) -> str:
    env = kit.project.environment
    return main.db or env.get("POSTGRES_DB") or env.get("POSTGRES_USER") or "postgres"


def plan(kit: Kit, args, ctx=None) -> Plan:
    s = kit.settings
    found = checkouts(s.project_dir, s.root, COMPOSE_NAMES)
    here = next((c for c in found if c.current), None)
    doing = "give this worktree a database of its own"
    if here is None:
        return Plan(COMMAND, doing, {}, {}, refusals=(
            f"{s.project_dir} is not in a git work tree: db-clone gives a worktree of a git "
            "repository its own database",))
    main = found[0]
    reasons = []
    if here.main:
        reasons.append(f"{here.path} is the main checkout, which uses the main database "
                       "itself; run db-clone in a worktree (`git worktree add ../feature`)")
    if here.project != main.project:
        reasons.append(f"this worktree resolves to its own Compose project {here.project!r} "
                       f"(the main checkout's is {main.project!r}), so it has a server of its "
                       "own: set COMPOSE_PROJECT_NAME=" + main.project + " in its .env to "
                       "share the main checkout's server, or run `make db-up` here, which "
                       "seeds its own volume from the main checkout's")
    container = kit.service_container()
    if container is None or container.state != "running":
        reasons.append(f"the shared server ({kit.project.service!r} of project "
                       f"{kit.project.name}) is not running; start it with `make db-up`")
    if reasons:
        return Plan(COMMAND, doing, {}, {}, refusals=tuple(reasons))
    source = main_database(kit, main)
    name = args.name or clone_name(source, here.branch or here.path.name)
    if not CLONE_NAME_RE.match(name):
        raise UsageError(f"NAME={name!r} is not a database name the kit gives",
                         "Use lowercase letters, digits and '_' (at most 63)")
    server = kit.server(container)
    dbs = {d["name"]: d for d in databases(server, source)}
    clones = {c.name: c for c in list_clones(server, server.maintenance(source))}
    mine = clones.get(name)
    if source not in dbs:
        reasons.append(f"the main database {source!r} does not exist in the server")
    if name == source:
        reasons.append(f"{name!r} is the main database itself")
    elif name in dbs and (mine is None or Path(mine.owner) != here.path):
        owner = f"the clone of {mine.owner}" if mine else "not a clone of this kit's"
        reasons.append(f"a database {name!r} exists already ({owner}); choose another NAME=")
    env_path = s.project_dir / ".env"
    if env_path.is_file() and env_tracked(env_path):
        reasons.append(f"{env_path} is tracked by git: the clone's name would reach every "
                       "checkout; keep .env untracked (git rm --cached .env) and run again")
    if reasons:
        return Plan(COMMAND, doing, {}, {}, refusals=tuple(reasons))

    main_env = main.path / s.project_dir.resolve().relative_to(here.path) / ".env"
    if env_path.is_file():
        before = env_path.read_text()
        origin = str(env_path)
    elif main_env.is_file():
        before = main_env.read_text()
        origin = f"{main_env} (this worktree has no .env: made from the main checkout's)"
    else:
        before, origin = "", "(none: a new .env)"
    after, changes = point_at(before, source, name)
    src = source_database(source)
    snapshot = dbs.get(src)
    refresh = bool(args.refresh) or snapshot is None
    lines = [("checkout", f"{here.path} (branch {here.branch or '(detached)'}); the main "
                          f"checkout is {main.path}"),
             ("source", f"database {source!r}" + (
                 f" ({human_size(int(dbs[source]['size_bytes']))})" if source in dbs else ""))]
    if refresh:
        lines.append(("copy", f"a new idle copy of {source!r} ({SOURCE_NAME}): its other "
                              "connections are ended for the moment the copy takes" +
                              (" (replaces the old one: REFRESH=1)" if snapshot else "")))
    else:
        age = snapshot_age(snapshot)
        lines.append(("copy", f"the idle copy {SOURCE_NAME} of {source!r}, taken "
                              f"{human_age(age) if age is not None else 'earlier'} "
                              "(REFRESH=1 takes a new one first)"))
    if mine:
        lines.append(("clone", f"{name!r} exists already and is this worktree's: kept"))
    else:
        lines.append(("clone", f"database {name!r}, every table's rows counted against the "
                               "copy"))
    shown = [f"{key}: {old} -> {new}" for key, old, new in changes]
    lines.append(("env", f"{env_path}, from {origin}: " + ("; ".join(shown) or "unchanged")))
    stamp = args.stamp
    return Plan(
        command=COMMAND, doing=doing, target={"kind": "database", "name": name},
        copy={"kind": "made", "database": name, "snapshot": name, "of": name} if not mine
        else {"kind": "none", "why": "the clone existed already"},
        lines=tuple(lines),
        question=f"Give {here.path.name} the database {name!r}?",
        facts=(source, name, refresh, bool(mine), tuple(changes)),
        record={"db": name, "source": source, "worktree": str(here.path)},
        data={"server": server, "source": source, "name": name, "refresh": refresh,
              "src": src, "had_source": snapshot is not None, "mine": mine,
              "here": here, "env_path": env_path, "before": before, "after": after,
              "env_existed": env_path.is_file(), "stamp": stamp})


def snapshot_age(row: dict | None) -> float | None:
    match = SNAPSHOT_COMMENT_RE.match((row or {}).get("note") or "")
    if not match:
        return None
    try:
        return time.time() - parse_time(match["at"]).timestamp()
    except ValueError:
        return None


def source_counts(kit: Kit, server, d: dict) -> dict:
    """The row counts of the idle copy: recorded when it was taken (it never changes), else
    counted now."""
    key = f"{d['src']}@{change.oid_of(server, d['src'], d['source'])}"
    known = registry(kit.settings.project_dir).get("sources", {}).get(key)
    if known is not None:
        return known
    found = counts(server, d["src"])
    common = common_dir(kit.settings.project_dir)
    if common is not None:
        data = registry(kit.settings.project_dir)
        data["sources"] = {key: found}  # only the newest copy's
        try:
            (common / "dbguard").mkdir(exist_ok=True)
            atomic_write(common / "dbguard" / "checkouts.json",
                         json.dumps(data, indent=2, sort_keys=True).encode())
        except OSError:
            pass
    return found


def run(kit: Kit, plan: Plan, op: Operation) -> str:
    d = plan.data
    server, source, name, here = d["server"], d["source"], d["name"], d["here"]
    if d["refresh"]:
        op.step("copy source")
        if d["had_source"]:
            change.drop(server, [d["src"]], source)
        started = time.monotonic()
        change.copy_database(server, source, d["src"], snapshot_comment(
            source, utc_now(), "the idle copy db-clone makes clones from"), close=True)
        info(f"idle copy of {source!r} taken in {time.monotonic() - started:.1f}s")
    method = "kept"
    if not d["mine"]:
        wanted = source_counts(kit, server, d)
        scratch = scratch_database(name)
        op.step("clone")
        change.drop(server, [scratch], source)  # a killed run's
        started = time.monotonic()
        comment = COMMENT.format(db=source, path=here.path, branch=here.branch or "(detached)",
                                 at=utc_now())
        with timing("clone"):
            method = change.create_from(server, d["src"], scratch, comment, source)
        took = time.monotonic() - started
        op.step("verify")
        with timing("verify"):
            got = counts(server, scratch)
        if got != wanted:
            differ = sorted(t for t in set(got) | set(wanted) if got.get(t) != wanted.get(t))
            change.drop(server, [scratch], source)
            raise Failure(f"the clone's row counts differ from its source in "
                          f"{', '.join(differ[:5])}", "Nothing was kept; run again")
        op.step("rename")
        change.rename(server, scratch, name, source)
        info(f"cloned {source!r} into {name!r} in {took:.1f}s by {method}; "
             f"{sum(wanted.values()):,} rows in {len(wanted)} tables, counted equal")
    op.step("env")
    env_path: Path = d["env_path"]
    if d["after"] != d["before"] or not d["env_existed"]:
        if d["env_existed"]:
            originals = private_dir(kit.settings.backup_dir / "originals")
            kept = originals / f".env.{d['stamp']}"
            atomic_write(kept, d["before"].encode())
            info(f"the original {env_path.name} is kept as {kept}")
        atomic_write(env_path, d["after"].encode())
    remember(kit.settings.project_dir, project=kit.project.name, clone=name, db=name,
             source=source, branch=here.branch)
    success(f"{here.path.name} uses the database {name!r} now ({env_path} points at it); "
            "`make db-clones` lists every worktree's")
    return method

