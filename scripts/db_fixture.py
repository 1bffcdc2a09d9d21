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

import sys

from dbguard.cli import entrypoint, parser
from dbguard.dump_header import PLAIN_TRAILER
from dbguard.dumps import dump_command
from dbguard.errors import EXIT_OK, Failure
from dbguard.files import keep_copy, sha256_file
from dbguard.kit import open_kit
from dbguard.messages import human_size, info, success
from dbguard.service import require_running
from dbguard.streams import streamed_file

# pg_dump (since 17.6, 16.10, 15.14) guards plain dumps with a random \restrict key, which
# would make every export differ. The fixture is our own data, so a fixed key is safe.
FIXTURE_KEY = "dbguardfixture"


@entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__).parse_args(argv)
    kit = open_kit(args)
    require_running(kit)
    s = kit.settings
    helptext = kit.compose("exec", "-T", kit.project.service, "pg_dump", "--help").stdout
    extra = ["--no-owner", "--no-privileges"]
    if b"--restrict-key" in helptext:
        extra.append(f"--restrict-key={FIXTURE_KEY}")
    command = dump_command(kit, "plain", s.db_name, *extra)
    if kit.runner.dry_run:
        kit.runner.show(command, "would run:")
        info(f"dry run: would write {s.fixture}")
        return EXIT_OK
    s.fixture.parent.mkdir(parents=True, exist_ok=True)
    with streamed_file(kit.runner, command, s.fixture, f"exporting {s.db_name}", mode=0o644,
                       checksum=False) as out:
        if PLAIN_TRAILER not in out.tail:
            raise Failure("the export has no completion trailer (pg_dump stopped early)",
                          f"The previous {s.fixture.name} was kept; run again")
        # An export from a fresh, empty volume must not silently replace real content.
        if s.fixture.exists() and sha256_file(s.fixture) != out.digest.hexdigest():
            kept = keep_copy(s.fixture, s.backup_dir / "fixtures")
            info(f"kept the fixture it replaces as {kept}")
    success(f"wrote {s.fixture} ({human_size(out.size)}); commit it so a fresh volume can "
            "be seeded with `make db-seed`")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
