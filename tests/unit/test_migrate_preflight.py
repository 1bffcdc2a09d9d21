"""db-migrate-volume's preflight: every reason to refuse a copy, one precondition broken at a
time, and what does not count as a reason."""
import dataclasses
from pathlib import Path
from types import SimpleNamespace

import pytest

from dbguard.compose import Project
from dbguard.docker import Container, ImageInfo
from dbguard.volumes import Volume
from dbguard.actions import migrate as m


def kit(pg_major=15, mount="/var/lib/postgresql/data"):
    project = Project(name="sumplatform", name_source=".env", directory=Path("/src/x"),
                        service="db", image="postgres:15", volume_key="sum_db_data",
                        volume="sumplatform_sum_db_data", external=False, mount_target=mount,
                        service_pgdata=None)
    image = ImageInfo(f"postgres:{pg_major}", True, pg_major, None)
    return SimpleNamespace(project=project, image=image)


def source(**kw):
    return Volume("tradesite_sum_db_data", **{"pg_version": "15", **kw})


def target(**kw):
    return Volume("sumplatform_sum_db_data", active=True, exists=False, **kw)


def container(name, project="other", state="running", helper=False):
    return Container(name, name, state, "", "", project, "db", [], "", helper)


def folder(**kw):
    return Volume("/src/x/postgres14", folder=True, shown="./postgres14",
                  **{"pg_version": "15", **kw})


def test_a_good_source_has_no_reason():
    assert m.preflight(kit(), source(), target(), force=False) == []


@pytest.mark.parametrize("src, reason", [
    (source(pg_version=None), "tradesite_sum_db_data holds no PostgreSQL cluster (no PG_VERSION)"),
    (source(incomplete=True), "tradesite_sum_db_data holds an unfinished copy itself"),
    (source(pg_version="16"), "tradesite_sum_db_data holds a PostgreSQL 16 cluster but the image "
                              "runs 15; copying files cannot change that"),
])
def test_each_bad_source_is_named(src, reason):
    (got,) = m.preflight(kit(), src, target(), force=False)
    assert got.startswith(reason)


def test_the_active_volume_cannot_be_its_own_source():
    assert m.preflight(kit(), Volume("sumplatform_sum_db_data", pg_version="15"), target(),
                       force=False) == ["the source sumplatform_sum_db_data is the active "
                                        "volume itself"]


def test_data_outside_the_volume():
    (reason,) = m.preflight(kit(pg_major=18), source(pg_version="18"), target(), force=False)
    assert reason.startswith("the image runs PostgreSQL 18, whose data directory is "
                             "/var/lib/postgresql/18/docker, but the volume 'sum_db_data' is "
                             "mounted at /var/lib/postgresql/data")
    assert "mount `sum_db_data:/var/lib/postgresql` instead" in reason


def test_a_cluster_where_the_server_would_not_look_is_refused():
    """An anonymous volume from a mount one level too high holds the cluster at its root; a
    project whose server looks in pgdata/ of the volume would never find the copy."""
    below = kit()
    below.project = dataclasses.replace(below.project,
                                        service_pgdata="/var/lib/postgresql/data/pgdata")
    (reason,) = m.preflight(below, source(pg_path="."), target(), force=False)
    assert reason.startswith("the cluster sits at . in tradesite_sum_db_data, but the server "
                             "looks for it at pgdata in sumplatform_sum_db_data")
    assert m.preflight(kit(), source(pg_path="."), target(), force=False) == []


def test_a_running_foreign_container_needs_force_but_stopped_ones_and_helpers_do_not():
    src = source(used_by=[container("web-1"), container("old-db", state="exited"),
                          container("helper", project="", helper=True),
                          container("mine", project="sumplatform")])
    (reason,) = m.preflight(kit(), src, target(), force=False)
    assert reason == ("web-1 (not of project sumplatform) is running on one of them; "
                      "--force (FORCE=1) stops it too")
    assert m.preflight(kit(), src, target(), force=True) == []


def test_all_reasons_are_collected_at_once():
    src = source(pg_version="16", incomplete=True, used_by=[container("web-1")])
    assert len(m.preflight(kit(), src, target(), force=False)) == 3


def test_a_folder_is_a_source_like_a_volume_and_named_as_people_wrote_it():
    assert m.preflight(kit(), folder(), target(), force=False) == []
    (reason,) = m.preflight(kit(), folder(pg_version=None), target(), force=False)
    assert reason == "./postgres14 holds no PostgreSQL cluster (no PG_VERSION)"


def test_from_names_a_volume_or_a_folder_relative_to_the_project():
    k = SimpleNamespace(project=SimpleNamespace(directory=Path("/src/x")))
    assert m.source_name(k, "tradesite_sum_db_data") == "tradesite_sum_db_data"
    assert m.source_name(k, "./postgres14") == "/src/x/postgres14"
    assert m.source_name(k, "../old/pg") == "/src/old/pg"
    assert m.source_name(k, "/srv/pg/") == "/srv/pg"
    assert m.source_name(k, None) is None
