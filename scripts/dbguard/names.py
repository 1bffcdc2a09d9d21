"""Every name the kit reads or makes, defined once: Compose's project names as each Compose
generation derives them, and the names of everything the kit itself creates (databases, volumes,
containers, labels, files). Pure: no Docker, no files.
"""
from __future__ import annotations

import re
import urllib.parse

from .errors import UsageError

# --- Compose's project names ------------------------------------------------------------------


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


# --- databases the kit makes inside the server ------------------------------------------------
# PostgreSQL cuts identifiers at 63 bytes, so the user's part of each name is cut first.

SNAPSHOT_INFIX = "_dbguard_snap_"
SNAPSHOT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,23}$")
COMMENT_RE = re.compile(r"^dbguard snapshot of (?P<db>.*) taken (?P<at>\S+)", re.S)
# What a restore or seed keeps of the database it replaced, until the next one of its kind.
KEPT_BY = {"restore": "before_restore", "seed": "before_seed"}
REPLACED_PREFIX = "replaced_"     # what a rollback or an undo kept of what it replaced
REINDEX_PREFIX = "reindex_"       # what db-reindex kept of the database before it


def _cut(db: str, length: int) -> str:
    return db.encode()[:length].decode(errors="ignore")


def snapshot_database(db: str, name: str) -> str:
    """The database that holds snapshot `name` of `db`."""
    return _cut(db, 25) + SNAPSHOT_INFIX + name


def snapshot_comment(db: str, at: str, note: str = "") -> str:
    """Whose snapshot a database is and when it was taken: a snapshot is only ever taken for
    `db`'s when its comment says so (names alone can share their first 25 bytes)."""
    return f"dbguard snapshot of {db} taken {at}" + (f" ({note})" if note else "")


def scratch_database(db: str) -> str:
    """Where a restore, seed, rollback or undo builds the new database before the swap."""
    return _cut(db, 48) + "_dbguard_new"


def trash_database(db: str) -> str:
    """The previous kept copy, renamed out of the way in the swap and dropped right after."""
    return _cut(db, 44) + "_dbguard_trash"


def maintenance_database(db: str) -> str:
    """The database the kit connects to while it changes `db` (a database cannot be renamed,
    closed or copied by a session connected to it)."""
    return "template1" if db == "postgres" else "postgres"


def is_kit_snapshot_name(name: str) -> bool:
    """Names the kit's own commands give and replace; db-snapshot refuses them."""
    return name in KEPT_BY.values() or name == "clone_source" or \
        name.startswith((REPLACED_PREFIX, REINDEX_PREFIX))


# --- volumes, containers and labels ---------------------------------------------------------

INCOMPLETE_MARKER = ".dbguard-incomplete"   # in a volume or folder while its copy is unfinished
LABEL_HELPER = "dbguard.helper"             # every throwaway container of the kit
HELPER_LOOKS = "look"                       # its value on a helper that only reads (else 1)
LABEL_OWNER = "dbguard.project"             # the Compose project a helper works for
LABEL_KEEPER = "dbguard.keeper"             # on a keeper container: the volume it protects
LABEL_UPGRADE_OF = "dbguard.upgrade-of"     # on the volume that keeps an upgraded old cluster
LABEL_SOCKET_OF = "dbguard.socket-of"       # on db-upgrade's socket volumes: the project
LABEL_UPGRADE_MAJOR = "dbguard.pg-major"
# Docker Compose's own labels.
LABEL_PROJECT = "com.docker.compose.project"
LABEL_VOLUME = "com.docker.compose.volume"
LABEL_VERSION = "com.docker.compose.version"
LABEL_SERVICE = "com.docker.compose.service"
LABEL_WORKDIR = "com.docker.compose.project.working_dir"


def keeper_name(project: str, volume: str) -> str:
    """The keeper container of a volume (db-protect): the project's name (cut) and a digest of
    the volume's name, which may be 64 hex digits or longer than a container name allows."""
    import hashlib

    digest = hashlib.sha256(volume.encode()).hexdigest()[:10]
    return f"dbguard-keeper-{re.sub(r'[^a-zA-Z0-9_.-]', '', project)[:40]}-{digest}"


def kept_cluster_volume(volume: str, major: int, stamp: str) -> str:
    """The volume db-upgrade keeps the old cluster in."""
    return f"{volume}_pg{major}_{stamp}"


def server_container(purpose: str, project: str, pid: int) -> str:
    """A throwaway PostgreSQL server of db-upgrade (`old` reads the old cluster, `new` loads the
    new one, neither reachable from any network)."""
    return f"dbguard-{purpose}-{project}-{pid}"


RESTORE_COPY_GLOB = "/tmp/dbguard-restore-*.dump"   # a custom archive copied into the container


def restore_copy(pid: int, n: int) -> str:
    return f"/tmp/dbguard-restore-{pid}-{n}.dump"


# --- files in the backup folder ---------------------------------------------------------------

LOCK_FILE = ".dbguard.lock"
JOURNAL_FILE = "journal.jsonl"
VOLUME_SNAPSHOTS = "volumes"     # tar snapshots of volumes and folders
UPGRADE_DUMPS = "upgrades"       # db-upgrade's cluster dumps and kept compose files
FIXTURE_COPIES = "fixtures"      # fixtures db-fixture replaced
FORMAT_EXT = {"custom": "dump", "plain": "sql"}
# <db>_<YYYYmmdd_HHMMSS>[_<tag>].<dump|sql>, the database name percent-encoded (file_stem).
BACKUP_RE = re.compile(r"^(?P<db>[A-Za-z0-9_.~%-]+?)_(?P<stamp>\d{8}_\d{6})"
                       r"(?:_(?P<tag>[a-z][a-z0-9-]*))?\.(?P<ext>dump|sql)$")
# A volume or folder snapshot under volumes/: <name>_<YYYYmmdd_HHMMSS>.tar
SNAPSHOT_FILE_RE = re.compile(r"^[A-Za-z0-9%][A-Za-z0-9_.%-]*_\d{8}_\d{6}\.tar$")
UPGRADE_DUMP_RE = re.compile(r"^\d{8}_\d{6}_pg\d+_cluster\.sql$")
# Dumps taken before a database was replaced (DBGUARD_SAFETY_DUMP=1): never what db-restore
# picks by itself, and not what db-prune's KEEP counts.
SAFETY_TAGS = ("pre-restore", "pre-seed")


def file_stem(name: str) -> str:
    """A database, volume or folder name as a file name: any character outside [A-Za-z0-9_.~-]
    is percent-encoded, so the file stays inside its folder and its name reads back. A leading
    '.' too (no hidden file)."""
    stem = urllib.parse.quote(name, safe="")
    return "%2E" + stem[1:] if stem.startswith(".") else stem


def volume_snapshot_file(store: str, stamp: str) -> str:
    return f"{file_stem(store)}_{stamp}.tar"


# --- sessions the kit opens in the server -----------------------------------------------------

APP_READER = "dbguard"


def app_writer(command: str, pid: int) -> str:
    """The application_name of a kit command's changing sessions: a later run finds (and ends)
    the sessions of a command that was killed while its statement still ran in the server."""
    return f"dbguard:{command}:{pid}"


APP_WRITER_RE = re.compile(r"^dbguard:(?P<command>[a-z-]+):(?P<pid>\d+)$")
