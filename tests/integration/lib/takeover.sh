# tests/integration/lib/takeover.sh: helpers of the daemon takeover tests
# (fuse_takeover*.sh), on top of lib/mount.sh.
#
# takeover_client DIR STOPFILE RESULT: starts, in the background, a client
# that lives in DIR on the mount (its working directory) and loops until
# STOPFILE exists: appends a numbered line to a file it keeps open and reads
# the whole file back through that descriptor; creates a small file, renames
# it, removes the one before; makes and removes a directory. Any error ends
# it at once with a line in RESULT; at the end it checks every byte it wrote
# and writes "ok OPS MAX_MS" (operations, slowest one in milliseconds).
# $CLIENT_PID is its pid.
# takeover_start [ENV=VALUE...]: runs `pkfs --takeover $MNT -f` in the
# background with those variables; waits until it serves. It becomes
# $PKFS_PID (the one pkfs_unmount waits for).

FSCK="$PKFS_BIN_DIR/fsck/fsck.pkfs"
CLIENT_PID=""

takeover_client() {
  local dir=$1 stop=$2 result=$3
  python3 - "$dir" "$stop" "$result" <<'PY' &
import os, sys, time
directory, stop, result = sys.argv[1:4]
os.chdir(directory)
ops, slowest, n = 0, 0.0, 0
def timed(fn, *args):
    global ops, slowest
    start = time.monotonic()
    value = fn(*args)
    slowest = max(slowest, time.monotonic() - start)
    ops += 1
    return value
try:
    log = os.open("log", os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    expected = b""
    while not os.path.exists(stop):
        line = b"%08d\n" % n
        timed(os.write, log, line)
        expected += line
        got = timed(os.pread, log, len(expected) + 1, 0)
        if got != expected:
            raise RuntimeError("log read back %d bytes, wrote %d" % (len(got), len(expected)))
        fd = timed(os.open, "new.%d" % n, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        timed(os.write, fd, b"file %d\n" % n)
        timed(os.close, fd)
        timed(os.rename, "new.%d" % n, "file.%d" % n)
        if n > 0:
            timed(os.unlink, "file.%d" % (n - 1))
        timed(os.mkdir, "dir.%d" % n)
        if n > 0:
            timed(os.rmdir, "dir.%d" % (n - 1))
        n += 1
    # Every byte and name as written, through the same descriptor and cwd.
    whole = os.pread(log, len(expected) + 4096, 0)
    if whole != expected:
        raise RuntimeError("final log has %d bytes, wrote %d" % (len(whole), len(expected)))
    names = sorted(os.listdir("."))
    want = sorted(["log"] + (["file.%d" % (n - 1), "dir.%d" % (n - 1)] if n else []))
    if names != want:
        raise RuntimeError("directory holds %s, want %s" % (names, want))
    if n and open("file.%d" % (n - 1), "rb").read() != b"file %d\n" % (n - 1):
        raise RuntimeError("file.%d has the wrong content" % (n - 1))
    os.close(log)
    with open(result, "w") as f:
        f.write("ok %d %.1f\n" % (ops, slowest * 1000))
except Exception as e:
    with open(result, "w") as f:
        f.write("error after %d operations (round %d): %r\n" % (ops, n, e))
    sys.exit(1)
PY
  CLIENT_PID=$!
}

# takeover_client_finish STOPFILE RESULT: stops the client, fails the test
# unless it reports ok (not in a subshell: it waits for the client).
takeover_client_finish() {
  local stop=$1 result=$2
  touch "$stop"
  wait "$CLIENT_PID" || true
  CLIENT_PID=""
  [ -f "$result" ] || pkfs_fail "the client left no result"
  grep -q '^ok ' "$result" || pkfs_fail "the client saw an error: $(cat "$result")"
}

takeover_start() {
  PKFS_MOUNTS=$((PKFS_MOUNTS + 1))
  PKFS_LOG="$WORK/daemon.$PKFS_MOUNTS.log"
  : >"$PKFS_LOG"  # before the background job opens it: we grep it at once
  env "$@" "$PKFS" --takeover "$MNT" -f >"$PKFS_LOG" 2>&1 &
  PKFS_PID=$!
  PKFS_PIDS+=("$PKFS_PID")
  for _ in $(seq 200); do
    grep -q "took over" "$PKFS_LOG" && return 0
    kill -0 "$PKFS_PID" 2>/dev/null || break
    sleep 0.05
  done
  cat "$PKFS_LOG" >&2
  pkfs_fail "pkfs --takeover $MNT did not take over"
}

# takeover_keeper_pid: the keeper of $MNT, from the log of the mount.
takeover_keeper_pid() { sed -n 's/.*keeper started (pid \([0-9]*\)).*/\1/p' "$WORK/daemon.1.log" | head -n 1; }

# takeover_probe FILE OUT: starts, in the background, a loop of 1-byte
# pwrite(2)s to FILE (each one a FUSE WRITE: writes go through to the
# daemon) until OUT.stop exists, then writes the longest gap between two
# completed writes, in milliseconds, to OUT: the stall a client saw.
# Returns once the probe writes. $PROBE_PID is its pid.
takeover_probe() {
  python3 - "$1" "$2" <<'PY' &
import os, sys, time
path, out = sys.argv[1:3]
fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
os.pwrite(fd, b"x", 0)
open(out + ".ready", "w").close()
last = time.monotonic()
gap = 0.0
while not os.path.exists(out + ".stop"):
    os.pwrite(fd, b"x", 0)
    now = time.monotonic()
    gap = max(gap, now - last)
    last = now
os.close(fd)
open(out, "w").write("%.1f\n" % (gap * 1000))
PY
  PROBE_PID=$!
  for _ in $(seq 200); do
    [ -f "$2.ready" ] && return 0
    sleep 0.05
  done
  pkfs_fail "the probe did not start"
}
