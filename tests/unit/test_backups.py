"""Backup files: what counts as a kit backup, atomic writes with checksums, recognising dumps
by their headers, and the checks that refuse a bad file before anything changes."""
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from dbguard.backup_check import check_backup
from dbguard.backups import Backup, list_backups
from dbguard.names import BACKUP_RE, INCOMPLETE_MARKER, scratch_database, snapshot_database
from dbguard.dump_header import read_dump_header
from dbguard.errors import Failure, Refusal, UsageError
from dbguard.files import StreamToFile, private_dir, sha256_file, write_checksum
from dbguard.loads import report_tables
from dbguard.manifests import manifest_differences, parse_manifests, tar_manifest

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("name, ok", [
    ("sum_db_20251215_124427.dump", True), ("sum_db_20251215_124427.sql", True),
    ("sum_db_20251215_124427_pre-restore.dump", True), ("my.db_20251215_124427.dump", True),
    (".sum_db_20251215_124427.dump.partial", False), ("sum_db_20251215_124427.dump.sha256", False),
    ("sum_db_20251215_124427.sql.gz", False), ("sum_db_latest.dump", False),
    ("notes.txt", False), ("sum_db_2025121_124427.dump", False),
])
def test_which_names_are_kit_backups(name, ok):
    assert bool(BACKUP_RE.match(name)) is ok


class S:
    def __init__(self, folder):
        self.backup_dir = folder


def test_list_backups_newest_first_and_nothing_else(tmp_path):
    for name in ("sum_db_20251210_090000.dump", "sum_db_20251215_124427.sql",
                 "sum_db_20251212_000000_pre-restore.dump", ".sum_db_20251216_000000.dump.partial",
                 "sum_db_20251217_000000.dump.sha256", "random.bin"):
        (tmp_path / name).write_bytes(b"x")
    names = [b.path.name for b in list_backups(S(tmp_path))]
    assert names == ["sum_db_20251215_124427.sql", "sum_db_20251212_000000_pre-restore.dump",
                     "sum_db_20251210_090000.dump"]


def test_stream_commit_is_owner_only_with_a_matching_checksum(tmp_path):
    out = StreamToFile(tmp_path / "sum_db_20251215_124427.dump")
    out.pump(io.BytesIO(b"PGDMP" + b"x" * 3_000_000))
    assert out.partial.exists() and not out.final.exists()
    assert not BACKUP_RE.match(out.partial.name), "a partial file is never a backup"
    final = out.commit()
    assert not out.partial.exists()
    assert stat.S_IMODE(os.stat(final).st_mode) == 0o600
    backup = Backup.from_path(final)
    assert backup.checksum_ok() is True
    with open(final, "ab") as handle:
        handle.write(b"tampered")
    assert backup.checksum_ok() is False
    os.unlink(final.with_name(final.name + ".sha256"))
    assert backup.checksum_ok() is None


def test_discarded_stream_leaves_nothing(tmp_path):
    out = StreamToFile(tmp_path / "sum_db_20251215_124427.dump")
    out.write(b"half")
    out.discard()
    assert list(tmp_path.iterdir()) == []


def test_custom_archive_header_is_read_like_pg_restore():
    facts = read_dump_header(DATA / "tiny.dump")
    assert (facts.format, facts.dbname, facts.pg_dump_major) == ("custom", "d", 15)
    assert facts.server_version.startswith("15.18")


def test_plain_dump_header():
    facts = read_dump_header(DATA / "tiny.sql")
    assert (facts.format, facts.pg_dump_major) == ("plain", 15)


def test_a_random_file_is_refused(tmp_path):
    junk = tmp_path / "sum_db_20251215_124427.dump"
    junk.write_bytes(os.urandom(2048))
    with pytest.raises(Refusal) as err:
        read_dump_header(junk)
    assert err.value.line() == (
        f"ERROR: {junk} is not a PostgreSQL dump (neither pg_dump's custom format nor plain "
        "SQL). Pick a file made by `make db-dump` (`make db-backups` lists them); nothing was "
        "changed")


def test_a_cut_header_is_refused(tmp_path):
    cut = tmp_path / "cut.dump"
    cut.write_bytes((DATA / "tiny.dump").read_bytes()[:40])
    with pytest.raises(Refusal) as err:
        read_dump_header(cut)
    assert "has a damaged pg_dump header" in err.value.message


def copy_with_checksum(tmp_path, source, name):
    path = tmp_path / name
    path.write_bytes(source.read_bytes())
    write_checksum(path, sha256_file(path))
    return path


