"""The kit opened for one command: settings, runner, Compose pinned to the project, the project
and its image, read once and frozen; and the lock that lets one data-changing command run at a
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
from .docker import (Container, ImageInfo, container_endpoint, inspect_image,
                     list_containers)
from .errors import Refusal
from .files import folder_failure, private_dir
from .runner import Runner, command_failure
from .settings import KIT_ROOT, Settings, load_settings
from .volumes import Volume, find_volumes


@dataclass(frozen=True)
class Kit:
    settings: Settings
    runner: Runner
    compose: Compose
    project: Project
    image: ImageInfo

    def scan(self, also: Iterable[str] = ()) -> list[Volume]:
        """The candidate volumes as they are now (see volumes.find_volumes)."""
        return find_volumes(self.runner, self.project, self.image,
                            self.settings.ignore_volumes, also)

    def service_container(self) -> Container | None:
        mine = [c for c in list_containers(self.runner)
                if c.project == self.project.name and c.service == self.project.service]
        mine.sort(key=lambda c: c.state != "running")
        return mine[0] if mine else None

    def with_image(self, image: ImageInfo) -> Kit:
        """The same kit after the image changed (db-up pulled it)."""
        return dataclasses.replace(self, image=image)

    def reachable(self) -> Kit:
        """The same kit with the server's address filled in (DJANGO_DB_HOST/PORT when set;
        else the running service container's published port or its own address). Called
        again once db-up has started the service."""
        s = self.settings
        if s.db_host and s.db_port:
            return self
        if s.db_port:  # a port of the host's, with no host named: the loopback interface
            return dataclasses.replace(self, settings=dataclasses.replace(s, db_host="127.0.0.1"))
        container = self.service_container()
        if container is None or container.state != "running":
            return self
        found = container_endpoint(self.runner, container.id)
        if found is None:
            return self
        host, port = found
        return dataclasses.replace(self, settings=dataclasses.replace(
            s, db_host=s.db_host or host, db_port=port))


def with_credentials(settings: Settings, project: Project) -> Settings:
    """The database, user and password the kit uses: DJANGO_DB_NAME and DJANGO_DB_USER when set,
    else what the database service gets from Compose (POSTGRES_DB, POSTGRES_USER), else the
    image's defaults (user postgres, database named after the user); the password is the
    service's POSTGRES_PASSWORD, DJANGO_DB_PASSWORD standing in when the service shows none
    (a password given through a secrets file, say)."""
    env = project.environment
    service_user = env.get("POSTGRES_USER") or "postgres"
    return dataclasses.replace(
        settings, db_user=settings.db_user or service_user,
        db_name=settings.db_name or env.get("POSTGRES_DB") or service_user,
        db_password=env.get("POSTGRES_PASSWORD") or settings.db_password)


def open_kit(args: argparse.Namespace, root: Path = KIT_ROOT) -> Kit:
    settings = load_settings(root)
    require_compose_files(settings)
    runner = Runner(settings.project_dir, verbose=getattr(args, "verbose", False),
                    dry_run=getattr(args, "dry_run", False))
    ping = runner(["docker", "version", "--format", "{{.Server.Version}}"], check=False)
    if ping.returncode != 0:
        raise command_failure(["docker", "version"], ping.stderr)
    compose = Compose.detect(runner, settings)
    project = load_project(compose)
    image = inspect_image(runner, project.image)
    kit = Kit(with_credentials(settings, project), runner, compose.for_project(project.name),
              project, image)
    return kit.reachable()


def kit_lock(kit: Kit, what: str):
    """One data-changing dbguard command at a time per kit (a dry run takes no lock)."""
    return backup_folder_lock(kit.settings, what, kit.runner.dry_run)


@contextlib.contextmanager
def backup_folder_lock(settings: Settings, what: str, dry_run: bool = False):
    """The lock itself, on a file in the backup folder: commands that change data, and those
    that write or delete files in that folder (db-dump, db-prune), take it."""
    if dry_run:
        yield
        return
    path = private_dir(settings.backup_dir) / ".dbguard.lock"
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
            raise Refusal(f"another dbguard command is changing data ({holder})",
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
