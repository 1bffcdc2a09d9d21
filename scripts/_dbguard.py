"""Shared code of the dbguard scripts (the leading underscore says: not a command).

Settings, messages, prompts and the error types; running docker and docker compose; reading the
compose project; finding and inspecting the volumes that hold (or once held) its database; and
talking to PostgreSQL. The scripts beside this file are thin: each parses its flags, calls into
here and returns an exit code.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import fcntl
import functools
import io
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

KIT_ROOT = Path(__file__).resolve().parent.parent


EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3

# Labels that Docker Compose puts on the volumes it creates; the best evidence of where a volume
# came from. Volumes made by hand or by copy tools usually carry none.
LABEL_PROJECT = "com.docker.compose.project"
LABEL_VOLUME = "com.docker.compose.volume"
LABEL_VERSION = "com.docker.compose.version"
LABEL_SERVICE = "com.docker.compose.service"
LABEL_WORKDIR = "com.docker.compose.project.working_dir"
# Put on every throwaway container the kit starts, so a leftover one can be found.
LABEL_HELPER = "dbguard.helper"
# A file the kit writes into a volume before it empties it and removes after a verified copy:
# while it is there the volume holds no trustworthy cluster.
INCOMPLETE_MARKER = ".dbguard-incomplete"


def _use_kit_venv() -> None:
    """`python3 scripts/x.py` works without activating anything: when the dependencies are not
    importable here, run again under the kit's .venv (which any make target creates)."""
    try:
        import dotenv  # noqa: F401
        import psycopg  # noqa: F401
        return
    except ImportError:
        pass
    venv = Path(os.environ.get("VENV") or KIT_ROOT / ".venv")
    python = (venv if venv.is_absolute() else KIT_ROOT / venv) / "bin" / "python"
    if python.exists() and not os.environ.get("DBGUARD_REEXEC"):  # (the variable: once)
        os.environ["DBGUARD_REEXEC"] = "1"
        os.execv(str(python), [str(python), *sys.argv])
    print("ERROR: python-dotenv and psycopg are not installed for this Python. Run any make "
          "target once (e.g. `make db-info`): it creates .venv with them", file=sys.stderr)
    sys.exit(EXIT_FAILED)


if __name__ != "__main__" and Path(sys.argv[0]).parent.resolve() == KIT_ROOT / "scripts":
    _use_kit_venv()


# ---------------------------------------------------------------------------------------------
# Errors and messages
# ---------------------------------------------------------------------------------------------

class Failure(Exception):
    """An expected failure: one `ERROR:` line that ends with the next step, exit 1."""

    code = EXIT_FAILED

    def __init__(self, message: str, next_step: str, details: Sequence[str] = ()):
        super().__init__(message)
        self.message = message
        self.next_step = next_step
        self.details = list(details)

    def line(self) -> str:
        return f"ERROR: {self.message}. {self.next_step}"


class Refusal(Failure):
    """A safety check said no: nothing was changed, exit 3."""

    code = EXIT_REFUSED


class UsageError(Failure):
    """The command line or the configuration is wrong, exit 2."""

    code = EXIT_USAGE


def _colour(level: str) -> tuple[str, str]:
    if os.environ.get("NO_COLOR") or not sys.stderr.isatty():
        return "", ""
    codes = {"ERROR": "31", "WARNING": "33", "SUCCESS": "32", "INFO": "36", "==>": "1"}
    return f"\033[{codes.get(level, '0')}m", "\033[0m"


def say(level: str, text: str) -> None:
    """Messages go to stderr; stdout is kept for what the user asked for."""
    start, end = _colour(level)
    print(f"{start}{level}{end}{'' if level == '==>' else ':'} {text}", file=sys.stderr, flush=True)


headline = functools.partial(say, "==>")
info = functools.partial(say, "INFO")
warning = functools.partial(say, "WARNING")
success = functools.partial(say, "SUCCESS")


def detail(text: str = "") -> None:
    print(f"  {text}" if text else "", file=sys.stderr, flush=True)


def entrypoint(main: Callable[[list[str] | None], int]) -> Callable[[list[str] | None], int]:
    """Turns expected failures into their one ERROR line and exit code; bugs keep the traceback."""

    @functools.wraps(main)
    def wrapper(argv: list[str] | None = None) -> int:
        try:
            return main(argv)
        except Failure as exc:
            for line in exc.details:
                print(line, file=sys.stderr)
            start, end = _colour("ERROR")
            print(f"{start}{exc.line()}{end}", file=sys.stderr, flush=True)
            return exc.code
        except KeyboardInterrupt:
            print("ERROR: interrupted. Nothing after the last completed step was changed; run "
                  "the command again", file=sys.stderr)
            return 130

    return wrapper


def confirm(question: str, *, assume_yes: bool) -> None:
    """Asks a [y/N] question; returns on yes, raises Refusal on anything else.

    Without a terminal there is nobody to ask, so the answer is no unless --yes was given.
    """
    if assume_yes:
        info(f"{question} [y/N] yes (--yes)")
        return
    if not sys.stdin.isatty():
        raise Refusal("no terminal to ask for confirmation, and --yes was not given",
                      "Run it in a terminal, or confirm ahead with YES=1 (make) or --yes "
                      "(script); nothing was changed")
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    try:
        answer = input()
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        raise Refusal("not confirmed", "Nothing was changed")