def test_checksum_mismatch_is_refused_before_anything(tmp_path):
    path = copy_with_checksum(tmp_path, DATA / "tiny.dump", "sum_db_20251215_124427.dump")
    path.write_bytes(path.read_bytes()[:-100])  # truncated after it was written
    with pytest.raises(Refusal) as err:
        check_backup(None, "c1", path, 15)
    assert err.value.message == ("sum_db_20251215_124427.dump does not match its checksum: it "
                                 "was truncated or changed after it was written")


def test_plain_dump_without_its_trailer_is_refused(tmp_path):
    path = tmp_path / "cut.sql"
    path.write_bytes((DATA / "tiny.sql").read_bytes()[:900])
    with pytest.raises(Refusal) as err:
        check_backup(None, "c1", path, 15)
    assert "ends before pg_dump's completion trailer" in err.value.message


def test_dump_from_a_newer_major_is_refused(tmp_path):
    text = (DATA / "tiny.sql").read_text().replace("Dumped by pg_dump version 15.18",
                                                   "Dumped by pg_dump version 17.2")
    path = tmp_path / "newer.sql"
    path.write_text(text)
    with pytest.raises(Refusal) as err:
        check_backup(None, "c1", path, 15)
    assert err.value.message.startswith("newer.sql was made by pg_dump 17.2")


def test_good_plain_dump_with_checksum_passes(tmp_path):
    path = copy_with_checksum(tmp_path, DATA / "tiny.sql", "sum_db_20251215_124427.sql")
    checked = check_backup(None, "c1", path, 15)
    assert (checked.facts.format, checked.checksum) == ("plain", True)


def test_missing_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError) as err:
        check_backup(None, "c1", tmp_path / "nope.dump", 15)
    assert err.value.code == 2 and "no such backup file" in err.value.message


def make_tar(path: Path, files: dict) -> None:
    with tarfile.open(path, "w") as archive:
        root = tarfile.TarInfo(".")
        root.type, root.mode = tarfile.DIRTYPE, 0o700
        archive.addfile(root)
        for name, data in files.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size, info.mode, info.uid, info.gid, info.mtime = len(data), 0o600, 999, 999, 5
            archive.addfile(info, io.BytesIO(data))


def test_manifests_from_a_container_listing_and_from_a_tar_agree(tmp_path):
    import hashlib

    make_tar(tmp_path / "s.tar", {"PG_VERSION": b"15\n", INCOMPLETE_MARKER: b""})
    digest = hashlib.md5(b"15\n").hexdigest()
    listing = ("== /m/0\ndirectory|700|0|0|4096|1|.\n"
               "regular file|600|999|999|3|5|./PG_VERSION\n"
               f"-- sums\n{digest}  ./PG_VERSION\n-- links\n")
    from_volume = parse_manifests(listing)["/m/0"]
    from_tar = tar_manifest(tmp_path / "s.tar")
    assert from_tar == from_volume, "the marker is left out, the rest matches field by field"
    changed = dict(from_volume, **{"./PG_VERSION": ("f", "600", "999", "999", 3, 5, "0" * 64)})
    assert manifest_differences(from_volume, changed) == [
        f"differs ./PG_VERSION: {from_volume['./PG_VERSION'][:6]} vs "
        f"{changed['./PG_VERSION'][:6]}"]
    assert manifest_differences(from_volume, {}) == ["missing .", "missing ./PG_VERSION"]


def test_a_short_tar_does_not_read_back(tmp_path):
    make_tar(tmp_path / "s.tar", {"big": b"x" * 100_000})
    (tmp_path / "s.tar").write_bytes((tmp_path / "s.tar").read_bytes()[:50_000])
    with pytest.raises(tarfile.TarError):
        tar_manifest(tmp_path / "s.tar")


def test_scratch_and_kept_names_fit_postgres_identifiers():
    from dbguard.names import trash_database

    long = "x" * 63
    names = [scratch_database(long), snapshot_database(long, "before_restore"),
             trash_database(long), snapshot_database(long, "replaced_251215_124427_9")]
    assert all(len(n.encode()) <= 63 for n in names) and len(set(names)) == 4
    assert scratch_database("sum_db") == "sum_db_dbguard_new"
    assert snapshot_database("sum_db", "before_restore") == "sum_db_dbguard_snap_before_restore"
    assert snapshot_database("naïve" * 10, "x").encode().count(b"_dbguard_snap_") == 1
    from dbguard.actions.rollback import free_replaced_name
    taken = {snapshot_database("d", "replaced_251215_124427"): 1}
    assert free_replaced_name("d", taken, "20251215_124427") == "replaced_251215_124427_2"


def test_table_report():
    lines = report_tables({"public.a": 10, "public.b": 5}, {"public.a": 12, "public.c": 1})
    assert lines == ["tables: 2 -> 2; rows (estimate): 15 -> 13", "  public.a: 10 -> 12",
                     "  public.b: 5 -> -", "  public.c: - -> 1"]


