"""The kit's configuration: `.env` beside the Makefile, overridden by the real environment, read
once, validated once (every problem named at once) and held in a frozen Settings.
"""
from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UsageError
from .names import normalize_v2

# scripts/dbguard/settings.py -> the folder that holds the Makefile, .env and backups/
KIT_ROOT = Path(__file__).resolve().parents[2]


PROJECT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")

# key: (default, one-line description). `.env.example` documents the same keys; a unit test
# keeps the two in step.
SETTINGS_KEYS: dict[str, tuple[str | None, str]] = {
    "COMPOSE_PROJECT_NAME": (None, "Compose project name; locks the volume names"),
    "DJANGO_DB_NAME": (None, "database name"),
    "DJANGO_DB_USER": (None, "database user (the image's POSTGRES_USER)"),
    "DJANGO_DB_PASSWORD": (None, "database password"),
    "DJANGO_DB_HOST": ("localhost", "host the application and the kit connect to"),
    "DJANGO_DB_PORT": ("5432", "published port of the database"),
    "DB_IMAGE": ("postgres:17", "PostgreSQL image of the db service"),
    "COMPOSE_FILE": ("docker-compose.yml", "compose file(s), relative to the kit, ':'-separated"),
    "DBGUARD_SERVICE": ("", "database service; empty: found in the compose file"),
    "DBGUARD_COMPOSE": ("auto", "auto, v2 (docker compose) or v1 (docker-compose)"),
    "DBGUARD_UP_TIMEOUT": ("90", "seconds db-up waits for the server to become healthy"),
    "DBGUARD_BACKUP_DIR": ("backups", "where dumps and volume snapshots go"),
    "DBGUARD_BACKUP_KEEP": ("10", "how many dumps db-prune keeps by default"),
    "DBGUARD_BACKUP_MAX_AGE_DAYS": ("7", "db-info flags a newest dump older than this; 0: off"),
    "DBGUARD_DUMP_FORMAT": ("custom", "default format of db-dump: custom or plain"),
    "DBGUARD_SAFETY_DUMP": ("1", "db-restore and db-seed dump the database first; 0: off"),
    "DBGUARD_FIXTURE": ("fixtures/dev_content.sql", "the development fixture"),
    "DBGUARD_IGNORE_VOLUMES": ("", "volumes db-info and db-up leave out, comma-separated"),
}
REQUIRED_KEYS = ("DJANGO_DB_NAME", "DJANGO_DB_USER", "DJANGO_DB_PASSWORD")


@dataclass(frozen=True)
class Settings:
    root: Path
    env_file: Path
    project_name: str | None
    project_name_origin: str | None  # "environment" or ".env"
    db_name: str
    db_user: str
    db_password: str = field(repr=False)
    db_host: str
    db_port: int
    compose_files: tuple[Path, ...]
    compose_flavor: str
    service: str | None
    up_timeout: int
    backup_dir: Path
    backup_keep: int
    backup_max_age_days: float
    dump_format: str
    safety_dump: bool
    fixture: Path
    ignore_volumes: frozenset[str]


def read_env_file(path: Path) -> dict[str, str]:
    """Reads .env with python-dotenv, refusing lines it cannot parse instead of skipping them.

    The message names line numbers only: a broken line may hold a password.
    """
    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    text = path.read_text(encoding="utf-8")
    bad = [b.original.line for b in parse_stream(io.StringIO(text))
           if b.error or (b.key is not None and b.value is None)]
    if bad:
        lines = ", ".join(str(n) for n in bad)
        raise UsageError(f"{path} line {lines} is not KEY=value",
                         "Fix or remove that line (see .env.example for the format)")
    return {k: v for k, v in dotenv_values(stream=io.StringIO(text)).items() if v is not None}


