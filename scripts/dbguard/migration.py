"""db-migrate-volume's decisions, made before anything changes: which volume to copy from, every
reason to refuse, what to stop and whether the target needs a snapshot; and, after a failed
copy, starting again what was stopped. Reads volumes and containers; changes none of them
(starting stopped containers again aside).
"""
from __future__ import annotations

from .docker import Container
from .errors import Failure, Refusal, UsageError
from .kit import Kit
from .messages import info, warning
from .service import RUNNING_STATES, start_service
from .volumes import Volume, pgdata_in_volume


def pick_source(kit: Kit, volumes: list[Volume], wanted: str | None) -> Volume:
    target = next(v for v in volumes if v.active)
    if wanted:
        found = next((v for v in volumes if v.name == wanted), None)
        if found is None:
            raise UsageError(f"there is no volume named {wanted!r}",
                             "`make db-info` lists the candidates; pass one with FROM=")
        return found
    holders = [v for v in volumes if not v.active and v.has_cluster]
    if len(holders) == 1:
        return holders[0]
    if not holders:
        raise Refusal(f"no other volume of {kit.project.volume_key!r} holds a PostgreSQL "
                      "cluster, so there is nothing to copy into " + target.name,
                      "Name the source with FROM=<volume> if it is named otherwise; nothing "
                      "was changed")
    raise Refusal(f"{len(holders)} volumes hold a cluster: "
                  + ", ".join(f"{v.name} ({v.describe()})" for v in holders),
                  "Name the one to copy with FROM=<volume>; nothing was changed")


def preflight(kit: Kit, source: Volume, target: Volume, force: bool) -> list[str]:
    """Every reason to refuse, collected at once."""
    reasons = []
    if source.name == target.name:
        reasons.append(f"the source {source.name} is the active volume itself")
        return reasons
    if not source.has_cluster:
        reasons.append(f"{source.name} holds no PostgreSQL cluster (no PG_VERSION)")
    if source.incomplete:
        reasons.append(f"{source.name} holds an unfinished copy itself")
    if source.has_cluster and kit.image.pg_major and source.pg_major != kit.image.pg_major:
        reasons.append(
            f"{source.name} holds a PostgreSQL {source.pg_major} cluster but the image runs "
            f"{kit.image.pg_major}; copying files cannot change that (the server would refuse "
            f"them). Dump it with a {source.pg_major} image (DB_IMAGE), then make db-restore "
            f"on {kit.image.pg_major}, or use pg_upgrade")
    if pgdata_in_volume(kit.project, kit.image) is None:
        reasons.append("the image keeps its data outside the volume (see `make db-info`)")
    if not force:
        foreign = {c.name for v in (source, target) for c in v.users
                   if c.project != kit.project.name and c.state in RUNNING_STATES}
        if foreign:
            reasons.append(f"{', '.join(sorted(foreign))} (not of project {kit.project.name}) "
                           "is running on one of the volumes; --force (FORCE=1) stops it too")
    return reasons


def plan_copy(kit: Kit, volumes: list[Volume], args, source_name: str | None = None
              ) -> tuple[Volume, Volume, list[Container], bool]:
    """The source, the target, the containers to stop and whether the target needs a snapshot;
    Refusal when any precondition fails."""
    target = next(v for v in volumes if v.active)
    source = pick_source(kit, volumes, source_name or args.source)
    reasons = preflight(kit, source, target, args.force)
    if reasons:
        details = [f"  - {r}" for r in reasons]
        raise Refusal(f"refusing to copy {source.name} into {target.name}: {reasons[0]}",
                      "Nothing was changed", details if len(reasons) > 1 else [])
    stops = list({c.id: c for v in (source, target) for c in v.users
                  if c.state in RUNNING_STATES}.values())
    return source, target, stops, target.exists and bool(target.entries) and not target.incomplete


def start_again(kit: Kit, stopped: list[Container]) -> None:
    """After a failed copy: the target was put back as it was, so what was stopped for the
    copy runs again. Not when the target still carries the unfinished-copy mark."""
    if not stopped:
        return
    active = next(v for v in kit.scan() if v.active)
    if active.incomplete:
        warning(f"{active.name} still carries the unfinished-copy mark, so "
                f"{', '.join(c.name for c in stopped)} stay stopped")
        return
    info("starting again what the copy stopped: " + ", ".join(c.name for c in stopped))
    others = [c.id for c in stopped if (c.project, c.service) !=
              (kit.project.name, kit.project.service)]
    try:
        if others:
            kit.runner(["docker", "start", *others])
        if len(others) < len(stopped):
            start_service(kit)  # and wait until it is healthy, as db-up does
    except Failure as exc:
        warning(f"starting them again failed ({exc.message}); `make db-up` starts the database")
