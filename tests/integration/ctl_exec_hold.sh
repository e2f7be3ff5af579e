#!/usr/bin/env bash
# ctl_exec_hold.sh: pkfsctl exec --hold and the control op behind it
# (kHold), for VMMs that map the region themselves.
#
# exec takes the holds for its own pid and execs the command (same pid):
# the hold names the command's pid, keeps the file from shrinking and
# punching (EBUSY), survives a kill -9 and remount of the daemon, and goes
# when the command exits (the daemon's pidfd watch). All or nothing: a
# second hold of the same file (EEXIST), a file the caller may not write
# (EACCES, from the kernel's open or, read-only, from the daemon), a caller
# that may not use the region itself (EACCES) release the holds taken and
# the command is not run (exit 1), as is one with -daemonize (it would fork
# and the holder exit); a command that cannot be run: exit 127,
# holds released. The raw op replies with a MapReply and no descriptor, and
# refuses a request without the file's descriptor (EBADF).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/client.sh"

client_setup 40
pkfs_need setpriv python3 fallocate truncate
chmod 0755 "$WORK"
pkfs_mkfs 64M
pkfs_mount -o allow_other
chmod 0755 "$MNT"
for f in ram other shared mine; do fallocate -l 4M "$MNT/$f"; done
chmod 0644 "$MNT/shared"
chown 1000:1000 "$MNT/mine"
chmod 0600 "$MNT/mine"
client_need_holds "$MNT/other"
# Region access for uid 1000 through its group, as a VMM group would have.
chgrp 1000 "$REGION"
chmod 0660 "$REGION"
as_user() { setpriv --reuid=1000 --regid=1000 --clear-groups -- "$@"; }

# The holds of FILE as "ID:PID" words.
holds_of() {
  "$PKFSCTL" ls -l "$MNT" | awk -v f="$1" '
    $1 != "hold" && $1 != "extent" { name = $NF }
    $1 == "hold" && name == f { sub("pid=", "", $3); printf "%s%s:%s", sep, $2, $3; sep = " " }'
}
# wait_no_hold FILE: the file's holds go within 5 s.
wait_no_hold() {
  for _ in $(seq 50); do [ -z "$(holds_of "$1")" ] && return 0; sleep 0.1; done
  pkfs_fail "$1 is still held: $(holds_of "$1")"
}
[ -z "$(holds_of ram)" ] || pkfs_fail "ram is held before the test: $(holds_of ram)"

pkfs_log "exec --hold: the hold is the command's (same pid), blocks shrink and punch"
"$PKFSCTL" exec --hold "$MNT/ram" -- sleep 60 2>"$WORK/exec.err" &
holder=$!
client_bg "$holder"
for _ in $(seq 50); do [ -n "$(holds_of ram)" ] && break; sleep 0.1; done
[ "$(holds_of ram | cut -d: -f2)" = "$holder" ] || pkfs_fail "hold on ram: '$(holds_of ram)', want pid $holder"
grep -q "^pkfsctl exec: hold [0-9]* on $MNT/ram for pid $holder (sleep)$" "$WORK/exec.err" ||
  pkfs_fail "exec did not say which hold it took: $(cat "$WORK/exec.err")"
[ "$(cat /proc/$holder/comm)" = sleep ] || pkfs_fail "pid $holder is $(cat /proc/$holder/comm), not the command"
pkfs_expect_fail "busy" truncate -s 2M "$MNT/ram"
pkfs_expect_fail "busy" fallocate --punch-hole --keep-size -o 0 -l 2M "$MNT/ram"

pkfs_log "the hold survives kill -9 and a remount, and goes when the command exits"
pkfs_kill9
pkfs_mount -o allow_other
[ "$(holds_of ram | cut -d: -f2)" = "$holder" ] || pkfs_fail "after the remount the hold is '$(holds_of ram)'"
pkfs_expect_fail "busy" truncate -s 2M "$MNT/ram"
kill "$holder"
wait "$holder" 2>/dev/null || true
wait_no_hold ram
truncate -s 2M "$MNT/ram" || pkfs_fail "ram cannot shrink after its holder exited"

pkfs_log "a second hold of the same file: EEXIST, the first released, the command not run"
out=$("$PKFSCTL" exec --hold "$MNT/ram" --hold "$MNT/ram" -- touch "$WORK/ran" 2>&1) &&
  pkfs_fail "a double hold ran the command: $out"
grep -q "already holds inode" <<<"$out" || pkfs_fail "a double hold: '$out', want EEXIST"
[ ! -e "$WORK/ran" ] || pkfs_fail "the command ran after a refused hold"
[ -z "$(holds_of ram)" ] || pkfs_fail "the first hold stayed after the second failed: $(holds_of ram)"