def load_settings(root: Path = KIT_ROOT, environ: dict[str, str] | None = None) -> Settings:
    """Reads `.env` at the kit root; a variable set in the real environment wins over it."""
    environ = dict(os.environ if environ is None else environ)
    env_file = root / ".env"
    if not env_file.is_file():
        example = " from .env.example" if (root / ".env.example").is_file() else ""
        raise UsageError(f"no .env file in {root}",
                         f"Create it{example} and review it: cp .env.example .env "
                         "(`make db-up` does this for you)")
    file_values = read_env_file(env_file)

    def get(key: str) -> str:
        if environ.get(key, "") != "":
            return environ[key]
        if file_values.get(key, "") != "":
            return file_values[key]
        return SETTINGS_KEYS[key][0] or ""

    problems: list[str] = []
    missing = [k for k in REQUIRED_KEYS if not get(k)]
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    if "$" in get("DJANGO_DB_PASSWORD"):
        # Compose v2 reads `$x` in .env as a variable (the cluster would get another password
        # than the kit uses) and prints a `${` it cannot parse, password and all, in its error.
        problems.append("DJANGO_DB_PASSWORD contains '$', which Docker Compose would read as a "
                        "variable; choose a password without '$' (it was not printed)")

    def integer(key: str, low: int, high: int) -> int:
        raw = get(key)
        try:
            value = int(raw)
            if low <= value <= high:
                return value
        except ValueError:
            pass
        problems.append(f"{key}={raw!r} is not a whole number from {low} to {high}")
        return low

    def choice(key: str, allowed: tuple[str, ...]) -> str:
        raw = get(key).lower()
        if raw not in allowed:
            problems.append(f"{key}={get(key)!r} is not one of {', '.join(allowed)}")
        return raw

    port = integer("DJANGO_DB_PORT", 1, 65535)
    up_timeout = integer("DBGUARD_UP_TIMEOUT", 1, 3600)
    keep = integer("DBGUARD_BACKUP_KEEP", 1, 100000)
    max_age = integer("DBGUARD_BACKUP_MAX_AGE_DAYS", 0, 100000)
    flavor = choice("DBGUARD_COMPOSE", ("auto", "v2", "v1"))
    dump_format = choice("DBGUARD_DUMP_FORMAT", ("custom", "plain"))
    safety = choice("DBGUARD_SAFETY_DUMP", ("1", "0", "yes", "no", "true", "false"))

    name = get("COMPOSE_PROJECT_NAME") or None
    origin = None
    if name:
        origin = "environment" if environ.get("COMPOSE_PROJECT_NAME") else ".env"
        if not PROJECT_NAME_RE.match(name):
            fixed = normalize_v2(name) or "myproject"
            problems.append(f"COMPOSE_PROJECT_NAME={name!r} (from {origin}) is not a valid "
                            f"Compose project name (lowercase letters, digits, '-' and '_', "
                            f"starting with a letter or digit), e.g. {fixed!r}")
    if problems:
        raise UsageError(f"{env_file}: {'; '.join(problems)}",
                         "Fix these keys in .env (or the environment); .env.example documents "
                         "them")
    return Settings(
        root=root, env_file=env_file, project_name=name, project_name_origin=origin,
        db_name=get("DJANGO_DB_NAME"), db_user=get("DJANGO_DB_USER"),
        db_password=get("DJANGO_DB_PASSWORD"), db_host=get("DJANGO_DB_HOST"), db_port=port,
        compose_files=tuple(root / f for f in get("COMPOSE_FILE").split(os.pathsep) if f),
        compose_flavor=flavor, service=get("DBGUARD_SERVICE") or None, up_timeout=up_timeout,
        backup_dir=root / get("DBGUARD_BACKUP_DIR"), backup_keep=keep,
        backup_max_age_days=max_age, dump_format=dump_format,
        safety_dump=safety in ("1", "yes", "true"), fixture=root / get("DBGUARD_FIXTURE"),
        ignore_volumes=frozenset(v.strip() for v in get("DBGUARD_IGNORE_VOLUMES").split(",")
                                 if v.strip()),
    )


def init_env_file(root: Path = KIT_ROOT) -> bool:
    """Creates .env from .env.example when it is missing (db-up's first run). True if created."""
    env_file, example = root / ".env", root / ".env.example"
    if env_file.exists() or not example.is_file():
        return False
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # it holds a password
    with os.fdopen(fd, "w") as out:
        out.write(example.read_text(encoding="utf-8"))
    return True
