"""The documentation and the code agree: every target, setting and problem code is documented,
every promise in the README points at a test that exists, and the code keeps its own rules."""
import ast
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from dbguard.settings import SETTINGS_KEYS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DOCS = "\n".join(p.read_text() for p in sorted((ROOT / "docs").glob("*.md")))
PROMISES = (ROOT / "docs" / "promises.md").read_text()
MAKEFILE = (ROOT / "Makefile").read_text()
FRAGMENT = (ROOT / "dbguard.mk").read_text()  # the db-* targets, which other repos include
TARGETS = re.findall(r"^([a-z][a-z-]*):.*## ", MAKEFILE, re.M) + re.findall(
    r"^\$\(DBGUARD_PREFIX\)([a-z][a-z-]*):.*## ", FRAGMENT, re.M)
PACKAGE = "\n".join(p.read_text() for p in sorted((ROOT / "scripts/dbguard").rglob("*.py")))
CODES = set(re.findall(r'Problem\(\s*"([A-Z0-9_]+)"', PACKAGE))


def test_make_alone_lists_every_target_with_its_description():
    out = subprocess.run(["make", "-s", "-C", str(ROOT)], capture_output=True, text=True).stdout
    for target in TARGETS:
        assert re.search(rf"^  {target} +\S", out, re.M), f"{target} missing from `make`"
    assert len(TARGETS) >= 15


def test_readme_is_short_and_the_docs_document_every_target_setting_and_problem_code():
    assert len(README.encode()) <= 15 * 1024, "the README is for a newcomer: at most 15 KB"
    for target in TARGETS:
        assert f"make {target}" in README + DOCS, target
    configuration = (ROOT / "docs" / "configuration.md").read_text()
    for key in SETTINGS_KEYS:
        assert f"`{key}`" in configuration, key
    assert CODES >= {"PARALLEL_UNIVERSE", "PG_VERSION_MISMATCH", "PG18_MOUNT_PATH",
                     "PGDATA_NOT_ON_VOLUME", "INCOMPLETE_COPY", "PROJECT_NAME_NOT_LOCKED",
                     "BACKUP_STALE"}
    info_doc = (ROOT / "scripts/db_info.py").read_text()
    for code in CODES:
        assert f"`{code}`" in README and code in info_doc, code


def test_env_example_documents_exactly_the_settings():
    text = (ROOT / ".env.example").read_text()
    keys = set(re.findall(r"^#?([A-Z][A-Z0-9_]+)=", text, re.M))
    assert keys == set(SETTINGS_KEYS)


def test_readme_links_resolve_and_promises_point_at_tests_that_exist():
    for link in re.findall(r"\]\((docs/[\w.-]+\.md)\)", README):
        assert (ROOT / link).is_file(), link
    pairs = re.findall(r"`(tests/[\w/]+\.py)::([\w.]+)`((?:, `::\w+`)*)", PROMISES)
    assert len(pairs) >= 15, pairs
    for path, name, more in pairs:
        source = (ROOT / path).read_text()
        names = [name.split(".")[-1]] + re.findall(r"::(\w+)", more)
        for n in names:
            assert re.search(rf"^\s*def {n}\(", source, re.M), f"{path}::{n} does not exist"


def test_readme_shows_the_two_setup_commands_and_ci_runs_the_test_one():
    setup = README.split("## Set-up")[1].split("##")[0]
    assert "make db-up" in setup and "make test" in setup
    ci = (ROOT / ".ci/run").read_text()
    assert re.search(r"^make test$", ci, re.M)


