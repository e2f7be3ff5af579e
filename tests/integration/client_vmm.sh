#!/usr/bin/env bash
# client_vmm.sh: a VMM-like program maps a 256 MiB guest-RAM file with
# libpkfs on a hugetlbfs region, sees 2 MiB kernel pages for the mapping in
# /proc/self/smaps, long-term pins it (io_uring buffer registration, the
# pin VFIO takes) and keeps writing pattern passes while the daemon is
# killed with SIGKILL and started again. The program never faults, its
# pkfs_unmap reaches the new daemon, and the file read through the new
# mount holds the last pass it wrote. (tmpfs fallback: 4 KiB pages.)
# pkfsctl info has no "Free whole pages" line (nor --json key) here: pages
# of 2 MiB are chunks, and only larger ones are kept whole apart.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/client.sh"

client_setup 170
pkfs_mkfs 320M
pkfs_mount
fallocate -l 256M "$MNT/ram"
client_need_holds "$MNT/ram"
"$PKFSCTL" info "$MNT" >"$WORK/info.txt" || pkfs_fail "pkfsctl info failed"
grep -q "^Page size: $((KERNEL_PAGE_KIB * 1024))$" "$WORK/info.txt" || pkfs_fail "info: $(cat "$WORK/info.txt")"
grep -q "^Free whole pages" "$WORK/info.txt" && pkfs_fail "info on $KERNEL_PAGE_KIB KiB pages: $(grep Free "$WORK/info.txt")"
"$PKFSCTL" info --json "$MNT" | grep -q '"free_whole_pages"\|"whole_pages"' &&
  pkfs_fail "info --json on $KERNEL_PAGE_KIB KiB pages: $("$PKFSCTL" info --json "$MNT")"

state="$WORK/vmm"
mkdir "$state"
"$VMM" run "$MNT/ram" "$state" --kernel-page-kib "$KERNEL_PAGE_KIB" >"$WORK/vmm.out" 2>&1 &
vmm=$!
client_bg "$vmm"
client_wait_pass "$state" 2 "$vmm" || pkfs_fail "the VMM did not get going: $(cat "$WORK/vmm.out")"
grep -q "smaps: KernelPageSize $KERNEL_PAGE_KIB kB" "$WORK/vmm.out" || pkfs_fail "no smaps check: $(cat "$WORK/vmm.out")"
grep -q "pinned: 268435456 bytes" "$WORK/vmm.out" || pkfs_fail "not pinned: $(cat "$WORK/vmm.out")"
"$PKFSCTL" ls -l "$MNT" | grep -E "^.* ram( |$)" | grep -Eq "holds=[1-9]" || pkfs_fail "pkfsctl ls does not show the hold: $("$PKFSCTL" ls -l "$MNT")"

pkfs_log "kill -9 the daemon while the VMM writes"
pkfs_kill9
at_kill=$(cat "$state/pass")
client_wait_pass "$state" $((at_kill + 2)) "$vmm" || pkfs_fail "the VMM stopped while the daemon was down: $(cat "$WORK/vmm.out")"

pkfs_log "restart the daemon; the hold is still there"
pkfs_mount
grep -q "was not cleanly unmounted" "$PKFS_LOG" || pkfs_fail "the restart did not notice the kill: $(cat "$PKFS_LOG")"
"$PKFSCTL" ls -l "$MNT" | grep -E " ram( |$)" | grep -Eq "holds=[1-9]" || pkfs_fail "the hold did not survive the restart: $("$PKFSCTL" ls -l "$MNT")"
at_restart=$(cat "$state/pass")
client_wait_pass "$state" $((at_restart + 2)) "$vmm" || pkfs_fail "the VMM stopped after the restart: $(cat "$WORK/vmm.out")"

touch "$state/stop"
status=0
wait "$vmm" || status=$?
[ "$status" -eq 0 ] || pkfs_fail "the VMM exited with status $status: $(cat "$WORK/vmm.out")"
last=$(sed -n 's/^last_pass=//p' "$WORK/vmm.out")
[ -n "$last" ] || pkfs_fail "no last pass: $(cat "$WORK/vmm.out")"
pkfs_log "the VMM wrote $last passes; checking the file through the mount"
"$VMM" check "$MNT/ram" "$last" >/dev/null || pkfs_fail "the file through the mount is not pass $last"
# pkfs_unmap released the hold through the new daemon.
"$PKFSCTL" ls -l "$MNT" | grep -E " ram( |$)" | grep -Eq "holds=[1-9]" && pkfs_fail "the hold outlived pkfs_unmap"

pkfs_log "and after a clean remount"
pkfs_unmount
pkfs_mount
"$VMM" check "$MNT/ram" "$last" >/dev/null || pkfs_fail "after a remount the file is not pass $last"
pkfs_unmount
pkfs_log "ok"
