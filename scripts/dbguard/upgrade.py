"""db-upgrade's pieces that change nothing of the user's: which image reads the old cluster, the
postgres 18 mount change as text, the throwaway servers (the old cluster's, read from the
volume that keeps it; the new major's, loading into the active volume), the cluster dump taken
with the new major's pg_dumpall, loading it, and the facts compared before and after.

Both servers run in throwaway containers with no network at all, so no application can reach
either while it works: a half-loaded cluster is never served. The old server's socket is in an
anonymous volume that the dump container mounts and that goes with the old
server's container; a run killed while the dump reads it can leave it behind, labelled with
the project, for the next run to remove (destructive.recreated). Local socket connections are trusted by the postgres image, so no
password is needed anywhere.
"""
from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

from .destructive import databases
from .docker import NO_LOG, inspect_image
from .errors import Failure
from .files import private_dir
from .kit import Kit
from .messages import info
from .names import (INCOMPLETE_MARKER, LABEL_HELPER, LABEL_OWNER, LABEL_SOCKET_OF,
                    LABEL_UPGRADE_OF, UPGRADE_DUMPS, server_container)
from .runner import command_failure, kill_tree
from .server import Server
from .streams import drain, streamed_file
from .volumes import Volume

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


def old_image_for(kit: Kit, given: str | None, major: int) -> tuple[str | None, str | None]:
    """The image that reads the old cluster (given, or derived from the configured one), and
    why it cannot be used (a reason to refuse), or None. It must be present here and run the
    old major; a derived image that is missing is pulled, outside a dry run."""
    ref = given or derive_old_image(kit.project.image, major)
    if not ref:
        return None, (f"it cannot tell which image runs PostgreSQL {major}: "
                      f"{kit.project.image!r} is not named like the official image "
                      f"(postgres:<major>...); give one with OLD_IMAGE=<a PostgreSQL {major} "
                      "image>")
    image = inspect_image(kit.runner, ref)
    if not image.present and not kit.runner.dry_run:
        info(f"pulling {ref}")
        if kit.runner(["docker", "pull", ref], check=False).returncode == 0:
            image = inspect_image(kit.runner, ref)
    if not image.present:
        return ref, (f"the image {ref} is not available here (and could not be pulled); pull "
                     f"or build a PostgreSQL {major} image and give it as OLD_IMAGE=")
    if image.pg_major != major:
        return ref, (f"{ref} runs PostgreSQL {image.pg_major}, not {major} like the cluster; "
                     f"give a PostgreSQL {major} image as OLD_IMAGE=")
    return ref, None


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


def superuser(kit: Kit) -> str:
    """The role the image's initdb made (POSTGRES_USER): the one that can read everything."""
    return kit.project.environment.get("POSTGRES_USER") or "postgres"


def kept_volumes(kit: Kit, active: str) -> list[str]:
    out = kit.runner(["docker", "volume", "ls", "-q", "--filter",
                      f"label={LABEL_UPGRADE_OF}={active}"], reads=True).stdout.decode()
    return out.split()


def uncovered(volumes: list[str] | tuple[str, ...], targets: list[str]) -> list[str]:
    """The image's VOLUME paths that no mount target is, nor lies above (a path under a mount
    lives in that mount, as Compose would have it)."""
    def under(path: str, target: str) -> bool:
        return path == target or path.startswith(target.rstrip("/") + "/")
    return [path for path in volumes if not any(under(path, t) for t in targets)]


def tmpfs_covers(volumes: list[str] | tuple[str, ...], targets: list[str]) -> list[str]:
    """`--mount` options: a small tmpfs on each of the image's VOLUME paths left uncovered."""
    return [arg for path in uncovered(volumes, targets)
            for arg in ("--mount", f"type=tmpfs,target={path},tmpfs-size=65536")]


