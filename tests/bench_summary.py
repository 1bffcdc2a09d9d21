#!/usr/bin/env python3
"""The README's performance summary, made from docs/benchmarks.md and nothing else.

`make bench` calls it after writing its section; `python tests/bench_summary.py` rewrites the
block between the README's `<!-- perf -->` markers by hand, and tests/unit/test_docs.py checks
that the block is what this module makes of the file today. One row per operation, one column
per major benchmarked: the wall-clock ratio against what a user would type instead, the CPU
ratio beside it, and "not met" where the row's target was missed."""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
README = ROOT / "README.md"
BLOCK = re.compile(r"<!-- perf -->\n.*?<!-- /perf -->\n", re.S)
SECTION = re.compile(r"<!-- bench:(\d+) -->\n(.*?)<!-- /bench:\1 -->", re.S)


def key(label: str) -> str:
    """The row's name across majors: its label, but one name for the upgrade into each
    major (whose label names the majors)."""
    if label.startswith("db-upgrade"):
        return ("db-upgrade from the previous major, whole command, vs a copy of the old "
                "cluster and `pg_dumpall` piped into `psql` on a new server")
    return label


def rows_of(section: str) -> dict[str, dict]:
    found = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 9 or cells[0] in ("operation", "---"):
            continue
        # A label may hold a pipe of its own (`pg_dumpall | psql`): the last eight cells
        # are the figures.
        cells = ["|".join(cells[:-8]).strip(), *cells[-8:]]
        label, kit, raw, ratio, _, _, cpu, target, met = cells
        found[key(label)] = {"kit": kit, "raw": raw, "ratio": ratio, "cpu": cpu,
                             "target": target, "met": met}
    return found


def cell(row: dict | None) -> str:
    if row is None:
        return ""
    text = f"{row['ratio']} ({row['cpu']} CPU)" if row["ratio"] else row["kit"]
    return text + (" **not met**" if row["met"] == "**no**" else "")


def summary(doc: str) -> str:
    sections = {int(m.group(1)): rows_of(m.group(2)) for m in SECTION.finditer(doc)}
    majors = sorted(sections)
    order: list[str] = []
    for major in majors:
        order += [k for k in sections[major] if k not in order]
    targets: dict[str, str] = {}
    for k in order:
        each = {m: sections[m][k]["target"] for m in majors if k in sections[m]}
        distinct = sorted(set(each.values()), key=list(each.values()).index)
        targets[k] = distinct[0] if len(distinct) == 1 else "; ".join(
            f"{t} ({', '.join(str(m) for m in each if each[m] == t)})" for t in distinct)
    lines = ["<!-- perf -->",
             "| operation | "
             + " | ".join(f"PostgreSQL {m}" for m in majors) + " | target |",
             "|---|" + "---|" * len(majors) + "---|"]
    for k in order:
        lines.append(f"| {k} | " + " | ".join(cell(sections[m].get(k)) for m in majors)
                     + f" | {targets[k]} |")
    lines.append("<!-- /perf -->")
    return "\n".join(lines) + "\n"


def rewrite(readme: Path = README, doc: Path = DOC) -> bool:
    """Puts the summary into the README; False when the README has no block for it."""
    text = readme.read_text()
    if not BLOCK.search(text):
        return False
    readme.write_text(BLOCK.sub(lambda _: summary(doc.read_text()), text))
    return True


if __name__ == "__main__":
    if not rewrite():
        print("ERROR: README.md has no <!-- perf --> block to fill; add the two markers "
              "where the summary goes", file=sys.stderr)
        sys.exit(1)
