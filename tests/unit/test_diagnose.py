"""The verdict: which states are problems, which block db-up, and the commands they offer."""
import dataclasses
from pathlib import Path

from dbguard.compose import Project
from dbguard.diagnosis import backup_problems, diagnose
from dbguard.docker import ImageInfo, LABEL_PROJECT
from dbguard.volumes import Volume, pgdata_in_volume

IMG15 = ImageInfo("postgres:15", True, 15, "/var/lib/postgresql/data")


def project(source=".env", name="sumplatform", target="/var/lib/postgresql/data", pgdata=None):
    return Project(name=name, name_source=source, directory=Path("/src/sum-platform"),
                     service="db", image="postgres:15", volume_key="sum_db_data",
                     volume=f"{name}_sum_db_data", external=False, mount_target=target,
                     service_pgdata=pgdata)


def vol(name, active=False, exists=True, version="15", files=10, sysid="1", created="2025-12",
        project_label=None, entries=20, **kw):
    labels = {LABEL_PROJECT: project_label or name.rsplit("_sum_db_data", 1)[0]}
    return Volume(name, active=active, exists=exists, created=created if exists else None,
                    labels=labels if exists else {}, size=(1 << 20) if exists else None,
                    entries=entries if exists else None, pg_version=version,
                    system_id=sysid, user_files=files, user_bytes=(files or 0) * 8192, **kw)


def codes(problems):
    return [p.code for p in problems]


def test_one_healthy_volume_is_ok():
    problems, notes = diagnose(project(), IMG15, [vol("sumplatform_sum_db_data", True)])
    assert problems == [] and notes == []


def test_missing_active_volume_beside_data_is_a_blocking_parallel_universe():
    old = vol("tradesite_sum_db_data", created="2025-12-10")
    missing = Volume("sumplatform_sum_db_data", active=True, exists=False)
    problems, _ = diagnose(project(), IMG15, [old, missing])
    (p,) = problems
    assert (p.code, p.blocking) == ("PARALLEL_UNIVERSE", True)
    assert p.message == ("the active volume sumplatform_sum_db_data does not exist yet, while "
                         "tradesite_sum_db_data holds a PostgreSQL cluster with data")
    assert p.fix == [
        "make db-migrate-volume FROM=tradesite_sum_db_data   (copy that data into "
        "sumplatform_sum_db_data)",
        "or set COMPOSE_PROJECT_NAME=tradesite in .env   (use the old volume as it is)",
        "or make db-up ALLOW_NEW_VOLUME=1   (start with an empty database anyway)"]


def test_empty_active_volume_is_the_same_problem():
    empty = vol("sumplatform_sum_db_data", True, version=None, files=None, sysid=None,
                entries=0)
    problems, _ = diagnose(project(), IMG15, [vol("tradesite_sum_db_data"), empty])
    assert codes(problems) == ["PARALLEL_UNIVERSE"] and problems[0].blocking
    assert "holds no PostgreSQL cluster" in problems[0].message


def test_fresh_cluster_beside_data_is_flagged_without_blocking():
    fresh = vol("sumplatform_sum_db_data", True, files=0, sysid="2", created="2025-12-15")
    problems, _ = diagnose(project(), IMG15, [vol("tradesite_sum_db_data"), fresh])
    assert codes(problems) == ["PARALLEL_UNIVERSE"] and not problems[0].blocking
    assert "freshly initialised cluster with no tables" in problems[0].message
    assert "DBGUARD_IGNORE_VOLUMES" in problems[0].fix[-1]


def test_after_migrate_in_the_report_new_cluster_with_less_data_than_an_older_one():
    old = vol("tradesite_sum_db_data", files=400, sysid="1", created="2025-12-10")
    new = vol("sumplatform_sum_db_data", True, files=90, sysid="2", created="2025-12-15")
    problems, _ = diagnose(project(), IMG15, [old, new])
    assert codes(problems) == ["PARALLEL_UNIVERSE"] and not problems[0].blocking


