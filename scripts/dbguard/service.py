"""The database service's life: start it (`compose up -d`) and wait until it is healthy, stop the
containers that use a volume, and clear away helper containers a killed run of this project
left. Stops and starts containers; never touches a volume.
"""
from __future__ import annotations

import os

import time
from collections.abc import Iterable

from .docker import Container, container_state, list_containers
from .errors import Failure, Refusal
from .messages import info
from .kit import Kit
from .runner import command_failure

# A container in one of these states may write to its volumes.
RUNNING_STATES = ("running", "restarting", "paused")


def service_logs(kit: Kit, lines: int = 20) -> list[str]:
    result = kit.compose("logs", "--no-color", "--tail", str(lines), kit.project.service,
                         check=False, reads=True)
    text = (result.stdout or b"").decode(errors="replace")
    return ["  | " + line for line in text.rstrip().splitlines()[-lines:]]


def name_holder(kit: Kit) -> Container | None:
    """The container of another project (or of none) that holds the fixed `container_name`
    the service sets: the renamed project's old container, say. Compose cannot create the
    service's container while it exists."""
    name = kit.project.container_name
    if not name:
        return None
    return next((c for c in list_containers(kit.runner)
                 if c.name == name and c.project != kit.project.name), None)


def start_service(kit: Kit, free_name: bool = False) -> None:
    """`compose up -d` the database service (its own output shows) and wait for health.
    `free_name`: a stopped container of another project that holds the service's fixed
    container_name is removed first (its volumes are kept); migrate's plan says so."""
    holder = name_holder(kit)
    if holder and free_name and holder.state not in RUNNING_STATES:
        info(f"removing the stopped container {holder.name} of project "
             f"{holder.project or '(none)'}: it holds the container name the service needs "
             "(its volumes are kept)")
        kit.runner(["docker", "rm", holder.id])
    elif holder:
        raise Refusal(f"the container name {holder.name!r} that service "
                      f"{kit.project.service!r} sets (container_name) is taken by a "
                      f"{holder.state} container of project {holder.project or '(none)'}",
                      f"Remove it with `docker rm {holder.name}` (its volumes stay), or stop "
                      "it first if it still runs, and run again; nothing was started")
    # A server another checkout of the repository started (worktrees sharing one project) is
    # never recreated from here: this checkout's compose file and .env may differ from that
    # one's (its own database name, a branch's change), and Compose would recreate the server
    # under every other checkout.
    running = kit.service_container()
    theirs = running is not None and running.state in RUNNING_STATES and running.working_dir \
        and os.path.realpath(running.working_dir) != os.path.realpath(kit.settings.project_dir)
    result = kit.compose("up", "-d", *(["--no-recreate"] if theirs else []), kit.project.service,
                         stdout=None, stderr=None, check=False)
    if result.returncode != 0:
        raise Failure(f"`{' '.join(kit.compose.command)} up` failed (its output is above)",
                      "Fix what it says and run again; `make db-info` shows the state")
    wait_healthy(kit, kit.settings.up_timeout)


# Asks pg_isready over TCP every 0.2 s for up to 3 s inside the container: one `docker exec`
# (about a tenth of a second of CPU on the engine's side) per 3 s of waiting instead of one per
# question. Where `sleep` takes no fraction, the questions run back to back and the loop ends
# at once, and the caller's own half-second pause sets the pace.
READY_WAIT = ("i=0; while [ $i -lt 15 ]; do pg_isready -h 127.0.0.1 -p 5432 -q && exit 0; "
              "i=$((i+1)); sleep 0.2 2>/dev/null || exit 1; done; exit 1")


