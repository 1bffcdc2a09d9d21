"""The journal of destructive operations: one line of JSON per event, appended and synced to disk
before the step it announces, in the backup folder (`journal.jsonl`, readable with any pager).

Every data-changing command writes `begin` (what it is about to do, to what, and the copy it
keeps) before its first change, `step` as it reaches each point of its sequence, and `end` (done
or failed, and whether it left its target settled). A command killed outright writes no `end`:
its last `step` says where it stopped. Later commands add `settled` when they finished or
reversed what an interrupted one left. db-info, db-up, db-history and db-undo read it; they
never guess what happened from the names of leftovers.

Only commands holding the kit's lock write, so an operation without an end whose process holds
no lock was interrupted. A torn last line (a crash in the middle of a write) is ignored.
"""
from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import Failure
from .files import fsync_dir
from .names import JOURNAL_FILE


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class Entry:
    """One operation, folded from its lines."""

    id: int
    command: str
    target: dict
    copy: dict
    facts: dict
    started: str
    pid: int
    steps: list[str] = field(default_factory=list)
    result: str | None = None     # done, failed, interrupted; None: no end was written
    message: str = ""
    settled: bool = False         # its target is in a final state (before, or as asked)
    settled_by: str = ""          # what settled it afterwards, when its own run did not
    undone_by: int | None = None

    @property
    def last_step(self) -> str:
        return self.steps[-1] if self.steps else "begin"

    @property
    def open(self) -> bool:
        """Its target is not known to be in a final state: finish or reverse it."""
        return not self.settled

    @property
    def state(self) -> str:
        if self.result is None:
            text = f"interrupted at {self.last_step}"
        elif self.result == "done":
            text = "done"
        else:
            text = f"{self.result} at {self.last_step}"
        if self.settled_by:
            text += f"; {self.settled_by}"
        if self.undone_by:
            text += f"; undone by #{self.undone_by}"
        return text

    def describe(self) -> str:
        target = self.target.get("shown") or self.target.get("name")
        how = "interrupted" if self.result in (None, "interrupted") else "stopped by a failure"
        return (f"{self.command} #{self.id} of {self.target.get('kind')} {target!r} was {how} "
                f"at step {self.last_step!r} ({self.started[:19].replace('T', ' ')} UTC)")

    def finish_and_reverse(self) -> tuple[str, str]:
        """The command that finishes this open volume operation, and the one that reverses it.
        """
        if self.command == "db-migrate-volume":
            source = self.facts.get("source_shown") or self.facts.get("source", "")
            return f"make db-migrate-volume FROM={source}", "make db-undo"
        if self.command == "db-upgrade":
            return "make db-upgrade", "make db-undo"
        return f"make db-undo OP={self.facts.get('undoes', '')}".rstrip("="), "make db-undo"

    def to_json(self) -> dict:
        return {"id": self.id, "command": self.command, "target": self.target,
                "copy": self.copy, "facts": self.facts, "started": self.started,
                "steps": self.steps, "result": self.result, "message": self.message,
                "settled": self.settled, "settled_by": self.settled_by,
                "undone_by": self.undone_by, "state": self.state}


class Journal:
    """The journal of one kit's backup folder."""

    def __init__(self, folder: Path):
        self.path = folder / JOURNAL_FILE

    def entries(self) -> list[Entry]:
        """Every operation, oldest first."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise Failure(f"cannot read the journal {self.path} ({exc.strerror})",
                          "Make it readable; it records what the kit changed") from None
        ops: dict[int, Entry] = {}
        for line in text.splitlines():
            try:
                event = json.loads(line)
                fold(ops, event)
            except (ValueError, KeyError, TypeError):
                continue  # a torn line: the write it belonged to never finished
        return sorted(ops.values(), key=lambda e: e.id)

    def open_entries(self) -> list[Entry]:
        return [e for e in self.entries() if e.open]

    def begin(self, command: str, target: dict, copy: dict, facts: dict) -> Operation:
        ids = [e.id for e in self.entries()]
        op = Operation(self, (max(ids) if ids else 0) + 1)
        self.write({"op": op.id, "event": "begin", "command": command, "target": target,
                    "copy": copy, "facts": facts, "pid": os.getpid()})
        return op

    def settle(self, entry: Entry, by: str, outcome: str) -> None:
        """Another command brought an open operation to a final state."""
        self.write({"op": entry.id, "event": "settled", "by": by, "outcome": outcome})

    def write(self, event: dict) -> None:
        line = json.dumps({"at": now(), **event}, ensure_ascii=False) + "\n"
        created = not self.path.exists()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                fsync_dir(self.path.parent)
        except OSError as exc:
            raise Failure(f"cannot write the journal {self.path} ({exc.strerror})",
                          "Free space in the backup folder (or fix its permissions) and run "
                          "again; nothing after the last recorded step was changed") from None


def fold(ops: dict[int, Entry], event: dict) -> None:
    op, kind = int(event["op"]), event["event"]
    if kind == "begin":
        ops[op] = Entry(op, event["command"], event["target"], event.get("copy") or {},
                        event.get("facts") or {}, event["at"], int(event.get("pid", 0)))
        return
    entry = ops[op]
    if kind == "step":
        entry.steps.append(event["step"])
        entry.facts.update(event.get("facts") or {})
    elif kind == "end":
        entry.result, entry.message = event["result"], event.get("message", "")
        entry.settled = bool(event.get("settled"))
        entry.facts.update(event.get("facts") or {})
        undoes = entry.facts.get("undoes")
        if entry.result == "done" and undoes in ops:
            ops[undoes].undone_by = op
    elif kind == "settled":
        entry.settled, entry.settled_by = True, f"{event['outcome']} ({event['by']})"


class Operation:
    """The journal lines of the operation in progress."""

    def __init__(self, journal: Journal, op: int):
        self.journal, self.id = journal, op
        self.steps: list[str] = []
        self.ended = False

    @property
    def last_step(self) -> str:
        return self.steps[-1] if self.steps else "begin"

    def step(self, name: str, **facts) -> None:
        """Written (and synced) before the step it names is taken."""
        self.steps.append(name)
        self.journal.write({"op": self.id, "event": "step", "step": name,
                            **({"facts": facts} if facts else {})})

    def end(self, result: str, settled: bool, message: str = "", **facts) -> None:
        if self.ended:
            return
        self.ended = True
        self.journal.write({"op": self.id, "event": "end", "result": result, "settled": settled,
                            "message": message, **({"facts": facts} if facts else {})})
