# tests/integration/lib/mount.sh: shared helpers of the FUSE integration tests.
#
# Owns: finding the binaries, the per-test scratch directory under /dev/shm,
# starting the daemon in the foreground (in the background of the test) and
# waiting for its mount, unmounting, kill -9, the tree manifest, and the EXIT
# trap that leaves no mount, process or file behind.
#
# A test (bash, set -e) does:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/mount.sh"
#   pkfs_setup                  # skips (exit 77) without /dev/fuse or root
#   pkfs_mkfs 64M               # formats $REGION
#   pkfs_mount [-o OPTS]        # mounts $REGION on $MNT; $PKFS_PID, $PKFS_LOG
#   ...
#   pkfs_unmount                # clean unmount; the daemon must exit 0
#
# Binaries come from $PKFS_BIN_DIR (the CMake build directory).

PKFS_BIN_DIR=${PKFS_BIN_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../../build" 2>/dev/null && pwd)}
PKFS="$PKFS_BIN_DIR/fs/fuse/pkfs"
MKFS="$PKFS_BIN_DIR/mkfs/mkfs.pkfs"

WORK=""          # scratch directory, removed at exit
REGION=""        # $WORK/region
MNT=""           # $WORK/mnt
PKFS_PID=""      # daemon of the current mount
PKFS_LOG=""      # its stderr
PKFS_MOUNTS=0    # mounts so far (numbers the logs)
PKFS_PIDS=()     # every daemon started, for the EXIT trap
PKFS_MOUNTPOINTS=()
PKFS_CLEANUPS=() # extra commands for the EXIT trap (pkfs_on_exit)

pkfs_log() { echo "[$(basename "$0" .sh)] $*"; }
pkfs_fail() {
  echo "[$(basename "$0" .sh)] FAIL: $*" >&2
  exit 1
}
pkfs_skip() {
  echo "[$(basename "$0" .sh)] SKIP: $*"
  exit 77
}

# Runs "$@" at exit, before the mounts are cleared.
pkfs_on_exit() { PKFS_CLEANUPS+=("$*"); }

pkfs_cleanup() {
  local status=$?
  set +e
  local command pid mnt
  for command in "${PKFS_CLEANUPS[@]}"; do eval "$command" >/dev/null 2>&1; done
  for mnt in "${PKFS_MOUNTPOINTS[@]}"; do
    if mountpoint -q "$mnt" 2>/dev/null || ! stat "$mnt" >/dev/null 2>&1; then
      fusermount3 -u "$mnt" >/dev/null 2>&1 || fusermount3 -u -z "$mnt" >/dev/null 2>&1
    fi
  done
  for pid in "${PKFS_PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
  done
  if [ "$status" -ne 0 ] && [ "$status" -ne 77 ] && [ -n "$WORK" ]; then
    local log
    for log in "$WORK"/daemon.*.log; do
      [ -f "$log" ] || continue
      echo "--- $log" >&2
      tail -n 40 "$log" >&2
    done
  fi
  # Every daemon of this test is gone now: the control sockets of those
  # killed with -9 are stale; remove them.
  if [ -n "$WORK" ]; then
    local socket
    for socket in $(sed -n 's/.*control socket \(\/[^ ]*\.sock\).*/\1/p' "$WORK"/daemon.*.log 2>/dev/null | sort -u); do
      [ -S "$socket" ] && rm -f "$socket"
    done
  fi
  [ -n "$WORK" ] && rm -rf "$WORK"
  exit "$status"
}

pkfs_setup() {
  [ -c /dev/fuse ] || pkfs_skip "/dev/fuse is missing"
  [ "$(id -u)" -eq 0 ] || pkfs_skip "needs root (mounts, chown, setpriv)"
  command -v fusermount3 >/dev/null || pkfs_skip "fusermount3 is not installed"
  command -v mountpoint >/dev/null || pkfs_skip "mountpoint (util-linux) is not installed"
  [ -x "$PKFS" ] || pkfs_fail "no daemon at $PKFS (set PKFS_BIN_DIR to the build directory)"
  [ -x "$MKFS" ] || pkfs_fail "no mkfs at $MKFS (set PKFS_BIN_DIR to the build directory)"
  [ -d /dev/shm ] || pkfs_skip "/dev/shm is missing"
  WORK=$(mktemp -d /dev/shm/pkfs-test.XXXXXX)
  trap pkfs_cleanup EXIT
  trap 'exit 130' INT TERM
  REGION="$WORK/region"
  MNT="$WORK/mnt"
  mkdir "$MNT"
}

pkfs_need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || pkfs_skip "$tool is not installed"
  done
}

