"""Docker objects as the kit sees them: images (which PostgreSQL major, which PGDATA), containers
(who uses which volume), and the throwaway helper container every volume operation runs in.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from collections.abc import Sequence

from .runner import DAEMON_DOWN, Runner, daemon_failure

# Labels that Docker Compose puts on the volumes it creates; the best evidence of where a volume
# came from. Volumes made by hand or by copy tools usually carry none.
LABEL_PROJECT = "com.docker.compose.project"
LABEL_VOLUME = "com.docker.compose.volume"
LABEL_VERSION = "com.docker.compose.version"
LABEL_SERVICE = "com.docker.compose.service"
LABEL_WORKDIR = "com.docker.compose.project.working_dir"
# Put on every throwaway container the kit starts, so a leftover one can be found.
LABEL_HELPER = "dbguard.helper"


@dataclass(frozen=True)
class ImageInfo:
    ref: str
    present: bool
    pg_major: int | None
    pgdata: str | None


def pg_major_from_tag(ref: str) -> int | None:
    tag = ref.rsplit("/", 1)[-1].partition(":")[2]
    match = re.match(r"^(\d+)", tag)
    return int(match.group(1)) if match else None


def inspect_image(runner: Runner, ref: str) -> ImageInfo:
    result = runner(["docker", "image", "inspect", "--format", "{{json .Config.Env}}", ref],
                    check=False)
    if result.returncode != 0:
        text = result.stderr.decode(errors="replace")
        if any(s in text for s in DAEMON_DOWN):
            raise daemon_failure()
        return ImageInfo(ref, False, pg_major_from_tag(ref), None)
    env = dict(e.split("=", 1) for e in json.loads(result.stdout or b"[]") or [] if "=" in e)
    major = env.get("PG_MAJOR", "")
    major_num = int(major.split(".")[0]) if re.match(r"^\d+", major) else pg_major_from_tag(ref)
    return ImageInfo(ref, True, major_num, env.get("PGDATA"))


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    state: str
    status: str
    ports: str
    project: str
    service: str
    volumes: list[str]
    working_dir: str = ""
    helper: bool = False  # a throwaway container of the kit's (left over if it was killed)


def list_containers(runner: Runner) -> list[Container]:
    fmt = "\t".join(["{{.ID}}", "{{.Names}}", "{{.State}}", "{{.Status}}", "{{.Ports}}",
                     f'{{{{.Label "{LABEL_PROJECT}"}}}}', f'{{{{.Label "{LABEL_SERVICE}"}}}}',
                     f'{{{{.Label "{LABEL_WORKDIR}"}}}}', f'{{{{.Label "{LABEL_HELPER}"}}}}',
                     "{{.Mounts}}"])
    out = runner(["docker", "ps", "-a", "--no-trunc", "--format", fmt]).stdout.decode()
    containers = []
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) != 10:
            continue
        cid, name, state, status, ports, proj, svc, workdir, helper, mounts = parts
        containers.append(Container(cid, name, state, status, ports, proj, svc,
                                    [m for m in mounts.split(",") if m], workdir, helper == "1"))
    return containers


def container_state(runner: Runner, cid: str) -> dict:
    out = runner(["docker", "inspect", "--format", "{{json .State}}", cid]).stdout
    return json.loads(out)


def container_endpoint(runner: Runner, cid: str, port: int = 5432) -> tuple[str, int] | None:
    """Where the host reaches the server in a running container: its published port for
    `port` (on 127.0.0.1 when published on every interface), else the container's own address
    on its first network (reachable from a Linux host). None when it has neither."""
    out = runner(["docker", "inspect", "--format", "{{json .NetworkSettings}}", cid]).stdout
    net = json.loads(out or b"{}") or {}
    for binding in (net.get("Ports") or {}).get(f"{port}/tcp") or []:
        host_port = str(binding.get("HostPort") or "")
        if host_port.isdigit():
            host = binding.get("HostIp") or ""
            return ("127.0.0.1" if host in ("", "0.0.0.0", "::") else host), int(host_port)
    for network in sorted((net.get("Networks") or {}).items()):
        address = (network[1] or {}).get("IPAddress")
        if address:
            return address, port
    return None


def helper_args(image: str, mounts: Sequence[tuple[str, str, bool]], script: str,
                *script_args: str, interactive: bool = False) -> list[str]:
    """A throwaway container of the db image: no network, nothing pulled, read-only root, run
    as root so it can read the 0700 data directory. Only constant scripts run in it; volume
    names reach it as mount options, never as shell text."""
    argv = ["docker", "run", "--rm", "--network", "none", "--pull", "never", "--read-only",
            "--tmpfs", "/tmp", "--user", "0:0", "--label", f"{LABEL_HELPER}=1",
            "--entrypoint", "/bin/sh"]
    if interactive:
        argv.append("-i")
    for volume, target, readonly in mounts:
        argv += ["--mount", f"type=volume,source={volume},target={target}"
                 + (",readonly" if readonly else "")]
    return argv + [image, "-c", script, "dbguard", *script_args]
