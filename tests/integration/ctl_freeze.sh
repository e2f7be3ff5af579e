#!/usr/bin/env bash
# ctl_freeze.sh: pkfsctl freeze and verify on a real region and mount.
# freeze refuses a mounted region and names the daemon; records survive a
# remount and are invisible (and unsettable) through the mount, and leave
# the tree as it was (a manifest compares every attribute); verify passes,
# reports a file written since as CHANGED and a new one as MISSING-RECORD
# (exit 0), and a bit flipped in the region under a file as CORRUPT naming
# that file (exit 1). A guest-RAM file above 8 MiB is frozen at sampled
# pages (verify --full then exits 1: SAMPLED-ONLY), and whole with
# freeze --full, after which verify --full names a flipped byte in it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/mount.sh"

pkfs_setup
pkfs_need python3 getfattr setfattr
CTL="$PKFS_BIN_DIR/fs/ctl/pkfsctl"
[ -x "$CTL" ] || pkfs_fail "no pkfsctl at $CTL"
pkfs_mkfs 128M
pkfs_mount

mkdir -p "$MNT/vm" "$MNT/state"
# A guest-RAM file whose first block is a marker we can find in the region.
python3 - "$MNT/vm/ram" <<'PY'
import os, sys
block = b"PKFS-FREEZE-TEST-MARKER" + bytes(4096 - 23)
data = block + os.urandom(6 * 1048576 + 4096 - len(block))
open(sys.argv[1], "wb").write(data)
PY
head -c 10000 /dev/urandom >"$MNT/state/iommu"
: >"$MNT/state/empty"
setfattr -n user.kind -v vfio "$MNT/state/iommu"
chmod 0600 "$MNT/vm/ram"

pkfs_expect_fail "is mounted by pid $PKFS_PID \(pkfs\); unmount it first" "$CTL" freeze "$REGION"
pkfs_manifest "$MNT" >"$WORK/before"
pkfs_unmount

"$CTL" freeze "$REGION" >"$WORK/freeze.out" || pkfs_fail "freeze failed: $(cat "$WORK/freeze.out")"
grep -q '^froze 3 files (0 by sampled pages), .*flushed and marked clean; survives kexec: no' "$WORK/freeze.out" ||
  pkfs_fail "unexpected freeze summary: $(cat "$WORK/freeze.out")"
grep -q '^FROZEN /vm/ram (6295552 bytes, xxh3 [0-9a-f]\{16\})$' "$WORK/freeze.out" ||
  pkfs_fail "no FROZEN line for /vm/ram: $(cat "$WORK/freeze.out")"
"$CTL" verify "$REGION" >"$WORK/verify.out" || pkfs_fail "verify after freeze failed: $(cat "$WORK/verify.out")"
[ "$(grep -c '^OK ' "$WORK/verify.out")" = 3 ] || pkfs_fail "verify: $(cat "$WORK/verify.out")"

# The records change nothing a user sees, and cannot be touched.
pkfs_mount
pkfs_manifest "$MNT" >"$WORK/after"
diff -u "$WORK/before" "$WORK/after" || pkfs_fail "freeze changed the tree as seen through the mount"
getfattr -d -m - "$MNT/vm/ram" 2>/dev/null | grep -q pkfs && pkfs_fail "the freeze record is listed"
pkfs_expect_fail "No such attribute" getfattr -n pkfs.freeze "$MNT/vm/ram"
pkfs_expect_fail "Operation not permitted" setfattr -n pkfs.freeze -v forged "$MNT/vm/ram"
pkfs_expect_fail "No such attribute" setfattr -x pkfs.freeze "$MNT/vm/ram"

# verify while mounted warns; a changed file and a new file are not errors.
echo more >>"$MNT/state/iommu"
echo new >"$MNT/state/new"
pkfs_unmount
"$CTL" verify "$REGION" >"$WORK/verify.out" || pkfs_fail "verify failed on changes: $(cat "$WORK/verify.out")"
grep -q '^CHANGED /state/iommu: size 10000 at freeze, 10005 now$' "$WORK/verify.out" &&
  grep -q '^MISSING-RECORD /state/new: not frozen$' "$WORK/verify.out" &&
  grep -q '^OK /vm/ram ' "$WORK/verify.out" || pkfs_fail "verify after changes: $(cat "$WORK/verify.out")"

