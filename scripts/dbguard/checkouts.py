"""The checkouts of the project's repository: git worktrees (`git worktree list`) and other
clones whose containers the engine runs, which Compose project each resolves to, and which
database each uses; and a small registry in the repository's common git folder (shared by every
worktree, and left when one is removed) of the projects, volumes and clones each checkout used,
so that db-clones PRUNE can find what a removed worktree left. Reads, except `remember`.
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from .files import atomic_write
from .gitinfo import git
from .names import normalize_v2
from .settings import COMPOSE_NAMES, KIT_ROOT, needs_env_file, read_env_file

REGISTRY = "dbguard/checkouts.json"


@dataclass(frozen=True)
class Checkout:
    path: Path                  # the worktree's top folder
    branch: str                 # "" when detached
    main: bool                  # the repository's main worktree
    current: bool               # the one this command runs in
    exists: bool
    project: str                # the Compose project it resolves to
    db: str                     # the database its .env names ("" : the service's default)

    def to_json(self) -> dict:
        return {"path": str(self.path), "branch": self.branch, "main": self.main,
                "current": self.current, "exists": self.exists, "project": self.project,
                "database": self.db or None}


def top_of(folder: Path) -> Path | None:
    out = git("rev-parse", "--show-toplevel", cwd=folder)
    return Path(out.strip()).resolve() if out else None


def common_dir(folder: Path) -> Path | None:
    """The repository's common git folder (the main worktree's .git), whichever worktree."""
    out = git("rev-parse", "--path-format=absolute", "--git-common-dir", cwd=folder)
    return Path(out.strip()) if out else None


def worktrees(folder: Path) -> list[tuple[Path, str]]:
    """(path, branch) of every worktree, the main one first."""
    out = git("worktree", "list", "--porcelain", cwd=folder) or ""
    found, path, branch = [], None, ""
    for line in out.splitlines() + [""]:
        if line.startswith("worktree "):
            path, branch = Path(line[9:]).resolve(), ""
        elif line.startswith("branch "):
            branch = line[7:].removeprefix("refs/heads/")
        elif not line and path is not None:
            found.append((path, branch))
            path = None
    return found


def project_of(project_dir: Path, compose_names: tuple[str, ...]) -> str:
    """The Compose project a checkout's folder resolves to, as Compose decides it (the shell's
    COMPOSE_PROJECT_NAME, else the folder's .env, else `name:` in its compose file, else the
    folder's name)."""
    if os.environ.get("COMPOSE_PROJECT_NAME"):
        return os.environ["COMPOSE_PROJECT_NAME"]
    env = project_dir / ".env"
    values = read_env_file(env, {}) if env.is_file() else {}
    if values.get("COMPOSE_PROJECT_NAME"):
        return values["COMPOSE_PROJECT_NAME"]
    for name in compose_names:
        path = project_dir / name
        if path.is_file():
            match = re.search(r"^name\s*:\s*['\"]?([^'\"\s#]+)", path.read_text(errors="replace"),
                              re.M)
            if match:
                return match.group(1)
            break
    return normalize_v2(project_dir.name)


def db_of(kit_dir: Path) -> str:
    env = kit_dir / ".env"
    values = read_env_file(env, {}) if env.is_file() else {}
    return values.get("DJANGO_DB_NAME", "")


def checkouts(project_dir: Path, kit_dir: Path, compose_names: tuple[str, ...]
              ) -> list[Checkout]:
    """Every worktree of the repository the project lives in (empty outside one), each with the
    project and database the same relative folder resolves to there."""
    top = top_of(project_dir)
    if top is None:
        return []
    rel_project = project_dir.resolve().relative_to(top)
    rel_kit = kit_dir.resolve().relative_to(top) if kit_dir.resolve().is_relative_to(top) \
        else None
    found = []
    for n, (path, branch) in enumerate(worktrees(top)):
        exists = path.is_dir()
        pdir = path / rel_project
        found.append(Checkout(
            path=path, branch=branch, main=n == 0, current=path == top, exists=exists,
            project=project_of(pdir, compose_names) if exists else "",
            db=db_of(path / rel_kit) if exists and rel_kit is not None else ""))
    return found


