"""Compose project names, as each Compose generation makes them, and which one is in effect.
Pure functions: no Docker, no files.
"""
from __future__ import annotations

import re

from .errors import UsageError


def normalize_v2(name: str) -> str:
    """Compose v2 (compose-go): lowercase, keep [a-z0-9_-], trim leading '_' and '-'."""
    return re.sub(r"[^a-z0-9_-]", "", name.lower()).lstrip("_-")


def normalize_v1(name: str) -> str:
    """docker-compose 1.21 to 1.29: lowercase, keep [a-z0-9_-], no trim."""
    return re.sub(r"[^a-z0-9_-]", "", name.lower())


def normalize_v1_legacy(name: str) -> str:
    """docker-compose before 1.21 also dropped '-' and '_' (sum-platform -> sumplatform)."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def directory_project_names(directory: str) -> dict[str, str]:
    """The names each Compose generation derives from a directory (basename) alone."""
    return {"v2": normalize_v2(directory), "v1": normalize_v1(directory),
            "v1-pre-1.21": normalize_v1_legacy(directory)}


def project_name(configured: str | None, origin: str | None, v2: bool, compose_text: str,
                 resolved: str | None, directory: str) -> tuple[str, str]:
    """The project name in effect and where it came from, in Compose's order: the environment,
    then .env (both as COMPOSE_PROJECT_NAME), then `name:` in the compose file (v2 only), then
    the directory's name. `resolved` is what v2 itself reported, when it was asked."""
    if configured:
        name, source = configured, origin or ".env"
    elif v2 and re.search(r"^name\s*:", compose_text, re.M):
        name, source = resolved or normalize_v2(directory), "compose file"
    else:
        name, source = resolved or (normalize_v2 if v2 else normalize_v1)(directory), "directory"
    if not name:
        raise UsageError(f"no Compose project name can be made from the directory "
                         f"{directory!r}", "Set COMPOSE_PROJECT_NAME in .env")
    return name, source
