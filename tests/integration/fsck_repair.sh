#!/usr/bin/env bash
# fsck_repair.sh: fsck.pkfs repairs real regions. A tree is built through a
# real mount; then, for each on-region structure (superblock, backup
# superblock, journal header, inode, directory entry, chunk-map block, split
# header, hold, extent block, xattr block), a copy of the region is damaged
# with dd at an offset read from the superblock, and:
#   - the daemon refuses to mount it, naming fsck.pkfs (extent and xattr
#     blocks are read lazily: reading the file fails, the error is recorded,
#     and the next mount refuses);
#   - fsck.pkfs -n exits 4 naming the structure and changes nothing;
#   - fsck.pkfs -y exits 1; fsck.pkfs -n -f then exits 0;
#   - the region mounts and every file the damage did not touch has its
#     sha256.
# Also: -y and -p refuse a mounted region (exit 8, naming the daemon's pid)
# while -n checks it; -p repairs only what is safe; fsck output matches
# golden/fsck_repair.out (times, uuids, paths and pids filtered).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/mount.sh"

FSCK="$PKFS_BIN_DIR/fsck/fsck.pkfs"
GOLDEN="$(dirname "${BASH_SOURCE[0]}")/golden/fsck_repair.out"
pkfs_setup
pkfs_need setfattr getfattr sha256sum od dd
[ -x "$FSCK" ] || pkfs_fail "no fsck.pkfs at $FSCK"
export LC_ALL=C TZ=UTC

TRANSCRIPT="$WORK/transcript"
: >"$TRANSCRIPT"
filter() {
  sed -E -e "s|$WORK|<TMP>|g" -e 's/\bpid [0-9]+/pid <PID>/g' \
    -e 's/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/<UUID>/g'
}

# run_fsck WANT ARGS...: runs fsck.pkfs, expects exit WANT, appends the
# filtered command and output to the transcript compared with the golden file.
run_fsck() {
  local want=$1 status=0
  shift
  "$FSCK" "$@" >"$WORK/fsck.out" 2>&1 </dev/null || status=$?
  { echo "\$ fsck.pkfs $* -> exit $status"; cat "$WORK/fsck.out"; } | filter >>"$TRANSCRIPT"
  [ "$status" -eq "$want" ] || pkfs_fail "fsck.pkfs $*: exit $status, want $want: $(cat "$WORK/fsck.out")"
}

# u64 OFFSET: the little-endian u64 at OFFSET of the region.
u64() { od -An -t u8 -j "$1" -N 8 "$REGION" | tr -d ' '; }
u8() { od -An -t u1 -j "$1" -N 1 "$REGION" | tr -d ' '; }
# flip OFFSET: xors the byte at OFFSET with 0x40.
flip() {
  local byte
  byte=$(u8 "$1")
  printf "$(printf '\\%03o' $((byte ^ 0x40)))" | dd of="$REGION" bs=1 seek="$1" conv=notrunc status=none
}

# ---------------------------------------------------------------------------
# The tree, built through the mount.
pkfs_mkfs 64M
pkfs_mount
mkdir -p "$MNT/vm1/state"
head -c $((3 * 1048576)) /dev/urandom >"$MNT/vm1/ram"
head -c 10000 /dev/urandom >"$MNT/vm1/state/iommu"
head -c 4096 /dev/urandom >"$MNT/vm1/state/dev0"
echo "hello" >"$MNT/note"
setfattr -n user.owner -v vm1 "$MNT/vm1/state/iommu"
ln -s vm1/ram "$MNT/ram-link"
# Every other block written: one extent per write, more than fit inline.
for block in $(seq 0 2 40); do
  head -c 4096 /dev/urandom | dd of="$MNT/fragmented" bs=4096 seek="$block" conv=notrunc status=none
done
files=(vm1/ram vm1/state/iommu vm1/state/dev0 note fragmented)
declare -A sums inos
for file in "${files[@]}"; do
  sums[$file]=$(pkfs_sha "$MNT/$file")
  inos[$file]=$(stat -c %i "$MNT/$file")
done

# A mounted region: -n checks it (with a warning), -y and -p refuse.
run_fsck 0 -n -f "$REGION"
grep -q "in use by pid" "$WORK/fsck.out" || pkfs_fail "fsck -n on a mounted region does not warn"
run_fsck 8 -y "$REGION"
grep -q "pid $PKFS_PID" "$WORK/fsck.out" || pkfs_fail "fsck -y on a mounted region does not name the daemon"
run_fsck 8 -p "$REGION"
pkfs_unmount
cp "$REGION" "$WORK/clean"
run_fsck 0 -n "$REGION"

# Where the structures are (FORMAT.md, "Superblock").
journal=$(u64 $((0x98)))
inodes=$(u64 $((0xa8)))
dirents=$(u64 $((0xb8)))
chunk_map=$(u64 $((0xc8)))
holds=$(u64 $((0xd8)))
data=$(u64 $((0xe8)))
backup=$(u64 $((0xf0)))
inode_of() { echo $((inodes + ${inos[$1]} * 256)); }
split_chunk=""
for ((chunk = data / 2097152; chunk < $(u64 $((0x90))); chunk++)); do
  if [ "$(u8 $((chunk_map + 16 + chunk)))" -eq 3 ]; then split_chunk=$chunk; break; fi
