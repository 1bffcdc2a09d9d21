"""What every script shares on the command line: the parser built from the script's docstring,
and the entrypoint that turns expected failures into one ERROR line and an exit code.

Run as `python3 scripts/db_x.py` with a Python that lacks the kit's dependencies, the
entrypoint runs the script again under the kit's .venv (which any make target creates).
"""
from __future__ import annotations

import argparse
import functools
import importlib.util
import inspect
import os
import signal
import sys
from pathlib import Path
from collections.abc import Callable

from .errors import EXIT_FAILED, EXIT_USAGE, Failure
from .messages import colour
from .settings import KIT_ROOT

DEPENDENCIES = ("dotenv",)


def use_kit_venv() -> None:
    """Looks the dependency up without importing it, and re-executes the script under .venv
    when it is missing here."""
    if all(importlib.util.find_spec(name) for name in DEPENDENCIES):
        return
    venv = Path(os.environ.get("DBGUARD_VENV") or KIT_ROOT / ".venv")
    python = (venv if venv.is_absolute() else KIT_ROOT / venv) / "bin" / "python"
    if python.exists() and not os.environ.get("DBGUARD_REEXEC"):  # (the variable: once)
        os.environ["DBGUARD_REEXEC"] = "1"
        os.execv(str(python), [str(python), *sys.argv])
    print("ERROR: python-dotenv is not installed for this Python. Run any make target once "
          "(e.g. `make db-info`): it creates .venv with it", file=sys.stderr)
    sys.exit(EXIT_FAILED)


def entrypoint(main: Callable[[list[str] | None], int]) -> Callable[[list[str] | None], int]:
    """Turns expected failures into their one ERROR line and exit code; bugs keep the traceback.
    Called without arguments (from the command line), it first makes sure of the .venv."""

    @functools.wraps(main)
    def wrapper(argv: list[str] | None = None) -> int:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            if argv is None:
                use_kit_venv()
            return main(argv)
        except Failure as exc:
            for line in exc.details:
                print(line, file=sys.stderr)
            start, end = colour("ERROR")
            print(f"{start}{exc.line()}{end}", file=sys.stderr, flush=True)
            return exc.code
        except KeyboardInterrupt:
            print("ERROR: interrupted. Nothing after the last completed step was changed; run "
                  "the command again", file=sys.stderr)
            return 130

    return wrapper


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str):
        print(f"ERROR: {message}. See `{self.prog} --help`", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def parser(doc: str, *, dry_run: bool = True, yes: bool = False, db: bool = False
           ) -> argparse.ArgumentParser:
    """The script's docstring is its --help: first line the summary, the rest the description."""
    summary, _, rest = doc.strip().partition("\n")
    p = _ArgumentParser(description=summary, epilog=inspect.cleandoc(rest),
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print every docker command before it runs")
    if dry_run:
        p.add_argument("-n", "--dry-run", action="store_true",
                       help="show what would be done and change nothing")
    if yes:
        p.add_argument("-y", "--yes", action="store_true",
                       help="answer yes to the confirmation question (needed without a terminal)")
    if db:
        p.add_argument("--db", metavar="NAME",
                       help="the database (default: DJANGO_DB_NAME, else the service's "
                            "POSTGRES_DB, else its POSTGRES_USER, else postgres)")
    return p
