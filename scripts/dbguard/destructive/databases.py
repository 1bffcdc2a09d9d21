"""DESTROYS OR REPLACES DATA inside the server: creating the scratch database a load goes into,
swapping it in for the live database, copying a database (snapshots), reopening one, dropping
the kit's own databases (scratch, trash, snapshots), and ending the sessions a killed command
left running.

Each statement runs in psql inside the container (server.Server), with names passed as psql
variables. The swap is one transaction: the live database becomes the kept copy (with the
comment that says whose and when, in the same transaction) and the new one takes its name, so
the server never serves a half-swapped state; only closing the door before it (other sessions
of the live database are ended and new ones refused for that moment) is outside it, and an
interrupted swap leaves at worst the live database closed, which recovery reopens.
"""
from __future__ import annotations

from ..errors import Failure
from ..names import scratch_database, trash_database
from ..server import Server

# Ends every other session of the database named by the setting dbguard.db, waiting until
# they are gone (a transaction sees pg_stat_activity as of its start unless told to look
# again). Variables do not reach into a dollar-quoted body, so the name goes in a setting.
END_SESSIONS = """
SELECT set_config('dbguard.db', :'db', false) \\gset
DO $$
BEGIN
  FOR i IN 1..300 LOOP
    PERFORM pg_stat_clear_snapshot();
    PERFORM pg_terminate_backend(pid) FROM pg_stat_activity
     WHERE datname = current_setting('dbguard.db') AND pid <> pg_backend_pid();
    EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_stat_activity
                           WHERE datname = current_setting('dbguard.db')
                             AND pid <> pg_backend_pid());
    PERFORM pg_sleep(0.1);
  END LOOP;
END $$;
"""

EXISTS = """
SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') AS db_exists,
       EXISTS (SELECT 1 FROM pg_database WHERE datname = :'keep') AS keep_exists \\gset
"""


def create_scratch(server: Server, db: str) -> str:
    """An empty database for a load, with the live database's encoding and locale (template0),
    after dropping one a killed run of ours left."""
    scratch = scratch_database(db)
    # The locale provider (15+) and its locale come through to_jsonb: their columns are named
    # differently from one major to the next (daticulocale up to 16, datlocale from 17).
    server.run(f"""-- scratch
DROP DATABASE IF EXISTS :"scratch"{force(server)};
SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') AS found,
       (SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = :'db') AS enc,
       (SELECT datcollate FROM pg_database WHERE datname = :'db') AS coll,
       (SELECT datctype FROM pg_database WHERE datname = :'db') AS ctype,
       (SELECT coalesce(to_jsonb(d) ->> 'datlocprovider', 'c') = 'i' FROM pg_database d
         WHERE datname = :'db') AS icu,
       (SELECT coalesce(to_jsonb(d) ->> 'datlocprovider', 'c') = 'b' FROM pg_database d
         WHERE datname = :'db') AS builtin,
       (SELECT coalesce(to_jsonb(d) ->> 'datlocale', to_jsonb(d) ->> 'daticulocale', '')
          FROM pg_database d WHERE datname = :'db') AS loc \\gset
\\if :found
\\if :icu
CREATE DATABASE :"scratch" TEMPLATE template0 ENCODING :'enc' LC_COLLATE :'coll'
  LC_CTYPE :'ctype' LOCALE_PROVIDER icu ICU_LOCALE :'loc';
\\elif :builtin
CREATE DATABASE :"scratch" TEMPLATE template0 ENCODING :'enc' LC_COLLATE :'coll'
  LC_CTYPE :'ctype' LOCALE_PROVIDER builtin BUILTIN_LOCALE :'loc';
\\else
CREATE DATABASE :"scratch" TEMPLATE template0 ENCODING :'enc' LC_COLLATE :'coll'
  LC_CTYPE :'ctype';
\\endif
\\else
CREATE DATABASE :"scratch" TEMPLATE template0;
\\endif
""", server.maintenance(db), scratch=scratch, db=db)
    return scratch