# A bit flipped in the region under /vm/ram: CORRUPT, naming it, exit 1.
python3 - "$REGION" <<'PY'
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
m = mmap.mmap(fd, os.fstat(fd).st_size)
at = m.find(b"PKFS-FREEZE-TEST-MARKER")
assert at >= 0 and at % 4096 == 0, "marker not found in the region"
m[at + 5000] ^= 0x10
m.close()
PY
status=0
"$CTL" verify -q "$REGION" >"$WORK/verify.out" || status=$?
[ "$status" = 1 ] || pkfs_fail "verify exited $status on a corrupt file: $(cat "$WORK/verify.out")"
grep -q '^CORRUPT /vm/ram: content differs: xxh3 ' "$WORK/verify.out" ||
  pkfs_fail "verify did not name /vm/ram: $(cat "$WORK/verify.out")"
grep -q ' 1 corrupt, ' "$WORK/verify.out" || pkfs_fail "verify summary: $(cat "$WORK/verify.out")"

# Guest RAM above 8 MiB: sampled by default, whole with --full.
pkfs_mount
python3 - "$MNT/vm/big" <<'PY'
import os, sys
block = b"PKFS-FREEZE-BIG-MARKER" + bytes(4096 - 22)
open(sys.argv[1], "wb").write(block + os.urandom(24 * 1048576 - 4096))
PY
pkfs_unmount
"$CTL" freeze "$REGION" >"$WORK/freeze.out" || pkfs_fail "freeze with a big file: $(cat "$WORK/freeze.out")"
grep -q '^FROZEN /vm/big (25165824 bytes, sampled pages, xxh3 [0-9a-f]\{16\})$' "$WORK/freeze.out" &&
  grep -q '^froze 5 files (1 by sampled pages), hashed ' "$WORK/freeze.out" ||
  pkfs_fail "freeze did not sample /vm/big: $(cat "$WORK/freeze.out")"
"$CTL" verify "$REGION" >"$WORK/verify.out" ||
  pkfs_fail "quick verify: $(cat "$WORK/verify.out")"
grep -q '^OK /vm/big (25165824 bytes, sampled pages)$' "$WORK/verify.out" || pkfs_fail "verify: $(cat "$WORK/verify.out")"
status=0
"$CTL" verify --full -q "$REGION" >"$WORK/verify.out" || status=$?
[ "$status" = 1 ] && grep -q '^SAMPLED-ONLY /vm/big: sampled pages match' "$WORK/verify.out" ||
  pkfs_fail "verify --full after a sampled freeze exited $status: $(cat "$WORK/verify.out")"
"$CTL" freeze --full -q "$REGION" >"$WORK/freeze.out" || pkfs_fail "freeze --full: $(cat "$WORK/freeze.out")"
"$CTL" verify --full -q "$REGION" >"$WORK/verify.out" || pkfs_fail "verify --full: $(cat "$WORK/verify.out")"
grep -q ' 5 ok, 0 corrupt' "$WORK/verify.out" || pkfs_fail "verify --full summary: $(cat "$WORK/verify.out")"
# One flipped byte in the middle of /vm/big: verify --full names it.
python3 - "$REGION" <<'PY'
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
m = mmap.mmap(fd, os.fstat(fd).st_size)
at = m.find(b"PKFS-FREEZE-BIG-MARKER")
assert at >= 0 and at % 4096 == 0, "marker not found in the region"
m[at + 3000] ^= 0x01
m.close()
PY
status=0
"$CTL" verify --full -q "$REGION" >"$WORK/verify.out" || status=$?
[ "$status" = 1 ] && grep -q '^CORRUPT /vm/big: content differs' "$WORK/verify.out" ||
  pkfs_fail "verify --full did not name /vm/big (exit $status): $(cat "$WORK/verify.out")"
pkfs_log "freeze, verify, hidden records, CHANGED, MISSING-RECORD, CORRUPT, sampled and --full as expected"
