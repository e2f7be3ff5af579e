#!/usr/bin/env bash
# torture.sh: the quick mode of the kill -9 torture test. First shows that
# the checker fails when it should (a byte appended behind the workload's
# back, a file removed, an xattr changed), then runs scripts/torture for 220
# cycles of workload + kill -9 of the daemon at a random moment + fsck.pkfs
# -n -f (must exit 0) + remount + verification that every operation that
# returned before the kill is there. Prints the seed; rerun one with
# `scripts/torture --iterations 220 --seed S`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/mount.sh"

pkfs_setup
pkfs_need setfattr
WORKLOAD="$PKFS_BIN_DIR/tests/pkfs_torture_workload"
[ -x "$WORKLOAD" ] || pkfs_fail "no workload at $WORKLOAD"
SOURCE_DIR=${PKFS_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}

pkfs_log "the checker catches changes it was not told about"
pkfs_mkfs 64M
pkfs_mount
STATE="$WORK/state"
mkdir "$STATE"
"$WORKLOAD" run "$MNT" "$STATE" --seed 1 --ops 400 >/dev/null || pkfs_fail "workload failed without a kill"
"$WORKLOAD" verify "$MNT" "$STATE" >"$WORK/verify.out" || pkfs_fail "clean verify failed: $(cat "$WORK/verify.out")"
grep -q "failures=0 fsynced_failures=0 bytes_lost=0" "$WORK/verify.out" || pkfs_fail "unexpected: $(cat "$WORK/verify.out")"

# expect_caught LABEL: the checker must now report a mismatch (exit 1).
expect_caught() {
  local status=0
  "$WORKLOAD" verify "$MNT" "$STATE" >"$WORK/verify.out" 2>&1 || status=$?
  [ "$status" -eq 1 ] || pkfs_fail "$1 went unnoticed (status $status): $(cat "$WORK/verify.out")"
}
file=$(find "$MNT/w0" -type f -size +0 | head -n 1)
[ -n "$file" ] || pkfs_fail "the workload left no non-empty file in w0"
cp "$file" "$WORK/saved"
printf 'x' >>"$file"
expect_caught "an appended byte"
cp "$WORK/saved" "$file"
"$WORKLOAD" verify "$MNT" "$STATE" >/dev/null || pkfs_fail "restoring the file did not satisfy the checker"
printf 'y' | dd of="$file" bs=1 seek=0 conv=notrunc status=none
expect_caught "a changed byte"
grep -Eq "bytes_lost=[1-9]" "$WORK/verify.out" || pkfs_fail "a changed byte counted no lost bytes: $(cat "$WORK/verify.out")"
cp "$WORK/saved" "$file"
setfattr -n user.z -v intruder "$file"
expect_caught "a new xattr"
setfattr -x user.z "$file"
other=$(find "$MNT/w1" -type f | head -n 1)
rm "$other"
expect_caught "a removed file"
pkfs_unmount

pkfs_log "220 cycles of kill -9"
# On hugetlbfs when 64 hugepages can be had (the count is restored at
# exit), else on tmpfs; scripts/torture says which.
"$SOURCE_DIR/scripts/torture" --iterations 220 --quiet --size 128M --hugetlbfs || pkfs_fail "torture failed"