def swap_in(server: Server, db: str, new: str, keep: str, comment: str) -> None:
    """Puts `new` in place of `db`, keeping what `db` held as `keep` (with `comment`); a
    database already called `keep` (the previous kept copy) is renamed to the trash database
    in the same transaction and dropped right after. Without a live database, `new` is
    renamed."""
    trash = trash_database(db)
    server.run(f"""-- swap
{EXISTS}
DROP DATABASE IF EXISTS :"trash"{force(server)};
\\if :db_exists
ALTER DATABASE :"db" WITH ALLOW_CONNECTIONS false;
{END_SESSIONS}
BEGIN;
\\if :keep_exists
ALTER DATABASE :"keep" RENAME TO :"trash";
\\endif
ALTER DATABASE :"db" RENAME TO :"keep";
ALTER DATABASE :"new" RENAME TO :"db";
COMMENT ON DATABASE :"keep" IS :'comment';
COMMIT;
ALTER DATABASE :"keep" WITH ALLOW_CONNECTIONS true;
\\else
ALTER DATABASE :"new" RENAME TO :"db";
\\endif
DROP DATABASE IF EXISTS :"trash"{force(server)};
""", server.maintenance(db), db=db, new=new, keep=keep, trash=trash, comment=comment)


def set_aside(server: Server, db: str, keep: str, comment: str) -> None:
    """Renames `db` to `keep` (with its comment), in one transaction after closing the door:
    the database is gone from its name, and nothing of it is lost."""
    server.run(f"""-- set aside
ALTER DATABASE :"db" WITH ALLOW_CONNECTIONS false;
{END_SESSIONS}
BEGIN;
ALTER DATABASE :"db" RENAME TO :"keep";
COMMENT ON DATABASE :"keep" IS :'comment';
COMMIT;
ALTER DATABASE :"keep" WITH ALLOW_CONNECTIONS true;
""", server.maintenance(db), db=db, keep=keep, comment=comment)


COMMENT_COPY = """COMMENT ON DATABASE :"copy" IS :'comment';"""


def copy_database(server: Server, db: str, copy: str, comment: str | None,
                  close: bool) -> None:
    """CREATE DATABASE copy TEMPLATE db, as a file copy where the server can choose (15+: the
    default writes the whole database to the WAL as well). PostgreSQL copies a database only
    while nobody else is connected to it: with `close`, other sessions are ended and new ones
    refused for the moment the copy takes, and the database is opened again right after."""
    # A copy keeps the collation version its source records (15+): the server refuses a
    # template whose recorded version is not the library's ("collation version mismatch")
    # unless the version is given, and a snapshot of a drifted database must stay as drifted
    # as it (db-reindex takes one before it rebuilds anything).
    major = server_major(server)
    strategy = " STRATEGY FILE_COPY" if major >= 15 else ""
    opening = f"""ALTER DATABASE :"db" WITH ALLOW_CONNECTIONS false;
{END_SESSIONS}""" if close else ""
    closing = 'ALTER DATABASE :"db" WITH ALLOW_CONNECTIONS true;' if close else ""
    create = f"""CREATE DATABASE :"copy" TEMPLATE :"db"{strategy};"""
    if major >= 15:
        create = f"""SELECT coalesce(datcollversion, '') AS collversion,
       datcollversion IS NOT NULL AS versioned FROM pg_database WHERE datname = :'db' \\gset
\\if :versioned
CREATE DATABASE :"copy" TEMPLATE :"db"{strategy} COLLATION_VERSION :'collversion';
\\else
{create}
\\endif"""
    server.run(f"""-- copy
{opening}
{create}
{closing}
{COMMENT_COPY if comment is not None else ""}
""", server.maintenance(db), db=db, copy=copy, **({"comment": comment} if comment else {}))


def oid_of(server: Server, name: str, maintenance_of: str) -> int | None:
    """A database's OID: the same database before and after a rename."""
    return server.value("SELECT oid::bigint AS oid FROM pg_database WHERE datname = :'name'",
                        server.maintenance(maintenance_of), name=name)


