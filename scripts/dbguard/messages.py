"""What the kit says: the fixed message vocabulary (==>, INFO, WARNING, SUCCESS, and ERROR through
cli.entrypoint) on stderr, the [y/N] question, sizes and ages for people, aligned tables, and
one self-rewriting progress line. Colour only on a terminal and only without NO_COLOR.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import sys
import time
from collections.abc import Iterator, Sequence

from .errors import Refusal


def colour(level: str) -> tuple[str, str]:
    if os.environ.get("NO_COLOR") or not sys.stderr.isatty():
        return "", ""
    codes = {"ERROR": "31", "WARNING": "33", "SUCCESS": "32", "INFO": "36", "==>": "1"}
    return f"\033[{codes.get(level, '0')}m", "\033[0m"


def say(level: str, text: str) -> None:
    """Messages go to stderr; stdout is kept for what the user asked for."""
    start, end = colour(level)
    print(f"{start}{level}{end}{'' if level == '==>' else ':'} {text}", file=sys.stderr, flush=True)


headline = functools.partial(say, "==>")
info = functools.partial(say, "INFO")
warning = functools.partial(say, "WARNING")
success = functools.partial(say, "SUCCESS")


@contextlib.contextmanager
def timing(phase: str) -> Iterator[None]:
    """Times a phase of a command; with DBGUARD_TIMINGS=1 says `timing <phase> <s>s` (what
    `make bench` reads to break a target's time down)."""
    started = time.monotonic()
    yield
    if os.environ.get("DBGUARD_TIMINGS"):
        info(f"timing {phase} {time.monotonic() - started:.2f}s")


def detail(text: str = "") -> None:
    print(f"  {text}" if text else "", file=sys.stderr, flush=True)


def plan_lines(lines: Sequence[tuple[str, str]]) -> list[str]:
    """A plan as people read it: `label:` padded, then what happens to what."""
    return [f"{label + ':':<9} {text}" for label, text in lines]


def show_plan(lines: Sequence[tuple[str, str]], title: str = "Plan") -> None:
    headline(title)
    for line in plan_lines(lines):
        detail(line)


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
    """One self-rewriting status line on a terminal; silent elsewhere."""

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


def table(rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    """Rows (the first one the header) as left-aligned columns; trailing blanks trimmed."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [(indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths))).rstrip()
            for row in rows]
