"""Where the server's cluster will live, worked out from the compose file and the image before
anything starts: the image's PGDATA, its VOLUMEs (each an anonymous volume unless the service
mounts something at exactly that path) and the service's mounts. A cluster that would land
anywhere but a named volume or a folder is a problem that blocks db-up, with the mount line to
write. Pure: it reads only the facts it is given.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .compose import Project
from .docker import ImageInfo
from .volumes import effective_pgdata


@dataclass(frozen=True)
class Problem:
    code: str
    message: str
    fix: list[str]
    blocking: bool = False  # db-up refuses to start while it stands
    subject: str = ""       # the volume or folder its first fix copies from, if any

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def covering_mount(project: Project, image: ImageInfo) -> tuple[str, str, str] | None:
    """The mount the server's cluster (PGDATA) lands in: the deepest of the service's mounts
    and of the image's VOLUMEs (Docker gives each an anonymous volume unless the service mounts
    something at exactly that path) that holds PGDATA; None: the container's own layer."""
    pgdata = effective_pgdata(project, image).rstrip("/")
    given = project.mounts or ((("bind" if project.folder else "volume"),
                                project.volume,
                                project.mount_target),)
    mounts = [(kind, source, target.rstrip("/")) for kind, source, target in given if target]
    taken = {target for _, _, target in mounts}
    mounts += [("image", "", v.rstrip("/")) for v in image.volumes if v.rstrip("/") not in taken]
    covering = [m for m in mounts if pgdata == m[2] or pgdata.startswith(m[2] + "/")]
    return max(covering, key=lambda m: len(m[2])) if covering else None


def layout_problem(project: Project, image: ImageInfo) -> Problem | None:
    """Where the cluster would live, worked out before anything starts: a named volume or a
    folder, or else a problem that blocks db-up (an anonymous volume `down -v` and `volume
    prune` delete and a new container does not reuse, a tmpfs, the container's own layer),
    with the mount line to write."""
    pgdata = effective_pgdata(project, image).rstrip("/")
    mount = covering_mount(project, image)
    if mount and mount[0] in ("volume", "bind") and mount[1]:
        return None
    key = project.volume_key or ("the data folder" if project.folder else "pgdata")
    target = project.mount_target.rstrip("/")
    if image.pg_major and image.pg_major >= 18 and target == "/var/lib/postgresql/data":
        return Problem(
            "PG18_MOUNT_PATH",
            f"the image runs PostgreSQL {image.pg_major}, whose data directory is {pgdata}, but "
            f"the volume {key!r} is mounted at /var/lib/postgresql/data: from 18 on the image "
            "expects the volume at /var/lib/postgresql, and refuses to start (or writes outside "
            "the volume)",
            [f"in the compose file, mount `{key}:/var/lib/postgresql` instead of `.../data`",
             "if the volume holds an older cluster: make db-upgrade moves it (and the mount)"],
            blocking=True)
    lands = "the container's own layer (lost with the container)" if mount is None else \
        f"a tmpfs at {mount[2]} (lost at every stop)" if mount[0] == "tmpfs" else \
        f"an anonymous volume at {mount[2]} (`docker compose down -v` and `docker volume " \
        "prune` delete it, and a new container starts empty)"
    if target and mount and target.startswith(mount[2] + "/"):
        why = f"{key!r} is mounted at {target}, below PGDATA {pgdata}"
        fix = [f"mount `{key}:{pgdata}` instead of `{key}:{target}`",
               f"or set PGDATA={target} in the service's environment"]
    elif target and mount:
        why = f"{key!r} is mounted at {target}, above the image's VOLUME {mount[2]}, which " \
              "Docker fills with an anonymous volume"
        fix = [f"mount `{key}:{mount[2]}` instead of `{key}:{target}`",
               f"or set PGDATA={target}/pgdata in the service's environment (outside "
               f"{mount[2]})"]
    elif target:
        why = f"{key!r} is mounted at {target}, which does not hold PGDATA {pgdata}"
        fix = [f"mount `{key}:{pgdata}`", f"or set PGDATA to a folder under {target}"]
    else:
        why = "no named volume or folder is mounted where the server keeps it"
        place = mount[2] if mount and mount[0] != "image" else pgdata
        fix = [f"mount `pgdata:{place}` (a named volume: `- pgdata:{place}` under the service's "
               "`volumes:`, and `pgdata:` under the top-level `volumes:`)"]
    return Problem("PGDATA_NOT_ON_VOLUME",
                   f"the server's cluster (PGDATA {pgdata}) would land in {lands}: {why}",
                   fix, blocking=True)
