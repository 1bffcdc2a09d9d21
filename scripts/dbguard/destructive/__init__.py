"""Everything in dbguard that can destroy or replace data, and nothing else.

- replace_database.py  swaps a database for a freshly loaded one (db-restore, db-seed)
- databases.py         the server-side pieces: scratch databases, swaps, snapshot copies and
                       drops, reopening (db-snapshot, db-rollback, db-snapshots DROP=/KEEP=)
- replace_volume.py    empties a volume or folder and copies into it (db-migrate-volume,
                       db-upgrade, db-undo of those)
- delete_backups.py    deletes old dump files (db-prune)
- recreated.py         removes volumes Docker made as a side effect of the kit's containers
- volume_rm.py         removes a volume, waiting while only another command's read-only look
                       holds it (for the two above)

Each is called only after a plan was shown, a question answered (or --yes given) and, where
something is replaced, a verified copy of it taken. The rest of the package reads, or writes
new files only.
"""
