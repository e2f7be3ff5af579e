#!/usr/bin/env bash
# client_holds.sh: a file mapped with libpkfs is held. Shrinking and punching
# it fail with EBUSY, unlinking it succeeds but its space comes back only
# when the hold goes; all of that also after the daemon was killed and
# restarted. A hold goes when its holder is killed (the daemon watches
# holders), when the holder died while the daemon was down (released at
# mount), and with pkfsctl release --force; pkfsctl release without --force
# refuses a live holder's hold.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/client.sh"

client_setup 40
pkfs_mkfs 64M
pkfs_mount
for f in a b c; do fallocate -l 8M "$MNT/$f"; done
client_need_holds "$MNT/a"

holds_of() { "$PKFSCTL" ls -l "$MNT" | sed -n "s/.* holds=\([0-9]*\) $1\$/\1/p"; }
no_hold_on() { [ "$(holds_of "$1")" = 0 ]; }
free_blocks() { stat -f -c %f "$MNT"; }

# start_holder NAME FILE: a process holding FILE, fed commands on fd 3+.
declare -A HOLDER_PID HOLDER_IN HOLDER_OUT
start_holder() {
  local name=$1 file=$2 line
  mkfifo "$WORK/$name.in"
  "$VMM" hold "$file" <"$WORK/$name.in" >"$WORK/$name.out" 2>&1 &
  HOLDER_PID[$name]=$!
  client_bg $!
  exec {fd}>"$WORK/$name.in"
  HOLDER_IN[$name]=$fd
  for _ in $(seq 200); do grep -q "^hold=" "$WORK/$name.out" && break; sleep 0.05; done
  grep -q "^hold=" "$WORK/$name.out" || pkfs_fail "holder $name did not map $file: $(cat "$WORK/$name.out")"
}
# holder_says NAME COMMAND: sends COMMAND and waits for its answer line.
holder_says() {
  local name=$1 before
  before=$(wc -l <"$WORK/$name.out")
  echo "$2" >&"${HOLDER_IN[$name]}"
  for _ in $(seq 200); do [ "$(wc -l <"$WORK/$name.out")" -gt "$before" ] && break; sleep 0.05; done
  tail -n 1 "$WORK/$name.out"
}

expect_held_refusals() {
  pkfs_expect_fail "busy" truncate -s 4M "$MNT/a"
  pkfs_expect_fail "busy" fallocate -p -o 0 -l 2M "$MNT/a"
  [ "$(stat -c %s "$MNT/a")" = 8388608 ] || pkfs_fail "a held file changed size"
}

pkfs_log "held: shrink and punch fail with EBUSY"
start_holder A "$MNT/a"
[ "$(holder_says A "write 3")" = ok ] || pkfs_fail "holder A could not write"
[ "$(holds_of a)" = 1 ] || pkfs_fail "pkfsctl ls shows $(holds_of a) holds on a"
expect_held_refusals
"$VMM" check "$MNT/a" 3 >/dev/null || pkfs_fail "a does not read back what A wrote"

pkfs_log "held and unlinked: the space stays until the holder is killed"
start_holder B "$MNT/b"
[ "$(holder_says B "write 5")" = ok ] || pkfs_fail "holder B could not write"
free_before=$(free_blocks)
rm "$MNT/b"
sleep 0.5  # RELEASE of the rm's descriptor arrives asynchronously; it must free nothing
[ "$(free_blocks)" = "$free_before" ] || pkfs_fail "unlinking a held file freed space ($free_before -> $(free_blocks))"
[ "$(holder_says B "check 5")" = ok ] || pkfs_fail "B's mapping changed after the unlink"

pkfs_log "kill -9 the daemon and restart it: the holds stay, and so do the refusals"
start_holder C "$MNT/c"
pkfs_kill9
kill -9 "${HOLDER_PID[C]}"  # C dies while nobody watches
wait "${HOLDER_PID[C]}" 2>/dev/null || true
pkfs_mount
[ "$(holds_of a)" = 1 ] || pkfs_fail "the hold on a did not survive the restart"
expect_held_refusals
pkfs_eventually no_hold_on c || pkfs_fail "the hold of C, which died while the daemon was down, is still there"
[ "$(free_blocks)" = "$free_before" ] || pkfs_fail "the restart freed the held, unlinked b"
[ "$(holder_says B "check 5")" = ok ] || pkfs_fail "B's mapping changed across the restart"
[ "$(holder_says A "check 3")" = ok ] || pkfs_fail "A's mapping changed across the restart"

pkfs_log "killing holder B releases its hold and frees the unlinked b"
kill -9 "${HOLDER_PID[B]}"
wait "${HOLDER_PID[B]}" 2>/dev/null || true
freed() { [ "$(free_blocks)" -gt "$free_before" ]; }
pkfs_eventually freed || pkfs_fail "b's space did not come back after its holder died"
grep -q "holder pid ${HOLDER_PID[B]} is gone" "$PKFS_LOG" || pkfs_fail "the daemon did not log B's release: $(cat "$PKFS_LOG")"

pkfs_log "pkfsctl release: refuses a live holder's hold, --force releases it"
id=$(sed -n 's/^hold=//p' "$WORK/A.out")
pkfs_expect_fail "not stale" "$PKFSCTL" release "$MNT" "$id"
[ "$(holds_of a)" = 1 ] || pkfs_fail "release without --force released a live hold"
pkfs_expect_fail "no such hold" "$PKFSCTL" release "$MNT" 999
# An unmap-style release (only the holder's own hold) from another process,
# even root, leaves the hold alone: a late unmap never drops a reused slot.
socket=$(getfattr --only-values -n user.pkfs.control "$MNT/a") || pkfs_fail "no control socket for a"
"$PROBE" "$socket" release-own "$id" | grep -q '^status=2 ' || pkfs_fail "release-own of another's hold was not refused"
[ "$(holds_of a)" = 1 ] || pkfs_fail "a release-own from a non-holder dropped the hold on a"
"$PKFSCTL" release --force "$MNT" "$id" | grep -q "released hold $id" || pkfs_fail "release --force failed"
[ "$(holds_of a)" = 0 ] || pkfs_fail "the hold on a is still there after release --force"
truncate -s 4M "$MNT/a" || pkfs_fail "a cannot shrink once its hold is gone"

pkfs_log "a holder killed with the daemon up is noticed without a restart"
start_holder D "$MNT/c"
[ "$(holds_of c)" = 1 ] || pkfs_fail "no hold on c"
kill -9 "${HOLDER_PID[D]}"
wait "${HOLDER_PID[D]}" 2>/dev/null || true
pkfs_eventually no_hold_on c || pkfs_fail "the hold of the killed holder D is still there"
truncate -s 1M "$MNT/c" || pkfs_fail "c cannot shrink once its holder is gone"

pkfs_unmount
pkfs_log "ok"
