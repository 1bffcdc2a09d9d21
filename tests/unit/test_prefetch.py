"""Server.prefetch: several read-only questions through one psql (one `docker exec`) instead of
one each, answered exactly as rows() alone would answer them. The script itself is pure text
checked here; tests/integration/test_up_info.py runs it against real servers."""
from __future__ import annotations

import json

from dbguard.server import Server, Step, prefetch_script
from fakes import RecordingRunner

ODD = "it's \"odd\"; DROP DATABASE x; --"


def test_names_and_values_reach_psql_only_as_variables_and_each_step_prints_one_line(tmp_path):
    steps = [Step.of("SELECT 1 AS a", "postgres"), Step.of("SELECT 2 AS b", ODD, since=150000),
             Step.of("SELECT :'p' AS c", "postgres", p=ODD)]
    script, variables, ordered = prefetch_script(steps)
    assert ODD not in script, "a database name or value was written into the script"
    assert variables == {"p": ODD, "dbguard_db_1": ODD}
    assert [st.db for st in ordered] == ["postgres", "postgres", ODD], "grouped by database"
    # Each step ends in exactly one printed line, on either branch of its guards.
    assert script.count("jsonb_agg") == 3 and script.count("\\echo null") == 2
    assert "\\connect -reuse-previous=on :\"dbguard_db_1\"" in script
    assert "datname = :'dbguard_db_1' AND datallowconn" in script, \
        "a database closed to connections is not connected to"
    assert "server_version_num')::int >= 150000 AS dbguard_since_150000" in script


def test_two_steps_that_set_one_variable_differently_are_refused():
    import pytest
    with pytest.raises(ValueError):
        prefetch_script([Step.of("SELECT :'p'", "a", p="x"), Step.of("SELECT :'p'", "b", p="y")])


def server_with(tmp_path, stdout: str = "", returncode: int = 0) -> tuple[Server, RecordingRunner]:
    runner = RecordingRunner(tmp_path)
    runner.answer(["docker", "exec"], stdout=stdout.encode(), returncode=returncode,
                  stderr=b"psql: error: boom" if returncode else b"")
    return Server(runner, "cid", "sum_user"), runner


def test_answers_come_from_the_one_prefetch_inside_the_block_and_are_asked_again_after(tmp_path):
    steps = [Step.of("SELECT 1 AS a", "db"), Step.of("SELECT 2 AS b", "other")]
    server, runner = server_with(tmp_path, '[{"a": 1}]\n[{"b": 2}]\n')
    with server.ahead(steps):
        assert server.rows("SELECT 1 AS a", "db") == [{"a": 1}]
        assert server.rows("SELECT 2 AS b", "other") == [{"b": 2}]
        assert len(runner.recorded) == 1, "two answers, one docker exec"
    runner.answers.clear()
    runner.answer(["docker", "exec"], stdout=b'[{"b": 2}]')
    server.rows("SELECT 2 AS b", "other")
    assert len(runner.recorded) == 2, "outside the block the question is asked again"


def test_what_the_block_did_not_take_is_forgotten_at_its_end(tmp_path):
    steps = [Step.of("SELECT 1 AS a", "db"), Step.of("SELECT 2 AS b", "db")]
    server, runner = server_with(tmp_path, '[{"a": 1}]\n[{"b": 2}]\n')
    with server.ahead(steps):
        server.rows("SELECT 1 AS a", "db")
    runner.answers.clear()
    runner.answer(["docker", "exec"], stdout=json.dumps([{"b": 3}]).encode())
    assert server.rows("SELECT 2 AS b", "db") == [{"b": 3}], \
        "an answer read before a change answered a question asked after it"


def test_a_step_that_did_not_run_or_a_failed_prefetch_leaves_rows_to_ask_itself(tmp_path):
    steps = [Step.of("SELECT 1 AS a", "db"), Step.of("SELECT 2 AS b", "closed")]
    server, runner = server_with(tmp_path, '[{"a": 1}]\nnull\n')
    with server.ahead(steps):
        assert server.rows("SELECT 1 AS a", "db") == [{"a": 1}]
        runner.answers.clear()
        runner.answer(["docker", "exec"], stdout=b'[{"b": 2}]')
        server.rows("SELECT 2 AS b", "closed")
        assert len(runner.recorded) == 2, "the step that did not run was asked on its own"
    server, runner = server_with(tmp_path, "", returncode=2)
    with server.ahead(steps):
        assert len(runner.recorded) == 1
    assert server._ahead == {}, "a failed prefetch answers nothing"
