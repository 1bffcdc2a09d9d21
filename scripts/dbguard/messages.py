"""What the kit says: the fixed message vocabulary (==>, INFO, WARNING, SUCCESS, and ERROR through
cli.entrypoint) on stderr, the [y/N] question, sizes and ages for people, aligned tables, and
one self-rewriting progress line. Colour only on a terminal and only without NO_COLOR.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import sys
import time
from collections.abc import Iterator, Sequence

from .errors import Refusal


def colour(level: str) -> tuple[str, str]:
    if os.environ.get("NO_COLOR") or not sys.stderr.isatty():
        return "", ""
    codes = {"ERROR": "31", "WARNING": "33", "SUCCESS": "32", "INFO": "36", "==>": "1"}
    return f"\033[{codes.get(level, '0')}m", "\033[0m"


def say(level: str, text: str) -> None:
    """Messages go to stderr; stdout is kept for what the user asked for."""
    start, end = colour(level)
    print(f"{start}{level}{end}{'' if level == '==>' else ':'} {text}", file=sys.stderr, flush=True)


headline = functools.partial(say, "==>")
info = functools.partial(say, "INFO")
warning = functools.partial(say, "WARNING")
success = functools.partial(say, "SUCCESS")


@contextlib.contextmanager
def timing(phase: str) -> Iterator[None]:
    """Times a phase of a command; with DBGUARD_TIMINGS=1 says `timing <phase> <s>s` (what
    `make bench` reads to break a target's time down)."""
    started = time.monotonic()
    yield
    if os.environ.get("DBGUARD_TIMINGS"):
        info(f"timing {phase} {time.monotonic() - started:.2f}s")


def detail(text: str = "") -> None:
    print(f"  {text}" if text else "", file=sys.stderr, flush=True)


def plan_lines(lines: Sequence[tuple[str, str]]) -> list[str]:
    """A plan as people read it: `label:` padded, then what happens to what."""
    return [f"{label + ':':<9} {text}" for label, text in lines]


def show_plan(lines: Sequence[tuple[str, str]], title: str = "Plan") -> None:
    headline(title)
    for line in plan_lines(lines):
        detail(line)


def confirm(question: str, *, assume_yes: bool) -> None:
    """Asks a [y/N] question; returns on yes, raises Refusal on anything else.

    Without a terminal there is nobody to ask, so the answer is no unless --yes was given.
    """
    if assume_yes:
        info(f"{question} [y/N] yes (--yes)")
        return
    if not sys.stdin.isatty():
        raise Refusal("no terminal to ask for confirmation, and --yes was not given",
                      "Run it in a terminal, or confirm ahead with YES=1 (make) or --yes "
                      "(script); nothing was changed")
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    try:
        answer = input()
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        raise Refusal("not confirmed", "Nothing was changed")


def human_size(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def human_age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, length in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= length:
            count = seconds // length
            return f"{count} {unit}{'' if count == 1 else 's'} ago"
    return "just now"


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def local_time(value: str | dt.datetime | None) -> str:
    if not value:
        return "?"
    moment = parse_time(value) if isinstance(value, str) else value
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


class Progress:
    """One self-rewriting status line on a terminal; silent elsewhere."""

    def __init__(self, label: str, total: int | None = None, enabled: bool | None = None):
        self.label, self.total = label, total
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.shown = False

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        text = f"{self.label}: {human_size(done)}"
        if self.total:
            text += f" of {human_size(self.total)} ({min(100, 100 * done // self.total)}%)"
        print(f"\r{text}\033[K", end="", file=sys.stderr, flush=True)
        self.shown = True

    def close(self) -> None:
        if self.shown:
            print(file=sys.stderr, flush=True)
            self.shown = False


def table(rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    """Rows (the first one the header) as left-aligned columns; trailing blanks trimmed."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [(indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths))).rstrip()
            for row in rows]


def volume_table(volumes: Sequence, indent: str = "  ") -> list[str]:
    """The candidate volumes and folders (volumes.Volume) as db-info and db-up show them."""
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
        used = ", ".join([f"{c.name} ({c.state})" for c in v.used_by
                          if not c.keeper and not c.looking] +
                         (["protected"] if v.keepers else [])) or "-"
        rows.append((v.label, local_time(v.created) if v.exists and v.created else
                     ("(missing)" if not v.exists else "-"),
                     human_size(v.size) if v.size is not None else "-",
                     v.pg_version or "-", data, ", ".join(v.found_by), used,
                     "<- ACTIVE" if v.active else ""))
    return table(rows, indent)


def render_backup_summary(summary: dict) -> list[str]:
    newest = summary["newest"]
    if newest is None:
        return [f"  no dumps of {summary['database']!r} in {summary['dir']} (`make db-dump` "
                "takes one)"]
    ok = {True: "checksum ok", False: "CHECKSUM MISMATCH", None: "no checksum"}
    return [f"  newest: {newest['file']} ({human_age(newest['age_seconds'])}, "
            f"{human_size(newest['size_bytes'])}, {newest['format']}, "
            f"{ok[newest['checksum_ok']]}); {summary['count']} in all"]


def render_protection(protection: dict, backups: dict) -> list[str]:
    if protection["kind"] == "folder":
        lines = ["  a folder: no Docker command removes it (`git clean -fdx` may: see "
                 "DATA_IN_WORK_TREE)"]
    elif protection["protected"]:
        lines = [f"  protected by {protection['keepers'][0]['name']} (running): `down -v`, "
                 "`volume rm` and the prunes leave the volume (`make db-protect OFF=1` "
                 "removes it)"]
    else:
        stopped = [k["name"] for k in protection["keepers"]]
        lines = ["  NOT protected: `docker compose down -v` or `docker volume prune -a` removes "
                 "the volume in one keystroke" + (f" (its keeper {stopped[0]} is stopped)"
                                                  if stopped else "") +
                 "; `make db-protect` guards it"]
    verified = backups.get("newest_verified")
    lines.append(f"  newest verified dump: {human_age(verified['age_seconds'])} "
                 f"({verified['file']})" if verified else
                 "  newest verified dump: none (`make db-dump`): a dump is the only copy that "
                 "outlives the volume")
    return lines


def info_report(facts: dict, volumes: Sequence) -> str:
    """db-info's report for people, from the facts of its JSON document."""
    p, svc = facts["project"], facts["service"]
    active = next(v for v in volumes if v.active)
    c, db = facts["connection"], facts["database"]
    source = {"environment": "COMPOSE_PROJECT_NAME in the environment (locked)",
              ".env": "COMPOSE_PROJECT_NAME in .env (locked)",
              "compose file": "name: in the compose file (locked)",
              "directory": f"the directory name {p['directory'].rsplit('/', 1)[-1]!r} "
                           "(NOT locked)"}[p["source"]]
    major = f", PostgreSQL {svc['image_pg_major']}" if svc["image_pg_major"] else ""
    present = "" if svc["image_present"] else ", not present locally"
    out = ["=== Docker Compose Configuration ===",
           f"Compose:         {' '.join(facts['compose']['command'])} "
           f"{facts['compose']['version']}",
           f"Project Name:    {p['name']}",
           f"Name From:       {source}",
           f"Service:         {svc['name']} (image {svc['image']}{major}{present})",
           (f"Active Folder:   {active.label} (a bind mount at {svc['data_mount']})"
            if active.folder else
            f"Active Volume:   {facts['active_volume']} (key {facts['volume_key']}, mounted at "
            f"{svc['data_mount']})"),
           "", (f"=== All {facts['volume_key']} Volumes ===" if facts["volume_key"] else
                "=== Data Folders and Volumes of the Project ==="),
           *volume_table(volumes),
           "", "=== Database Connection Details (for the application) ===",
           f"DB Host:         {c['host'] or '(no published port: reachable inside Docker only)'}",
           f"DB Port:         {c['port'] or '-'}",
           f"DB Name:         {c['name']}", f"DB User:         {c['user']}",
           f"DB Password:     {c['password']}",
           "", "=== Container Status ==="]
    cont = facts["container"]
    out.append("  (no container; `make db-up` starts one)" if cont is None else
               f"  {cont['name']}   {cont['status']}   {cont['ports'] or '-'}")
    out += ["", "=== Database Contents ==="]
    if db["reachable"]:
        dbs = ", ".join(f"{d['name']} ({human_size(d['size_bytes'])}"
                        + (f", {plural(d['tables'], 'table')}" if d.get("tables") is not None
                           else "") + ")" for d in db["databases"])
        out += [f"  Server:     PostgreSQL {db['server_version']}",
                f"  Databases:  {dbs}",
                f"  {c['name']}: CLOSED to connections" if db["closed"] else
                f"  {c['name']}: {plural(db['tables'], 'table')}, about "
                f"{plural(db['rows_estimate'], 'row')}, {human_size(db['size_bytes'])}"]
    else:
        out.append(f"  not reachable: {db['error']}")
    out += ["", "=== Backups ===", *render_backup_summary(facts["backups"])]
    out += ["", "=== Protection ===", *render_protection(facts["protection"],
                                                       facts["backups"])]
    if facts.get("checkouts"):
        out += ["", "=== Checkouts of the repository (`make db-clones`) ==="]
        out += table([["PATH", "BRANCH", "PROJECT", "DATABASE", ""]] + [
            [c["path"], c["branch"] or "(detached)", c["project"] or "-",
             c["database"] or "(the service's)",
             "main" if c["main"] else ("here" if c["current"] else "")]
            for c in facts["checkouts"] if c["exists"]], indent="  ")
    if facts["snapshots"]:
        out += ["", "=== Snapshots (in the server; `make db-rollback NAME=...`) ==="]
        out += table([["NAME", "TAKEN", "SIZE"]] + [
            [sn["name"], sn["taken"] or "-", human_size(sn["size_bytes"])]
            for sn in facts["snapshots"]], indent="  ")
    last = facts["journal"]["last"]
    if last:
        out += ["", "=== Journal (`make db-history`) ==="]
        out += [f"  #{e['id']} {e['command']} {e['target'].get('shown') or e['target'].get('name')}"
                f": {e['state']}" for e in last]
    out += ["", "=== Verdict ==="]
    if not facts["problems"]:
        out.append("OK: the active volume is the only one with this project's data, and the "
                   "project name is locked.")
    for pr in facts["problems"]:
        out.append(f"PROBLEM {pr['code']}: {pr['message']}")
        out += [f"    fix: {f}" for f in pr["fix"]]
    out += [f"note: {n}" for n in facts["notes"]]
    return "\n".join(out)


def copy_kept(copy: dict) -> str:
    kind = copy.get("kind")
    return {"database": f"snapshot {copy.get('snapshot')}",
            "made": f"(made snapshot {copy.get('snapshot')})",
            "absent": "(nothing existed)",
            "tar": copy.get("path", "").rsplit("/", 1)[-1],
            "volume": f"volume {copy.get('volume')}",
            "empty-store": "(was empty)", "no-store": "(did not exist)"}.get(kind, "none")


def history_table(entries: Sequence) -> list[str]:
    """The journal's operations (journal.Entry) as db-history lists them."""
    return table([["#", "STARTED", "COMMAND", "TARGET", "COPY KEPT", "STATE"]] + [
        [str(e.id), local_time(e.started), e.command,
         str(e.target.get("shown") or e.target.get("name")), copy_kept(e.copy), e.state]
        for e in entries])


def find_report(clusters: Sequence, project: str, active_label: str, engine_volumes: int
                ) -> str:
    """db-find's listing: each cluster with what it is, where it came from and the command that
    brings it back; copies of one cluster (one system identifier) share a number."""
    lines = [f"PostgreSQL clusters on this engine and in the project's folder "
             f"({plural(len(clusters), 'cluster')} among {plural(engine_volumes, 'volume')}; "
             f"active: {active_label}):", ""]
    if not any(c.active for c in clusters):
        lines += [f"  {active_label} (ACTIVE, project {project}) holds no cluster yet", ""]
    counts: dict[int, int] = {}
    for c in clusters:
        counts[c.group] = counts.get(c.group, 0) + 1
    for c in clusters:
        kind = c.kind + (", dangling: no container refers to it" if c.dangling else "")
        tags = [kind] + (["ACTIVE"] if c.active else []) + \
            ([f"protected by {c.keepers[0].name}"] if c.keepers else []) + \
            (["an UNFINISHED copy"] if c.incomplete else [])
        if c.labels.get("dbguard.upgrade-of"):
            tags.append(f"the old cluster kept by db-upgrade of {c.labels['dbguard.upgrade-of']}")
        copies = f", one of {counts[c.group]} copies of cluster #{c.group}" \
            if counts[c.group] > 1 else ""
        users = ", ".join(f"{u.name} ({u.state})" for u in c.users) or "no container"
        lines += [f"  #{c.group} {c.label}  [{'; '.join(tags)}]",
                  f"     PostgreSQL {c.pg_version} at {c.pg_path}, {human_size(c.size)}, last "
                  f"written {local_time(c.written)}, system identifier {c.system_id}{copies}",
                  f"     used by: {users}; project: {c.project or 'unknown'}"
                  + (f"; created {local_time(c.created)}" if c.created else "")]
        if c.bring_back:
            lines.append(f"     bring back: {c.bring_back}")
        lines.append("")
    if not clusters:
        lines.append("  no volume or folder holds a PostgreSQL cluster")
    return "\n".join(lines).rstrip() + "\n"


def clones_report(facts: dict) -> str:
    """db-clones' listing: the checkouts, the clones, and what removed checkouts left."""
    out = ["Checkouts of the repository:"]
    out += table([["PATH", "BRANCH", "PROJECT", "DATABASE", ""]] + [
        [c["path"], c["branch"] or "(detached)", c["project"] or "-", c["database"] or
         "(the service's)", "main" if c["main"] else ("here" if c["current"] else "")]
        for c in facts["checkouts"]], indent="  ") if facts["checkouts"] else \
        ["  (not in a git repository)"]
    out += ["", "Clones in the shared server (make db-clone):"]
    out += table([["NAME", "OF", "WORKTREE", "BRANCH", "AGE", "SIZE", "WORKTREE EXISTS"]] + [
        [c["name"], c["of"], c["worktree"], c["branch"], c["age"], human_size(c["size_bytes"]),
         "yes" if c["worktree_exists"] else "NO: make db-clones PRUNE=1"]
        for c in facts["clones"]], indent="  ") if facts["clones"] else ["  none"]
    if facts["gone_volumes"] or facts["kept"]:
        out += ["", "Volumes of removed checkouts:"]
        out += [f"  {v['volume']} ({human_size(v['size_bytes'])}, of {v['checkout']}): "
                "make db-clones PRUNE=1 removes it" for v in facts["gone_volumes"]]
        out += [f"  kept: {why}" for why in facts["kept"]]
    return "\n".join(out) + "\n"
