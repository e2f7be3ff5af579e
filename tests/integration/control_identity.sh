#!/usr/bin/env bash
# control_identity.sh: a recycled pid cannot pass as a live VMM (issue 11,
# item 4).
#
# Process A (uid 1001) connects to the control socket, forks B, which
# inherits the connection, and exits. A VMM (root) is then started so that
# it gets A's pid (ns_last_pid, in a pid namespace of our own where nothing
# else takes pids) and maps a file. On A's connection, B then
#   - asks to map a file of its own: refused (the connecting process is
#     gone: ESRCH), and no hold is taken in the VMM's name;
#   - asks kRelease with kReleaseOwnHold for the VMM's hold: refused, and
#     the VMM's hold stays.
#
# Why the test jams the daemon first: a daemon that takes the caller's pid
# from SO_PEERCRED (fixed at connect) and its start time from /proc at
# accept is fooled only when the accept comes after the pid was recycled.
# A chatty client (a kHolds every 1.5 s) keeps a one-connection-at-a-time
# daemon busy while A connects, exits and the VMM takes its pid; when the
# jammer is killed, the daemon accepts A's connection, reads the VMM's start
# time for A's pid, and B's map is taken in the VMM's name (status 0). The
# release cannot be shown on such a daemon: it serves A's connection to the
# end before it accepts the VMM's, so the VMM's hold does not exist yet when
# B could ask. A daemon that identifies the caller by SO_PEERPIDFD (or a
# pidfd checked against the connection) refuses both, jammed or not.
#
# The daemon runs inside the pid namespace too (it must see the namespace's
# pids) and so does its mount (--mount-proc makes a mount namespace): both
# go with the namespace whatever happens.
set -euo pipefail

if [ "${1:-}" != inside ]; then
  [ "$(id -u)" -eq 0 ] || { echo "[control_identity] SKIP: needs root"; exit 77; }
  command -v unshare >/dev/null || { echo "[control_identity] SKIP: unshare is not installed"; exit 77; }
  exec unshare --pid --fork --mount-proc bash "$0" inside
fi

source "$(dirname "${BASH_SOURCE[0]}")/lib/client.sh"
pkfs_setup
pkfs_need setpriv timeout
for tool in "$VMM" "$HOSTILE"; do [ -x "$tool" ] || pkfs_fail "$tool is not built"; done
[ -w /proc/sys/kernel/ns_last_pid ] || pkfs_skip "/proc/sys/kernel/ns_last_pid is not writable"
pkfs_on_exit _client_stop_all
chmod 0755 "$WORK"
pkfs_mkfs 32M
socket="$WORK/control.sock"
pkfs_mount -o "allow_other,control=$socket"
chmod 0755 "$MNT"
chgrp 1001 "$REGION"
chmod 0660 "$REGION"
fallocate -l 1M "$MNT/b-file"
chown 1001:1001 "$MNT/b-file"
fallocate -l 1M "$MNT/vmm-file"
client_need_holds "$MNT/vmm-file"
state="$WORK/state"
mkdir "$state"
chown 1001:1001 "$state"

pkfs_log "a jammer keeps a one-connection daemon busy"
setpriv --reuid=1002 --regid=1002 --clear-groups -- "$HOSTILE" "$socket" chatty >/dev/null 2>&1 &
jammer=$!
client_bg "$jammer"
sleep 0.5

pkfs_log "A connects, hands its connection to B and exits"
setpriv --reuid=1001 --regid=1001 --clear-groups -- "$HOSTILE" "$socket" handoff "$state" "$MNT/b-file" \
  >"$WORK/a.out" 2>&1 &
a_pid=$!
wait "$a_pid" || pkfs_fail "A failed: $(cat "$WORK/a.out")"
for _ in $(seq 100); do [ -s "$state/b.pid" ] && break; sleep 0.05; done
[ -s "$state/b.pid" ] || pkfs_fail "B did not start: $(cat "$WORK/a.out")"
client_bg "$(cat "$state/b.pid")"

pkfs_log "the VMM gets A's pid ($a_pid)"
mkfifo "$WORK/vmm.in"
echo $((a_pid - 1)) >/proc/sys/kernel/ns_last_pid
"$VMM" hold "$MNT/vmm-file" <"$WORK/vmm.in" >"$WORK/vmm.out" 2>&1 &
vmm=$!
client_bg "$vmm"
exec {vmm_in}>"$WORK/vmm.in"
[ "$vmm" = "$a_pid" ] || pkfs_fail "could not give the VMM A's pid $a_pid (it got $vmm)"
sleep 0.2
kill -9 "$jammer"
wait "$jammer" 2>/dev/null || true
echo go >"$state/go"

for _ in $(seq 200); do grep -q "^map" "$state/b.out" 2>/dev/null && break; sleep 0.05; done
for _ in $(seq 200); do grep -q "^hold=" "$WORK/vmm.out" && break; sleep 0.05; done
hold=$(sed -n 's/^hold=//p' "$WORK/vmm.out")
[ -n "$hold" ] || pkfs_fail "the VMM did not map within 10 s: $(cat "$WORK/vmm.out")"
echo "$hold" >"$state/release"
for _ in $(seq 200); do grep -q "^release" "$state/b.out" 2>/dev/null && break; sleep 0.05; done
pkfs_log "B said: $(tr '\n' ' ' <"$state/b.out" 2>/dev/null)"

failures=()
if grep -q "^map status=0 " "$state/b.out"; then
  failures+=("B's map on the dead A's connection was granted, in the name of the VMM that has A's pid: $(grep '^map' "$state/b.out")")
elif ! grep -Eq "^map (status=[1-9]|failed)" "$state/b.out"; then
  failures+=("B's map got no answer: $(cat "$state/b.out" 2>/dev/null)")
fi
if grep -q "^release status=0 " "$state/b.out"; then
  failures+=("B released the VMM's hold $hold as its own: $(grep '^release' "$state/b.out")")
elif ! grep -Eq "^release (status=[1-9]|failed)" "$state/b.out"; then
  failures+=("B's release got no answer: $(cat "$state/b.out" 2>/dev/null)")
fi
kill -0 "$vmm" 2>/dev/null || failures+=("the VMM died: $(cat "$WORK/vmm.out")")
if truncate -s 512K "$MNT/vmm-file" 2>/dev/null; then
  failures+=("the VMM's hold is gone: its file could be shrunk")
fi
[ "${#failures[@]}" = 0 ] || pkfs_fail "${failures[*]}"
exec {vmm_in}>&-
pkfs_log "ok"
