#!/usr/bin/env bash
# Builds the PostgreSQL image the integration tier runs against, from Debian's packages (no image
# registry is reachable on the test machines). The tag carries a hash of this recipe, so the
# image is rebuilt only when the recipe changes. Prints the tag on stdout.
set -Eeuo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
hash=$(cat "$here/build_image.sh" "$here/entrypoint.sh" | sha256sum | cut -c1-12)
tag="dbguard-test-pg:15-$hash"

if docker image inspect "$tag" >/dev/null 2>&1; then
	echo "$tag"
	exit 0
fi

if ! command -v debootstrap >/dev/null; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "installing debootstrap" >&2
		apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2
	else
		echo "ERROR: debootstrap is missing; install it (apt-get install debootstrap) and run again" >&2
		exit 1
	fi
fi

rootfs=$(mktemp -d /tmp/dbguard-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "building $tag with debootstrap (about a minute)" >&2
debootstrap --variant=minbase --include=postgresql-15 "$suite" "$rootfs" "$mirror" >&2
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
rm -rf "$rootfs"/var/lib/postgresql/15 "$rootfs"/etc/postgresql/15
install -m 0755 "$here/entrypoint.sh" "$rootfs/usr/local/bin/docker-entrypoint.sh"
mkdir -p "$rootfs/var/run/postgresql" "$rootfs/var/lib/postgresql/data"
chroot "$rootfs" chown -R postgres:postgres /var/run/postgresql /var/lib/postgresql
chmod 3777 "$rootfs/var/run/postgresql"

tar -C "$rootfs" -c . | docker import \
	-c 'ENV PG_MAJOR=15' \
	-c 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	-c 'ENV PGDATA=/var/lib/postgresql/data' \
	-c 'ENV LANG=C.UTF-8' \
	-c 'VOLUME /var/lib/postgresql/data' \
	-c 'EXPOSE 5432' \
	-c 'ENTRYPOINT ["docker-entrypoint.sh"]' \
	-c 'CMD ["postgres"]' \
	- "$tag" >&2
echo "$tag"
