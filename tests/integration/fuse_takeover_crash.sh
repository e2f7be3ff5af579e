#!/usr/bin/env bash
# fuse_takeover_crash.sh: unplanned restarts. The mount is made with
# -o keeper; a client with an open descriptor, its working directory in the
# mount and a loop of appends, reads, creates, renames, removals, mkdir and
# rmdir runs while the daemon is killed with kill -9, again and again
# ($PKFS_TAKEOVER_ROUNDS, default 100), each time at a random moment, and a
# new daemon takes the connection from the keeper (pkfs --takeover). The
# client sees no error (requests in flight at the kill are re-sent by the
# kernel and answered consistently with the journal) and every byte it
# wrote is there; the stall the client saw is printed (its slowest
# operation) with the median and worst kill-to-serving time; the keeper
# ends with the mount; fsck is clean after the unmount.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/mount.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib/takeover.sh"

rounds=${PKFS_TAKEOVER_ROUNDS:-100}
pkfs_setup
pkfs_need python3
pkfs_mkfs 64M
pkfs_mount -o keeper
pkfs_on_exit '[ -n "$CLIENT_PID" ] && kill $CLIENT_PID'
keeper=""
for _ in $(seq 100); do
  keeper=$(takeover_keeper_pid)
  [ -n "$keeper" ] && break
  sleep 0.05
done
[ -n "$keeper" ] || pkfs_fail "no keeper started: $(cat "$PKFS_LOG")"
pkfs_on_exit "kill $keeper"
mkdir "$MNT/work"

takeover_client "$MNT/work" "$WORK/stop" "$WORK/result"
sleep 0.3
restarts=()
for round in $(seq "$rounds"); do
  # A random moment inside the client's loop.
  sleep "0.0$((RANDOM % 10))$((RANDOM % 10))"
  start=$(date +%s%N)
  kill -9 "$PKFS_PID"
  wait "$PKFS_PID" 2>/dev/null || true
  takeover_start
  restarts+=($(( ($(date +%s%N) - start) / 1000000 )))
  grep -q "from the keeper" "$PKFS_LOG" || pkfs_fail "round $round: not taken from the keeper: $(cat "$PKFS_LOG")"
  kill -0 "$CLIENT_PID" 2>/dev/null || pkfs_fail "round $round: the client died: $(cat "$WORK/result" 2>/dev/null)"
done
sleep 0.3
takeover_client_finish "$WORK/stop" "$WORK/result"
sorted=$(printf '%s\n' "${restarts[@]}" | sort -n)
median=$(sed -n "$(( (rounds + 1) / 2 ))p" <<<"$sorted")
worst=$(tail -n 1 <<<"$sorted")
pkfs_log "$rounds kill -9 + takeover rounds; client: $(cat "$WORK/result") (ops, slowest ms); kill to serving: median $median ms, worst $worst ms"
grep -h "re-sent" "$WORK"/daemon.*.log | sort | uniq -c | sed 's/^/  /' || true

pkfs_unmount
for _ in $(seq 60); do kill -0 "$keeper" 2>/dev/null || break; sleep 0.05; done
kill -0 "$keeper" 2>/dev/null && pkfs_fail "the keeper outlived the mount"
"$FSCK" "$REGION" >"$WORK/fsck.out" 2>&1 || pkfs_fail "fsck: $(cat "$WORK/fsck.out")"
pkfs_log "ok"
