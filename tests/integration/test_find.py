"""db-find on the real engine (#19): clusters stranded where nobody looks (an anonymous volume,
a dangling volume of a removed project, another project's running volume) are listed with their
facts, copies of one cluster share a number, db-info's verdict names them while the active
volume is empty, and db-migrate-volume FROM=<what db-find printed> brings each back with every
row."""
from __future__ import annotations

import json
import time

import pytest

from conftest import KEY, docker, shown


def find(kit) -> dict:
    r = kit.script("db_find", "--json")
    assert r.returncode == 0, shown(r)
    return json.loads(r.stdout)


def by_name(found: dict, name: str) -> dict:
    (cluster,) = [c for c in found["clusters"] if c["name"] == name]
    return cluster


def anonymous_cluster(kit, token: str, rows: int) -> tuple[str, dict]:
    """What a mount one level too high leaves: a server that ran on the image's own VOLUME (an
    anonymous volume), with rows, and then removed without -v. Returns the volume's name and
    the rows' fingerprint."""
    name = f"{token}-anon"
    docker("run", "-d", "--name", name, "-e", f"POSTGRES_PASSWORD={kit.password}",
           "-e", "POSTGRES_USER=sum_user", "-e", "POSTGRES_DB=sum_db", kit.image)
    sql = (f"CREATE TABLE pages AS SELECT g AS id, md5(g::text) AS body "
           f"FROM generate_series(1, {rows}) g")
    # The image's own server is the container's first process once initialisation is done (the
    # temporary server of initdb's time answers on the socket too, then stops).
    final = '[ "$(head -n 1 "$PGDATA/postmaster.pid" 2>/dev/null)" = 1 ]'
    for _ in range(600):
        r = docker("exec", name, "sh", "-c", final, check=False)
        if r.returncode == 0:
            r = docker("exec", name, "psql", "-X", "-q", "-U", "sum_user", "-d", "sum_db",
                       "-c", sql, check=False)
        if r.returncode == 0:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(docker("logs", name).stderr)
    check = docker("exec", name, "psql", "-X", "-At", "-U", "sum_user", "-d", "sum_db", "-c",
                   "SELECT count(*) || ':' || md5(string_agg(p::text, ',' ORDER BY p::text)) "
                   "FROM pages p").stdout.strip()
    docker("stop", name)
    volume = docker("inspect", "--format", "{{range .Mounts}}{{.Name}}{{end}}",
                    name).stdout.strip()
    docker("rm", "-f", name)  # without -v: the anonymous volume stays, dangling
    return volume, {"public.pages": check}


def test_db_find_lists_stranded_clusters_and_migrate_brings_each_back(make_kit, token):
    # A removed project's volume (dangling), another project's running volume, an anonymous
    # volume: three clusters with different rows.
    gone = make_kit("gone" + token, COMPOSE_PROJECT_NAME="gone" + token)
    gone.up("--allow-new-volume")
    gone.seed_rows(120)
    gone_rows = gone.fingerprint()
    gone.compose("down")
    other = make_kit("other" + token, COMPOSE_PROJECT_NAME="other" + token)
    other.up("--allow-new-volume")
    other.seed_rows(80)
    other_rows = other.fingerprint()
    kit = make_kit()
    anon, anon_rows = anonymous_cluster(kit, token, 50)
    make_kit.fixed_names.append(anon)
    gone_volume, other_volume = f"gone{token}_{KEY}", f"other{token}_{KEY}"

    found = find(kit)
    g, o, a = (by_name(found, n) for n in (gone_volume, other_volume, anon))
    assert (g["kind"], g["dangling"], g["project"], g["used_by"]) == (
        "named", True, "gone" + token, [])
    assert (o["kind"], o["dangling"], o["project"]) == ("named", False, "other" + token)
    assert o["used_by"][0]["state"] == "running"
    assert (a["kind"], a["dangling"], a["project"]) == ("anonymous", True, None)
    for c in (g, o, a):
        assert c["pg_version"] == "15" and c["size_bytes"] > 1_000_000
        assert c["last_written"].startswith("20") and c["system_identifier"].isdigit()
        assert c["bring_back"] == f"make db-migrate-volume FROM={c['name']}"
    assert len({g["copy_group"], o["copy_group"], a["copy_group"]}) == 3, "three clusters"
    text = kit.make("db-find")
    assert text.returncode == 0, shown(text)
    assert f"bring back: make db-migrate-volume FROM={anon}" in text.stdout
    assert "anonymous, dangling: no container refers to it" in text.stdout

    # db-info's verdict, while the kit's own volume is empty, names them. (Other workers'
    # volumes on the engine hold clusters too: the list is checked for these three.)
    facts = json.loads(kit.script("db_info", "--json").stdout)
    (stranded,) = [p for p in facts["problems"] if p["code"] == "STRANDED_CLUSTERS"]
    assert stranded["message"].startswith(f"{kit.volume} holds no cluster, but ")
    assert "elsewhere on this engine hold a PostgreSQL 15 cluster: " in stranded["message"]
    named = [c["name"] for c in facts["stranded"]]
    # The other two end in the kit's volume key: this project's candidates already
    # (PARALLEL_UNIVERSE names them), so the verdict does not count them twice.
    assert anon in named and gone_volume not in named and other_volume not in named
    assert stranded["fix"][0].startswith("make db-find")
    assert stranded["fix"][1].startswith(f"make db-migrate-volume FROM={named[0]}")

    # Each comes back with every row, FROM= exactly as db-find printed it.
    for volume, rows, extra in ((anon, anon_rows, ()), (gone_volume, gone_rows, ()),
                                (other_volume, other_rows, ("FORCE=1",))):
        r = kit.make("db-migrate-volume", f"FROM={volume}", "YES=1", *extra)
        assert r.returncode == 0, shown(r)
        assert kit.fingerprint() == rows, volume
    after = find(kit)
    active = next(c for c in after["clusters"] if c["active"])
    assert active["copy_group"] == by_name(after, other_volume)["copy_group"], \
        "the active volume is a copy of the last one brought back: one number for both"


@pytest.mark.parametrize("flavor", ["v2"])
def test_db_find_without_the_image_says_how_to_get_it(make_kit):
    kit = make_kit(DB_IMAGE="dbguard-no-such-image:1")
    r = kit.script("db_find")
    assert r.returncode == 1, shown(r)
    (line,) = [ln for ln in r.stderr.splitlines() if ln.startswith("ERROR:")]
    assert "dbguard-no-such-image:1 is not here" in line and "make db-up" in line
