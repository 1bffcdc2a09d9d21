"""Server.prefetch on a real server: the questions db-info asks (databases, version, tables,
snapshots, collation), read through one psql, answer exactly as each asked alone, also with
a database whose name needs quoting and one closed to connections."""
from __future__ import annotations

import sys
from pathlib import Path

from conftest import docker

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from dbguard.catalog import TABLE_COUNT_SQL, questions  # noqa: E402
from dbguard.collation import drift_questions  # noqa: E402
from dbguard.db_snapshots import snapshot_questions  # noqa: E402
from dbguard.runner import Runner  # noqa: E402
from dbguard.server import Server, Step  # noqa: E402

ODD = "shop's \"odd\" db"


def test_one_psql_answers_db_infos_questions_as_each_asked_alone(running_kit):
    kit = running_kit
    for sql in (f'CREATE DATABASE "{ODD.replace(chr(34), chr(34) * 2)}"',
                "CREATE DATABASE closed_db", "ALTER DATABASE closed_db ALLOW_CONNECTIONS false"):
        kit.sql(sql, dbname="postgres")
    with kit.connect(ODD) as conn:
        conn.execute("CREATE TABLE t (id int)")
    assert kit.script("db_snapshot", "--name", "before").returncode == 0
    (cid,) = docker("ps", "-q", "--filter", f"label=com.docker.compose.project={kit.project}"
                    ).stdout.split()
    runner = Runner(kit.root)
    server = Server(runner, cid, "sum_user")
    steps = (questions(server, "sum_db") + snapshot_questions(server, "sum_db")
             + drift_questions(server, "sum_db")
             + [Step.of(TABLE_COUNT_SQL, ODD), Step.of(TABLE_COUNT_SQL, "closed_db")])
    steps = list(dict.fromkeys(steps))  # the version is among two callers' questions

    alone = {}
    for st in steps[:-1]:  # the closed database cannot be asked alone either
        alone[(st.query, st.db)] = server.rows(st.query, st.db, **dict(st.variables))
    asked = runner.calls
    with server.ahead(steps):
        assert runner.calls == asked + 1, "the questions went through one docker exec"
        ahead = {(st.query, st.db): server.rows(st.query, st.db, **dict(st.variables))
                 for st in steps[:-1]}
        assert runner.calls == asked + 1, "every answer came from that one exec"
    assert ahead == alone
    assert ahead[(TABLE_COUNT_SQL, ODD)] == [{"n": 1}], "the quoted name reached its database"
    assert any(r["name"] == "sum_db" for r in ahead[(steps[0].query, steps[0].db)])
