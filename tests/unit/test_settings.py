"""Configuration: .env read once and validated once, the real environment winning, every
problem named in one ERROR line, and no password in any message."""
import os
import stat

import pytest

from dbguard.errors import UsageError
from dbguard.settings import discover_project, init_env_file, load_settings, needs_env_file

GOOD = ("COMPOSE_PROJECT_NAME=sumplatform\nDJANGO_DB_NAME=sum_db\nDJANGO_DB_USER=sum_user\n"
        "DJANGO_DB_PASSWORD=hunter2-secret\nDJANGO_DB_HOST=localhost\nDJANGO_DB_PORT=5432\n")


@pytest.fixture
def root(tmp_path):
    (tmp_path / ".env.example").write_text(GOOD)
    return tmp_path


def load(root, text=GOOD, environ=None):
    (root / ".env").write_text(text)
    return load_settings(root, environ or {})


def test_no_env_file_is_fine_every_key_has_a_default_or_comes_from_the_service(root):
    (root / "compose.yaml").write_text("services: {}\n")
    s = load_settings(root, {})
    assert (s.project_name, s.db_name, s.db_user, s.db_password, s.db_host, s.db_port) == \
        (None, "", "", "", "", 0), "empty: filled from the service and the container later"
    assert s.compose_files == (root / "compose.yaml",) and not s.compose_files_explicit


def test_defaults_and_values(root):
    s = load(root)
    assert (s.project_name, s.project_name_origin) == ("sumplatform", ".env")
    assert (s.db_name, s.db_user, s.db_host, s.db_port) == ("sum_db", "sum_user", "localhost",
                                                            5432)
    assert s.compose_files == () and s.project_dir == root, "no compose file in this folder"
    assert s.backup_dir == root / "backups" and s.dump_format == "custom"
    assert not s.safety_dump and s.dump_compression == "auto"
    assert s.fixture == root / "fixtures/dev_content.sql" and s.backup_keep == 10
    assert "hunter2" not in repr(s), "the password stays out of repr()"


@pytest.mark.parametrize("value", ["auto", "0", "9", "none", "gzip:1", "lz4", "zstd:3", "ZSTD"])
def test_dump_compression_takes_what_pg_dump_z_takes(root, value):
    assert load(root, GOOD + f"DBGUARD_DUMP_COMPRESSION={value}\n").dump_compression == \
        value.lower()


def test_real_environment_wins_over_env_file(root):
    s = load(root, environ={"COMPOSE_PROJECT_NAME": "fromshell", "DJANGO_DB_PORT": "6543"})
    assert (s.project_name, s.project_name_origin, s.db_port) == ("fromshell", "environment",
                                                                  6543)


def test_unset_project_name_has_no_origin(root):
    s = load(root, GOOD.replace("COMPOSE_PROJECT_NAME=sumplatform\n", ""))
    assert s.project_name is None and s.project_name_origin is None


def test_bad_values_named_with_the_fix(root):
    with pytest.raises(UsageError) as err:
        load(root, GOOD + "DJANGO_DB_PORT=abc\nDBGUARD_DUMP_FORMAT=zip\nDBGUARD_COMPOSE=v3\n"
             "DBGUARD_DUMP_COMPRESSION=brotli\n")
    line = err.value.line()
    assert "DBGUARD_DUMP_COMPRESSION='brotli' is not auto, a level 0-9" in line
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


def test_init_env_file_locks_the_name_compose_uses_today_owner_only_never_overwriting(tmp_path):
    root = tmp_path / "My.Shop"
    root.mkdir()
    (root / ".env.example").write_text("# lock\n#COMPOSE_PROJECT_NAME=\nDJANGO_DB_NAME=x\n")
    (root / "docker-compose.yml").write_text("services: {}\n")
    assert needs_env_file(root)
    assert init_env_file(root) == "myshop", "the name Compose v2 derives from 'My.Shop'"
    assert (root / ".env").read_text() == "# lock\nCOMPOSE_PROJECT_NAME=myshop\nDJANGO_DB_NAME=x\n"
    assert stat.S_IMODE(os.stat(root / ".env").st_mode) == 0o600
    (root / ".env").write_text("mine\n")
    assert init_env_file(root) is None and not needs_env_file(root)
    assert (root / ".env").read_text() == "mine\n"


def test_an_installed_kit_never_writes_the_hosts_env(tmp_path):
    (tmp_path / "compose.yaml").write_text("services: {}\n")
    kit = tmp_path / "dbguard"
    kit.mkdir()
    (kit / ".env.example").write_text("#COMPOSE_PROJECT_NAME=\n")
    assert not needs_env_file(kit) and init_env_file(kit) is None
    assert not (kit / ".env").exists() and not (tmp_path / ".env").exists()


