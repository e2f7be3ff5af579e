#!/usr/bin/env bash
# mkfs_bad_input.sh: every bad invocation of mkfs.pkfs exits 1 with a clear
# message on stderr, and leaves an existing region byte for byte as it was
# (sha256 before and after) or creates no file.
source "$PKFS_SOURCE_DIR/tests/integration/lib/region.sh"

MKFS=$(pkfs_bin mkfs.pkfs) || pkfs_skip "mkfs.pkfs is not built in $PKFS_BIN_DIR"
pkfs_tmpdir
T=$PKFS_TMPDIR
out="$T/out"
err="$T/err"
cases=0

# A formatted region to keep unchanged, and one holding no filesystem.
"$MKFS" -q -s 32M -L keep "$T/region" || pkfs_fail "cannot format the reference region"
region_sum=$(sha256sum <"$T/region")
truncate -s 32M "$T/blank"
blank_sum=$(sha256sum <"$T/blank")

# expect_fail DESCRIPTION PHRASE CHECK -- MKFS_ARGS...
#   PHRASE: a fixed string stderr must contain (case-sensitive).
#   CHECK: "unchanged" (both existing regions keep their sha256) or
#          "absent:PATH" (PATH must not exist afterwards).
expect_fail() {
  local what=$1 phrase=$2 check=$3 status=0
  shift 4
  cases=$((cases + 1))
  "$MKFS" "$@" >"$out" 2>"$err" </dev/null || status=$?
  [[ $status == 1 ]] || pkfs_fail "$what: exit $status, want 1 (mkfs.pkfs $*; stderr: $(cat "$err"))"
  [[ -s "$err" ]] || pkfs_fail "$what: nothing on stderr"
  grep -qF -- "$phrase" "$err" || pkfs_fail "$what: stderr lacks \"$phrase\": $(cat "$err")"
  [[ ! -s "$out" ]] || pkfs_fail "$what: printed to stdout: $(cat "$out")"
  case $check in
    unchanged)
      [[ $(sha256sum <"$T/region") == "$region_sum" ]] || pkfs_fail "$what: changed the formatted region"
      [[ $(sha256sum <"$T/blank") == "$blank_sum" ]] || pkfs_fail "$what: changed the blank region"
      ;;
    absent:*)
      [[ ! -e "${check#absent:}" ]] || pkfs_fail "$what: created ${check#absent:}"
      ;;
    *) pkfs_fail "expect_fail: bad check $check" ;;
  esac
  echo "ok: $what: $(head -n1 "$err")"
}

new="$T/new"
expect_fail "missing region without -s" "give -s SIZE" "absent:$new" -- "$new"
expect_fail "-s not a number" 'invalid size "lots"' "absent:$new" -- -s lots "$new"
expect_fail "-s with a bad suffix" 'invalid size "64Q"' "absent:$new" -- -s 64Q "$new"
expect_fail "-s 0" 'invalid size "0"' "absent:$new" -- -s 0 "$new"
expect_fail "-s 10M (too small)" "at least 16 MiB" "absent:$new" -- -s 10M "$new"
expect_fail "-s 10M dry run" "at least 16 MiB" "absent:$new" -- -n -s 10M "$new"
expect_fail "-s 32T (too large)" "at most 16 TiB" "absent:$new" -- -s 32T "$new"
expect_fail "-s mismatching an existing region" "does not match" unchanged -- -F -s 64M "$T/region"
expect_fail "bad UUID" 'invalid UUID "not-a-uuid"' unchanged -- -F -U not-a-uuid "$T/region"
expect_fail "UUID one digit short" "invalid UUID" unchanged -- -F -U 0b2c8f0e-5d1a-4c3b-9e7f-123456789ab "$T/region"
expect_fail "label of 64 bytes" "longer than 63 bytes" unchanged -- -F -L "$(printf 'L%.0s' {1..64})" "$T/region"
expect_fail "-N 0" 'invalid inode count "0"' unchanged -- -F -N 0 "$T/region"
expect_fail "-N negative" 'invalid inode count "-5"' unchanged -- -F -N -5 "$T/region"
expect_fail "-N too many for the region" "leaves no room for data" unchanged -- -F -N 4000000 "$T/region"
expect_fail "-N too many, new region" "leaves no room for data" "absent:$new" -- -N 4000000 -s 32M "$new"
expect_fail "-N beyond the format" "invalid inode count" unchanged -- -F -N 4294967295 "$T/blank"
expect_fail "unknown option" "--frobnicate" unchanged -- --frobnicate "$T/region"
expect_fail "no REGION at all" "REGION is required" "absent:$new" --
expect_fail "a directory as REGION" "is a directory" unchanged -- "$T"
expect_fail "a directory as REGION with -s" "is a directory" unchanged -- -s 32M "$T"
expect_fail "region in a missing directory" "does not exist" "absent:$T/nodir" -- -s 32M "$T/nodir/r"
expect_fail "existing pkfs region without -F" "use -F" unchanged -- "$T/region"
expect_fail "existing pkfs region without -F, dry run" "use -F" unchanged -- -n "$T/region"
expect_fail "-J not a size" 'invalid journal size "bad"' unchanged -- -F -J bad "$T/region"
expect_fail "-J not a multiple of 4 KiB" "journal size must be" unchanged -- -F -J 600000 "$T/region"
expect_fail "-J too small" "journal size must be" unchanged -- -F -J 64K "$T/region"
expect_fail "-J too large" "journal size must be" unchanged -- -F -J 1G "$T/blank"

