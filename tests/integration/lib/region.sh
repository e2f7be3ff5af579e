# tests/integration/lib/region.sh: helpers for the shell integration tests.
#
# Source it at the top of a test:
#
#   source "$PKFS_SOURCE_DIR/tests/integration/lib/region.sh"
#
# It gives:
#   pkfs_bin NAME              path of a built binary (under $PKFS_BIN_DIR)
#   pkfs_tmpdir                a private temp dir under /dev/shm, in $PKFS_TMPDIR
#   pkfs_hugetlbfs_setup PAGES a hugetlbfs mount with PAGES more 2 MiB pages
#                              reserved, in $PKFS_HUGETLBFS_DIR (or a tmpfs
#                              fallback, said on stdout); $PKFS_REGION_KIND is
#                              hugetlbfs or tmpfs
#   pkfs_hugetlbfs_teardown    unmount, restore nr_hugepages exactly
#   pkfs_on_exit CMD...        run CMD at exit (last registered runs first)
#   pkfs_skip REASON           skip the test (exit 77)
#   pkfs_fail MESSAGE          fail the test (exit 1)
#   pkfs_filter                stdin to stdout with UUIDs, times, pids and
#                              temp paths replaced by <UUID>, <TIME>, <PID>, <TMP>
#
# Everything set up here is undone by one EXIT trap, also on failure and on
# SIGINT/SIGTERM (not on SIGKILL, which nothing can trap: keep each test well
# inside its CTest timeout). A test that wants its own cleanup uses pkfs_on_exit rather
# than `trap ... EXIT`, which would replace this one.

set -euo pipefail

: "${PKFS_BIN_DIR:?PKFS_BIN_DIR must name the build directory (ctest sets it)}"
: "${PKFS_SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}"
export LC_ALL=C TZ=UTC

# Set by the functions below, read by the tests that source this file.
PKFS_TMPDIR=""
PKFS_HUGETLBFS_DIR=""
# shellcheck disable=SC2034
PKFS_REGION_KIND=""
_pkfs_cleanups=()
_pkfs_hp_saved=""
_pkfs_hp_lock_fd=""
_pkfs_hp_mounted=""

_pkfs_log() { echo "${0##*/}: $*" >&2; }

pkfs_on_exit() {
  _pkfs_cleanups+=("$*")
}

