#!/usr/bin/env bash
# tests/install/package_test.sh (CTest "lab: package"): the Debian packages
# scripts/package builds install on this machine and work from the
# installed files alone, and purging them leaves the machine as it was.
#
#   build (scripts/package) -> lintian (errors fail; other tags printed)
#   -> apt-get install ./pkfs_*.deb ./pkfs-dev_*.deb (dependencies pulled)
#   -> man -w for every page; mkfs.pkfs; mount -t fuse.pkfs REGION MNT and
#      umount, as mount(8) runs it (PATH cleared: only installed helpers);
#      an fstab line (mount -T FSTAB MNT, a scratch fstab); a consumer
#      built with find_package(pkfs) and pkg-config against /usr; the
#      installed pkfs@.service verified
#   -> apt-get purge; the package list (names, versions, states) must be
#      exactly as before, and no file the packages had may remain.
#
# Runs only with PKFS_LAB=1 or CI=true, as root: it installs packages on the
# machine (about 2-4 minutes here, most of it the release build). Skips when
# pkfs is already installed (it could not restore that).
#   tests/install/package_test.sh --build-dir BUILD   (the CTest build
#   directory; the release build goes to BUILD/package)
set -euo pipefail

build_dir=""
package_build_dir=""
while (($# > 0)); do
  case $1 in
    --build-dir) build_dir=$2; shift 2 ;;
    --package-build-dir) package_build_dir=$2; shift 2 ;;  # default: BUILD/package
    *) echo "package_test: unknown argument $1" >&2; exit 2 ;;
  esac
done
source_dir=$(cd "$(dirname "$0")/../.." && pwd)
say() { echo "[package] $*"; }
fail() { echo "[package] FAIL: $*" >&2; exit 1; }
skip() { echo "[package] SKIP: $*"; exit 77; }

if [ "${PKFS_LAB:-}" != 1 ] && [ "${CI:-}" != true ]; then
  skip "runs only with PKFS_LAB=1 or CI=true (installs and purges packages on this machine, ~3 min)"
fi
[ "$(id -u)" -eq 0 ] || skip "needs root (apt-get install, mount)"
[ -c /dev/fuse ] || skip "/dev/fuse is missing"
for tool in apt-get dpkg-query dpkg-deb man lintian; do
  command -v "$tool" >/dev/null || skip "$tool is not installed (scripts/setup-deps --lab)"
done
for package in pkfs pkfs-dev; do
  if [ "$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)" != "" ] &&
     [ "$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null)" != not-installed ]; then
    skip "$package is already installed here; this test could not put it back"
  fi
done

work=$(mktemp -d /dev/shm/pkfs-package.XXXXXX)
mnt=$work/mnt
mkdir -p "$mnt"
installed=0
packages_state() { dpkg-query -W -f='${Package}:${Architecture} ${Version} ${db:Status-Abbrev}\n' | LC_ALL=C sort; }
packages_state >"$work/before"
cleanup() {
  local status=$?
  set +e
  if mountpoint -q "$mnt"; then umount "$mnt" || umount -l "$mnt"; fi
  if ((installed)); then
    apt-get -o DPkg::Lock::Timeout=300 purge -y -qq pkfs pkfs-dev >/dev/null 2>&1
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 "$@"; }

say "building with scripts/package"
"$source_dir/scripts/package" --build-dir "${package_build_dir:-${build_dir:-$source_dir/build}/package}" --out "$work" >"$work/debs" ||
  fail "scripts/package failed"