def run_server(kit: Kit, purpose: str, image: str, mounts: list, env: dict,
               command: list[str], entrypoint: list[str] = ()) -> Server:
    """A throwaway PostgreSQL server: no network, labelled as the project's helper (stop_server
    removes it with its anonymous volumes, and a later run does if this one was killed).
    `env`'s values reach it through the environment of the docker client, never argv.
    Its one anonymous volume is the socket folder, which the cluster dump mounts. A small
    tmpfs covers every other VOLUME path of the image that `mounts`
    leave uncovered (the old server's data folder, mounted elsewhere): Docker would otherwise
    make an anonymous volume for it that a run killed at the wrong moment leaves behind."""
    name = server_container(purpose, kit.project.name, os.getpid())
    argv = ["docker", "run", "-d", "--name", name, "--label", f"{LABEL_HELPER}=1",
            "--label", f"{LABEL_OWNER}={kit.project.name}", "--network", "none",
            "--pull", "never", "--shm-size", "256m",
            "--mount", f"type=volume,target={SOCKET_DIR},"
            f"volume-label={LABEL_SOCKET_OF}={kit.project.name}"]
    argv += tmpfs_covers(inspect_image(kit.runner, image).volumes,
                         [*(target for _, _, target, _ in mounts), SOCKET_DIR])
    for kind, source, target, readonly in mounts:
        argv += ["--mount", f"type={kind},source={source},target={target}"
                 + (",readonly" if readonly else "")]
    for key in env:
        argv += ["--env", key]
    if entrypoint:
        argv += ["--entrypoint", entrypoint[0]]
    argv += [image, *entrypoint[1:], *command]
    kit.runner(argv, env=dict(os.environ, **env))
    server = Server(kit.runner, name, superuser(kit), command=kit.command)
    deadline = time.monotonic() + kit.settings.up_timeout
    while True:
        if kit.runner(["docker", "exec", name, "pg_isready", "-h", SOCKET_DIR, "-q"],
                      check=False, reads=True).returncode == 0:
            # While the entrypoint initialises a new cluster, a temporary server of its own
            # answers on the socket too; the cluster is ready when the server that answers is
            # the one the entrypoint exec'd as the container's first process.
            if purpose == "old" or kit.runner(
                    ["docker", "exec", name, "sh", "-c",
                     '[ "$(head -n 1 "$PGDATA/postmaster.pid" 2>/dev/null)" = 1 ]'],
                    check=False, reads=True).returncode == 0:
                return server
        state = kit.runner(["docker", "inspect", "--format", "{{.State.Running}}", name],
                           check=False, reads=True).stdout.strip()
        if state != b"true" or time.monotonic() > deadline:
            logs = kit.runner(["docker", "logs", "--tail", "15", name], check=False,
                              reads=True)
            text = (logs.stdout + logs.stderr).decode(errors="replace").strip().splitlines()
            stop_server(kit, server)
            raise Failure(f"the PostgreSQL server of {image} did not start"
                          f" ({text[-1] if text else 'no log'})",
                          "Check the image (OLD_IMAGE for the old cluster) and run again")
        time.sleep(0.5)


def old_server(kit: Kit, image: str, kept: Volume) -> Server:
    """The old cluster's server, reading the volume that keeps it."""
    pgdata = os.path.normpath(f"{OLD_MOUNT}/{kept.pg_path or '.'}")
    return run_server(kit, "old", image, [("volume", kept.name, OLD_MOUNT, False)],
                      {"PGDATA": pgdata}, ["postgres"])


def new_server(kit: Kit, active: Volume, mount_target: str) -> Server:
    """The new major's server on the active volume, initialised by the image's own entrypoint
    with the service's environment (POSTGRES_USER, POSTGRES_DB, POSTGRES_INITDB_ARGS, ...) and
    command, as `docker compose up` would. initdb wants an empty data directory, so the
    unfinished-copy mark is taken out of it as the container starts (the journal keeps db-up
    off the volume meanwhile) and the caller writes it again once the server answers."""
    image = inspect_image(kit.runner, kit.project.image)
    command = list(kit.project.command or image.cmd or ("postgres",))
    wrapper = ["sh", "-c", f'rm -f "$PGDATA/{INCOMPLETE_MARKER}"; exec "$@"', "dbguard",
               *image.entrypoint]
    return run_server(kit, "new", kit.project.image, [active.mount(mount_target, False)],
                      dict(kit.project.environment), command, wrapper)


