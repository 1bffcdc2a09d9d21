"""The pure parts of db-clone: the clone's name from a branch, and pointing a worktree's env
file at the clone (every setting that names the main database, nothing else)."""
import pytest

from dbguard.clones import COMMENT, COMMENT_RE, clone_name
from dbguard.envfile import point_at


@pytest.mark.parametrize("branch, name", [
    ("feature/Login-Form", "sum_db_feature_login_form"), ("", "sum_db_worktree"),
    ("x" * 80, "sum_db_" + "x" * 56)])
def test_a_clone_is_named_after_the_branch_within_the_servers_limit(branch, name):
    assert clone_name("sum_db", branch) == name and len(name.encode()) <= 63


def test_the_env_file_is_pointed_at_the_clone_and_nothing_else_changes():
    text = ("# the app\nCOMPOSE_PROJECT_NAME=shop\nPOSTGRES_DB=sum_db\nDB_USER=sum_db\n"
            "export DATABASE_URL='postgres://u:s3cret@127.0.0.1:5432/sum_db?sslmode=off'\n"
            "OTHER_URL=postgres://u:p@h/other\nDJANGO_DB_NAME=sum_db  # the kit's\n"
            "CACHE=sum_db\n")
    out, changes = point_at(text, "sum_db", "sum_db_feature")
    assert out.splitlines() == [
        "# the app", "COMPOSE_PROJECT_NAME=shop", "POSTGRES_DB=sum_db_feature",
        "DB_USER=sum_db",
        "export DATABASE_URL='postgres://u:s3cret@127.0.0.1:5432/sum_db_feature?sslmode=off'",
        "OTHER_URL=postgres://u:p@h/other", "DJANGO_DB_NAME=sum_db_feature  # the kit's",
        "CACHE=sum_db"]
    assert [c[0] for c in changes] == ["POSTGRES_DB", "DATABASE_URL", "DJANGO_DB_NAME"]
    assert all("s3cret" not in part for c in changes for part in c), "no password shown"


def test_the_kits_setting_is_added_when_missing():
    out, changes = point_at("A=1", "sum_db", "sum_db_x")
    assert out == "A=1\nDJANGO_DB_NAME=sum_db_x\n" and changes == [
        ("DJANGO_DB_NAME", "(not set)", "sum_db_x")]


def test_a_clones_comment_says_whose_it_is():
    text = COMMENT.format(db="sum_db", path="/src/wt (1)", branch="feat/x",
                          at="2026-12-06T10:00:00+00:00")
    match = COMMENT_RE.match(text)
    assert (match["db"], match["path"], match["branch"]) == ("sum_db", "/src/wt (1)", "feat/x")
