#!/usr/bin/env bash
# fuse_mmap.sh: a shared writable mapping of a file on the mount (as a VMM
# maps guest RAM) writes through to the region: pattern, msync, munmap,
# unmount, remount, and the content is there; reads through the mount see
# the mapping's stores, and a mapping sees writes made with write(2).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/mount.sh"

pkfs_setup
pkfs_need python3
pkfs_mkfs 128M
pkfs_mount

# ram.bin: 16 MiB sized with ftruncate (as a VMM sizes its RAM file); a
# distinct 8-byte pattern in every 4 KiB page, a tail pattern at the end.
python3 - "$MNT/ram.bin" "$WORK/expected.sha" <<'PY'
import hashlib, mmap, os, struct, sys
path, sha_out = sys.argv[1], sys.argv[2]
size = 16 << 20
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
os.ftruncate(fd, size)
m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
for page in range(size // 4096):
    m[page * 4096:page * 4096 + 8] = struct.pack("<Q", page * 0x9E3779B97F4A7C15 % (1 << 64))
m[size - 11:] = b"end-of-ram!"
m.flush()  # msync(MS_SYNC)
expected = bytes(m)
m.close()  # munmap
# Stores through the mapping are visible to read(2) on another descriptor.
with open(path, "rb") as f:
    assert f.read() == expected, "read(2) does not see the mapping's stores"
os.close(fd)
open(sha_out, "w").write(hashlib.sha256(expected).hexdigest())
PY
[ "$(stat -c %s "$MNT/ram.bin")" = $((16 << 20)) ] || pkfs_fail "ram.bin has the wrong size"

# A second file written with write(2) and checked through a mapping.
python3 - "$MNT/written.bin" <<'PY'
import mmap, os, sys
data = os.urandom(3 * 4096 + 123)
with open(sys.argv[1], "wb") as f:
    f.write(data)
with open(sys.argv[1], "r+b") as f:
    m = mmap.mmap(f.fileno(), 0, mmap.MAP_SHARED)
    assert m[:] == data, "the mapping does not see write(2)"
    m[0:5] = b"HELLO"
    m.close()  # munmap without msync: close(2) must still push the page
with open(sys.argv[1], "rb") as f:
    assert f.read(5) == b"HELLO"
PY
written_sha=$(pkfs_sha "$MNT/written.bin")

pkfs_log "remount"
pkfs_unmount
pkfs_mount
[ "$(pkfs_sha "$MNT/ram.bin")" = "$(cat "$WORK/expected.sha")" ] || pkfs_fail "ram.bin lost the mapping's stores across a remount"
[ "$(pkfs_sha "$MNT/written.bin")" = "$written_sha" ] || pkfs_fail "written.bin changed across a remount"

pkfs_log "map again after the remount, change a page, kill -9 after msync"
python3 - "$MNT/ram.bin" <<'PY'
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
m = mmap.mmap(fd, 0, mmap.MAP_SHARED)
assert m[-11:] == b"end-of-ram!"
m[4096 * 100:4096 * 101] = b"\xab" * 4096
m.flush()
m.close()
os.close(fd)
PY
pkfs_kill9
pkfs_mount
python3 - "$MNT/ram.bin" <<'PY'
import sys
with open(sys.argv[1], "rb") as f:
    f.seek(4096 * 100)
    assert f.read(4096) == b"\xab" * 4096, "msync'd page lost across kill -9"
PY
pkfs_unmount
pkfs_log "PASS"