@pytest.mark.parametrize("files, expected", [
    (["docker-compose.yml"], ["docker-compose.yml"]),
    (["compose.yaml", "docker-compose.yml"], ["compose.yaml"]),
    (["compose.yml", "docker-compose.yaml"], ["compose.yml"]),
    (["docker-compose.yml", "docker-compose.yaml"], ["docker-compose.yml"]),
    (["compose.yaml", "compose.override.yaml"], ["compose.yaml", "compose.override.yaml"]),
    (["docker-compose.yml", "docker-compose.override.yml", "docker-compose.local.yml"],
     ["docker-compose.yml", "docker-compose.override.yml"]),
])
def test_compose_files_are_found_by_composes_own_names_and_order(tmp_path, files, expected):
    for f in files:
        (tmp_path / f).write_text("services: {}\n")
    project_dir, found, from_env = discover_project(tmp_path)
    assert project_dir == tmp_path and not from_env
    assert [f.name for f in found] == expected


def test_a_kit_in_a_subfolder_finds_the_project_above_and_reads_its_env(tmp_path):
    (tmp_path / "docker-compose.local.yml").write_text("services: {}\n")
    (tmp_path / ".env").write_text("COMPOSE_FILE=docker-compose.local.yml\n"
                                   "COMPOSE_PROJECT_NAME=shop\nDBGUARD_BACKUP_KEEP=3\n")
    kit = tmp_path / "tools" / "dbguard"
    kit.mkdir(parents=True)
    (kit / ".env").write_text("DBGUARD_BACKUP_KEEP=5\n")
    s = load_settings(kit, {})
    assert s.project_dir == tmp_path and s.env_file == tmp_path / ".env"
    assert s.compose_files == (tmp_path / "docker-compose.local.yml",)
    assert s.compose_files_explicit, "COMPOSE_FILE names them: passed with -f"
    assert (s.project_name, s.backup_keep) == ("shop", 5), "the kit's own .env wins"
    assert s.backup_dir == kit / "backups", "backups stay in the kit's folder"


def test_compose_file_in_the_kits_settings_is_relative_to_the_kit(tmp_path):
    (tmp_path / "compose.yaml").write_text("services: {}\n")
    (tmp_path / "ops").mkdir()
    (tmp_path / "ops" / "db.yml").write_text("services: {}\n")
    kit = tmp_path / "dbguard"
    kit.mkdir()
    (kit / ".env").write_text("COMPOSE_FILE=../ops/db.yml\n")
    s = load_settings(kit, {})
    assert s.compose_files == (kit / "../ops/db.yml",) and s.compose_files_explicit
    assert s.project_dir == kit / "../ops"


def test_compose_file_exported_in_the_shell_is_relative_to_where_you_are(tmp_path,
                                                                         monkeypatch):
    """cookiecutter-django's own advice: `export COMPOSE_FILE=docker-compose.local.yml`, then
    every command in the repository's folder. Compose reads it from there; so does the kit,
    whose folder is one level down."""
    (tmp_path / "docker-compose.local.yml").write_text("services: {}\n")
    kit = tmp_path / "dbguard"
    kit.mkdir()
    monkeypatch.chdir(tmp_path)
    s = load_settings(kit, {"COMPOSE_FILE": "docker-compose.local.yml"})
    assert s.compose_files == (tmp_path / "docker-compose.local.yml",)
    assert s.project_dir == tmp_path


def test_ignore_volumes_list(root):
    s = load(root, GOOD + "DBGUARD_IGNORE_VOLUMES= a_sum_db_data, b_sum_db_data ,\n")
    assert s.ignore_volumes == {"a_sum_db_data", "b_sum_db_data"}


@pytest.mark.parametrize("password, why", [
    ("Ab$cd9", "contains '$'"), ("x${y", "contains '$'"), ("a$$b", "contains '$'"),
    ('"Ab\\ncd9"', "holds a backslash inside double quotes")])
def test_a_password_compose_reads_otherwise_is_refused_only_where_the_kit_would_use_it(
        root, password, why):
    """The kit uses the password Compose gave the service (POSTGRES_PASSWORD, Compose's own
    reading); DJANGO_DB_PASSWORD stands in only when the service shows none, and then a value
    Compose could read otherwise is refused, without printing it."""
    from dbguard.compose import Project
    from dbguard.kit import with_credentials

    settings = load(root, GOOD.replace("hunter2-secret", password))
    project = Project(name="p", name_source=".env", directory=root, service="db",
                      image="postgres:17", volume_key="d", volume="p_d", external=False,
                      mount_target="/var/lib/postgresql/data", service_pgdata=None,
                      environment={"POSTGRES_PASSWORD": "as-compose-read-it"})
    assert with_credentials(settings, project).db_password == "as-compose-read-it"
    project = Project(**{**project.__dict__, "environment": {}})
    with pytest.raises(UsageError) as err:
        with_credentials(settings, project)
    assert f"DJANGO_DB_PASSWORD {why}" in err.value.line() and "(it was not printed)" in \
        err.value.line()
    assert password.strip('"') not in err.value.line()
    quoted = load(root, GOOD.replace("hunter2-secret", "'" + password.strip('"') + "'"))
    assert with_credentials(quoted, project).db_password == password.strip('"'), \
        "single quotes: read literally by both"