pkfs_log "a file the caller may not write: EACCES (kernel open, or the daemon read-only), nothing held"
out=$(as_user "$PKFSCTL" exec --hold "$MNT/other" --hold "$MNT/shared" -- touch "$WORK/ran" 2>&1) &&
  pkfs_fail "uid 1000 held a 0644 root file: $out"
grep -q "Permission denied" <<<"$out" || pkfs_fail "holding a 0644 root file: '$out', want EACCES"
out=$(as_user "$PKFSCTL" exec --read-only --hold "$MNT/shared" -- touch "$WORK/ran" 2>&1) &&
  pkfs_fail "uid 1000 held a 0644 root file read-only: $out"
grep -q "needs write permission" <<<"$out" || pkfs_fail "the daemon's refusal does not say why: $out"
[ ! -e "$WORK/ran" ] || pkfs_fail "the command ran after a refused hold"
[ -z "$(holds_of shared)" ] || pkfs_fail "shared is held: $(holds_of shared)"

pkfs_log "uid 1000 holds its own file; a second file it may not hold releases the first"
out=$(as_user "$PKFSCTL" exec --hold "$MNT/mine" --hold "$MNT/shared" -- true 2>&1) &&
  pkfs_fail "uid 1000 held mine and shared: $out"
[ -z "$(holds_of mine)" ] || pkfs_fail "mine stayed held after the second hold failed: $(holds_of mine)"
as_user "$PKFSCTL" exec -q --hold "$MNT/mine" -- true || pkfs_fail "uid 1000 cannot hold its own file"
wait_no_hold mine

pkfs_log "a caller that may not use the region itself: EACCES"
chmod 0600 "$REGION"
out=$(as_user "$PKFSCTL" exec --hold "$MNT/mine" -- true 2>&1) && pkfs_fail "uid 1000 held without region access: $out"
grep -q "descriptor of the whole region" <<<"$out" || pkfs_fail "holding without region access: '$out'"
chmod 0660 "$REGION"

pkfs_log "a command that cannot run: exit 127, the hold released"
status=0
"$PKFSCTL" exec -q --hold "$MNT/ram" -- /nonexistent/command 2>"$WORK/exec.err" || status=$?
[ "$status" = 127 ] || pkfs_fail "exec of a missing command exited $status: $(cat "$WORK/exec.err")"
[ -z "$(holds_of ram)" ] || pkfs_fail "ram stayed held after the command failed to run: $(holds_of ram)"

pkfs_log "-daemonize (the holder would exit at once) is refused, nothing held"
pkfs_expect_fail "foreground" "$PKFSCTL" exec --hold "$MNT/ram" -- qemu-system-x86_64 -daemonize
[ -z "$(holds_of ram)" ] || pkfs_fail "ram is held after a refused -daemonize: $(holds_of ram)"

pkfs_log "the raw op: a MapReply, no descriptor; EEXIST for the same process twice"
socket=$(python3 -c 'import os,sys; print(os.getxattr(sys.argv[1], "user.pkfs.control").decode())' "$MNT/ram")
python3 - "$socket" "$MNT/ram" <<'EOF' || pkfs_fail "raw kHold"
import array, os, socket, struct, sys
path, file = sys.argv[1], sys.argv[2]
def hold(with_fd=True):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    request = struct.pack("<IIIIQQ", 0x43464B50, 1, 6, 0, 3, 0)
    if with_fd:
        fd = os.open(file, os.O_RDWR)
        s.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
        os.close(fd)
    else:
        s.send(request)
    data, ancillary, _, _ = s.recvmsg(1 << 18, socket.CMSG_SPACE(16))
    s.close()
    magic, version, op, status, length = struct.unpack_from("<IIIIQ", data)
    return status, data[24:], ancillary
status, payload, ancillary = hold()
assert status == 0, f"first hold: status {status}: {payload!r}"
assert not ancillary, "kHold sent a descriptor"
hold_id, ino, generation, size, mapped, page, region, extents = struct.unpack_from("<8Q", payload)
assert size == 2 << 20 and extents >= 1, (hold_id, size, extents)
status, payload, ancillary = hold()
assert status == 17 and not ancillary, f"second hold by the same process: status {status} (want EEXIST)"
status, payload, ancillary = hold(with_fd=False)
assert status == 9, f"kHold without a descriptor: status {status} (want EBADF)"
print(f"kHold: hold {hold_id}, {extents} extent(s), no descriptor; again: EEXIST")
EOF
wait_no_hold ram

pkfs_log "map --qemu says how to hold the file"
"$PKFSCTL" map --qemu "$MNT/other" 2>&1 >/dev/null | grep -q "pkfsctl exec --hold $MNT/other -- qemu-system-x86_64" ||
  pkfs_fail "map --qemu does not print the exec --hold form: $("$PKFSCTL" map --qemu "$MNT/other" 2>&1)"
pkfs_unmount
