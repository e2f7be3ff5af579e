#!/usr/bin/env bash
# control_jam.sh: local users cannot stop the control plane (issue 11, item
# 1). Twenty hostile clients, as four unprivileged uids, are connected at
# once: some send a cheap request every 1.5 s on one connection, some
# connect and say nothing, some pass a loopback TCP socket whose close
# blocks for 60 s (SO_LINGER and a full send buffer nobody reads), some
# open many connections, some send garbage. Meanwhile:
#   - root maps a file with libpkfs within 1 s;
#   - a holder killed with -9 has its hold released within 5 s (the holder
#     watch is not starved either);
#   - SIGTERM ends the daemon, and its mount, within 5 s.
# A daemon that serves one connection at a time, or closes a client's
# descriptor on its serving thread, fails all three: root's map waits until
# the timeout below, the hold stays, and the daemon stays up and mounted.
# All three are checked and reported before the test fails.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/client.sh"

# The region is a tmpfs file: the control plane is what is tested, and the
# test need not wait for the hugepage lock of other tests.
pkfs_setup
pkfs_need setpriv getfattr timeout
for tool in "$VMM" "$HOSTILE"; do [ -x "$tool" ] || pkfs_fail "$tool is not built"; done
pkfs_on_exit _client_stop_all
chmod 0755 "$WORK"
pkfs_mkfs 32M
pkfs_mount -o allow_other
chmod 0755 "$MNT"
fallocate -l 4M "$MNT/ram"
fallocate -l 4M "$MNT/held"
socket=$(getfattr --absolute-names --only-values -n user.pkfs.control "$MNT/ram") || pkfs_fail "no control socket"
client_need_holds "$MNT/ram"

failures=()
soft_fail() {
  echo "[control_jam] FAIL: $*" >&2
  failures+=("$*")
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# hostile UID MODE ARGS...: one hostile client, killed at exit.
hostile_count=0
hostile() {
  local uid=$1
  shift
  hostile_count=$((hostile_count + 1))
  setpriv --reuid="$uid" --regid="$uid" --clear-groups -- "$HOSTILE" "$socket" "$@" \
    >"$WORK/hostile.$hostile_count.out" 2>&1 &
  client_bg $!
}

pkfs_log "20 hostile clients connect"
# The chatty ones first: a one-thread daemon is theirs from now on.
for uid in 1001 1002 1003 1004 1001 1002; do hostile "$uid" chatty; done
for uid in 1001 1002 1003 1004; do hostile "$uid" silent; done
for uid in 1003 1004 1003 1004; do hostile "$uid" linger; done
for uid in 1001 1002; do hostile "$uid" many 40; done
for uid in 1001 1002 1003 1004; do hostile "$uid" garbage; done
[ "$hostile_count" = 20 ] || pkfs_fail "started $hostile_count hostile clients, not 20"
sleep 3 # every kind is connected and at work (the linger ones have sent 2 or 3 sockets each)
# They run until killed: one that stopped would make the test weaker.
i=0
for pid in "${CLIENT_PIDS[@]}"; do
  i=$((i + 1))
  kill -0 "$pid" 2>/dev/null || pkfs_fail "hostile client $i exited: $(cat "$WORK/hostile.$i.out")"
done

pkfs_log "root maps a file while they are connected"
start=$(now_ms)
status=0
out=$(timeout 10 "$VMM" map "$MNT/ram" 2>&1) || status=$?
elapsed=$(($(now_ms) - start))
pkfs_log "root's map took $elapsed ms (status $status)"
if [ "$status" -ne 0 ]; then
  soft_fail "root's map under 20 hostile clients failed after $elapsed ms (status $status): $out"
elif [ "$elapsed" -gt 1000 ]; then
  soft_fail "root's map under 20 hostile clients took $elapsed ms (more than 1 s)"
fi

pkfs_log "a holder killed with -9 loses its hold within 5 s"
mkfifo "$WORK/holder.in"
"$VMM" hold "$MNT/held" <"$WORK/holder.in" >"$WORK/holder.out" 2>&1 &
holder=$!
client_bg "$holder"
exec {holder_in}>"$WORK/holder.in"
for _ in $(seq 100); do grep -q "^hold=" "$WORK/holder.out" && break; sleep 0.05; done
if ! grep -q "^hold=" "$WORK/holder.out"; then
  soft_fail "a root holder could not map within 5 s under the hostile clients: $(cat "$WORK/holder.out")"
else
  truncate -s 2M "$MNT/held" 2>/dev/null && soft_fail "a held file could be shrunk (no hold?)"
  kill -9 "$holder"
  wait "$holder" 2>/dev/null || true
  start=$(now_ms)
  released=""
  for _ in $(seq 100); do
    if truncate -s 2M "$MNT/held" 2>/dev/null; then released=1; break; fi
    sleep 0.05
  done
  if [ -n "$released" ]; then
    pkfs_log "the killed holder's hold went after $(($(now_ms) - start)) ms"
  else
    soft_fail "the hold of a holder killed with -9 was still there 5 s later"
  fi
fi
exec {holder_in}>&-

pkfs_log "SIGTERM ends the daemon within 5 s"
start=$(now_ms)
kill -TERM "$PKFS_PID"
gone=""
for _ in $(seq 100); do
  if ! kill -0 "$PKFS_PID" 2>/dev/null; then gone=1; break; fi
  sleep 0.05
done
elapsed=$(($(now_ms) - start))
if [ -z "$gone" ]; then
  soft_fail "the daemon was still running 5 s after SIGTERM"
else
  wait "$PKFS_PID" 2>/dev/null || true
  pkfs_log "the daemon exited $elapsed ms after SIGTERM"
  if mountpoint -q "$MNT"; then soft_fail "the daemon exited after SIGTERM but $MNT is still mounted"; fi
fi

if [ "${#failures[@]}" -gt 0 ]; then
  pkfs_fail "${#failures[@]} check(s) failed: ${failures[*]}"
fi
pkfs_log "ok"
