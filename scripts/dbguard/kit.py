"""The kit opened for one command: settings, runner, Compose pinned to the project, the project
and its image, read once and frozen; the database server inside the running service container;
the journal; and the lock that lets one command that starts, stops or changes data run at a
time.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterable

from .compose import Compose, Project, load_project, require_compose_files
from .docker import Container, ImageInfo, inspect_image, list_containers, published_port
from .errors import Failure, Refusal, UsageError
from .files import folder_failure, private_dir
from .journal import Journal
from .names import LOCK_FILE
from .runner import Runner
from .server import Server
from .settings import KIT_ROOT, Settings, load_settings
from .volumes import Volume, find_volumes


@dataclass(frozen=True)
class Kit:
    settings: Settings
    runner: Runner
    compose: Compose
    project: Project
    image: ImageInfo
    command: str = "dbguard"   # the kit command running (names its sessions in the server)

    def scan(self, also: Iterable[str] = ()) -> list[Volume]:
        """The candidate volumes and folders as they are now (see volumes.find_volumes)."""
        return find_volumes(self.runner, self.project, self.image,
                            self.settings.ignore_volumes, also)

    def active(self, volumes: list[Volume]) -> Volume:
        return next(v for v in volumes if v.active)

    @property
    def journal(self) -> Journal:
        return Journal(self.settings.backup_dir)

    @property
    def db(self) -> str:
        return self.settings.db_name

    def service_container(self) -> Container | None:
        mine = [c for c in list_containers(self.runner)
                if c.project == self.project.name and c.service == self.project.service]
        mine.sort(key=lambda c: c.state != "running")
        return mine[0] if mine else None

    def with_image(self, image: ImageInfo) -> Kit:
        """The same kit after the image changed (db-up pulled it)."""
        return dataclasses.replace(self, image=image)

    def server(self, container: Container | None = None) -> Server:
        """The database server of the running service container; Failure when it is not
        running."""
        container = container or self.service_container()
        if container is None or container.state != "running":
            raise Failure(f"the {self.project.service!r} service is not running",
                          "Start it with `make db-up` and run again")
        return self.server_in(container.id)

    def server_in(self, container_id: str) -> Server:
        s = self.settings
        return Server(self.runner, container_id, s.db_user, s.db_password, self.command)

    def endpoint(self) -> tuple[str, int] | None:
        """Where the application on the host reaches the server (DJANGO_DB_HOST/PORT when set,
        else the port the running container publishes); None when it publishes none."""
        s = self.settings
        if s.db_host or s.db_port:
            return s.db_host or "127.0.0.1", s.db_port or 5432
        container = self.service_container()
        if container is None or container.state != "running":
            return None
        return published_port(self.runner, container.id)


@dataclass(frozen=True)
class Folder:
    """The backup folder alone, for the commands that work only on its files (db-prune): they
    need neither Docker nor a compose file."""

    settings: Settings
    runner: Runner

    @property
    def journal(self) -> Journal:
        return Journal(self.settings.backup_dir)


def with_credentials(settings: Settings, project: Project, db: str | None = None) -> Settings:
    """The database and role the kit uses: DB= (the command line) or DJANGO_DB_NAME, else the
    service's POSTGRES_DB, else the image's default (named after the user); the role is
    DJANGO_DB_USER, else the service's POSTGRES_USER, else postgres (the image's superuser).
    The password is needed only where the container's socket asks for one: the service's
    POSTGRES_PASSWORD (Compose's own reading), DJANGO_DB_PASSWORD standing in when the service
    shows none."""
    env = project.environment
    service_user = env.get("POSTGRES_USER") or "postgres"
    if not env.get("POSTGRES_PASSWORD") and settings.db_password and \
            settings.db_password_doubt:
        # Compose put another reading of it into the cluster than the kit would use.
        raise UsageError(f"DJANGO_DB_PASSWORD {settings.db_password_doubt} (it was not "
                         "printed), and the service shows no POSTGRES_PASSWORD the kit could "
                         "use instead",
                         "Write it in single quotes in .env (both read that literally), or "
                         "choose one without '$' and '\\'")
    return dataclasses.replace(
        settings, db_user=settings.db_user or service_user,
        db_name=db or settings.db_name or env.get("POSTGRES_DB") or service_user,
        db_password=env.get("POSTGRES_PASSWORD") or settings.db_password)


def open_kit(args: argparse.Namespace, root: Path = KIT_ROOT, command: str = "dbguard") -> Kit:
    settings = load_settings(root)
    require_compose_files(settings)
    runner = Runner(settings.project_dir, verbose=getattr(args, "verbose", False),
                    dry_run=getattr(args, "dry_run", False))
    # No ping of the daemon first: reading the configuration needs none, and the image's
    # inspection, which follows, names a daemon that cannot be reached.
    compose = Compose.detect(runner, settings)
    project = load_project(compose)
    image = inspect_image(runner, project.image)
    return Kit(with_credentials(settings, project, getattr(args, "db", None)), runner,
               compose.for_project(project.name), project, image, command)


def kit_lock(kit: Kit | Folder, what: str):
    """One command that starts, stops or changes data at a time per kit (a dry run, which
    changes nothing, takes none)."""
    return backup_folder_lock(kit.settings, what, kit.runner.dry_run)


@contextlib.contextmanager
def backup_folder_lock(settings: Settings, what: str, dry_run: bool = False):
    """The lock itself, on a file in the backup folder: commands that start, stop or change
    data, and those that write or delete files in that folder, take it."""
    if dry_run:
        yield
        return
    path = private_dir(settings.backup_dir) / LOCK_FILE
    try:
        handle = open(path, "a+")
    except OSError as exc:
        raise folder_failure(settings.backup_dir, exc) from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another command"
            raise Refusal(f"another dbguard command is running ({holder})",
                          "Wait for it to finish and run again; nothing was changed") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{what}, pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()


def lock_held(settings: Settings) -> str | None:
    """Who holds the lock now (for readers that do not take it), or None."""
    path = settings.backup_dir / LOCK_FILE
    try:
        handle = open(path)
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "another command"
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None
