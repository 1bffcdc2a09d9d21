"""The test suite's own session guards (tests/conftest.py): they must run where the reports
arrive, which under pytest-xdist is the controller process. The controller loads only the
root conftest (and those of folders named test*), so guards kept in tests/integration/ never
ran in `make test`. Proven on a copy of the guards, with a tier whose only test skips."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent.parent


def run_copy(tmp_path: Path, *options: str) -> subprocess.CompletedProcess:
    tree = tmp_path / "tests"
    (tree / "integration").mkdir(parents=True)
    shutil.copy(TESTS / "conftest.py", tree / "conftest.py")
    shutil.copy(TESTS / "harness.py", tree / "harness.py")
    (tree / "integration" / "test_only_skips.py").write_text(
        "import pytest\n\n\ndef test_docker_is_missing():\n    pytest.skip('no engine')\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_XDIST_WORKER")}
    env["DBGUARD_REQUIRE_DOCKER"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", *options, str(tree)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("options", [(), ("-n", "2")], ids=["one-process", "xdist"])
def test_a_required_tier_where_nothing_passed_fails_the_run_under_xdist_too(tmp_path, options):
    result = run_copy(tmp_path, *options)
    assert "1 skipped" in result.stdout, result.stdout
    assert "no integration test passed" in result.stderr, result.stdout + result.stderr
    assert result.returncode == 1
