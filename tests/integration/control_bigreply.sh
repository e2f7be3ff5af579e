#!/usr/bin/env bash
# control_bigreply.sh: a control reply over 256 KiB works (issue 11, item
# 6): kStat, through pkfsctl ls -l and the raw protocol, of a file with more
# than 11,000 extents (80 + 24 bytes each: over 256 KiB).
# The region (tmpfs, 4 KiB pages) is filled with 4 KiB files until it is
# full, every other one is deleted, and a new file is given all the free
# space: one extent per 4 KiB hole. Takes about 20-30 s (20,000 creates
# through FUSE).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/client.sh"

pkfs_setup
pkfs_need getfattr timeout python3
for tool in "$HOSTILE" "$PKFSCTL"; do [ -x "$tool" ] || pkfs_fail "$tool is not built"; done
pkfs_mkfs 128M -N 32000
pkfs_mount
mkdir "$MNT/d"
python3 - "$MNT/d" <<'PY'
import errno, os, sys
d = sys.argv[1]
block = b"f" * 4096
count = 0
while True:
    try:
        fd = os.open(f"{d}/{count}", os.O_CREAT | os.O_WRONLY, 0o644)
    except OSError as e:
        if e.errno == errno.ENOSPC: break
        raise
    try:
        os.write(fd, block)
    except OSError as e:
        os.close(fd)
        os.unlink(f"{d}/{count}")
        if e.errno == errno.ENOSPC: break
        raise
    os.close(fd)
    count += 1
for i in range(0, count, 2):
    os.unlink(f"{d}/{i}")
print(count, "files made, every other one deleted")
PY
# Deleted files' space comes back with their RELEASE, a moment later.
free=0
for _ in $(seq 50); do
  now=$(stat -f -c %a "$MNT")
  [ "$now" = "$free" ] && break
  free=$now
  sleep 0.2
done
# Leave room for the new file's extent blocks.
fallocate -l $(((free - 300) * 4096)) "$MNT/holes" || pkfs_fail "fallocate of $free - 300 free blocks failed"
socket=$(getfattr --absolute-names --only-values -n user.pkfs.control "$MNT/holes") || pkfs_fail "no control socket"

# 13,000 or more 4 KiB holes: the file gets one extent per hole.
failures=()
out=$(timeout 20 "$PKFSCTL" ls -l "$MNT/holes" 2>&1) || true
extents=$(sed -n 's/.* extents=\([0-9]*\) .*holes$/\1/p' <<<"$out")
lines=$(grep -c "^ *extent " <<<"$out" || true)
pkfs_log "pkfsctl ls -l: extents=${extents:-?}, $lines extent lines"
if [ -z "$extents" ] || [ "$extents" -lt 11000 ] || [ "$lines" != "$extents" ]; then
  failures+=("pkfsctl ls -l of a file with over 11,000 extents: $(grep -v '^ *extent ' <<<"$out" | head -c 400)")
fi
out=$(timeout 20 "$HOSTILE" "$socket" stat "$MNT/holes" 2>&1) || true
pkfs_log "raw kStat: $(tr '\n' ' ' <<<"$out")"
if ! grep -q "^status=0 extents=1[1-9][0-9][0-9][0-9]$" <<<"$out" || { [ -n "$extents" ] && ! grep -q "extents=$extents$" <<<"$out"; }; then
  failures+=("raw kStat of a file with over 11,000 extents: $(tr '\n' ' ' <<<"$out")")
fi
[ "${#failures[@]}" = 0 ] || pkfs_fail "${failures[*]}"
pkfs_unmount
pkfs_log "ok"
