#!/usr/bin/env bash
# qemu_guest_ram.sh: a real VMM keeps its guest RAM in a pkfs file. Debian's
# QEMU (7.2: no offset=, so its mapping goes through FUSE mmap) boots
# Debian's kernel with -object memory-backend-file,mem-path=<file on the
# mount>,share=on; the kernel panics for want of a root filesystem and QEMU
# exits (about 5 s of software emulation). The file must then hold guest
# memory (the kernel's "Linux version" banner), through the mount and again
# after an unmount and a remount.
#
# The region is a hugetlbfs file when 2 MiB hugepages can be had, else a
# tmpfs file (said on stdout). Skips when QEMU or the kernel is missing,
# unless CI is set: then it installs qemu-system-x86 and linux-image-amd64.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/mount.sh"

pkfs_setup
pkfs_need grep timeout

kernel_image() { ls /boot/vmlinuz-*[0-9]-amd64 2>/dev/null | sort -V | tail -1; }
if ! command -v qemu-system-x86_64 >/dev/null || [ -z "$(kernel_image)" ]; then
  if [ "${CI:-}" != true ]; then
    pkfs_skip "needs qemu-system-x86 and linux-image-amd64 (apt-get install qemu-system-x86 linux-image-amd64;" \
      "CI=true installs them)"
  fi
  pkfs_log "CI: installing qemu-system-x86 linux-image-amd64"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends qemu-system-x86 linux-image-amd64 >/dev/null
fi
KERNEL=$(kernel_image)

GUEST_MIB=256
REGION_MIB=320
# A hugetlbfs region when the pages can be had; the lock on the sysctl file
# is the one the other tests take, so each restores exactly what it found.
HUGE_DIR="$WORK/hugetlbfs"
HP_SAVED=""
HP_PAGES=$((REGION_MIB / 2))
kind=tmpfs
reason=""
if ! grep -q '^Hugepagesize: *2048 kB' /proc/meminfo || [ ! -w /proc/sys/vm/nr_hugepages ]; then
  reason="no writable 2 MiB hugepage pool"
else
  exec {hp_lock}</proc/sys/vm/nr_hugepages
  if ! flock -w 600 "$hp_lock"; then
    reason="the hugepage lock stayed taken for 10 minutes"
  else
    HP_SAVED=$(cat /proc/sys/vm/nr_hugepages)
    echo $((HP_SAVED + HP_PAGES)) >/proc/sys/vm/nr_hugepages 2>/dev/null || true
    pool=/sys/kernel/mm/hugepages/hugepages-2048kB
    for _ in $(seq 100); do
      (($(cat $pool/free_hugepages) - $(cat $pool/resv_hugepages) >= HP_PAGES)) && break
      sleep 0.1
    done
    mkdir -p "$HUGE_DIR"
    if (($(cat $pool/free_hugepages) - $(cat $pool/resv_hugepages) < HP_PAGES)); then
      reason="could not get $HP_PAGES free 2 MiB hugepages"
    elif ! mount -t hugetlbfs -o pagesize=2M,mode=0700 none "$HUGE_DIR"; then
      reason="mount -t hugetlbfs failed"
    else
      kind=hugetlbfs
    fi
  fi
fi
restore_hugepages() {
  # The daemon must be gone first: its mapping keeps the pages in use.
  if [ -n "$PKFS_PID" ] && kill -0 "$PKFS_PID" 2>/dev/null; then
    fusermount3 -u -z "$MNT" 2>/dev/null
    kill "$PKFS_PID" 2>/dev/null
    wait "$PKFS_PID" 2>/dev/null
  fi
  if mountpoint -q "$HUGE_DIR" 2>/dev/null; then umount "$HUGE_DIR" || umount -l "$HUGE_DIR"; fi
  if [ -n "$HP_SAVED" ]; then
    for _ in $(seq 50); do
      echo "$HP_SAVED" >/proc/sys/vm/nr_hugepages 2>/dev/null
      [ "$(cat /proc/sys/vm/nr_hugepages)" = "$HP_SAVED" ] && break
      sleep 0.1
    done
  fi
}
pkfs_on_exit restore_hugepages
if [ "$kind" = hugetlbfs ]; then
  REGION="$HUGE_DIR/region"
  pkfs_log "region: hugetlbfs file of $REGION_MIB MiB (2 MiB pages)"
else
  pkfs_log "region: tmpfs file of $REGION_MIB MiB (hugetlbfs unavailable: $reason)"
fi
pkfs_mkfs "${REGION_MIB}M"
pkfs_mount

RAM="$MNT/guest-ram"
banner_count() { grep -a -c 'Linux version [0-9]' "$1" || true; }

# No initrd and no disk: the kernel panics at mount root; panic=-1 reboots
# at once and -no-reboot turns that into an exit.
start=$(date +%s.%N)
status=0
timeout 300 qemu-system-x86_64 -accel tcg -machine q35,memory-backend=ram0 -m ${GUEST_MIB}M -smp 1 \
  -object memory-backend-file,id=ram0,mem-path="$RAM",share=on,size=${GUEST_MIB}M \
  -nographic -no-reboot -kernel "$KERNEL" -append "console=ttyS0 panic=-1 loglevel=4" \
  </dev/null >"$WORK/qemu.log" 2>&1 || status=$?
end=$(date +%s.%N)
pkfs_log "QEMU ran $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s, exit $status"
grep -q 'Kernel panic' "$WORK/qemu.log" ||
  pkfs_fail "the guest kernel did not get to its panic: $(tail -5 "$WORK/qemu.log")"
[ "$status" -eq 0 ] || pkfs_fail "qemu exited with $status: $(tail -5 "$WORK/qemu.log")"
[ "$(stat -c %s "$RAM")" = $((GUEST_MIB << 20)) ] || pkfs_fail "guest-ram has size $(stat -c %s "$RAM")"

through_mount=$(banner_count "$RAM")
[ "$through_mount" -gt 0 ] || pkfs_fail "no \"Linux version\" banner in guest RAM read through the mount"
pkfs_log "guest RAM holds the kernel banner ($through_mount copies) read through the mount"

pkfs_unmount
pkfs_mount
after_remount=$(banner_count "$RAM")
[ "$after_remount" -gt 0 ] || pkfs_fail "no \"Linux version\" banner in guest RAM after remounting"
[ "$after_remount" = "$through_mount" ] ||
  pkfs_fail "banner count changed across the remount ($through_mount before, $after_remount after)"
pkfs_log "after remount: $after_remount copies, guest RAM kept in the region"
pkfs_unmount
