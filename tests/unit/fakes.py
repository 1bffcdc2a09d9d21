"""Stand-ins for Docker in the unit tier: a runner that records every command and answers from
canned replies (the Runner's own dry-run and verbose logic stays real), and a small world of
containers, volumes and databases that answers the kit's read-only questions the way Docker and
psql would, for the tests that walk whole commands without an engine."""
from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

from dbguard.compose import Compose, Project
from dbguard.docker import ImageInfo
from dbguard.kit import Kit
from dbguard.runner import Runner
from dbguard.settings import load_settings

PASSWORD = "pw-never-in-argv"
HELPER = ["docker", "run", "--rm", "--log-driver", "none", "--network", "none", "--pull", "never",
          "--read-only", "--tmpfs", "/tmp", "--user", "0:0", "--label", "dbguard.helper=1",
          "--label", "dbguard.project=sumplatform", "--entrypoint", "/bin/sh"]


class Sink(io.BytesIO):
    def close(self):
        self.kept = self.getvalue()
        super().close()


class FakeProcess:
    """What Runner.spawn returns in these tests: canned output, a stdin that keeps what it got."""

    def __init__(self, args, stdout=b"", stderr=b"", returncode=0):
        self.args, self.returncode = args, returncode
        self.stdout, self.stderr = io.BytesIO(stdout), io.BytesIO(stderr)
        self.stdin = Sink()
        self.pid = 0

    def wait(self):
        return self.returncode

    def poll(self):
        return self.returncode

    def kill(self):
        pass

    def communicate(self, input=None):
        return self.stdout.read(), self.stderr.read()


class RecordingRunner(Runner):
    """Records every command; answers from `answers` (first matching prefix), else exit 0."""

    def __init__(self, cwd: Path, dry_run: bool = False):
        super().__init__(cwd, dry_run=dry_run)
        self.recorded: list[list[str]] = []
        self.answers: list[tuple[list[str], dict]] = []
        self.processes: list[FakeProcess] = []
        self.envs: list[dict | None] = []

    def answer(self, prefix: list[str], **reply) -> None:
        self.answers.append((prefix, reply))

    def reply(self, args: list[str]) -> dict:
        self.recorded.append(args)
        return next((reply for prefix, reply in self.answers if args[:len(prefix)] == prefix),
                    {})

    def execute(self, args, stdin, stdout, stderr, input=None, env=None):
        self.envs.append(env)
        reply = self.reply(args)
        return subprocess.CompletedProcess(args, reply.get("returncode", 0),
                                           reply.get("stdout", b""), reply.get("stderr", b""))

    def spawn(self, args, **kwargs):
        self.envs.append(kwargs.get("env"))
        process = FakeProcess(args, **self.reply(args))
        self.processes.append(process)
        return process


def project(tmp_path: Path, **changes) -> Project:
    base = dict(name="sumplatform", name_source=".env", directory=tmp_path, service="db",
                image="postgres:15", volume_key="sum_db_data", volume="sumplatform_sum_db_data",
                external=False, mount_target="/var/lib/postgresql/data", service_pgdata=None,
                environment={"POSTGRES_USER": "sum_user", "POSTGRES_DB": "sum_db",
                             "POSTGRES_PASSWORD": PASSWORD})
    base.update(changes)
    return Project(**base)


def make_kit(tmp_path: Path, runner: Runner | None = None, major: int = 15, **changes) -> Kit:
    (tmp_path / ".env").write_text(f"COMPOSE_PROJECT_NAME=sumplatform\nDJANGO_DB_NAME=sum_db\n"
                                   f"DJANGO_DB_USER=sum_user\nDJANGO_DB_PASSWORD={PASSWORD}\n")
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    settings = load_settings(tmp_path, environ={})
    runner = runner or RecordingRunner(tmp_path)
    compose = Compose(runner, settings, ("docker", "compose"), version="2.40.3",
                      project_name="sumplatform")
    return Kit(settings, runner, compose, project(tmp_path, **changes),
               ImageInfo(f"postgres:{major}", True, major,
                         "/var/lib/postgresql/data" if major < 18 else
                         f"/var/lib/postgresql/{major}/docker",
                         entrypoint=("docker-entrypoint.sh",), cmd=("postgres",)))


def compose_args(kit: Kit, *rest: str) -> list[str]:
    """Compose finds the files and reads .env itself: no -f, no --env-file."""
    root = kit.settings.root
    return ["docker", "compose", "--project-directory", str(root), "-p", "sumplatform", *rest]


def ps_line(cid: str, name: str, state: str = "running", project: str = "sumplatform",
            service: str = "db", mounts: str = "sumplatform_sum_db_data", helper: str = "",
            owner: str = "", workdir: str = "", keeper: str = "") -> str:
    return "\t".join([cid, name, state, state.capitalize(), "", project, service, workdir,
                      helper, owner, keeper, mounts])


