#!/usr/bin/env bash
# client_access.sh: who gets a direct mapping, what the daemon does with bad
# requests, and coherence between direct mappings and the mount.
#
# A second uid (1000, via setpriv/setresuid) without permission on a file is
# refused the region descriptor, both when the kernel stops its open and
# when it sends a descriptor root opened for it; it may map what it may
# write (a hold keeps the owner from shrinking the file, so even a read-only
# mapping needs write permission) and its own files, as long as it may use the region itself
# (group access to the region file); a uid without that is refused even
# its own files. Malformed requests get an errno and no
# descriptor, and the daemon goes on serving. Reads and writes through the
# mount see what a direct mapping wrote, and the reverse, also on a
# descriptor opened (and cached) before the hold.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/client.sh"

client_setup 40
pkfs_need setpriv python3
chmod 0755 "$WORK"
pkfs_mkfs 64M
pkfs_mount -o allow_other
chmod 0755 "$MNT"
for f in secret shared mine group; do fallocate -l 4M "$MNT/$f"; done
chgrp 2000 "$MNT/group"
chmod 0660 "$MNT/group"
chmod 0600 "$MNT/secret"
chmod 0644 "$MNT/shared"
chown 1000:1000 "$MNT/mine"
chmod 0600 "$MNT/mine"
client_need_holds "$MNT/shared"
# The VMMs' group (gid 1000 here) may use the region itself: a direct
# mapping hands out a descriptor of the whole region.
chgrp 1000 "$REGION"
chmod 0660 "$REGION"
socket=$(getfattr --only-values -n user.pkfs.control "$MNT/shared" 2>/dev/null || python3 -c 'import os,sys; print(os.getxattr(sys.argv[1], "user.pkfs.control").decode())' "$MNT/shared")
[ -S "$socket" ] || pkfs_fail "user.pkfs.control names $socket, which is not a socket"
[ "$(stat -c %a "$socket")" = 666 ] || pkfs_fail "the control socket is mode $(stat -c %a "$socket")"

as_user() { setpriv --reuid=1000 --regid=1000 --clear-groups -- "$@"; }
# probe CASE ARGS... EXPECTED_STATUS: the daemon answers with that errno and
# sends a descriptor only for status 0.
probe() {
  local want=${*: -1} out
  out=$("$PROBE" "$socket" "${@:1:$#-1}") || pkfs_fail "probe $*: $out"
  grep -q "^status=$want fd=$([ "$want" = 0 ] && echo yes || echo no)\$" <<<"$out" || pkfs_fail "probe ${*:1:$#-1}: wanted status $want: $out"
}

pkfs_log "uid 1000 maps what it may write, and its own files"
as_user "$VMM" map "$MNT/mine" | grep -q "^mapped" || pkfs_fail "uid 1000 cannot map its own file"
as_user "$VMM" map "$MNT/mine" ro | grep -q "^mapped" || pkfs_fail "uid 1000 cannot map its own file read-only"
# Supplementary groups count (the daemon reads them with SO_PEERGROUPS).
setpriv --reuid=1000 --regid=1000 --groups=2000 -- "$VMM" map "$MNT/group" ro | grep -q "^mapped" ||
  pkfs_fail "uid 1000 in supplementary group 2000 cannot map a 0660 file of group 2000"
pkfs_log "uid 1000 is refused what it may not write"
# Readable but not writable: a hold would block the owner's shrink.
out=$(as_user "$VMM" map "$MNT/shared" ro) && pkfs_fail "uid 1000 mapped (held) a 0644 root file: $out"
grep -q "errno=13" <<<"$out" || pkfs_fail "mapping a 0644 root file read-only: $out"
grep -q "needs write permission" <<<"$out" || pkfs_fail "the refusal does not say why: $out"
out=$(as_user "$VMM" map "$MNT/group" ro) && pkfs_fail "uid 1000 outside group 2000 mapped a 0660 file: $out"
out=$(as_user "$VMM" map "$MNT/secret" ro) && pkfs_fail "uid 1000 mapped a 0600 root file: $out"
grep -q "errno=13" <<<"$out" || pkfs_fail "mapping a 0600 root file: $out"
out=$(as_user "$VMM" map "$MNT/shared") && pkfs_fail "uid 1000 mapped a 0644 root file writable: $out"
grep -q "errno=13" <<<"$out" || pkfs_fail "mapping a 0644 root file writable: $out"
# The daemon checks the caller itself, not just the descriptor it is sent.
probe map-as 1000 "$MNT/secret" 13
probe map-as 1000 "$MNT/shared" 13
probe map-as 1000 "$MNT/mine" 0

