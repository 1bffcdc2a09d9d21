"""kit-install's text edits and decisions, without Docker: the volume name pinned in a compose
file's text (comments and all else kept), whether one is pinned already, the host's Makefile
taken over or refused, and a Makefile make cannot read refused before it is touched."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dbguard.compose_text import pin_volume_name, volume_name_pinned
from dbguard.install import KEPT_SUFFIX, Plan, plan_makefile

KIT = """services:
  db:
    image: postgres:17
    volumes:
      - sum_db_data:/var/lib/postgresql/data

volumes:
  # the data of the project
  sum_db_data:
"""


@pytest.mark.parametrize("entry, expected", [
    ("  sum_db_data:\n", "  sum_db_data:\n    name: shop_sum_db_data\n"),
    ("  sum_db_data: {}\n", "  sum_db_data:\n    name: shop_sum_db_data\n"),
    ("  sum_db_data: ~  # kept\n", "  sum_db_data:  # kept\n    name: shop_sum_db_data\n"),
    ("  sum_db_data:\n      driver: local\n",
     "  sum_db_data:\n      name: shop_sum_db_data\n      driver: local\n"),
    ("  other:\n  sum_db_data:\n  third:\n",
     "  other:\n  sum_db_data:\n    name: shop_sum_db_data\n  third:\n"),
])
def test_the_volume_name_is_pinned_in_the_text_and_nothing_else_changes(entry, expected):
    text = KIT.replace("  sum_db_data:\n", entry)
    pinned = pin_volume_name(text, "sum_db_data", "shop_sum_db_data")
    assert pinned == KIT.replace("  sum_db_data:\n", expected)
    assert volume_name_pinned(pinned, "sum_db_data") and not volume_name_pinned(text,
                                                                                "sum_db_data")


@pytest.mark.parametrize("text", [
    KIT.replace("  sum_db_data:\n", "  sum_db_data: {driver: local}\n"),
    KIT.replace("volumes:\n  #", "x-volumes:\n  #"),
    KIT + "volumes:\n  again:\n",
    "services: {}\n",
])
def test_a_volume_entry_the_kit_cannot_change_safely_is_left_alone(text):
    assert pin_volume_name(text, "sum_db_data", "shop_sum_db_data") is None


def host(tmp_path: Path, makefile: str) -> Plan:
    (tmp_path / "Makefile").write_text(makefile)
    return Plan(tmp_path, tmp_path / "dbguard")


HOST_MAKEFILE = """.PHONY: db-up db-down test
db-up:
\tdocker-compose up -d db

db-down:
\tdocker-compose stop db

test: db-up
\t@echo host tests
"""


def test_a_clash_is_refused_with_both_ways_out_and_nothing_planned(tmp_path):
    plan = host(tmp_path, HOST_MAKEFILE)
    assert plan_makefile(plan, "", takeover=False) == ""
    (reason,) = plan.refusals
    assert reason.startswith("Makefile already has the target(s) db-down, db-up: make would "
                             "let one override the other. TAKEOVER=1 makes the kit's the ones "
                             "the team types (yours stay, renamed db-down-before-dbguard")
    assert "PREFIX=kit- installs the kit's as kit-db-up ... (your `make db-down` stays " \
           "unguarded)" in reason
    assert plan.changes == []


def test_taken_over_targets_keep_the_hosts_recipe_under_another_name(tmp_path):
    plan = host(tmp_path, HOST_MAKEFILE)
    assert plan_makefile(plan, "", takeover=True) == "make db-up"
    (change,) = plan.changes
    text = change.text
    assert f"db-up{KEPT_SUFFIX}:\n\tdocker-compose up -d db" in text
    assert f".PHONY: db-up{KEPT_SUFFIX} db-down{KEPT_SUFFIX} test" in text
    assert "test: db-up\n" in text, "references now reach the kit's guarded db-up"
    assert text.rstrip().endswith("include dbguard/dbguard.mk\n# <<< dbguard")
    assert "the kit takes over db-down, db-up (yours renamed db-down-before-dbguard, " \
           "db-up-before-dbguard)" in change.says
    (tmp_path / "Makefile").write_text(text)
    (tmp_path / "dbguard").mkdir()
    (tmp_path / "dbguard" / "dbguard.mk").write_text("db-up:\n\t@echo guarded\n")
    r = subprocess.run(["make", "-s", "-C", str(tmp_path), "db-up", f"db-up{KEPT_SUFFIX}"],
                       capture_output=True, text=True)
    assert r.stdout.splitlines()[0] == "guarded" and "warning" not in r.stderr, r.stderr


def test_a_makefile_make_cannot_read_is_refused_before_it_is_touched(tmp_path):
    plan = host(tmp_path, "db-up:\n    spaces instead of a tab\n")
    plan_makefile(plan, "", takeover=True)
    assert plan.refusals and plan.refusals[0].startswith(
        "Makefile has an error make reports (Makefile:2: *** missing separator")
    assert plan.changes == []
