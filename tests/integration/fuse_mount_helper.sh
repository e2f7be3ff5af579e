#!/usr/bin/env bash
# fuse_mount_helper.sh: pkfs started the way mount(8) starts it: mount.fuse3
# runs `pkfs REGION MNT -o OPTIONS` (fstab words mixed in), the daemon goes
# to the background, /proc/mounts shows REGION as fuse.pkfs, and umount(8)
# ends it with the region marked clean. Also: -o ro mounts read-only and
# leaves the region's bytes alone, and SIGTERM unmounts cleanly.
#
# mount(8) itself clears PATH before running helpers, so it only finds an
# installed pkfs; this test calls mount.fuse3 as mount(8) would, with the
# build directory in PATH.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/mount.sh"

pkfs_setup
PATH="$PATH:/sbin:/usr/sbin"
pkfs_need mount.fuse3 lslocks umount
pkfs_mkfs 64M

# lock_holder: the pid holding the region's lock (the detached daemon).
lock_holder() { lslocks --noheadings --raw -o PID,PATH | awk -v path="$REGION" '$2 == path && !found { print $1; found = 1 }'; }
# wait_gone PID: waits up to 10 s for a process that is not our child.
wait_gone() {
  for _ in $(seq 200); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.05
  done
  return 1
}
helper_mount() {  # helper_mount OPTIONS: mount.fuse3 REGION MNT -o OPTIONS -t fuse.pkfs
  local output
  PKFS_MOUNTPOINTS+=("$MNT")
  output=$(PATH="$PKFS_BIN_DIR/fs/fuse:$PATH" mount.fuse3 "$REGION" "$MNT" -o "$1" -t fuse.pkfs 2>&1) ||
    pkfs_fail "mount.fuse3 -o $1 failed: $output"
  [ -z "$output" ] || pkfs_fail "a quiet mount printed: $output"
  mountpoint -q "$MNT" || pkfs_fail "mount.fuse3 returned before the mount was there"
  DAEMON=$(lock_holder)
  [ -n "$DAEMON" ] || pkfs_fail "no process holds the region lock"
  [ "$(cat /proc/"$DAEMON"/comm)" = pkfs ] || pkfs_fail "the lock holder is $(cat /proc/"$DAEMON"/comm)"
}
helper_unmount() {
  umount "$MNT" || pkfs_fail "umount $MNT failed"
  wait_gone "$DAEMON" || pkfs_fail "the daemon did not exit after umount"
  DAEMON=""
}
DAEMON=""
# Not our child: the EXIT trap kills it only while it is still ours to end.
pkfs_on_exit '[ -z "$DAEMON" ] || kill "$DAEMON"'


pkfs_log "mount.fuse3 with fstab options"
helper_mount "rw,nofail,noauto,_netdev,x-systemd.device-timeout=5,defaults,allow_other"
grep -q "^$REGION $MNT fuse.pkfs rw,.*default_permissions,allow_other" /proc/mounts ||
  pkfs_fail "unexpected /proc/mounts line: $(grep " $MNT " /proc/mounts)"
[ "$(ps -o sid= -p "$DAEMON" | tr -d ' ')" = "$DAEMON" ] || pkfs_fail "the daemon did not start its own session"
[ "$(readlink /proc/"$DAEMON"/cwd)" = / ] || pkfs_fail "the daemon kept its working directory"
echo persisted > "$MNT/file"
mkdir "$MNT/dir"
helper_unmount

pkfs_log "the umount left the region clean"
pkfs_mount
grep -q "not cleanly unmounted" "$PKFS_LOG" && pkfs_fail "umount(8) left the region unclean: $(cat "$PKFS_LOG")"
[ "$(cat "$MNT/file")" = persisted ] || pkfs_fail "file lost"

pkfs_log "SIGTERM unmounts cleanly"
kill -TERM "$PKFS_PID"
status=0
wait "$PKFS_PID" || status=$?
[ "$status" -eq 0 ] || pkfs_fail "daemon exited $status on SIGTERM: $(cat "$PKFS_LOG")"
mountpoint -q "$MNT" && pkfs_fail "still mounted after SIGTERM"
grep -q "is clean" "$PKFS_LOG" || pkfs_fail "SIGTERM did not mark the region clean: $(cat "$PKFS_LOG")"

pkfs_log "read-only"
before=$(pkfs_sha "$REGION")
helper_mount "ro"
grep -q "^$REGION $MNT fuse.pkfs ro," /proc/mounts || pkfs_fail "not mounted ro: $(grep " $MNT " /proc/mounts)"
[ "$(cat "$MNT/file")" = persisted ] || pkfs_fail "file unreadable read-only"
pkfs_expect_fail "Read-only file system" touch "$MNT/new"
pkfs_expect_fail "Read-only file system" sh -c "echo x >> '$MNT/file'"
pkfs_expect_fail "Read-only file system" rmdir "$MNT/dir"
helper_unmount
[ "$(pkfs_sha "$REGION")" = "$before" ] || pkfs_fail "a read-only mount changed the region"

pkfs_log "pkfs -o ro in the foreground"
pkfs_mount -o ro
pkfs_expect_fail "Read-only file system" touch "$MNT/new"
pkfs_unmount
[ "$(pkfs_sha "$REGION")" = "$before" ] || pkfs_fail "a read-only mount changed the region"
pkfs_log "PASS"
