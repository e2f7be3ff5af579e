#!/usr/bin/env bash
# fuse_posix.sh: POSIX and Linux semantics through the mount: rename with
# RENAME_NOREPLACE and RENAME_EXCHANGE, an unlinked file (and a removed
# directory) that stays usable while open, fallocate (allocate, keep-size,
# punch hole, zero range; others unsupported), truncate, timestamps via
# utimensat, and extended attributes (get, list, remove, size probes,
# ERANGE).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/mount.sh"

pkfs_setup
pkfs_need python3 fallocate truncate touch setfattr getfattr stat
pkfs_mkfs 128M
pkfs_mount
cd "$MNT"

pkfs_log "rename"
echo a > a
echo b > b
if grep -q -- "--no-clobber" <<<"$(mv --help 2>&1)"; then
  mv --no-clobber a b || true
  [ "$(cat a)" = a ] && [ "$(cat b)" = b ] || pkfs_fail "mv --no-clobber replaced b"
fi
python3 - <<'PY'
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_NOREPLACE, RENAME_EXCHANGE = -100, 1, 2

def renameat2(old, new, flags):
    if libc.renameat2(AT_FDCWD, old.encode(), AT_FDCWD, new.encode(), flags) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), old)

def read(path):
    return open(path).read()

# NOREPLACE onto an existing name: EEXIST, nothing moves.
try:
    renameat2("a", "b", RENAME_NOREPLACE)
    raise SystemExit("RENAME_NOREPLACE replaced an existing file")
except OSError as e:
    assert e.errno == errno.EEXIST, e
assert read("a") == "a\n" and read("b") == "b\n"
# NOREPLACE onto a free name moves.
renameat2("a", "c", RENAME_NOREPLACE)
assert not os.path.exists("a") and read("c") == "a\n"
# EXCHANGE swaps two files, then a file and a directory across directories.
ino_b, ino_c = os.stat("b").st_ino, os.stat("c").st_ino
renameat2("b", "c", RENAME_EXCHANGE)
assert read("b") == "a\n" and read("c") == "b\n"
assert os.stat("b").st_ino == ino_c and os.stat("c").st_ino == ino_b
os.mkdir("dir1")
os.mkdir("dir2")
open("dir2/inside", "w").write("inside\n")
renameat2("c", "dir2", RENAME_EXCHANGE)
assert os.path.isdir("c") and read("c/inside") == "inside\n" and read("dir2") == "b\n"
assert os.stat(".").st_nlink == 2 + 2, os.stat(".").st_nlink  # dir1 and c
# EXCHANGE with a missing name: ENOENT.
try:
    renameat2("b", "missing", RENAME_EXCHANGE)
    raise SystemExit("RENAME_EXCHANGE with a missing target succeeded")
except OSError as e:
    assert e.errno == errno.ENOENT, e
# Plain rename replaces a file, and an empty directory; not a full one.
os.rename("b", "dir2")
assert read("dir2") == "a\n" and not os.path.exists("b")
os.rename("dir1", "c/sub")  # into another directory
assert os.path.isdir("c/sub") and os.stat("c").st_nlink == 3
os.mkdir("empty")
os.rename("c/sub", "empty")
assert os.path.isdir("empty") and not os.path.exists("c/sub")
for old, new, codes in (("empty", "c", (errno.ENOTEMPTY, errno.EEXIST)),  # c holds "inside"
                        ("c", "c/below_itself", (errno.EINVAL,)),
                        ("dir2", "c", (errno.EISDIR,)),
                        ("c", "dir2", (errno.ENOTDIR,))):
    try:
        os.rename(old, new)
        raise SystemExit("rename %s -> %s succeeded" % (old, new))
    except OSError as e:
        assert e.errno in codes, e
PY

pkfs_log "unlinked but open"
python3 - "$MNT" <<'PY'
import os, sys, time

def eventually(condition):
    # The kernel sends RELEASE asynchronously: close(2) returns first.
    for _ in range(100):
        if condition():
            return True
        time.sleep(0.05)
    return condition()

data = os.urandom(3 << 20)
free_before = os.statvfs(".").f_bfree
fd = os.open("doomed", os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, data)
os.unlink("doomed")
assert not os.path.exists("doomed")
assert os.fstat(fd).st_nlink == 0
assert os.pread(fd, len(data), 0) == data, "unlinked file unreadable while open"
os.pwrite(fd, b"still writable", 100)
assert os.pread(fd, 14, 100) == b"still writable"
assert os.statvfs(".").f_bfree < free_before, "space of an open unlinked file was freed"
assert "doomed" not in os.listdir(".")
os.close(fd)
assert eventually(lambda: os.statvfs(".").f_bfree == free_before), "space not freed at last close: %d vs %d" % (os.statvfs(".").f_bfree, free_before)
# A removed directory that is still open keeps its inode until closedir.
files_before = os.statvfs(".").f_ffree
os.mkdir("doomed_dir")
os.setxattr("doomed_dir", "user.kept", b"yes")
fd = os.open("doomed_dir", os.O_RDONLY | os.O_DIRECTORY)
os.rmdir("doomed_dir")
os.mkdir("newcomer")  # must not take the open directory's inode
assert os.fstat(fd).st_nlink == 0 and os.fstat(fd).st_ino != os.stat("newcomer").st_ino
assert os.listdir(fd) == []
os.fchmod(fd, 0o700)
assert os.getxattr(fd, "user.kept") == b"yes"
os.close(fd)
os.rmdir("newcomer")
assert eventually(lambda: os.statvfs(".").f_ffree == files_before), "inode of a removed open directory leaked"
PY

