"""What db-info shows, gathered once: the project, every candidate volume and folder with its
contents, the live server's databases, the backups, the snapshots, the journal, and the verdict
(diagnosis). Reads only: nothing here changes anything, and no lock is taken (a command at work
is named as running, its open operation not as interrupted).
"""
from __future__ import annotations

from pathlib import Path

from .backups import backup_summary
from .catalog import questions, summary
from .db_snapshots import list_snapshots, snapshot_questions
from .collation import drift_questions, drifted
from .diagnosis import (backup_problems, collation_problems, database_findings, diagnose,
                        stranded_problems)
from .checkouts import checkout_notes, checkouts, other_clones, others
from .docker import list_containers
from .errors import Failure
from .find import stranded
from .gitinfo import cleaned_by_git
from .kit import Kit, lock_held
from .names import directory_project_names
from .settings import COMPOSE_NAMES
from .volumes import Volume, effective_pgdata


def collect(kit: Kit) -> tuple[dict, list[Volume]]:
    """The facts db-info shows (the JSON document) and the volumes they were read from."""
    s, p = kit.settings, kit.project
    volumes = kit.scan()
    running = lock_held(s)  # a command at work now: what it has open is not interrupted
    unsettled = [] if running else kit.journal.open_entries()
    cleaned = cleaned_by_git(Path(p.volume)) if p.folder else None
    problems, notes = diagnose(p, kit.image, volumes, unsettled=unsettled, cleaned_by=cleaned,
                               checkouts=others(s.project_dir, s.root))
    active = kit.active(volumes)
    elsewhere = []
    if not active.has_cluster and kit.image.present and not p.anonymous:
        known = {v.name for v in volumes} | set(s.ignore_volumes)
        try:
            elsewhere = [c for c in stranded(kit, kit.image.pg_major) if c.name not in known]
        except Failure as e:  # the engine changed under the scan: db-info still answers
            notes.append(f"could not look for clusters elsewhere on the engine ({e.message}); "
                         "`make db-find` tries again")
        problems += stranded_problems(active, elsewhere, kit.image.pg_major)
    backups = backup_summary(s, kit.db)
    problems += backup_problems(s, backups, kit.active(volumes))
    container = kit.service_container()
    server = kit.server(container) if container and container.state == "running" else None
    database = {"reachable": False, "error": "the service is not running"}
    snapshots, drifts = [], []
    if server:  # what db-info asks the server, read through two psql runs instead of seven
        with server.ahead(questions(server, kit.db) + snapshot_questions(server, kit.db)
                          + drift_questions(server, kit.db)):
            database = summary(server, kit.db)
            if database.get("reachable"):
                try:
                    snapshots = [sn.to_json() for sn in list_snapshots(server, kit.db)]
                    drifts = drifted(server, kit.db)
                except Failure:
                    pass
    problems += collation_problems(drifts)
    found, remarks = database_findings(kit.db, database, unsettled)
    problems, notes = problems + found, notes + remarks
    if running:
        notes.append(f"a dbguard command is running now ({running})")
    names = directory_project_names(p.directory.name)
    repo = checkouts(s.project_dir, s.root, COMPOSE_NAMES)
    if repo:
        dirs = {c.working_dir: c.project for c in list_containers(kit.runner)
                if c.working_dir and c.project and not c.helper}
        repo += other_clones(s.project_dir, repo, dirs)
        notes += checkout_notes(repo, p.name)
    facts = {
        "compose": {"command": kit.compose.command, "version": kit.compose.shown_version(),
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
        "protection": protection(p, active),
        "stranded": [c.to_json() for c in elsewhere],
        "checkouts": [c.to_json() for c in repo],
        "snapshots": snapshots,
        "collation_drift": [d.to_json() for d in drifts],
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


def protection(project, active: Volume) -> dict:
    """Whether Docker's one-keystroke commands (`down -v`, `volume rm`, the prunes) can remove
    the active volume: a keeper of db-protect refers to it, or it is a folder."""
    if project.folder:
        return {"kind": "folder", "protected": True, "keepers": []}
    keepers = [c for c in active.keepers if c.state == "running"]
    return {"kind": "volume", "protected": bool(keepers),
            "keepers": [{"name": c.name, "state": c.state} for c in active.keepers]}
