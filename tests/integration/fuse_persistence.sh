#!/usr/bin/env bash
# fuse_persistence.sh: a tree built through the mount survives a clean
# unmount and remount, and a kill -9 of the daemon and remount, unchanged
# (content, types, modes, owners, link counts, inode numbers, mtimes, xattrs);
# the mount after kill -9 says the region was not cleanly unmounted and
# reclaims the space of a file that was unlinked but open at the kill.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/mount.sh"

pkfs_setup
pkfs_need python3 setfattr sha256sum
pkfs_mkfs 256M
pkfs_mount

cd "$MNT"
mkdir -p d1/d2/d3 empty_dir
: > size0
head -c 1 /dev/urandom > size1
head -c 4095 /dev/urandom > size4095
head -c 4096 /dev/urandom > size4096
head -c $((1048576 + 3)) /dev/urandom > d1/size1m3
head -c $((5 * 1048576)) /dev/urandom > d1/d2/size5m
# A sparse file: a hole, 4 KiB of data in the middle, a hole to 10 MiB.
truncate -s 10M sparse
head -c 4096 /dev/urandom | dd of=sparse bs=4096 seek=700 conv=notrunc status=none
ln -s size4096 link_relative
ln -s /nowhere/at/all link_dangling
ln -s "$(printf 'x%.0s' $(seq 1000))" link_long
ln size4095 d1/hard_a
ln size4095 d1/d2/d3/hard_b
mkfifo fifo
mknod chardev c 1 3
setfattr -n user.color -v blue size1
setfattr -n user.binary -v 0x00ff7f80 d1/size1m3
setfattr -n user.empty size0
setfattr -n trusted.secret -v s3cr3t d1
setfattr -n user.on_dir -v yes d1/d2
chmod 0600 size1
chmod 4755 size4096
chmod 0444 d1/d2/size5m
chmod 1777 d1/d2/d3
mkdir setgid_dir
chown 0:4321 setgid_dir
chmod 2775 setgid_dir
: > setgid_dir/inherits_group
mkdir setgid_dir/inherits_setgid
chown 1234:5678 size4095
chown -h 2222:3333 link_relative
chown 1000:1000 d1/d2
cd /

# The set-group-ID directory handed down its group (and its bit to subdirs).
[ "$(stat -c %g "$MNT/setgid_dir/inherits_group")" = 4321 ] || pkfs_fail "file in setgid dir did not inherit its group"
[ "$(stat -c %a "$MNT/setgid_dir/inherits_setgid")" = 2755 ] || pkfs_fail "dir in setgid dir did not inherit the bit: $(stat -c %a "$MNT/setgid_dir/inherits_setgid")"

pkfs_manifest "$MNT" > "$WORK/manifest.built"
[ "$(wc -l < "$WORK/manifest.built")" -ge 20 ] || pkfs_fail "manifest is too short"

pkfs_log "clean unmount and remount (single-threaded daemon)"
pkfs_unmount
pkfs_mount -s
grep -q "not cleanly unmounted" "$PKFS_LOG" && pkfs_fail "clean unmount was reported as unclean: $(cat "$PKFS_LOG")"
pkfs_manifest "$MNT" > "$WORK/manifest.remounted"
diff -u "$WORK/manifest.built" "$WORK/manifest.remounted" || pkfs_fail "tree changed across a clean remount"

pkfs_log "workload without sync, then kill -9"
cd "$MNT"
rm size1
mv d1 d1_moved
head -c 300000 /dev/urandom >> size4096
head -c 777 /dev/urandom > d1_moved/new_file
truncate -s 1000 d1_moved/d2/size5m  # mode 0444, but root may write
setfattr -x user.on_dir d1_moved/d2
setfattr -n user.added -v later size0
mkdir -p fresh/a/b/c
for i in $(seq 200); do echo "$i" > "fresh/a/b/c/f$i"; done
rm fresh/a/b/c/f1*
ln d1_moved/new_file fresh/linked
cd /
# An unlinked file still open when the daemon dies is an orphan: the next
# mount must reclaim its space.
free_before_orphan=$(stat -f -c %f "$MNT")
python3 - "$MNT/orphan" "$WORK/orphan.ready" <<'PY' &
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, os.urandom(3 << 20))
os.unlink(sys.argv[1])
open(sys.argv[2], "w").close()
time.sleep(600)
PY
holder=$!
pkfs_on_exit '[ -z "$holder" ] || kill "$holder"'
for _ in $(seq 200); do [ -e "$WORK/orphan.ready" ] && break; sleep 0.05; done
[ -e "$WORK/orphan.ready" ] || pkfs_fail "the orphan holder did not start"
[ "$(stat -f -c %f "$MNT")" -lt "$free_before_orphan" ] || pkfs_fail "the open unlinked file holds no space"
pkfs_manifest "$MNT" > "$WORK/manifest.before_kill"
pkfs_kill9
kill "$holder"
wait "$holder" 2>/dev/null || true
holder=""
pkfs_mount
grep -q "not cleanly unmounted" "$PKFS_LOG" || pkfs_fail "the mount after kill -9 did not log an unclean unmount: $(cat "$PKFS_LOG")"
grep -q "reclaimed 1 orphan" "$PKFS_LOG" || pkfs_fail "the orphan was not reclaimed: $(cat "$PKFS_LOG")"
[ "$(stat -f -c %f "$MNT")" -eq "$free_before_orphan" ] || pkfs_fail "orphan space not returned: $(stat -f -c %f "$MNT") free blocks, $free_before_orphan before"
pkfs_manifest "$MNT" > "$WORK/manifest.after_kill"
diff -u "$WORK/manifest.before_kill" "$WORK/manifest.after_kill" || pkfs_fail "tree changed across kill -9 and remount"

pkfs_unmount
pkfs_log "PASS"
