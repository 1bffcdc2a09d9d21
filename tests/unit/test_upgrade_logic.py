"""db-upgrade's and the snapshots' pure decisions: which image reads the old cluster, the one
compose line the 18 layout changes, the dump lines left out of the load, the facts compared,
and snapshot names."""
import pytest

from dbguard.db_snapshots import check_name, check_new_name
from dbguard.errors import UsageError
from dbguard.names import snapshot_database as database_of
from dbguard.upgrade import (INTERNAL_OPTION, derive_old_image, fact_differences, moved_mount,
                             quoted_role, uncovered)


@pytest.mark.parametrize("ref, expected", [
    ("postgres:17", "postgres:15"), ("postgres:17-alpine", "postgres:15-alpine"),
    ("postgres:17.2-bookworm", "postgres:15-bookworm"),
    ("docker.io/library/postgres:18", "docker.io/library/postgres:15"),
    ("registry.local:5000/postgres:17", "registry.local:5000/postgres:15"),
    ("postgres", None), ("postgres:latest", None), ("postgis/postgis:17-3.5", None),
    ("shop_production_postgres", None), ("registry.local:5000/postgres", None),
])
def test_the_old_image_is_derived_only_from_the_official_naming(ref, expected):
    assert derive_old_image(ref, 15) == expected


@pytest.mark.parametrize("volumes, targets, expected", [
    # the old server: its data is mounted elsewhere, so the image's data path needs a cover
    (("/var/lib/postgresql/data",), ["/dbguard/old", "/var/run/postgresql"],
     ["/var/lib/postgresql/data"]),
    # the new server on the volume's own path: nothing to cover
    (("/var/lib/postgresql/data",), ["/var/lib/postgresql/data", "/var/run/postgresql"], []),
    # 18's VOLUME above an older layout's mount: covered; the data lies in the mount
    (("/var/lib/postgresql",), ["/var/lib/postgresql/data"], ["/var/lib/postgresql"]),
    # a VOLUME path under a mount lives in that mount, as under Compose
    (("/var/lib/postgresql/data",), ["/var/lib/postgresql/"], []),
    # a sibling that only shares a prefix is not under it
    (("/var/lib/postgresql/data2",), ["/var/lib/postgresql/data"], ["/var/lib/postgresql/data2"]),
])
def test_a_throwaway_server_covers_exactly_the_image_volumes_its_mounts_leave_open(
        volumes, targets, expected):
    assert uncovered(volumes, targets) == expected


def test_the_mount_moves_on_exactly_one_short_syntax_line_and_nothing_else_changes():
    text = ("services:\n  db:\n    volumes:\n      # the data\n"
            "      - sum_db_data:/var/lib/postgresql/data  # keep\n      - ./init:/init:ro\n")
    moved = moved_mount(text, "sum_db_data")
    assert moved == text.replace("sum_db_data:/var/lib/postgresql/data",
                                 "sum_db_data:/var/lib/postgresql")
    assert moved_mount('      - "sum_db_data:/var/lib/postgresql/data:rw"\n', "sum_db_data") \
        == '      - "sum_db_data:/var/lib/postgresql:rw"\n'
    assert moved_mount(text + text, "sum_db_data") is None, "two candidates: by hand"
    assert moved_mount("      - other:/var/lib/postgresql/data\n", "sum_db_data") is None
    long_syntax = "      - type: volume\n        source: d\n        target: /var/lib/postgresql/data\n"
    assert moved_mount(long_syntax, "d") is None


def test_only_the_bootstrap_role_and_the_internal_column_option_are_left_out_of_the_load():
    assert quoted_role("sum_user") == {"sum_user", '"sum_user"'}
    assert quoted_role('we"ird') == {'we"ird', '"we""ird"'}
    assert INTERNAL_OPTION.match(b"ALTER TABLE ONLY public.t ALTER COLUMN g SET "
                                 b"(pg_attver=26553080);\n")
    assert not INTERNAL_OPTION.match(b"ALTER TABLE ONLY public.t ALTER COLUMN g SET "
                                     b"(n_distinct=10);\n")
    assert not INTERNAL_OPTION.match(b"INSERT INTO t VALUES ('SET (pg_attver=1);');\n")


def test_facts_that_differ_are_named_per_database():
    before = {"(cluster)": ["role a tt"], "shop": ["table public.t 3:abc", "view public.v"]}
    after = {"(cluster)": ["role a tt"], "shop": ["table public.t 2:def", "view public.v"]}
    assert fact_differences(before, after) == ["shop: table public.t 3:abc missing",
                                               "shop: table public.t 2:def new"]
    assert fact_differences(before, before) == []


def test_snapshot_names_are_checked_and_fit_postgresqls_63_bytes():
    assert check_name("before_migration") == "before_migration"
    for bad in ("", "Bad", "a-b", "x" * 25, "_x", "a b"):
        with pytest.raises(UsageError):
            check_name(bad)
    assert database_of("sum_db", "x") == "sum_db_dbguard_snap_x"
    assert len(database_of("d" * 63, "y" * 24).encode()) <= 63


def test_db_snapshot_refuses_the_names_the_kits_own_commands_replace():
    assert check_new_name("before_migration") == "before_migration"
    for kept in ("before_restore", "before_seed", "replaced_251215_124427"):
        assert check_name(kept) == kept  # rollback and the list still take them
        with pytest.raises(UsageError, match="kept for the kit's own snapshots"):
            check_new_name(kept)
