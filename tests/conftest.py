"""Shared by both tiers: the scripts folder is importable as it is for the scripts."""
import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
# The session's own part of every test volume's key (harness.KEY), set before the xdist
# workers start so that they inherit it.
os.environ.setdefault("DBGUARD_TEST_SESSION", secrets.token_hex(2))


def pytest_sessionstart(session):
    """The anonymous volumes already on the machine, for tests/integration/conftest.py to find
    any the tests leave (taken once, in the process that reports: never in an xdist worker)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from harness import anonymous_volumes, networks
        session.config.dbguard_anonymous_volumes = anonymous_volumes()
        try:
            session.config.dbguard_networks = networks()
        except OSError:  # no docker client: the integration tier says so itself
            session.config.dbguard_networks = None
