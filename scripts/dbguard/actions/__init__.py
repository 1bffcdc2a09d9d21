"""Every command that changes data, one module each: its whole sequence, auditable alone.

Each module has the same parts, in the order they run:

  plan(kit, args)       reads what is there now and says what will happen, to what, and the
                        copy it keeps; it calls
  preflight(...)        every reason to refuse, at once (errors.refusal's one format)
  run(kit, plan, op)    the changes, each step written to the journal (op.step) before it is
                        taken, and the check that the result is what was asked for

and `perform` (below) puts them in order for all of them: the lock; settling what an
interrupted command left (recovery.py); the plan; a dry run's stop; the question; the scan
again after it (the plan must still be the one that was answered); the journal's begin; run; the
journal's end, and on any failure or interrupt the same settling a later run would do.

  restore.py         db-restore              migrate.py     db-migrate-volume
  seed.py            db-seed                 upgrade.py     db-upgrade
  snapshot.py        db-snapshot             undo.py        db-undo (and UNDO=1)
  rollback.py        db-rollback             prune.py       db-prune
  drop_snapshots.py  db-snapshots DROP=/KEEP=
  up.py              db-up and db-down: start and stop, under the same lock
  recovery.py        interrupted operations: named from the journal, and settled
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

from ..errors import Refusal, refusal
from ..destructive.delete_backups import remove_unfinished
from ..kit import Folder, Kit, kit_lock
from ..messages import confirm, info, show_plan, warning


@dataclass(frozen=True)
class Plan:
    """What a command will do, shown before it asks; `facts` must be the same when it is
    computed again after the question, or nothing is done."""

    command: str                    # db-restore, ...
    doing: str                      # "restore X into 'sum_db'", for refusals
    target: dict                    # the journal's: {"kind": "database", "name": ...}
    copy: dict                      # the journal's: what it keeps, for db-undo
    lines: tuple = ()               # (label, text) pairs, shown as the plan
    question: str | None = None     # None: nothing destroyed, nothing to ask
    warning: str | None = None
    facts: tuple = ()
    refusals: tuple = ()            # preflight's reasons
    nothing: str = ""               # said instead of a plan when there is nothing to do
    record: dict = field(default_factory=dict)   # more for the journal (what recovery needs)
    data: object = field(default=None, compare=False, repr=False)  # for run()


def perform(kit: Kit | Folder, action, args) -> object:
    """Runs an action's sequence (see the module's docstring). Returns what run returned, or
    None for a dry run or when there is nothing to do. `kit` is the backup folder alone for
    the commands that only work on its files (db-prune)."""
    from . import recovery

    with kit_lock(kit, action.COMMAND), contextlib.ExitStack() as stack:
        if isinstance(kit, Kit):
            if not kit.runner.dry_run:
                recovery.settle_all(kit, by=action.COMMAND)
                remove_unfinished(kit.settings)  # the .partial files killed runs left
            recovery.refuse_while_unsettled(kit, action.COMMAND, args)
        ctx = stack.enter_context(action.session(kit, args)) \
            if hasattr(action, "session") else None
        # One time for every name the plan makes (kept snapshots, volumes, files), so the plan
        # made again after the question names the same things as the one shown.
        args.stamp = getattr(args, "stamp", None) or time.strftime("%Y%m%d_%H%M%S")
        plan = action.plan(kit, args, ctx)
        if plan.refusals:
            raise refusal(plan.doing, list(plan.refusals))
        if plan.nothing:
            info(plan.nothing)
            return None
        if plan.lines:
            show_plan(plan.lines)
        if kit.runner.dry_run:
            info("dry run: nothing was changed")
            return None
        if plan.question:
            if plan.warning:
                warning(plan.warning)
            ahead = bool(getattr(args, "yes", False))
            confirm(plan.question, assume_yes=ahead)
            # The world may have moved while the question waited (a container started, a file
            # replaced): everything is read and checked again, and the plan must be the same.
            # Answered ahead (YES=1), nothing waited between the plan and the answer.
            if not ahead:
                again = action.plan(kit, args, ctx)
                if again.refusals:
                    raise refusal(again.doing, list(again.refusals))
                if again.facts != plan.facts:
                    raise Refusal("what the plan was made of changed while the question "
                                  "waited", "Run it again and read the new plan; nothing was "
                                  "changed")
                plan = again
        op = kit.journal.begin(plan.command, plan.target, plan.copy, plan.record)
        try:
            result = action.run(kit, plan, op)
        except BaseException as exc:
            interrupted = not isinstance(exc, Exception)
            settled = recovery.settle_failed(kit, op.id, action.COMMAND) \
                if isinstance(kit, Kit) else True
            message = getattr(exc, "message", "") or type(exc).__name__
            op.end("interrupted" if interrupted else "failed", settled=settled,
                   message=message)
            raise
        op.end("done", settled=True)
        if isinstance(kit, Kit):
            recovery.mark_finished(kit, op.id, plan)
        return result