def test_an_independent_smaller_or_newer_cluster_elsewhere_is_no_problem():
    other = vol("feature_sum_db_data", files=5, sysid="9", created="2025-12-20")
    problems, _ = diagnose(project(), IMG15, [other, vol("sumplatform_sum_db_data", True)])
    assert problems == []


def test_a_copy_of_the_active_cluster_is_a_note_with_the_rm_command():
    problems, notes = diagnose(project(), IMG15, [
        vol("tradesite_sum_db_data", sysid="7"), vol("sumplatform_sum_db_data", True, sysid="7")])
    assert problems == []
    assert notes == ["tradesite_sum_db_data holds a copy of the active cluster (same system "
                     "identifier); once you no longer need it: docker volume rm "
                     "tradesite_sum_db_data"]


def test_several_holders_ask_for_from():
    missing = Volume("sumplatform_sum_db_data", active=True, exists=False)
    problems, _ = diagnose(project(), IMG15, [vol("a_sum_db_data"), vol("b_sum_db_data"),
                                                missing])
    assert "a_sum_db_data, b_sum_db_data hold a PostgreSQL cluster" in problems[0].message
    assert problems[0].fix[0].startswith("make db-migrate-volume FROM=<volume or folder>")


def test_unlocked_project_name():
    problems, _ = diagnose(project(source="directory", name="sum-platform"), IMG15,
                             [vol("sum-platform_sum_db_data", True)])
    assert codes(problems) == ["PROJECT_NAME_NOT_LOCKED"] and not problems[0].blocking
    assert problems[0].fix[0].startswith("lock the name it has today: `name: sum-platform` as "
                                         "the first line of the compose file")
    assert problems[0].fix[1].startswith("or echo 'COMPOSE_PROJECT_NAME=sum-platform' >> .env")


def test_major_version_mismatch_blocks():
    problems, _ = diagnose(project(), IMG15, [vol("sumplatform_sum_db_data", True,
                                                    version="16")])
    (p,) = problems
    assert (p.code, p.blocking) == ("PG_VERSION_MISMATCH", True)
    assert "made by PostgreSQL 16 but the image postgres:15 runs 15" in p.message
    assert "Copying the volume cannot fix that" in p.message


def test_postgres_18_with_the_old_mount_path():
    img18 = ImageInfo("postgres:18", True, 18, "/var/lib/postgresql/18/docker")
    missing = Volume("sumplatform_sum_db_data", active=True, exists=False)
    problems, _ = diagnose(project(), img18, [missing])
    assert codes(problems) == ["PG18_MOUNT_PATH"] and problems[0].blocking
    assert "mount `sum_db_data:/var/lib/postgresql`" in problems[0].fix[0]


def test_postgres_18_layouts_that_work():
    img18 = ImageInfo("postgres:18", True, 18, "/var/lib/postgresql/18/docker")
    new_layout = project(target="/var/lib/postgresql")
    assert pgdata_in_volume(new_layout, img18) == "18/docker"
    kept_old = project(pgdata="/var/lib/postgresql/data")
    assert pgdata_in_volume(kept_old, img18) == "."
    missing = Volume("sumplatform_sum_db_data", active=True, exists=False)
    assert diagnose(new_layout, img18, [missing])[0] == []


def test_pgdata_outside_the_mount():
    p = project(target="/data", pgdata="/var/lib/postgresql/data")
    problems, _ = diagnose(p, IMG15, [Volume("sumplatform_sum_db_data", True, False)])
    assert codes(problems) == ["PGDATA_NOT_ON_VOLUME"]


def test_unfinished_copy_blocks():
    problems, _ = diagnose(project(), IMG15, [vol("sumplatform_sum_db_data", True,
                                                    incomplete=True)])
    assert codes(problems) == ["INCOMPLETE_COPY"] and problems[0].blocking


def test_unlabelled_or_foreign_labelled_active_volume_is_noted():
    handmade = dataclasses.replace(vol("sumplatform_sum_db_data", True), labels={})
    _, notes = diagnose(project(), IMG15, [handmade])
    assert notes == ["sumplatform_sum_db_data was not created by Docker Compose (no labels); "
                     "Compose warns about it but uses it"]


