#!/usr/bin/env bash
# fuse_enospc.sh: filling a 32 MiB region ends in "No space left on device",
# the filesystem stays consistent (usable, remountable, nothing leaked or
# recorded as an error), deleting gives every block back and writing works
# again; running out of inodes behaves the same; names of 255 bytes work and
# 256 bytes give "File name too long".
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/mount.sh"

pkfs_setup
pkfs_need python3 stat dd
pkfs_mkfs 32M
pkfs_mount

free_blocks() { stat -f -c %f "$MNT"; }
free_inodes() { stat -f -c %d "$MNT"; }
all_free() { [ "$(free_blocks)" -eq "$initial_free" ]; }
fill() {  # fill FILE: dd until the region is full; prints the bytes written
  local output
  if output=$(dd if=/dev/zero of="$1" bs=1M 2>&1); then
    pkfs_fail "dd filled an endless device without error: $output"
  fi
  grep -q "No space left on device" <<<"$output" || pkfs_fail "dd failed without ENOSPC: $output"
  stat -c %s "$1"
}

echo keep > "$MNT/keep"
initial_free=$(free_blocks)
initial_inodes=$(free_inodes)

pkfs_log "fill the data area"
first_size=$(fill "$MNT/fill")
pkfs_log "$first_size bytes fit"
[ "$first_size" -gt $((8 * 1048576)) ] || pkfs_fail "only $first_size bytes fit in a 32 MiB region"
[ "$(free_blocks)" -lt 512 ] || pkfs_fail "$(free_blocks) blocks still free after ENOSPC"
# Full but sound: reads, metadata and small writes into allocated space work.
[ "$(cat "$MNT/keep")" = keep ] || pkfs_fail "keep changed"
mkdir "$MNT/dir_when_full"
mv "$MNT/keep" "$MNT/dir_when_full/keep"
dd if=/dev/urandom of="$MNT/fill" bs=4096 count=1 conv=notrunc status=none
pkfs_expect_fail "No space left on device" dd if=/dev/zero of="$MNT/more" bs=1M count=4 status=none
cmp -n $((first_size - 4096)) -i 4096:4096 "$MNT/fill" /dev/zero || pkfs_fail "fill lost its zeros"

pkfs_log "remount while full: every structure must load"
pkfs_manifest "$MNT" > "$WORK/manifest.full"
pkfs_unmount
pkfs_mount
pkfs_manifest "$MNT" > "$WORK/manifest.full.remounted"
diff -u "$WORK/manifest.full" "$WORK/manifest.full.remounted" || pkfs_fail "tree changed across remount while full"

pkfs_log "delete, and the space comes back"
rm -f "$MNT/fill" "$MNT/more"
pkfs_eventually all_free || pkfs_fail "free blocks $(free_blocks) after delete, $initial_free before the fill"
dd if=/dev/urandom of="$MNT/after" bs=1M count=8 status=none || pkfs_fail "writing after delete failed"
rm "$MNT/after"
pkfs_eventually all_free || pkfs_fail "free blocks $(free_blocks) after deleting after, $initial_free before"
second_size=$(fill "$MNT/fill_again")
[ "$second_size" -eq "$first_size" ] || pkfs_fail "second fill got $second_size bytes, the first $first_size (a leak?)"
rm "$MNT/fill_again"
pkfs_eventually all_free || pkfs_fail "free blocks $(free_blocks) after the second delete, $initial_free before"

pkfs_log "run out of inodes"
mkdir "$MNT/many"
created=$(python3 - "$MNT/many" <<'PY'
import errno, os, sys
count = 0
while True:
    try:
        open(os.path.join(sys.argv[1], "f%d" % count), "w").close()
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        print(count)
        break
    count += 1
PY
)
pkfs_log "$created files fit"
[ "$created" -gt 100 ] || pkfs_fail "only $created files fit"
[ "$(free_inodes)" -eq 0 ] || pkfs_fail "$(free_inodes) inodes free after ENOSPC"
pkfs_expect_fail "No space left on device" mkdir "$MNT/one_more_dir"
rm -rf "$MNT/many"
inodes_back() { [ "$(free_inodes)" -eq $((initial_inodes - 1)) ]; }
pkfs_eventually inodes_back || pkfs_fail "free inodes $(free_inodes), expected $((initial_inodes - 1))"
echo works > "$MNT/after_inodes"

pkfs_log "name lengths"
name255=$(printf 'n%.0s' $(seq 255))
echo ok > "$MNT/$name255"
[ "$(cat "$MNT/$name255")" = ok ] || pkfs_fail "255-byte name unreadable"
ln -s target "$MNT/dir_when_full/$name255"
pkfs_expect_fail "File name too long" touch "$MNT/x$name255"
pkfs_expect_fail "File name too long" mkdir "$MNT/x$name255"
pkfs_expect_fail "File name too long" mv "$MNT/$name255" "$MNT/x$name255"
pkfs_expect_fail "File name too long" ln -s target "$MNT/x$name255"
[ -n "$(ls "$MNT" | grep -x "$name255")" ] || pkfs_fail "readdir lost the 255-byte name"

pkfs_manifest "$MNT" > "$WORK/manifest.end"
pkfs_unmount
pkfs_mount
pkfs_manifest "$MNT" > "$WORK/manifest.end.remounted"
diff -u "$WORK/manifest.end" "$WORK/manifest.end.remounted" || pkfs_fail "tree changed across the final remount"
pkfs_unmount
pkfs_log "PASS"
