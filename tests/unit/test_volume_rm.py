"""Removing a volume while another dbguard command's look (a read-only throwaway container of
db-find or db-info, in another project) mounts it: tried again until the look ends; any other
holder is the answer at once."""
from __future__ import annotations

import pytest
from fakes import RecordingRunner

from dbguard.destructive import volume_rm
from dbguard.errors import Failure

IN_USE = b"Error response from daemon: remove app_data: volume is in use - [c0ffee]"


class Engine(RecordingRunner):
    """`docker volume rm` refused while `holders` (one per attempt) hold the volume."""

    def __init__(self, tmp_path, holders: list[str]):
        super().__init__(tmp_path)
        self.holders = holders

    def reply(self, args):
        self.recorded.append(args)
        if args[:3] == ["docker", "volume", "rm"]:
            if self.holders:
                self.holding = self.holders.pop(0)
                return {"returncode": 1, "stderr": IN_USE}
            return {}
        if args[:3] == ["docker", "volume", "ls"]:
            return {"stdout": b"app_data\nother\n"}
        if args[:2] == ["docker", "ps"]:
            looks = "label=dbguard.helper=look" in args and self.holding == "look"
            return {"stdout": b"c0ffee\n" if looks else b""}
        return {}


def removals(runner) -> int:
    return sum(a[:3] == ["docker", "volume", "rm"] for a in runner.recorded)


def test_a_volume_a_look_holds_is_removed_once_the_look_ends(tmp_path, monkeypatch):
    monkeypatch.setattr(volume_rm.time, "sleep", lambda s: None)
    runner = Engine(tmp_path, ["look", "look"])
    assert volume_rm.remove_volumes(runner, ["app_data"]).returncode == 0
    assert removals(runner) == 3, runner.recorded


def test_a_volume_a_container_of_the_project_holds_is_refused_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(volume_rm.time, "sleep", lambda s: None)
    runner = Engine(tmp_path, ["service"])
    with pytest.raises(Failure) as err:
        volume_rm.remove_volumes(runner, ["app_data"])
    assert "volume is in use" in err.value.message and removals(runner) == 1
    runner = Engine(tmp_path, ["service"])
    assert volume_rm.remove_volumes(runner, ["app_data"], check=False).returncode == 1


def test_a_look_that_never_ends_is_waited_for_only_so_long(tmp_path, monkeypatch):
    clock = iter(range(0, 1000, 10))
    monkeypatch.setattr(volume_rm.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(volume_rm.time, "sleep", lambda s: None)
    runner = Engine(tmp_path, ["look"] * 100)
    assert volume_rm.remove_volumes(runner, ["app_data"], check=False, wait=30).returncode == 1
    assert removals(runner) == 4, "tried until the clock passed the 30 s (10, 20, 30, 40)"