def wait_healthy(kit: Kit, timeout: int) -> Container:
    """Waits until the server answers: pg_isready over TCP (while the image initialises a new
    cluster its temporary server listens on the socket only, so TCP answers only once the
    database exists), or the service's own health check passes. Docker runs a health check
    first one interval after the start, and the kit's compose file checks every 5 seconds
    (each check starts a process in the container, which an idle laptop pays for all day), so
    the kit does not wait for it; a check that Docker already calls unhealthy is believed.
    Between the engine's reports the waiting happens inside the container (READY_WAIT)."""
    deadline = time.monotonic() + timeout
    container = None
    while container is None:
        container = kit.service_container()
        if container is None and time.monotonic() > deadline:
            raise Failure(f"no container of service {kit.project.service!r} appeared",
                          "Run `make db-up` again with V=1 to see the compose commands")
        if container is None:
            time.sleep(0.5)
    info(f"waiting for {container.name} to become healthy (up to {timeout}s)")
    while True:
        state = container_state(kit.runner, container.id)
        health = (state.get("Health") or {}).get("Status")
        if health == "healthy":
            return container
        if health in (None, "starting") and state.get("Status") == "running":
            probe = kit.runner(["docker", "exec", container.id, "sh", "-c", READY_WAIT],
                               check=False, reads=True)
            if probe.returncode == 0:
                return container
        if state.get("Status") in ("exited", "dead") or state.get("Restarting"):
            raise Failure(f"{container.name} stopped while starting (exit code "
                          f"{state.get('ExitCode')})",
                          "The last log lines are above; `make db-info` may name the cause",
                          details=service_logs(kit))
        if time.monotonic() > deadline:
            raise Failure(f"{container.name} did not become healthy within {timeout}s "
                          f"(state: {state.get('Status')}, health: {health or 'none'})",
                          "The last log lines are above; `make db-logs` shows more, and "
                          "DBGUARD_UP_TIMEOUT in .env gives a slow server more time",
                          details=service_logs(kit))
        time.sleep(0.5)


def leftover_helpers(kit: Kit) -> list[Container]:
    """Throwaway containers a killed run of this project's kit left (docker keeps a container
    going when its client dies). Under the kit's lock no command of ours is running, so each
    is a leftover; other projects' are not ours to touch."""
    return [c for c in list_containers(kit.runner)
            if c.helper and c.owner == kit.project.name]


def unowned_leftovers(containers: Iterable[Container]) -> list[Container]:
    """Of the containers using a volume, the helpers an older version of the kit left (they
    carry no owner). Another project's helpers are its own, and a helper that only looks (a
    scan of db-info or db-find in another terminal or project) is at work, not left over."""
    return [c for c in containers if c.helper and not c.owner and not c.looking]


def remove_leftover_helpers(kit: Kit, also: Iterable[Container] = ()) -> None:
    """Removes them (and the unowned leftovers among the containers in `also`, the users of
    the volumes about to be worked on), so none keeps writing while a volume is worked on
    again."""
    leftovers = {c.id: c for c in [*leftover_helpers(kit), *unowned_leftovers(also)]}
    if leftovers:
        info("removing leftover dbguard helper containers of an interrupted run: "
             + ", ".join(c.name for c in leftovers.values()))
        # -v: the anonymous volumes Docker gives the image's VOLUME paths go with them (named
        # volumes never do).
        r = kit.runner(["docker", "rm", "-f", "-v", *leftovers], check=False)
        # A helper started with --rm may be on its way out already (Docker is removing it, or
        # has): that is the outcome wanted. Anything else is an error.
        gone = ("is already in progress", "No such container")
        errors = [line for line in r.stderr.decode(errors="replace").splitlines()
                  if line.strip() and not any(g in line for g in gone)]
        if r.returncode != 0 and errors:
            raise command_failure(["docker", "rm", "-f", "-v", *leftovers],
                                  "\n".join(errors).encode())


def stop_containers(kit: Kit, containers: list[Container]) -> None:
    running = [c for c in containers if c.state in RUNNING_STATES]
    if running:
        info("stopping " + ", ".join(c.name for c in running))
        kit.runner(["docker", "stop", *[c.id for c in running]])

