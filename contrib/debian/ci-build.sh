#!/bin/bash
# Build pushmail's Debian packages from this source tree and check them.
#
#   bash contrib/debian/ci-build.sh
#
# Copies the tree (the files git knows about, tracked or new, without build
# output) to a temporary directory, puts contrib/debian there as debian/,
# installs the build dependencies with apt-get (as root, or through sudo),
# runs `dpkg-buildpackage -us -uc -b` with DEB_BUILD_OPTIONS=nocheck, and
# checks that pushmail_*.deb holds /usr/bin/pushmail and pushmail-mta_*.deb
# holds /usr/sbin/sendmail.  Exits non-zero when anything fails; the whole
# run is bounded by `timeout 900`.  KEEP=1 keeps the temporary directory.
set -euo pipefail

if [ -z "${PUSHMAIL_CI_BUILD_TIMED:-}" ]; then
	export PUSHMAIL_CI_BUILD_TIMED=1
	exec timeout --kill-after=30 900 bash "$0" "$@"
fi

src=$(cd "$(dirname "$0")/../.." && pwd)
export DEBIAN_FRONTEND=noninteractive
SUDO=
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo -E"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pushmail-deb.XXXXXX")
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
	if [ -n "${KEEP:-}" ]; then
		echo "ci-build: kept $tmp"
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
work=$tmp/pushmail

echo "=== debian: copy the tree to $work"
mkdir -p "$work"
if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	# tracked files plus new ones not yet committed, never ignored build
	# output (Makefile, config.status, objects) from an in-place build
	git -C "$src" ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do
			# a tracked file deleted in the work tree is skipped
			if [ -e "$src/$f" ] || [ -L "$src/$f" ]; then
				printf '%s\0' "$f"
			fi
		done |
		tar -C "$src" --null -T - -cf - | tar -C "$work" -xf -
else
	cp -a "$src/." "$work/"
	rm -rf "$work/.git"
	if [ -f "$work/Makefile" ]; then
		make -C "$work" distclean >/dev/null 2>&1 || true
	fi
fi
rm -rf "$work/debian"
cp -a "$work/contrib/debian" "$work/debian"

echo "=== debian: build dependencies"
apt_install() {
	$SUDO apt-get install -y -q --no-install-recommends \
		dpkg-dev debhelper fakeroot &&
	# the Build-Depends of debian/control, read by apt itself
	$SUDO apt-get build-dep -y -q --no-install-recommends "$work"
}
if ! apt_install; then
	echo "ci-build: retrying after apt-get update"
	$SUDO apt-get update -q
	apt_install
fi

echo "=== debian: dpkg-buildpackage -us -uc -b (nocheck)"
start=$(date +%s)
(cd "$work" && DEB_BUILD_OPTIONS="nocheck${DEB_BUILD_OPTIONS:+ $DEB_BUILD_OPTIONS}" \
	dpkg-buildpackage -us -uc -b)
echo "ci-build: dpkg-buildpackage took $(($(date +%s) - start)) s"

status=0
# check_deb NAME PATH: NAME_*.deb exists (exactly one) and contains PATH
check_deb() {
	local name=$1 path=$2 debs
	shopt -s nullglob
	debs=("$tmp"/"$name"_*.deb)
	shopt -u nullglob
	if [ "${#debs[@]}" -ne 1 ]; then
		echo "ci-build: FAIL: expected one ${name}_*.deb, found ${#debs[@]}"
		status=1
		return
	fi
	echo "--- $(basename "${debs[0]}")"
	dpkg-deb -c "${debs[0]}" | awk '{ print "    " $1, $6, $7, $8 }'
	if dpkg-deb -c "${debs[0]}" | awk '{ print $6 }' | grep -qxF ".$path"; then
		echo "ci-build: ok: $(basename "${debs[0]}") has $path"
	else
		echo "ci-build: FAIL: $(basename "${debs[0]}") lacks $path"
		status=1
	fi
}
check_deb pushmail /usr/bin/pushmail
check_deb pushmail-mta /usr/sbin/sendmail

if [ "$status" -eq 0 ]; then
	echo "ci-build: debian packages built and checked"
else
	echo "ci-build: debian package check failed"
fi
exit "$status"
