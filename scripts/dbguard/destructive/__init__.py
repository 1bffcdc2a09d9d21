"""Everything in dbguard that can destroy or replace data, and nothing else.

- replace_database.py  swaps a database for a freshly loaded one (db-restore, db-seed)
- replace_volume.py    empties a volume and copies into it (db-migrate-volume, UNDO=1)
- delete_backups.py    deletes old dump files (db-prune)
- rollback.py          swaps a snapshot's copy in for the database; drops snapshots
                       (db-rollback, db-snapshots DROP=/KEEP=)
- upgrade_volume.py    empties the volume for a new major's cluster and loads it; puts the
                       kept old cluster back (db-upgrade, UNDO=1)

Each is called only after a plan was shown, a question answered (or --yes given) and, where
something is replaced, a verified copy of it taken. The rest of the package reads, or writes
new files only.
"""
