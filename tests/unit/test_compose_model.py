"""Reading the compose project: the database service, its data mount and its volume, from v2's
JSON or v1's YAML, without hard-coded names."""
from pathlib import Path

import pytest

from dbguard.compose import project_from_model
from dbguard.compose_v1 import parse_yaml, v1_model
from dbguard.docker import pg_major_from_tag
from dbguard.errors import Failure, UsageError

DATA = Path(__file__).parent / "data"


def model(services, volumes=None):
    return {"services": services, "volumes": volumes or {}}


def pg(source="sum_db_data", target="/var/lib/postgresql/data", image="postgres:17", **extra):
    return {"image": image, "volumes": [{"type": "volume", "source": source, "target": target}],
            **extra}


def load(m, name="proj", wanted=None, directory=Path("/src/proj")):
    return project_from_model(m, name, ".env", directory, wanted)


def test_kit_layout():
    p = load(model({"db": pg()}, {"sum_db_data": {"name": "proj_sum_db_data"}}))
    assert (p.service, p.volume_key, p.volume, p.mount_target) == (
        "db", "sum_db_data", "proj_sum_db_data", "/var/lib/postgresql/data")


def test_another_repos_names_postgres_and_pgdata_with_an_app_beside_it():
    m = model({"web": {"image": "python:3.12", "volumes": [
                   {"type": "bind", "source": "/src", "target": "/app"}]},
               "postgres": pg("pgdata", image="registry.example/team/postgres:16-alpine")},
              {"pgdata": {}})
    p = load(m)
    assert (p.service, p.volume_key, p.volume) == ("postgres", "pgdata", "proj_pgdata")


def test_explicit_and_external_volume_names():
    assert load(model({"db": pg()}, {"sum_db_data": {"name": "fixed"}})).volume == "fixed"
    p = load(model({"db": pg()}, {"sum_db_data": {"external": True}}))
    assert p.external and p.volume == "sum_db_data"


def test_pgdata_below_the_mount_and_postgres_18_layout():
    m = model({"db": pg(target="/var/lib/postgresql", image="postgres:18",
                        environment={"PGDATA": "/var/lib/postgresql/18/docker"})})
    p = load(m)
    assert p.mount_target == "/var/lib/postgresql"
    assert p.service_pgdata == "/var/lib/postgresql/18/docker"


@pytest.mark.parametrize("services, wanted, message", [
    ({"web": {"image": "nginx"}}, None, "no service in the compose file looks like PostgreSQL"),
    ({"a": pg(), "b": pg("other")}, None, "several services look like PostgreSQL: a, b"),
    ({"db": pg()}, "database", "DBGUARD_SERVICE='database' is not a service of the compose "
                               "file (services: db)"),
])
def test_unusable_compose_files_are_named(services, wanted, message):
    with pytest.raises(UsageError) as err:
        load(model(services), wanted=wanted)
    assert message in err.value.message


@pytest.mark.parametrize("mounts, target", [
    ([], ""),
    ([{"type": "volume", "target": "/var/lib/postgresql/data"}], "/var/lib/postgresql/data"),
    ([{"type": "tmpfs", "target": "/var/lib/postgresql/data"}], "/var/lib/postgresql/data")])
def test_a_service_without_a_named_volume_is_read_as_anonymous(mounts, target):
    """The kit still reads such a project (db-info explains it, db-up refuses it through the
    diagnosis) instead of stopping at reading the compose file."""
    p = load(model({"db": {"image": "postgres:17", "volumes": mounts}}))
    assert (p.anonymous, p.volume, p.mount_target) == (True, "", target)


@pytest.mark.parametrize("source, expected", [
    ("/srv/immich/postgres", "/srv/immich/postgres"), ("./postgres14", "/src/x/postgres14"),
    ("/src/x/data/../postgres14", "/src/x/postgres14")])
def test_a_bind_mounted_folder_is_the_data_of_the_project(source, expected):
    p = load(model({"db": {"image": "postgres:14", "volumes": [
        {"type": "bind", "source": source, "target": "/var/lib/postgresql/data"}]}}),
        directory=Path("/src/x"))
    assert (p.folder, p.volume, p.volume_key, p.external) == (True, expected, "", True)
    assert p.store_label == ("./postgres14" if expected.startswith("/src/x") else expected)


def test_wanted_service_wins_over_detection():
    m = model({"a": pg(), "b": pg("other")})
    assert load(m, wanted="b").volume_key == "other"


def test_v1_yaml_of_the_kit_compose_file():
    config = parse_yaml((DATA / "v1_config_kit.yml").read_text())
    assert config["services"]["db"]["healthcheck"]["test"] == [
        "CMD-SHELL", 'pg_isready -h 127.0.0.1 -U "$${POSTGRES_USER}" -d "$${POSTGRES_DB}"']
    assert config["volumes"] == {"sum_db_data": {}}
    p = load(v1_model(config))
    assert (p.service, p.volume_key, p.volume, p.image) == ("db", "sum_db_data",
                                                            "proj_sum_db_data", "postgres:17")


