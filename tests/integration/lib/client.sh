# tests/integration/lib/client.sh: setup shared by the direct-mapping
# (libpkfs) tests: mount.sh's daemon helpers on a region in hugetlbfs
# (region.sh's pkfs_hugetlbfs_setup, falling back to tmpfs, said on stdout).
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/client.sh"
#   client_setup PAGES          # pkfs_setup + hugetlbfs; REGION on it
#   pkfs_mkfs SIZE; pkfs_mount
#   client_need_holds FILE      # skips when the daemon has no holds yet
#
# VMM=the libpkfs test program, PROBE=the raw protocol client, HOSTILE=the
# hostile clients (tests/client/hostile.cpp),
# PKFSCTL=pkfsctl. client_bg PID... registers background programs that the
# EXIT trap kills before the mounts and the hugetlbfs go.

: "${PKFS_BIN_DIR:?PKFS_BIN_DIR must name the build directory (ctest sets it)}"
source "$(dirname "${BASH_SOURCE[0]}")/region.sh"
source "$(dirname "${BASH_SOURCE[0]}")/mount.sh"

VMM="$PKFS_BIN_DIR/tests/pkfs_test_vmm"
PROBE="$PKFS_BIN_DIR/tests/pkfs_test_control_probe"
HOSTILE="$PKFS_BIN_DIR/tests/pkfs_test_hostile"
PKFSCTL="$PKFS_BIN_DIR/fs/ctl/pkfsctl"
CLIENT_PIDS=()

client_bg() { CLIENT_PIDS+=("$@"); }

# Runs first at exit: programs, then daemons and mounts, so that the
# hugetlbfs teardown registered after it finds nothing in use.
_client_stop_all() {
  local pid mnt
  for pid in "${CLIENT_PIDS[@]}"; do kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  for mnt in "${PKFS_MOUNTPOINTS[@]}"; do
    fusermount3 -u "$mnt" >/dev/null 2>&1 || fusermount3 -u -z "$mnt" >/dev/null 2>&1
  done
  for pid in "${PKFS_PIDS[@]}"; do
    kill "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  return 0
}

# client_setup PAGES: scratch dir, daemon helpers, and REGION on a
# hugetlbfs with PAGES more 2 MiB pages (or on tmpfs).
client_setup() {
  pkfs_setup
  for tool in "$VMM" "$PROBE" "$HOSTILE" "$PKFSCTL"; do
    [ -x "$tool" ] || pkfs_fail "$tool is not built"
  done
  pkfs_on_exit _client_stop_all
  # The hugetlbfs goes under $WORK, which mount.sh removes last.
  PKFS_TMPDIR=$WORK
  pkfs_hugetlbfs_setup "$1"
  REGION="$PKFS_HUGETLBFS_DIR/region"
  if [ "$PKFS_REGION_KIND" = hugetlbfs ]; then
    KERNEL_PAGE_KIB=2048
  else
    KERNEL_PAGE_KIB=4
  fi
  pkfs_log "region on $PKFS_REGION_KIND (kernel pages of $KERNEL_PAGE_KIB kB)"
}

# client_need_holds FILE: skips the test when the daemon cannot take holds
# (ENOSYS: a build without the hold table).
client_need_holds() {
  local out
  out=$("$VMM" map "$1" 2>&1) && return 0
  if grep -q "errno=38" <<<"$out"; then pkfs_skip "holds are not implemented in this build: $out"; fi
  pkfs_fail "cannot map $1: $out"
}

# client_wait_pass DIR N: waits until the VMM in DIR finished pass N (60 s).
client_wait_pass() {
  local dir=$1 want=$2 pid=${3:-}
  for _ in $(seq 1200); do
    if [ -f "$dir/pass" ] && [ "$(cat "$dir/pass")" -ge "$want" ]; then return 0; fi
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    sleep 0.05
  done
  return 1
}
