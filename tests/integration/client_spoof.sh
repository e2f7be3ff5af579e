#!/usr/bin/env bash
# client_spoof.sh: libpkfs talks only to the genuine pkfs daemon of a file,
# and writers of held files lose set-user-ID.
#
# A file on tmpfs owned by uid 1000, whose user.pkfs.control names a socket
# uid 1000 serves: root's pkfs_map fails with ENOTSUP and the socket is
# never contacted. On a genuine pkfs mount whose control socket path was
# taken over by another server: served by uid 1000 (neither root nor the
# mount's owner), EPERM and nothing sent; served by root but describing
# another inode, another generation, or handing out a memfd, EPERM and
# nothing mapped. The daemon answers user.pkfs.generation (read-only, not
# listed). A write by uid 1000 through the mount to a held file of mode
# 06775 clears both bits (06765: only set-user-ID), a write by root keeps
# them. Last, libpkfs's reply checks run on hand-made and random input.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/client.sh"

FAKE="$PKFS_BIN_DIR/tests/pkfs_test_fake_server"
CHECK="$PKFS_BIN_DIR/tests/pkfs_test_reply_check"
client_setup 40
pkfs_need setpriv python3
[ -x "$FAKE" ] || pkfs_fail "$FAKE is not built"
chmod 0755 "$WORK"
as_user() { setpriv --reuid=1000 --regid=1000 --clear-groups -- "$@"; }
# uid 1000 may not run a python3 found on root's PATH (a shim under /root).
USER_PYTHON=/usr/bin/python3
[ -x "$USER_PYTHON" ] || pkfs_skip "$USER_PYTHON is missing"
xattr_get() { python3 -c 'import os,sys; print(os.getxattr(sys.argv[1], sys.argv[2]).decode())' "$@"; }
xattr_set() { python3 -c 'import os,sys; os.setxattr(sys.argv[1], sys.argv[2], sys.argv[3].encode())' "$@"; }

# start_fake AS_UID SOCKET LOG [OPTIONS...]: a spoofed control socket.
start_fake() {
  local uid=$1 socket=$2 log=$3
  shift 3
  : >"$log"
  chown "$uid" "$log"
  setpriv --reuid="$uid" --regid="$uid" --clear-groups -- "$FAKE" "$socket" "$log" "$@" &
  client_bg $!
  for _ in $(seq 200); do grep -q "^ready" "$log" && return 0; sleep 0.05; done
  pkfs_fail "the fake server on $socket did not start: $(cat "$log")"
}
# map_refused FILE ERRNO PATTERN: root's pkfs_map of FILE fails with ERRNO
# and a message matching PATTERN.
map_refused() {
  local out
  out=$("$VMM" map "$1") && pkfs_fail "root mapped $1 from a spoofed server: $out"
  grep -q "errno=$2 " <<<"$out" || pkfs_fail "mapping $1: wanted errno $2: $out"
  grep -q "$3" <<<"$out" || pkfs_fail "mapping $1: the message does not say '$3': $out"
  pkfs_log "refused: ${out#error }"
}

pkfs_log "a tmpfs file whose user.pkfs.control names a user's socket: ENOTSUP, socket never contacted"
spoof="$WORK/spoof"
mkdir "$spoof"
chown 1000:1000 "$spoof"
start_fake 1000 "$spoof/evil.sock" "$spoof/evil.log"
as_user truncate -s 4096 "$spoof/ram"
if ! as_user "$USER_PYTHON" -c 'import os,sys; os.setxattr(sys.argv[1], "user.pkfs.control", sys.argv[2].encode())' \
  "$spoof/ram" "$spoof/evil.sock" 2>/dev/null; then
  pkfs_skip "tmpfs here does not take user.* xattrs"
fi
map_refused "$spoof/ram" 95 "not a file on a pkfs mount"
[ "$(grep -c '^connect' "$spoof/evil.log")" = 0 ] ||
  pkfs_fail "libpkfs contacted the socket a user named: $(cat "$spoof/evil.log")"

pkfs_log "a genuine mount: maps, and answers user.pkfs.generation"
ctl="$WORK/ctl"
mkdir -m 0755 "$ctl"
pkfs_mkfs 64M
pkfs_mount -o allow_other,control="$ctl/pkfs.sock"
chmod 0755 "$MNT"
fallocate -l 4M "$MNT/ram"
chmod 0666 "$MNT/ram"
client_need_holds "$MNT/ram"
generation=$(xattr_get "$MNT/ram" user.pkfs.generation) ||
  pkfs_fail "the daemon does not answer user.pkfs.generation"
