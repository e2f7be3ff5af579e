#!/usr/bin/env bash
# fsck_check.sh: fsck.pkfs finds a clean region clean, reports damage with
# exit 4 and a message naming the structure, and follows e2fsck's exit codes
# for errors (8) and usage (16); -n never changes the region; -y repairs
# (exit 1) and a second check exits 0. fsck_repair.sh covers repair fully.
source "$PKFS_SOURCE_DIR/tests/integration/lib/region.sh"

MKFS=$(pkfs_bin mkfs.pkfs) || pkfs_skip "mkfs.pkfs is not built in $PKFS_BIN_DIR"
FSCK=$(pkfs_bin fsck.pkfs) || pkfs_skip "fsck.pkfs is not built in $PKFS_BIN_DIR"
pkfs_tmpdir
T=$PKFS_TMPDIR
R=$T/region

expect_exit() {  # WANT DESCRIPTION -- ARGS...
  local want=$1 what=$2 status=0
  shift 3
  "$FSCK" "$@" >"$T/out" 2>"$T/err" </dev/null || status=$?
  [[ $status == "$want" ]] || pkfs_fail "$what: exit $status, want $want (stdout: $(cat "$T/out"); stderr: $(cat "$T/err"))"
}

"$MKFS" -q -s 32M "$R" || pkfs_fail "mkfs failed"
sum=$(sha256sum <"$R")

expect_exit 0 "fresh region, skipped as clean" -- -n "$R"
grep -q "clean" "$T/out" || pkfs_fail "a clean region is not reported clean: $(cat "$T/out")"
expect_exit 0 "fresh region, forced" -- -n -f -v "$R"
grep -q "no problems found" "$T/out" || pkfs_fail "forced check did not say no problems: $(cat "$T/out")"
[[ $(sha256sum <"$R") == "$sum" ]] || pkfs_fail "fsck -n changed the region"
# -C FD: progress lines "pass done total" on the descriptor, every pass.
"$FSCK" -n -f -C 3 "$R" >"$T/out" 2>"$T/err" 3>"$T/progress" || pkfs_fail "fsck -C 3 failed: $(cat "$T/err")"
for pass in 1 2 3 4 5 6; do
  grep -Eq "^$pass [0-9]+ [0-9]+\$" "$T/progress" || pkfs_fail "no progress line for pass $pass: $(cat "$T/progress")"
done
grep -q $'\r' "$T/out" && pkfs_fail "a progress bar was drawn on a stdout that is not a terminal"

# Damage the backup superblock (the last 4 KiB block of the region).
size=$(stat -c %s "$R")
printf '\xff' | dd of="$R" bs=1 seek=$((size - 4096 + 40)) conv=notrunc status=none
damaged=$(sha256sum <"$R")
expect_exit 4 "flipped byte in the backup superblock" -- -n -f "$R"
grep -qi "backup" "$T/out" || pkfs_fail "the report does not name the backup superblock: $(cat "$T/out")"
[[ $(sha256sum <"$R") == "$damaged" ]] || pkfs_fail "fsck -n changed a damaged region"

expect_exit 8 "missing region" -- -n "$T/missing"
[[ -s $T/err ]] || pkfs_fail "no message for a missing region"
expect_exit 16 "unknown option" -- --frobnicate "$R"
expect_exit 16 "-n with -y" -- -n -y "$R"
expect_exit 16 "-p with -y" -- -p -y "$R"
expect_exit 16 "-C without a descriptor" -- -C "$R"
[[ $(sha256sum <"$R") == "$damaged" ]] || pkfs_fail "a usage error changed the region"
expect_exit 1 "repair of the backup superblock" -- -y "$R"
expect_exit 0 "checked again after the repair" -- -n -f "$R"
echo "fsck_check: all cases passed"
