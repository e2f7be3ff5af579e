#!/usr/bin/env bash
# control_hoard.sh: holds cannot be hoarded (issue 11, item 3).
#   - A uid that may only read a file (file 0644 of another user, region
#     readable) is refused a direct mapping, even read-only, with EACCES:
#     a hold blocks the owner's shrink and punch, so it needs write
#     permission. Nothing is allocated for it: mapping a 40 MiB sparse file
#     leaves the free space as it was.
#   - The owner of a writable file maps it twice in one process: the second
#     map fails with EEXIST (one hold per process and file).
#   - A writer uid taking holds on 320 files of its own: one process stops
#     at 64 holds (EDQUOT), several processes together at 256 (EDQUOT), and
#     root still maps afterwards (root is exempt from the per-uid limit).
# The region is a tmpfs file (4 KiB pages), so 300 small files cost 300
# pages, not 300 hugepages. Every check runs and is reported before the test
# fails.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/client.sh"

pkfs_setup
pkfs_need setpriv getfattr timeout
for tool in "$VMM" "$HOSTILE" "$PKFSCTL"; do [ -x "$tool" ] || pkfs_fail "$tool is not built"; done
pkfs_on_exit _client_stop_all
chmod 0755 "$WORK"
pkfs_mkfs 64M
pkfs_mount -o allow_other
chmod 0755 "$MNT"
# The writer (uid 1001) may use the region read-write through its group;
# the reader (uid 1002) may read it.
chgrp 1001 "$REGION"
chmod 0664 "$REGION"
writer() { setpriv --reuid=1001 --regid=1001 --clear-groups -- "$@"; }
reader() { setpriv --reuid=1002 --regid=1002 --clear-groups -- "$@"; }

fallocate -l 1M "$MNT/rootfile"
socket=$(getfattr --absolute-names --only-values -n user.pkfs.control "$MNT/rootfile") || pkfs_fail "no control socket"
client_need_holds "$MNT/rootfile"

failures=()
soft_fail() {
  echo "[control_hoard] FAIL: $*" >&2
  failures+=("$*")
}
free_blocks() { stat -f -c %f "$MNT"; }

pkfs_log "a reader's read-only map of a 40 MiB sparse file: EACCES, nothing allocated"
# Written at its start and then extended: holes (a truncate of an empty file
# would allocate the whole range at once).
printf x >"$MNT/sparse"
truncate -s 40M "$MNT/sparse"
chmod 0644 "$MNT/sparse"
chown 1003:1003 "$MNT/sparse"
sync
free_before=$(free_blocks)
status=0
out=$(reader timeout 20 "$VMM" map "$MNT/sparse" ro 2>&1) || status=$?
free_after=$(free_blocks)
if [ "$status" -eq 0 ]; then
  soft_fail "uid 1002, which may only read sparse, mapped it: $out"
elif ! grep -q "errno=13" <<<"$out"; then
  soft_fail "uid 1002's map of sparse failed without EACCES: $out"
fi
if [ "$free_after" != "$free_before" ]; then
  soft_fail "the reader's map changed the free blocks from $free_before to $free_after"
fi
# The hold, if one was taken, went with the VMM process; the space would not.

pkfs_log "the owner maps its file twice in one process: EEXIST the second time"
fallocate -l 64K "$MNT/mine"
chown 1001:1001 "$MNT/mine"
chmod 0600 "$MNT/mine"
out=$(writer timeout 20 "$HOSTILE" "$socket" maptwice "$MNT/mine" 2>&1) || true
if ! grep -q "^first status=0 " <<<"$out"; then
  soft_fail "the owner's first map of its file failed: $out"
elif ! grep -q "^second status=17 " <<<"$out"; then
  soft_fail "the owner's second map of the same file in the same process was not refused with EEXIST: $out"
fi

