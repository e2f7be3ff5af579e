#!/usr/bin/env bash
# control_small.sh: the smaller holes of the control socket (issue 11,
# item 6), each checked as an unprivileged uid:
#   - kInfo answers only root and readers of the region (others: EACCES);
#   - kHolds shows a uid that may not read the region only its own holds;
#   - kStat refuses an O_PATH descriptor (EBADF) and shows no extents of a
#     file the caller may not read;
#   - the region permission check honours POSIX ACLs: a region 0666 whose
#     ACL denies a user refuses that user's map (EACCES);
#   - `-o control=DIR/sock` with DIR world-writable without the sticky bit
#     is refused at mount, with a message; so is an existing /run/pkfs
#     that others may write or that is not root's;
#   - a socket directory owned by another uid, who could put a symlink in
#     place of the socket between its bind and its chmod, is refused; and in
#     any case the symlink's target is never chmodded (the daemon's chmod
#     calls are delayed by strace so that a swap would land in between);
#   - a non-root write to a held (direct_io) file clears its set-user-ID
#     and set-group-ID bits.
# (A reply over 256 KiB: control_bigreply.sh.)
# The regions are tmpfs files (4 KiB pages; tmpfs keeps POSIX ACLs). Every
# check runs and is reported before the test fails.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/client.sh"

pkfs_setup
pkfs_need setpriv getfattr setfacl timeout python3
for tool in "$VMM" "$HOSTILE" "$PKFSCTL"; do [ -x "$tool" ] || pkfs_fail "$tool is not built"; done
pkfs_on_exit _client_stop_all
chmod 0755 "$WORK"
pkfs_mkfs 128M
pkfs_mount -o allow_other
chmod 0755 "$MNT"
as() {
  local uid=$1
  shift
  setpriv --reuid="$uid" --regid="$uid" --clear-groups -- "$@"
}

fallocate -l 1M "$MNT/a"
socket=$(getfattr --absolute-names --only-values -n user.pkfs.control "$MNT/a") || pkfs_fail "no control socket"
client_need_holds "$MNT/a"

failures=()
soft_fail() {
  echo "[control_small] FAIL: $*" >&2
  failures+=("$*")
}
# The region: root's, group 1002 (a VMM's group) may use it; others nothing.
chgrp 1002 "$REGION"
chmod 0660 "$REGION"

pkfs_log "kInfo: EACCES to a uid that may not read the region"
out=$(as 1001 "$HOSTILE" "$socket" info 2>&1) || true
grep -q "^status=13 " <<<"$out" || soft_fail "uid 1001 (no access to the region) asked kInfo: $out"
out=$(as 1002 "$HOSTILE" "$socket" info 2>&1) || true
grep -q "^status=0 " <<<"$out" || soft_fail "uid 1002 (reads the region) was refused kInfo: $out"

pkfs_log "kHolds: a uid that may not read the region sees only its own holds"
fallocate -l 1M "$MNT/b"
chown 1002:1002 "$MNT/b"
"$HOSTILE" "$socket" hoard "$MNT/a" >"$WORK/root-holder.out" 2>&1 &
client_bg $!
setpriv --reuid=1002 --regid=1002 --clear-groups -- "$HOSTILE" "$socket" hoard "$MNT/b" >"$WORK/user-holder.out" 2>&1 &
client_bg $!
for _ in $(seq 200); do
  grep -q "^done" "$WORK/root-holder.out" && grep -q "^done" "$WORK/user-holder.out" && break
  sleep 0.05
done
if ! grep -q "^held=1" "$WORK/root-holder.out" || ! grep -q "^held=1" "$WORK/user-holder.out"; then
  soft_fail "the holders did not get their holds: $(cat "$WORK/root-holder.out" "$WORK/user-holder.out" | tr '\n' ' ')"
fi
# uid 1002 loses the region: it keeps its hold but is now like anyone else.
chmod 0600 "$REGION"
out=$(as 1002 "$HOSTILE" "$socket" holds 2>&1) || true
if ! grep -q "^status=0 count=1$" <<<"$out" || ! grep -q "^hold .* uid=1002 " <<<"$out"; then
  soft_fail "kHolds as uid 1002 (its own hold, root's hold) showed: $(tr '\n' ' ' <<<"$out")"
fi
out=$(as 1001 "$HOSTILE" "$socket" holds 2>&1) || true
grep -q "^status=0 count=0$" <<<"$out" || soft_fail "kHolds as uid 1001 (no holds) showed: $(tr '\n' ' ' <<<"$out")"
out=$("$HOSTILE" "$socket" holds 2>&1) || true
grep -q "^status=0 count=2$" <<<"$out" || soft_fail "kHolds as root does not show both holds: $(tr '\n' ' ' <<<"$out")"
chmod 0660 "$REGION"

