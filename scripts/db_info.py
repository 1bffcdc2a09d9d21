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
  INCOMPLETE_COPY          the active volume holds an interrupted db-migrate-volume copy
  UPGRADE_INCOMPLETE       an interrupted db-upgrade: db-upgrade finishes it, UNDO=1 undoes it
  PROJECT_NAME_NOT_LOCKED  the project name comes from the directory name
  BACKUP_STALE             the newest dump is older than DBGUARD_BACKUP_MAX_AGE_DAYS
  DATABASE_CLOSED          an interrupted restore left the database closed to connections

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
from dbguard.cli import entrypoint, parser
from dbguard.diagnosis import backup_problems, database_findings, diagnose
from dbguard.errors import EXIT_FAILED, EXIT_OK
from dbguard.kit import Kit, open_kit
from dbguard.db_snapshots import list_snapshots
from dbguard.messages import human_size, plural, table
from dbguard.names import directory_project_names
from dbguard.postgres import database_summary, maintenance_connection
from dbguard.upgrade import upgrade_in_progress
from dbguard.volumes import Volume, effective_pgdata, volume_table


def database_snapshots(settings) -> list[dict]:
    """The configured database's snapshots (db-snapshot), or none when they cannot be read."""
    from psycopg import Error as PsycopgError

    try:
        with maintenance_connection(settings) as conn:
            return [sn.to_json() for sn in list_snapshots(conn, settings.db_name)]
    except PsycopgError:
        return []


def collect(kit: Kit) -> tuple[dict, list[Volume]]:
    """The facts db-info shows (the JSON document) and the volumes they were read from."""
    s, p = kit.settings, kit.project
    volumes = kit.scan()
    problems, notes = diagnose(p, kit.image, volumes, upgrade=upgrade_in_progress(kit))
    backups = backup_summary(s)
    problems += backup_problems(s, backups, next(v for v in volumes if v.active))
    container = kit.service_container()
    database = database_summary(s) if container and container.state == "running" else {
        "reachable": False, "error": "the service is not running"}
    snapshots = database_snapshots(s) if database.get("reachable") else []
    found, remarks = database_findings(s, database)
    problems, notes = problems + found, notes + remarks
    names = directory_project_names(p.directory.name)
    facts = {
        "compose": {"command": kit.compose.command, "version": kit.compose.version,
                    "flavor": kit.compose.flavor,
                    "files": [str(f) for f in s.compose_files]},
        "project": {"name": p.name, "source": p.name_source, "locked": p.locked,
                    "directory": str(p.directory), "names_from_directory": names},
        "service": {"name": p.service, "image": p.image, "image_present": kit.image.present,
                    "image_pg_major": kit.image.pg_major, "data_mount": p.mount_target,
                    "pgdata": effective_pgdata(p, kit.image)},
        "volume_key": p.volume_key,
        "active_volume": p.volume,
        "volumes": [v.to_json() for v in volumes],
        "connection": {"host": s.db_host, "port": s.db_port, "name": s.db_name,
                       "user": s.db_user, "password": "********"},
        "container": None if container is None else {
            "name": container.name, "state": container.state, "status": container.status,
            "ports": container.ports},
        "database": database,
        "backups": backups,
        "snapshots": snapshots,
        "problems": [pr.to_json() for pr in problems],
        "notes": notes,
    }
    return facts, volumes


def render(facts: dict, volumes: list[Volume]) -> str:
    p, svc = facts["project"], facts["service"]
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
           f"Active Volume:   {facts['active_volume']} (key {facts['volume_key']}, mounted at "
           f"{svc['data_mount']})",
           "", f"=== All {facts['volume_key']} Volumes ===",
           *volume_table(volumes),
           "", "=== Database Connection Details ===",
           f"DB Host:         {c['host'] or '(the container, once it runs)'}",
           f"DB Port:         {c['port'] or '(its published port, else 5432 on its address)'}",
           f"DB Name:         {c['name']}", f"DB User:         {c['user']}",
           f"DB Password:     {c['password']}",
           "", "=== Container Status ==="]
    cont = facts["container"]
    out.append("  (no container; `make db-up` starts one)" if cont is None else
               f"  {cont['name']}   {cont['status']}   {cont['ports'] or '-'}")
    out += ["", "=== Database Contents ==="]
    if db["reachable"]:
        dbs = ", ".join(f"{d['name']} ({human_size(d['size_bytes'])})" for d in db["databases"])
        out += [f"  Server:     PostgreSQL {db['server_version']}",
                f"  Databases:  {dbs}",
                f"  {c['name']}: CLOSED to connections" if db["closed"] else
                f"  {c['name']}: {plural(db['tables'], 'table')}, about "
                f"{plural(db['rows_estimate'], 'row')}, {human_size(db['size_bytes'])}"]
    else:
        where = f" at {c['host']}:{c['port']}" if c["host"] else ""
        out.append(f"  not reachable{where}: {db['error']}")
    out += ["", "=== Backups ===", *render_backup_summary(facts["backups"])]
    if facts["snapshots"]:
        out += ["", "=== Snapshots (in the server; `make db-rollback NAME=...`) ==="]
        out += table([["NAME", "TAKEN", "SIZE"]] + [
            [sn["name"], sn["taken"] or "-", human_size(sn["size_bytes"])]
            for sn in facts["snapshots"]], indent="  ")
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
    ap = parser(__doc__, dry_run=False)
    ap.add_argument("--json", action="store_true", help="print the facts as JSON on stdout")
    ap.add_argument("--check", action="store_true", help="exit 1 when a problem is found")
    args = ap.parse_args(argv)
    facts, volumes = collect(open_kit(args))
    print(json.dumps(facts, indent=2) if args.json else render(facts, volumes))
    return EXIT_FAILED if args.check and facts["problems"] else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
