"""The compose project as Compose itself resolves it: which Compose answers, the one way every
compose command is built, and the database service, its data mount and its volume found in the
resolved model (v2's JSON, or v1's YAML reshaped alike).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .compose_text import volume_name_pinned
from .compose_v1 import parse_yaml, v1_model
from .errors import Failure, UsageError
from .names import project_name
from .runner import Runner, command_failure
from .settings import COMPOSE_NAMES, Settings


@dataclass(frozen=True)
class Project:
    """What the kit needs to know of the compose project, whichever Compose read it."""

    name: str
    name_source: str            # environment, .env, compose file, directory
    directory: Path
    service: str
    image: str
    volume_key: str             # the key under `volumes:` in the compose file ("" for a folder)
    volume: str                 # the active volume's full name, or the folder's absolute path
    external: bool
    mount_target: str
    service_pgdata: str | None  # PGDATA set in the service's environment, if any
    builds: bool = False        # the service has `build:` (db-up builds a missing image)
    container_name: str | None = None  # a fixed `container_name:` of the service
    folder: bool = False        # the data is in a host folder (a bind mount), not a volume
    pinned: bool = False        # the volume's name is fixed (name: or external), whatever the
                                # project is called
    mounts: tuple = ()          # every mount of the service: (type, source, target)
    anonymous: bool = False     # no named volume or folder holds the data (db-up refuses)
    command: tuple = ()         # the service's command, for a throwaway server of its image
    # The service's environment as Compose resolved it (env_file included): POSTGRES_DB,
    # POSTGRES_USER and POSTGRES_PASSWORD are read from here. Holds a password: never shown.
    environment: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def locked(self) -> bool:
        """The data's location does not change with the directory's name."""
        return self.name_source != "directory" or self.pinned or self.folder

    @property
    def store_label(self) -> str:
        """How the active volume or folder is named to people: a folder relative to the
        project's folder when it is inside it."""
        return store_label(self.volume, self.folder, self.directory)


def store_label(name: str, folder: bool, directory: Path) -> str:
    if not folder:
        return name
    path = Path(name)
    try:
        return "./" + path.relative_to(directory).as_posix()
    except ValueError:
        return str(path)


def require_compose_files(settings: Settings) -> None:
    """Bad input before any Docker call: no compose file found, or one named that is missing."""
    if not settings.compose_files:
        raise UsageError(f"no compose file in {settings.root} or any folder above it (Compose "
                         f"looks for {', '.join(COMPOSE_NAMES)})",
                         "Run the kit inside your project, or set COMPOSE_FILE in the kit's "
                         ".env to your compose file")
    missing = [str(f) for f in settings.compose_files if not f.is_file()]
    if missing:
        raise UsageError(f"compose file not found: {', '.join(missing)}",
                         "Fix COMPOSE_FILE (in .env or the environment): its files are "
                         "relative to the folder of that .env")


V2_YAML = re.compile(rb"^name: ", re.M)  # the first line of v2's `config` YAML