def test_image_not_present_means_contents_unknown_not_a_guess():
    absent = ImageInfo("postgres:17", False, 17, None)
    unread = Volume("tradesite_sum_db_data", created="2025-12-10")
    missing = Volume("sumplatform_sum_db_data", active=True, exists=False)
    problems, notes = diagnose(project(), absent, [unread, missing])
    assert problems == []
    assert "were not read" in notes[-1]


def test_backup_problems():
    s = type("S", (), {"backup_max_age_days": 7})()
    active = vol("x", True)
    assert backup_problems(s, {"newest": None}, active)[0].message == \
        "the database has tables but there is no dump of it"
    assert backup_problems(s, {"newest": None}, vol("x", True, files=0)) == []
    old = {"newest": {"age_seconds": 8 * 86400}}
    assert backup_problems(s, old, active)[0].code == "BACKUP_STALE"
    assert backup_problems(s, {"newest": {"age_seconds": 3600}}, active) == []
    s.backup_max_age_days = 0
    assert backup_problems(s, old, active) == []


def test_a_volume_of_a_neighbouring_project_is_left_out_with_a_note():
    neighbour = vol("shop_sum_db_data", elsewhere="/src/shop")
    missing = Volume("sumplatform_sum_db_data", active=True, exists=False)
    problems, notes = diagnose(project(), IMG15, [neighbour, missing])
    assert problems == []
    assert notes == ["shop_sum_db_data belongs to the project in /src/shop (a container of it "
                     "ran from there), so it is left out of the comparison"]


def test_a_cluster_where_the_server_does_not_look_blocks_db_up():
    """PGDATA points at a subfolder but the cluster sits at the volume's root (or the other
    way round): the server would initialise a new, empty cluster beside the data."""
    subfolder = project(pgdata="/var/lib/postgresql/data/pgdata")
    at_root = vol("sumplatform_sum_db_data", True, pg_path=".")
    problems, _ = diagnose(subfolder, IMG15, [at_root])
    (p,) = problems
    assert (p.code, p.blocking) == ("PGDATA_ELSEWHERE", True)
    assert p.message.startswith("the cluster in sumplatform_sum_db_data is in '.' but the "
                                "server looks for it in 'pgdata' (PGDATA "
                                "/var/lib/postgresql/data/pgdata)")
    assert p.fix[0] == ("set PGDATA in the compose file to /var/lib/postgresql/data (the "
                        "folder that holds the cluster)")
    in_subfolder = vol("sumplatform_sum_db_data", True, pg_path="./pgdata")
    assert diagnose(subfolder, IMG15, [in_subfolder])[0] == []
    assert codes(diagnose(project(), IMG15, [in_subfolder])[0]) == ["PGDATA_ELSEWHERE"]


def test_a_new_data_folder_beside_the_old_one_is_refused_with_the_folder_named():
    """Mastodon moves to a folder per major: ./postgres15 is new and empty while ./postgres14
    holds the cluster. The fix names the folder as it is written, and does not suggest a
    project name (a folder's path does not come from one)."""
    p = dataclasses.replace(project(), folder=True, volume_key="",
                            volume="/src/sum-platform/postgres15")
    old = Volume("/src/sum-platform/postgres14", folder=True, shown="./postgres14",
                 pg_version="15", size=1 << 20, user_files=3, created="2025-12-10T09:00:00Z")
    new = Volume(p.volume, active=True, exists=False, folder=True, shown="./postgres15")
    problems, notes = diagnose(p, IMG15, [old, new])
    (pu,) = [pr for pr in problems if pr.code == "PARALLEL_UNIVERSE"]
    assert pu.blocking and pu.message == (
        "the active folder ./postgres15 does not exist yet, while ./postgres14 holds a "
        "PostgreSQL cluster with data")
    assert pu.fix[:2] == [
        "make db-migrate-volume FROM=./postgres14   (copy that data into ./postgres15)",
        "or point the compose file's mount back at ./postgres14   (use the folder as it is)"]
    assert any(n.startswith("the data is in the folder ./postgres15 (a bind mount at") and
               "renaming or moving the project's folder moves it along" in n for n in notes)