pkfs_log "fallocate"
blocks() { stat -c %b "$1"; }
fallocate -l 8M falloc
[ "$(stat -c %s falloc)" = $((8 << 20)) ] || pkfs_fail "fallocate -l 8M: size $(stat -c %s falloc)"
[ "$(blocks falloc)" -ge $((8 << 20 >> 9)) ] || pkfs_fail "fallocate -l 8M allocated $(blocks falloc) blocks"
cmp -n $((8 << 20)) falloc /dev/zero || pkfs_fail "fallocated space is not zero"
fallocate --keep-size -o 8M -l 2M falloc
[ "$(stat -c %s falloc)" = $((8 << 20)) ] || pkfs_fail "fallocate --keep-size changed the size"
head -c 65536 /dev/urandom > small
cp small small.orig
before=$(blocks small)
fallocate --punch-hole -o 4096 -l 16384 small
[ "$(stat -c %s small)" = 65536 ] || pkfs_fail "punch-hole changed the size"
cmp -n 16384 -i 4096:0 small /dev/zero || pkfs_fail "punched range does not read as zeros"
cmp -n 4096 small small.orig || pkfs_fail "punch-hole touched the bytes before the hole"
cmp -i 20480:20480 small small.orig || pkfs_fail "punch-hole touched the bytes after the hole"
[ "$(blocks small)" -lt "$before" ] || pkfs_fail "punch-hole freed nothing ($before -> $(blocks small) blocks)"
fallocate --zero-range -o 30000 -l 5000 small
cmp -n 5000 -i 30000:0 small /dev/zero || pkfs_fail "zero-range does not read as zeros"
cmp -n $((30000 - 20480)) -i 20480:20480 small small.orig || pkfs_fail "zero-range touched bytes before it"
cmp -i 35000:35000 small small.orig || pkfs_fail "zero-range touched bytes after it"
fallocate --zero-range -o 60000 -l 10000 small
[ "$(stat -c %s small)" = 70000 ] || pkfs_fail "zero-range past the end did not grow the file: $(stat -c %s small)"
pkfs_expect_fail "Operation not supported" fallocate --collapse-range -o 0 -l 4096 small
pkfs_expect_fail "Operation not supported" fallocate --insert-range -o 0 -l 4096 small

pkfs_log "truncate"
head -c 10000 /dev/urandom > trunc
cp trunc trunc.orig
truncate -s 100 trunc
[ "$(stat -c %s trunc)" = 100 ] || pkfs_fail "truncate -s 100"
cmp -n 100 trunc trunc.orig || pkfs_fail "truncate changed the kept bytes"
truncate -s 5M trunc
[ "$(stat -c %s trunc)" = $((5 << 20)) ] || pkfs_fail "truncate -s 5M"
cmp -n $(((5 << 20) - 100)) -i 100:0 trunc /dev/zero || pkfs_fail "bytes past the old end are not zero after growing"
truncate -s 0 trunc
[ "$(stat -c %s trunc)" = 0 ] || pkfs_fail "truncate -s 0"
echo appended >> trunc
printf 'x' | dd of=trunc bs=1 seek=100000 conv=notrunc status=none
[ "$(stat -c %s trunc)" = 100001 ] || pkfs_fail "write past the end"
cmp -n $((100000 - 9)) -i 9:0 trunc /dev/zero || pkfs_fail "the gap of a write past the end is not zero"
pkfs_expect_fail "Is a directory" truncate -s 0 c

pkfs_log "timestamps"
touch -d "2001-02-03 04:05:06.123456789 UTC" stamp
[ "$(stat -c %y stamp)" = "2001-02-03 04:05:06.123456789 +0000" ] || pkfs_fail "mtime: $(stat -c %y stamp)"
[ "$(stat -c %x stamp)" = "2001-02-03 04:05:06.123456789 +0000" ] || pkfs_fail "atime: $(stat -c %x stamp)"
touch -m -d "1999-12-31 23:59:59.5 UTC" stamp
[ "$(stat -c %y stamp)" = "1999-12-31 23:59:59.500000000 +0000" ] || pkfs_fail "touch -m: $(stat -c %y stamp)"
[ "$(stat -c %x stamp)" = "2001-02-03 04:05:06.123456789 +0000" ] || pkfs_fail "touch -m changed atime"
touch -a -d "2010-01-01 00:00:00 UTC" stamp
[ "$(stat -c %x stamp)" = "2010-01-01 00:00:00.000000000 +0000" ] || pkfs_fail "touch -a: $(stat -c %x stamp)"
[ "$(stat -c %y stamp)" = "1999-12-31 23:59:59.500000000 +0000" ] || pkfs_fail "touch -a changed mtime"
ctime_before=$(stat -c %Z stamp)
now=$(date +%s)
touch stamp
[ "$(stat -c %Y stamp)" -ge "$now" ] || pkfs_fail "touch (now) left mtime at $(stat -c %Y stamp)"
[ "$(stat -c %Z stamp)" -ge "$ctime_before" ] || pkfs_fail "ctime went backwards"
ln -s stamp stamp_link
touch -h -d "2005-05-05 05:05:05 UTC" stamp_link
[ "$(stat -c %Y stamp_link)" = "$(date -d "2005-05-05 05:05:05 UTC" +%s)" ] || pkfs_fail "touch -h on a symlink"