pkfs_log "kStat: an O_PATH descriptor of an unreadable file is refused (EBADF), no extents"
head -c 1M /dev/urandom >"$MNT/secret"
chmod 0600 "$MNT/secret"
out=$(as 1001 "$HOSTILE" "$socket" stat "$MNT/secret" opath 2>&1) || true
grep -q "^status=9 extents=0$" <<<"$out" || soft_fail "kStat with an O_PATH descriptor of a 0600 root file, as uid 1001: $(tr '\n' ' ' <<<"$out")"
# A file uid 1001 may read: O_PATH is refused all the same, O_RDONLY works.
head -c 1M /dev/urandom >"$MNT/public"
chmod 0644 "$MNT/public"
out=$(as 1001 "$HOSTILE" "$socket" stat "$MNT/public" opath 2>&1) || true
grep -q "^status=9 extents=0$" <<<"$out" || soft_fail "kStat with an O_PATH descriptor of a 0644 file, as uid 1001: $(tr '\n' ' ' <<<"$out")"
out=$(as 1001 "$HOSTILE" "$socket" stat "$MNT/public" 2>&1) || true
grep -q "^status=0 extents=[1-9]" <<<"$out" || soft_fail "kStat with an O_RDONLY descriptor of a 0644 file, as uid 1001: $(tr '\n' ' ' <<<"$out")"

pkfs_log "a POSIX ACL on the region that denies a user refuses its map"
fallocate -l 1M "$MNT/c"
chown 1003:1003 "$MNT/c"
chmod 0600 "$MNT/c"
chmod 0666 "$REGION"
setfacl -m u:1003:--- "$REGION" || pkfs_fail "setfacl on the region (in $WORK) failed"
status=0
out=$(as 1003 timeout 10 "$VMM" map "$MNT/c" 2>&1) || status=$?
if [ "$status" -eq 0 ]; then
  soft_fail "uid 1003, denied the region by its ACL, mapped its file: $out"
elif ! grep -q "errno=13" <<<"$out"; then
  soft_fail "uid 1003, denied the region by its ACL, failed without EACCES: $out"
fi
setfacl -b "$REGION"
chmod 0660 "$REGION"

pkfs_log "a write by a non-root user to a held file clears set-user-ID and set-group-ID"
fallocate -l 1M "$MNT/setid"
chmod 06777 "$MNT/setid"
mkfifo "$WORK/setid-holder.in"
"$VMM" hold "$MNT/setid" <"$WORK/setid-holder.in" >"$WORK/setid-holder.out" 2>&1 &
client_bg $!
exec {setid_in}>"$WORK/setid-holder.in"
for _ in $(seq 200); do grep -q "^hold=" "$WORK/setid-holder.out" && break; sleep 0.05; done
grep -q "^hold=" "$WORK/setid-holder.out" || soft_fail "root could not hold setid: $(cat "$WORK/setid-holder.out")"
# Opened after the hold: direct_io, so the write goes straight to pkfs.
as 1001 dd if=/dev/zero of="$MNT/setid" bs=4096 count=1 conv=notrunc status=none ||
  soft_fail "uid 1001 could not write the 06777 file"
# The daemon's own view (kStat), not the kernel's cached attributes.
mode=$("$HOSTILE" "$socket" stat "$MNT/setid" | sed -n 's/^mode=//p')
[ "$mode" = 777 ] || soft_fail "after uid 1001 wrote the held 06777 file its mode is ${mode:-unknown} (set-id bits kept)"
exec {setid_in}>&-

# start_second_daemon LOG COMMAND...: a daemon of a second region (COMMAND
# runs it, in the foreground of a background job: its pid in $second),
# cleared at exit.
start_second_daemon() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  second=$!
  PKFS_PIDS+=("$second")
  PKFS_MOUNTPOINTS+=("$WORK/mnt2")
}
"$MKFS" -q -s 16M "$WORK/region2" || pkfs_fail "mkfs of a second region failed"
mkdir "$WORK/mnt2"

pkfs_log "control=DIR/sock with DIR world-writable without the sticky bit: mount refused"
mkdir "$WORK/open"
chmod 0777 "$WORK/open"
start_second_daemon "$WORK/open.log" "$PKFS" "$WORK/region2" "$WORK/mnt2" -f -o "control=$WORK/open/ctl.sock"
for _ in $(seq 200); do
  kill -0 "$second" 2>/dev/null || break
  mountpoint -q "$WORK/mnt2" && break
  sleep 0.05
done
sleep 0.3
if mountpoint -q "$WORK/mnt2" || kill -0 "$second" 2>/dev/null; then
  soft_fail "the daemon with control= in a world-writable, non-sticky directory is running: $(cat "$WORK/open.log")"
  fusermount3 -u "$WORK/mnt2" 2>/dev/null || true
  wait "$second" 2>/dev/null || true
