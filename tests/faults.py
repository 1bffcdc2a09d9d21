"""Runs one of the kit's scripts with a fault planted, so the tests reach the paths that undo a
failed or corrupt copy. The product code has no switch for this: the fault is planted here, by
replacing a module attribute before the script runs, and exists only in this process.

usage: python tests/faults.py FAULT KIT_ROOT/scripts/SCRIPT.py [ARGS...]

faults:
  fail-copy     the copying container exits 1 after copying (as a full disk would make it)
  corrupt-copy  the copy is changed after cp made it, so its verification finds a difference
"""
from __future__ import annotations

import runpy
import sys
from pathlib import Path


def plant(fault: str) -> None:
    from dbguard.destructive import replace_volume

    copy = "cp -a /from/. /to/\n"
    assert copy in replace_volume.COPY_SCRIPT, "the faults no longer match the copy script"
    if fault == "fail-copy":
        replace_volume.COPY_SCRIPT = replace_volume.COPY_SCRIPT.replace(
            copy, "cp -a /from/. /to/ && false\n")
    elif fault == "corrupt-copy":  # after the copy, before its manifest
        replace_volume.COPY_SCRIPT = replace_volume.COPY_SCRIPT.replace(
            copy, "cp -a /from/. /to/ && echo x >> /to/PG_VERSION\n")
    else:
        raise SystemExit(f"unknown fault {fault!r}")


if __name__ == "__main__":
    fault, script, *args = sys.argv[1:]
    sys.path.insert(0, str(Path(script).resolve().parent))
    plant(fault)
    sys.argv = [script, *args]
    runpy.run_path(script, run_name="__main__")
