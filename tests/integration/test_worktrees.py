"""Git worktrees (#20), with real git and the real engine: three worktrees at once share the
main checkout's server (the project name locked), each gets a database of its own with
db-clone (never an empty one), each one's application reaches its own clone, a migration in one
leaves the others' tables as they were, db-info says beforehand what `down` in one of them does
to the others, and after `git worktree remove` of two of them db-clones PRUNE=1 drops exactly
their clones. And the other layout: a worktree with a project of its own is refused its empty
twin (the checkout it came from named), seeded with SEED=1 from that checkout's volume, and its
volume pruned, alone, once the worktree is gone."""
from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from conftest import shown, volume_names
from harness import Kit


def git(*args: str, cwd: Path) -> str:
    r = subprocess.run(["git", "-c", "user.email=dev@example.test", "-c", "user.name=dev",
                        *args], cwd=cwd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def repository(kit: Kit) -> None:
    """The kit's folder as a repository with .env, backups and the venv untracked."""
    (kit.root / ".gitignore").write_text(".env\nbackups/\n.venv/\n__pycache__/\n")
    git("init", "-q", "-b", "main", cwd=kit.root)
    git("add", "-A", cwd=kit.root)
    git("commit", "-q", "-m", "the project", cwd=kit.root)


def worktree(kit: Kit, name: str) -> Kit:
    path = kit.root.parent / name
    git("worktree", "add", "-q", "-b", name, str(path), cwd=kit.root)
    return replace(kit, root=path)


def env_of(kit: Kit) -> dict:
    values = {}
    for line in (kit.root / ".env").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key] = value
    return values


def app_rows(kit: Kit) -> dict:
    """What the worktree's application sees: it connects with the values of its own .env."""
    env = env_of(kit)
    with psycopg.connect(host="127.0.0.1", port=int(env["DJANGO_DB_PORT"]),
                         user=env["DJANGO_DB_USER"], password=env["DJANGO_DB_PASSWORD"],
                         dbname=env["DJANGO_DB_NAME"], autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
        return {"db": env["DJANGO_DB_NAME"], "tables": tables,
                "pages": conn.execute("SELECT count(*) FROM pages").fetchone()[0]}


@pytest.mark.parametrize("flavor", ["v2"])
def test_three_worktrees_share_the_server_each_with_its_own_clone(running_kit, token):
    main = running_kit
    repository(main)
    main_rows = main.fingerprint()
    trees = [worktree(main, f"wt{n}") for n in (1, 2, 3)]
    for tree in trees:
        r = tree.make("db-up")
        assert r.returncode == 0, shown(r)
        assert "created .env from the main checkout's" in r.stderr
        r = tree.make("db-clone")  # no terminal, no YES=1: refused, nothing made
        assert r.returncode != 0 and "YES=1" in r.stderr, shown(r)
        refresh = ("REFRESH=1",) if tree is trees[2] else ()
        r = tree.make("db-clone", "YES=1", *refresh)
        assert r.returncode == 0, shown(r)
        assert ("idle copy of 'sum_db' taken in" in r.stderr) == (tree is trees[0] or
                                                                 bool(refresh)), \
            "the idle copy is taken once, and again only when asked"
        assert f"{tree.root.name} uses the database 'sum_db_{tree.root.name}' now" in r.stderr
    r = trees[0].make("db-clone", "DRY_RUN=1", "NAME=sum_db_other")
    assert "the idle copy clone_source of 'sum_db', taken" in r.stderr, shown(r)
    servers = {c for c in subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={main.project}"],
        capture_output=True, text=True).stdout.split()}
    assert len(servers) == 1, "one server for the four checkouts"

    for tree in trees:  # each application reaches its own clone, with the main data
        seen = app_rows(tree)
        assert seen["db"] == f"sum_db_{tree.root.name}" and seen["pages"] == 500
        assert main.fingerprint(seen["db"]) == main_rows
    (original,) = (trees[0].root / "backups" / "originals").iterdir()
    assert original.read_text() == (main.root / ".env").read_text(), \
        "the .env db-up copied from the main checkout is kept as it was"
    changed = env_of(trees[0])
    assert {k: v for k, v in changed.items() if k != "DJANGO_DB_NAME"} == \
        {k: v for k, v in env_of(main).items() if k != "DJANGO_DB_NAME"}, "nothing else"

    # A migration in one worktree leaves the others and the main database as they were.
    main.sql("ALTER TABLE pages ADD COLUMN migrated boolean DEFAULT true", "sum_db_wt1")
    main.sql("CREATE TABLE wt1_only (id int)", "sum_db_wt1")
    assert app_rows(trees[0])["tables"] == ["pages", "wt1_only"]
    for other in ("sum_db_wt2", "sum_db_wt3", "sum_db"):
        assert main.fingerprint(other) == main_rows, other

    # db-info in a worktree says, before anyone runs it, what `down` there does to the rest.
    facts = json.loads(trees[1].script("db_info", "--json").stdout)
    (note,) = [n for n in facts["notes"] if "share the Compose project" in n]
    assert note.startswith(f"4 checkouts share the Compose project {main.project!r}")
    assert "`docker compose down` (or `make db-down`, or `docker compose stop`) in any of them " \
           "stops the database under all of them" in note
    assert [c["main"] for c in facts["checkouts"]] == [True, False, False, False]

    # Two worktrees removed: PRUNE drops exactly their clones.
    for tree in trees[1:]:
        git("worktree", "remove", "--force", str(tree.root), cwd=main.root)
    listing = json.loads(main.script("db_clones", "--json").stdout)
    gone = sorted(c["name"] for c in listing["clones"] if not c["worktree_exists"])
    assert gone == ["sum_db_wt2", "sum_db_wt3"]
    r = main.make("db-clones", "PRUNE=1", "YES=1")
    assert r.returncode == 0, shown(r)
    left = {name for (name,) in main.sql("SELECT datname FROM pg_database", "postgres")}
    assert {"sum_db", "sum_db_wt1"} <= left and not {"sum_db_wt2", "sum_db_wt3"} & left
    assert "sum_db_dbguard_snap_clone_source" in left, "the main database's copy stays"
    assert main.fingerprint() == main_rows
    r = main.make("db-clones", "PRUNE=1", "YES=1")
    assert r.returncode == 0 and "nothing to prune" in r.stderr, shown(r)


