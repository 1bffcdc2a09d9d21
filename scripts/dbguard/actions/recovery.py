"""Interrupted operations, read from the journal (never guessed from leftovers): named exactly
for db-info and db-up, and settled.

An operation is open when its journal has no end that says it left its target settled: it was
killed (no end at all), or it failed past its first change. What settles it depends on what it
changes:

- Inside the server (restore, seed, rollback, snapshot, snapshot drops, and db-undo of those):
  every change there is one statement or one transaction, so the data is always as before or as
  asked, and settling is safe to do unasked. Any command that takes the lock does it first
  (db-up included): it ends the server sessions the killed command left running, drops the
  kit's half-made databases, reopens a database the command had closed, and gives an
  interrupted snapshot the comment that makes it one. The journal then says what was done.
- A volume or folder (migrate, upgrade, db-undo of those): a copy can be half made. Settling is
  stopping whatever runs on it (interrupted means stopped: never serving partial data), and the
  target keeps its unfinished-copy mark, so db-up refuses it. Only the user chooses between
  finishing (the same command again) and reversing (db-undo), each with its own plan and
  question.
- Files (prune): each deletion is whole; nothing is left to settle.
"""
from __future__ import annotations

import os

from ..destructive import databases
from ..errors import Failure, refusal
from ..journal import Entry
from ..kit import Kit
from ..messages import info, warning
from ..names import scratch_database, trash_database
from ..service import RUNNING_STATES, stop_containers

# The step at which each volume command makes its first change to its target: a failure
# before it leaves the target as it was.
FIRST_CHANGE = {"db-migrate-volume": "copy", "db-upgrade": "empty", "db-undo": "replace"}
PUT_BACK = "put back"   # the step after which a failed volume command's target is as it was


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # the caller is settling its own failed run: its sessions must go too
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def settle_all(kit: Kit, by: str) -> list[str]:
    """Settles every open operation that can be settled unasked (see the docstring); returns
    what it said. Called under the lock, before a command plans anything."""
    said = []
    container = None
    for entry in kit.journal.open_entries():
        kind = entry.target.get("kind")
        if kind == "database":
            container = container or kit.service_container()
            if container is None or container.state != "running":
                continue  # db-up settles it once the server runs
            said.append(settle_database(kit, kit.server(container), entry, by))
        elif kind == "files":
            said.append(settle_files(kit, entry, by))
        elif FIRST_CHANGE.get(entry.command) not in entry.steps:
            text = (f"it stopped before its first change ({entry.last_step}): nothing of "
                    f"{entry.target.get('shown') or entry.target.get('name')} was changed")
            kit.journal.settle(entry, by, text)
            info(f"settled {entry.command} #{entry.id}: {text}")
            said.append(text)
        else:
            stop_on_store(kit, entry)
    return said


def settle_failed(kit: Kit, op_id: int, by: str) -> bool:
    """After a run of `by` failed or was interrupted: the same settling a later run would do.
    Returns whether the target is in a final state (as before, or as asked)."""
    entry = next((e for e in kit.journal.entries() if e.id == op_id), None)
    if entry is None:
        return True
    try:
        kind = entry.target.get("kind")
        if kind == "database":
            container = kit.service_container()
            if container is None or container.state != "running":
                return False
            settle_database(kit, kit.server(container), entry, f"{by} itself", write=False)
            return True
        if kind == "files":
            return True
        first = FIRST_CHANGE.get(entry.command)
        if first not in entry.steps or entry.last_step == PUT_BACK:
            return True
        stop_on_store(kit, entry)
        return False
    except Failure as exc:  # settling itself failed: the next command tries again
        warning(f"could not settle what was interrupted ({exc.message}); the next dbguard "
                "command tries again")
        return False


