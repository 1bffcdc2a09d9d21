#!/usr/bin/env python3
"""Export the database as the development fixture: plain SQL meant for git.

Writes DBGUARD_FIXTURE (default fixtures/dev_content.sql) with pg_dump's plain format, without
owners or privileges (so it loads for any user), under a stable name, atomically (a failed
export leaves the previous fixture in place). A fixture it replaces with different content is
kept under backups/fixtures/ first. Where pg_dump has --restrict-key, a fixed key is
used so the file does not change when the data does not. Changes nothing in the database.

examples:
  make db-fixture
  make db-seed        load it into a new, empty database
"""
from __future__ import annotations

import os
import shutil
import sys
import time

import _dbguard as g

# pg_dump (since 17.6, 16.10, 15.14) guards plain dumps with a random \restrict key, which
# would make every export differ. The fixture is our own data, so a fixed key is safe.
FIXTURE_KEY = "dbguardfixture"


@g.entrypoint
def main(argv: list[str] | None = None) -> int:
    args = g.parser(__doc__).parse_args(argv)
    kit = g.open_kit(args)
    g.require_running(kit)
    s = kit.settings
    helptext = kit.compose("exec", "-T", kit.project.service, "pg_dump", "--help").stdout
    extra = ["--no-owner", "--no-privileges"]
    if b"--restrict-key" in helptext:
        extra.append(f"--restrict-key={FIXTURE_KEY}")
    argv_ = g.dump_command(kit, "plain", s.db_name, *extra)
    if kit.run.dry_run:
        kit.run.show(argv_, "would run:")
        g.info(f"dry run: would write {s.fixture}")
        return g.EXIT_OK
    s.fixture.parent.mkdir(parents=True, exist_ok=True)

    def verify(out: g.StreamToFile) -> None:
        if g.PLAIN_TRAILER not in out.tail:
            raise g.Failure("the export has no completion trailer (pg_dump stopped early)",
                            f"The previous {s.fixture.name} was kept; run again")
        # An export from a fresh, empty volume must not silently replace real content.
        if s.fixture.exists() and g.sha256_file(s.fixture) != out.digest.hexdigest():
            kept = g.private_dir(s.backup_dir / "fixtures") / (
                f"{s.fixture.stem}_{time.strftime('%Y%m%d_%H%M%S')}{s.fixture.suffix}")
            shutil.copy2(s.fixture, kept)
            os.chmod(kept, 0o600)
            g.info(f"kept the fixture it replaces as {kept}")

    out = g.stream_to_file(kit, argv_, s.fixture, f"exporting {s.db_name}", mode=0o644,
                           checksum=False, verify=verify)
    g.success(f"wrote {s.fixture} ({g.human_size(out.size)}); commit it so a fresh volume can "
              "be seeded with `make db-seed`")
    return g.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