@dataclass(frozen=True)
class Compose:
    """Every compose call goes through `args()`, which pins the files, the project directory,
    the env file and (once known) the project, so the current directory never matters."""

    runner: Runner
    settings: Settings
    command: tuple[str, ...]
    v2: bool = True  # Compose v2's behaviour (the plugin, or a docker-compose of version 2)
    version: str = ""  # "" until asked (shown_version)
    project_name: str | None = None
    # The project's configuration as the detecting call read it (model, v2's project name).
    model: tuple[dict, str | None] | None = dataclasses.field(default=None, compare=False,
                                                               repr=False)

    @classmethod
    def detect(cls, runner: Runner, settings: Settings) -> Compose:
        """The Compose that DBGUARD_COMPOSE asks for (auto: v2, else v1). The call that
        finds it is the one every command makes first anyway, reading the configuration:
        no separate `version` call (a Compose start costs about a tenth of a second of CPU
        under v2, half a second under v1). A `docker-compose` is told apart by what its
        `config` prints: v2's binary installed standalone names the project first."""
        require_compose_files(settings)
        order = {"auto": ("v2", "v1"), "v2": ("v2",), "v1": ("v1",)}[settings.compose_flavor]
        commands = {"v2": ("docker", "compose"), "v1": ("docker-compose",)}
        for flavor in order:
            compose = cls(runner, settings, commands[flavor])
            try:
                if flavor == "v1":  # docker-compose: v1, or v2's binary installed standalone
                    compose = dataclasses.replace(compose, v2=False)
                result = compose.runner(compose.args(*compose.config_args()), check=False,
                                        reads=True)
                if flavor == "v1" and result.returncode == 0 and V2_YAML.search(result.stdout):
                    # v2 prints the project's name first in its YAML; v1 never has one.
                    compose = dataclasses.replace(compose, v2=True)
                    result = compose.runner(compose.args(*compose.config_args()), check=False,
                                            reads=True)
            except Failure:  # not installed
                continue
            if result.returncode != 0 and flavor == "v2" and runner(
                    [*compose.command, "version", "--short"], check=False,
                    reads=True).returncode != 0:
                continue  # no compose plugin (the docker CLI's own usage error, above)
            if result.returncode != 0:
                raise command_failure([*compose.command, "config"], result.stderr)
            return dataclasses.replace(compose, model=compose.parse_config(result.stdout))
        tried = " and ".join(f"`{' '.join(commands[f])}`" for f in order)
        raise Failure(f"no Docker Compose found (tried {tried})",
                      "Install the Compose plugin (or docker-compose), or set DBGUARD_COMPOSE "
                      "in .env")

    def shown_version(self) -> str:
        """Compose's own version, asked only when shown (db-info)."""
        if self.version:
            return self.version
        result = self.runner([*self.command, "version", "--short"], check=False, reads=True)
        return result.stdout.decode().strip().lstrip("v") if result.returncode == 0 else ""

    def for_project(self, name: str) -> Compose:
        """The same Compose with `-p name` on every call from now on; a later read of the
        configuration (after a command changed the compose file) asks Compose again."""
        return dataclasses.replace(self, project_name=name, model=None)

    def args(self, *rest: str) -> list[str]:
        """Compose finds its files and reads the project's .env itself, as it does for plain
        `docker compose` in the project's folder; only files named by COMPOSE_FILE in the kit's
        settings are passed with -f."""
        argv = list(self.command)
        if self.settings.compose_files_explicit:
            for f in self.settings.compose_files:
                argv += ["-f", str(f)]
        argv += ["--project-directory", str(self.settings.project_dir)]
        if self.project_name:
            argv += ["-p", self.project_name]
        return argv + list(rest)

    def __call__(self, *rest: str, check: bool = True, reads: bool = False,
                 **kwargs) -> subprocess.CompletedProcess:
        result = self.runner(self.args(*rest), check=False, reads=reads, **kwargs)
        if check and result.returncode != 0:  # named by its subcommand, not its options
            raise command_failure([*self.command, rest[0]], result.stderr)
        return result

    def config_args(self) -> tuple[str, ...]:
        return ("config", "--format", "json") if self.v2 else ("config",)

    def parse_config(self, out: bytes) -> tuple[dict, str | None]:
        if self.v2:
            data = json.loads(out)
            return data, data.get("name")
        return v1_model(parse_yaml(out.decode())), None

    def config(self) -> tuple[dict, str | None]:
        """The resolved compose model in v2's JSON shape, and the project name v2 resolved
        (read once: by the call that detected Compose, if it was that one)."""
        if self.model is not None:
            return self.model
        return self.parse_config(self(*self.config_args(), reads=True).stdout)


def load_project(compose: Compose) -> Project:
    """Reads the compose configuration once: the project name in effect, the database service,
    its data mount and its volume."""
    settings = compose.settings
    model, resolved = compose.config()
    directory = settings.project_dir
    raw = "\n".join(f.read_text(encoding="utf-8", errors="replace")
                    for f in settings.compose_files)
    name, source = project_name(settings.project_name, settings.project_name_origin,
                                compose.v2, raw, resolved, directory.name)
    project = project_from_model(model, name, source, directory, settings.service, compose.v2)
    if not project.folder and not project.pinned and any(
            volume_name_pinned(f.read_text(encoding="utf-8", errors="replace"),
                               project.volume_key) for f in settings.compose_files):
        # v2's model gives every volume a name: only the text says whether one was written.
        project = dataclasses.replace(project, pinned=True)
    return project


PG_MOUNT_HINTS = ("/var/lib/postgresql/data", "/var/lib/postgresql")


def _service_env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


PG_IMAGE_RE = re.compile(r"(^|[/_.-])(postgres|postgresql|postgis|pgvector|timescaledb)"
                         r"([/_.:-]|$)")


def _build_from(service: dict) -> list[str]:
    """The images a service's Dockerfile builds FROM (empty when it builds nothing or the
    Dockerfile cannot be read)."""
    build = service.get("build")
    if not build:
        return []
    if isinstance(build, str):
        build = {"context": build}
    context = Path(str(build.get("context") or "."))
    dockerfile = Path(str(build.get("dockerfile") or "Dockerfile"))
    try:
        text = (dockerfile if dockerfile.is_absolute() else context / dockerfile).read_text(
            encoding="utf-8", errors="replace")
    except OSError:
        return []
    return re.findall(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)", text, re.M | re.I)


def postgres_evidence(service: dict) -> int:
    """How surely a service runs a PostgreSQL server: a volume at /var/lib/postgresql (4), a
    PostgreSQL image by name or built FROM one (2), POSTGRES_* variables (1). An application
    that shares the database's env file has only the last."""
    targets = [m.get("target", "") for m in service.get("volumes") or [] if isinstance(m, dict)]
    images = [str(service.get("image") or ""), *_build_from(service)]
    return (4 * any(t.startswith("/var/lib/postgresql") for t in targets)
            + 2 * any(PG_IMAGE_RE.search(i.rsplit("@", 1)[0]) for i in images if i)
            + any(k.startswith("POSTGRES_") for k in _service_env(service)))