done
[ -n "$split_chunk" ] || pkfs_fail "no split chunk"
extent_block=$(u64 $(($(inode_of fragmented) + 0x68)))
xattr_block=$(u64 $(($(inode_of vm1/state/iommu) + 0x60)))
[ "$extent_block" -ne 0 ] || pkfs_fail "fragmented has no extent block"
[ "$xattr_block" -ne 0 ] || pkfs_fail "iommu has no xattr block"

# expect_unmountable: the daemon refuses the region, naming fsck.pkfs.
expect_unmountable() {
  local log="$WORK/refused.log" status=0 pid
  "$PKFS" "$REGION" "$MNT" -f >"$log" 2>&1 &
  pid=$!
  PKFS_PIDS+=("$pid")
  if pkfs_wait_mounted "$MNT" "$pid"; then
    fusermount3 -u "$MNT"
    wait "$pid" || true
    pkfs_fail "$1: the daemon mounted a damaged region"
  fi
  wait "$pid" || status=$?
  [ "$status" -ne 0 ] || pkfs_fail "$1: the daemon exited 0 on a damaged region"
  grep -q "fsck.pkfs" "$log" || pkfs_fail "$1: the daemon's refusal does not name fsck.pkfs: $(cat "$log")"
}

# repair_case NAME PATTERN OFFSET LAZY_FILE [DAMAGED_FILE...]: the whole
# sequence on a fresh copy of the clean region.
repair_case() {
  local name=$1 pattern=$2 offset=$3 lazy=$4
  shift 4
  local damaged=" $* "
  echo "== $name" | tee -a "$TRANSCRIPT"
  cp "$WORK/clean" "$REGION"
  flip "$offset"
  if [ -n "$lazy" ]; then
    # Read lazily: mount works, reading the structure fails and is recorded.
    pkfs_mount
    # (Its data for an extent block, its attributes for an xattr block.)
    if cat "$MNT/$lazy" >/dev/null 2>&1 && getfattr -d "$MNT/$lazy" >/dev/null 2>&1; then
      pkfs_fail "$name: reading $lazy succeeded over a damaged structure"
    fi
    pkfs_unmount
  fi
  expect_unmountable "$name"
  local before
  before=$(pkfs_sha "$REGION")
  run_fsck 4 -n "$REGION"
  grep -Eq "$pattern" "$WORK/fsck.out" || pkfs_fail "$name: fsck -n does not name /$pattern/: $(cat "$WORK/fsck.out")"
  [ "$(pkfs_sha "$REGION")" = "$before" ] || pkfs_fail "$name: fsck -n changed the region"
  run_fsck 1 -y "$REGION"
  run_fsck 0 -n -f "$REGION"
  pkfs_mount
  local file
  for file in "${files[@]}"; do
    [[ $damaged == *" $file "* ]] && continue
    [ "$(pkfs_sha "$MNT/$file")" = "${sums[$file]}" ] || pkfs_fail "$name: $file changed"
  done
  pkfs_unmount
  run_fsck 0 -n "$REGION"
}

repair_case "primary superblock" "SUPERBLOCK_CHECKSUM" $((0x38)) ""
repair_case "backup superblock" "BACKUP_SUPERBLOCK" $((backup + 0x38)) ""
repair_case "journal header" "JOURNAL_TAG" "$journal" ""
repair_case "inode" "INODE_CHECKSUM.*/vm1/state/dev0" $(($(inode_of vm1/state/dev0) + 0x28)) "" vm1/state/dev0
repair_case "directory entry" "DIRENT_TAG" "$dirents" ""
repair_case "chunk-map block" "CHUNK_MAP_CHECKSUM" $((chunk_map + 0x20)) ""
repair_case "split header" "SPLIT_HEADER_CHECKSUM" $((split_chunk * 2097152 + 0x10)) ""
repair_case "hold" "HOLD_TAG" $((holds + 0x20)) ""
repair_case "extent block" "EXTENT_BLOCK_CHECKSUM.*/fragmented" $((extent_block + 0x18 + 17)) fragmented fragmented
repair_case "xattr block" "XATTR_BLOCK_CHECKSUM.*/vm1/state/iommu" $((xattr_block + 0x18 + 6)) vm1/state/iommu

# -p: safe repairs (a killed daemon's region: not clean) are made; a
# damaged inode needs -y and -p changes nothing.
echo "== preen" | tee -a "$TRANSCRIPT"
cp "$WORK/clean" "$REGION"
pkfs_mount
pkfs_kill9
run_fsck 0 -p "$REGION"
run_fsck 0 -n "$REGION"
flip $(($(inode_of note) + 0x28))
before=$(pkfs_sha "$REGION")
run_fsck 4 -p "$REGION"
grep -q "run fsck.pkfs -y" "$WORK/fsck.out" || pkfs_fail "fsck -p does not ask for -y"
[ "$(pkfs_sha "$REGION")" = "$before" ] || pkfs_fail "fsck -p changed a region that needs -y"
run_fsck 1 -y "$REGION"
run_fsck 0 -n -f "$REGION"

# Usage errors.
run_fsck 16 -n -p "$REGION"
run_fsck 16 --frobnicate "$REGION"

if ! diff -u "$GOLDEN" "$TRANSCRIPT"; then
  [ -n "${PKFS_UPDATE_GOLDEN:-}" ] && cp "$TRANSCRIPT" "$GOLDEN"
  pkfs_fail "fsck output differs from golden/fsck_repair.out (diff above: - golden, + actual)"
fi
pkfs_log "all cases passed"