def other_clones(folder: Path, known: list[Checkout], working_dirs: dict[str, str]
                 ) -> list[Checkout]:
    """Other clones of the same repository (not worktrees of it) that containers on the engine
    ran from (`working_dirs`: folder -> the Compose project of a container started there): the
    same first commit."""
    roots = git("rev-list", "--max-parents=0", "HEAD", cwd=folder)
    if not roots:
        return []
    mine = {str(c.path) for c in known}
    found = []
    for wd, project in sorted(working_dirs.items()):
        top = top_of(Path(wd)) if Path(wd).is_dir() else None
        if top is None or str(top) in mine:
            continue
        if git("rev-list", "--max-parents=0", "HEAD", cwd=top) == roots:
            branch = (git("rev-parse", "--abbrev-ref", "HEAD", cwd=top) or "").strip()
            found.append(Checkout(top, branch, False, False, True, project, db_of(top)))
            mine.add(str(top))
    return found


def others(project_dir: Path, kit_dir: Path) -> dict[str, str]:
    """The repository's other live checkouts: the project's folder in each -> the Compose
    project it resolves to (empty outside a git repository)."""
    found = checkouts(project_dir, kit_dir, COMPOSE_NAMES)
    here = next((c for c in found if c.current), None)
    if here is None:
        return {}
    inner = project_dir.resolve().relative_to(here.path)
    return {os.path.realpath(c.path / inner): c.project for c in found
            if c.exists and not c.current}


def registry(folder: Path) -> dict:
    common = common_dir(folder)
    if common is None:
        return {}
    try:
        return json.loads((common / REGISTRY).read_text())
    except (OSError, ValueError):
        return {}


def remember(folder: Path, **facts) -> None:
    """Records what this checkout uses (project, volume, clone) in the common git folder;
    best effort: a repository the kit cannot write to keeps no record."""
    common, top = common_dir(folder), top_of(folder)
    if common is None or top is None:
        return
    data = registry(folder)
    entry = data.setdefault("checkouts", {}).setdefault(str(top), {})
    entry.update({k: v for k, v in facts.items() if v}, seen=time.strftime("%Y-%m-%dT%H:%M:%S"))
    try:
        (common / REGISTRY).parent.mkdir(exist_ok=True)
        atomic_write(common / REGISTRY, json.dumps(data, indent=2, sort_keys=True).encode())
    except OSError:
        pass


def forget(folder: Path, paths: list[str]) -> None:
    common = common_dir(folder)
    data = registry(folder)
    if common is None or not data:
        return
    for path in paths:
        data.get("checkouts", {}).pop(path, None)
    try:
        atomic_write(common / REGISTRY, json.dumps(data, indent=2, sort_keys=True).encode())
    except OSError:
        pass


def env_from_main_checkout(root: Path = KIT_ROOT, dry_run: bool = False) -> Path | None:
    """In a git worktree of the kit's own repository that has no .env yet (git does not carry
    an untracked file into a new worktree): the main checkout's .env, copied (its password and
    project name included, so the worktree shares the main checkout's server). Returns the
    file copied, or None."""
    if not needs_env_file(root):
        return None
    top = top_of(root)
    found = worktrees(root) if top else []
    if not found or found[0][0] == top:
        return None
    source = found[0][0] / root.resolve().relative_to(top) / ".env"
    if not source.is_file() or dry_run:
        return None
    fd = os.open(root / ".env", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # a password
    with os.fdopen(fd, "wb") as out:
        out.write(source.read_bytes())
    return source


def checkout_notes(found: list[Checkout], project: str) -> list[str]:
    """What the checkouts mean for each other: which share this one's server (and what a
    `down` in one of them does), and which have a server of their own."""
    live = [c for c in found if c.exists]
    sharing = [c for c in live if c.project == project]
    notes = []
    if len(sharing) > 1:
        notes.append(
            f"{len(sharing)} checkouts share the Compose project {project!r}, so one server: "
            + ", ".join(f"{c.path}" + (f" ({c.db})" if c.db else "") for c in sharing)
            + ". `docker compose down` (or `make db-down`, or `docker compose stop`) in any of "
            "them stops the database under all of them, and `docker compose down -v` removes "
            "its volume for all; `make db-clone` gives each worktree a database of its own in "
            "it")
    apart = [c for c in live if c.project != project]
    if apart:
        notes.append("checkouts with a server of their own: " + ", ".join(
            f"{c.path} (project {c.project})" for c in apart) + "; each has its own volume, "
            "and `make db-clones PRUNE=1` removes a removed worktree's")
    return notes