def test_v1_yaml_with_folded_quoted_and_long_syntax_values():
    config = parse_yaml((DATA / "v1_config_tricky.yml").read_text())
    app = config["services"]["app"]
    assert app["command"][2] == ("echo 'hello: world' && sleep 1000000 && echo a very long "
                                 "command line that goes on and on and on past eighty columns "
                                 "for sure")
    assert app["depends_on"] == {"postgres": {"condition": "service_started"}}
    pgsvc = config["services"]["postgres"]
    assert pgsvc["healthcheck"]["test"] == ('pg_isready -U postgres && echo "it\'s: ready" \\ '
                                            'with a long long long long long long long text')
    assert pgsvc["volumes"][0] == {"source": "pgdata", "target": "/var/lib/postgresql/data",
                                   "type": "volume"}
    assert config["volumes"]["pgdata"] == {"labels": {"x": "y: z"}}
    assert config["volumes"]["other"] == {"external": True, "name": "named"}
    p = load(v1_model(config), name="myapp")
    assert (p.service, p.volume, p.service_pgdata) == (
        "postgres", "myapp_pgdata", "/var/lib/postgresql/data/pgdata")


def test_yaml_scalars():
    text = 'a: "x\\ty\\u00e9"\nb: \'it\'\'s\'\nc: null\nd: true\ne: []\nf:\n- 1\n- two\n'
    assert parse_yaml(text) == {"a": "x\ty\u00e9", "b": "it's", "c": None, "d": True,
                                  "e": [], "f": ["1", "two"]}


def test_unreadable_yaml_is_an_error_not_a_guess():
    with pytest.raises(Failure) as err:
        parse_yaml("a: 1\nnot a key\nb: 2\n")
    assert "cannot read the output of `docker-compose config`" in err.value.message


def test_v1_short_syntax_mounts_become_long_syntax():
    m = v1_model({"services": {"db": {"volumes": [
        "data:/var/lib/postgresql/data:rw", "/host:/x:ro", "./rel:/y", "/anon"]}},
        "volumes": {"data": {"external": {"name": "real"}}}})
    assert m["services"]["db"]["volumes"] == [
        {"type": "volume", "source": "data", "target": "/var/lib/postgresql/data"},
        {"type": "bind", "source": "/host", "target": "/x"},
        {"type": "bind", "source": "./rel", "target": "/y"},
        {"type": "volume", "source": "", "target": "/anon"}]
    assert m["volumes"]["data"] == {"external": True, "name": "real"}


def test_pg_major_from_image_tags():
    assert [pg_major_from_tag(t) for t in (
        "postgres:17", "postgres:16-alpine", "postgres:15.4", "postgres", "x/y:latest",
        "localhost:5000/postgres:14")] == [17, 16, 15, None, None, 14]


def test_an_image_name_that_docker_would_take_for_an_option_is_refused():
    with pytest.raises(UsageError) as err:
        load(model({"db": pg(image="--help")}))
    assert err.value.line() == (
        "ERROR: service 'db' names the image '--help', which starts with '-'. Fix the image name "
        "in the compose file (or DB_IMAGE in .env)")


# What adopting repositories have: the database found among services that share its env file,
# built from a Dockerfile, or named otherwise.

def app(**extra):
    """An application service that shares the database's env file (POSTGRES_* variables)."""
    return {"image": "shop_local_django", "environment": {"POSTGRES_HOST": "postgres",
                                                         "POSTGRES_PASSWORD": "x"}, **extra}


def test_an_app_sharing_the_env_file_is_not_a_second_database():
    m = model({"django": app(), "postgres": pg("shop_postgres_data",
                                               image="shop_production_postgres")})
    assert load(m).service == "postgres"


def test_a_database_built_from_a_dockerfile_with_an_image_name_of_its_own(tmp_path):
    (tmp_path / "compose" / "postgres").mkdir(parents=True)
    (tmp_path / "compose" / "postgres" / "Dockerfile").write_text(
        "# the database\nFROM --platform=linux/amd64 docker.io/postgres:18\nCOPY x /x\n")
    db = {"build": {"context": str(tmp_path), "dockerfile": "compose/postgres/Dockerfile"},
          "volumes": [{"type": "volume", "source": "data", "target": "/var/lib/postgresql"},
                      {"type": "volume", "source": "backups", "target": "/backups"}]}
    p = load(model({"django": app(), "db": db}))
    assert (p.service, p.volume_key, p.mount_target, p.builds) == (
        "db", "data", "/var/lib/postgresql", True)
    assert p.image == "proj-db", "Compose v2's name for a built image"
    assert project_from_model(model({"db": db}), "proj", ".env", Path("/p"), None,
                              v2=False).image == "proj_db", "and v1's"