mapfile -t debs <"$work/debs"
((${#debs[@]} == 2)) || fail "expected two packages, got: ${debs[*]}"
version=$(sed -n 's/^project(pkfs VERSION \([0-9.]*\).*/\1/p' "$source_dir/CMakeLists.txt")
[ "$(basename "${debs[0]}")" = "pkfs_${version}_$(dpkg --print-architecture).deb" ] ||
  fail "unexpected name ${debs[0]}"
for deb in "${debs[@]}"; do
  say "contents of $(basename "$deb")"
  dpkg-deb -c "$deb" | awk '{ print "  " $1, $6, $7, $8 }'
done

say "lintian"
lintian --info --tag-display-limit 0 "${debs[@]}" >"$work/lintian" 2>&1 || true
sed 's/^/  /' "$work/lintian"
grep -q '^E: ' "$work/lintian" && fail "lintian reports errors (above)"

say "apt-get install ./pkfs_*.deb ./pkfs-dev_*.deb"
installed=1
apt_get install -y -qq "${debs[@]}" >"$work/install.log" 2>&1 || fail "install failed: $(cat "$work/install.log")"
for tool in pkfs mkfs.pkfs fsck.pkfs pkfsctl; do
  [ -x "/usr/sbin/$tool" ] || fail "/usr/sbin/$tool is not installed"
done
dpkg -L pkfs pkfs-dev | LC_ALL=C sort -u >"$work/files"
for page in 8:pkfs 8:mkfs.pkfs 8:fsck.pkfs 8:pkfsctl 3:libpkfs; do
  where=$(man -w "${page%%:*}" "${page#*:}") || fail "man -w ${page#*:} finds nothing"
  say "man -w ${page#*:}: $where"
done
shown=$(MANWIDTH=80 MANPAGER=cat man 8 mkfs.pkfs 2>/dev/null) || fail "man mkfs.pkfs failed"
grep -q "format a pkfs region" <<<"$shown" || fail "man mkfs.pkfs does not show the page: $shown"

say "mkfs.pkfs and mount -t fuse.pkfs from the installed files"
region=$work/region
/usr/sbin/mkfs.pkfs -q -s 64M -L pkg "$region" || fail "mkfs.pkfs failed"
# mount(8) runs its helpers with a PATH of its own; give it no other.
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin mount -t fuse.pkfs -o allow_other "$region" "$mnt" ||
  fail "mount -t fuse.pkfs failed"
grep -q "^$region $mnt fuse.pkfs " /proc/mounts || fail "not in /proc/mounts: $(grep " $mnt " /proc/mounts)"
echo data >"$mnt/file"
info=$(/usr/sbin/pkfsctl info --json "$mnt") || fail "pkfsctl info --json through the installed daemon"
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["filesystem_label"]=="pkg", d' "$info" ||
  fail "pkfsctl info --json: $info"
umount "$mnt" || fail "umount failed"

say "an fstab line"
printf '%s  %s  fuse.pkfs  allow_other,nofail  0  0\n' "$region" "$mnt" >"$work/fstab"
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin mount -T "$work/fstab" "$mnt" || fail "mount from the fstab line failed"
[ "$(cat "$mnt/file")" = data ] || fail "the file is gone"
umount "$mnt" || fail "umount failed"
for _ in $(seq 100); do
  lslocks --noheadings --raw -o PATH | grep -qxF "$region" || break
  sleep 0.1
done
out=$(/usr/sbin/fsck.pkfs -n "$region") && grep -q clean <<<"$out" || fail "the region is not clean after umount: $out"

say "a consumer of the installed libpkfs (CMake and pkg-config)"
cmake -S "$source_dir/tests/install" -B "$work/consumer" >"$work/consumer.log" 2>&1 &&
  cmake --build "$work/consumer" >>"$work/consumer.log" 2>&1 || fail "CMake consumer: $(cat "$work/consumer.log")"
out=$("$work/consumer/consumer" /) && grep -q '^refused: ' <<<"$out" || fail "the CMake consumer does not run: $out"
# shellcheck disable=SC2046 # flags are words
cc -o "$work/consumer-pc" "$source_dir/tests/install/consumer.c" $(pkg-config --cflags --libs pkfs) ||
  fail "pkg-config consumer"
out=$("$work/consumer-pc" /) && grep -q '^refused: ' <<<"$out" || fail "the pkg-config consumer does not run: $out"

if command -v systemd-analyze >/dev/null; then
  say "systemd-analyze verify on the installed unit"
  out=$(systemd-analyze verify "pkfs@$(systemd-escape --path "$region").service" 2>&1) || fail "verify: $out"
  [ -z "$out" ] || fail "verify: $out"
fi

say "apt-get purge"
apt_get purge -y -qq pkfs pkfs-dev >"$work/purge.log" 2>&1 || fail "purge failed: $(cat "$work/purge.log")"
installed=0
packages_state >"$work/after"
if ! cmp -s "$work/before" "$work/after"; then
  # Dependencies the install pulled in: take them away again, exactly those.
  mapfile -t added < <(comm -13 <(cut -d' ' -f1 "$work/before") <(cut -d' ' -f1 "$work/after"))
  if ((${#added[@]} > 0)); then
    say "purging what the install pulled in: ${added[*]}"
    apt_get purge -y -qq "${added[@]}" >>"$work/purge.log" 2>&1 || fail "purge of ${added[*]} failed"
  fi
  packages_state >"$work/after"
fi
diff "$work/before" "$work/after" || fail "the package list differs from before (above)"
left=()
while read -r file; do
  [ "$file" = /. ] && continue
  if [ -e "$file" ] && ! dpkg -S "$file" >/dev/null 2>&1; then left+=("$file"); fi
done <"$work/files"
((${#left[@]} == 0)) || fail "left behind: ${left[*]}"
grep -q libpkfs <<<"$(ldconfig -p)" && fail "libpkfs is still in the ldconfig cache"
[ ! -e /etc/pkfs ] || fail "/etc/pkfs exists"
say "PASS"
