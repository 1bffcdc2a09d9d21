"""Talking to PostgreSQL inside its container: every statement of the kit runs in `psql` through
`docker exec`, over the container's local socket, which the postgres image trusts.

Why inside the container: the host may not reach the container's address at all (Docker Desktop
on macOS and Windows reaches containers only through published ports, and many projects publish
none), the server may allow only trusted local connections (POSTGRES_HOST_AUTH_METHOD=trust),
and a password the kit does not need can neither leak nor be read differently from Compose.
When the socket does ask for a password (a custom pg_hba.conf), the service's password is handed
to psql through the environment of `docker exec -e PGPASSWORD`, never on a command line.

Values reach SQL only as psql variables (`-v name=value`, used as :'name' for a literal and
:"name" for an identifier; psql quotes them as the server does), never by string formatting.
A script is delivered whole in the exec's arguments, not through a pipe: a killed client can
cut a pipe short, and psql runs whatever part of a statement it received at end of input.
"""
from __future__ import annotations

import json
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field

from .errors import Failure
from .names import APP_READER, app_writer, maintenance_database
from .runner import DAEMON_DOWN, Runner, daemon_failure

# Runs inside the container: the script arrives as $1 (whole), the rest are psql's arguments.
FEED = 's=$1; shift; printf "%s\\n" "$s" | exec psql "$@"'
VERSION_SQL = ("SELECT current_setting('server_version') AS v, "
               "current_setting('server_version_num')::int AS n")
PASSWORD_ASKED = ("password authentication failed", "no password supplied",
                  "password is required")


@dataclass
class Server:
    """The database server of a running container, as one role (the service's superuser)."""

    runner: Runner
    container: str             # the container's id
    user: str
    password: str = ""         # used only when the container's socket asks for one
    command: str = "dbguard"   # which kit command's sessions these are (application_name)
    ask_password: bool = False  # learnt on the first refusal
    _version: tuple[str, int] | None = None  # asked once: a server does not change major

    # Rows read ahead by prefetch(), each taken once by the rows() call it was read for.
    _ahead: dict = field(default_factory=dict, repr=False)

    def rows(self, query: str, db: str, /, **variables: object) -> list[dict]:
        """The rows of one SELECT, as dicts (through JSON: any name or value survives)."""
        ahead = self._ahead.pop(step_key(query, db, variables), None)
        if ahead is not None:
            return ahead
        wrapped = f"SELECT coalesce(json_agg(q), '[]'::json) FROM ({query}) q;"
        out = self._psql(wrapped, db, variables, reads=True)
        return json.loads(out or "[]")

    @contextmanager
    def ahead(self, steps: list[Step]):
        """Within the block, the rows() calls of `steps` are answered from one prefetch; what
        the block did not take is forgotten at its end (so nothing read before a change can
        answer a question asked after it)."""
        added = self.prefetch(steps)
        try:
            yield self
        finally:
            for key in added:
                self._ahead.pop(key, None)

    def prefetch(self, steps: list[Step]) -> list[tuple]:
        """Reads several SELECTs through one psql, so that the rows() calls that follow
        cost no `docker exec` each (about a tenth of a second of CPU apiece: db-info asks
        seven questions). Each step runs in the database it names (psql's \\connect), only
        when that database takes connections and the server is at least the step's version;
        a step that did not run, or a prefetch that failed, leaves its rows() to ask itself,
        so the answers and the errors are the ones rows() alone would give. Returns the
        questions it answered ahead; use it through `ahead`."""
        todo = list({step_key(st.query, st.db, st.variables): st for st in steps
                     if step_key(st.query, st.db, st.variables) not in self._ahead}.values())
        if len(todo) < 2:
            return []
        script, variables, ordered = prefetch_script(todo)
        try:
            out = self._psql(script, ordered[0].db, variables, reads=True)
        except Failure:
            return []
        lines = out.splitlines()
        if len(lines) != len(ordered):
            return []
        added = []
        for st, line in zip(ordered, lines):
            if line != "null":
                key = step_key(st.query, st.db, st.variables)
                self._ahead[key] = json.loads(line)
                added.append(key)
        return added

    def value(self, query: str, db: str, /, **variables: object):
        rows = self.rows(query, db, **variables)
        return next(iter(rows[0].values())) if rows else None

    def run(self, script: str, db: str, /, **variables: object) -> str:
        """A script that changes something, stopping at its first error."""
        return self._psql(script, db, variables, reads=False)

    def read(self, script: str, db: str, /, **variables: object) -> str:
        """A script that only reads; its output."""
        return self._psql(script, db, variables, reads=True)

    def version(self, db: str = "") -> tuple[str, int]:
        """The server's version as it reports it ('17.2 (Debian 17.2-1)') and as a number
        (170002); one question per server, asked through the maintenance database of `db`."""
        if self._version is None:
            row = self.rows(VERSION_SQL, self.maintenance(db))[0]
            self._version = (row["v"], int(row["n"]))
        return self._version

    def maintenance(self, db: str) -> str:
        return maintenance_database(db)

    def exec_options(self, reads: bool) -> tuple[list[str], dict | None]:
        """`docker exec` options for a client of this server in the container (psql, pg_dump,
        pg_restore): its application_name, and the password when the socket asks for one
        (its value only in the environment of the docker client); and that environment."""
        app = APP_READER if reads else app_writer(self.command, os.getpid())
        options = ["-e", f"PGAPPNAME={app}"] + (["-e", "PGPASSWORD"] if self.ask_password else [])
        return options, self._env()

    def args(self, script: str, db: str, variables: dict, reads: bool) -> list[str]:
        options, _ = self.exec_options(reads)
        argv = ["docker", "exec", *options, self.container, "sh", "-c", FEED, "dbguard-sql",
                script, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-U", self.user, "-d", db,
                "-f", "-"]
        for name, value in variables.items():
            argv += ["-v", f"{name}={value}"]
        return argv

    def _psql(self, script: str, db: str, variables: dict, reads: bool) -> str:
        result = self.runner(self.args(script, db, variables, reads), reads=reads, check=False,
                             env=self._env())
        err = (result.stderr or b"").decode(errors="replace")
        if result.returncode != 0 and any(s in err for s in PASSWORD_ASKED) and \
                self.password and not self.ask_password:
            self.ask_password = True
            result = self.runner(self.args(script, db, variables, reads), reads=reads,
                                 check=False, env=self._env())
            err = (result.stderr or b"").decode(errors="replace")
        if result.returncode != 0:
            raise server_failure(err, self)
        return result.stdout.decode(errors="replace").strip()

    def _env(self) -> dict | None:
        return dict(os.environ, PGPASSWORD=self.password) if self.ask_password else None


