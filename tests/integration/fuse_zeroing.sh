#!/usr/bin/env bash
# fuse_zeroing.sh: background zeroing. Space freed by a deleted file is
# zeroed while the daemon is idle and recorded known zero (pkfsctl info:
# "Free bytes to zero" drops to 0); on tmpfs by punching holes, so the
# region's memory goes back to the system. A new file on that space reads
# as zeros. With -o background_zeroing=off the freed space stays dirty
# until it is handed out, and is zeroed then. A bad value is refused.
# Runs on hugetlbfs when pages can be had (zeroing by stores), else on
# tmpfs (said on stdout).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/client.sh"

client_setup 40
pkfs_need fallocate cmp stat
pkfs_mkfs 64M

info_value() { "$PKFSCTL" info "$MNT" | sed -n "s/^$1: \([0-9]*\).*/\1/p"; }
nothing_to_zero() { [ "$(info_value 'Free bytes to zero')" = 0 ]; }
dirty_at_least_24m() { [ "$(info_value 'Free bytes to zero')" -ge $((24 << 20)) ]; }
region_kib() { du -k "$REGION" | cut -f1; }

# zeroed_in_background KIND: on the current $REGION, freed space is zeroed
# and recorded, and (on tmpfs) its memory goes back to the system.
zeroed_in_background() {
  local kind=$1 used_kib now_kib
  pkfs_log "background zeroing on (the default), $kind region"
  pkfs_mount
  "$PKFSCTL" info "$MNT" | grep -q '^Background zeroing: on' || pkfs_fail "info: $("$PKFSCTL" info "$MNT")"
  nothing_to_zero || pkfs_fail "a fresh region has dirty space: $("$PKFSCTL" info "$MNT")"
  dd if=/dev/urandom of="$MNT/old" bs=1M count=24 status=none
  used_kib=$(region_kib)
  rm "$MNT/old"
  # The zeroer polls once a second and zeroes 32 MiB per claim.
  for _ in $(seq 100); do nothing_to_zero && break; sleep 0.1; done
  nothing_to_zero || pkfs_fail "freed space not zeroed within 10 s: $("$PKFSCTL" info "$MNT")"
  "$PKFSCTL" info "$MNT" | grep '^Background zeroing'
  if [ "$kind" = tmpfs ]; then
    now_kib=$(region_kib)
    pkfs_log "tmpfs region: $used_kib KiB in memory with the file, $now_kib KiB after zeroing"
    [ "$now_kib" -le $((used_kib - 20 * 1024)) ] || pkfs_fail "zeroing on tmpfs gave no memory back"
  fi
  fallocate -l 24M "$MNT/new"
  cmp -n $((24 << 20)) "$MNT/new" /dev/zero || pkfs_fail "new file on zeroed space is not zero"
  rm "$MNT/new"
  pkfs_unmount
}

zeroed_in_background "$PKFS_REGION_KIND"
if [ "$PKFS_REGION_KIND" != tmpfs ]; then
  # Zeroing by punching holes is tmpfs's own path: run it too.
  hugetlbfs_region=$REGION
  REGION="$WORK/tmpfs-region"
  pkfs_mkfs 64M
  zeroed_in_background tmpfs
  REGION=$hugetlbfs_region
fi

pkfs_log "background zeroing off"
pkfs_mount -o background_zeroing=off
"$PKFSCTL" info "$MNT" | grep -q '^Background zeroing: off' || pkfs_fail "info: $("$PKFSCTL" info "$MNT")"
dd if=/dev/urandom of="$MNT/old" bs=1M count=24 status=none
rm "$MNT/old"
pkfs_eventually dirty_at_least_24m || pkfs_fail "freed space not counted dirty: $("$PKFSCTL" info "$MNT")"
sleep 2
dirty_at_least_24m || pkfs_fail "zeroed although off: $("$PKFSCTL" info "$MNT")"
fallocate -l 24M "$MNT/new"
cmp -n $((24 << 20)) "$MNT/new" /dev/zero || pkfs_fail "new file on dirty space is not zero"
pkfs_unmount

pkfs_log "a bad value is refused"
if "$PKFS" "$REGION" "$MNT" -f -o background_zeroing=maybe >"$WORK/bad.log" 2>&1; then
  pkfs_fail "background_zeroing=maybe was accepted"
fi
grep -q "background_zeroing= takes on or off" "$WORK/bad.log" || pkfs_fail "message: $(cat "$WORK/bad.log")"
mountpoint -q "$MNT" && pkfs_fail "mounted with a bad option"
pkfs_log "PASS"
