"""The verdict on what discovery found: problems, each with a stable code, the commands that fix
it and whether db-up must refuse to start while it stands; and notes. Pure: it reads only the
facts it is given.
"""
from __future__ import annotations

import os

from .compose import Project
from .docker import ImageInfo
from .journal import Entry
from .messages import human_age, human_size
from .names import LABEL_PROJECT, scratch_database, trash_database
from .layout import Problem, layout_problem
from .settings import Settings
from .volumes import Volume, effective_pgdata, pgdata_in_volume


def old_project_of(volume: Volume, project: Project) -> str | None:
    if volume.project_label:
        return volume.project_label
    suffix = "_" + project.volume_key
    return volume.name[:-len(suffix)] if volume.name.endswith(suffix) else None


def diagnose(project: Project, image: ImageInfo, volumes: list[Volume],
             allow_new_volume_hint: bool = True, unsettled: list[Entry] = (),
             cleaned_by: str | None = None, checkouts: dict[str, str] | None = None
             ) -> tuple[list[Problem], list[str]]:
    """The verdict: problems (each with a stable code and the commands that fix it) and notes.
    Pure: it reads only what the inspection found. `checkouts`: the other checkouts of the
    project's repository (folder: the Compose project it resolves to); a volume whose container
    ran from one of them is this repository's data, not a neighbour's."""
    problems: list[Problem] = []
    notes: list[str] = []
    checkouts = checkouts or {}
    active = next(v for v in volumes if v.active)
    by_project = {name: path for path, name in checkouts.items() if name != project.name}
    ours = {v.name: v.elsewhere for v in volumes if v.elsewhere and
            os.path.realpath(v.elsewhere) in checkouts}
    ours.update({v.name: by_project[v.project_label] for v in volumes if not v.active
                 and v.project_label in by_project and v.name not in ours})
    others = [v for v in volumes if not v.active and (not v.elsewhere or v.name in ours)]
    for v in volumes:
        if v.elsewhere and not v.active and v.name not in ours:
            notes.append(f"{v.name} belongs to the project in {v.elsewhere} (a container of it "
                         "ran from there), so it is left out of the comparison")
    inspected = all(v.size is not None for v in volumes if v.exists)

    if project.folder:
        notes.append(f"the data is in the folder {active.label} (a bind mount at "
                     f"{project.mount_target}): renaming or moving the project's folder moves "
                     "it along, and the project keeps its data; a new path in the compose file "
                     "(a folder per major, say) or an emptied folder does not, and db-up "
                     "refuses those while another folder or volume of the project holds the "
                     "cluster")
        if cleaned_by and active.has_cluster:
            problems.append(Problem(
                "DATA_IN_WORK_TREE",
                f"the cluster's folder {active.label} sits untracked in the git work tree: "
                f"`{cleaned_by}` deletes it, with every row",
                [f"keep the data outside the work tree: mount a named volume instead, then "
                 f"make db-migrate-volume FROM={active.label}",
                 "and dump it: make db-dump"]))
    if not project.locked:
        problems.append(Problem(
            "PROJECT_NAME_NOT_LOCKED",
            f"the project name {project.name!r} comes from the directory name "
            f"{project.directory.name!r}: renaming or moving the directory silently switches to "
            f"a new, empty volume",
            [f"lock the name it has today: `name: {project.name}` as the first line of the "
             "compose file (Compose v2; committed, it holds for every clone and for plain "
             "`docker compose`; `make kit-install` does this)",
             f"or echo 'COMPOSE_PROJECT_NAME={project.name}' >> .env   (Compose v1 too; .env "
             "is often not committed)"]))

    where = pgdata_in_volume(project, image)
    layout = layout_problem(project, image)
    if layout:
        problems.append(layout)

    problems += unsettled_problems(active, unsettled)

    if active.has_cluster and image.pg_major and active.pg_major and \
            active.pg_major != image.pg_major:
        problems.append(Problem(
            "PG_VERSION_MISMATCH",
            f"the cluster in {active.name} was made by PostgreSQL {active.pg_major} but the "
            f"image {image.ref} runs {image.pg_major}: the server would exit with \"database "
            "files are incompatible with server\". Copying the volume cannot fix that",
            ([f"make db-upgrade   (moves the data to {image.pg_major}: keeps the "
              f"{active.pg_major} cluster in a volume of its own, dumps it with its own image, "
              "loads it into a new cluster, compares every table)"]
             if image.pg_major > active.pg_major else []) +
            [f"or go back to a {active.pg_major} image (the service's image; DB_IMAGE in "
             ".env for the kit's own compose file)"], blocking=True))

    if where is not None and active.has_cluster and active.pg_path and \
            os.path.normpath(active.pg_path) != os.path.normpath(where) and \
            (not image.pg_major or active.pg_major == image.pg_major):
        problems.append(Problem(
            "PGDATA_ELSEWHERE",
            f"the cluster in {active.name} is in {os.path.normpath(active.pg_path)!r} but the "
            f"server looks for it in {os.path.normpath(where)!r} (PGDATA "
            f"{effective_pgdata(project, image)}): it would initialise a new, empty cluster "
            "beside your data",
            [f"set PGDATA in the compose file to {in_container(project, active.pg_path)} "
             "(the folder that holds the cluster)",
             "or move the data with make db-dump, then make db-restore into the new layout"],
            blocking=True))

    with_data = [v for v in others if v.has_cluster]
    fresh = active.exists and inspected and not active.has_user_data
    if with_data and (not active.exists or (inspected and not active.has_cluster)):
        state = "does not exist yet" if not active.exists else "holds no PostgreSQL cluster"
        problems.append(parallel_universe(project, active, with_data, state,
                                          allow_new_volume_hint, blocking=True,
                                          checkout=ours))
    elif with_data and active.has_cluster and fresh and any(v.has_user_data for v in with_data):
        problems.append(parallel_universe(
            project, active, [v for v in with_data if v.has_user_data],
            "holds a freshly initialised cluster with no tables", allow_new_volume_hint))
    elif with_data and active.has_cluster and inspected:
        older = [v for v in with_data if v.system_id != active.system_id and v.has_user_data
                 and (v.created or "") < (active.created or "")
                 and (v.user_bytes or 0) > (active.user_bytes or 0)]
        if older:
            problems.append(parallel_universe(
                project, active, older,
                "holds a separate cluster, newer and with less data than an older volume",
                allow_new_volume_hint))
    for v in others:
        if v.has_cluster and v.system_id and v.system_id == active.system_id:
            notes.append(f"{v.name} holds a copy of the active cluster (same system "
                         f"identifier); once you no longer need it: docker volume rm {v.name}")
    if active.exists and not active.folder and LABEL_PROJECT not in active.labels:
        notes.append(f"{active.name} was not created by Docker Compose (no labels); Compose "
                     "warns about it but uses it")
    elif active.exists and not active.folder and active.project_label != project.name:
        notes.append(f"{active.name} carries the label of project {active.project_label!r}; "
                     "Compose warns about it but uses it")
    if not image.present:
        notes.append(f"the image {image.ref} is not present locally, so the volumes' contents "
                     "were not read (db-up pulls it)")
    return problems, notes


