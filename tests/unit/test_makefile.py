"""Make variables reach the scripts as data: typed text arrives verbatim as one argument, and
nothing in it is run by make or by the shell. Real make, with a stand-in for the venv's python
that records the arguments it was given."""
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def kit(tmp_path) -> Path:
    for name in ("Makefile", "dbguard.mk", "requirements.txt", "requirements-dev.txt"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > "$ARGS_OUT"\n')
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    past = time.time() - 100
    os.utime(tmp_path / "requirements.txt", (past, past))
    (tmp_path / ".venv" / ".deps").touch()  # newer than requirements.txt: no pip install
    return tmp_path


def make_args(kit: Path, target: str, *variables: str) -> list[str]:
    out = kit / "args.txt"
    r = subprocess.run(["make", "-s", "-C", str(kit), target, *variables],
                       env=dict(os.environ, ARGS_OUT=str(out)), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out.read_text().splitlines()


@pytest.mark.parametrize("value", ["$(shell touch {m})", "`touch {m}`", "$$(touch {m})",
                                   "x'; touch {m}; echo '", "a b\"c;d", "$(touch {m})"])
def test_a_value_reaches_the_script_verbatim_and_nothing_in_it_runs(kit, value):
    marker = kit / "ran"
    typed = value.format(m=marker)
    assert make_args(kit, "db-restore", f"FILE={typed}", "YES=1") == [
        "./scripts/db_restore.py", "--file", typed, "--yes"]
    assert make_args(kit, "db-prune", f"KEEP={typed}") == ["./scripts/db_prune.py", "--keep",
                                                            typed]
    assert not marker.exists(), f"make or the shell ran {typed!r}"


def test_a_switch_given_code_is_off_and_runs_nothing(kit):
    marker = kit / "ran"
    args = make_args(kit, "db-up", f"V=$(shell touch {marker})", f"DRY_RUN=`touch {marker}`")
    assert args == ["./scripts/db_up.py"] and not marker.exists()
    assert make_args(kit, "db-up", "V=1", "DRY_RUN=yes", "ALLOW_NEW_VOLUME=true") == [
        "./scripts/db_up.py", "--verbose", "--dry-run", "--allow-new-volume"]


def test_only_variables_given_on_the_command_line_become_flags(kit):
    """Many shells set NAME (the machine's name) or FILE: make hands them to every recipe, but
    the kit takes only what was typed after `make db-x`."""
    out = kit / "args.txt"
    env = dict(os.environ, ARGS_OUT=str(out), NAME="DESKTOP-AB12", FILE="/etc/hosts", YES="1",
               DB="other")
    for target, script in (("db-snapshot", "db_snapshot.py"), ("db-restore", "db_restore.py")):
        r = subprocess.run(["make", "-s", "-C", str(kit), target], env=env,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert out.read_text().splitlines() == [f"./scripts/{script}"]
    assert make_args(kit, "db-snapshot", "NAME=before_x", "DB=postgres") == [
        "./scripts/db_snapshot.py", "--name", "before_x", "--db", "postgres"]


def test_a_value_with_a_line_break_is_one_error_and_runs_nothing(kit):
    out = kit / "args.txt"
    r = subprocess.run(["make", "-s", "-C", str(kit), "db-restore", "FILE=a\nb"],
                       env=dict(os.environ, ARGS_OUT=str(out)), capture_output=True, text=True)
    assert r.returncode == 2 and not out.exists(), "nothing ran"
    assert "ERROR: FILE holds a line break, which no dbguard value has. Give it on one line; " \
           "nothing was run" in r.stderr and "Syntax error" not in r.stderr
