"""Compose project names: how each Compose generation derives them, and which volumes the kit
therefore takes for candidates."""
from pathlib import Path

import dataclasses

import pytest

from dbguard.compose import Project
from dbguard.errors import UsageError
from dbguard.names import directory_project_names, project_name
from dbguard.settings import PROJECT_NAME_RE
from dbguard.volumes import candidate_reasons


@pytest.mark.parametrize("directory, v2, v1, legacy", [
    ("tradesite", "tradesite", "tradesite", "tradesite"),
    ("sum-platform", "sum-platform", "sum-platform", "sumplatform"),
    ("My.App", "myapp", "myapp", "myapp"),
    ("Trade Site", "tradesite", "tradesite", "tradesite"),
    ("_hidden-app", "hidden-app", "_hidden-app", "hiddenapp"),
    ("mailcow-dockerized", "mailcow-dockerized", "mailcow-dockerized", "mailcowdockerized"),
])
def test_directory_names_per_compose_generation(directory, v2, v1, legacy):
    assert directory_project_names(directory) == {"v2": v2, "v1": v1, "v1-pre-1.21": legacy}


@pytest.mark.parametrize("name, valid", [
    ("sumplatform", True), ("sum-platform", True), ("sum_platform2", True),
    ("Sum", False), ("sum platform", False), ("-sum", False), ("_sum", False), ("", False),
])
def test_explicit_project_names_must_be_normal(name, valid):
    assert bool(PROJECT_NAME_RE.match(name)) is valid


def project(name="sumplatform", key="sum_db_data", directory="sum-platform"):
    return Project(name=name, name_source=".env", directory=Path("/src") / directory,
                     service="db", image="postgres:17", volume_key=key,
                     volume=f"{name}_{key}", external=False,
                     mount_target="/var/lib/postgresql/data", service_pgdata=None)


@pytest.mark.parametrize("volume, label, reasons", [
    ("sumplatform_sum_db_data", "sum_db_data", ["active", "label"]),
    ("tradesite_sum_db_data", "sum_db_data", ["label", "name"]),
    ("tradesite_sum_db_data", "", ["name"]),
    ("handmade", "sum_db_data", ["label"]),
    ("sum-platform_sum_db_data", "", ["name", "directory name (v2, v1)"]),
    ("sum_db_data_backup", "", []),
    ("other_pgdata", "pgdata", []),
])
def test_candidates_by_label_name_and_older_compose_names(volume, label, reasons):
    labels = {"com.docker.compose.volume": label, "com.docker.compose.project": "other"}
    assert candidate_reasons(volume, labels, project()) == reasons


def test_pre_1_21_name_of_the_directory_is_found_with_its_generation():
    p = project(name="renamed", directory="sum-platform")
    assert candidate_reasons("sumplatform_sum_db_data", {}, p) == [
        "name", "directory name (v1-pre-1.21)"]


def test_any_volume_of_the_project_is_a_candidate_for_a_project_whose_data_is_a_folder():
    p = dataclasses.replace(project(), folder=True, volume_key="", volume="/src/x/postgres14")
    assert candidate_reasons("sumplatform_pgdata", {
        "com.docker.compose.project": "sumplatform", "com.docker.compose.volume": "pgdata"},
        p) == ["project"]
    assert candidate_reasons("sumplatform_redis", {}, p) == []


@pytest.mark.parametrize("configured, origin, v2, text, resolved, expected", [
    ("locked", "environment", True, "name: fromfile\n", "locked", ("locked", "environment")),
    ("locked", ".env", False, "", None, ("locked", ".env")),
    (None, None, True, "name: fromfile\nservices: {}\n", "fromfile", ("fromfile",
                                                                      "compose file")),
    (None, None, False, "name: fromfile\n", None, ("sum-platform", "directory")),
    (None, None, True, "services:\n  db:\n    name: x\n", "sum-platform",
     ("sum-platform", "directory")),
    (None, None, True, "", None, ("sum-platform", "directory")),
])
def test_project_name_precedence(configured, origin, v2, text, resolved, expected):
    assert project_name(configured, origin, v2, text, resolved, "sum-platform") == expected


def test_a_directory_with_no_usable_name_asks_for_a_locked_one():
    with pytest.raises(UsageError) as err:
        project_name(None, None, True, "", None, "...")
    assert err.value.line() == ("ERROR: no Compose project name can be made from the directory "
                                "'...'. Set COMPOSE_PROJECT_NAME in .env")
