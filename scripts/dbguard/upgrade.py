"""db-upgrade's pieces that change nothing of the user's (or only build the new cluster): which
image reads the old cluster, the upgrade's state file, the postgres 18 mount change as text,
the old server in a throwaway container, the cluster dump taken with the new major's
pg_dumpall, loading it into the new server, and the facts compared before and after.

The old cluster is read through a socket in a volume shared by two throwaway containers: the
old server (OLD_IMAGE, no network, socket only) and pg_dumpall of the new image. Local socket
connections are trusted by the postgres image, so no password is needed anywhere.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .docker import LABEL_HELPER, inspect_image
from .errors import Failure, Refusal, UsageError
from .files import private_dir
from .kit import Kit
from .volumes import Volume
from .messages import info
from .runner import command_failure, kill_tree
from .streams import streamed_file

LABEL_UPGRADE_OF = "dbguard.upgrade-of"   # on the volume that keeps the old cluster
LABEL_UPGRADE_MAJOR = "dbguard.pg-major"
STATE_NAME = ".dbguard-upgrade.json"      # in the backup folder while an upgrade is unfinished
CLUSTER_TRAILER = b"PostgreSQL database cluster dump complete"
OLD_MOUNT = "/dbguard/old"
SOCKET_DIR = "/var/run/postgresql"


def derive_old_image(ref: str, major: int) -> str | None:
    """The official image of another major, named like `ref` (postgres:17-alpine ->
    postgres:15-alpine); None when `ref` is not named the official way."""
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon <= slash:
        return None
    repo, tag = ref[:colon], ref[colon + 1:]
    if repo.rsplit("/", 1)[-1] != "postgres":
        return None
    match = re.match(r"^\d+(\.\d+)*", tag)
    return f"{repo}:{major}{tag[match.end():]}" if match else None


def old_image_for(kit: Kit, given: str | None, major: int) -> str:
    """The image that reads the old cluster: given, or derived from the configured one; it
    must be there (pulled if not) and run the old major."""
    ref = given or derive_old_image(kit.project.image, major)
    if not ref:
        raise UsageError(f"cannot tell which image runs PostgreSQL {major}: {kit.project.image!r}"
                         " is not named like the official image (postgres:<major>...)",
                         f"Give it: make db-upgrade OLD_IMAGE=<a PostgreSQL {major} image>; "
                         "nothing was changed")
    if not given:
        info(f"reading the old cluster with {ref} (OLD_IMAGE, from {kit.project.image})")
    image = inspect_image(kit.runner, ref)
    if not image.present and not kit.runner.dry_run:
        info(f"pulling {ref}")
        if kit.runner(["docker", "pull", ref], check=False).returncode == 0:
            image = inspect_image(kit.runner, ref)
    if not image.present:
        raise Refusal(f"the image {ref} is not available here (and could not be pulled)",
                      f"Pull or build a PostgreSQL {major} image and give it as OLD_IMAGE=; "
                      "nothing was changed")
    if image.pg_major != major:
        raise Refusal(f"{ref} runs PostgreSQL {image.pg_major}, not {major} like the cluster",
                      f"Give a PostgreSQL {major} image as OLD_IMAGE=; nothing was changed")
    return ref


def kept_volumes(kit: Kit, active: str) -> list[Volume]:
    out = kit.runner(["docker", "volume", "ls", "-q", "--filter",
                      f"label={LABEL_UPGRADE_OF}={active}"]).stdout.decode().split()
    return [v for v in kit.scan(also=out) if v.name in out]


# The postgres 18 image keeps its cluster below /var/lib/postgresql and refuses a mount at
# /var/lib/postgresql/data: the one line of the compose file that says so, short syntax.
def mount_line_re(key: str) -> re.Pattern:
    return re.compile(rf"^(\s*-\s*[\"']?){re.escape(key)}:/var/lib/postgresql/data"
                      rf"((?::[a-z,]+)?[\"']?\s*(?:#.*)?)$", re.M)


def moved_mount(text: str, key: str) -> str | None:
    """The compose text with the volume moved to /var/lib/postgresql, or None when the mount
    is not written as exactly one short-syntax line the kit can change safely."""
    pattern = mount_line_re(key)
    if len(pattern.findall(text)) != 1:
        return None
    return pattern.sub(lambda m: f"{m[1]}{key}:/var/lib/postgresql{m[2]}", text)


@dataclass
class UpgradeState:
    """What an unfinished upgrade left (written once the old cluster's copy is verified)."""

    volume: str          # the active volume being upgraded
    kept: str            # the volume that keeps the old cluster, verified
    old_major: int
    old_image: str
    compose_file: str | None = None      # changed for the 18 layout ...
    compose_original: str | None = None  # ... and its original, kept here

    @staticmethod
    def path(kit: Kit) -> Path:
        return kit.settings.backup_dir / STATE_NAME

    @classmethod
    def read(cls, kit: Kit) -> UpgradeState | None:
        try:
            return cls(**json.loads(cls.path(kit).read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            raise Failure(f"{cls.path(kit)} cannot be read ({exc})",
                          "It records an interrupted db-upgrade; see the README before you "
                          "remove it") from None

    def write(self, kit: Kit) -> None:
        private_dir(kit.settings.backup_dir)
        tmp = self.path(kit).with_name(STATE_NAME + ".tmp")
        tmp.write_text(json.dumps(self.__dict__, indent=2))
        os.replace(tmp, self.path(kit))

    @classmethod
    def clear(cls, kit: Kit) -> None:
        cls.path(kit).unlink(missing_ok=True)


@dataclass(frozen=True)
class OldServer:
    container: str
    socket_volume: str


def superuser(kit: Kit) -> str:
    """The role the image's initdb made (POSTGRES_USER): the one that can read everything."""
    return kit.project.environment.get("POSTGRES_USER") or "postgres"


def start_old_server(kit: Kit, image: str, volume: str, pg_path: str) -> OldServer:
    """The old cluster's server in a throwaway container: no network, its socket in a volume
    of its own that the dump container mounts too."""
    token = f"{volume}-{os.getpid()}"  # the volume's name in both: they are easy to place
    sock, name = f"dbguard-upgrade-socket-{token}", f"dbguard-upgrade-{token}"
    kit.runner(["docker", "volume", "create", "--label", f"{LABEL_HELPER}=1", sock])
    pgdata = os.path.normpath(f"{OLD_MOUNT}/{pg_path}")
    kit.runner(["docker", "run", "-d", "--name", name, "--label", f"{LABEL_HELPER}=1",
                "--network", "none", "--pull", "never",
                "--mount", f"type=volume,source={volume},target={OLD_MOUNT}",
                "--mount", f"type=volume,source={sock},target={SOCKET_DIR}",
                "--env", f"PGDATA={pgdata}", image, "postgres"])
    server = OldServer(name, sock)
    deadline = time.monotonic() + kit.settings.up_timeout
    while True:
        if kit.runner(["docker", "exec", name, "pg_isready", "-h", SOCKET_DIR, "-q"],
                      check=False).returncode == 0:
            return server
        state = kit.runner(["docker", "inspect", "--format", "{{.State.Running}}", name],
                           check=False).stdout.strip()
        if state != b"true" or time.monotonic() > deadline:
            logs = kit.runner(["docker", "logs", "--tail", "15", name], check=False)
            text = (logs.stdout + logs.stderr).decode(errors="replace").strip().splitlines()
            from .destructive.upgrade_volume import stop_old_server
            stop_old_server(kit, server)
            raise Failure(f"the PostgreSQL server of {image} did not start on {volume}"
                          f" ({text[-1] if text else 'no log'})",
                          "Check OLD_IMAGE (it must be the cluster's major); nothing of the "
                          "old cluster was changed")
        time.sleep(0.5)


def dump_cluster(kit: Kit, server: OldServer, old_major: int) -> Path:
    """pg_dumpall of the NEW image reading the old server (roles, every database, large
    objects), into an owner-only file under backups/upgrades/, whole or not at all."""
    folder = private_dir(private_dir(kit.settings.backup_dir) / "upgrades")
    final = folder / f"{time.strftime('%Y%m%d_%H%M%S')}_pg{old_major}_cluster.sql"
    argv = ["docker", "run", "--rm", "--network", "none", "--pull", "never",
            "--label", f"{LABEL_HELPER}=1",
            "--mount", f"type=volume,source={server.socket_volume},target={SOCKET_DIR}",
            "--entrypoint", "pg_dumpall", kit.image.ref, "-h", SOCKET_DIR,
            "-U", superuser(kit)]
    with streamed_file(kit.runner, argv, final, "dumping the old cluster") as out:
        if CLUSTER_TRAILER not in out.tail:
            raise Failure("the cluster dump has no completion trailer (pg_dumpall stopped "
                          "early)", "Run again; nothing was changed")
    return final


def psql_script(kit: Kit, container: str, dbname: str, script: str) -> str:
    """Runs a psql script inside a container over its local socket, as the superuser."""
    argv = ["docker", "exec", "-i", container, "psql", "-X", "-q", "-At", "-v",
            "ON_ERROR_STOP=1", "-h", SOCKET_DIR, "-U", superuser(kit), "-d", dbname,
            "-f", "-"]
    proc = kit.runner.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(script.encode())
    except BaseException:
        kill_tree(proc)
        raise
    if proc.returncode != 0:
        raise command_failure(argv, err)
    return out.decode(errors="replace")


CLUSTER_FACTS = """
SELECT 'role ' || rolname || ' ' || rolsuper || rolcanlogin FROM pg_roles
 WHERE rolname !~ '^pg_' ORDER BY 1;
SELECT 'database ' || datname FROM pg_database WHERE datallowconn AND NOT datistemplate
 ORDER BY 1;
"""

# Every table's rows (count and an md5 over all of them), owners, views, sequences, extensions
# and large objects of one database.
DATABASE_FACTS = r"""
SELECT 'extension ' || extname FROM pg_extension ORDER BY 1;
SELECT 'view ' || format('%I.%I', schemaname, viewname) FROM pg_views
 WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1;
SELECT 'owner ' || format('%I.%I', schemaname, tablename) || ' ' || tableowner FROM pg_tables
 WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1;
SELECT 'sequence ' || format('%I.%I', schemaname, sequencename) || ' '
       || coalesce(last_value::text, '-') FROM pg_sequences ORDER BY 1;
SELECT 'largeobjects ' || count(*) || ':'
       || coalesce(md5(string_agg(md5(lo_get(oid)), ',' ORDER BY oid)), '')
  FROM pg_largeobject_metadata;
SELECT format('SELECT %L || '' '' || count(*) || '':'' || coalesce(md5(string_agg(x::text, '
              ''','' ORDER BY x::text)), '''') FROM %I.%I x',
              'table ' || format('%I.%I', schemaname, tablename), schemaname, tablename)
  FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1
\gexec
"""


def cluster_facts(kit: Kit, container: str) -> dict[str, list[str]]:
    """What must be equal before and after: roles, databases and, per database, every table's
    row count and checksum, owners, views, sequences, extensions, large objects."""
    facts = {"(cluster)": psql_script(kit, container, "postgres", CLUSTER_FACTS).split("\n")}
    for line in facts["(cluster)"]:
        if line.startswith("database "):
            db = line[len("database "):]
            facts[db] = psql_script(kit, container, db, DATABASE_FACTS).split("\n")
    return {k: [line for line in v if line] for k, v in facts.items()}


def fact_differences(before: dict, after: dict, limit: int = 5) -> list[str]:
    diffs = []
    for db in sorted(set(before) | set(after)):
        b, a = set(before.get(db, [])), set(after.get(db, []))
        diffs += [f"{db}: {x} missing" for x in sorted(b - a)]
        diffs += [f"{db}: {x} new" for x in sorted(a - b)]
    return diffs[:limit] + ([f"... {len(diffs) - limit} more"] if len(diffs) > limit else [])


def upgrade_in_progress(kit: Kit) -> tuple[str, str] | None:
    """(volume, kept volume) of an interrupted upgrade, for the diagnosis."""
    try:
        state = UpgradeState.read(kit)
    except Failure:
        return (kit.project.volume, "a volume labelled " + LABEL_UPGRADE_OF)
    return (state.volume, state.kept) if state else None