def unsettled_problems(active: Volume, unsettled: list[Entry]) -> list[Problem]:
    """What the journal says is unfinished on the active volume or folder, and the unfinished
    copy its mark says it holds: each blocks db-up, with the commands that finish or reverse
    it."""
    problems = []
    mine = [e for e in unsettled if e.target.get("name") == active.name]
    for e in mine:
        finish, reverse = e.finish_and_reverse()
        code = "UPGRADE_INCOMPLETE" if e.command == "db-upgrade" else \
            "INCOMPLETE_COPY" if active.incomplete else "INTERRUPTED_OPERATION"
        kept = f"; the old cluster is intact in {e.copy.get('volume')}" \
            if e.command == "db-upgrade" else ""
        problems.append(Problem(code, f"{e.describe()}{kept}; nothing may start on "
                                      f"{active.label} until it is finished or reversed",
                                [f"{finish}   (finishes it)", f"or {reverse}   (reverses it)"],
                                blocking=True))
    if active.incomplete and not mine:
        problems.append(Problem(
            "INCOMPLETE_COPY",
            f"the active {active.kind} {active.label} holds an unfinished copy (its mark "
            "says so; this kit's journal has no record of it: another checkout's kit, or an "
            "older version of the kit, made it); its contents cannot be trusted",
            ["make db-migrate-volume FROM=<the source>   (copies again)"], blocking=True))
    return problems


def in_container(project: Project, pg_path: str) -> str:
    """A folder in the volume, as the database container sees it."""
    inside = os.path.normpath(pg_path)
    mount = project.mount_target.rstrip("/")
    return mount if inside == "." else f"{mount}/{inside}"


def parallel_universe(project: Project, active: Volume, holders: list[Volume], state: str,
                      allow_new_hint: bool, blocking: bool = False,
                      checkout: dict[str, str] | None = None) -> Problem:
    names = ", ".join(v.label for v in holders)
    fix = []
    checkout = checkout or {}
    twin = len(holders) == 1 and holders[0].name in checkout
    if twin:  # a worktree with a project of its own, beside the checkout it came from
        holder = holders[0]
        origin = checkout[holder.name]
        names = f"{holder.label} (the data of the checkout {origin}: this checkout resolves " \
                f"to a Compose project of its own, {project.name!r}, so a new empty volume)"
        fix.append(f"make db-up SEED=1   (a verified copy of {holder.label} into "
                   f"{active.label}; the server of {origin} is stopped for the copy and "
                   "started again)")
        fix.append(f"or share that checkout's server: set COMPOSE_PROJECT_NAME="
                   f"{old_project_of(holder, project)} in this checkout's .env, then make "
                   "db-clone   (a database of its own in it)")
    elif len(holders) == 1:
        holder = holders[0]
        fix.append(f"make db-migrate-volume FROM={holder.label}   (copy that data into "
                   f"{active.label})")
        old = None if holder.folder else old_project_of(holder, project)
        if holder.folder:
            fix.append(f"or point the compose file's mount back at {holder.label}   (use the "
                       "folder as it is)")
        elif old and old != project.name:
            fix.append(f"or set COMPOSE_PROJECT_NAME={old} in .env   (use the old volume as "
                       "it is)")
    else:
        fix.append("make db-migrate-volume FROM=<volume or folder>   (copy one of them into "
                   f"{active.label})")
        fix.append("or set COMPOSE_PROJECT_NAME in .env to the project of the one to use")
    if allow_new_hint and blocking:
        fix.append("or make db-up ALLOW_NEW_VOLUME=1   (start with an empty database anyway)")
    elif not blocking:
        fix.append("or, if the active volume is the right one, leave the others out: add them "
                   "to DBGUARD_IGNORE_VOLUMES in .env")
    return Problem("PARALLEL_UNIVERSE",
                   f"the active {active.kind} {active.label} {state}, while {names} "
                   f"{'holds' if len(holders) == 1 else 'hold'} a PostgreSQL cluster with data",
                   fix, blocking, subject=holders[0].name if twin else "")