class World(RecordingRunner):
    """A running project as Docker and psql would describe it: the service container c1 on
    the active volume, an old project's volume with a cluster, the database sum_db with a
    table, a snapshot, and a kept before_restore. Every read is answered from it; any call that
    is not marked as a read fails the test at once (`strict`), dry run or not."""

    def __init__(self, cwd: Path, dry_run: bool = True, strict: bool = True):
        super().__init__(cwd, dry_run=dry_run)
        self.strict = strict
        self.changes: list[list[str]] = []
        self.volumes = {
            "sumplatform_sum_db_data": ("sum_db_data", "sumplatform"),
            "tradesite_sum_db_data": ("sum_db_data", "tradesite")}
        self.databases = [
            {"name": "postgres", "size_bytes": 8 << 20, "open": True, "note": None},
            {"name": "sum_db", "size_bytes": 9 << 20, "open": True, "note": None},
            {"name": "sum_db_dbguard_snap_before_x", "size_bytes": 9 << 20, "open": True,
             "note": "dbguard snapshot of sum_db taken 2026-12-01T10:00:00+00:00"},
            {"name": "sum_db_dbguard_snap_before_restore", "size_bytes": 9 << 20,
             "open": True, "note": "dbguard snapshot of sum_db taken 2026-12-02T10:00:00+00:00"
             " (what db-restore replaced)"}]

    def guard(self, args, reads):
        if not reads:
            self.changes.append(list(args))
            if self.strict:
                raise AssertionError(f"a changing call: {args}")
        super().guard(args, reads)

    def reply(self, args):
        self.recorded.append(args)
        canned = next((r for p, r in self.answers if args[:len(p)] == p), None)
        if canned is not None:
            return canned
        return {"stdout": self.read(args)}

    def read(self, args: list[str]) -> bytes:
        joined = " ".join(args)
        if args[:3] == ["docker", "image", "inspect"]:
            tag = args[-1].rsplit(":", 1)[-1]
            major = tag.split("-")[0] if tag[:1].isdigit() else "15"
            return json.dumps({"Env": [f"PG_MAJOR={major}"], "Entrypoint": [
                "docker-entrypoint.sh"], "Cmd": ["postgres"]}).encode()
        if args[:2] == ["docker", "version"]:
            return b"20.10.24"
        if args[:2] == ["docker", "ps"]:
            return (ps_line("c1", "sumplatform-db-1") + "\n" + ps_line(
                "old1", "tradesite-db-1", "exited", "tradesite",
                mounts="tradesite_sum_db_data")).encode()
        if args[:3] == ["docker", "volume", "ls"]:
            if "-q" in args:
                return b""
            return "\n".join(f"{n}\t{k}\t{p}" for n, (k, p) in self.volumes.items()).encode()
        if args[:3] == ["docker", "volume", "inspect"]:
            return json.dumps([{"Name": n, "CreatedAt": f"2025-12-1{i}T09:00:00Z", "Labels": {
                "com.docker.compose.project": p, "com.docker.compose.volume": k}}
                for i, (n, (k, p)) in enumerate(self.volumes.items()) if n in args]).encode()
        if args[:2] == ["docker", "run"] and "# inspect" in joined:
            mounted = [a.split("source=")[1].split(",")[0] for a in args if "target=/v/" in a]
            return "".join(
                f"{i}\t40000\t20\t.\t15\t{700 + i}\t300\t0\t12\t\n"
                for i, _ in enumerate(mounted)).encode()
        if args[:2] == ["docker", "inspect"]:
            if ".Mounts" in joined:  # c1 mounts the active volume only
                return json.dumps({"Mounts": [{
                    "Type": "volume", "Name": "sumplatform_sum_db_data",
                    "Destination": "/var/lib/postgresql/data"}], "Asked": None}).encode()
            if "NetworkSettings.Ports" in joined:
                return b'{"5432/tcp": [{"HostIp": "127.0.0.1", "HostPort": "25432"}]}'
            return b'{"Status": "running", "Health": {"Status": "healthy"}}'
        if args[:2] == ["docker", "exec"] and "dbguard-sql" in args:
            return self.sql(args[args.index("dbguard-sql") + 1]).encode()
        if args[:2] == ["docker", "exec"] and "--help" in args:
            return b"  --restrict-key=KEY\n"
        return b""

    def sql(self, script: str) -> str:
        if "FROM pg_database WHERE NOT datistemplate" in script:
            return json.dumps(self.databases)
        if "left(datname" in script:
            return json.dumps([{"database": d["name"], "size": d["size_bytes"],
                                "open": d["open"], "note": d["note"]}
                               for d in self.databases if "_dbguard_snap_" in d["name"]])
        if "server_version_num" in script:
            return '[{"v": "15.10", "n": 150010}]'
        if "pg_stat_user_tables" in script:
            return '[{"name": "public.pages", "rows": 300}]'
        if "count(*) AS n" in script:
            return '[{"n": 1}]'
        if "application_name" in script:
            return "[]"
        return "[]"