pkfs_log "extended attributes"
: > xa
setfattr -n user.one -v first xa
setfattr -n user.two -v "$(printf 'v%.0s' $(seq 3000))" xa
setfattr -n user.empty xa
[ "$(getfattr --only-values -n user.one xa)" = first ] || pkfs_fail "getxattr user.one"
[ "$(getfattr --only-values -n user.two xa | wc -c)" = 3000 ] || pkfs_fail "getxattr of a 3000-byte value"
grep -q "^user.empty" <<<"$(getfattr -d -m - xa)" || pkfs_fail "empty-valued attribute not listed"
listed=$(getfattr -m - --absolute-names xa | grep '^user\.' | sort | tr '\n' ' ')
[ "$listed" = "user.empty user.one user.two " ] || pkfs_fail "listxattr: $listed"
setfattr -n user.one -v replaced xa
[ "$(getfattr --only-values -n user.one xa)" = replaced ] || pkfs_fail "setxattr replace"
setfattr -x user.one xa
pkfs_expect_fail "No such attribute" getfattr -n user.one xa
pkfs_expect_fail "No such attribute" setfattr -x user.never_set xa
python3 - <<'PY'
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
libc.getxattr.restype = ctypes.c_ssize_t
libc.listxattr.restype = ctypes.c_ssize_t
libc.setxattr.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
XATTR_CREATE, XATTR_REPLACE = 1, 2
# Size probes (size 0) answer the size; a short buffer is ERANGE.
assert libc.getxattr(b"xa", b"user.two", None, 0) == 3000
buf = ctypes.create_string_buffer(10)
assert libc.getxattr(b"xa", b"user.two", buf, 10) == -1 and ctypes.get_errno() == errno.ERANGE
names = b"user.empty\0user.two\0"
assert libc.listxattr(b"xa", None, 0) == len(names)
assert libc.listxattr(b"xa", buf, 5) == -1 and ctypes.get_errno() == errno.ERANGE
# XATTR_CREATE on an existing name: EEXIST; XATTR_REPLACE on a missing one: ENODATA.
assert libc.setxattr(b"xa", b"user.two", b"x", 1, XATTR_CREATE) == -1 and ctypes.get_errno() == errno.EEXIST
assert libc.setxattr(b"xa", b"user.none", b"x", 1, XATTR_REPLACE) == -1 and ctypes.get_errno() == errno.ENODATA
assert os.getxattr("xa", "user.empty") == b""
# Attributes on a directory and on a symlink's target.
os.setxattr("c", "user.dir", b"d")
assert os.getxattr("c", "user.dir") == b"d"
os.removexattr("c", "user.dir")
assert os.listxattr("c") == []
PY

pkfs_log "an unlinked inode still referenced by number (O_PATH, cwd) keeps its number"
python3 - <<'PY'
import os
with open("opath-old", "w") as f:
    f.write("old")
fd = os.open("opath-old", os.O_PATH)
os.unlink("opath-old")
with open("opath-new", "w") as f:
    f.write("new")
assert os.stat("opath-new").st_ino != os.fstat(fd).st_ino, "a referenced inode number was reused"
reopened = os.open("/proc/self/fd/%d" % fd, os.O_RDONLY)
assert os.read(reopened, 10) == b"old", "the O_PATH descriptor reached another file"
os.close(reopened)
os.close(fd)
os.unlink("opath-new")
os.mkdir("gone")
os.chdir("gone")
os.rmdir("../gone")
os.mkdir("../other")
try:
    os.chmod(".", 0o700)
except OSError:
    pass
assert os.stat("../other").st_mode & 0o777 != 0o700, "chmod of a removed cwd changed another directory"
os.chdir("..")
os.rmdir("other")
PY

cd /
pkfs_log "everything above survives a remount"
pkfs_manifest "$MNT" > "$WORK/manifest.before"
pkfs_unmount
pkfs_mount
pkfs_manifest "$MNT" > "$WORK/manifest.after"
diff -u "$WORK/manifest.before" "$WORK/manifest.after" || pkfs_fail "tree changed across a remount"
pkfs_unmount
pkfs_log "PASS"