def stop_server(kit: Kit, server: Server) -> None:
    """Stops a throwaway server and removes its container with its anonymous volumes."""
    kit.runner(["docker", "stop", "-t", "30", server.container], check=False)
    kit.runner(["docker", "rm", "-f", "-v", server.container], check=False)


def socket_volume(kit: Kit, server: Server) -> str:
    """The anonymous volume that holds a throwaway server's socket. (--volumes-from cannot
    share it: Docker refuses a source container that has a tmpfs mount.)"""
    template = "{{range .Mounts}}{{if eq .Destination \"%s\"}}{{.Name}}{{end}}{{end}}"
    name = kit.runner(["docker", "inspect", "--format", template % SOCKET_DIR,
                       server.container], reads=True).stdout.decode().strip()
    if not name:
        raise Failure(f"the server {server.container} has no socket volume",
                      "Run again; nothing was changed")
    return name


def dump_cluster(kit: Kit, server: Server, old_major: int) -> Path:
    """pg_dumpall of the NEW image reading the old server through the socket they share
    (roles, every database, large objects), into an owner-only file under backups/upgrades/,
    whole or not at all. Like the servers, it makes no anonymous volume of its own."""
    folder = private_dir(private_dir(kit.settings.backup_dir) / UPGRADE_DUMPS)
    final = folder / f"{time.strftime('%Y%m%d_%H%M%S')}_pg{old_major}_cluster.sql"
    argv = ["docker", "run", "--rm", *NO_LOG, "--network", "none", "--pull", "never",
            "--label", f"{LABEL_HELPER}=1", "--label", f"{LABEL_OWNER}={kit.project.name}",
            "--mount", f"type=volume,source={socket_volume(kit, server)},target={SOCKET_DIR},"
            "readonly", *tmpfs_covers(kit.image.volumes, [SOCKET_DIR]),
            "--entrypoint", "pg_dumpall", kit.image.ref, "-h", SOCKET_DIR,
            "-U", superuser(kit)]
    with streamed_file(kit.runner, argv, final, "dumping the old cluster") as out:
        if CLUSTER_TRAILER not in out.tail:
            raise Failure("the cluster dump has no completion trailer (pg_dumpall stopped "
                          "early)", "Run again; nothing was changed")
    return final


INTERNAL_OPTION = re.compile(rb"^ALTER TABLE ONLY .+ ALTER COLUMN .+ SET \(pg_attver=\d+\);$")


def quoted_role(name: str) -> set[str]:
    """The ways pg_dumpall may write a role's name."""
    return {name, '"' + name.replace('"', '""') + '"'}


def load_cluster(kit: Kit, server: Server, dump: Path) -> None:
    """Loads the cluster dump into the new server, stopping at the first error. The new
    server's own superuser exists already (the image's initdb made it), so that one CREATE ROLE
    is left out; its ALTER ROLE (attributes, password) still applies. The database the image
    created (POSTGRES_DB) is empty and is dropped first, so the dump creates it as it was."""
    user = superuser(kit)
    skip = {f"CREATE ROLE {n};".encode() for n in quoted_role(user)}
    # Recent 17.x servers keep an internal column option, pg_attver, that an older 18.x
    # pg_dump copies into the dump and the 18 server then rejects ("unrecognized parameter");
    # the server sets it itself, so those lines are left out too.
    created = kit.project.environment.get("POSTGRES_DB") or user
    if created != "postgres":
        databases.drop(server, [created], created)
    argv = ["docker", "exec", "-i", server.container, "psql", "-X", "-q", "-v",
            "ON_ERROR_STOP=1", "-h", SOCKET_DIR, "-U", user, "-d", "postgres", "-f", "-"]
    info(f"loading {dump.name} into the new server")
    proc = kit.runner.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    errors: list[bytes] = []
    reader = drain(proc.stderr, errors)
    try:
        with open(dump, "rb") as handle:
            for chunk in filtered(handle, skip):
                proc.stdin.write(chunk)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    except BaseException:
        kill_tree(proc)
        raise
    finally:
        code = proc.wait()
        reader.join()
    if code != 0:
        raise command_failure(argv, b"".join(errors))