def test_no_shell_anywhere():
    for path in list((ROOT / "scripts").rglob("*.py")) + list((ROOT / "tests").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "shell":
                raise AssertionError(f"{path}: shell= used")
            if isinstance(node, ast.Attribute) and node.attr in ("system", "popen") and \
                    getattr(node.value, "id", "") == "os":
                raise AssertionError(f"{path}: os.{node.attr} used")


def test_every_script_is_thin_with_main_docstring_and_examples():
    for path in sorted((ROOT / "scripts").glob("db_*.py")):
        source = path.read_text()
        tree = ast.parse(source)
        doc = ast.get_docstring(tree)
        assert doc and "examples:" in doc, path.name
        assert "def main(argv: list[str] | None = None) -> int:" in source, path.name
        assert "@entrypoint" in source and "sys.exit(main())" in source, path.name
        assert len(source.splitlines()) < 260, f"{path.name} is no longer thin"
        target = path.stem.replace("_", "-")
        assert re.search(rf"^\$\(DBGUARD_PREFIX\){target}:.*\n\t\$\(DBGUARD_RUN\)/"
                         rf"{path.name}", FRAGMENT, re.M), \
            f"{target} is not a one-line target calling {path.name}"


def test_scripts_run_directly_with_any_python(tmp_path):
    env = dict(os.environ, DBGUARD_VENV=sys.prefix)  # -S: no site-packages, so no dependencies
    r = subprocess.run([sys.executable, "-S",
                        str(ROOT / "scripts/db_info.py"), "--help"],
                       capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: db_info.py") and "PARALLEL_UNIVERSE" in r.stdout


def test_dependencies_are_installed_again_when_the_list_changes(tmp_path):
    for name in ("Makefile", "dbguard.mk", "requirements.txt", "requirements-dev.txt"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / ".deps").touch()
    past = time.time() - 100
    os.utime(tmp_path / "requirements.txt", (past, past))

    def plan() -> str:
        return subprocess.run(["make", "-n", "-C", str(tmp_path), "db-info",
                               f"DBGUARD_VENV={venv}"], capture_output=True, text=True).stdout

    assert "pip install" not in plan()
    os.utime(tmp_path / "requirements.txt")
    assert "pip install -q --disable-pip-version-check -r ./requirements.txt" in plan()


def test_no_compose_file_anywhere_is_exit_2_before_any_docker_call(tmp_path):
    """No .env is needed (every setting is optional), but a compose file is: without one in
    the kit's folder or above it, each command says so in one line, Docker or not."""
    kit = tmp_path / "kit"
    shutil.copytree(ROOT / "scripts", kit / "scripts",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (kit / ".env.example").write_text("DJANGO_DB_NAME=x\n")
    env = dict(os.environ, DOCKER_HOST="unix:///nonexistent.sock")
    for script in ("db_info", "db_dump", "db_migrate_volume", "db_restore"):
        r = subprocess.run([sys.executable, str(kit / "scripts" / f"{script}.py")], env=env,
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
        assert r.returncode == 2, r.stderr
        assert r.stderr.startswith(f"ERROR: no compose file in {kit} or any folder above it "
                                   "(Compose looks for compose.yaml, compose.yml, "
                                   "docker-compose.yml, docker-compose.yaml). Run the kit "
                                   "inside your project"), r.stderr
    r = subprocess.run([sys.executable, str(kit / "scripts" / "db_backups.py")], env=env,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    (kit / ".env").write_text("DJANGO_DB_NAME=x\nthis is not a setting\n")
    r = subprocess.run([sys.executable, str(kit / "scripts/db_info.py")], capture_output=True,
                       text=True)
    assert r.returncode == 2 and r.stderr.endswith(
        "line 2 is not KEY=value. Fix or remove that line (see .env.example for the format)\n")


def test_help_of_every_script_is_its_docstring():
    for script in sorted((ROOT / "scripts").glob("db_*.py")):
        r = subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                           text=True, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr
        first = script.read_text().split('"""')[1].strip().splitlines()[0]
        assert first in r.stdout and "examples:" in r.stdout, r.stdout


def test_the_package_has_no_import_cycles():
    """Every module of scripts/dbguard imports only what sits below it (imports inside
    functions count too)."""
    package = ROOT / "scripts" / "dbguard"
    modules = {".".join(p.relative_to(package.parent).with_suffix("").parts).removesuffix(
        ".__init__"): p for p in package.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = ".".join(here[:len(here) - node.level + 1] +
                                ([node.module] if node.module else []))
                found |= {m for m in (base, *(f"{base}.{a.name}" for a in node.names))
                          if m in modules and m != name}
        graph[name] = found

    def reaches(start, goal, seen):
        return any(n == goal or (n not in seen and not seen.add(n) and reaches(n, goal, seen))
                   for n in graph[start])

    cycles = [m for m in graph if reaches(m, m, set())]
    assert cycles == [], f"modules in an import cycle: {cycles}"


def test_the_readmes_performance_summary_is_made_from_docs_benchmarks():
    """The README's figures are the benchmark file's, as tests/bench_summary.py reads them:
    a figure edited by hand, or a benchmark run without its summary, fails here."""
    sys.path.insert(0, str(ROOT / "tests"))
    from bench_summary import BLOCK, summary

    block = BLOCK.search(README)
    assert block, "README.md has a <!-- perf --> block"
    assert block.group(0) == summary((ROOT / "docs" / "benchmarks.md").read_text())
    assert "PostgreSQL 15 | PostgreSQL 17 | PostgreSQL 18" in block.group(0), "all three majors"


def test_the_summary_names_a_missed_target():
    sys.path.insert(0, str(ROOT / "tests"))
    from bench_summary import summary

    doc = ("<!-- bench:17 -->\n| operation | dbguard | raw | ratio | dbguard CPU | raw CPU | "
           "CPU ratio | target | met |\n|---|---|---|---|---|---|---|---|---|\n"
           "| db-restore vs `pg_restore` | 12.00 s | 10.00 s | 1.20x | 9.0 s | 8.0 s | 1.12x "
           "| <= 1.0x | **no** |\n| db-find, every volume | 2.10 s | - |  | 1.0 s | - |  "
           "| <= 5 s | yes |\n<!-- /bench:17 -->")
    text = summary(doc)
    assert "| db-restore vs `pg_restore` | 1.20x (1.12x CPU) **not met** | <= 1.0x |" in text, text
    assert "| db-find, every volume | 2.10 s | <= 5 s |" in text, text