[[ "$generation" =~ ^[0-9]+$ ]] || pkfs_fail "user.pkfs.generation is '$generation', not a number"
out=$(xattr_set "$MNT/ram" user.pkfs.generation 7 2>&1) && pkfs_fail "user.pkfs.generation could be set"
grep -q "PermissionError\|Operation not permitted" <<<"$out" || pkfs_fail "setting user.pkfs.generation: $out"
out=$(python3 -c 'import os,sys; os.removexattr(sys.argv[1], "user.pkfs.generation")' "$MNT/ram" 2>&1) &&
  pkfs_fail "user.pkfs.generation could be removed"
grep -q "PermissionError\|Operation not permitted" <<<"$out" || pkfs_fail "removing user.pkfs.generation: $out"
python3 -c 'import os,sys; sys.exit(any(n.startswith("user.pkfs.") for n in os.listxattr(sys.argv[1])))' \
  "$MNT/ram" || pkfs_fail "a virtual user.pkfs.* xattr is listed"

pkfs_log "writers of a held file lose set-user-ID (set-group-ID when group-executable), root keeps them"
fallocate -l 4M "$MNT/guest"
chown 0:1000 "$MNT/guest"
mkfifo "$WORK/holder.in"
"$VMM" hold "$MNT/guest" <"$WORK/holder.in" >"$WORK/holder.out" 2>&1 &
client_bg $!
exec {holder_in}>"$WORK/holder.in"
for _ in $(seq 200); do grep -q "^hold=" "$WORK/holder.out" && break; sleep 0.05; done
grep -q "^hold=" "$WORK/holder.out" || pkfs_fail "could not hold $MNT/guest: $(cat "$WORK/holder.out")"
write_as() { setpriv --reuid="$1" --regid=1000 --clear-groups -- dd if=/dev/zero of="$2" bs=4096 count=1 \
  conv=notrunc status=none; }
chmod 06775 "$MNT/guest"
write_as 0 "$MNT/guest"
[ "$(stat -c %a "$MNT/guest")" = 6775 ] || pkfs_fail "a write by root changed mode 6775 to $(stat -c %a "$MNT/guest")"
write_as 1000 "$MNT/guest"
[ "$(stat -c %a "$MNT/guest")" = 775 ] ||
  pkfs_fail "a write by uid 1000 to a held file left mode $(stat -c %a "$MNT/guest") (wanted 775)"
chmod 06765 "$MNT/guest"
write_as 1000 "$MNT/guest"
[ "$(stat -c %a "$MNT/guest")" = 2765 ] ||
  pkfs_fail "a write by uid 1000 to a held file of mode 6765 left $(stat -c %a "$MNT/guest") (wanted 2765)"
# Not held (page cache): the kernel clears them itself; still so.
fallocate -l 4M "$MNT/plain"
chown 0:1000 "$MNT/plain"
chmod 06775 "$MNT/plain"
write_as 1000 "$MNT/plain"
[ "$(stat -c %a "$MNT/plain")" = 775 ] || pkfs_fail "a write by uid 1000 left mode $(stat -c %a "$MNT/plain")"
exec {holder_in}>&-

pkfs_log "the control socket path taken over by uid 1000: EPERM, nothing sent"
# take_over SOCKET: puts SOCKET where the daemon's socket was.
take_over() { mv -f "$1" "$ctl/pkfs.sock"; }
start_fake 1000 "$spoof/user.sock" "$spoof/user.log" --ino right --generation right
take_over "$spoof/user.sock"
map_refused "$MNT/ram" 1 "served by uid 1000"
grep -q "^connect" "$spoof/user.log" || pkfs_fail "the test's fake server was not even connected to"
! grep -q "^request" "$spoof/user.log" || pkfs_fail "libpkfs sent a request to uid 1000's socket"

pkfs_log "taken over by a root server describing another inode: EPERM"
start_fake 0 "$ctl/ino.sock" "$ctl/ino.log" --ino wrong --generation right
take_over "$ctl/ino.sock"
map_refused "$MNT/ram" 1 "inode"

pkfs_log "... another generation: EPERM"
start_fake 0 "$ctl/gen.sock" "$ctl/gen.log" --ino right --generation wrong
take_over "$ctl/gen.sock"
map_refused "$MNT/ram" 1 "generation"

pkfs_log "... a memfd for the region: EPERM"
start_fake 0 "$ctl/memfd.sock" "$ctl/memfd.log" --ino right --generation right --region memfd
take_over "$ctl/memfd.sock"
map_refused "$MNT/ram" 1 "memfd"

pkfs_log "libpkfs's reply checks on hand-made and random input"
[ -x "$CHECK" ] || pkfs_fail "$CHECK is not built"
"$CHECK" 200000 || pkfs_fail "the reply checks failed"
pkfs_log "ok"