def backup_problems(settings: Settings, summary: dict, active: Volume) -> list[Problem]:
    limit = settings.backup_max_age_days
    if not limit:
        return []
    newest = summary["newest"]
    if newest is None:
        if not active.has_user_data:
            return []
        return [Problem("BACKUP_STALE", "the database has tables but there is no dump of it",
                        ["make db-dump"])]
    if newest["age_seconds"] > limit * 86400:
        return [Problem("BACKUP_STALE",
                        f"the newest dump is {human_age(newest['age_seconds'])} (older than "
                        f"DBGUARD_BACKUP_MAX_AGE_DAYS={limit})", ["make db-dump"])]
    return []


def database_findings(db: str, database: dict, unsettled: list[Entry]
                      ) -> tuple[list[Problem], list[str]]:
    """What the live server's summary (catalog.summary) says beyond the volumes, read with the
    journal: an interrupted change inside the server is named as what it was."""
    if not database.get("reachable"):
        return [], []
    problems, notes = [], []
    inside = [e for e in unsettled if e.target.get("kind") == "database"]
    for e in inside:
        problems.append(Problem(
            "INTERRUPTED_OPERATION", f"{e.describe()}: the data is as before or as asked (each "
            "change inside the server is one transaction), but a database may be closed to "
            "connections or a half-made copy left",
            ["make db-up   (settles it: reopens, drops the half-made copy, as the journal "
             "records)"]))
    named = {e.facts.get("db") or e.target.get("name") for e in inside}
    if database.get("closed") and db not in named:
        problems.append(Problem(
            "DATABASE_CLOSED",
            f"database {db!r} refuses connections (datallowconn is off), and no dbguard "
            "command in the journal closed it: someone closed it by hand",
            [f"make db-shell, then: ALTER DATABASE \"{db}\" WITH ALLOW_CONNECTIONS true;"]))
    for d in database.get("databases", []):
        if d["name"] in (scratch_database(db), trash_database(db)) and db not in named:
            notes.append(f"database {d['name']!r} is named like the kit's half-made copies, "
                         "but the journal records no unfinished command that made it")
    return problems, notes


def stranded_problems(active: Volume, elsewhere: list, major: int | None) -> list[Problem]:
    """The active volume or folder holds no cluster while volumes elsewhere on the engine (not
    this project's by name or label: an anonymous volume, another project's, a dangling one)
    hold one of the image's major (find.Cluster, most recently written first)."""
    if not elsewhere:
        return []
    newest = elsewhere[0]
    shown = "; ".join(f"{c.label} ({c.kind}{', dangling' if c.dangling else ''}, PostgreSQL "
                      f"{c.pg_version}, {human_size(c.size)}, project {c.project or 'unknown'})"
                      for c in elsewhere[:3])
    more = f" and {len(elsewhere) - 3} more" if len(elsewhere) > 3 else ""
    return [Problem(
        "STRANDED_CLUSTERS",
        f"{active.label} holds no cluster, but {len(elsewhere)} volume(s) or folder(s) elsewhere "
        f"on this engine hold a PostgreSQL {major or ''} cluster: {shown}{more}".replace("  ", " "),
        ["make db-find   (lists them with sizes, last writes and who uses them)",
         f"make db-migrate-volume FROM={newest.name if newest.kind != 'folder' else newest.label}"
         "   (copies the most recently written one in, with a question first)"])]


def collation_problems(drifts: list) -> list[Problem]:
    """Databases whose collation changed under them (collation.Drift), each with the indexes
    that may now be in the wrong order."""
    problems = []
    for d in drifts:
        shown = ", ".join(i["name"] for i in d.indexes[:5]) + \
            (f" and {len(d.indexes) - 5} more" if len(d.indexes) > 5 else "")
        problems.append(Problem(
            "COLLATION_DRIFT",
            f"database {d.db!r}: {d.describe()}; text may sort differently now, and "
            + (f"{len(d.indexes)} index(es) built under the old order may be wrong: {shown}"
               if d.indexes else "no index depends on it"),
            [f"make db-reindex DB={d.db}   (snapshot, check, rebuild, then record the new "
             "version)",
             "or go back to the image the database was made under"]))
    return problems
