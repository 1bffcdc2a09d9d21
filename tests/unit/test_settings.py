"""Configuration: .env read once and validated once, the real environment winning, every
problem named in one ERROR line, and no password in any message."""
import os
import stat

import pytest

from dbguard.errors import UsageError
from dbguard.settings import init_env_file, load_settings

GOOD = ("COMPOSE_PROJECT_NAME=sumplatform\nDJANGO_DB_NAME=sum_db\nDJANGO_DB_USER=sum_user\n"
        "DJANGO_DB_PASSWORD=hunter2-secret\nDJANGO_DB_HOST=localhost\nDJANGO_DB_PORT=5432\n")


@pytest.fixture
def root(tmp_path):
    (tmp_path / ".env.example").write_text(GOOD)
    return tmp_path


def load(root, text=GOOD, environ=None):
    (root / ".env").write_text(text)
    return load_settings(root, environ or {})


def test_missing_env_file_says_to_copy_the_example(root):
    with pytest.raises(UsageError) as err:
        load_settings(root, {})
    assert err.value.line() == (
        f"ERROR: no .env file in {root}. Create it from .env.example and review it: "
        "cp .env.example .env (`make db-up` does this for you)")
    assert err.value.code == 2


def test_defaults_and_values(root):
    s = load(root)
    assert (s.project_name, s.project_name_origin) == ("sumplatform", ".env")
    assert (s.db_name, s.db_user, s.db_host, s.db_port) == ("sum_db", "sum_user", "localhost",
                                                            5432)
    assert s.compose_files == (root / "docker-compose.yml",)
    assert s.backup_dir == root / "backups" and s.dump_format == "custom" and s.safety_dump
    assert s.fixture == root / "fixtures/dev_content.sql" and s.backup_keep == 10
    assert "hunter2" not in repr(s), "the password stays out of repr()"


def test_real_environment_wins_over_env_file(root):
    s = load(root, environ={"COMPOSE_PROJECT_NAME": "fromshell", "DJANGO_DB_PORT": "6543"})
    assert (s.project_name, s.project_name_origin, s.db_port) == ("fromshell", "environment",
                                                                  6543)


def test_unset_project_name_has_no_origin(root):
    s = load(root, GOOD.replace("COMPOSE_PROJECT_NAME=sumplatform\n", ""))
    assert s.project_name is None and s.project_name_origin is None


def test_all_missing_keys_named_at_once(root):
    with pytest.raises(UsageError) as err:
        load(root, "COMPOSE_PROJECT_NAME=x\n")
    assert "missing DJANGO_DB_NAME, DJANGO_DB_USER, DJANGO_DB_PASSWORD" in err.value.line()


def test_bad_values_named_with_the_fix(root):
    with pytest.raises(UsageError) as err:
        load(root, GOOD + "DJANGO_DB_PORT=abc\nDBGUARD_DUMP_FORMAT=zip\nDBGUARD_COMPOSE=v3\n")
    line = err.value.line()
    assert "DJANGO_DB_PORT='abc' is not a whole number from 1 to 65535" in line
    assert "DBGUARD_DUMP_FORMAT='zip' is not one of custom, plain" in line
    assert "DBGUARD_COMPOSE='v3' is not one of auto, v2, v1" in line
    assert line.endswith("Fix these keys in .env (or the environment); .env.example documents "
                         "them")
    assert len(line.splitlines()) == 1


def test_invalid_project_name_suggests_the_normal_form(root):
    with pytest.raises(UsageError) as err:
        load(root, GOOD.replace("=sumplatform", "=Sum Platform"))
    assert "COMPOSE_PROJECT_NAME='Sum Platform' (from .env) is not a valid Compose project " \
           "name" in err.value.line()
    assert "e.g. 'sumplatform'" in err.value.line()


def test_malformed_line_is_named_by_number_without_its_content(root):
    text = GOOD + 'DJANGO_DB_PASSWORD "oops hunter3\nNOVALUE\n'
    with pytest.raises(UsageError) as err:
        load(root, text)
    assert err.value.line() == (f"ERROR: {root / '.env'} line 7, 8 is not KEY=value. Fix or "
                                "remove that line (see .env.example for the format)")
    assert "hunter3" not in err.value.line()


def test_init_env_file_copies_the_example_owner_only_and_never_overwrites(root):
    assert init_env_file(root) is True
    assert (root / ".env").read_text() == GOOD
    assert stat.S_IMODE(os.stat(root / ".env").st_mode) == 0o600
    (root / ".env").write_text("mine\n")
    assert init_env_file(root) is False
    assert (root / ".env").read_text() == "mine\n"


def test_ignore_volumes_list(root):
    s = load(root, GOOD + "DBGUARD_IGNORE_VOLUMES= a_sum_db_data, b_sum_db_data ,\n")
    assert s.ignore_volumes == {"a_sum_db_data", "b_sum_db_data"}


@pytest.mark.parametrize("password", ["Ab$cd9", "x${y", "$", "a$$b"])
def test_a_dollar_in_the_password_is_refused_without_printing_it(root, password):
    with pytest.raises(UsageError) as err:
        load(root, GOOD.replace("hunter2-secret", password))
    assert "DJANGO_DB_PASSWORD contains '$', which Docker Compose would read as a variable; " \
           "choose a password without '$' (it was not printed)" in err.value.line()
    assert password not in err.value.line().replace("'$'", "")
