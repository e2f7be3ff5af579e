#!/usr/bin/env bash
# mkfs_formats.sh: mkfs.pkfs formats a 256 MiB region on hugetlbfs (with
# hugepages raised for the test and restored after; tmpfs when that cannot be
# had) and on tmpfs (/dev/shm), and its output matches the golden files.
# Also: -n creates nothing, -L and -U show up, a second mkfs refuses without
# -F and succeeds with it, and re-formatting keeps the region's size.
source "$PKFS_SOURCE_DIR/tests/integration/lib/region.sh"

MKFS=$(pkfs_bin mkfs.pkfs) || pkfs_skip "mkfs.pkfs is not built in $PKFS_BIN_DIR"
GOLDEN="$PKFS_SOURCE_DIR/tests/integration/golden"
pkfs_tmpdir
out="$PKFS_TMPDIR/out"
err="$PKFS_TMPDIR/err"

# compare GOLDEN_NAME: the filtered $out against golden/GOLDEN_NAME.
compare() {
  if ! pkfs_filter <"$out" | diff -u "$GOLDEN/$1" -; then
    pkfs_fail "mkfs.pkfs output differs from golden/$1 (diff above: - golden, + actual)"
  fi
}

# check_formats DIR GOLDEN_NAME: the whole sequence on one kind of backing.
check_formats() {
  local dir=$1 golden=$2
  local region="$dir/region"
  echo "== $golden: $region"

  # -n: shows the plan, creates nothing.
  "$MKFS" -n -s 256M -L vm1 "$region" >"$out" 2>"$err" || pkfs_fail "mkfs -n failed: $(cat "$err")"
  [[ ! -e "$region" ]] || pkfs_fail "mkfs -n created $region"
  grep -q '^Dry run: nothing written, nothing created\.$' "$out" || pkfs_fail "mkfs -n does not say it is a dry run"
  grep -q '^Label: *vm1$' "$out" || pkfs_fail "mkfs -n does not show the label"

  # Format; output as the golden file.
  "$MKFS" -s 256M "$region" >"$out" 2>"$err" || pkfs_fail "mkfs -s 256M failed: $(cat "$err")"
  [[ ! -s "$err" ]] || pkfs_fail "mkfs wrote to stderr: $(cat "$err")"
  compare "$golden"
  [[ $(stat -c %s "$region") == 268435456 ]] || pkfs_fail "region is not 256 MiB"

  # -n on a formatted region without -F: refuses as the real run would.
  local before
  before=$(sha256sum <"$region")
  if "$MKFS" -n "$region" >"$out" 2>"$err"; then pkfs_fail "mkfs -n on a formatted region did not refuse"; fi

  # A second mkfs refuses without -F: exit 1, says -F, region untouched.
  local status=0
  "$MKFS" "$region" >"$out" 2>"$err" || status=$?
  [[ $status == 1 ]] || pkfs_fail "second mkfs without -F: exit $status, want 1"
  grep -q -- '-F' "$err" || pkfs_fail "second mkfs refusal does not mention -F: $(cat "$err")"
  grep -q 'already holds a pkfs filesystem' "$err" || pkfs_fail "unclear refusal: $(cat "$err")"
  [[ $(sha256sum <"$region") == "$before" ]] || pkfs_fail "refused mkfs changed the region"

  # -F with -L and -U: succeeds, both show up, size kept (no -s needed).
  local uuid=0b2c8f0e-5d1a-4c3b-9e7f-123456789abc
  "$MKFS" -F -L guest-ram -U "$uuid" "$region" >"$out" 2>"$err" || pkfs_fail "mkfs -F failed: $(cat "$err")"
  grep -q "^UUID: *$uuid\$" "$out" || pkfs_fail "-U $uuid not in the output"
  grep -q '^Label: *guest-ram$' "$out" || pkfs_fail "-L guest-ram not in the output"
  grep -q '^Size: *268435456 bytes (256 MiB)$' "$out" || pkfs_fail "re-mkfs changed the size"
  [[ $(stat -c %s "$region") == 268435456 ]] || pkfs_fail "re-mkfs changed the region file size"
  [[ $(sha256sum <"$region") != "$before" ]] || pkfs_fail "mkfs -F did not write anything"

  # -F with the same -s: accepted; a refused third mkfs names the new label.
  "$MKFS" -F -q -s 256M -L again "$region" >"$out" 2>"$err" || pkfs_fail "mkfs -F -s 256M failed: $(cat "$err")"
  [[ ! -s "$out" ]] || pkfs_fail "mkfs -q printed: $(cat "$out")"
  if "$MKFS" "$region" >"$out" 2>"$err"; then pkfs_fail "third mkfs without -F succeeded"; fi
  grep -q 'label "again"' "$err" || pkfs_fail "refusal does not name the label: $(cat "$err")"
  rm -f "$region"
}

# tmpfs: a file in our private /dev/shm directory.
check_formats "$PKFS_TMPDIR" mkfs_tmpfs.out

# hugetlbfs: 128 pages of 2 MiB for the 256 MiB region.
pkfs_hugetlbfs_setup 128
if [[ "$PKFS_REGION_KIND" == hugetlbfs ]]; then
  check_formats "$PKFS_HUGETLBFS_DIR" mkfs_hugetlbfs.out
else
  check_formats "$PKFS_HUGETLBFS_DIR" mkfs_tmpfs.out
fi
pkfs_hugetlbfs_teardown
echo "PASS"