def comment_on(server: Server, db: str, comment: str) -> None:
    server.run('COMMENT ON DATABASE :"db" IS :\'comment\';', server.maintenance(db), db=db,
               comment=comment)


def reopen(server: Server, db: str) -> None:
    server.run('ALTER DATABASE :"db" WITH ALLOW_CONNECTIONS true;', server.maintenance(db),
               db=db)


def drop(server: Server, names: list[str], maintenance_of: str) -> None:
    """Drops the kit's own databases (scratch, trash, snapshots), ending their sessions."""
    if not names:
        return
    script = "-- drop\n" + "\n".join(
        f'DROP DATABASE IF EXISTS :"d{i}"{force(server)};' for i in range(len(names)))
    server.run(script, server.maintenance(maintenance_of),
               **{f"d{i}": n for i, n in enumerate(names)})


def end_sessions_of_dead_commands(server: Server, alive) -> int:
    """Ends the server sessions of kit commands that are no longer running (a killed command's
    statement goes on in the server until its session is ended), and waits until they are
    gone. `alive(pid)` tells whether a command's process still runs. Returns how many."""
    rows = server.rows("SELECT pid, application_name AS app FROM pg_stat_activity "
                       "WHERE application_name LIKE 'dbguard:%'", "postgres")
    from ..names import APP_WRITER_RE
    doomed = [r["pid"] for r in rows
              if (m := APP_WRITER_RE.match(r["app"] or "")) and not alive(int(m["pid"]))]
    if not doomed:
        return 0
    server.run("""-- end sessions
SELECT set_config('dbguard.pids', :'pids', false) \\gset
DO $$
BEGIN
  FOR i IN 1..300 LOOP
    PERFORM pg_stat_clear_snapshot();
    PERFORM pg_terminate_backend(pid) FROM pg_stat_activity
     WHERE pid = ANY (string_to_array(current_setting('dbguard.pids'), ',')::int[]);
    EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = ANY (
      string_to_array(current_setting('dbguard.pids'), ',')::int[]));
    PERFORM pg_sleep(0.1);
  END LOOP;
END $$;
""", "postgres", pids=",".join(str(p) for p in doomed))
    return len(doomed)


def force(server: Server) -> str:
    """WITH (FORCE) where the server has it (13+): the sessions of a killed load go too."""
    return " WITH (FORCE)" if server_major(server) >= 13 else ""


def server_major(server: Server) -> int:
    return server.version()[1] // 10000


def create_from(server: Server, template: str, new: str, comment: str,
                maintenance_of: str) -> str:
    """CREATE DATABASE new TEMPLATE template (nobody may be connected to the template: an idle
    snapshot of the kit's), commented in the same script; returns how the files were copied.
    On 18 and later, with file_copy_method = clone first (a reflink: near-instant on a
    filesystem that has them, such as XFS or Btrfs), and copied when the filesystem has none."""
    major = server_major(server)
    script = """-- clone
{setting}
CREATE DATABASE :"new" TEMPLATE :"template" STRATEGY FILE_COPY;
COMMENT ON DATABASE :"new" IS :'comment';
"""
    variables = dict(template=template, new=new, comment=comment)
    where = server.maintenance(maintenance_of)
    if major >= 18:
        try:
            server.run(script.format(setting="SET file_copy_method = clone;"), where,
                       **variables)
            return "clone (file_copy_method = clone)"
        except Failure as exc:
            server.run(f'DROP DATABASE IF EXISTS :"new"{force(server)};', where, new=new)
            method = f"copy (the filesystem cannot clone files: {exc.message})"
    else:
        method = "copy (STRATEGY FILE_COPY)"
    server.run(script.format(setting=""), where, **variables)
    return method


def rename(server: Server, old: str, new: str, maintenance_of: str) -> None:
    server.run('ALTER DATABASE :"old" RENAME TO :"new";', server.maintenance(maintenance_of),
               old=old, new=new)