# A page-size mismatch: on hugetlbfs (2 MiB pages) 17M; on a tmpfs fallback
# (4 KiB pages) 16M + 1 byte. A few pages: nothing is ever mapped.
pkfs_hugetlbfs_setup 2
if [[ "$PKFS_REGION_KIND" == hugetlbfs ]]; then
  odd=17M
else
  odd=$((16 * 1024 * 1024 + 1))
fi
expect_fail "-s $odd, not a multiple of the page size" "not a multiple of the page size" \
  "absent:$PKFS_HUGETLBFS_DIR/r" -- -s "$odd" "$PKFS_HUGETLBFS_DIR/r"
expect_fail "-s $odd, dry run" "not a multiple of the page size" \
  "absent:$PKFS_HUGETLBFS_DIR/r" -- -n -s "$odd" "$PKFS_HUGETLBFS_DIR/r"
pkfs_hugetlbfs_teardown

# A file on a filesystem that is not memory: /var/tmp, unless it is tmpfs.
if [[ -d /var/tmp && -w /var/tmp && $(stat -f -c %T /var/tmp) != tmpfs ]]; then
  disk=$(mktemp -d /var/tmp/pkfs-test.XXXXXXXX)
  pkfs_on_exit "rm -rf -- '$disk'"
  expect_fail "new region on $(stat -f -c %T /var/tmp)" "cannot create a region" "absent:$disk/r" -- -s 32M "$disk/r"
  truncate -s 32M "$disk/existing"
  disk_sum=$(sha256sum <"$disk/existing")
  expect_fail "existing file on $(stat -f -c %T /var/tmp)" "whose pages do not outlive" unchanged -- -F "$disk/existing"
  [[ $(sha256sum <"$disk/existing") == "$disk_sum" ]] || pkfs_fail "mkfs changed $disk/existing"
  rm -rf -- "$disk"
else
  echo "note: /var/tmp is tmpfs or missing here; the non-tmpfs file case is skipped"
fi

# A region locked by another process (a POSIX lock, as pkfs takes it).
python3 -c '
import fcntl, sys, time
f = open(sys.argv[1], "r+b")
fcntl.lockf(f, fcntl.LOCK_EX)
open(sys.argv[2], "w").close()
time.sleep(600)
' "$T/region" "$T/locked" &
holder=$!
pkfs_on_exit "kill $holder 2>/dev/null; wait $holder 2>/dev/null"
for _ in $(seq 1 100); do
  [[ -e "$T/locked" ]] && break
  kill -0 "$holder" 2>/dev/null || pkfs_fail "the lock holder died"
  sleep 0.05
done
[[ -e "$T/locked" ]] || pkfs_fail "the lock holder did not take its lock"
expect_fail "region locked by another process" "in use by pid $holder" unchanged -- -F "$T/region"
expect_fail "region locked by another process, dry run" "in use by pid $holder" unchanged -- -n -F "$T/region"
kill "$holder"
wait "$holder" 2>/dev/null || true

# The good invocation still works on the untouched region, so nothing above
# passed merely because mkfs cannot write here.
"$MKFS" -q -F "$T/region" || pkfs_fail "mkfs -F on the reference region failed"
echo "PASS: $cases bad inputs refused"