# pkfs_mkfs SIZE [mkfs options...]: formats a fresh $REGION of SIZE.
pkfs_mkfs() {
  local size=$1
  shift
  rm -f "$REGION"
  "$MKFS" -q -s "$size" "$@" "$REGION" || pkfs_fail "mkfs.pkfs -s $size failed"
}

# pkfs_wait_mounted MNT PID: polls until MNT is a mountpoint (10 s), failing
# early if the daemon exits.
pkfs_wait_mounted() {
  local mnt=$1 pid=$2
  for _ in $(seq 200); do
    mountpoint -q "$mnt" && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# pkfs_mount [daemon options...]: mounts $REGION on $MNT with the daemon in
# the foreground (-f), run in the background of this shell.
pkfs_mount() {
  PKFS_MOUNTS=$((PKFS_MOUNTS + 1))
  PKFS_LOG="$WORK/daemon.$PKFS_MOUNTS.log"
  "$PKFS" "$REGION" "$MNT" -f "$@" >"$PKFS_LOG" 2>&1 &
  PKFS_PID=$!
  PKFS_PIDS+=("$PKFS_PID")
  PKFS_MOUNTPOINTS+=("$MNT")
  if ! pkfs_wait_mounted "$MNT" "$PKFS_PID"; then
    cat "$PKFS_LOG" >&2
    pkfs_fail "pkfs $* did not mount $REGION on $MNT"
  fi
}

# pkfs_unmount: unmounts cleanly; the daemon must mark the region clean and
# exit 0.
pkfs_unmount() {
  fusermount3 -u "$MNT" || pkfs_fail "fusermount3 -u $MNT failed"
  local status=0
  wait "$PKFS_PID" || status=$?
  [ "$status" -eq 0 ] || pkfs_fail "daemon exited with status $status after unmount (log: $(cat "$PKFS_LOG"))"
  grep -q "is clean" "$PKFS_LOG" || pkfs_fail "daemon did not report a clean unmount: $(cat "$PKFS_LOG")"
  PKFS_PID=""
}

# pkfs_kill9: kills the daemon without warning and clears the dead mount.
pkfs_kill9() {
  kill -9 "$PKFS_PID"
  wait "$PKFS_PID" 2>/dev/null || true
  fusermount3 -u -z "$MNT" || pkfs_fail "could not clear the dead mount at $MNT"
  PKFS_PID=""
}

# pkfs_expect_fail PATTERN COMMAND...: COMMAND must fail and print PATTERN
# (an extended regex) on stdout or stderr.
pkfs_expect_fail() {
  local pattern=$1
  shift
  local output status=0
  output=$("$@" 2>&1) || status=$?
  [ "$status" -ne 0 ] || pkfs_fail "succeeded but should have failed: $*"
  grep -Eq -- "$pattern" <<<"$output" || pkfs_fail "$* failed without /$pattern/: $output"
}

# pkfs_manifest DIR: one line per file below DIR: path, inode, type and mode,
# uid, gid, nlink, size, mtime, then sha256 / link target / device, then the
# extended attributes. Equal manifests mean equal trees.
pkfs_manifest() {
  python3 - "$1" <<'PY'
import hashlib, os, stat, sys

root = sys.argv[1]

def describe(path):
    st = os.lstat(path)
    mode = st.st_mode
    fields = [os.path.relpath(path, root), str(st.st_ino), "%o" % mode, str(st.st_uid), str(st.st_gid),
              str(st.st_nlink), str(st.st_size), str(st.st_mtime_ns)]
    if stat.S_ISREG(mode):
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        fields.append("sha256=" + digest.hexdigest())
    elif stat.S_ISLNK(mode):
        fields.append("-> " + os.readlink(path))
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        fields.append("dev=%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev)))
    for name in sorted(os.listxattr(path, follow_symlinks=False)):
        fields.append("%s=%s" % (name, os.getxattr(path, name, follow_symlinks=False).hex()))
    return " ".join(fields)

print(describe(root))
for directory, dirs, files in os.walk(root):
    dirs.sort()
    for name in sorted(dirs + files):
        print(describe(os.path.join(directory, name)))
PY
}

# pkfs_eventually COMMAND...: retries COMMAND for up to 5 s. The kernel sends
# RELEASE asynchronously: close(2) returns before pkfs hears of it, so the
# space of a file closed and then deleted comes back a moment later.
pkfs_eventually() {
  for _ in $(seq 100); do
    "$@" && return 0
    sleep 0.05
  done
  "$@"
}

# pkfs_sha FILE: the sha256 of FILE.
pkfs_sha() { sha256sum "$1" | cut -d' ' -f1; }
