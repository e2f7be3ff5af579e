#!/usr/bin/env bash
# client_1g_pages.sh: guest RAM on 1 GiB pages end to end. Two 1 GiB
# hugepages are reserved (and the count put back), a pagesize=1G hugetlbfs
# holds a 2 GiB region, mkfs.pkfs gives it the large-page layout (1 whole
# page left for guest RAM, said in its summary), and a 1 GiB file
# fallocated on the mount gets that page in one extent at region offset
# 1 GiB: pkfsctl map --qemu prints offset=1073741824 and align=1G, and the
# VMM-like program maps it with libpkfs, sees KernelPageSize 1048576 kB in
# /proc/self/smaps, pins it and keeps writing across a kill -9 of the
# daemon; the file read through the new mount holds its last pass. Files
# smaller than a page stay in the first page; mapping one says it would cost
# a whole page. When QEMU 10 (offset= needs 8.1) is installed, it is started
# with the printed -object for a moment to show it accepts the arguments.
#
# Skips (exit 77) when the kernel offers no 1 GiB pages or gives fewer than
# two.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/client.sh"

pkfs_setup
for tool in "$VMM" "$PKFSCTL"; do
  [ -x "$tool" ] || pkfs_fail "$tool is not built"
done
pkfs_on_exit _client_stop_all

POOL=/sys/kernel/mm/hugepages/hugepages-1048576kB
NEED=2
[ -d "$POOL" ] ||
  pkfs_skip "the kernel offers no 1 GiB hugepages ($POOL is missing: a CPU without pdpe1gb, e.g. a" \
    "QEMU guest without -cpu max or host, or a kernel without gigantic pages)"
[ -w "$POOL/nr_hugepages" ] || pkfs_skip "$POOL/nr_hugepages is not writable"
# Tests that want 1 GiB pages take turns on this lock and each restores
# exactly the count it found.
exec {gig_lock}<"$POOL/nr_hugepages"
flock -w 600 "$gig_lock" || pkfs_skip "another test held the 1 GiB hugepage lock for 10 minutes"
GIG_SAVED=$(cat "$POOL/nr_hugepages")
HUGE_DIR="$WORK/huge1g"
mkdir "$HUGE_DIR"
restore_gig_pages() {
  _client_stop_all
  if mountpoint -q "$HUGE_DIR" 2>/dev/null; then umount "$HUGE_DIR" || umount -l "$HUGE_DIR"; fi
  # Pages freed by the unmount return to the pool asynchronously.
  for _ in $(seq 50); do
    echo "$GIG_SAVED" >"$POOL/nr_hugepages" 2>/dev/null
    [ "$(cat "$POOL/nr_hugepages")" = "$GIG_SAVED" ] && break
    sleep 0.1
  done
}
pkfs_on_exit restore_gig_pages
echo $((GIG_SAVED + NEED)) >"$POOL/nr_hugepages" 2>/dev/null || true
free=0
for _ in $(seq 50); do
  free=$(($(cat "$POOL/free_hugepages") - $(cat "$POOL/resv_hugepages")))
  ((free >= NEED)) && break
  sleep 0.1
done
((free >= NEED)) ||
  pkfs_skip "the kernel gave $free free 1 GiB hugepages, $NEED are needed (memory too fragmented?)"
mount -t hugetlbfs -o pagesize=1G,mode=0700 none "$HUGE_DIR" || pkfs_fail "mount -t hugetlbfs -o pagesize=1G failed"
REGION="$HUGE_DIR/region"
pkfs_log "region: 2 GiB on 1 GiB hugetlbfs pages ($free free)"

"$MKFS" -s 2G "$REGION" >"$WORK/mkfs.out" || pkfs_fail "mkfs.pkfs -s 2G failed"
grep -q '^Page size: *1 GiB$' "$WORK/mkfs.out" || pkfs_fail "mkfs: $(cat "$WORK/mkfs.out")"
grep -q '^Guest RAM: *1 whole pages of 1 GiB (1 GiB), from offset 1 GiB$' "$WORK/mkfs.out" ||
  pkfs_fail "mkfs does not say one whole page is left for guest RAM: $(cat "$WORK/mkfs.out")"
pkfs_log "$(grep -E '^(Guest RAM|Reserved pages):' "$WORK/mkfs.out" | tr -s ' ' | paste -sd';')"
pkfs_mount