def human_size(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def human_age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, length in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= length:
            count = seconds // length
            return f"{count} {unit}{'' if count == 1 else 's'} ago"
    return "just now"


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def local_time(value: str | dt.datetime | None) -> str:
    if not value:
        return "?"
    moment = parse_time(value) if isinstance(value, str) else value
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


class Progress:
    """One self-rewriting status line on a terminal; silent elsewhere (and with --no-progress)."""

    def __init__(self, label: str, total: int | None = None, enabled: bool | None = None):
        self.label, self.total = label, total
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.shown = False

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        text = f"{self.label}: {human_size(done)}"
        if self.total:
            text += f" of {human_size(self.total)} ({min(100, 100 * done // self.total)}%)"
        print(f"\r{text}\033[K", end="", file=sys.stderr, flush=True)
        self.shown = True

    def close(self) -> None:
        if self.shown:
            print(file=sys.stderr, flush=True)
            self.shown = False


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str):
        print(f"ERROR: {message}. See `{self.prog} --help`", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def parser(doc: str, *, dry_run: bool = True, yes: bool = False) -> argparse.ArgumentParser:
    """The script's docstring is its --help: first line the summary, the rest the description."""
    summary, _, rest = doc.strip().partition("\n")
    p = _ArgumentParser(description=summary, epilog=textwrap.dedent(rest).strip(),
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print every docker command before it runs")
    if dry_run:
        p.add_argument("-n", "--dry-run", action="store_true",
                       help="show what would be done and change nothing")
    if yes:
        p.add_argument("-y", "--yes", action="store_true",
                       help="answer yes to the confirmation question (needed without a terminal)")
    return p


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Compose project names
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Running commands
# ---------------------------------------------------------------------------------------------

DAEMON_DOWN = ("Cannot connect to the Docker daemon", "error during connect",
               "Is the docker daemon running", "connect: no such file or directory",
               "connection refused")


def _daemon_failure() -> Failure:
    where = os.environ.get("DOCKER_HOST") or os.environ.get("DOCKER_CONTEXT") or "the default socket"
    return Failure(f"cannot reach the Docker daemon ({where})",
                   "Start Docker (or fix DOCKER_HOST / DOCKER_CONTEXT) and run again; "
                   "`docker info` shows what is wrong")


class Runner:
    """Runs argument lists (never a shell). -v prints each command; --dry-run prints the ones
    that would change something instead of running them, and runs the read-only ones."""

    def __init__(self, cwd: Path = KIT_ROOT, verbose: bool = False, dry_run: bool = False):
        self.cwd, self.verbose, self.dry_run = cwd, verbose, dry_run
        self.calls = 0

    def show(self, args: Sequence[str], prefix: str = "+") -> None:
        shown = [f"<{SCRIPT_NAMES.get(a, 'script')} script>" if "\n" in a else a for a in args]
        print(f"{prefix} {shlex.join(shown)}", file=sys.stderr, flush=True)

    def __call__(self, args: Sequence[str], *, mutates: bool = False, check: bool = True,
                 stdin_file=None, stdout=subprocess.PIPE, stderr=subprocess.PIPE
                 ) -> subprocess.CompletedProcess:
        args = list(args)
        if mutates and self.dry_run:
            self.show(args, "would run:")
            return subprocess.CompletedProcess(args, 0, b"", b"")
        if self.verbose:
            self.show(args)
        self.calls += 1
        try:
            stdin = stdin_file if stdin_file is not None else subprocess.DEVNULL
            result = subprocess.run(args, cwd=self.cwd, stdin=stdin, stdout=stdout,
                                    stderr=stderr)
        except FileNotFoundError:
            raise Failure(f"{args[0]} is not installed (or not on PATH)",
                          "Install Docker (with Compose) and run again") from None
        if check and result.returncode != 0:
            raise command_failure(args, result.stderr)
        return result

    def popen(self, args: Sequence[str], **kwargs) -> subprocess.Popen:
        """For streams (dumps, copies); the caller owns the process."""
        args = list(args)
        if self.verbose:
            self.show(args)
        self.calls += 1
        kwargs.setdefault("cwd", self.cwd)
        try:
            return subprocess.Popen(args, **kwargs)
        except FileNotFoundError:
            raise Failure(f"{args[0]} is not installed (or not on PATH)",
                          "Install Docker (with Compose) and run again") from None


def command_failure(args: Sequence[str], stderr: bytes | str | None) -> Failure:
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else (stderr or "")
    if any(s in text for s in DAEMON_DOWN):
        return _daemon_failure()
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else "no error output"
    words = args[:3] if args[:2] == ["docker", "compose"] else args[:2]
    return Failure(f"`{' '.join(words)}` failed: {last}",
                   "Run again with -v (V=1) to see every command")


# ---------------------------------------------------------------------------------------------
# Compose
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Project:
    """What the kit needs to know of the compose project, whichever Compose read it."""

    name: str
    name_source: str            # environment, .env, compose file, directory
    directory: Path
    service: str
    image: str
    volume_key: str             # the key under `volumes:` in the compose file
    volume: str                 # the active volume's full name
    external: bool
    mount_target: str
    service_pgdata: str | None  # PGDATA set in the service's environment, if any

    @property
    def locked(self) -> bool:
        return self.name_source != "directory"


class Compose:
    """Every compose call goes through `args()`, which pins the files, the project directory,
    the env file and (once known) the project, so the current directory never matters."""

    def __init__(self, runner: Runner, settings: Settings):
        self.runner, self.settings = runner, settings
        self.command, self.version = self._detect()
        self.v2 = not self.version.startswith("1.")
        self.project_name: str | None = None
        missing = [str(f) for f in settings.compose_files if not f.is_file()]
        if missing:
            raise UsageError(f"compose file not found: {', '.join(missing)}",
                             "Set COMPOSE_FILE in .env to your compose file (relative to the kit)")

    @property
    def flavor(self) -> str:
        return "v2" if self.v2 else "v1"

    def _detect(self) -> tuple[list[str], str]:
        order = {"auto": ("v2", "v1"), "v2": ("v2",), "v1": ("v1",)}[self.settings.compose_flavor]
        commands = {"v2": ["docker", "compose"], "v1": ["docker-compose"]}
        for flavor in order:
            try:
                result = self.runner(commands[flavor] + ["version", "--short"], check=False)
            except Failure:
                continue
            if result.returncode == 0 and result.stdout.strip():
                return commands[flavor], result.stdout.decode().strip().lstrip("v")
        tried = " and ".join(f"`{' '.join(commands[f])}`" for f in order)
        raise Failure(f"no Docker Compose found (tried {tried})",
                      "Install the Compose plugin (or docker-compose), or set DBGUARD_COMPOSE "
                      "in .env")

    def args(self, *rest: str) -> list[str]:
        first = self.settings.compose_files[0]
        argv = list(self.command)
        for f in self.settings.compose_files:
            argv += ["-f", str(f)]
        argv += ["--project-directory", str(first.parent)]
        if self.settings.env_file.is_file():
            argv += ["--env-file", str(self.settings.env_file)]
        if self.project_name:
            argv += ["-p", self.project_name]
        return argv + list(rest)

    def __call__(self, *rest: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        result = self.runner(self.args(*rest), check=False, **kwargs)
        if check and result.returncode != 0:  # named by its subcommand, not its options
            raise command_failure([*self.command, rest[0]], result.stderr)
        return result

    def config(self) -> tuple[dict, str | None]:
        """The resolved compose model in v2's JSON shape, and the project name v2 resolved."""
        if self.v2:
            data = json.loads(self("config", "--format", "json").stdout)
            return data, data.get("name")
        return v1_model(parse_yaml(self("config").stdout.decode())), None

    def load_project(self) -> Project:
        settings = self.settings
        model, resolved = self.config()
        directory = settings.compose_files[0].parent
        raw = "\n".join(f.read_text(encoding="utf-8", errors="replace")
                        for f in settings.compose_files)
        name, source = project_name(settings.project_name, settings.project_name_origin,
                                    self.v2, raw, resolved, directory.name)
        self.project_name = name
        return project_from_model(model, name, source, directory, settings.service)


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


PG_MOUNT_HINTS = ("/var/lib/postgresql/data", "/var/lib/postgresql")


def _service_env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _looks_like_postgres(service: dict) -> bool:
    env = _service_env(service)
    image = str(service.get("image") or "")
    targets = [m.get("target", "") for m in service.get("volumes") or [] if isinstance(m, dict)]
    return (re.search(r"(^|/)(postgres|postgis|pgvector|timescaledb)", image) is not None
            or any(k.startswith("POSTGRES_") for k in env)
            or any(t.startswith("/var/lib/postgresql") for t in targets))


def project_from_model(model: dict, name: str, source: str, directory: Path,
                       wanted_service: str | None) -> Project:
    """Finds the database service, its data mount and its volume in a compose model."""
    services: dict = model.get("services") or {}
    if wanted_service:
        if wanted_service not in services:
            raise UsageError(f"DBGUARD_SERVICE={wanted_service!r} is not a service of the "
                             f"compose file (services: {', '.join(sorted(services)) or 'none'})",
                             "Set DBGUARD_SERVICE in .env to the database service")
        service_name = wanted_service
    else:
        found = sorted(s for s, spec in services.items() if _looks_like_postgres(spec))
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
    mounts = [m for m in service.get("volumes") or [] if isinstance(m, dict)]

    def rank(m: dict) -> int:
        target = m.get("target", "")
        if pgdata and (pgdata == target or pgdata.startswith(target.rstrip("/") + "/")):
            return 0
        return PG_MOUNT_HINTS.index(target) + 1 if target in PG_MOUNT_HINTS else 99

    mounts = sorted((m for m in mounts if rank(m) < 99), key=rank)
    where = f"service {service_name!r}"
    if not mounts:
        raise UsageError(f"{where} mounts no volume at /var/lib/postgresql/data (or "
                         "/var/lib/postgresql): its data would live in an anonymous volume that "
                         "`rm -v` or `down -v` deletes",
                         "Give it a named volume, as the kit's docker-compose.yml does")
    mount = mounts[0]
    if mount.get("type") != "volume" or not mount.get("source"):
        kind = "a bind mount" if mount.get("type") == "bind" else "an anonymous volume"
        raise UsageError(f"{where} keeps its data in {kind} ({mount.get('source') or 'unnamed'}"
                         f" at {mount.get('target')}), not a named volume",
                         "dbguard guards named volumes; declare one under `volumes:` as the "
                         "kit's docker-compose.yml does")
    key = mount["source"]
    spec = (model.get("volumes") or {}).get(key) or {}
    external = bool(spec.get("external"))
    volume = spec.get("name") or (key if external else f"{name}_{key}")
    return Project(name=name, name_source=source, directory=directory, service=service_name,
                   image=str(service.get("image") or ""), volume_key=key, volume=volume,
                   external=external, mount_target=mount["target"], service_pgdata=pgdata)


def v1_model(config: dict) -> dict:
    """docker-compose v1's `config` output, reshaped like v2's JSON (long-syntax mounts)."""
    services = {}
    for name, spec in (config.get("services") or {}).items():
        spec = dict(spec or {})
        mounts = []
        for m in spec.get("volumes") or []:
            if isinstance(m, dict):
                mounts.append(m)
                continue
            parts = str(m).split(":")
            if len(parts) == 1:
                mounts.append({"type": "volume", "source": "", "target": parts[0]})
                continue
            source, target = parts[0], parts[1]
            kind = "bind" if source.startswith(("/", ".", "~")) else "volume"
            mounts.append({"type": kind, "source": source, "target": target})
        spec["volumes"] = mounts
        services[name] = spec
    volumes = {}
    for key, spec in (config.get("volumes") or {}).items():
        spec = dict(spec or {})
        ext = spec.get("external")
        if isinstance(ext, dict):  # v1's old form: external: {name: x}
            spec["name"], spec["external"] = ext.get("name") or spec.get("name") or key, True
        volumes[key] = spec
    return {"services": services, "volumes": volumes}


# A reader for the YAML that `docker-compose config` (v1) prints: PyYAML's block style with
# sorted keys, so mappings, sequences (also at their key's indentation), plain and quoted
# scalars folded over several lines, and `{}` / `[]`. The kit needs no YAML library for it.

def _yaml_lines(text: str) -> list[dict]:
    """Logical lines: a scalar folded over several physical lines is joined back into one."""
    lines: list[dict] = []
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#") or stripped in ("---", "..."):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        prev = lines[-1] if lines else None
        if prev and prev["open"] and indent > prev["owner"]:
            if prev["quote"] == '"' and prev["text"].endswith("\\"):
                prev["text"] = prev["text"][:-1] + stripped
            else:
                prev["text"] += " " + stripped
            if prev["quote"]:
                value, quote = _value_part(prev["text"])
                prev["open"] = _still_open(value or "", quote)
            continue
        value, quote = _value_part(stripped)
        is_open = value is not None and (_still_open(value, quote) if quote else True)
        # A folded scalar continues on lines deeper than the key it belongs to; in "- key: v"
        # that key sits two columns right of the dash.
        owner = indent
        if _is_item({"text": stripped}):
            body = stripped[1:].lstrip()
            if _split_key(body)[0] is not None:
                owner = indent + len(stripped) - len(body)
        lines.append({"indent": indent, "owner": owner, "text": stripped, "open": is_open,
                      "quote": quote})
    return lines


def _is_item(line: dict) -> bool:
    return line["text"] == "-" or line["text"].startswith("- ")


def _value_part(text: str) -> tuple[str | None, str]:
    body = text[1:].lstrip() if text == "-" or text.startswith("- ") else text
    key, rest = _split_key(body)
    value = rest if key is not None else body
    if not value:
        return None, ""
    return value, value[0] if value[0] in "'\"" else ""


def _still_open(value: str, quote: str) -> bool:
    if not quote:
        return False
    return _quoted_end(value) is None


def _split_key(text: str) -> tuple[str | None, str | None]:
    if text[:1] in "'\"":
        end = _quoted_end(text)
        if end is not None and text[end + 1:end + 2] == ":" and \
                text[end + 2:end + 3] in ("", " "):
            return _scalar(text[:end + 1]), text[end + 2:].strip()
        return None, None
    match = re.match(r"^([^\s'\"{\[][^:]*?|[^:\s]+?):(?:\s+(.*)|)$", text)
    if match:
        return match.group(1), (match.group(2) or "").strip()
    return None, None


def _quoted_end(text: str) -> int | None:
    quote, i = text[0], 1
    while i < len(text):
        if quote == "'" and text[i] == "'":
            if text[i + 1:i + 2] == "'":
                i += 2
                continue
            return i
        if quote == '"' and text[i] == "\\":
            i += 2
            continue
        if quote == '"' and text[i] == '"':
            return i
        i += 1
    return None


_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "/": "/", "0": "\0", "r": "\r",
            " ": " ", "e": "\x1b", "a": "\a", "b": "\b"}


def _scalar(text: str):
    text = text.strip()
    if text in ("{}",):
        return {}
    if text in ("[]",):
        return []
    if text.startswith("'"):
        return text[1:-1].replace("''", "'")
    if text.startswith('"'):
        body, out, i = text[1:-1], [], 0
        while i < len(body):
            ch = body[i]
            if ch == "\\" and i + 1 < len(body):
                code = body[i + 1]
                if code in "xuU":
                    width = {"x": 2, "u": 4, "U": 8}[code]
                    out.append(chr(int(body[i + 2:i + 2 + width], 16)))
                    i += 2 + width
                    continue
                out.append(_ESCAPES.get(code, code))
                i += 2
                continue
            out.append(ch)
            i += 1
        return "".join(out)
    if text in ("null", "~"):
        return None
    if text in ("true", "false"):
        return text == "true"
    return text


def parse_yaml(text: str):
    lines = _yaml_lines(text)
    if not lines:
        return {}
    node, end = _block(lines, 0, lines[0]["indent"])
    if end != len(lines):
        raise Failure("cannot read the output of `docker-compose config` (line "
                      f"{end + 1}: {lines[end]['text'][:40]!r})",
                      "Use Compose v2 (DBGUARD_COMPOSE=v2) or report this with the compose file")
    return node


def _block(lines: list[dict], i: int, indent: int):
    return (_sequence if _is_item(lines[i]) else _mapping)(lines, i, indent)


def _mapping(lines: list[dict], i: int, indent: int):
    result = {}
    while i < len(lines) and lines[i]["indent"] == indent and not _is_item(lines[i]):
        key, rest = _split_key(lines[i]["text"])
        if key is None:
            break
        i += 1
        nested = i < len(lines) and (lines[i]["indent"] > indent or (
            lines[i]["indent"] == indent and _is_item(lines[i])))  # sequences sit at key level
        if rest:
            result[key] = _scalar(rest)
        elif nested:
            result[key], i = _block(lines, i, lines[i]["indent"])
        else:
            result[key] = None
    return result, i


def _sequence(lines: list[dict], i: int, indent: int):
    result = []
    while i < len(lines) and lines[i]["indent"] == indent and _is_item(lines[i]):
        rest = lines[i]["text"][1:].lstrip()
        if not rest:
            item, i = _block(lines, i + 1, lines[i + 1]["indent"])
        elif _split_key(rest)[0] is not None:  # "- key: value" opens a mapping
            offset = len(lines[i]["text"]) - len(rest)
            lines[i] = dict(lines[i], indent=indent + offset, text=rest)
            item, i = _mapping(lines, i, indent + offset)
        else:
            item, i = _scalar(rest), i + 1
        result.append(item)
    return result, i


# ---------------------------------------------------------------------------------------------
# Docker objects: images, volumes, containers
# ---------------------------------------------------------------------------------------------

@dataclass
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
            raise _daemon_failure()
        return ImageInfo(ref, False, pg_major_from_tag(ref), None)
    env = dict(e.split("=", 1) for e in json.loads(result.stdout or b"[]") or [] if "=" in e)
    major = env.get("PG_MAJOR", "")
    major_num = int(major.split(".")[0]) if re.match(r"^\d+", major) else pg_major_from_tag(ref)
    return ImageInfo(ref, True, major_num, env.get("PGDATA"))


def effective_pgdata(project: Project, image: ImageInfo) -> str:
    if project.service_pgdata:
        return project.service_pgdata
    if image.pgdata:
        return image.pgdata
    if image.pg_major and image.pg_major >= 18:
        return f"/var/lib/postgresql/{image.pg_major}/docker"
    return "/var/lib/postgresql/data"


def pgdata_in_volume(project: Project, image: ImageInfo) -> str | None:
    """Where the server looks for its cluster, relative to the volume root; None when the
    data directory is not on the volume at all (the postgres 18 mount-path mistake)."""
    pgdata = effective_pgdata(project, image).rstrip("/")
    target = project.mount_target.rstrip("/")
    if pgdata == target:
        return "."
    if pgdata.startswith(target + "/"):
        return pgdata[len(target) + 1:]
    return None


@dataclass
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


@dataclass
class Volume:
    name: str
    active: bool = False
    exists: bool = True
    found_by: list[str] = field(default_factory=list)
    created: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    driver: str = "local"
    size: int | None = None          # bytes, None when not inspected
    entries: int | None = None       # files and folders at the volume root
    pg_path: str | None = None       # where PG_VERSION sits, relative to the volume root
    pg_version: str | None = None
    system_id: str | None = None     # pg_control's system identifier: equal means a copy
    user_bytes: int | None = None    # bytes in user relations (relfilenode >= 16384)
    user_files: int | None = None    # how many files user relations have
    incomplete: bool = False         # the kit's INCOMPLETE_MARKER is there
    elsewhere: str | None = None     # directory of another, still existing project using it
    used_by: list[Container] = field(default_factory=list)

    @property
    def has_cluster(self) -> bool:
        return self.pg_version is not None

    @property
    def has_user_data(self) -> bool:
        return bool(self.user_files)

    @property
    def pg_major(self) -> int | None:
        if not self.pg_version:
            return None
        match = re.match(r"^(\d+)", self.pg_version)
        return int(match.group(1)) if match else None

    @property
    def project_label(self) -> str | None:
        return self.labels.get(LABEL_PROJECT)

    def describe(self) -> str:
        parts = [f"created {local_time(self.created)}" if self.created else "does not exist",
                 human_size(self.size) if self.size is not None else None,
                 f"PostgreSQL {self.pg_version}" if self.pg_version else
                 ("no cluster" if self.size is not None and self.exists else None)]
        return ", ".join(p for p in parts if p)

    def to_json(self) -> dict:
        return {"name": self.name, "active": self.active, "exists": self.exists,
                "found_by": self.found_by, "created": self.created, "labels": self.labels,
                "size_bytes": self.size, "has_cluster": self.has_cluster,
                "pg_version": self.pg_version, "pg_path": self.pg_path,
                "system_identifier": self.system_id, "user_data_bytes": self.user_bytes,
                "user_relation_files": self.user_files,
                "incomplete_copy": self.incomplete, "other_project_dir": self.elsewhere,
                "used_by": [{"name": c.name, "state": c.state, "project": c.project or None}
                            for c in self.used_by]}


def candidate_reasons(name: str, labels_volume: str, project: Project) -> list[str]:
    """Why a volume may hold this project's database: the evidence, strongest first."""
    reasons = []
    if name == project.volume:
        reasons.append("active")
    if labels_volume == project.volume_key:
        reasons.append("label")
    if name.endswith("_" + project.volume_key) and name != project.volume:
        reasons.append("name")
    generations = [gen for gen, n in directory_project_names(project.directory.name).items()
                   if f"{n}_{project.volume_key}" == name]
    if generations and name != project.volume:
        reasons.append(f"directory name ({', '.join(generations)})")
    return reasons


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


def find_volumes(runner: Runner, project: Project, ignore: Iterable[str] = ()) -> list[Volume]:
    """The active volume and every other volume that may hold the same compose volume's data:
    by Compose label, by name suffix, and by the names older Compose versions would give it.
    A fixed number of docker calls, however many volumes the machine has."""
    fmt = f'{{{{.Name}}}}\t{{{{.Label "{LABEL_VOLUME}"}}}}'
    out = runner(["docker", "volume", "ls", "--format", fmt]).stdout.decode()
    ignore = set(ignore)
    found: dict[str, Volume] = {}
    for line in out.splitlines():
        name, _, key = line.partition("\t")
        reasons = candidate_reasons(name, key, project)
        if reasons and (name == project.volume or name not in ignore):
            found[name] = Volume(name, active=name == project.volume, found_by=reasons)
    if found:
        details = json.loads(runner(["docker", "volume", "inspect", *found]).stdout)
        for d in details:
            v = found[d["Name"]]
            v.created, v.labels, v.driver = d.get("CreatedAt"), d.get("Labels") or {}, d["Driver"]
    if project.volume not in found:
        found[project.volume] = Volume(project.volume, active=True, exists=False,
                                       found_by=["active"])
    containers = list_containers(runner)
    here = project.directory.resolve()
    for c in containers:
        for m in c.volumes:
            if m in found:
                found[m].used_by.append(c)
                # A container that ran from another directory that still exists: the volume
                # belongs to a neighbouring project, not to this one's past.
                if c.project != project.name and c.working_dir and \
                        Path(c.working_dir).is_dir() and Path(c.working_dir).resolve() != here:
                    found[m].elsewhere = c.working_dir
    return sorted(found.values(), key=lambda v: (v.created or "9999", v.name))


# Runs in a throwaway container of the db image, with every volume read-only at /v/<n>. One
# line per volume: index, KiB used, entries at the root, where PG_VERSION is, its content, the
# cluster's system identifier (first 8 bytes of pg_control), KiB in user relations (files
# numbered from 16384, the first OID initdb leaves to users), the marker, and how many such
# files there are (a new table's file can still be empty before a checkpoint).
INSPECT_SCRIPT = r"""
for d in /v/*; do
  [ -d "$d" ] || continue
  pg=""; ver=""; sysid=""; user=0; marker=0
  for c in "$d" "$d/data" "$d"/*/docker; do
    if [ -f "$c/PG_VERSION" ]; then pg="$c"; break; fi
  done
  kib=$(du -sk "$d" | cut -f1)
  entries=$(ls -A "$d" | grep -cv '^lost+found$')
  [ -e "$d/.dbguard-incomplete" ] && marker=1
  if [ -n "$pg" ]; then
    ver=$(head -n 1 "$pg/PG_VERSION")
    sysid=$(od -An -tu8 -N8 "$pg/global/pg_control" 2>/dev/null | tr -d ' ')
    rels=$(find "$pg/base" -mindepth 2 -maxdepth 2 -type f -name '[0-9]*' 2>/dev/null \
      | awk -F/ '{ split($NF, a, /[._]/); if (a[1] + 0 >= 16384) print }')
    nrel=$(printf '%s' "$rels" | grep -c . || true)
    user=$(printf '%s\n' "$rels" | xargs -r du -ck | tail -n 1 | cut -f1)
    pg=".${pg#$d}"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "${d#/v/}" "$kib" "$entries" "$pg" "$ver" \
    "$sysid" "${user:-0}" "$marker" "${nrel:-0}"
done
"""


def helper_args(image: str, mounts: Sequence[tuple[str, str, bool]], script: str,
                *script_args: str, interactive: bool = False) -> list[str]:
    """A throwaway container of the db image: no network, nothing pulled, read-only root, run
    as root so it can read the 0700 data directory. Only constant scripts run in it; volume
    names reach it as mount options, never as shell text."""
    argv = ["docker", "run", "--rm", "--network", "none", "--pull", "never", "--read-only",
            "--user", "0:0", "--label", f"{LABEL_HELPER}=1", "--entrypoint", "/bin/sh"]
    if interactive:
        argv.append("-i")
    for volume, target, readonly in mounts:
        argv += ["--mount", f"type=volume,source={volume},target={target}"
                 + (",readonly" if readonly else "")]
    return argv + [image, "-c", script, "dbguard", *script_args]


def inspect_contents(runner: Runner, image: ImageInfo, volumes: list[Volume]) -> None:
    """Fills size, cluster and marker facts for every existing volume, in one container."""
    present = [v for v in volumes if v.exists]
    if not present or not image.present:
        return
    mounts = [(v.name, f"/v/{i}", True) for i, v in enumerate(present)]
    out = runner(helper_args(image.ref, mounts, INSPECT_SCRIPT)).stdout.decode()
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) != 9 or not parts[0].isdigit():
            continue
        v = present[int(parts[0])]
        v.size = int(parts[1] or 0) * 1024
        v.entries = int(parts[2] or 0)
        v.pg_path = parts[3] or None
        v.pg_version = parts[4] or None
        v.system_id = parts[5] or None
        v.user_bytes = int(parts[6] or 0) * 1024
        v.incomplete = parts[7] == "1"
        v.user_files = int(parts[8] or 0)


# ---------------------------------------------------------------------------------------------
# Diagnosis
# ---------------------------------------------------------------------------------------------

@dataclass
class Problem:
    code: str
    message: str
    fix: list[str]
    blocking: bool = False  # db-up refuses to start while it stands

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def old_project_of(volume: Volume, project: Project) -> str | None:
    if volume.project_label:
        return volume.project_label
    suffix = "_" + project.volume_key
    return volume.name[:-len(suffix)] if volume.name.endswith(suffix) else None


def diagnose(project: Project, image: ImageInfo, volumes: list[Volume],
             allow_new_volume_hint: bool = True) -> tuple[list[Problem], list[str]]:
    """The verdict: problems (each with a stable code and the commands that fix it) and notes.
    Pure: it reads only what the inspection found."""
    problems: list[Problem] = []
    notes: list[str] = []
    active = next(v for v in volumes if v.active)
    others = [v for v in volumes if not v.active and not v.elsewhere]
    for v in volumes:
        if v.elsewhere and not v.active:
            notes.append(f"{v.name} belongs to the project in {v.elsewhere} (a container of it "
                         "ran from there), so it is left out of the comparison")
    inspected = all(v.size is not None for v in volumes if v.exists)

    if not project.locked:
        problems.append(Problem(
            "PROJECT_NAME_NOT_LOCKED",
            f"the project name {project.name!r} comes from the directory name "
            f"{project.directory.name!r}: renaming or moving the directory silently switches to "
            f"a new, empty volume",
            [f"echo 'COMPOSE_PROJECT_NAME={project.name}' >> .env"]))

    where = pgdata_in_volume(project, image)
    if where is None:
        pgdata = effective_pgdata(project, image)
        if image.pg_major and image.pg_major >= 18 and \
                project.mount_target.rstrip("/") == "/var/lib/postgresql/data":
            problems.append(Problem(
                "PG18_MOUNT_PATH",
                f"the image runs PostgreSQL {image.pg_major}, whose data directory is "
                f"{pgdata}, but the volume {project.volume_key!r} is mounted at "
                "/var/lib/postgresql/data: from 18 on the image expects the volume at "
                "/var/lib/postgresql, and refuses to start (or writes outside the volume)",
                [f"in the compose file, mount `{project.volume_key}:/var/lib/postgresql` "
                 "instead of `.../data`",
                 "if the volume holds an older cluster: make db-dump with the old image first, "
                 "then make db-restore into the new layout"], blocking=True))
        else:
            problems.append(Problem(
                "PGDATA_NOT_ON_VOLUME",
                f"the server keeps its data in {pgdata}, which is not inside the volume mount "
                f"{project.mount_target}: the data would be lost with the container",
                [f"mount {project.volume_key!r} at {pgdata} or a folder above it, or set PGDATA"
                 " under the mount"], blocking=True))

    if active.incomplete:
        problems.append(Problem(
            "INCOMPLETE_COPY",
            f"the active volume {active.name} holds an unfinished copy (an interrupted "
            "db-migrate-volume); its contents cannot be trusted",
            ["make db-migrate-volume   (runs the copy again from the source)",
             "or put its snapshot back: make db-migrate-volume UNDO=1"], blocking=True))

    if active.has_cluster and image.pg_major and active.pg_major and \
            active.pg_major != image.pg_major:
        problems.append(Problem(
            "PG_VERSION_MISMATCH",
            f"the cluster in {active.name} was made by PostgreSQL {active.pg_major} but the "
            f"image {image.ref} runs {image.pg_major}: the server would exit with \"database "
            "files are incompatible with server\". Copying the volume cannot fix that",
            [f"go back to a {active.pg_major} image (DB_IMAGE in .env), or move the data across:"
             f" start a {active.pg_major} image, make db-dump, switch DB_IMAGE to "
             f"{image.pg_major}, start on a new volume and make db-restore",
             "or upgrade the cluster in place with pg_upgrade"], blocking=True))

    with_data = [v for v in others if v.has_cluster]
    fresh = active.exists and inspected and not active.has_user_data
    if with_data and (not active.exists or (inspected and not active.has_cluster)):
        state = "does not exist yet" if not active.exists else "holds no PostgreSQL cluster"
        problems.append(parallel_universe(project, active, with_data, state,
                                          allow_new_volume_hint, blocking=True))
    elif with_data and active.has_cluster and fresh and any(v.has_user_data for v in with_data):
        problems.append(parallel_universe(
            project, active, [v for v in with_data if v.has_user_data],
            "holds a freshly initialised cluster with no tables", allow_new_volume_hint))
    elif with_data and active.has_cluster and inspected:
        older = [v for v in with_data if v.system_id != active.system_id and v.has_user_data
                 and (v.created or "") < (active.created or "")
                 and (v.user_bytes or 0) > (active.user_bytes or 0)]
        if older:
            problems.append(parallel_universe(
                project, active, older,
                "holds a separate cluster, newer and with less data than an older volume",
                allow_new_volume_hint))
    for v in others:
        if v.has_cluster and v.system_id and v.system_id == active.system_id:
            notes.append(f"{v.name} holds a copy of the active cluster (same system "
                         f"identifier); once you no longer need it: docker volume rm {v.name}")
    if active.exists and LABEL_PROJECT not in active.labels:
        notes.append(f"{active.name} was not created by Docker Compose (no labels); Compose "
                     "warns about it but uses it")
    elif active.exists and active.project_label != project.name:
        notes.append(f"{active.name} carries the label of project {active.project_label!r}; "
                     "Compose warns about it but uses it")
    if not image.present:
        notes.append(f"the image {image.ref} is not present locally, so the volumes' contents "
                     "were not read (db-up pulls it)")
    return problems, notes


def parallel_universe(project: Project, active: Volume, holders: list[Volume], state: str,
                      allow_new_hint: bool, blocking: bool = False) -> Problem:
    names = ", ".join(v.name for v in holders)
    fix = []
    if len(holders) == 1:
        fix.append(f"make db-migrate-volume FROM={holders[0].name}   (copy that data into "
                   f"{active.name})")
        old = old_project_of(holders[0], project)
        if old and old != project.name:
            fix.append(f"or set COMPOSE_PROJECT_NAME={old} in .env   (use the old volume as "
                       "it is)")
    else:
        fix.append("make db-migrate-volume FROM=<volume>   (copy one of them into "
                   f"{active.name})")
        fix.append("or set COMPOSE_PROJECT_NAME in .env to the project of the one to use")
    if allow_new_hint and blocking:
        fix.append("or make db-up ALLOW_NEW_VOLUME=1   (start with an empty database anyway)")
    elif not blocking:
        fix.append("or, if the active volume is the right one, leave the others out: add them "
                   "to DBGUARD_IGNORE_VOLUMES in .env")
    return Problem("PARALLEL_UNIVERSE",
                   f"the active volume {active.name} {state}, while {names} "
                   f"{'holds' if len(holders) == 1 else 'hold'} a PostgreSQL cluster with data",
                   fix, blocking)


# ---------------------------------------------------------------------------------------------
# The kit opened for a command
# ---------------------------------------------------------------------------------------------

@dataclass
class Kit:
    settings: Settings
    run: Runner
    compose: Compose
    project: Project
    image: ImageInfo

    def scan(self) -> list[Volume]:
        volumes = find_volumes(self.run, self.project, self.settings.ignore_volumes)
        inspect_contents(self.run, self.image, volumes)
        return volumes

    def service_container(self, containers: list[Container] | None = None) -> Container | None:
        containers = list_containers(self.run) if containers is None else containers
        mine = [c for c in containers
                if c.project == self.project.name and c.service == self.project.service]
        mine.sort(key=lambda c: c.state != "running")
        return mine[0] if mine else None


def volume_table(volumes: list[Volume], indent: str = "  ") -> list[str]:
    rows = [("NAME", "CREATED", "SIZE", "PG", "DATA", "FOUND BY", "USED BY", "")]
    for v in volumes:
        if not v.exists:
            data = "-"
        elif v.incomplete:
            data = "unfinished copy"
        elif v.size is None:
            data = "not read"
        elif v.has_cluster:
            data = f"tables: {human_size(v.user_bytes)}" if v.has_user_data else "no tables"
        else:
            data = "empty" if not v.entries else "no cluster"
        used = ", ".join(f"{c.name} ({c.state})" for c in v.used_by) or "-"
        rows.append((v.name, local_time(v.created) if v.exists else "(missing)",
                     human_size(v.size) if v.size is not None else "-",
                     v.pg_version or "-", data, ", ".join(v.found_by), used,
                     "<- ACTIVE" if v.active else ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
            + (f"  {r[-1]}" if r[-1] else "") for r in rows]


def open_kit(args: argparse.Namespace, root: Path = KIT_ROOT) -> Kit:
    settings = load_settings(root)
    runner = Runner(root, verbose=getattr(args, "verbose", False),
                    dry_run=getattr(args, "dry_run", False))
    ping = runner(["docker", "version", "--format", "{{.Server.Version}}"], check=False)
    if ping.returncode != 0:
        raise command_failure(["docker", "version"], ping.stderr)
    compose = Compose(runner, settings)
    project = compose.load_project()
    image = inspect_image(runner, project.image)
    return Kit(settings, runner, compose, project, image)


@contextlib.contextmanager
def kit_lock(kit: Kit, what: str):
    """One data-changing dbguard command at a time per kit (a dry run takes no lock)."""
    settings = kit.settings
    if kit.run.dry_run:
        yield
        return
    private_dir(settings.backup_dir)
    path = settings.backup_dir / ".dbguard.lock"
    with open(path, "a+") as handle:
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


# ---------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------

def connect(settings: Settings, dbname: str | None = None, timeout: int = 5, **kwargs):
    """A psycopg connection with the password passed in-process (never on a command line)."""
    import psycopg

    return psycopg.connect(host=settings.db_host, port=settings.db_port, user=settings.db_user,
                           password=settings.db_password, dbname=dbname or settings.db_name,
                           connect_timeout=timeout, application_name="dbguard", **kwargs)


TABLE_STATS_SQL = """
    SELECT n.nspname, c.relname,
           -- The statistics collector follows every insert and delete; reltuples only moves
           -- with VACUUM or ANALYZE, so it is the fallback for tables the collector forgot.
           CASE WHEN s.n_tup_ins + s.n_tup_del > 0 OR s.last_analyze IS NOT NULL
                     OR s.last_autoanalyze IS NOT NULL THEN s.n_live_tup
                WHEN c.reltuples >= 0 THEN c.reltuples::bigint
                ELSE 0 END AS rows
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
     WHERE c.relkind IN ('r', 'p')
       AND n.nspname NOT IN ('pg_catalog', 'information_schema')
       AND n.nspname NOT LIKE 'pg\\_toast%'
     ORDER BY 1, 2
"""


def table_stats(conn) -> dict[str, int]:
    """Tables of the connected database with a row estimate each."""
    return {f"{schema}.{name}": int(rows)
            for schema, name, rows in conn.execute(TABLE_STATS_SQL).fetchall()}


def database_summary(settings: Settings) -> dict:
    """What is in the live server, or why it could not be asked."""
    try:
        with connect(settings, timeout=3, autocommit=True) as conn:
            dbs = conn.execute(
                "SELECT datname, pg_database_size(oid) FROM pg_database "
                "WHERE NOT datistemplate ORDER BY datname").fetchall()
            tables = table_stats(conn)
            version = conn.execute("SHOW server_version").fetchone()[0]
    except Exception as exc:  # any connection problem is a fact to report, not a crash
        return {"reachable": False, "error": explain_connection_error(settings, exc)}
    size = next((s for d, s in dbs if d == settings.db_name), None)
    return {"reachable": True, "server_version": version,
            "databases": [{"name": d, "size_bytes": s} for d, s in dbs],
            "tables": len(tables), "rows_estimate": sum(tables.values()), "size_bytes": size}


# ---------------------------------------------------------------------------------------------
# Starting and stopping the service
# ---------------------------------------------------------------------------------------------

def container_state(runner: Runner, cid: str) -> dict:
    out = runner(["docker", "inspect", "--format", "{{json .State}}", cid]).stdout
    return json.loads(out)


def service_logs(kit: Kit, lines: int = 20) -> list[str]:
    result = kit.compose("logs", "--no-color", "--tail", str(lines), kit.project.service,
                         check=False)
    text = (result.stdout or b"").decode(errors="replace")
    return ["  | " + line for line in text.rstrip().splitlines()[-lines:]]


def start_service(kit: Kit) -> None:
    """`compose up -d` the database service (its own output shows) and wait for health."""
    result = kit.compose("up", "-d", kit.project.service, mutates=True, stdout=None,
                         stderr=None, check=False)
    if result.returncode != 0:
        raise Failure(f"`{' '.join(kit.compose.command)} up` failed (its output is above)",
                      "Fix what it says and run again; `make db-info` shows the state")
    if not kit.run.dry_run:
        wait_healthy(kit, kit.settings.up_timeout)


def wait_healthy(kit: Kit, timeout: int) -> Container:
    """Waits until the service's health check passes (or, without one, pg_isready does)."""
    deadline = time.monotonic() + timeout
    container = None
    while container is None:
        container = kit.service_container()
        if container is None and time.monotonic() > deadline:
            raise Failure(f"no container of service {kit.project.service!r} appeared",
                          "Run `make db-up` again with V=1 to see the compose commands")
        if container is None:
            time.sleep(0.5)
    info(f"waiting for {container.name} to become healthy (up to {timeout}s)")
    while True:
        state = container_state(kit.run, container.id)
        health = (state.get("Health") or {}).get("Status")
        if health == "healthy":
            return container
        # The service's own health check is the judge when it has one (an app may wait on it
        # with depends_on: service_healthy); without one, pg_isready over TCP.
        if health is None and state.get("Status") == "running":
            probe = kit.run(["docker", "exec", container.id, "pg_isready", "-h", "127.0.0.1",
                             "-p", "5432", "-q"], check=False)
            if probe.returncode == 0:
                return container
        if state.get("Status") in ("exited", "dead") or state.get("Restarting"):
            raise Failure(f"{container.name} stopped while starting (exit code "
                          f"{state.get('ExitCode')})",
                          "The last log lines are above; `make db-info` may name the cause",
                          details=service_logs(kit))
        if time.monotonic() > deadline:
            raise Failure(f"{container.name} did not become healthy within {timeout}s "
                          f"(state: {state.get('Status')}, health: {health or 'none'})",
                          "The last log lines are above; `make db-logs` shows more, and "
                          "DBGUARD_UP_TIMEOUT in .env gives a slow server more time",
                          details=service_logs(kit))
        time.sleep(0.5)


RUNNING_STATES = ("running", "restarting", "paused")


def remove_leftover_helpers(kit: Kit, volumes: Iterable[Volume]) -> None:
    """A killed dbguard command can leave its throwaway container running (docker keeps a
    container going when its client dies). The kit's lock says no command of ours is running,
    so such a container must not keep writing while the volume is worked on again."""
    leftovers = {c.id: c for v in volumes for c in v.used_by if c.helper}
    if leftovers:
        info("removing leftover dbguard helper containers of an interrupted run: "
             + ", ".join(c.name for c in leftovers.values()))
        kit.run(["docker", "rm", "-f", *leftovers], mutates=True)
        for v in volumes:
            v.used_by = [c for c in v.used_by if not c.helper]


def stop_containers(kit: Kit, containers: list[Container]) -> None:
    running = [c for c in containers if c.state in RUNNING_STATES]
    if running:
        info("stopping " + ", ".join(c.name for c in running))
        kit.run(["docker", "stop", *[c.id for c in running]], mutates=True)


# ---------------------------------------------------------------------------------------------
# Files written atomically
# ---------------------------------------------------------------------------------------------

def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_checksum(path: Path, digest: str) -> Path:
    """`<file>.sha256` in sha256sum's format, written atomically beside the file."""
    target = path.with_name(path.name + ".sha256")
    tmp = path.with_name(f".{target.name}.partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"{digest}  {path.name}\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, target)
    return target


def read_checksum(path: Path) -> str | None:
    sha = path.with_name(path.name + ".sha256")
    try:
        first = sha.read_text().split()
    except OSError:
        return None
    return first[0] if first and re.fullmatch(r"[0-9a-f]{64}", first[0]) else ""


def private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


class StreamToFile:
    """Streams a process's stdout into `<dir>/.<name>.partial` (owner-only), hashing as it
    goes; `commit()` flushes it to disk and renames it to its final name. Anything that goes
    wrong before `commit()` removes the partial file, and a killed process leaves only the
    hidden .partial, which nothing takes for a backup."""

    def __init__(self, final: Path, mode: int = 0o600):
        import hashlib

        self.final = final
        self.partial = final.with_name(f".{final.name}.partial")
        self.fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        self.digest = hashlib.sha256()
        self.tee = None  # a reader's stdin that gets every byte as well
        self.size = 0
        self.head = b""
        self.tail = b""

    def write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
        self.digest.update(chunk)
        if self.tee is not None:
            try:
                self.tee.write(chunk)
            except BrokenPipeError:  # the reader gave up: its exit status says why
                self.tee = None
        self.size += len(chunk)
        if len(self.head) < 4096:
            self.head += chunk[:4096 - len(self.head)]
        self.tail = (self.tail + chunk)[-4096:]

    def pump(self, stream, progress: Progress | None = None) -> None:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            self.write(chunk)
            if progress:
                progress.update(self.size)

    def commit(self, checksum: bool = True) -> Path:
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = -1
        if checksum:
            write_checksum(self.final, self.digest.hexdigest())
        os.rename(self.partial, self.final)
        fsync_dir(self.final.parent)
        return self.final

    def discard(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        with contextlib.suppress(FileNotFoundError):
            self.partial.unlink()


# ---------------------------------------------------------------------------------------------
# Dumps
# ---------------------------------------------------------------------------------------------

FORMAT_EXT = {"custom": "dump", "plain": "sql"}
BACKUP_RE = re.compile(r"^(?P<db>[A-Za-z0-9_.-]+?)_(?P<stamp>\d{8}_\d{6})"
                       r"(?:_(?P<tag>[a-z][a-z0-9-]*))?\.(?P<ext>dump|sql)$")
PLAIN_TRAILER = b"-- PostgreSQL database dump complete"


@dataclass
class Backup:
    path: Path
    db: str
    taken: dt.datetime
    tag: str | None
    format: str
    size: int

    @classmethod
    def from_path(cls, path: Path) -> Backup | None:
        match = BACKUP_RE.match(path.name)
        if not match or not path.is_file():
            return None
        taken = dt.datetime.strptime(match["stamp"], "%Y%m%d_%H%M%S").astimezone()
        return cls(path, match["db"], taken, match["tag"],
                   "custom" if match["ext"] == "dump" else "plain", path.stat().st_size)

    def checksum_ok(self) -> bool | None:
        """True: matches its .sha256; False: differs or unreadable; None: no .sha256."""
        expected = read_checksum(self.path)
        if expected is None:
            return None
        return expected != "" and sha256_file(self.path) == expected

    @property
    def age(self) -> float:
        return (dt.datetime.now().astimezone() - self.taken).total_seconds()


def list_backups(settings: Settings) -> list[Backup]:
    """Kit backups in the backup folder, newest first. Partial files never match."""
    if not settings.backup_dir.is_dir():
        return []
    found = [b for p in settings.backup_dir.iterdir() if (b := Backup.from_path(p))]
    return sorted(found, key=lambda b: (b.taken, b.path.name), reverse=True)


def backup_summary(settings: Settings) -> dict:
    backups = list_backups(settings)
    newest = backups[0] if backups else None
    return {"dir": str(settings.backup_dir), "count": len(backups),
            "max_age_days": settings.backup_max_age_days,
            "newest": None if newest is None else {
                "file": str(newest.path), "taken": newest.taken.isoformat(),
                "age_seconds": int(newest.age), "size_bytes": newest.size,
                "format": newest.format, "checksum_ok": newest.checksum_ok()}}


def render_backup_summary(summary: dict) -> list[str]:
    newest = summary["newest"]
    if newest is None:
        return [f"  no dumps in {summary['dir']} (`make db-dump` takes one)"]
    ok = {True: "checksum ok", False: "CHECKSUM MISMATCH", None: "no checksum"}
    return [f"  newest: {newest['file']} ({human_age(newest['age_seconds'])}, "
            f"{human_size(newest['size_bytes'])}, {newest['format']}, "
            f"{ok[newest['checksum_ok']]}); {summary['count']} in all"]


def backup_problems(settings: Settings, summary: dict, active: Volume) -> list[Problem]:
    limit = settings.backup_max_age_days
    if not limit:
        return []
    newest = summary["newest"]
    if newest is None:
        if not active.has_user_data:
            return []
        return [Problem("BACKUP_STALE", "the database has tables but there is no dump of it",
                        ["make db-dump"])]
    if newest["age_seconds"] > limit * 86400:
        return [Problem("BACKUP_STALE",
                        f"the newest dump is {human_age(newest['age_seconds'])} (older than "
                        f"DBGUARD_BACKUP_MAX_AGE_DAYS={limit})", ["make db-dump"])]
    return []


@dataclass
class DumpFacts:
    """What a dump file says of itself, read from its header (no server needed)."""

    format: str
    dbname: str | None
    server_version: str | None
    pg_dump_version: str | None

    @property
    def pg_dump_major(self) -> int | None:
        match = re.match(r"^(\d+)", self.pg_dump_version or "")
        return int(match.group(1)) if match else None


def read_dump_header(path: Path) -> DumpFacts:
    """Recognises pg_dump's custom archive (by its PGDMP header, parsed as pg_restore does) and
    plain SQL dumps (by their opening comment). Anything else raises Refusal."""
    with open(path, "rb") as handle:
        head = handle.read(8192)
    if head.startswith(b"PGDMP"):
        return _custom_header(head, path)
    text = head.decode("utf-8", errors="replace")
    if text.startswith("--\n-- PostgreSQL database dump"):
        server = re.search(r"^-- Dumped from database version (\S+)", text, re.M)
        dumper = re.search(r"^-- Dumped by pg_dump version (\S+)", text, re.M)
        return DumpFacts("plain", None, server and server[1], dumper and dumper[1])
    raise Refusal(f"{path} is not a PostgreSQL dump (neither pg_dump's custom format nor plain "
                  "SQL)", "Pick a file made by `make db-dump` (`make db-backups` lists them); "
                  "nothing was changed")


def _custom_header(head: bytes, path: Path) -> DumpFacts:
    bad = Refusal(f"{path} has a damaged pg_dump header",
                  "Pick another backup (`make db-backups`); nothing was changed")
    pos = 5

    def byte() -> int:
        nonlocal pos
        if pos >= len(head):
            raise bad
        pos += 1
        return head[pos - 1]

    vmaj, vmin = byte(), byte()
    vrev = byte() if (vmaj, vmin) > (1, 0) else 0
    version = (vmaj, vmin, vrev)
    int_size = byte()
    if not 1 <= int_size <= 8:
        raise bad
    if version >= (1, 7, 0):
        byte()  # offset size

    def integer() -> int:
        sign = byte()
        value = 0
        for shift in range(int_size):
            value |= byte() << (8 * shift)
        return -value if sign else value

    def string() -> str | None:
        length = integer()
        nonlocal pos
        if length < 0:
            return None
        if length > 1024 or pos + length > len(head):
            raise bad
        pos += length
        return head[pos - length:pos].decode("utf-8", errors="replace")

    if byte() != 1:  # archCustom
        raise bad
    if version >= (1, 15, 0):
        byte()
    elif version >= (1, 4, 0):
        integer()
    if version >= (1, 4, 0):
        for _ in range(7):
            integer()
        dbname = string()
    else:
        dbname = None
    server = dumper = None
    if version >= (1, 10, 0):
        server, dumper = string(), string()
    return DumpFacts("custom", dbname, server, dumper)


def dump_command(kit: Kit, fmt: str, dbname: str, *extra: str) -> list[str]:
    """pg_dump runs inside the db container over its local socket, which the image trusts: no
    password on any command line. -T because a TTY would mangle a binary dump."""
    s = kit.settings
    return kit.compose.args("exec", "-T", kit.project.service, "pg_dump", "-U", s.db_user,
                            "-d", dbname, "--format", "c" if fmt == "custom" else "p", *extra)


def require_running(kit: Kit) -> Container:
    container = kit.service_container()
    if container is None or container.state != "running":
        raise Failure(f"the {kit.project.service!r} service is not running",
                      "Start it with `make db-up` and run again")
    return container


def backup_path(settings: Settings, fmt: str, tag: str | None = None,
                dbname: str | None = None) -> Path:
    folder = private_dir(settings.backup_dir)
    suffix = f"_{tag}" if tag else ""
    for _ in range(5):
        stamp = dt.datetime.now().strftime("%Y%m%d_%H%M%S")
        path = folder / f"{dbname or settings.db_name}_{stamp}{suffix}.{FORMAT_EXT[fmt]}"
        if not path.exists() and not path.with_name(f".{path.name}.partial").exists():
            return path
        time.sleep(1)
    raise Failure(f"cannot pick a free backup name in {folder}", "Run the command again")


def _drain(stream, into: list[bytes]):
    import threading

    thread = threading.Thread(target=lambda: into.append(stream.read()), daemon=True)
    thread.start()
    return thread


def stream_to_file(kit: Kit, argv: list[str], final: Path, label: str, *,
                   mode: int = 0o600, checksum: bool = True,
                   verify: Callable[[StreamToFile], None] | None = None,
                   reader_argv: list[str] | None = None) -> StreamToFile:
    """Runs argv, streams its stdout to `final` through a partial file, and commits it only
    when the command succeeded and `verify` (if any) passed. With `reader_argv`, every byte
    written is also fed to that command as it arrives, and it must exit 0: the file is read
    back whole while it is being written, not afterwards."""
    out = StreamToFile(final, mode)
    procs: list[subprocess.Popen] = []
    try:
        proc = kit.run.popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        procs.append(proc)
        errors: list[bytes] = []
        threads = [_drain(proc.stderr, errors)]
        reader, reader_errors = None, []
        if reader_argv:
            reader = kit.run.popen(reader_argv, stdin=subprocess.PIPE,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            procs.append(reader)
            threads.append(_drain(reader.stderr, reader_errors))
            out.tee = reader.stdin
        progress = Progress(label)
        try:
            out.pump(proc.stdout, progress)
        finally:
            progress.close()
            code = proc.wait()
            if reader:
                with contextlib.suppress(BrokenPipeError):
                    reader.stdin.close()
                reader.wait()
            for thread in threads:
                thread.join()
        if code != 0:
            raise command_failure(argv, b"".join(errors))
        if reader and reader.returncode != 0:
            last = b"".join(reader_errors).decode(errors="replace").strip().splitlines()
            raise Failure(f"the output does not read back whole ({last[-1] if last else ''})",
                          "Nothing was kept; run again")
        if verify:
            verify(out)
        out.commit(checksum=checksum)
        return out
    except BaseException:
        for p in procs:
            if p.poll() is None:
                p.kill()
        out.discard()
        raise


def take_dump(kit: Kit, fmt: str, tag: str | None = None, dbname: str | None = None,
              extra: Sequence[str] = ()) -> Path:
    """pg_dump to a verified, checksummed, owner-only file under the backup folder."""
    dbname = dbname or kit.settings.db_name
    final = backup_path(kit.settings, fmt, tag, dbname)
    started = time.monotonic()
    # Custom: pg_restore reads the archive whole (TOC and every data block) as it is written,
    # so a short or damaged dump fails. Plain: pg_dump's completion trailer, written last.
    reader = None if fmt == "plain" else kit.compose.args(
        "exec", "-T", kit.project.service, "pg_restore", "-f", "/dev/null")
    stream_to_file(kit, dump_command(kit, fmt, dbname, *extra), final, f"dumping {dbname}",
                   verify=lambda out: verify_fresh_dump(out, fmt), reader_argv=reader)
    size = final.stat().st_size
    info(f"wrote {final} ({human_size(size)}, {time.monotonic() - started:.1f}s, "
         f"sha256 in {final.name}.sha256)")
    return final


def verify_fresh_dump(out: StreamToFile, fmt: str) -> None:
    if fmt == "plain" and PLAIN_TRAILER not in out.tail:
        raise Failure("the dump has no completion trailer (pg_dump stopped early)",
                      "Run it again; nothing was kept")


def check_archive_reads(kit: Kit, path: Path) -> None:
    with open(path, "rb") as handle:
        result = kit.run(kit.compose.args("exec", "-T", kit.project.service, "pg_restore",
                                          "-f", "/dev/null"), stdin_file=handle, check=False)
    if result.returncode != 0:
        last = (result.stderr or b"").decode(errors="replace").strip().splitlines()
        raise Refusal(f"{path.name} does not read back as a whole archive "
                      f"({last[-1] if last else 'pg_restore failed'})",
                      "Pick another backup (`make db-backups`); nothing was changed")


# ---------------------------------------------------------------------------------------------
# Checking a backup before it is trusted, and replacing the database with it
# ---------------------------------------------------------------------------------------------

@dataclass
class CheckedBackup:
    path: Path
    facts: DumpFacts
    checksum: bool | None  # True: matched its .sha256; None: had none (read whole instead)


def check_backup(kit: Kit, path: Path, server_major: int | None) -> CheckedBackup:
    """Everything that must hold before a file is restored; Refusal (exit 3) otherwise."""
    if not path.is_file():
        raise UsageError(f"no such backup file: {path}",
                         "`make db-backups` lists the backups; pass one with FILE=")
    facts = read_dump_header(path)
    expected = read_checksum(path)
    if expected == "":
        raise Refusal(f"{path.name}.sha256 cannot be read as a checksum",
                      "Pick another backup (`make db-backups`); nothing was changed")
    if expected is not None and sha256_file(path) != expected:
        raise Refusal(f"{path.name} does not match its checksum: it was truncated or changed "
                      "after it was written",
                      "Pick another backup (`make db-backups`); nothing was changed")
    if facts.pg_dump_major and server_major and facts.pg_dump_major > server_major:
        raise Refusal(f"{path.name} was made by pg_dump {facts.pg_dump_version}, newer than the "
                      f"server's PostgreSQL {server_major}, which cannot load it",
                      f"Restore it into a PostgreSQL {facts.pg_dump_major} server (DB_IMAGE), "
                      "or dump the source again with a matching pg_dump; nothing was changed")
    if facts.format == "plain":
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - 4096))
            if PLAIN_TRAILER not in handle.read():
                raise Refusal(f"{path.name} ends before pg_dump's completion trailer: it is "
                              "truncated", "Pick another backup (`make db-backups`); nothing "
                              "was changed")
    elif expected is None:
        check_archive_reads(kit, path)
    return CheckedBackup(path, facts, None if expected is None else True)


def newest_good_backup(kit: Kit, server_major: int | None) -> CheckedBackup:
    skipped = []
    for backup in list_backups(kit.settings):
        try:
            return check_backup(kit, backup.path, server_major)
        except Refusal as exc:
            warning(f"skipping {backup.path.name}: {exc.message}")
            skipped.append(backup.path.name)
    where = kit.settings.backup_dir
    raise Refusal(f"no backup in {where} passes verification"
                  + (f" ({len(skipped)} skipped)" if skipped else ""),
                  "Take one with `make db-dump`, or pass a file with FILE=; nothing was changed")


def scratch_names(db: str) -> tuple[str, str]:
    """The database a restore loads into, and the name the replaced one gets until dropped.
    PostgreSQL cuts names at 63 bytes, so the base is cut first."""
    base = db.encode()[:48].decode(errors="ignore")
    return f"{base}_dbguard_new", f"{base}_dbguard_old"


def admin(settings: Settings):
    """CREATE/DROP/ALTER DATABASE cannot run inside a transaction block: autocommit."""
    return connect(settings, dbname="postgres", autocommit=True)


def preflight_replace(kit: Kit) -> dict[str, int] | None:
    """Checks the server can take a swap; returns the current tables (None: no database)."""
    s = kit.settings
    _, old = scratch_names(s.db_name)
    try:
        with admin(s) as conn:
            names = {r[0]: r[1] for r in conn.execute(
                "SELECT datname, datallowconn FROM pg_database")}
            if old in names:
                raise Refusal(f"a previous restore left the database {old!r} (the database as "
                              "it was before that restore) behind",
                              f"Look at it, then drop it (make db-shell, DROP DATABASE \"{old}\";)"
                              " and run again; nothing was changed")
            if names.get(s.db_name) is False:
                # Only an interrupted swap of ours leaves the database closed to connections.
                conn.execute(sql_id("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true", s.db_name))
    except Failure:
        raise
    except Exception as exc:
        raise connection_failure(s, exc) from None
    if s.db_name not in names:
        return None
    with connect(s, autocommit=True) as conn:
        return table_stats(conn)


def explain_connection_error(settings: Settings, exc: Exception) -> str:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    first = first.replace(settings.db_password, "********")
    if "password authentication failed" in first:
        first += (" (a cluster keeps the password it was created with: POSTGRES_PASSWORD only "
                  "applies when the image initialises an empty volume, so DJANGO_DB_PASSWORD "
                  "must be the cluster's)")
    return first


def connection_failure(settings: Settings, exc: Exception) -> Failure:
    first = explain_connection_error(settings, exc)
    return Failure(f"cannot connect to PostgreSQL at {settings.db_host}:{settings.db_port} as "
                   f"{settings.db_user!r}: {first}",
                   "Check DJANGO_DB_HOST/PORT/USER/PASSWORD in .env and `make db-info`")


def sql_id(template: str, *names: str):
    from psycopg import sql

    return sql.SQL(template).format(*[sql.Identifier(n) for n in names])


def replace_database(kit: Kit, load: Callable[[str], None],
                     safety: Callable[[], Path] | None = None) -> tuple[dict[str, int], Path | None]:
    """Loads into a scratch database, then swaps it in for the configured one and drops the
    replaced one only after the swap. A failure before the swap leaves the database as it was.
    `safety` (the safety dump of the current database) runs while the load does, and the swap
    waits for it: nothing is replaced before the copy is whole. Returns the new database's
    tables with row estimates, and the safety dump's path."""
    from concurrent.futures import ThreadPoolExecutor

    from psycopg import sql

    s = kit.settings
    db = s.db_name
    new, old = scratch_names(db)
    with admin(s) as conn:
        conn.execute(sql_id("DROP DATABASE IF EXISTS {}", new))  # a crashed load of ours
        row = conn.execute(
            "SELECT pg_encoding_to_char(encoding), datcollate, datctype "
            "FROM pg_database WHERE datname = %s", [db]).fetchone()
        create = sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(new))
        if row:
            create += sql.SQL(" ENCODING {} LC_COLLATE {} LC_CTYPE {}").format(
                sql.Literal(row[0]), sql.Literal(row[1]), sql.Literal(row[2]))
        conn.execute(create)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(safety) if safety else None
        try:
            try:
                load(new)
                with connect(s, dbname=new, autocommit=True) as conn:
                    conn.execute("ANALYZE")  # row estimates for the report, and the planner
                    after = table_stats(conn)
            except BaseException:
                if pending:
                    pending.exception()  # let the safety dump finish; the load's error counts
                raise
            copy = pending.result() if pending else None  # a failed safety dump stops here
            swap_databases(s, db, new, old)
        except BaseException:
            with contextlib.suppress(Exception), admin(s) as conn:
                conn.execute(sql_id("DROP DATABASE IF EXISTS {}", new))
            raise
    with admin(s) as conn:
        try:
            conn.execute(sql_id("DROP DATABASE IF EXISTS {}", old))
        except Exception as exc:
            warning(f"the replaced database was kept as {old!r} ({exc}); drop it when you no "
                    "longer need it")
    return after, copy


def swap_databases(settings: Settings, db: str, new: str, old: str) -> None:
    with admin(settings) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db]).fetchone()
        if not exists:
            conn.execute(sql_id("ALTER DATABASE {} RENAME TO {}", new, db))
            return
        # Close the door first, so nothing reconnects between the terminations and the rename.
        conn.execute(sql_id("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false", db))
        swapped = False
        try:
            for _ in range(100):
                left = conn.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()", [db]).fetchone()[0]
                if not left:
                    break
                time.sleep(0.1)
            with conn.transaction():
                conn.execute(sql_id("ALTER DATABASE {} RENAME TO {}", db, old))
                conn.execute(sql_id("ALTER DATABASE {} RENAME TO {}", new, db))
            swapped = True
        finally:
            if not swapped:
                conn.execute(sql_id("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true", db))