else
  wait "$second" 2>/dev/null || true
  grep -q "$WORK/open" "$WORK/open.log" ||
    soft_fail "the refusal of a world-writable control directory does not name it: $(cat "$WORK/open.log")"
fi

if command -v strace >/dev/null && [ -x /usr/bin/python3 ]; then
  pkfs_log "a symlink swapped in for the socket before its chmod: the target keeps its mode"
  mkdir "$WORK/userdir"
  chown 1001:1001 "$WORK/userdir"
  chmod 0755 "$WORK/userdir"
  echo "root's" >"$WORK/victim"
  chmod 0600 "$WORK/victim"
  # uid 1001 owns the directory (allowed: not group or other writable) and
  # swaps a symlink to the victim in for the socket as soon as it appears.
  setpriv --reuid=1001 --regid=1001 --clear-groups -- /usr/bin/python3 - "$WORK/userdir/ctl.sock" "$WORK/victim" \
    >"$WORK/swapper.out" 2>&1 <<'PY' &
import os, stat, sys, time
path, victim = sys.argv[1], sys.argv[2]
deadline = time.time() + 20
while time.time() < deadline:
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.symlink(victim, path + ".new")
            os.rename(path + ".new", path)
            print("swapped", flush=True)
            break
    except FileNotFoundError:
        pass
    time.sleep(0.001)
PY
  client_bg $!
  swapper=$!
  sleep 0.3
  # The daemon's chmod calls wait 0.5 s (strace), so the swap lands between
  # the bind and the chmod.
  start_second_daemon "$WORK/symlink.log" \
    strace -f -qq -o /dev/null -e trace=chmod,fchmod,fchmodat -e inject=chmod,fchmod,fchmodat:delay_enter=500000 \
    "$PKFS" "$WORK/region2" "$WORK/mnt2" -f -o "control=$WORK/userdir/ctl.sock"
  wait "$swapper" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$second" 2>/dev/null || break
    mountpoint -q "$WORK/mnt2" && break
    sleep 0.05
  done
  sleep 1
  # A directory another uid owns is refused outright (that uid could swap
  # the socket); otherwise the swap must have landed and changed nothing.
  if grep -q "userdir belongs to uid 1001, who could replace the socket" "$WORK/symlink.log"; then
    pkfs_log "the daemon refused a socket directory uid 1001 owns"
  else
    grep -q swapped "$WORK/swapper.out" || soft_fail "the swapper never saw the socket: $(cat "$WORK/swapper.out" "$WORK/symlink.log")"
  fi
  mode=$(stat -c %a "$WORK/victim")
  [ "$mode" = 600 ] || soft_fail "the daemon chmodded the symlink's target: it is now mode $mode"
  fusermount3 -u "$WORK/mnt2" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$second" 2>/dev/null || break; sleep 0.05; done
  kill "$second" 2>/dev/null || true
  wait "$second" 2>/dev/null || true
else
  pkfs_log "strace or /usr/bin/python3 is missing: the socket symlink race is not checked"
fi

# An existing /run/pkfs others may write, or not root's: mount refused. In
# a mount namespace of its own with a tmpfs on /run, and a pid namespace, so
# that the daemon and its mount go with it whatever happens.
for how in "0777 root" "0755 1001"; do
  set -- $how
  pkfs_log "an existing /run/pkfs of mode $1 owned by $2: mount refused"
  out=$(unshare --mount --pid --fork --mount-proc bash -c '
    mount -t tmpfs -o mode=0755 none /run || exit 2
    mkdir /run/pkfs && chmod "$5" /run/pkfs && chown "$6" /run/pkfs || exit 2
    "$1" "$2" "$3" -f >"$4" 2>&1 &
    daemon=$!
    for _ in $(seq 100); do
      kill -0 $daemon 2>/dev/null || break
      mountpoint -q "$3" && break
      sleep 0.05
    done
    sleep 0.3
    if mountpoint -q "$3" || kill -0 $daemon 2>/dev/null; then
      echo running
      fusermount3 -u "$3" 2>/dev/null
      wait $daemon
    else
      echo refused
    fi
  ' _ "$PKFS" "$WORK/region2" "$WORK/mnt2" "$WORK/run.log" "$1" "$2" 2>&1) || true
  if [ "$out" != refused ]; then
    soft_fail "a daemon with /run/pkfs of mode $1 owned by $2: $out: $(cat "$WORK/run.log")"
  elif ! grep -q "/run/pkfs" "$WORK/run.log"; then
    soft_fail "the refusal of /run/pkfs of mode $1 owned by $2 does not name it: $(cat "$WORK/run.log")"
  fi
done

if [ "${#failures[@]}" -gt 0 ]; then
  pkfs_fail "${#failures[@]} check(s) failed: ${failures[*]}"
fi
for pid in "${CLIENT_PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
CLIENT_PIDS=()
pkfs_unmount
pkfs_log "ok"