_pkfs_run_cleanups() {
  local status=$? i
  set +e
  for ((i = ${#_pkfs_cleanups[@]} - 1; i >= 0; i--)); do
    eval "${_pkfs_cleanups[i]}"
  done
  _pkfs_cleanups=()
  exit "$status"
}
trap _pkfs_run_cleanups EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

pkfs_skip() {
  echo "SKIP: ${0##*/}: $*"
  exit 77
}

pkfs_fail() {
  echo "FAIL: ${0##*/}: $*" >&2
  exit 1
}

pkfs_bin() {
  local path
  for path in "$PKFS_BIN_DIR/$1" "$PKFS_BIN_DIR/mkfs/$1" "$PKFS_BIN_DIR/fsck/$1" "$PKFS_BIN_DIR/fs/fuse/$1" \
    "$PKFS_BIN_DIR/tests/$1" "$PKFS_BIN_DIR/tests/bench/$1"; do
    if [[ -x "$path" && -f "$path" ]]; then
      echo "$path"
      return 0
    fi
  done
  return 1
}

# A private directory under /dev/shm (tmpfs, so regions can live in it),
# removed with everything in it at exit. Sets PKFS_TMPDIR; call it directly,
# not as $(pkfs_tmpdir): a subshell could not register the cleanup.
pkfs_tmpdir() {
  if [[ -z "$PKFS_TMPDIR" ]]; then
    if ((BASH_SUBSHELL > 0)); then
      pkfs_fail "call pkfs_tmpdir directly and use \$PKFS_TMPDIR, not \$(pkfs_tmpdir)"
    fi
    PKFS_TMPDIR=$(mktemp -d /dev/shm/pkfs-test.XXXXXXXX) || pkfs_fail "cannot create a temp dir in /dev/shm"
    pkfs_on_exit "_pkfs_remove_tmpdir"
  fi
}

_pkfs_remove_tmpdir() {
  [[ -n "$PKFS_TMPDIR" && -d "$PKFS_TMPDIR" ]] || return 0
  # Never recurse into something still mounted (rm would empty it).
  if findmnt -rn -o TARGET | grep -q "^$PKFS_TMPDIR/"; then
    _pkfs_log "not removing $PKFS_TMPDIR: something is still mounted under it"
    return 0
  fi
  rm -rf -- "$PKFS_TMPDIR"
}

_pkfs_nr_hugepages() { cat /proc/sys/vm/nr_hugepages; }

# Writes nr_hugepages and checks that it reads back. Lowering it while pages
# are still in use (they are freed asynchronously after an unmount) turns
# them into surplus pages: the persistent count reads back at once.
_pkfs_set_nr_hugepages() {
  local want=$1
  for _ in $(seq 1 50); do
    echo "$want" >/proc/sys/vm/nr_hugepages 2>/dev/null || true
    [[ "$(_pkfs_nr_hugepages)" == "$want" ]] && return 0
    sleep 0.1
  done
  return 1
}

# Pages freed by an earlier unmount go back to the pool asynchronously: wait
# until PAGES pages are free and unreserved.
_pkfs_wait_free_hugepages() {
  local pages=$1 pool=/sys/kernel/mm/hugepages/hugepages-2048kB
  for _ in $(seq 1 100); do
    (($(cat "$pool/free_hugepages") - $(cat "$pool/resv_hugepages") >= pages)) && return 0
    sleep 0.1
  done
  return 1
}

# pkfs_hugetlbfs_setup PAGES: reserves PAGES more 2 MiB hugepages and mounts
# hugetlbfs (pagesize=2M) on a private dir, in PKFS_HUGETLBFS_DIR. Without
# root, or if the pages or the mount cannot be had, PKFS_HUGETLBFS_DIR is a
# plain directory on tmpfs instead and a line says so on stdout.
# PKFS_REGION_KIND tells which. Concurrent tests take turns (flock) so that
# each restores exactly the count it found.
pkfs_hugetlbfs_setup() {
  local pages=${1:?pkfs_hugetlbfs_setup PAGES}
  local tmp reason=""
  pkfs_tmpdir
  tmp=$PKFS_TMPDIR
  PKFS_HUGETLBFS_DIR="$tmp/hugetlbfs"
  mkdir -p "$PKFS_HUGETLBFS_DIR"
  pkfs_on_exit pkfs_hugetlbfs_teardown

  if [[ $(id -u) -ne 0 ]]; then
    reason="not root"
  elif [[ ! -w /proc/sys/vm/nr_hugepages ]]; then
    reason="/proc/sys/vm/nr_hugepages is not writable"
  elif ! grep -qw hugetlbfs /proc/filesystems; then
    reason="the kernel has no hugetlbfs"
  elif ! grep -q '^Hugepagesize: *2048 kB' /proc/meminfo; then
    reason="the default hugepage size is not 2 MiB, so nr_hugepages does not count 2 MiB pages"
  else
    # The lock is on the sysctl file itself: nothing is left behind.
    exec {_pkfs_hp_lock_fd}</proc/sys/vm/nr_hugepages
    if ! flock -w 900 "$_pkfs_hp_lock_fd"; then
      reason="another test held the hugepage lock for 15 minutes"
    else
      _pkfs_hp_saved=$(_pkfs_nr_hugepages)
      local want=$((_pkfs_hp_saved + pages))
      echo "$want" >/proc/sys/vm/nr_hugepages 2>/dev/null || true
      local got
      got=$(_pkfs_nr_hugepages)
      if [[ "$got" != "$want" ]]; then
        reason="could only raise nr_hugepages from $_pkfs_hp_saved to $got, not $want (memory fragmented?)"
      elif ! _pkfs_wait_free_hugepages "$pages"; then
        reason="$pages hugepages did not become free within 10 s"
      elif ! mount -t hugetlbfs -o pagesize=2M,mode=0700 none "$PKFS_HUGETLBFS_DIR" 2>/dev/null; then
        reason="mount -t hugetlbfs failed"
      else
        _pkfs_hp_mounted=1
      fi
    fi
  fi

  if [[ -n "$reason" ]]; then
    pkfs_hugetlbfs_teardown
    PKFS_HUGETLBFS_DIR="$tmp/hugetlbfs"
    mkdir -p "$PKFS_HUGETLBFS_DIR"
    PKFS_REGION_KIND=tmpfs
    echo "NOTE: ${0##*/}: hugetlbfs unavailable ($reason); falling back to tmpfs in $PKFS_HUGETLBFS_DIR"
  else
    # shellcheck disable=SC2034
    PKFS_REGION_KIND=hugetlbfs
  fi
}

# Undoes pkfs_hugetlbfs_setup: unmounts (removing the files and so freeing
# their pages) and writes back the exact nr_hugepages it found. Safe to call
# twice.
pkfs_hugetlbfs_teardown() {
  if [[ -n "$_pkfs_hp_mounted" ]]; then
    for _ in $(seq 1 50); do
      umount "$PKFS_HUGETLBFS_DIR" 2>/dev/null && break
      sleep 0.1
    done
    if mountpoint -q "$PKFS_HUGETLBFS_DIR"; then
      _pkfs_log "cannot unmount $PKFS_HUGETLBFS_DIR; detaching it"
      umount -l "$PKFS_HUGETLBFS_DIR" || true
    fi
    _pkfs_hp_mounted=""
  fi
  if [[ -n "$_pkfs_hp_saved" ]]; then
    if ! _pkfs_set_nr_hugepages "$_pkfs_hp_saved"; then
      _pkfs_log "could not restore nr_hugepages to $_pkfs_hp_saved (it is $(_pkfs_nr_hugepages))"
    fi
    _pkfs_hp_saved=""
  fi
  if [[ -n "$_pkfs_hp_lock_fd" ]]; then
    exec {_pkfs_hp_lock_fd}>&-
    _pkfs_hp_lock_fd=""
  fi
  [[ -n "$PKFS_HUGETLBFS_DIR" ]] && rmdir "$PKFS_HUGETLBFS_DIR" 2>/dev/null
  return 0
}

# Replaces what changes from run to run by placeholders, for comparison with
# golden files: UUIDs, dates and times, pids, and temp paths.
pkfs_filter() {
  local args=()
  [[ -n "$PKFS_HUGETLBFS_DIR" ]] && args+=(-e "s|${PKFS_HUGETLBFS_DIR//./\\.}|<TMP>|g")
  [[ -n "$PKFS_TMPDIR" ]] && args+=(-e "s|${PKFS_TMPDIR//./\\.}|<TMP>|g")
  sed -E "${args[@]}" \
    -e 's|/dev/shm/pkfs-test\.[A-Za-z0-9]+|<TMP>|g' \
    -e 's/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}/<UUID>/g' \
    -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?( ?(Z|UTC|[+-][0-9]{2}:?[0-9]{2}))?/<TIME>/g' \
    -e 's/(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}( [A-Z]{3})? [0-9]{4}/<TIME>/g' \
    -e 's/[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?/<TIME>/g' \
    -e 's/\bpid [0-9]+/pid <PID>/g'
}