def replace_with_backup(kit: Kit, backup: CheckedBackup, container: Container,
                        before: dict[str, int] | None, safety_tag: str | None) -> None:
    """db-restore's and db-seed's common end: the safety dump (when `safety_tag` is given)
    alongside the load into a scratch database, the swap, and the report."""
    # Light compression: the safety dump stands in the way of the restore, and zlib level 1
    # is much faster than pg_dump's default for a few per cent more size.
    after, copy = replace_database(
        kit, load_backup(kit, backup, container),
        (lambda: take_dump(kit, "custom", tag=safety_tag, extra=("-Z", "1")))
        if safety_tag else None)
    if copy:
        info(f"safety dump: {copy} (make db-restore FILE={copy} puts it back)")
    for line in report_tables(before, after):
        detail(line)


def load_backup(kit: Kit, backup: CheckedBackup, container: Container) -> Callable[[str], None]:
    """A loader for replace_database: parallel pg_restore for custom archives (from a copy in
    the container, since -j needs a seekable file), psql stopping at the first error in one
    transaction for plain SQL."""
    s = kit.settings

    def load(dbname: str) -> None:
        if backup.facts.format == "plain":
            with open(backup.path, "rb") as handle:
                result = kit.run(kit.compose.args(
                    "exec", "-T", kit.project.service, "psql", "-X", "-q", "-U", s.db_user,
                    "-d", dbname, "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f", "-"),
                    stdin_file=handle, stdout=subprocess.DEVNULL, check=False)
            if result.returncode != 0:
                raise load_failure(backup.path, result.stderr)
            return
        inside = f"/tmp/dbguard-restore-{os.getpid()}.dump"
        kit.run(["docker", "cp", str(backup.path), f"{container.id}:{inside}"])
        try:
            jobs = str(max(1, min(4, os.cpu_count() or 1)))
            result = kit.run(kit.compose.args(
                "exec", "-T", kit.project.service, "pg_restore", "-U", s.db_user, "-d", dbname,
                "--exit-on-error", "-j", jobs, inside), check=False)
            if result.returncode != 0:
                raise load_failure(backup.path, result.stderr)
        finally:
            kit.run(["docker", "exec", container.id, "rm", "-f", inside], check=False)

    return load


