"""The reliability suite's trials of the commands that change data inside the server (db-snapshot,
db-rollback, db-snapshots DROP, db-undo) and of db-upgrade and its undo, and the checks every
kill trial makes after the kill: which cause db-info names, and whether a database was left
closed or a server runs on a half-made volume. Mixed into tests/reliability.py's Suite."""
from __future__ import annotations

import dataclasses
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from harness import Kit, build_test_image, docker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from dbguard.journal import Journal  # noqa: E402

NAMED = ("INTERRUPTED_OPERATION", "UPGRADE_INCOMPLETE", "INCOMPLETE_COPY")


class ServerTrials:
    unreachable_ok: set = set()

    # --- checks after a kill --------------------------------------------------------------

    def open_operations(self, kit: Kit) -> list:
        return Journal(kit.root / "backups").open_entries()

    def expect_unreachable(self, kit: Kit) -> bool:
        """A server that is not answering by design: the trial said so, or the volume holds a
        cluster of another major than the image (an upgrade undone: db-up refuses to start it
        until DB_IMAGE is the old one again, PG_VERSION_MISMATCH)."""
        if kit.root in self.unreachable_ok:
            return True
        r = subprocess.run([sys.executable, str(kit.root / "scripts" / "db_info.py"), "--json"],
                           cwd=kit.root, env=kit.process_env(), text=True,
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=300)
        try:
            codes = [p["code"] for p in json.loads(r.stdout)["problems"]]
        except (ValueError, KeyError):
            return False
        return "PG_VERSION_MISMATCH" in codes

    def wrong_causes(self, row, kit: Kit, command: str) -> int:
        """Problems db-info names right after the kill that blame another command, or nobody
        (a database the kit closed, named as closed by hand)."""
        r = subprocess.run([sys.executable, str(kit.root / "scripts" / "db_info.py"), "--json"],
                           cwd=kit.root, env=kit.process_env(), text=True,
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=300)
        self.scan_output(row, r.stdout + r.stderr)
        try:
            problems = json.loads(r.stdout)["problems"]
        except (ValueError, KeyError):
            return 0
        wrong = 0
        for p in problems:
            if p["code"] == "DATABASE_CLOSED":
                wrong += 1
            elif p["code"] in NAMED and not p["message"].startswith(f"{command} #"):
                wrong += 1
        return wrong

    def closed_or_partial(self, kit: Kit) -> int:
        """After the command a user types next (db-up): databases closed to connections, and
        a server running on a volume whose copy the journal still has open."""
        count = 0
        try:
            count += kit.sql("SELECT count(*) FROM pg_database WHERE NOT datallowconn "
                             "AND datname <> 'template0'", "postgres")[0][0]
        except Exception:
            pass  # not running: it serves nothing
        volumes = [e for e in self.open_operations(kit)
                   if e.target.get("kind") in ("volume", "folder")]
        running = docker("ps", "-q", "--filter", "status=running", "--filter",
                         f"label=com.docker.compose.project={kit.project}").stdout.split()
        return count + (1 if volumes and running else 0)

    # --- changes inside the server ----------------------------------------------------------

    def drop_kit_databases(self, kit: Kit, keep: tuple = ()) -> None:
        for (name,) in kit.sql("SELECT datname FROM pg_database WHERE datname LIKE "
                               "'sum\\_db\\_dbguard\\_%'", "postgres"):
            if not any(name.endswith(k) for k in keep):
                kit.sql(f'DROP DATABASE "{name}" WITH (FORCE)', "postgres")

    def last_op(self, kit: Kit, command: str) -> int:
        return [e.id for e in Journal(kit.root / "backups").entries()
                if e.command == command][-1]

    def server_trials(self, main: Kit, base: dict, dump: Path) -> None:
        row = self.setup_row

        def snapshot_free() -> None:
            self.drop_kit_databases(main)

        def snapshot_base_and_change() -> None:
            self.drop_kit_databases(main, keep=("_snap_base",))
            if self.fingerprint(main) != base:
                self.run(row, main, "db_restore", "--file", str(dump), "--yes", check=True)
                self.drop_kit_databases(main, keep=("_snap_base",))
            if not main.sql("SELECT 1 FROM pg_database WHERE datname = "
                            "'sum_db_dbguard_snap_base'", "postgres"):
                self.run(row, main, "db_snapshot", "--name", "base", check=True)
            main.sql("DELETE FROM pages WHERE id % 10 = 0")

        def dropme() -> None:
            if not main.sql("SELECT 1 FROM pg_database WHERE datname = "
                            "'sum_db_dbguard_snap_dropme'", "postgres"):
                self.run(row, main, "db_snapshot", "--name", "dropme", check=True)

        plus: list[dict] = []

        def restored_over_a_change() -> None:
            self.drop_kit_databases(main)
            main.sql("INSERT INTO pages (title, body) VALUES ('undo marker', 'x')")
            plus[:] = [self.fingerprint(main)]
            self.run(row, main, "db_restore", "--file", str(dump), "--yes", check=True)

        for sig in (signal.SIGKILL, signal.SIGINT):
            self.kill_trial("db-snapshot", main, "db_snapshot", [], sig, self.unchanged(main),
                            prepare=snapshot_free)
            self.kill_trial("db-rollback", main, "db_rollback", ["--name", "base", "--yes"],
                            sig, self.one_of(main, [base]), prepare=snapshot_base_and_change)
            self.kill_trial("db-snapshots DROP", main, "db_snapshots",
                            ["--drop", "dropme", "--yes"], sig, self.unchanged(main),
                            prepare=dropme, command="db-snapshots")
            self.kill_trial("db-undo (of a restore)", main, "db_undo",
                            lambda: ["--op", str(self.last_op(main, "db-restore")), "--yes"],
                            sig, lambda r, before: self.one_of(main, [plus[0]])(r, before),
                            prepare=restored_over_a_change)
        self.drop_kit_databases(main)
        self.run(row, main, "db_restore", "--file", str(dump), "--yes", check=True)
        self.reindex_trials(main)
        self.clone_trials(main)

    def reindex_trials(self, main: Kit) -> None:
        """db-reindex on an ICU database whose recorded collation version was rewritten (the
        honest way to make a drift: see tests/integration/test_collation.py). Besides the
        rows, what must hold after any interruption: the new version is never recorded while
        the index that cannot be checked (a hash index) has not been rebuilt."""
        if self.only and "reindex" not in self.only:
            return
        main.sql("DROP DATABASE IF EXISTS icu_db", "postgres")
        main.sql("CREATE DATABASE icu_db TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE "
                 "'en-US' LOCALE 'C.UTF-8'", "postgres")
        main.sql("CREATE TABLE words AS SELECT g AS id, md5(g::text) AS w "
                 "FROM generate_series(1, 200000) g", "icu_db")
        main.sql("CREATE INDEX words_w_idx ON words (w)", "icu_db")
        main.sql("CREATE INDEX words_w_hash ON words USING hash (w)", "icu_db")
        state: dict = {}

        def hash_file() -> int:
            return main.sql("SELECT relfilenode::bigint FROM pg_class WHERE relname = "
                            "'words_w_hash'", "icu_db")[0][0]

        def drifted() -> None:
            for (name,) in main.sql("SELECT datname FROM pg_database WHERE datname LIKE "
                                    "'icu\\_db\\_dbguard\\_%'", "postgres"):
                main.sql(f'DROP DATABASE "{name}" WITH (FORCE)', "postgres")
            main.sql("UPDATE pg_database SET datcollversion = '1.0' WHERE datname = 'icu_db'",
                     "postgres")
            state.update(rows=self.fingerprint(main, "icu_db"), hash=hash_file())

        def verify(row, before) -> None:
            if self.fingerprint(main, "icu_db") != state["rows"]:
                row.rows_lost += max(1, self.rows_of(state["rows"]))
            recorded = main.sql("SELECT datcollversion = pg_database_collation_actual_version("
                                "oid) FROM pg_database WHERE datname = 'icu_db'", "postgres")
            if recorded == [(True,)] and hash_file() == state["hash"]:
                row.corrupt_trusted += 1  # a fresh version over an index not rebuilt

        for sig in (signal.SIGKILL, signal.SIGINT):
            self.kill_trial("db-reindex", main, "db_reindex", ["--db", "icu_db", "--yes"], sig,
                            verify, prepare=drifted, prepare_again=False)
        main.sql("DROP DATABASE icu_db WITH (FORCE)", "postgres")
        for (name,) in main.sql("SELECT datname FROM pg_database WHERE datname LIKE "
                                "'icu\\_db\\_dbguard\\_%'", "postgres"):
            main.sql(f'DROP DATABASE "{name}" WITH (FORCE)', "postgres")

    def clone_trials(self, main: Kit) -> None:
        """db-clone in a git worktree that shares the main checkout's server (each run takes
        the idle copy anew, so a kill can land while the main database is closed for it), and
        db-clones PRUNE of clones whose worktree is gone. The main database must be as it was,
        a clone either absent or equal to it, and the next run must finish."""
        if self.only and "clone" not in self.only:
            return
        git = ["git", "-c", "user.email=r@example.test", "-c", "user.name=r"]
        (main.root / ".gitignore").write_text(".env\nbackups/\n.venv/\n__pycache__/\n")
        for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "x"],
                     ["worktree", "add", "-q", "-b", "rel", str(main.root.parent / "rel")]):
            subprocess.run(git + args, cwd=main.root, check=True, capture_output=True)
        tree = dataclasses.replace(main, root=main.root.parent / "rel")
        env = (main.root / ".env").read_text()
        main_rows = self.fingerprint(main)

        def fresh() -> None:
            (tree.root / ".env").write_text(env)
            main.sql("DROP DATABASE IF EXISTS sum_db_rel WITH (FORCE)", "postgres")
            main.sql("DROP DATABASE IF EXISTS sum_db_rel_dbguard_new WITH (FORCE)", "postgres")
            main.sql("DROP DATABASE IF EXISTS sum_db_dbguard_snap_clone_source WITH (FORCE)",
                     "postgres")

        def cloned(row, before) -> None:
            if self.fingerprint(main) != main_rows:
                row.rows_lost += max(1, self.rows_of(main_rows))
            exists = main.sql("SELECT count(*) FROM pg_database WHERE datname = 'sum_db_rel'",
                              "postgres")[0][0]
            if exists and self.fingerprint(main, "sum_db_rel") != main_rows:
                row.corrupt_trusted += 1  # a clone that is not its source, kept as one

        def gone_clones() -> None:
            for n in (1, 2):
                name = f"sum_db_gone{n}"
                main.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", "postgres")
                main.sql(f"CREATE DATABASE {name} TEMPLATE sum_db", "postgres")
                main.sql(f"COMMENT ON DATABASE {name} IS 'dbguard clone of sum_db for "
                         f"{self.work}/removed{n} (branch b{n}), made 2026-01-01T00:00:00+00:00'",
                         "postgres")

        def pruned(row, before) -> None:
            if self.fingerprint(main) != main_rows:
                row.rows_lost += max(1, self.rows_of(main_rows))

        for sig in (signal.SIGKILL, signal.SIGINT):
            self.kill_trial("db-clone", tree, "db_clone", ["--yes"], sig, cloned,
                            prepare=fresh, prepare_again=False)
            self.kill_trial("db-clones PRUNE", main, "db_clones", ["--prune", "--yes"], sig,
                            pruned, prepare=gone_clones, prepare_again=False,
                            command="db-clones")
        fresh()
        subprocess.run(git + ["worktree", "remove", "--force", str(tree.root)], cwd=main.root,
                       capture_output=True)
        shutil.rmtree(main.root / ".git", ignore_errors=True)
        (main.root / ".gitignore").unlink(missing_ok=True)

    # --- db-upgrade and its undo -------------------------------------------------------------

    def upgrade_trials(self) -> None:
        if self.only and "upgrade" not in self.only:
            return
        old, new = self.image, build_test_image(17)
        up = self.kit("up", DB_IMAGE=old)
        up.up("--allow-new-volume")
        up.sql("CREATE TABLE pages AS SELECT g AS id, repeat(md5(g::text), 4) AS body "
               "FROM generate_series(1, 20000) g")
        up.sql("CREATE INDEX ON pages (id)")
        wanted = self.fingerprint(up)
        up.compose("stop")
        up.write_env(DB_IMAGE=new)
        row = self.setup_row

        def major() -> str | None:
            facts = self.run(row, up, "db_info", "--json")
            return next(v["pg_version"] for v in json.loads(facts.stdout)["volumes"]
                        if v["active"])

        def lost(r, what: str) -> None:
            got = self.fingerprint(up)
            if got != wanted:
                r.rows_lost += max(1, self.rows_of(wanted) - self.rows_of(got))
                r.saw(f"rows differ after {what}")

        def at_15() -> None:
            self.unreachable_ok.discard(up.root)
            if major() == "17":
                self.run(row, up, "db_undo", "--op", str(self.last_op(up, "db-upgrade")),
                         "--yes", check=True)
            self.unreachable_ok.add(up.root)  # a 15 cluster under the 17 image: not started

        def at_17() -> None:
            self.unreachable_ok.discard(up.root)
            if major() == "15":
                self.run(row, up, "db_upgrade", "--old-image", old, "--yes", check=True)
                lost(self.current, "an upgrade")

        def upgraded(r, before: dict) -> None:
            # Killed: db-up refuses (a mismatch, or the unfinished upgrade) or the upgrade was
            # done; the data is checked once the next run has finished it.
            if "unreachable" not in self.fingerprint(up):
                lost(r, "a killed upgrade")

        args = ["--old-image", old, "--yes"]
        for sig in (signal.SIGKILL, signal.SIGINT):
            self.kill_trial("db-upgrade 15 -> 17", up, "db_upgrade", args, sig, upgraded,
                            prepare=at_15, kills=8, prepare_again=False)
            at_17()
            # Each undo's rows are compared when the next preparation upgrades again: every
            # table of the 15 cluster it put back against the new one, then against the rows
            # the trial began with.
            self.kill_trial("db-upgrade's undo (db-undo)", up, "db_undo",
                            lambda: ["--op", str(self.last_op(up, "db-upgrade")), "--yes"],
                            sig, lambda r, before: None, prepare=at_17, kills=8,
                            command="db-undo", prepare_again=False)
        at_17()
        self.unreachable_ok.discard(up.root)