@pytest.mark.parametrize("flavor", ["v2"])
def test_a_worktree_with_its_own_project_is_seeded_not_left_empty(running_kit, token):
    main = running_kit
    repository(main)
    rows = main.fingerprint()
    tree = worktree(main, "solo")
    env = (main.root / ".env").read_text().replace(
        f"COMPOSE_PROJECT_NAME={main.project}", f"COMPOSE_PROJECT_NAME={token}solo")
    env = env.replace(f"DJANGO_DB_PORT={main.port}", f"DJANGO_DB_PORT={main.port + 1}")
    (tree.root / ".env").write_text(env)
    tree = replace(tree, port=main.port + 1,
                   env_values={**main.env_values, "COMPOSE_PROJECT_NAME": f"{token}solo"})

    r = tree.script("db_up")
    assert r.returncode == 3, shown(r)
    assert "PARALLEL_UNIVERSE" in r.stderr and f"the data of the checkout {main.root}" in \
        r.stderr
    assert "make db-up SEED=1" in r.stderr
    assert tree.volume not in volume_names(), "no empty twin was created"

    r = tree.make("db-up", "SEED=1", "YES=1")
    assert r.returncode == 0, shown(r)
    assert tree.fingerprint() == rows, "the worktree starts with the main checkout's data"
    assert main.fingerprint() == rows, "and the main checkout's server runs again, untouched"

    tree.compose("down")
    git("worktree", "remove", "--force", str(tree.root), cwd=main.root)
    listing = json.loads(main.script("db_clones", "--json").stdout)
    assert [v["volume"] for v in listing["gone_volumes"]] == [tree.volume]
    r = main.make("db-clones", "PRUNE=1", "YES=1")
    assert r.returncode == 0, shown(r)
    assert tree.volume not in volume_names() and main.volume in volume_names()
    assert main.fingerprint() == rows
