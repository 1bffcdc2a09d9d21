#!/bin/bash
# Entrypoint of the test image: the contract of the official postgres image, reduced to what the
# kit relies on. Data in $PGDATA; initdb only when $PGDATA has no PG_VERSION (POSTGRES_USER,
# POSTGRES_PASSWORD, POSTGRES_DB, POSTGRES_INITDB_ARGS and POSTGRES_HOST_AUTH_METHOD take effect
# only then); trust on the local socket, password over TCP unless POSTGRES_HOST_AUTH_METHOD says
# otherwise (trust: no password at all, as Mastodon runs it); the server runs as postgres
# through exec so that signals reach it.
set -Eeuo pipefail

if [ "${1:-postgres}" != postgres ]; then
	exec "$@"
fi

: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"

# From 18 the official image keeps its data below /var/lib/postgresql/18 and refuses to start
# when something is mounted at the old place, /var/lib/postgresql/data (it would otherwise
# initialise a new cluster beside the old one); its message points at pg_upgrade.
if [ "${PG_MAJOR:-0}" -ge 18 ] && [ "$PGDATA" != /var/lib/postgresql/data ] \
	&& mountpoint -q /var/lib/postgresql/data 2>/dev/null; then
	echo "Error: in 18+, these Docker images are configured to store database data in a" >&2
	echo "       format compatible with pg_ctlcluster; there appears to be PostgreSQL data" >&2
	echo "       or a mount at /var/lib/postgresql/data. Mount the volume at" >&2
	echo "       /var/lib/postgresql instead, and see pg_upgrade to move old data." >&2
	exit 1
fi

if [ "$(id -u)" = 0 ]; then
	mkdir -p "$PGDATA"
	chmod 00700 "$PGDATA"
	find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
	exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
	if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
		echo 'error: database is uninitialized and POSTGRES_PASSWORD is not set' >&2
		exit 1
	fi
	pwfile=$(mktemp)
	printf '%s\n' "${POSTGRES_PASSWORD:-}" > "$pwfile"
	pw=(--pwfile="$pwfile")
	[ -n "${POSTGRES_PASSWORD:-}" ] || pw=()
	# POSTGRES_INITDB_ARGS split into words, as the official image does (e.g. --locale=C,
	# which makes a SQL_ASCII cluster).
	# TZ: the zone initdb would find anyway, named, so that it does not read every zone file to
	# find it (0.8 s of each initdb here).
	# shellcheck disable=SC2086
	TZ=${TZ:-Etc/UTC} initdb --username="$POSTGRES_USER" "${pw[@]}" --auth-local=trust \
		--auth-host="$auth" --no-sync ${POSTGRES_INITDB_ARGS:-} -D "$PGDATA" >/dev/null
	rm -f "$pwfile"
	printf 'host all all all %s\n' "$auth" >> "$PGDATA/pg_hba.conf"
	# Like the official image: a socket-only server while initialising, so that a TCP health
	# check cannot report ready before the database exists.
	pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
	if [ "$POSTGRES_DB" != postgres ]; then
		psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -q \
			--set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
	fi
	pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
	echo 'PostgreSQL init process complete; ready for start up.'
fi

# Test speed only: the test server skips fsync, as initdb above does. Tests kill the server or
# its container, never the machine, and what the server has written stays in the system's
# cache, so a kill loses no committed transaction. Commits still wait for that write, as on
# users' servers (synchronous_commit off would lose the last ones, and a crash test would see
# a committed ALTER undone). DBGUARD_TEST_DURABLE=1 runs it as the official image does (the
# benchmark: users run with fsync on).
if [ "${DBGUARD_TEST_DURABLE:-0}" = 1 ]; then
	exec postgres -D "$PGDATA" -c listen_addresses='*' "${@:2}"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c fsync=off "${@:2}"
