#!/usr/bin/env bash
# bench_tools.sh: the benchmark drivers scripts/bench relies on measure what
# they say. pkfs_fs_bench's metadata (with readdir, which must find every
# file), 2-thread, mmap (stamps read back) and fallocate modes run on a pkfs
# mount and leave nothing behind; pkfs_open_bench --make builds a region
# that fsck.pkfs passes and the daemon serves with every file. Rates are
# not checked: speed belongs to scripts/bench.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/mount.sh"

pkfs_setup
FS_BENCH="$PKFS_BIN_DIR/tests/bench/pkfs_fs_bench"
OPEN_BENCH="$PKFS_BIN_DIR/tests/bench/pkfs_open_bench"
FSCK="$PKFS_BIN_DIR/fsck/fsck.pkfs"
for tool in "$FS_BENCH" "$OPEN_BENCH" "$FSCK"; do
  [ -x "$tool" ] || pkfs_skip "$tool is not built"
done

# Every expected workload line, with a positive rate.
expect_workloads() {  # output, workloads...
  local out=$1 workload
  shift
  for workload in "$@"; do
    grep -Eq "^workload=$workload count=[0-9]+ seconds=[0-9.]+ rate=[0-9.]*[1-9][0-9.]* unit=" <<<"$out" ||
      pkfs_fail "no $workload line in: $out"
  done
}

pkfs_mkfs 128M -N 2048
pkfs_mount
out=$("$FS_BENCH" "$MNT" --files 500 --meta-only)
expect_workloads "$out" create stat readdir unlink
out=$("$FS_BENCH" "$MNT" --files 500 --threads 2)
expect_workloads "$out" create stat unlink
out=$("$FS_BENCH" "$MNT" --mmap --mib 8)
expect_workloads "$out" mmap_write mmap_read
out=$("$FS_BENCH" "$MNT" --fallocate 32)
expect_workloads "$out" fallocate_fresh fallocate_reused
left=$(find "$MNT" -mindepth 1 | wc -l)
[ "$left" = 0 ] || pkfs_fail "the benchmarks left $left entries on the mount"
pkfs_unmount

# Bad arguments are refused with the usage, exit 2.
status=0
"$FS_BENCH" "$WORK" --mmap --fallocate 8 2>"$WORK/err" || status=$?
[ "$status" = 2 ] && grep -q usage "$WORK/err" || pkfs_fail "two modes at once: exit $status"

# A made region: consistent, and every file is there.
made="$WORK/made"
"$OPEN_BENCH" --make "$made" --size $((256 << 20)) --files 250 >/dev/null
"$FSCK" -n -f "$made" >/dev/null || pkfs_fail "fsck.pkfs finds problems in a region pkfs_open_bench made"
REGION=$made
pkfs_mount
files=$(find "$MNT" -type f | wc -l)
[ "$files" = 250 ] || pkfs_fail "the made region serves $files files, not 250"
pkfs_unmount
pkfs_log "ok"
