#!/usr/bin/env python3
"""Show which volume holds the database, spot "parallel universes", and say what to fix.

Reads only: the compose configuration, Docker's lists of volumes and containers, the contents
of each volume that may hold this project's data (through one throwaway container of the db
image: no network, read-only mounts, nothing pulled) and, when it answers, the server itself.
It changes nothing, and the number of docker calls does not grow with the volumes on the machine.

Problems it names, each with a stable code and the commands that fix it:
  PARALLEL_UNIVERSE        the active volume is missing, empty or fresh while another holds data
  PG_VERSION_MISMATCH      the volume's cluster was made by another PostgreSQL major version
  PG18_MOUNT_PATH          a postgres 18+ image with its volume at /var/lib/postgresql/data
  PGDATA_NOT_ON_VOLUME     the server's data directory is outside the volume
  PGDATA_ELSEWHERE         the volume's cluster is not where the server looks (PGDATA)
  INCOMPLETE_COPY          the active volume holds an unfinished copy (the journal names it)
  UPGRADE_INCOMPLETE       an unfinished db-upgrade: db-upgrade finishes it, db-undo reverses it
  INTERRUPTED_OPERATION    another command the journal records as unfinished, named exactly
  PROJECT_NAME_NOT_LOCKED  the project name comes from the directory name
  BACKUP_STALE             the newest dump is older than DBGUARD_BACKUP_MAX_AGE_DAYS
  DATABASE_CLOSED          the database refuses connections, and no dbguard command closed it

examples:
  make db-info
  make db-info JSON=1               the same facts as JSON on stdout
  make db-info CHECK=1              exit 1 when a problem is found (scripts, CI)
  python scripts/db_info.py --json --check
"""
from __future__ import annotations

import json
import sys

from dbguard.backups import backup_summary, render_backup_summary
from dbguard.catalog import summary
from dbguard.cli import entrypoint, parser
from dbguard.db_snapshots import list_snapshots
from dbguard.diagnosis import backup_problems, database_findings, diagnose
from dbguard.errors import EXIT_FAILED, EXIT_OK, Failure
from dbguard.kit import Kit, lock_held, open_kit
from dbguard.messages import human_size, plural, table
from dbguard.names import directory_project_names
from dbguard.volumes import Volume, effective_pgdata, volume_table


def collect(kit: Kit) -> tuple[dict, list[Volume]]:
    """The facts db-info shows (the JSON document) and the volumes they were read from."""
    s, p = kit.settings, kit.project
    volumes = kit.scan()
    running = lock_held(s)  # a command at work now: what it has open is not interrupted
    unsettled = [] if running else kit.journal.open_entries()
    problems, notes = diagnose(p, kit.image, volumes, unsettled=unsettled)
    backups = backup_summary(s, kit.db)
    problems += backup_problems(s, backups, kit.active(volumes))
    container = kit.service_container()
    database = summary(kit.server(container), kit.db) \
        if container and container.state == "running" else {
            "reachable": False, "error": "the service is not running"}
    snapshots = []
    if database.get("reachable"):
        try:
            snapshots = [sn.to_json() for sn in list_snapshots(kit.server(container), kit.db)]
        except Failure:
            pass
    found, remarks = database_findings(kit.db, database, unsettled)
    problems, notes = problems + found, notes + remarks
    if running:
        notes.append(f"a dbguard command is running now ({running})")
    names = directory_project_names(p.directory.name)
    facts = {
        "compose": {"command": kit.compose.command, "version": kit.compose.version,
                    "flavor": "v2" if kit.compose.v2 else "v1",
                    "files": [str(f) for f in s.compose_files]},
        "project": {"name": p.name, "source": p.name_source, "locked": p.locked,
                    "directory": str(p.directory), "names_from_directory": names},
        "service": {"name": p.service, "image": p.image, "image_present": kit.image.present,
                    "image_pg_major": kit.image.pg_major, "data_mount": p.mount_target,
                    "pgdata": effective_pgdata(p, kit.image),
                    "data_kind": "folder" if p.folder else "volume"},
        "volume_key": p.volume_key,
        "active_volume": p.volume,
        "volumes": [v.to_json() for v in volumes],
        "connection": connection(kit),
        "container": None if container is None else {
            "name": container.name, "state": container.state, "status": container.status,
            "ports": container.ports},
        "database": database,
        "backups": backups,
        "snapshots": snapshots,
        "problems": [pr.to_json() for pr in problems],
        "notes": notes,
        "journal": {"open": [e.to_json() for e in unsettled],
                    "last": [e.to_json() for e in kit.journal.entries()[-3:]]},
    }
    return facts, volumes


def connection(kit: Kit) -> dict:
    """What the application uses to connect (the kit itself works inside the container)."""
    s = kit.settings
    where = kit.endpoint()
    return {"host": where[0] if where else None, "port": where[1] if where else None,
            "name": s.db_name, "user": s.db_user, "password": "********"}


def render(facts: dict, volumes: list[Volume]) -> str:
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


@entrypoint
def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, dry_run=False, db=True)
    ap.add_argument("--json", action="store_true", help="print the facts as JSON on stdout")
    ap.add_argument("--check", action="store_true", help="exit 1 when a problem is found")
    args = ap.parse_args(argv)
    facts, volumes = collect(open_kit(args))
    print(json.dumps(facts, indent=2) if args.json else render(facts, volumes))
    return EXIT_FAILED if args.check and facts["problems"] else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
