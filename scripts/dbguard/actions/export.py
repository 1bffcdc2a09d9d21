"""db-dump and db-fixture: the database written to a new file. They change no data (a fixture
they replace is kept first), so they are not journaled, but they take the lock and refuse while
the journal says a copy into the active volume is unfinished: a dump of a half-made cluster
would look like a good backup.
"""
from __future__ import annotations

from pathlib import Path

from ..destructive.delete_backups import remove_unfinished
from ..dump_header import PLAIN_TRAILER
from ..dumps import compression, dump_command, take_dump
from ..errors import Failure
from ..files import keep_copy, sha256_file
from ..kit import Kit, kit_lock
from ..messages import human_size, info, success
from ..names import FIXTURE_COPIES, FORMAT_EXT, file_stem
from ..streams import streamed_file
from . import recovery

# pg_dump (since 17.6, 16.10, 15.14) guards plain dumps with a random \restrict key, which
# would make every export differ. The fixture is our own data, so a fixed key is safe.
FIXTURE_KEY = "dbguardfixture"


def dump(kit: Kit, fmt: str) -> Path | None:
    server = kit.server()
    with kit_lock(kit, "db-dump"):
        recovery.refuse_while_unsettled(kit, "db-dump", None)
        if kit.runner.dry_run:
            level = ("-Z", compression(kit)) if fmt == "custom" else ()
            kit.runner.show(dump_command(server, fmt, kit.db, *level), "would run:")
            info(f"dry run: would write {kit.settings.backup_dir}/{file_stem(kit.db)}_"
                 f"<time>.{FORMAT_EXT[fmt]}; nothing was changed")
            return None
        remove_unfinished(kit.settings)
        return take_dump(kit, server, fmt)


def fixture(kit: Kit) -> None:
    server, s = kit.server(), kit.settings
    with kit_lock(kit, "db-fixture"):
        recovery.refuse_while_unsettled(kit, "db-fixture", None)
        helptext = kit.runner(["docker", "exec", server.container, "pg_dump", "--help"],
                              reads=True).stdout
        extra = ["--no-owner", "--no-privileges"]
        if b"--restrict-key" in helptext:
            extra.append(f"--restrict-key={FIXTURE_KEY}")
        command = dump_command(server, "plain", kit.db, *extra)
        if kit.runner.dry_run:
            kit.runner.show(command, "would run:")
            info(f"dry run: would write {s.fixture}; nothing was changed")
            return
        s.fixture.parent.mkdir(parents=True, exist_ok=True)
        _, env = server.exec_options(reads=True)
        with streamed_file(kit.runner, command, s.fixture, f"exporting {kit.db}", mode=0o644,
                           checksum=False, env=env) as out:
            if PLAIN_TRAILER not in out.tail:
                raise Failure("the export has no completion trailer (pg_dump stopped early)",
                              f"The previous {s.fixture.name} was kept; run again")
            # An export from a fresh, empty volume must not silently replace real content.
            if s.fixture.exists() and sha256_file(s.fixture) != out.digest.hexdigest():
                kept = keep_copy(s.fixture, s.backup_dir / FIXTURE_COPIES)
                info(f"kept the fixture it replaces as {kept}")
    success(f"wrote {s.fixture} ({human_size(out.size)}); commit it so a fresh volume can "
            "be seeded with `make db-seed`")