def load_failure(path: Path, stderr: bytes | None) -> Failure:
    lines = [ln for ln in (stderr or b"").decode(errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if "ERROR" in ln or "error" in ln] or lines
    return Failure(f"loading {path.name} failed: {errors[0].strip() if errors else 'no output'}"
                   , "The current database was left as it was; fix the dump (or pick another) "
                   "and run again")


def report_tables(before: dict[str, int] | None, after: dict[str, int]) -> list[str]:
    before = before or {}
    lines = [f"tables: {len(before)} -> {len(after)}; rows (estimate): "
             f"{sum(before.values()):,} -> {sum(after.values()):,}"]
    changed = sorted(set(before) | set(after))
    diffs = [t for t in changed if before.get(t) != after.get(t)]
    for t in diffs[:15]:
        b = "-" if t not in before else f"{before[t]:,}"
        a = "-" if t not in after else f"{after[t]:,}"
        lines.append(f"  {t}: {b} -> {a}")
    if len(diffs) > 15:
        lines.append(f"  ... and {len(diffs) - 15} more tables changed")
    return lines


# ---------------------------------------------------------------------------------------------
# Volume snapshots and copies
# ---------------------------------------------------------------------------------------------

# Prints a manifest of each folder given: one line per entry (type|mode|uid|gid|size|mtime|path),
# then `md5  path` per regular file, then `path|target` per symlink. The kit's own marker is
# left out. Compared on both sides of a copy, computed inside containers. MD5 because it guards
# against copy errors, not an adversary, and runs twice as fast as sha256sum (coreutils and
# busybox both have it); the dump files at rest keep their sha256.
MANIFEST_SCRIPT = r"""
set -e
for d in "$@"; do
  cd "$d"
  echo "== $d"
  find . ! -name .dbguard-incomplete -exec stat -c '%F|%a|%u|%g|%s|%Y|%n' {} +
  echo "-- sums"
  find . -type f ! -name .dbguard-incomplete -exec md5sum {} +
  echo "-- links"
  find . -type l -exec sh -c 'for f; do printf "%s|%s\n" "$f" "$(readlink "$f")"; done' sh {} +
done
"""

# Marks the target, empties it (all but the marker: a crash from here on leaves the mark), then
# copies with cp -a (owners, modes, links, timestamps). One process does the copy, so its exit
# status is the copy's (no pipeline to hide a failed read). Prints the KiB copied each second.
COPY_SCRIPT = r"""
set -u
touch /to/.dbguard-incomplete && sync || exit 1
find /to -mindepth 1 -maxdepth 1 ! -name .dbguard-incomplete -exec rm -rf {} + || exit 1
cp -a /from/. /to/ &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
  printf 'progress %s\n' "$(du -sk /to | cut -f1)"
  sleep 1
done
wait "$pid"
"""

# The same for putting a snapshot back: the tar archive arrives on stdin.
UNTAR_SCRIPT = r"""
set -u
touch /to/.dbguard-incomplete && sync || exit 1
find /to -mindepth 1 -maxdepth 1 ! -name .dbguard-incomplete -exec rm -rf {} + || exit 1
tar -C /to -xpf - --exclude ./.dbguard-incomplete
"""

TAR_SCRIPT = "cd /v && tar -cf - ."
UNMARK_SCRIPT = "rm -f /to/.dbguard-incomplete && sync"
SCRIPT_NAMES = {INSPECT_SCRIPT: "inspect", MANIFEST_SCRIPT: "manifest", COPY_SCRIPT: "copy",
                UNTAR_SCRIPT: "untar"}


Manifest = dict[str, tuple]


def parse_manifests(text: str) -> dict[str, Manifest]:
    result: dict[str, Manifest] = {}
    current: Manifest = {}
    section = ""
    sums: dict[str, str] = {}
    links: dict[str, str] = {}

    def finish() -> None:
        for path, entry in current.items():
            if entry[0] == "f":
                current[path] = entry + (sums.get(path),)
            elif entry[0] == "l":
                current[path] = entry + (links.get(path),)

    name = None
    for line in text.splitlines():
        if line.startswith("== "):
            if name is not None:
                finish()
                result[name] = current
            name, current, sums, links, section = line[3:], {}, {}, {}, "stat"
        elif line == "-- sums":
            section = "sums"
        elif line == "-- links":
            section = "links"
        elif section == "stat":
            kind, mode, uid, gid, size, mtime, path = line.split("|", 6)
            kind = {"directory": "d", "symbolic link": "l"}.get(
                kind, "f" if kind.startswith("regular") else kind)
            if kind == "d":
                current[path] = ("d", mode, uid, gid)
            elif kind == "f":
                current[path] = ("f", mode, uid, gid, int(size), int(mtime))
            else:
                current[path] = (kind, "", uid, gid)
        elif section == "sums":
            digest, _, path = line.partition("  ")
            sums[path] = digest
        elif section == "links":
            path, _, target = line.partition("|")
            links[path] = target
    if name is not None:
        finish()
        result[name] = current
    return result


def tar_manifest(path: Path) -> Manifest:
    """The manifest of a snapshot, read from the archive itself (a short or damaged archive
    raises): what the volume must look like after the snapshot is put back."""
    import hashlib
    import tarfile

    manifest: Manifest = {}
    with tarfile.open(path, "r:") as archive:
        for member in archive:
            name = member.name.rstrip("/")
            name = name[2:] if name.startswith("./") else name
            name = "." if name in ("", ".") else "./" + name
            if name == f"./{INCOMPLETE_MARKER}":
                continue
            mode = format(member.mode & 0o7777, "o")
            if member.isdir():
                manifest[name] = ("d", mode, str(member.uid), str(member.gid))
            elif member.issym():
                manifest[name] = ("l", "", str(member.uid), str(member.gid), member.linkname)
            elif member.isfile() or member.islnk():
                digest = hashlib.md5(usedforsecurity=False)
                handle = archive.extractfile(member)
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
                manifest[name] = ("f", mode, str(member.uid), str(member.gid), member.size,
                                  int(member.mtime), digest.hexdigest())
            else:
                manifest[name] = ("other", "", str(member.uid), str(member.gid))
    return manifest


def manifest_differences(expected: Manifest, actual: Manifest, limit: int = 5) -> list[str]:
    out = []
    for path in sorted(set(expected) | set(actual)):
        if path not in actual:
            out.append(f"missing {path}")
        elif path not in expected:
            out.append(f"extra {path}")
        elif expected[path] != actual[path]:
            out.append(f"differs {path}: {expected[path][:6]} vs {actual[path][:6]}")
        if len(out) >= limit:
            break
    return out


def volume_manifests(kit: Kit, volumes: Sequence[str]) -> list[Manifest]:
    """One container per volume, all at once: hashing is the slow part of verification, and
    both sides of a copy hash in parallel."""
    procs = [kit.run.popen(helper_args(kit.image.ref, [(v, "/m", True)], MANIFEST_SCRIPT, "/m"),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE) for v in volumes]
    results = [proc.communicate() for proc in procs]
    manifests = []
    for proc, (out, err) in zip(procs, results):
        if proc.returncode != 0:
            raise command_failure(proc.args, err)
        manifests.append(parse_manifests(out.decode(errors="replace")).get("/m", {}))
    return manifests


def snapshot_volume(kit: Kit, volume: Volume) -> Path:
    """A tar archive of the volume under <backups>/volumes/, written through a partial file,
    checksummed, and verified against the volume file by file before it counts."""
    folder = private_dir(kit.settings.backup_dir / "volumes")
    stamp = dt.datetime.now().strftime("%Y%m%d_%H%M%S")
    final = folder / f"{volume.name}_{stamp}.tar"
    info(f"taking a snapshot of {volume.name} ({human_size(volume.size)})")
    argv = helper_args(kit.image.ref, [(volume.name, "/v", True)], TAR_SCRIPT)

    def verify(out: StreamToFile) -> None:
        os.fsync(out.fd)
        try:
            from_archive = tar_manifest(out.partial)
        except Exception as exc:
            raise Failure(f"the snapshot of {volume.name} does not read back ({exc})",
                          "Nothing was changed; check free disk space and run again") from None
        (from_volume,) = volume_manifests(kit, [volume.name])
        diff = manifest_differences(from_volume, from_archive)
        if diff:
            raise Failure(f"the snapshot of {volume.name} differs from the volume "
                          f"({'; '.join(diff)})", "Nothing was changed; run again")

    stream_to_file(kit, argv, final, f"snapshot of {volume.name}", verify=verify)
    return final


def list_snapshots(settings: Settings, volume: str) -> list[Path]:
    folder = settings.backup_dir / "volumes"
    if not folder.is_dir():
        return []
    pattern = re.compile(re.escape(volume) + r"_\d{8}_\d{6}\.tar$")
    return sorted((p for p in folder.iterdir() if pattern.match(p.name)), reverse=True)


def ensure_volume(kit: Kit, volume: Volume) -> None:
    """Creates the target with the labels Compose gives its own volumes, so Compose adopts it
    without a warning. Docker cannot change a volume's labels, so an existing volume with
    other labels is recreated; the caller has a verified snapshot of it by then."""
    p = kit.project
    labels = ["--label", f"{LABEL_PROJECT}={p.name}", "--label", f"{LABEL_VOLUME}={p.volume_key}",
              "--label", f"{LABEL_VERSION}={kit.compose.version}"]
    if p.external:
        return
    if volume.exists:
        if volume.labels.get(LABEL_PROJECT) == p.name and \
                volume.labels.get(LABEL_VOLUME) == p.volume_key:
            return
        holders = [c for c in volume.used_by if c.project != p.name or c.service != p.service]
        if holders:
            warning(f"{volume.name} keeps its old labels: {holders[0].name} still refers to it")
            return
        if volume.used_by:
            kit.run(["docker", "rm", *[c.id for c in volume.used_by]], mutates=True)
        kit.run(["docker", "volume", "rm", volume.name], mutates=True)
    kit.run(["docker", "volume", "create", *labels, volume.name], mutates=True)


def copy_volume(kit: Kit, source: Volume, target: str) -> None:
    """Marks and empties the target, copies the source into it with progress, and verifies
    the copy file by file. The marker stays until the caller has verified and removes it."""
    script = COPY_SCRIPT
    if os.environ.get("DBGUARD_TEST_FAULT") == "fail-copy":  # how tests reach a failed copy
        script += "exit 1\n"
    argv = helper_args(kit.image.ref, [(source.name, "/from", True), (target, "/to", False)],
                       script)
    progress = Progress(f"copying {source.name}", source.size)
    proc = kit.run.popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        for line in proc.stdout:
            parts = line.split()
            if len(parts) == 2 and parts[0] == b"progress" and parts[1].isdigit():
                progress.update(int(parts[1]) * 1024)
    finally:
        progress.close()
        err = proc.stderr.read()
        code = proc.wait()
    if code != 0:
        raise command_failure(argv, err)


def fill_from_snapshot(kit: Kit, snapshot: Path, target: str) -> None:
    argv = helper_args(kit.image.ref, [(target, "/to", False)], UNTAR_SCRIPT, interactive=True)
    with open(snapshot, "rb") as handle:
        kit.run(argv, stdin_file=handle)


def unmark(kit: Kit, target: str) -> None:
    kit.run(helper_args(kit.image.ref, [(target, "/to", False)], UNMARK_SCRIPT))


def verify_copy(kit: Kit, source: str, target: str) -> list[str]:
    want, got = volume_manifests(kit, [source, target])
    if not want:
        return ["the source manifest is empty"]
    return manifest_differences(want, got)


def verify_snapshot_restore(kit: Kit, snapshot: Path, target: str) -> list[str]:
    (got,) = volume_manifests(kit, [target])
    return manifest_differences(tar_manifest(snapshot), got)


def copy_into_volume(kit: Kit, source: Volume, target: Volume, snapshot_needed: bool) -> None:
    """Snapshot (if asked), label, mark, empty, copy, verify, unmark. On a verification failure
    the target is put back as it was (from the snapshot, or emptied/removed) and Failure raised.
    The containers using either volume must be stopped already."""
    snapshot = None
    if snapshot_needed:
        snapshot = snapshot_volume(kit, target)
        info(f"snapshot of {target.name}: {snapshot} (undo: make db-migrate-volume UNDO=1)")
    ensure_volume(kit, target)
    info(f"copying {source.name} -> {target.name}")
    put_back = (f"{target.name} was put back as it was; {source.name} is untouched. Fix the "
                "cause and run again")
    try:
        copy_volume(kit, source, target.name)
        if os.environ.get("DBGUARD_TEST_FAULT") == "corrupt-copy":  # how tests reach the diff
            kit.run(helper_args(kit.image.ref, [(target.name, "/to", False)],
                                "echo x >> /to/PG_VERSION"))
        diff = verify_copy(kit, source.name, target.name)
    except Failure as exc:  # the copy or its check failed (a full disk, say): undo, then say
        put_snapshot_back(kit, target, snapshot)
        raise Failure(f"copying {source.name} into {target.name} failed ({exc.message})",
                      put_back) from None
    if diff:
        put_snapshot_back(kit, target, snapshot)
        raise Failure(f"the copy differs from {source.name} ({'; '.join(diff)})", put_back)
    unmark(kit, target.name)
    success(f"{target.name} now holds a verified copy of {source.name}")


def put_snapshot_back(kit: Kit, target: Volume, snapshot: Path | None) -> None:
    """Empties the target and fills it from the snapshot (or leaves it empty, or removes it if
    it did not exist before), verified against the archive, and removes the mark."""
    if snapshot is None:
        # Nothing was in the target before: back to nothing.
        if not target.exists:
            kit.run(["docker", "volume", "rm", target.name], check=False)
        else:
            kit.run(helper_args(kit.image.ref, [(target.name, "/to", False)],
                                "find /to -mindepth 1 -maxdepth 1 -exec rm -rf {} +"))
        return
    fill_from_snapshot(kit, snapshot, target.name)
    diff = verify_snapshot_restore(kit, snapshot, target.name)
    if diff:
        raise Failure(f"putting the snapshot back into {target.name} failed verification "
                      f"({'; '.join(diff)})",
                      f"The snapshot is intact in {snapshot}; the marker keeps db-up from "
                      "starting on the volume. Run `make db-migrate-volume UNDO=1` again")
    unmark(kit, target.name)
