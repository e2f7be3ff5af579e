#!/usr/bin/env bash
# fuse_takeover.sh: a planned hand-over of a live mount to a new daemon
# process (pkfs --takeover from the same binary), repeated, while a client
# with an open descriptor, its working directory in the mount and a loop of
# reads, writes, creates, renames and removals runs on: the client sees no
# error and every byte it wrote is there; each old daemon exits 0 without
# unmounting; fsck is clean after the unmount. Prints the stall each
# hand-over caused, as the old daemon measured it (stop reading to the
# successor's verdict) and as a client saw it (the longest gap between two
# of its writes), with medians. Then the
# refusals: a successor speaking another protocol version, a successor
# whose region validation fails (the old daemon resumes), a second
# successor while one is taking over, a user who is neither root nor the
# owner, and a mountpoint without a daemon or keeper.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/mount.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib/takeover.sh"

pkfs_setup
pkfs_need python3 setpriv
pkfs_mkfs 64M
pkfs_mount
pkfs_on_exit '[ -n "$CLIENT_PID" ] && kill $CLIENT_PID'
PROBE_PID=""
pkfs_on_exit '[ -n "$PROBE_PID" ] && kill $PROBE_PID'
mkdir "$MNT/busy"

pkfs_log "planned hand-overs under a running client"
takeover_client "$MNT/busy" "$WORK/stop" "$WORK/result"
sleep 0.5
stalls=()
seen=()
for round in 1 2 3 4 5; do
  old_pid=$PKFS_PID
  old_log=$PKFS_LOG
  takeover_probe "$MNT/probe" "$WORK/probe.$round"
  sleep 0.1
  takeover_start
  sleep 0.2
  touch "$WORK/probe.$round.stop"
  wait "$PROBE_PID" || pkfs_fail "round $round: the probe failed"
  seen+=("$(cat "$WORK/probe.$round")")
  status=0
  wait "$old_pid" || status=$?
  [ "$status" -eq 0 ] || pkfs_fail "round $round: the old daemon exited with $status: $(cat "$old_log")"
  grep -q "handed .* over; exiting" "$old_log" || pkfs_fail "round $round: old daemon log: $(cat "$old_log")"
  mountpoint -q "$MNT" || pkfs_fail "round $round: the mount is gone"
  stall=$(sed -n 's/.*requests stalled for \([0-9.]*\) ms.*/\1/p' "$old_log")
  stalls+=("$stall")
  kill -0 "$CLIENT_PID" 2>/dev/null || pkfs_fail "round $round: the client died: $(cat "$WORK/result" 2>/dev/null)"
  sleep 0.3
done
takeover_client_finish "$WORK/stop" "$WORK/result"
# A planned hand-over leaves nothing read and unanswered: the kernel must
# re-send nothing (a re-send while the successor serves runs requests twice).
if grep -l "re-sent by the kernel" "$WORK"/daemon.*.log 2>/dev/null; then
  pkfs_fail "a planned hand-over had requests re-sent: $(grep -h "re-sent by the kernel" "$WORK"/daemon.*.log | head -3)"
fi
summary=$(cat "$WORK/result")
median=$(printf '%s\n' "${stalls[@]}" | sort -n | sed -n 3p)
seen_median=$(printf '%s\n' "${seen[@]}" | sort -n | sed -n 3p)
seen_worst=$(printf '%s\n' "${seen[@]}" | sort -n | tail -n 1)
pkfs_log "client: $summary (ops, slowest ms)"
pkfs_log "stall, daemon side (ms): ${stalls[*]}; median $median"
pkfs_log "stall, longest gap between two writes of a client (ms): ${seen[*]}; median $seen_median, worst $seen_worst"

pkfs_log "refusal: another protocol version"
pkfs_expect_fail "incompatible hand-over protocol version 99" env PKFS_TAKEOVER_TEST_VERSION=99 "$PKFS" --takeover "$MNT" -f
kill -0 "$PKFS_PID" || pkfs_fail "the daemon died after refusing a foreign successor"
echo still > "$MNT/busy/still" && [ "$(cat "$MNT/busy/still")" = still ] || pkfs_fail "mount does not serve after a refusal"

pkfs_log "refusal: the successor's validation fails; the old daemon resumes"
exec 8<"$MNT/busy/log"
pkfs_expect_fail "region validation failed" env PKFS_TAKEOVER_TEST_FAIL=validate "$PKFS" --takeover "$MNT" -f
kill -0 "$PKFS_PID" || pkfs_fail "the old daemon did not resume"
grep -q "hand-over failed: region validation failed (test); resuming" "$PKFS_LOG" || pkfs_fail "no resume in the log: $(cat "$PKFS_LOG")"
head -c 9 <&8 | grep -q 00000000 || pkfs_fail "a descriptor opened before the failed hand-over does not read"
exec 8<&-
echo resumed > "$MNT/busy/resumed" && [ "$(cat "$MNT/busy/resumed")" = resumed ] || pkfs_fail "no service after resuming"

pkfs_log "refusal: a second successor while one takes over"
old_pid=$PKFS_PID
PKFS_MOUNTS=$((PKFS_MOUNTS + 1))
PKFS_LOG="$WORK/daemon.$PKFS_MOUNTS.log"
env PKFS_TAKEOVER_TEST_DELAY_MS=1500 "$PKFS" --takeover "$MNT" -f >"$PKFS_LOG" 2>&1 &
PKFS_PID=$!
PKFS_PIDS+=("$PKFS_PID")
sleep 0.5
pkfs_expect_fail "another successor \(pid $PKFS_PID\) is taking over" "$PKFS" --takeover "$MNT" -f
wait "$old_pid" || pkfs_fail "the old daemon failed after the first successor took over"
for _ in $(seq 100); do grep -q "took over" "$PKFS_LOG" && break; sleep 0.05; done
grep -q "took over" "$PKFS_LOG" || pkfs_fail "the first successor did not take over: $(cat "$PKFS_LOG")"

pkfs_log "refusal: neither root nor the owner"
pkfs_expect_fail "permission denied: only root or the owner" setpriv --reuid=65534 --regid=65534 --clear-groups "$PKFS" --takeover "$MNT" -f

pkfs_log "refusal: no daemon and no keeper"
mkdir "$WORK/plain"
pkfs_expect_fail "no pkfs daemon serves .* and no keeper" "$PKFS" --takeover "$WORK/plain" -f

pkfs_log "unmount and fsck"
pkfs_unmount
"$FSCK" "$REGION" >"$WORK/fsck.out" 2>&1 || pkfs_fail "fsck: $(cat "$WORK/fsck.out")"
pkfs_log "ok"