@dataclass(frozen=True)
class Step:
    """One SELECT for Server.prefetch: in database `db`, from server version `since` on."""

    query: str
    db: str
    variables: tuple = ()   # (name, value) pairs, as rows() gets them
    since: int = 0          # server_version_num

    @classmethod
    def of(cls, query: str, db: str, since: int = 0, **variables: object) -> Step:
        return cls(query, db, tuple(sorted(variables.items())), since)


def step_key(query: str, db: str, variables) -> tuple:
    items = variables.items() if isinstance(variables, dict) else variables
    return query, db, tuple(sorted((k, str(v)) for k, v in items))


def prefetch_script(steps: list[Step]) -> tuple[str, dict, list[Step]]:
    """The psql script of a prefetch, its variables, and the steps in the order of its
    output: grouped by database, the first step's (which psql connects to) first. One output
    line per step: its rows as JSON on one line (jsonb prints no newline of its own), or
    `null` where the step did not run. Names and values reach psql only as variables."""
    variables: dict = {}
    for st in steps:
        for name, value in st.variables:
            if variables.setdefault(name, value) != value:
                raise ValueError(f"two prefetched steps set {name} differently")
    lines = [f"SELECT current_setting('server_version_num')::int >= {v} AS dbguard_since_{v}"
             " \\gset" for v in sorted({st.since for st in steps if st.since})]
    ordered: list[Step] = []
    for i, db in enumerate(dict.fromkeys(st.db for st in steps)):
        block = [st for st in steps if st.db == db]
        ordered += block
        selects = []
        for st in block:
            select = f"SELECT coalesce(jsonb_agg(q), '[]'::jsonb)::text FROM ({st.query}) q;"
            selects += [f"\\if :dbguard_since_{st.since}", select, "\\else", "\\echo null",
                        "\\endif"] if st.since else [select]
        if i == 0:
            lines += selects
            continue
        variables[f"dbguard_db_{i}"] = db
        lines += [f"SELECT EXISTS (SELECT FROM pg_database WHERE datname = :'dbguard_db_{i}' "
                  "AND datallowconn) AS dbguard_open \\gset",
                  "\\if :dbguard_open",
                  f"\\connect -reuse-previous=on :\"dbguard_db_{i}\"",
                  *selects,
                  "\\else", *["\\echo null"] * len(block), "\\endif"]
    return "\n".join(lines) + "\n", variables, ordered


def server_failure(stderr: str, server: Server | None = None) -> Failure:
    """psql's complaint as one line: the server's own words, without psql's prefixes."""
    if any(s in stderr for s in DAEMON_DOWN):
        return daemon_failure()
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    said = next((ln for ln in lines if re.search(r"\b(ERROR|FATAL|PANIC):", ln)), None) or \
        (lines[-1] if lines else "no error output")
    said = re.sub(r"^psql:(<stdin>|-):\d+:\s*", "", said)
    said = re.sub(r"^psql: error: connection to server .*? failed:\s*", "", said)
    said = re.sub(r"\s+", " ", said)
    if server and server.password:
        said = said.replace(server.password, "********")
    if any(s in stderr for s in PASSWORD_ASKED):
        return Failure(f"the database server asks for a password inside its container ({said})",
                       "The kit uses the service's POSTGRES_PASSWORD (DJANGO_DB_PASSWORD when "
                       "the service shows none); a cluster keeps the password it was created "
                       "with, so that one must be given")
    if "No such container" in stderr or "is not running" in stderr:
        return Failure(f"the database container stopped ({said})",
                       "Start it with `make db-up` and run again")
    return Failure(f"the database server refused a step ({said})",
                   "Fix what it says and run again; `make db-info` shows the state")