def test_only_env_variables_is_weak_evidence_used_when_nothing_else_is_there():
    assert load(model({"db": {"image": "mycompany/db:1", "environment": {
        "POSTGRES_PASSWORD": "x"}, "volumes": [
        {"type": "volume", "source": "d", "target": "/var/lib/postgresql/data"}]},
        "web": app()})).service == "db", "the mount decides"
    with pytest.raises(UsageError) as err:
        load(model({"a": app(), "b": app()}))
    assert "several services look like PostgreSQL: a, b" in err.value.message


def test_an_exporter_image_named_postgres_loses_to_the_service_with_the_data():
    m = model({"exporter": {"image": "prometheuscommunity/postgres-exporter"},
               "db": pg(image="registry.local/base:1")})
    assert load(m).service == "db"


def test_the_services_environment_is_kept_for_the_credentials_but_never_shown():
    p = load(model({"db": pg(environment={"POSTGRES_PASSWORD": "s3cret-pw",
                                          "POSTGRES_USER": "shop"})}))
    assert p.environment["POSTGRES_USER"] == "shop" and "s3cret-pw" not in repr(p)


def detect(tmp_path, flavor: str, *answers):
    from dbguard.compose import Compose
    from dbguard.settings import load_settings
    from fakes import RecordingRunner
    (tmp_path / ".env").write_text(f"DBGUARD_COMPOSE={flavor}\n")
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    runner = RecordingRunner(tmp_path)
    for prefix, reply in answers:
        runner.answer(prefix, **reply)
    return Compose.detect(runner, load_settings(tmp_path, environ={})), runner.recorded


V2_CONFIG = (["docker", "compose"], {"stdout": b'{"name": "proj", "services": {}}'})


def test_with_the_compose_plugin_the_configuration_read_is_the_only_call(tmp_path):
    compose, calls = detect(tmp_path, "auto", V2_CONFIG)
    assert [c[:2] + c[-3:] for c in calls] == [
        ["docker", "compose", "config", "--format", "json"]]
    assert compose.v2 and compose.config() == ({"name": "proj", "services": {}}, "proj")
    assert len(calls) == 1, "the model is read once: by the call that found Compose"
    compose.for_project("proj").config()  # later reads (a compose file changed) ask again
    assert len(calls) == 2 and calls[1][-3:] == ["config", "--format", "json"]


def test_without_the_plugin_auto_falls_back_to_docker_compose_with_no_version_call(tmp_path):
    """v1's every start costs half a second of CPU: its `config` alone tells it apart."""
    usage = {"returncode": 125, "stderr": b"unknown flag: --project-directory"}
    compose, calls = detect(
        tmp_path, "auto", (["docker", "compose"], usage),
        (["docker-compose", "version"], {"stdout": b"1.29.2\n"}),
        (["docker-compose"], {"stdout": b"services: {}\n"}))
    assert [c[0:2] if c[0] == "docker" else c[0:1] + c[-1:] for c in calls] == [
        ["docker", "compose"], ["docker", "compose"], ["docker-compose", "config"]]
    assert compose.command == ("docker-compose",) and not compose.v2
    assert compose.shown_version() == "1.29.2", "asked only when shown"


def test_a_docker_compose_of_version_2_installed_standalone_is_v2(tmp_path):
    """v2's YAML names the project first; v1's never does. Then v2's JSON is read."""
    from dbguard.compose import Compose
    from dbguard.settings import load_settings
    from fakes import RecordingRunner

    class StandaloneV2(RecordingRunner):
        def reply(self, args):
            self.recorded.append(args)
            json_asked = args[-2:] == ["--format", "json"]
            return {"stdout": b'{"name": "p", "services": {}}' if json_asked
                    else b"name: p\nservices: {}\n"}

    (tmp_path / ".env").write_text("DBGUARD_COMPOSE=v1\n")
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    runner = StandaloneV2(tmp_path)
    compose = Compose.detect(runner, load_settings(tmp_path, environ={}))
    assert compose.v2 and compose.command == ("docker-compose",)
    assert [c[-1] for c in runner.recorded] == ["config", "json"], runner.recorded
    assert compose.model[1] == "p"


def test_a_configuration_the_plugin_refuses_is_its_error_not_a_missing_compose(tmp_path):
    with pytest.raises(Failure, match="docker compose config` failed"):
        detect(tmp_path, "auto", (["docker", "compose", "version"], {"stdout": b"2.40.3"}),
               (["docker", "compose"], {"returncode": 1, "stderr": b"services.db.image: bad"}))
