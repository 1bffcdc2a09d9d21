#!/usr/bin/env bash
# Builds the PostgreSQL image the integration tier runs against, from Debian's packages by
# mmdebstrap (no image registry is reachable on the test machines). The tag carries a hash of
# this recipe, so the image is rebuilt only when the recipe changes. Prints the tag on stdout.
#
#   build_image.sh [MAJOR]   15 (default; Debian bookworm), 17 (trixie) or 18 (sid)
#
# Each honours the official image's contract for its major: up to 17, PGDATA and the VOLUME at
# /var/lib/postgresql/data; from 18, PGDATA=/var/lib/postgresql/18/docker and the VOLUME at
# /var/lib/postgresql. LANG=C.UTF-8, so clusters are UTF8 as with the official images.
set -Eeuo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
major=${1:-15}
case "$major" in
	15) suite=bookworm ;;
	17) suite=trixie ;;
	18) suite=sid ;;
	*) echo "ERROR: no recipe for PostgreSQL $major (15, 17 or 18)" >&2; exit 2 ;;
esac
if [ "$major" -ge 18 ]; then
	pgdata=/var/lib/postgresql/$major/docker volume=/var/lib/postgresql
else
	pgdata=/var/lib/postgresql/data volume=/var/lib/postgresql/data
fi
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
hash=$(cat "$here/build_image.sh" "$here/entrypoint.sh" | sha256sum | cut -c1-12)
tag="dbguard-test-pg:$major-$hash"

if docker image inspect "$tag" >/dev/null 2>&1; then
	echo "$tag"
	exit 0
fi

# mmdebstrap, not debootstrap: it fetches the packages through apt, several at a time, and
# installs them in one dpkg run. The three images build in 45 s instead of 100 here.
if ! command -v mmdebstrap >/dev/null; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "installing mmdebstrap" >&2
		# tests/run.py builds the three majors at once: one apt at a time.
		exec 9>/tmp/dbguard-apt.lock && flock 9
		if ! command -v mmdebstrap >/dev/null; then
			apt-get update -qq >&2
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >&2
		fi
		exec 9>&-
	else
		echo "ERROR: mmdebstrap is missing; install it (apt-get install mmdebstrap) and run again" >&2
		exit 1
	fi
fi

rootfs=$(mktemp -d /tmp/dbguard-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "building $tag with mmdebstrap (under a minute)" >&2
# busybox-static rides along on 15: the tests build a busybox-only image from it, to run the
# kit's helper scripts under the shell that alpine-based postgres images have.
extra=
[ "$major" != 15 ] || extra=,busybox-static
# A mirror that is a snapshot keeps Release files past their Valid-Until date (sid's expire
# within days); the signatures are still checked.
mmdebstrap --mode=root --variant=minbase --aptopt='Acquire::Check-Valid-Until "false"' \
	--include="postgresql-$major$extra" "$suite" "$rootfs" "$mirror" >&2
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
rm -rf "$rootfs/var/lib/postgresql/$major" "$rootfs/etc/postgresql/$major"
install -m 0755 "$here/entrypoint.sh" "$rootfs/usr/local/bin/docker-entrypoint.sh"
# Inside the chroot: the root's /var/run is a link to /run, which from outside would be the
# host's own.
chroot "$rootfs" mkdir -p /var/run/postgresql "$volume"
chroot "$rootfs" chown -R postgres:postgres /var/run/postgresql /var/lib/postgresql
chroot "$rootfs" chmod 3777 /var/run/postgresql

tar -C "$rootfs" -c . | docker import \
	-c "ENV PG_MAJOR=$major" \
	-c "ENV PATH=/usr/lib/postgresql/$major/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
	-c "ENV PGDATA=$pgdata" \
	-c 'ENV LANG=C.UTF-8' \
	-c "VOLUME $volume" \
	-c 'EXPOSE 5432' \
	-c 'ENTRYPOINT ["docker-entrypoint.sh"]' \
	-c 'CMD ["postgres"]' \
	- "$tag-import" >&2
# The official image stops with SIGINT (a fast shutdown: open sessions are ended), which
# `docker import` cannot set; with SIGTERM (a smart shutdown) every stop of a server that a
# session still holds would wait out Docker's 10 s and end in a SIGKILL. A build from the
# import, with no context, adds that one setting and no layer.
printf 'FROM %s\nSTOPSIGNAL SIGINT\n' "$tag-import" | DOCKER_BUILDKIT=0 docker build -q -t "$tag" - >&2
docker rmi "$tag-import" >/dev/null
echo "$tag"