# Small files first: they must not take the guest page.
fallocate -l 512M "$MNT/small1"
fallocate -l 100M "$MNT/small2"
printf 'hello\n' >"$MNT/s"
fallocate -l 1G "$MNT/ram"

qemu_args=$("$PKFSCTL" map --qemu "$MNT/ram" 2>"$WORK/map.err") || pkfs_fail "pkfsctl map: $(cat "$WORK/map.err")"
pkfs_log "pkfsctl map --qemu: $qemu_args"
[[ "$qemu_args" == "-object memory-backend-file,id=ram0,mem-path=$REGION,offset=1073741824,size=1073741824,align=1G,share=on" ]] ||
  pkfs_fail "unexpected QEMU arguments: $qemu_args"

# A file smaller than a page cannot be mapped: the only whole page is taken.
if out=$("$VMM" map "$MNT/small2" 2>&1); then pkfs_fail "small2 mapped on a full region: $out"; fi
grep -q "smaller than a page costs a whole page" <<<"$out" || pkfs_fail "unclear refusal: $out"
pkfs_log "mapping small2 refused: ${out#error errno=28 }"

state="$WORK/vmm"
mkdir "$state"
"$VMM" run "$MNT/ram" "$state" --kernel-page-kib 1048576 >"$WORK/vmm.out" 2>&1 &
vmm=$!
client_bg "$vmm"
client_wait_pass "$state" 1 "$vmm" || pkfs_fail "the VMM did not get going: $(cat "$WORK/vmm.out")"
grep -q "smaps: KernelPageSize 1048576 kB" "$WORK/vmm.out" || pkfs_fail "no 1 GiB kernel pages: $(cat "$WORK/vmm.out")"
pkfs_log "$(grep smaps: "$WORK/vmm.out")"

pkfs_log "kill -9 the daemon while the VMM writes"
pkfs_kill9
at_kill=$(cat "$state/pass")
client_wait_pass "$state" $((at_kill + 1)) "$vmm" || pkfs_fail "the VMM stopped while the daemon was down: $(cat "$WORK/vmm.out")"
pkfs_mount
"$PKFSCTL" ls -l "$MNT" | grep -E " ram( |$)" | grep -Eq "holds=[1-9]" || pkfs_fail "the hold did not survive the restart: $("$PKFSCTL" ls -l "$MNT")"
at_restart=$(cat "$state/pass")
client_wait_pass "$state" $((at_restart + 1)) "$vmm" || pkfs_fail "the VMM stopped after the restart: $(cat "$WORK/vmm.out")"
touch "$state/stop"
status=0
wait "$vmm" || status=$?
[ "$status" -eq 0 ] || pkfs_fail "the VMM exited with status $status: $(cat "$WORK/vmm.out")"
last=$(sed -n 's/^last_pass=//p' "$WORK/vmm.out")
"$VMM" check "$MNT/ram" "$last" >/dev/null || pkfs_fail "the file through the mount is not pass $last"
pkfs_log "the VMM wrote $last passes through 1 GiB pages; the mount reads them back"

# QEMU 10 takes the printed arguments (a second of it: no guest is booted).
if command -v qemu-system-x86_64 >/dev/null &&
  qemu-system-x86_64 --version | grep -Eq 'version (8\.[1-9]|9\.|1[0-9]\.)'; then
  # shellcheck disable=SC2086
  timeout 3 qemu-system-x86_64 -accel tcg -machine q35,memory-backend=ram0 -m 1G -smp 1 $qemu_args \
    -nographic -nodefaults -S </dev/null >"$WORK/qemu.log" 2>&1 && status=0 || status=$?
  # -S waits for a monitor that never comes: timeout's 124 means it started.
  [ "$status" -eq 124 ] || pkfs_fail "QEMU refused the arguments (exit $status): $(cat "$WORK/qemu.log")"
  pkfs_log "$(qemu-system-x86_64 --version | head -1) accepted the arguments"
else
  pkfs_log "QEMU 8.1 or later is not installed: not started"
fi
pkfs_unmount
"$PKFS_BIN_DIR/fsck/fsck.pkfs" -n "$REGION" >"$WORK/fsck.out" 2>&1 || pkfs_fail "fsck: $(cat "$WORK/fsck.out")"
pkfs_log "ok"