def settle_database(kit: Kit, server, entry: Entry, by: str, write: bool = True) -> str:
    """Brings an interrupted change inside the server to a final state (see the docstring)."""
    f = entry.facts
    db = f.get("db") or entry.target["name"]
    ended = databases.end_sessions_of_dead_commands(server, pid_alive)
    found = {d["name"]: d for d in databases_of(server, db)}
    did = [f"ended {ended} session(s) it left running"] if ended else []
    if f.get("snapshot_db"):
        snap = f["snapshot_db"]
        if snap in found and (found[snap]["note"] or "") != f["comment"]:
            databases.comment_on(server, snap, f["comment"])
            did.append(f"completed snapshot {f.get('snapshot', snap)!r}")
        outcome = "snapshot made" if snap in found else "no snapshot made"
    elif "drops" in f:
        gone = [n for n in f.get("drops", []) if n not in found]
        outcome = f"{len(gone)} of {len(f.get('drops', []))} snapshot(s) dropped"
    else:
        scratch, trash, keep = scratch_database(db), trash_database(db), f.get("keep", "")
        leftovers = [n for n in (scratch, trash) if n in found]
        if leftovers:
            databases.drop(server, leftovers, db)
            did.append("dropped its unfinished " + " and ".join(repr(n) for n in leftovers))
        swapped = keep in found and (found[keep]["note"] or "") == f.get("comment")
        outcome = (f"the swap had happened: {db!r} holds what was asked" if swapped else
                   f"{db!r} is as it was before")
    for name in (db, f.get("keep", "")):
        if name in found and not found[name]["open"]:
            databases.reopen(server, name)
            did.append(f"reopened {name!r}")
    text = f"{outcome}" + (f"; {', '.join(did)}" if did else "")
    if write:
        kit.journal.settle(entry, by, text)
        info(f"settled {entry.command} #{entry.id} of {db!r}, interrupted at "
             f"{entry.last_step}: {text}")
    return text


def databases_of(server, db: str) -> list[dict]:
    from ..catalog import databases as listing
    return listing(server, db)


def settle_files(kit: Kit, entry: Entry, by: str) -> str:
    text = "each file it deleted was deleted whole; the rest are as they were"
    kit.journal.settle(entry, by, text)
    return text


def stop_on_store(kit: Kit, entry: Entry) -> None:
    """Interrupted means stopped: nothing may run on a volume or folder whose copy is half
    made (a server started by hand on it would serve partial data)."""
    name = entry.target.get("name")
    if name != kit.project.volume:
        return
    running = [c for v in kit.scan() if v.name == name for c in v.users
               if c.state in RUNNING_STATES]
    if running:
        warning(f"{', '.join(c.name for c in running)} runs on {kit.project.store_label}, "
                f"which {entry.command} #{entry.id} left unfinished; stopping it")
        stop_containers(kit, running)


def open_on_store(kit: Kit) -> list[Entry]:
    """Open operations on the active volume or folder (they block db-up)."""
    return [e for e in kit.journal.open_entries()
            if e.target.get("kind") in ("volume", "folder")
            and e.target.get("name") == kit.project.volume]


def refuse_while_unsettled(kit: Kit, command: str, args) -> None:
    """No command acts on a volume or folder whose copy an interrupted command left half made,
    but the one that finishes it (the same command) and db-undo."""
    if command in ("db-undo",):
        return
    blocking = [e for e in open_on_store(kit) if e.command != command]
    if blocking:
        reasons = []
        for e in blocking:
            finish, reverse = e.finish_and_reverse()
            reasons.append(f"{e.describe()}; finish it with `{finish}` or reverse it with "
                           f"`{reverse}`")
        raise refusal(f"run {command} on {kit.project.store_label}", reasons)


def mark_finished(kit: Kit, op_id: int, plan) -> None:
    """After a run that finished what earlier open runs of the same command on the same target
    left (a rerun of migrate or upgrade), or reversed one (db-undo), those are settled by it."""
    undoes = plan.record.get("undoes")
    for e in kit.journal.open_entries():
        if e.id == op_id or e.target.get("name") != plan.target.get("name"):
            continue
        if plan.command == "db-undo" and e.id == undoes:
            kit.journal.settle(e, f"db-undo #{op_id}", "reversed")
        elif plan.command == "db-undo" and e.command == "db-undo" and \
                e.facts.get("undoes") == undoes:
            kit.journal.settle(e, f"db-undo #{op_id}", "finished")
        elif plan.command != "db-undo" and e.command == plan.command:
            kit.journal.settle(e, f"{plan.command} #{op_id}", "finished")