# Its hold goes with the process (the daemon watches holders): wait for
# that, so that the counts below start from nothing.
no_holds() { "$HOSTILE" "$socket" holds 2>/dev/null | grep -q "^status=0 count=0$"; }
pkfs_eventually no_holds || soft_fail "holds are left after the map-twice process exited: $("$HOSTILE" "$socket" holds 2>&1 | tr '\n' ' ')"

pkfs_log "a writer uid hoards: 64 holds per process, 256 per uid"
mkdir "$MNT/many"
for i in $(seq -w 0 319); do : >"$MNT/many/f$i"; done
for f in "$MNT"/many/f*; do fallocate -l 4K "$f"; done
chown -R 1001:1001 "$MNT/many"
files=("$MNT"/many/f*)
[ "${#files[@]}" = 320 ] || pkfs_fail "made ${#files[@]} files, not 320"

# hoarder NAME FIRST COUNT: a process of uid 1001 mapping files FIRST to
# FIRST+COUNT-1 and keeping its holds until the test ends; waits until it
# has said how far it got.
hoarder() {
  local name=$1 first=$2 count=$3
  # setpriv itself in the background (not a function, whose subshell
  # would be what client_bg kills): the hoarder's pid is $!.
  setpriv --reuid=1001 --regid=1001 --clear-groups -- "$HOSTILE" "$socket" hoard "${files[@]:$first:$count}" \
    >"$WORK/$name.out" 2>&1 &
  client_bg $!
  for _ in $(seq 400); do grep -q "^done" "$WORK/$name.out" && break; sleep 0.05; done
  grep -q "^done" "$WORK/$name.out" || soft_fail "hoarder $name did not finish within 20 s: $(cat "$WORK/$name.out")"
}
held_by() { sed -n 's/^held=//p' "$WORK/$1.out"; }
refusal_of() { sed -n 's/^refused=\([0-9]*\) .*/\1/p' "$WORK/$1.out"; }

hoarder p1 0 320
if [ "$(held_by p1)" != 64 ] || [ "$(refusal_of p1)" != 122 ]; then
  soft_fail "one process of uid 1001 mapping 320 files: wanted 64 holds then EDQUOT, got: $(tr '\n' ' ' <"$WORK/p1.out")"
elif ! grep -q "^refused=.*64" "$WORK/p1.out"; then
  soft_fail "the per-process refusal does not name the limit of 64: $(cat "$WORK/p1.out")"
fi
# More processes of the same uid on other files: 64 + 3 * 60 = 244, so the
# fifth process gets 12 more and is refused at the uid's 256.
total=$(held_by p1)
hoarder p2 64 60
hoarder p3 124 60
hoarder p4 184 60
hoarder p5 244 60
for p in p2 p3 p4; do total=$((total + $(held_by $p || echo 0))); done
total=$((total + $(held_by p5 || echo 0)))
if [ "$total" != 256 ] || [ "$(held_by p5)" != 12 ] || [ "$(refusal_of p5)" != 122 ]; then
  soft_fail "five processes of uid 1001: wanted 256 holds in all (the fifth stopped by EDQUOT after 12), got $total: p5 said $(tr '\n' ' ' <"$WORK/p5.out")"
elif ! grep -q "^refused=.*256" "$WORK/p5.out"; then
  soft_fail "the per-uid refusal does not name the limit of 256: $(cat "$WORK/p5.out")"
fi
hoarder p6 304 4
if [ "$(held_by p6)" != 0 ] || [ "$(refusal_of p6)" != 122 ]; then
  soft_fail "a sixth process of uid 1001 over the uid's limit was not refused with EDQUOT: $(tr '\n' ' ' <"$WORK/p6.out")"
fi

pkfs_log "root still maps"
out=$(timeout 10 "$VMM" map "$MNT/rootfile" 2>&1) || soft_fail "root cannot map while uid 1001 hoards: $out"

if [ "${#failures[@]}" -gt 0 ]; then
  pkfs_fail "${#failures[@]} check(s) failed: ${failures[*]}"
fi
for pid in "${CLIENT_PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
CLIENT_PIDS=()
pkfs_unmount
pkfs_log "ok"
