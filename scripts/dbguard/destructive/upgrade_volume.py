"""DESTROYS DATA: db-upgrade's destructive steps. The active volume is emptied for the new
major's cluster only after a verified copy of the old cluster sits in a volume of its own and
the state file says so; putting the old cluster back (a rerun, or UNDO=1) copies that volume
into the active one again, verified. Unfinished copies of a killed run are removed.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

from ..docker import helper_args
from ..errors import Failure
from ..kit import Kit
from ..messages import info
from ..runner import command_failure, kill_tree
from ..streams import drain
from ..upgrade import SOCKET_DIR, OldServer, psql_script, superuser
from ..volumes import Volume
from .replace_volume import EMPTY_SCRIPT, copy_verified, unmark


def empty_volume(kit: Kit, name: str) -> None:
    info(f"emptying {name} for the new cluster (the old one is kept)")
    kit.runner(helper_args(kit.image.ref, [(name, "/to", False)], EMPTY_SCRIPT), mutates=True)


def put_old_cluster_back(kit: Kit, kept: Volume, active: str) -> None:
    """Copies the kept old cluster into the active volume (marked while it runs), verified."""
    info(f"putting the old cluster back: {kept.name} -> {active}")
    diff = copy_verified(kit, kept, active)
    if diff:
        raise Failure(f"the copy of {kept.name} into {active} differs ({'; '.join(diff)})",
                      f"{kept.name} is untouched, and the mark keeps db-up off {active}; run "
                      "again")
    unmark(kit, active)


def remove_volumes(kit: Kit, names: list[str]) -> None:
    """Removes volumes the upgrade made and did not finish (an interrupted copy)."""
    if names:
        info("removing the unfinished copy of an interrupted run: " + ", ".join(names))
        kit.runner(["docker", "volume", "rm", "-f", *names], mutates=True)


INTERNAL_OPTION = re.compile(rb"^ALTER TABLE ONLY .+ ALTER COLUMN .+ SET \(pg_attver=\d+\);$")


def stop_old_server(kit: Kit, server: OldServer) -> None:
    kit.runner(["docker", "stop", "-t", "30", server.container], check=False)
    kit.runner(["docker", "rm", "-f", "-v", server.container], check=False)  # -v: anonymous
    kit.runner(["docker", "volume", "rm", "-f", server.socket_volume], check=False)


def quoted_role(name: str) -> set[str]:
    """The ways pg_dumpall may write a role's name."""
    return {name, '"' + name.replace('"', '""') + '"'}


def load_cluster(kit: Kit, container: str, dump: Path) -> None:
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
        psql_script(kit, container, "postgres",
                    f"DROP DATABASE IF EXISTS \"{created.replace(chr(34), chr(34) * 2)}\";")
    argv = ["docker", "exec", "-i", container, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
            "-h", SOCKET_DIR, "-U", user, "-d", "postgres", "-f", "-"]
    info(f"loading {dump.name} into the new server")
    proc = kit.runner.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    errors: list[bytes] = []
    reader = drain(proc.stderr, errors)
    try:
        with open(dump, "rb") as handle:
            for line in handle:
                if line.rstrip(b"\n") in skip or INTERNAL_OPTION.match(line):
                    continue
                proc.stdin.write(line)
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
