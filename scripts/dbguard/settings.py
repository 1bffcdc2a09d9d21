"""The kit's configuration: the project's `.env` (the one Compose reads, in the folder of the
compose file), overridden by the real environment, read once, validated once (every problem named
at once) and held in a frozen Settings. Every key is optional: the database's name, user and
password come from the database service as Compose resolves it (see kit.py), and these keys only
override them.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UsageError
from .names import normalize_v2

# scripts/dbguard/settings.py -> the kit's folder: its Makefile, scripts/, backups/, fixtures/.
# In the kit's own repository that is also the compose project's folder; installed into another
# repository (`make kit-install`), it is a folder of its own inside that project.
KIT_ROOT = Path(__file__).resolve().parents[2]

# The files Compose v2 looks for when no -f and no COMPOSE_FILE is given, in its order of
# preference, in the working directory and then each parent; and the override files it adds
# from the same folder (compose-go's DefaultFileNames and DefaultOverrideFileNames).
COMPOSE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
OVERRIDE_NAMES = ("compose.override.yml", "compose.override.yaml", "docker-compose.override.yml",
                  "docker-compose.override.yaml")


PROJECT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
COMPRESSION_RE = re.compile(r"^(auto|none|[0-9]|(gzip|lz4|zstd)(:[0-9]{1,2})?)$")

# key: (default, one-line description). `.env.example` documents the same keys; a unit test
# keeps the two in step.
SETTINGS_KEYS: dict[str, tuple[str | None, str]] = {
    "COMPOSE_PROJECT_NAME": (None, "Compose project name; locks the volume names"),
    "DJANGO_DB_NAME": (None, "database name; default: the service's POSTGRES_DB"),
    "DJANGO_DB_USER": (None, "database user; default: the service's POSTGRES_USER"),
    "DJANGO_DB_PASSWORD": (None, "database password; default: the service's POSTGRES_PASSWORD"),
    "DJANGO_DB_HOST": (None, "host the kit connects to; default: the published port's, or the "
                             "container's own address"),
    "DJANGO_DB_PORT": (None, "port the kit connects to; default: the published port, or 5432 "
                             "on the container's address"),
    "DB_IMAGE": ("postgres:17", "PostgreSQL image of the kit's own db service"),
    "COMPOSE_FILE": (None, "compose file(s), ':'-separated; default: Compose's own choice"),
    "DBGUARD_SERVICE": ("", "database service; empty: found in the compose file"),
    "DBGUARD_COMPOSE": ("auto", "auto, v2 (docker compose) or v1 (docker-compose)"),
    "DBGUARD_UP_TIMEOUT": ("90", "seconds db-up waits for the server to answer"),
    "DBGUARD_BACKUP_DIR": ("backups", "where dumps and volume snapshots go"),
    "DBGUARD_BACKUP_KEEP": ("10", "how many dumps db-prune keeps by default"),
    "DBGUARD_BACKUP_MAX_AGE_DAYS": ("7", "db-info flags a newest dump older than this; 0: off"),
    "DBGUARD_DUMP_FORMAT": ("custom", "default format of db-dump: custom or plain"),
    "DBGUARD_DUMP_COMPRESSION": ("auto", "pg_dump -Z for custom dumps; auto: zstd:1 from "
                                 "PostgreSQL 16, 1 (zlib) before"),
    "DBGUARD_SAFETY_DUMP": ("0", "db-restore and db-seed also dump the database first; the "
                            "replaced one is kept as a snapshot either way"),
    "DBGUARD_FIXTURE": ("fixtures/dev_content.sql", "the development fixture"),
    "DBGUARD_IGNORE_VOLUMES": ("", "volumes db-info and db-up leave out, comma-separated"),
}


@dataclass(frozen=True)
class Settings:
    root: Path                       # the kit's folder
    project_dir: Path                # the compose project's folder (where Compose runs)
    env_file: Path                   # project_dir/.env, which may not exist
    project_name: str | None
    project_name_origin: str | None  # "environment" or ".env"
    db_name: str                     # "" until resolved from the service (kit.open_kit)
    db_user: str
    db_password: str = field(repr=False)
    db_password_doubt: str = field(repr=False)  # why Compose could read it otherwise, or ""
    db_host: str                     # "" and 0: found when a connection is made
    db_port: int
    compose_files: tuple[Path, ...]  # what Compose loads; () when no compose file was found
    compose_files_explicit: bool     # set by COMPOSE_FILE in the kit's settings: passed as -f
    compose_flavor: str
    service: str | None
    up_timeout: int
    backup_dir: Path
    backup_keep: int
    backup_max_age_days: float
    dump_format: str
    dump_compression: str  # auto, or pg_dump's -Z value
    safety_dump: bool
    fixture: Path
    ignore_volumes: frozenset[str]


def read_env_file(path: Path, raw: dict | None = None) -> dict[str, str]:
    """Reads .env with python-dotenv, refusing lines it cannot parse instead of skipping them.
    `raw`, when given, gets each key's line as written (to tell whether Compose would read it
    the same way). The message names line numbers only: a broken line may hold a password.
    """
    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    text = path.read_text(encoding="utf-8")
    bindings = list(parse_stream(io.StringIO(text)))
    bad = [b.original.line for b in bindings
           if b.error or (b.key is not None and b.value is None)]
    if bad:
        lines = ", ".join(str(n) for n in bad)
        raise UsageError(f"{path} line {lines} is not KEY=value",
                         "Fix or remove that line (see .env.example for the format)")
    if raw is not None:
        raw.update({b.key: b.original.string for b in bindings if b.key})
    return {k: v for k, v in dotenv_values(stream=io.StringIO(text)).items() if v is not None}


def compose_reads_otherwise(line: str) -> str:
    """Why Docker Compose could read a `.env` value otherwise than python-dotenv does: a `$`
    (Compose substitutes variables) or a backslash escape inside double quotes; "" if none."""
    value = line.split("=", 1)[1].strip() if "=" in line else ""
    if value.startswith("'"):
        return ""  # single quotes: both read it literally
    if "$" in value:
        return "contains '$', which Docker Compose reads as a variable"
    if value.startswith('"') and "\\" in value:
        return "holds a backslash inside double quotes, which Docker Compose and python-dotenv " \
            "read differently"
    return ""


def env_compose_files(value: str, base: Path, environ: dict[str, str]) -> tuple[Path, ...]:
    """COMPOSE_FILE split as Compose splits it (COMPOSE_PATH_SEPARATOR, else the OS's), each
    file relative to `base`."""
    separator = environ.get("COMPOSE_PATH_SEPARATOR") or os.pathsep
    return tuple(base / f for f in value.split(separator) if f)


def discover_project(start: Path) -> tuple[Path, tuple[Path, ...], bool]:
    """The compose project's folder and files, found as Compose finds them from `start`: the
    first folder, from `start` up, whose `.env` sets COMPOSE_FILE or that holds a compose file
    by one of Compose's names (plus the override file beside it). The flag says whether the
    files came from COMPOSE_FILE. No compose file anywhere: `start` and no files."""
    for folder in (start, *start.parents):
        env_file = folder / ".env"
        if env_file.is_file():
            with contextlib.suppress(OSError, UnicodeDecodeError, UsageError):
                value = read_env_file(env_file).get("COMPOSE_FILE", "")
                if value:
                    files = env_compose_files(value, folder, read_env_file(env_file))
                    return files[0].parent if files else folder, files, True
        main = next((folder / n for n in COMPOSE_NAMES if (folder / n).is_file()), None)
        if main:
            override = next((folder / n for n in OVERRIDE_NAMES if (folder / n).is_file()), None)
            return folder, (main,) + ((override,) if override else ()), False
    return start, (), False


def load_settings(root: Path = KIT_ROOT, environ: dict[str, str] | None = None) -> Settings:
    """Reads the kit's `.env` and, when the project lives elsewhere, the project's `.env`
    (Compose's own); a variable set in the real environment wins over both, the kit's file over
    the project's. Neither file has to exist."""
    environ = dict(os.environ if environ is None else environ)
    kit_env = root / ".env"
    raw: dict[str, str] = {}
    kit_values = read_env_file(kit_env, raw) if kit_env.is_file() else {}
    # COMPOSE_FILE as Compose takes it: from the shell, relative to the folder you are in; in
    # the kit's own .env, relative to the kit's folder.
    explicit = environ.get("COMPOSE_FILE") or kit_values.get("COMPOSE_FILE")
    if explicit:
        base = Path.cwd() if environ.get("COMPOSE_FILE") else root
        compose_files = env_compose_files(explicit, base, environ)
        project_dir = compose_files[0].parent if compose_files else root
    else:
        project_dir, compose_files, explicit = discover_project(root)
    env_file = project_dir / ".env"
    project_raw: dict[str, str] = {}
    project_values = read_env_file(env_file, project_raw) \
        if env_file != kit_env and env_file.is_file() else {}
    file_values = {**project_values, **kit_values}
    raw = {**project_raw, **raw}

    def get(key: str) -> str:
        if environ.get(key, "") != "":
            return environ[key]
        if file_values.get(key, "") != "":
            return file_values[key]
        return SETTINGS_KEYS[key][0] or ""

    problems: list[str] = []
    doubt = "" if environ.get("DJANGO_DB_PASSWORD") else \
        compose_reads_otherwise(raw.get("DJANGO_DB_PASSWORD", ""))

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

    port = integer("DJANGO_DB_PORT", 1, 65535) if get("DJANGO_DB_PORT") else 0
    up_timeout = integer("DBGUARD_UP_TIMEOUT", 1, 3600)
    keep = integer("DBGUARD_BACKUP_KEEP", 1, 100000)
    max_age = integer("DBGUARD_BACKUP_MAX_AGE_DAYS", 0, 100000)
    flavor = choice("DBGUARD_COMPOSE", ("auto", "v2", "v1"))
    dump_format = choice("DBGUARD_DUMP_FORMAT", ("custom", "plain"))
    safety = choice("DBGUARD_SAFETY_DUMP", ("1", "0", "yes", "no", "true", "false"))
    compression = get("DBGUARD_DUMP_COMPRESSION").lower()
    if not COMPRESSION_RE.match(compression):
        problems.append(f"DBGUARD_DUMP_COMPRESSION={get('DBGUARD_DUMP_COMPRESSION')!r} is not "
                        "auto, a level 0-9, or gzip/lz4/zstd[:level] (pg_dump -Z)")

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
        where = kit_env if kit_values or not project_values else env_file
        raise UsageError(f"{where}: {'; '.join(problems)}",
                         "Fix these keys in .env (or the environment); .env.example documents "
                         "them")
    return Settings(
        root=root, project_dir=project_dir, env_file=env_file, project_name=name,
        project_name_origin=origin, db_name=get("DJANGO_DB_NAME"), db_user=get("DJANGO_DB_USER"),
        db_password=get("DJANGO_DB_PASSWORD"), db_password_doubt=doubt,
        db_host=get("DJANGO_DB_HOST"), db_port=port,
        compose_files=compose_files, compose_files_explicit=bool(explicit),
        compose_flavor=flavor, service=get("DBGUARD_SERVICE") or None, up_timeout=up_timeout,
        backup_dir=root / get("DBGUARD_BACKUP_DIR"), backup_keep=keep,
        backup_max_age_days=max_age, dump_format=dump_format, dump_compression=compression,
        safety_dump=safety in ("1", "yes", "true"), fixture=root / get("DBGUARD_FIXTURE"),
        ignore_volumes=frozenset(v.strip() for v in get("DBGUARD_IGNORE_VOLUMES").split(",")
                                 if v.strip()),
    )


def needs_env_file(root: Path = KIT_ROOT) -> bool:
    """True in the kit's own repository before its first db-up: its compose file needs the
    .env that .env.example shows. An installed kit never writes the host's .env."""
    return not (root / ".env").exists() and (root / ".env.example").is_file() and \
        (root / "docker-compose.yml").is_file() and discover_project(root)[0] == root


def init_env_file(root: Path = KIT_ROOT) -> str | None:
    """Creates .env from .env.example when `needs_env_file`, with COMPOSE_PROJECT_NAME locked to
    the name Compose uses for this folder today (so that locking moves nothing). Returns that
    name, or None when nothing was created."""
    if not needs_env_file(root):
        return None
    name = normalize_v2(root.name) or "dbguard"
    text = (root / ".env.example").read_text(encoding="utf-8")
    text = re.sub(r"^#\s*COMPOSE_PROJECT_NAME=.*$", f"COMPOSE_PROJECT_NAME={name}", text, count=1,
                  flags=re.M)
    fd = os.open(root / ".env", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # a password
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return name