def project_from_model(model: dict, name: str, source_of_name: str, directory: Path,
                       wanted_service: str | None, v2: bool = True) -> Project:
    """Finds the database service, its data mount and its volume in a compose model."""
    services: dict = model.get("services") or {}
    if wanted_service:
        if wanted_service not in services:
            raise UsageError(f"DBGUARD_SERVICE={wanted_service!r} is not a service of the "
                             f"compose file (services: {', '.join(sorted(services)) or 'none'})",
                             "Set DBGUARD_SERVICE in .env to the database service")
        service_name = wanted_service
    else:
        scores = {name: postgres_evidence(spec) for name, spec in services.items()}
        best = max(scores.values(), default=0)
        found = sorted(name for name, score in scores.items() if score and score == best)
        if not found:
            raise UsageError("no service in the compose file looks like PostgreSQL",
                             "Set DBGUARD_SERVICE in .env to the database service")
        if len(found) > 1:
            raise UsageError(f"several services look like PostgreSQL: {', '.join(found)}",
                             "Set DBGUARD_SERVICE in .env to the one the kit should guard")
        service_name = found[0]
    service = services[service_name]
    env = _service_env(service)
    pgdata = env.get("PGDATA") or None
    every = tuple((str(m.get("type") or ""), str(m.get("source") or ""),
                   str(m.get("target") or "")) for m in service.get("volumes") or []
                  if isinstance(m, dict))

    def rank(m: tuple) -> tuple:
        kind, source, target = m
        lasting = kind in ("volume", "bind") and bool(source)
        if pgdata and (pgdata == target or pgdata.startswith(target.rstrip("/") + "/")):
            hint = 0
        elif target in PG_MOUNT_HINTS:
            hint = PG_MOUNT_HINTS.index(target) + 1
        elif target.startswith("/var/lib/postgresql/"):
            hint = 9  # below the usual place (too low): db-info names the mount to write
        else:
            hint = 99
        return (not lasting, hint)

    candidates = sorted((m for m in every if rank(m)[1] < 99), key=rank)
    if not candidates or rank(candidates[0])[0]:
        # An anonymous volume, a tmpfs or the container's own layer: the kit still reads the
        # project, and db-up refuses it (diagnosis names the mount to write).
        target = candidates[0][2] if candidates else ""
        return Project(name=name, name_source=source_of_name, directory=directory,
                       service=service_name, image=image_of(service, name, service_name, v2),
                       volume_key="", volume="", external=True, mount_target=target,
                       service_pgdata=pgdata, environment=env,
                       builds=bool(service.get("build")),
                       container_name=service.get("container_name") or None,
                       command=command_of(service), mounts=every, anonymous=True)
    kind, mount_source, mount_target = candidates[0]
    mount = {"type": kind, "source": mount_source, "target": mount_target}
    image = image_of(service, name, service_name, v2)
    command = command_of(service)
    if kind == "bind":
        source = Path(str(mount["source"]))
        folder = source if source.is_absolute() else (directory / source)
        return Project(name=name, name_source=source_of_name, directory=directory,
                       service=service_name, image=image, volume_key="",
                       volume=os.path.normpath(str(folder)), external=True,
                       mount_target=mount["target"], service_pgdata=pgdata, environment=env,
                       builds=bool(service.get("build")),
                       container_name=service.get("container_name") or None, folder=True,
                       command=command, mounts=every)
    key = mount["source"]
    spec = (model.get("volumes") or {}).get(key) or {}
    external = bool(spec.get("external"))
    volume = spec.get("name") or (key if external else f"{name}_{key}")
    pinned = external or (bool(spec.get("name")) and not v2)  # v2 names every volume
    return Project(name=name, name_source=source_of_name, directory=directory,
                   service=service_name, image=image, volume_key=key, volume=volume,
                   external=external, mount_target=mount["target"], service_pgdata=pgdata,
                   environment=env, builds=bool(service.get("build")),
                   container_name=service.get("container_name") or None,
                   command=command, pinned=pinned, mounts=every)


def image_of(service: dict, name: str, service_name: str, v2: bool) -> str:
    """The service's image; a service that only builds gets Compose's name for what it
    builds."""
    image = str(service.get("image") or "") or (f"{name}-{service_name}" if v2 else
                                                f"{name}_{service_name}")
    if image.startswith("-"):  # it would reach docker as an option
        raise UsageError(f"service {service_name!r} names the image {image!r}, which starts "
                         "with '-'", "Fix the image name in the compose file (or DB_IMAGE in "
                         ".env)")
    return image


def command_of(service: dict) -> tuple:
    command = service.get("command") or ()
    if isinstance(command, str):
        command = command.split()
    return tuple(str(c) for c in command)