COPY_START = re.compile(rb"^COPY .* FROM stdin;\n$")
END_OF_ROWS = b"\n\\.\n"   # a row ends its line; the rows end at a line that reads \.
BLOCK = 1 << 20


def filtered(handle, skip: set[bytes]):
    """The dump, less the lines `load_cluster` leaves out, in chunks. Statements are read line
    by line; the rows of each COPY (most of a dump) pass through in blocks up to their end
    marker, untouched: a row that happens to read like a left-out statement is data."""
    while True:
        line = handle.readline()
        if not line:
            return
        if line.rstrip(b"\n") in skip or INTERNAL_OPTION.match(line):
            continue
        yield line
        if COPY_START.match(line):
            yield from copy_rows(handle)


def copy_rows(handle):
    """The rows of one COPY with their end marker; the reader is left right after it."""
    first = handle.readline()
    if first in (b"\\.\n", b""):
        yield first
        return
    pending = first
    while True:
        end = pending.find(END_OF_ROWS)
        if end >= 0:
            cut = end + len(END_OF_ROWS)
            yield pending[:cut]
            handle.seek(handle.tell() - (len(pending) - cut))  # the statements after it
            return
        block = handle.read(BLOCK)
        if not block:
            yield pending
            return
        keep = len(END_OF_ROWS) - 1  # the marker may straddle two blocks
        if len(pending) > keep:
            yield pending[:-keep]
            pending = pending[-keep:]
        pending += block


CLUSTER_FACTS = """
SELECT 'role ' || rolname || ' ' || rolsuper || rolcanlogin FROM pg_roles
 WHERE rolname !~ '^pg_' ORDER BY 1;
SELECT 'database ' || datname FROM pg_database WHERE datallowconn AND NOT datistemplate
 ORDER BY 1;
"""

# Every table's rows (their count, and the sum of a 64-bit hash of each row's text: equal for
# the same rows in any order, with no sort and no string the size of the table, which an md5
# over all rows needed and which fails past 1 GB), owners, views, sequences, extensions and
# large objects of one database.
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
SELECT format('SELECT %L || '' '' || count(*) || '':'' || '
              'coalesce(sum(hashtextextended(x::text, 0)::numeric), 0) FROM %I.%I x',
              'table ' || format('%I.%I', schemaname, tablename), schemaname, tablename)
  FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1
\gexec
"""


def cluster_facts(server: Server) -> dict[str, list[str]]:
    """What must be equal before and after: roles, databases and, per database, every table's
    row count and checksum, owners, views, sequences, extensions, large objects."""
    facts = {"(cluster)": server.read(CLUSTER_FACTS, "postgres").split("\n")}
    for line in facts["(cluster)"]:
        if line.startswith("database "):
            db = line[len("database "):]
            facts[db] = server.read(DATABASE_FACTS, db).split("\n")
    return {k: [line for line in v if line] for k, v in facts.items()}


def fact_differences(before: dict, after: dict, limit: int = 5) -> list[str]:
    diffs = []
    for db in sorted(set(before) | set(after)):
        b, a = set(before.get(db, [])), set(after.get(db, []))
        diffs += [f"{db}: {x} missing" for x in sorted(b - a)]
        diffs += [f"{db}: {x} new" for x in sorted(a - b)]
    return diffs[:limit] + ([f"... {len(diffs) - limit} more"] if len(diffs) > limit else [])
