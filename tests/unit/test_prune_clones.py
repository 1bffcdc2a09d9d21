"""db-clones' survey of what removed checkouts left: which volumes PRUNE=1 would remove, and
which it keeps, and why."""
from pathlib import Path
from types import SimpleNamespace

from dbguard.actions import prune_clones
from dbguard.docker import Container

GONE = "/nowhere/repo-solo"
VOLUME = "reposolo_sum_db_data"


def survey_with(monkeypatch, tmp_path: Path, *containers: Container):
    monkeypatch.setattr(prune_clones, "checkouts", lambda *a: [])
    monkeypatch.setattr(prune_clones, "registry", lambda folder: {
        "checkouts": {GONE: {"volume": VOLUME, "project": "reposolo"}}})
    monkeypatch.setattr(prune_clones, "list_containers", lambda runner: list(containers))
    kit = SimpleNamespace(
        settings=SimpleNamespace(project_dir=tmp_path, root=tmp_path), runner=None,
        project=SimpleNamespace(name="repo", volume="repo_sum_db_data"),
        service_container=lambda: None,
        scan=lambda also: [SimpleNamespace(name=n, exists=True, size=4096) for n in also])
    return prune_clones.survey(kit)


def container(name: str, helper: str = "") -> Container:
    return Container(name, name, "running", "Up", "", "other", "", [VOLUME],
                     helper=helper != "", looking=helper == "look")


def test_a_gone_checkouts_volume_read_by_another_projects_look_is_still_pruned(
        monkeypatch, tmp_path):
    """A db-info or db-find of another project may be looking into every volume at that
    moment: the look ends by itself, and the removal waits it out, so the volume is listed
    for removal, not kept as if in use."""
    found = survey_with(monkeypatch, tmp_path, container("look1", helper="look"))
    assert found.volumes == [(VOLUME, GONE, 4096)] and found.kept == []


def test_a_gone_checkouts_volume_a_container_uses_is_kept_with_its_name(monkeypatch, tmp_path):
    found = survey_with(monkeypatch, tmp_path, container("app1"))
    assert found.volumes == [] and len(found.kept) == 1 and "used by app1" in found.kept[0][1]
