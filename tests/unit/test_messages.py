"""Messages, exit codes, prompts and the command runner: one ERROR line with the next step, the
documented exit codes, no question without a terminal, and dry runs that run nothing."""
import io
import sys

import pytest

from dbguard.cli import entrypoint, parser
from dbguard.errors import Failure, Refusal, UsageError
from dbguard.kit import kit_lock
from dbguard.messages import Progress, confirm, human_age, human_size
from dbguard.server import server_failure
from dbguard.runner import Runner, command_failure


def run_main(exc):
    @entrypoint
    def main(argv=None):
        raise exc
    return main([])


@pytest.mark.parametrize("exc, code", [
    (Failure("it broke", "Do this next"), 1),
    (UsageError("bad flag", "Use the other one"), 2),
    (Refusal("not safe", "Nothing was changed"), 3),
])
def test_expected_failures_end_in_one_error_line_and_their_code(capsys, exc, code):
    assert run_main(exc) == code
    err = capsys.readouterr().err
    assert err == f"ERROR: {exc.message}. {exc.next_step}\n"


def test_refusal_details_come_before_the_error_line(capsys):
    assert run_main(Refusal("no", "Nothing was changed", ["volume a", "volume b"])) == 3
    assert capsys.readouterr().err == "volume a\nvolume b\nERROR: no. Nothing was changed\n"


def test_interrupt_is_130_with_one_line(capsys):
    assert run_main(KeyboardInterrupt()) == 130
    assert capsys.readouterr().err.startswith("ERROR: interrupted.")


def test_bugs_keep_their_traceback():
    with pytest.raises(ZeroDivisionError):
        run_main(ZeroDivisionError())


