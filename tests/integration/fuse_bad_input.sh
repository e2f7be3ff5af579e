#!/usr/bin/env bash
# fuse_bad_input.sh: every way of pointing pkfs at the wrong thing fails with
# a clear message and a non-zero status, mounts nothing, and leaves the
# region's bytes exactly as they were: a missing region, an unformatted one,
# one of a newer format version, a corrupt superblock (primary and backup),
# a mountpoint that is a file or missing, a region already mounted, and
# options pkfs or libfuse refuse. The background (daemonising) start
# reports failures the same way.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/mount.sh"

pkfs_setup
pkfs_need python3 sha256sum

# refuse NAME REGION_FILE PATTERN [daemon arguments...]: pkfs must fail with
# PATTERN, mount nothing on $CHECK_MNT, and leave REGION_FILE unchanged (or
# absent).
CHECK_MNT=$MNT
refuse() {
  local name=$1 region=$2 pattern=$3
  shift 3
  local before="absent" after="absent" output status=0
  [ -e "$region" ] && before=$(pkfs_sha "$region")
  output=$(timeout 20 "$PKFS" "$@" 2>&1) || status=$?
  [ -e "$region" ] && after=$(pkfs_sha "$region")
  [ "$status" -ne 0 ] || pkfs_fail "$name: pkfs succeeded: $output"
  [ "$status" -ne 124 ] || pkfs_fail "$name: pkfs hung"
  grep -Eq -- "$pattern" <<<"$output" || pkfs_fail "$name: message does not match /$pattern/: $output"
  grep -q "^pkfs: " <<<"$output" || pkfs_fail "$name: message does not start with 'pkfs: ': $output"
  [ "$before" = "$after" ] || pkfs_fail "$name: the region changed"
  if mountpoint -q "$CHECK_MNT"; then
    fusermount3 -u -z "$CHECK_MNT"
    pkfs_fail "$name: something got mounted on $CHECK_MNT"
  fi
  pkfs_log "$name: ${output%%$'\n'*}"
}

# patch FILE OFFSET BYTE: writes one byte (0-255) at OFFSET.
patch() {
  python3 - "$@" <<'PY'
import sys
path, offset, value = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "r+b") as f:
    f.seek(offset)
    f.write(bytes([value]))
PY
}
# byte_at FILE OFFSET: prints the byte at OFFSET.
byte_at() { od -An -tu1 -j "$2" -N1 "$1" | tr -d ' '; }
# u64_at FILE OFFSET: prints the little-endian u64 at OFFSET.
u64_at() { od -An -tu8 -j "$2" -N8 "$1" | tr -d ' '; }

pkfs_log "missing region"
refuse "missing region" "$WORK/nothing" "nothing: no such region.*mkfs.pkfs" "$WORK/nothing" "$MNT" -f
[ ! -e "$WORK/nothing" ] || pkfs_fail "pkfs created the missing region"
refuse "missing region, background" "$WORK/nothing" "nothing: no such region.*mkfs.pkfs" "$WORK/nothing" "$MNT"
[ ! -e "$WORK/nothing" ] || pkfs_fail "pkfs created the missing region"

pkfs_log "unformatted region"
head -c 32M /dev/zero > "$WORK/zeros"
refuse "unformatted region" "$WORK/zeros" "zeros: .*(no pkfs superblock|not a pkfs).*mkfs.pkfs" "$WORK/zeros" "$MNT" -f

pkfs_log "newer format version"
"$MKFS" -q -s 32M "$WORK/newer"
[ "$(byte_at "$WORK/newer" 8)" = 1 ] || pkfs_fail "format_version is not at offset 8"
patch "$WORK/newer" 8 2
refuse "format version 2" "$WORK/newer" "format version 2 .*(newer|not supported)" "$WORK/newer" "$MNT" -f

pkfs_log "corrupt superblocks"
"$MKFS" -q -s 32M "$WORK/corrupt"
backup=$(u64_at "$WORK/corrupt" $((0xf0)))
[ "$backup" -gt 0 ] || pkfs_fail "no backup superblock offset"
# A flipped label byte: only the checksum can tell.
patch "$WORK/corrupt" $((0x40)) $(( $(byte_at "$WORK/corrupt" $((0x40))) ^ 0xff ))
# The primary alone is damaged: the backup covers for it at open, but the
# daemon still refuses to run on a damaged primary, naming fsck.pkfs.
refuse "corrupt primary superblock" "$WORK/corrupt" "superblock.*fsck.pkfs|fsck.pkfs.*superblock" "$WORK/corrupt" "$MNT" -f
patch "$WORK/corrupt" $((backup + 0x40)) $(( $(byte_at "$WORK/corrupt" $((backup + 0x40))) ^ 0xff ))
refuse "corrupt primary and backup superblocks" "$WORK/corrupt" "superblock.*(checksum|fsck.pkfs)" "$WORK/corrupt" "$MNT" -f

pkfs_log "bad mountpoints"
pkfs_mkfs 32M
: > "$WORK/a_file"
refuse "mountpoint is a file" "$REGION" "a_file is not a directory" "$REGION" "$WORK/a_file" -f
refuse "mountpoint is missing" "$REGION" "no_such_dir: No such file or directory" "$REGION" "$WORK/no_such_dir" -f
refuse "mountpoint is missing, background" "$REGION" "no_such_dir: No such file or directory" "$REGION" "$WORK/no_such_dir"
refuse "no arguments" "$REGION" "region and a mountpoint"
refuse "refused option" "$REGION" "no_default_permissions" "$REGION" "$MNT" -f -o no_default_permissions
refuse "unknown FUSE option" "$REGION" "unknown option.*no_such_option" "$REGION" "$MNT" -f -o rw,no_such_option

pkfs_log "region already mounted"
pkfs_mount
echo busy > "$MNT/file"
mkdir "$WORK/mnt2"
PKFS_MOUNTPOINTS+=("$WORK/mnt2")
CHECK_MNT="$WORK/mnt2"
refuse "second daemon, same region" "$REGION" "in use by pid $PKFS_PID \(pkfs\)" "$REGION" "$WORK/mnt2" -f
refuse "second daemon, same region, read-only" "$REGION" "in use by pid $PKFS_PID" "$REGION" "$WORK/mnt2" -f -o ro
refuse "second daemon, background" "$REGION" "in use by pid $PKFS_PID" "$REGION" "$WORK/mnt2"
[ "$(cat "$MNT/file")" = busy ] || pkfs_fail "the first mount broke"
pkfs_unmount

pkfs_log "PASS"
