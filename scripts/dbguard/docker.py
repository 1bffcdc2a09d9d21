"""Docker objects as the kit sees them: images (which PostgreSQL major, which PGDATA), containers
(who uses which volume or folder), and the throwaway helper container every volume operation
runs in.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from collections.abc import Sequence

from .names import (HELPER_LOOKS, LABEL_HELPER, LABEL_KEEPER, LABEL_OWNER, LABEL_PROJECT,
                    LABEL_SERVICE, LABEL_WORKDIR)
from .runner import DAEMON_DOWN, Runner, daemon_failure


@dataclass(frozen=True)
class ImageInfo:
    ref: str
    present: bool
    pg_major: int | None
    pgdata: str | None
    volumes: tuple[str, ...] = ()   # the image's VOLUME paths
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()


def pg_major_from_tag(ref: str) -> int | None:
    tag = ref.rsplit("/", 1)[-1].partition(":")[2]
    match = re.match(r"^(\d+)", tag)
    return int(match.group(1)) if match else None


def inspect_image(runner: Runner, ref: str) -> ImageInfo:
    result = runner(["docker", "image", "inspect", "--format", "{{json .Config}}", ref],
                    check=False, reads=True)
    if result.returncode != 0:
        text = result.stderr.decode(errors="replace")
        if any(s in text for s in DAEMON_DOWN):
            raise daemon_failure()
        return ImageInfo(ref, False, pg_major_from_tag(ref), None)
    config = json.loads(result.stdout or b"{}") or {}
    env = dict(e.split("=", 1) for e in config.get("Env") or [] if "=" in e)
    major = env.get("PG_MAJOR", "")
    major_num = int(major.split(".")[0]) if re.match(r"^\d+", major) else pg_major_from_tag(ref)
    return ImageInfo(ref, True, major_num, env.get("PGDATA"),
                     tuple(sorted(config.get("Volumes") or {})),
                     tuple(config.get("Entrypoint") or ()), tuple(config.get("Cmd") or ()))


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    state: str
    status: str
    ports: str
    project: str
    service: str
    volumes: list[str]      # the named volumes and host folders it mounts (full paths)
    working_dir: str = ""
    helper: bool = False    # a throwaway container of the kit's (left over if it was killed)
    owner: str = ""         # the project a helper worked for
    keeper: str = ""        # db-protect's keeper: the volume it protects ("": not a keeper)
    looking: bool = False   # a helper that only reads (a scan of db-info or db-find, of any
                            # project): it changes nothing and ends by itself, so it is neither
                            # a user of a volume nor a leftover to remove


def list_containers(runner: Runner) -> list[Container]:
    fmt = "\t".join(["{{.ID}}", "{{.Names}}", "{{.State}}", "{{.Status}}", "{{.Ports}}",
                     f'{{{{.Label "{LABEL_PROJECT}"}}}}', f'{{{{.Label "{LABEL_SERVICE}"}}}}',
                     f'{{{{.Label "{LABEL_WORKDIR}"}}}}', f'{{{{.Label "{LABEL_HELPER}"}}}}',
                     f'{{{{.Label "{LABEL_OWNER}"}}}}', f'{{{{.Label "{LABEL_KEEPER}"}}}}',
                     "{{.Mounts}}"])
    out = runner(["docker", "ps", "-a", "--no-trunc", "--format", fmt], reads=True)
    containers = []
    for line in out.stdout.decode().splitlines():
        parts = line.split("\t")
        if len(parts) != 12:
            continue
        cid, name, state, status, ports, proj, svc, workdir, helper, owner, keeper, mounts = \
            parts
        containers.append(Container(cid, name, state, status, ports, proj, svc,
                                    [m for m in mounts.split(",") if m], workdir,
                                    helper != "", owner, keeper, helper == HELPER_LOOKS))
    return containers


def container_state(runner: Runner, cid: str) -> dict:
    out = runner(["docker", "inspect", "--format", "{{json .State}}", cid], reads=True).stdout
    return json.loads(out)


def published_port(runner: Runner, cid: str, port: int = 5432) -> tuple[str, int] | None:
    """Where the host reaches the server in a running container, for the application: its
    published port for `port` (on 127.0.0.1 when published on every interface). None when it
    publishes none (the kit itself never needs one: it works inside the container)."""
    out = runner(["docker", "inspect", "--format", "{{json .NetworkSettings.Ports}}", cid],
                 reads=True, check=False).stdout
    ports = json.loads(out or b"{}") or {}
    for binding in ports.get(f"{port}/tcp") or []:
        host_port = str(binding.get("HostPort") or "")
        if host_port.isdigit():
            host = binding.get("HostIp") or ""
            return ("127.0.0.1" if host in ("", "0.0.0.0", "::") else host), int(host_port)
    return None


Mount = tuple[str, str, str, bool]  # (kind: volume or bind, source, target, read-only)


def mount_option(mount: Mount) -> str:
    kind, source, target, readonly = mount
    return f"type={kind},source={source},target={target}" + (",readonly" if readonly else "")


# A throwaway container whose output the kit reads as it comes (attached, or a stream it
# saves itself) keeps no log: Docker's default driver writes every byte again, as JSON lines,
# to a file the engine keeps until the container is removed (a volume's tar: 3-4 times its
# CPU and a second copy on disk; `tests/bench_calls.py` measures it).
NO_LOG = ("--log-driver", "none")


def helper_args(image: ImageInfo, mounts: Sequence[Mount], script: str, *script_args: str,
                interactive: bool = False, owner: str = "", looks: bool = False) -> list[str]:
    """A throwaway container of the db image: no network, nothing pulled, read-only root, run
    as root so it can read the 0700 data directory. Only constant scripts run in it; volume
    names and folders reach it as mount options, never as shell text. `owner`: the project it
    works for, so a later run of that project (and only of that one) removes it if left.
    A small tmpfs covers each of the image's own VOLUME paths: Docker would otherwise make an
    anonymous volume for each, which a helper whose start fails leaves on the machine.
    `looks`: it only reads (every mount read-only), labelled so that no command of any project
    takes it for a leftover to remove while it works.
    Its output reaches the kit through the attached client only (NO_LOG): what a helper prints
    is a tar of a volume or a manifest of every file, which Docker's default log driver would
    also encode as JSON into a log file on the engine's disk."""
    if looks and not all(readonly for *_, readonly in mounts):
        raise ValueError("a helper that only looks mounts everything read-only")
    argv = ["docker", "run", "--rm", *NO_LOG, "--network", "none", "--pull", "never",
            "--read-only", "--tmpfs", "/tmp", "--user", "0:0", "--label",
            f"{LABEL_HELPER}={HELPER_LOOKS if looks else 1}"]
    for path in image.volumes:
        argv += ["--mount", f"type=tmpfs,target={path},tmpfs-size=65536"]
    if owner:
        argv += ["--label", f"{LABEL_OWNER}={owner}"]
    argv += ["--entrypoint", "/bin/sh"]
    if interactive:
        argv.append("-i")
    for mount in mounts:
        argv += ["--mount", mount_option(mount)]
    return argv + [image.ref, "-c", script, "dbguard", *script_args]
