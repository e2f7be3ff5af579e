#!/usr/bin/env bash
# client_takeover_hold.sh: holds are on the region, so they move with the
# connection. A VMM-like program maps a guest-RAM file with libpkfs (a hold)
# and keeps writing pattern passes, with the file also open through the
# mount, while the daemon is handed over to a successor (pkfs --takeover)
# and then killed with kill -9 and restarted through the keeper: the hold
# is there after each (pkfsctl ls, through the new daemon's control
# socket), the program never stops, its pkfs_unmap reaches the last daemon,
# and the file read through the mount holds the last pass it wrote.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/client.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib/takeover.sh"

client_setup 50
pkfs_mkfs 96M
pkfs_mount -o keeper
fallocate -l 64M "$MNT/ram"
client_need_holds "$MNT/ram"

state="$WORK/vmm"
mkdir "$state"
"$VMM" run "$MNT/ram" "$state" --kernel-page-kib "$KERNEL_PAGE_KIB" >"$WORK/vmm.out" 2>&1 &
vmm=$!
client_bg "$vmm"
client_wait_pass "$state" 2 "$vmm" || pkfs_fail "the VMM did not get going: $(cat "$WORK/vmm.out")"
has_hold() { "$PKFSCTL" ls -l "$MNT" | grep -E " ram( |$)" | grep -Eq "holds=[1-9]"; }
has_hold || pkfs_fail "no hold: $("$PKFSCTL" ls -l "$MNT")"

pkfs_log "planned hand-over while the VMM writes"
old_pid=$PKFS_PID
takeover_start
wait "$old_pid" || pkfs_fail "the old daemon failed"
has_hold || pkfs_fail "the hold did not move with the hand-over: $("$PKFSCTL" ls -l "$MNT")"
at=$(cat "$state/pass")
client_wait_pass "$state" $((at + 2)) "$vmm" || pkfs_fail "the VMM stopped after the hand-over: $(cat "$WORK/vmm.out")"

pkfs_log "kill -9 and restart through the keeper while the VMM writes"
kill -9 "$PKFS_PID"
wait "$PKFS_PID" 2>/dev/null || true
takeover_start
grep -q "from the keeper" "$PKFS_LOG" || pkfs_fail "not taken from the keeper: $(cat "$PKFS_LOG")"
has_hold || pkfs_fail "the hold did not survive the restart: $("$PKFSCTL" ls -l "$MNT")"
at=$(cat "$state/pass")
client_wait_pass "$state" $((at + 2)) "$vmm" || pkfs_fail "the VMM stopped after the restart: $(cat "$WORK/vmm.out")"

touch "$state/stop"
status=0
wait "$vmm" || status=$?
[ "$status" -eq 0 ] || pkfs_fail "the VMM exited with status $status: $(cat "$WORK/vmm.out")"
last=$(sed -n 's/^last_pass=//p' "$WORK/vmm.out")
"$VMM" check "$MNT/ram" "$last" >/dev/null || pkfs_fail "the file through the mount is not pass $last"
has_hold && pkfs_fail "the hold outlived pkfs_unmap"
pkfs_unmount
"$FSCK" "$REGION" >"$WORK/fsck.out" 2>&1 || pkfs_fail "fsck: $(cat "$WORK/fsck.out")"
pkfs_log "ok ($last passes)"