def test_no_question_without_a_terminal(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    with pytest.raises(Refusal) as err:
        confirm("Delete?", assume_yes=False)
    assert err.value.line() == (
        "ERROR: no terminal to ask for confirmation, and --yes was not given. Run it in a "
        "terminal, or confirm ahead with YES=1 (make) or --yes (script); nothing was changed")


def test_yes_answers_and_says_so(capsys):
    confirm("Delete?", assume_yes=True)
    assert capsys.readouterr().err == "INFO: Delete? [y/N] yes (--yes)\n"


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("answer, accepted", [("y\n", True), ("yes\n", True), ("\n", False),
                                              ("n\n", False), ("sure\n", False), ("", False)])
def test_only_y_or_yes_is_yes(monkeypatch, answer, accepted):
    monkeypatch.setattr(sys, "stdin", FakeTTY(answer))
    if accepted:
        confirm("Go?", assume_yes=False)
    else:
        with pytest.raises(Refusal) as err:
            confirm("Go?", assume_yes=False)
        assert err.value.line() == "ERROR: not confirmed. Nothing was changed"


def test_a_dry_run_refuses_changing_commands_and_runs_only_reading_ones(tmp_path):
    from dbguard.runner import DryRunViolation

    run = Runner(tmp_path, dry_run=True)
    with pytest.raises(DryRunViolation):
        run(["touch", str(tmp_path / "changed")])
    assert not (tmp_path / "changed").exists()
    assert run(["echo", "read"], reads=True).stdout == b"read\n"
    assert run.calls == 1


def test_verbose_shows_each_command_quoted(tmp_path, capsys):
    Runner(tmp_path, verbose=True)(["echo", "two words"])
    assert capsys.readouterr().err == "+ echo 'two words'\n"


def test_a_missing_program_is_one_error(tmp_path):
    with pytest.raises(Failure) as err:
        Runner(tmp_path)(["no-such-program-dbguard"])
    assert err.value.message == "no-such-program-dbguard is not installed (or not on PATH)"


def test_failed_commands_name_their_last_error_line():
    f = command_failure(["docker", "volume", "rm", "x"], b"warn\nError: volume is in use\n")
    assert f.message == "`docker volume` failed: Error: volume is in use"


def test_a_silent_failure_names_its_exit_code_and_a_killed_container_says_so():
    f = command_failure(["docker", "run", "x"], b"", 137)
    assert f.message == ("`docker run` failed: no error output; exit code 137: its container "
                         "was killed (`docker rm -f`, `docker kill` or the out-of-memory killer)")
    assert command_failure(["docker", "run"], b"", 3).message.endswith("no error output; "
                                                                         "exit code 3")


def test_an_unreachable_daemon_is_named_with_the_next_step(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nowhere.sock")
    f = command_failure(["docker", "ps"], b"Cannot connect to the Docker daemon at "
                                            b"unix:///nowhere.sock. Is the docker daemon running?")
    assert f.line() == ("ERROR: cannot reach the Docker daemon (unix:///nowhere.sock). Start "
                        "Docker (or fix DOCKER_HOST / DOCKER_CONTEXT) and run again; "
                        "`docker info` shows what is wrong")


def test_progress_is_silent_off_a_terminal(capsys):
    p = Progress("copying", 100)
    p.update(50)
    p.close()
    assert capsys.readouterr().err == ""


def test_progress_on_a_terminal_shows_bytes_and_percent(capsys):
    p = Progress("copying", 4 << 20, enabled=True)
    p.update(1 << 20)
    p.close()
    assert "copying: 1.0 MiB of 4.0 MiB (25%)" in capsys.readouterr().err


def test_sizes_and_ages():
    assert [human_size(n) for n in (0, 1023, 1024, 5 << 20, 3 << 30)] == [
        "0 B", "1023 B", "1.0 KiB", "5.0 MiB", "3.0 GiB"]
    assert [human_age(s) for s in (5, 60, 7200, 86400 * 3)] == [
        "just now", "1 minute ago", "2 hours ago", "3 days ago"]


def test_a_bad_flag_is_one_error_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        parser("Summary.\n\nexamples:\n  x").parse_args(["--nope"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("ERROR: unrecognized arguments: --nope. See `") and \
        err.endswith(" --help`\n") and err.count("\n") == 1


def test_a_password_failure_is_explained_and_the_password_masked():
    server = type("S", (), {"password": "hunter2"})()
    failure = server_failure(
        'psql: error: connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" failed'
        ': FATAL:  password authentication failed for user "sum_user" (tried hunter2)\nmore',
        server)
    assert "hunter2" not in failure.line() and "(tried ********)" in failure.line()
    assert failure.line() == (
        "ERROR: the database server asks for a password inside its container (FATAL: password "
        "authentication failed for user \"sum_user\" (tried ********)). The kit uses the "
        "service's POSTGRES_PASSWORD (DJANGO_DB_PASSWORD when the service shows none); a "
        "cluster keeps the password it was created with, so that one must be given")


def test_one_data_changing_command_at_a_time(tmp_path):
    from types import SimpleNamespace

    kit = SimpleNamespace(settings=SimpleNamespace(backup_dir=tmp_path / "backups"),
                          runner=SimpleNamespace(dry_run=False))
    with kit_lock(kit, "db-restore"):
        with pytest.raises(Refusal) as err:
            with kit_lock(kit, "db-migrate-volume"):
                pass
        assert err.value.line().startswith(
            "ERROR: another dbguard command is running (db-restore, pid ")
        assert err.value.line().endswith("). Wait for it to finish and run again; nothing was "
                                         "changed")
    with kit_lock(kit, "db-seed"):  # released again
        pass
    dry = SimpleNamespace(settings=SimpleNamespace(backup_dir=tmp_path / "other"),
                          runner=SimpleNamespace(dry_run=True))
    with kit_lock(dry, "db-restore"):
        assert not (tmp_path / "other").exists(), "a dry run takes no lock and writes nothing"


def test_ctrl_c_while_a_script_starts_is_one_line_and_no_traceback():
    import subprocess
    import sys
    from pathlib import Path

    scripts = Path(__file__).resolve().parents[2] / "scripts"
    program = ("import os, signal, sys, time; sys.argv = ['db_up.py']; import dbguard; "
               "os.kill(os.getpid(), signal.SIGINT); time.sleep(60)")
    r = subprocess.run([sys.executable, "-c", program], cwd=scripts, capture_output=True,
                       text=True, timeout=120)
    assert (r.returncode, r.stderr) == (130, "ERROR: interrupted while starting. Nothing was "
                                             "changed\n")
