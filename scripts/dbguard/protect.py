"""db-protect's keeper: a running container that refers to a volume, so that Docker refuses to
remove the volume ("volume is in use") to `docker compose down -v` (v1 and v2), `docker volume
rm`, `docker volume prune` (with -a too) and `docker system prune --volumes`. It runs, so
`docker container prune` and `docker system prune` (which remove stopped containers) leave it
alone, and `--restart unless-stopped` brings it back after the daemon or the machine restarts.
It carries no Compose label, so `compose down` (even with --remove-orphans) does not take it.

What still gets through, and is said so: removing the keeper itself (`docker rm -f`), stopping
it and then pruning, and deleting Docker's whole data (Docker Desktop's "Clean / Purge data").

The keeper runs `sleep` from the db image (present: the service uses it), with no network, a
read-only root, the volume mounted read-only, and a tmpfs on each of the image's own VOLUME
paths (so that Docker makes no anonymous volume for it). The kit's own commands never stop at
it: volumes.Volume.users leaves it out, and a command that must remove or recreate a protected
volume takes the keeper down first and puts it back after.
"""
from __future__ import annotations

from .docker import Container, ImageInfo, list_containers
from .names import LABEL_KEEPER, LABEL_OWNER, keeper_name
from .runner import Runner

SLEEP = "2147483647"  # seconds (68 years; busybox's sleep has no `infinity`); then restarted


def keeper_args(project: str, volume: str, image: ImageInfo) -> list[str]:
    argv = ["docker", "run", "-d", "--name", keeper_name(project, volume),
            "--label", f"{LABEL_KEEPER}={volume}", "--label", f"{LABEL_OWNER}={project}",
            "--restart", "unless-stopped", "--stop-signal", "KILL", "--network", "none",
            "--read-only", "--pull", "never", "--memory", "32m",
            "--mount", f"type=volume,source={volume},target=/dbguard-protected,readonly"]
    for path in image.volumes:
        argv += ["--mount", f"type=tmpfs,target={path},tmpfs-size=65536"]
    return argv + ["--entrypoint", "sleep", image.ref, SLEEP]


def keepers_of(containers: list[Container], volume: str) -> list[Container]:
    return [c for c in containers if c.keeper == volume]


def protect(runner: Runner, project: str, volume: str, image: ImageInfo) -> Container | None:
    """Makes sure a running keeper of `volume` exists (a stopped or removed one is replaced);
    returns the keeper that was already running, or None when one was started."""
    keepers = keepers_of(list_containers(runner), volume)
    running = next((c for c in keepers if c.state == "running"), None)
    if running:
        return running
    if keepers:
        runner(["docker", "rm", "-f", *[c.id for c in keepers]])
    runner(keeper_args(project, volume, image))
    return None


def unprotect(runner: Runner, volume: str, containers: list[Container] | None = None
              ) -> list[Container]:
    """Removes the keepers of `volume` (the volume itself is untouched); returns them."""
    keepers = keepers_of(list_containers(runner) if containers is None else containers, volume)
    if keepers:
        runner(["docker", "rm", "-f", *[c.id for c in keepers]])
    return keepers