def test_an_unreadable_checksum_file_is_refused(tmp_path):
    path = copy_with_checksum(tmp_path, DATA / "tiny.dump", "sum_db_20251215_124427.dump")
    path.with_name(path.name + ".sha256").write_text("not a digest\n")
    with pytest.raises(Refusal) as err:
        check_backup(None, "c1", path, 15)
    assert err.value.line() == ("ERROR: sum_db_20251215_124427.dump.sha256 cannot be read as a "
                                "checksum. Pick another backup (`make db-backups`); nothing was "
                                "changed")


def test_a_folder_the_kit_creates_is_owner_only(tmp_path):
    made = private_dir(tmp_path / "a" / "backups")
    assert stat.S_IMODE(made.stat().st_mode) == 0o700


def test_an_existing_shared_folder_keeps_its_mode(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    private_dir(shared)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777, "not the kit's folder to change"


def test_a_folder_that_cannot_be_written_is_one_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(Failure) as err:
        private_dir(tmp_path / "file" / "backups")
    assert err.value.line() == (
        f"ERROR: cannot write in {tmp_path / 'file' / 'backups'} (a file stands where a folder "
        "should be). Make it writable, or point DBGUARD_BACKUP_DIR in .env elsewhere; nothing "
        "was changed")


def test_a_full_disk_ends_the_dump_at_once_and_keeps_nothing(tmp_path, monkeypatch):
    """The writer (here a real process with 64 MiB to write) is ended when the file cannot take
    more, instead of being waited for while it blocks on a pipe that nobody reads."""
    import errno
    import subprocess
    import sys
    import threading

    from dbguard.runner import Runner
    from dbguard.streams import streamed_file

    def full(self, chunk):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(StreamToFile, "write", full)
    final = tmp_path / "sum_db_20251215_124427.dump"
    writer = [sys.executable, "-c", "import sys; sys.stdout.buffer.write(b'x' * (64 << 20))"]
    outcome = {}

    def dump():
        try:
            with streamed_file(Runner(tmp_path), writer, final, "dumping"):
                pass
        except Failure as exc:
            outcome["error"] = exc.line()

    thread = threading.Thread(target=dump, daemon=True)
    thread.start()
    thread.join(300)  # a bound for the old hang only; the fixed code returns at once
    assert not thread.is_alive(), "the dump hung on a full disk"
    assert outcome["error"] == (
        f"ERROR: writing {final} failed (No space left on device). Nothing was kept; free "
        f"space in {tmp_path} (or fix its permissions) and run again")
    assert list(tmp_path.iterdir()) == []
    assert not subprocess.run(["pgrep", "-f", "b'x' \\* \\(64"], capture_output=True).stdout


@pytest.mark.parametrize("db", ["a/b", "../x", "it's", "naïve db", ".hidden", "sum_db",
                                "x_20251215_124427"])
def test_any_database_name_makes_a_backup_file_inside_the_folder_that_reads_back(tmp_path, db):
    from types import SimpleNamespace

    from dbguard.backups import backup_path

    settings = SimpleNamespace(backup_dir=tmp_path / "backups", db_name=db)
    path = backup_path(settings, "custom", tag="pre-restore")
    assert path.parent == tmp_path / "backups" and not path.name.startswith(".")
    path.write_bytes(b"PGDMP")
    (backup,) = list_backups(settings)
    assert (backup.db, backup.tag, backup.safety) == (db, "pre-restore", True)


def test_restore_by_default_takes_the_configured_databases_own_newest_backup(tmp_path):
    from types import SimpleNamespace

    from dbguard.backup_check import newest_good_backup

    folder = tmp_path / "backups"
    folder.mkdir()
    dump = (b"--\n-- PostgreSQL database dump\n--\n\nSELECT 1;\n\n"
            b"-- PostgreSQL database dump complete\n\n")
    names = ["sum_db_20251214_120000.sql",              # the one to take
             "sum_db_20251215_120000_pre-restore.sql",  # newer, but a safety dump
             "other_20251216_120000.sql"]               # newer, another database's
    for name in names:
        (folder / name).write_bytes(dump)
        write_checksum(folder / name, sha256_file(folder / name))

    def kit(db):
        return SimpleNamespace(settings=SimpleNamespace(backup_dir=folder, db_name=db), db=db)

    assert newest_good_backup(kit("sum_db"), "c1", 15).path.name == names[0]
    assert newest_good_backup(kit("other"), "c1", 15).path.name == names[2]
    with pytest.raises(Refusal) as err:
        newest_good_backup(kit("third"), "c1", 15)
    assert err.value.message == f"no backup of 'third' in {folder} passes verification"