pkfs_log "a uid without access to the region is refused even its own file"
fallocate -l 4M "$MNT/other"
chown 1001:1001 "$MNT/other"
out=$(setpriv --reuid=1001 --regid=1001 --clear-groups -- "$VMM" map "$MNT/other" ro) &&
  pkfs_fail "uid 1001, without access to the region, mapped its own file: $out"
grep -q "errno=13" <<<"$out" || pkfs_fail "mapping without access to the region: $out"
grep -q "the region" <<<"$out" || pkfs_fail "the refusal does not say the region is why: $out"
probe map-as 1001 "$MNT/other" 13

pkfs_log "malformed requests"
probe map-ro-for-write "$MNT/mine" 9   # EBADF: O_RDONLY descriptor for a writable map
probe map-no-fd 9
echo x >"$WORK/foreign"
probe map-foreign "$WORK/foreign" 18   # EXDEV: not on this mount
# The region's own descriptor: refused, and closing it must not cost the
# daemon its region lock (POSIX locks go with any close of the file).
probe map-foreign "$REGION" 18
"$PKFSCTL" info "$REGION" | grep -q "^Mounted: in use by pid $PKFS_PID (pkfs)$" ||
  pkfs_fail "the daemon lost its region lock after a client sent it the region: $("$PKFSCTL" info "$REGION" | tail -n 1)"
grep -q "the region lock was re-taken" "$PKFS_LOG" || pkfs_fail "no log line about the region descriptor"
probe short 71                         # EPROTO
probe bad-version 71
probe unknown-op 95                    # EOPNOTSUPP
probe release-bogus 2                  # ENOENT
"$PROBE" "$socket" silent >/dev/null &
silent=$!
sleep 0.2
"$VMM" map "$MNT/shared" | grep -q "^mapped" || pkfs_fail "the daemon stopped serving while a client was silent"
wait "$silent"
pkfs_expect_fail "not a file on a pkfs mount" "$VMM" map "$WORK/foreign"
pkfs_expect_fail "pkfs" "$VMM" map "$MNT"

pkfs_log "uid 1000 may not release root's hold"
mkfifo "$WORK/h.in"
"$VMM" hold "$MNT/shared" <"$WORK/h.in" >"$WORK/h.out" 2>&1 &
holder=$!
client_bg "$holder"
exec {hold_in}>"$WORK/h.in"
for _ in $(seq 200); do grep -q "^hold=" "$WORK/h.out" && break; sleep 0.05; done
id=$(sed -n 's/^hold=//p' "$WORK/h.out")
[ -n "$id" ] || pkfs_fail "the holder did not map: $(cat "$WORK/h.out")"
pkfs_expect_fail "only it, the file's owner and root" as_user "$PKFSCTL" release --force "$MNT" "$id"

pkfs_log "coherence: the mount sees direct writes, the mapping sees mount writes"
say() {
  local before
  before=$(wc -l <"$WORK/h.out")
  echo "$1" >&"$hold_in"
  for _ in $(seq 200); do [ "$(wc -l <"$WORK/h.out")" -gt "$before" ] && break; sleep 0.05; done
  tail -n 1 "$WORK/h.out"
}
[ "$(say "write 11")" = ok ] || pkfs_fail "direct write failed"
"$VMM" check "$MNT/shared" 11 >/dev/null || pkfs_fail "a read through the mount missed a direct write"
"$VMM" write "$MNT/shared" 12 >/dev/null
[ "$(say "check 12")" = ok ] || pkfs_fail "the direct mapping missed a write through the mount"
[ "$(say "write 13")" = ok ] || pkfs_fail "direct write failed"
"$VMM" check "$MNT/shared" 13 >/dev/null || pkfs_fail "a read through the mount missed the second direct write"
exec {hold_in}>&-
wait "$holder" || true

pkfs_log "coherence: a descriptor opened and cached before the hold"
python3 - "$MNT/mine" "$VMM" <<'PY' || pkfs_fail "a descriptor cached before the hold read stale data"
import os, subprocess, sys, struct
path, vmm = sys.argv[1], sys.argv[2]
subprocess.run([vmm, "write", path, "21"], check=True, stdout=subprocess.DEVNULL)
fd = os.open(path, os.O_RDONLY)
before = os.pread(fd, 8, 0)  # now in the page cache (keep_cache)
holder = subprocess.Popen([vmm, "hold", path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
assert holder.stdout.readline().startswith("hold=")
holder.stdin.write("write 22\n"); holder.stdin.flush()
assert holder.stdout.readline().strip() == "ok"
after = os.pread(fd, 8, 0)
word = lambda p: struct.pack("<Q", (p << 48) & (2**64 - 1))
holder.stdin.close(); holder.wait()
print("before", before.hex(), "after", after.hex())
sys.exit(0 if before == word(21) and after == word(22) else 1)
PY

pkfs_unmount
pkfs_log "ok"
