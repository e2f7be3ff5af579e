#!/usr/bin/env bash
# client_ctl.sh: pkfsctl through the daemon and on the bare region. info and
# ls -l say the same both ways; map --qemu prints a memory-backend-file whose
# offset holds the file's bytes in the region, and refuses clearly a file in
# several extents; bad arguments fail with a message and exit 1 (2 for a bad
# command line).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/mount.sh"

pkfs_setup
PKFSCTL="$PKFS_BIN_DIR/fs/ctl/pkfsctl"
[ -x "$PKFSCTL" ] || pkfs_fail "no pkfsctl at $PKFSCTL"
pkfs_need python3 cmp
pkfs_mkfs 64M -L ctl-test
pkfs_mount
mkdir -p "$MNT/vm1/iommu"
fallocate -l 8M "$MNT/vm1/ram"  # allocated in one piece
head -c 8M /dev/urandom | dd of="$MNT/vm1/ram" bs=1M conv=notrunc status=none
head -c 4096 /dev/zero | tr '\0' '#' >"$MNT/vm1/iommu/dma-map.log"  # one whole block
printf 'b' >"$MNT/vm1/other"
printf 'more\n' >>"$MNT/vm1/iommu/dma-map.log"  # a second, separate extent
uuid=$("$PKFSCTL" info "$MNT" | sed -n 's/^Filesystem UUID: //p')

pkfs_log "info through the daemon"
"$PKFSCTL" info "$MNT/vm1" >"$WORK/info.mounted"
grep -q "^Filesystem label: ctl-test$" "$WORK/info.mounted" || pkfs_fail "info: $(cat "$WORK/info.mounted")"
grep -q "^Control socket: /run/pkfs/$uuid.sock$" "$WORK/info.mounted" || pkfs_fail "info: $(cat "$WORK/info.mounted")"
grep -q "^Holds: 0$" "$WORK/info.mounted" || pkfs_fail "info: $(cat "$WORK/info.mounted")"
"$PKFSCTL" info "$REGION" | grep -q "^Mounted: in use by pid $PKFS_PID (pkfs)$" || pkfs_fail "info on a mounted region: $("$PKFSCTL" info "$REGION")"

pkfs_log "map --qemu: a one-extent file; its bytes are at the offset in the region"
line=$("$PKFSCTL" map --qemu "$MNT/vm1/ram" 2>/dev/null) || pkfs_fail "map --qemu vm1/ram failed: $("$PKFSCTL" map --qemu "$MNT/vm1/ram" 2>&1; "$PKFSCTL" ls -l "$MNT/vm1")"
[[ "$line" =~ ^-object\ memory-backend-file,id=ram0,mem-path=$REGION,offset=([0-9]+),size=8388608,align=4K,share=on$ ]] ||
  pkfs_fail "map --qemu printed: $line"
offset=${BASH_REMATCH[1]}
cmp <(python3 -c 'import sys; f=open(sys.argv[1],"rb"); f.seek(int(sys.argv[2])); sys.stdout.buffer.write(f.read(8<<20))' "$REGION" "$offset") "$MNT/vm1/ram" ||
  pkfs_fail "the region at offset $offset does not hold vm1/ram"
pkfs_expect_fail "is in 2 extents.*cannot map it" "$PKFSCTL" map --qemu "$MNT/vm1/iommu/dma-map.log"
pkfs_expect_fail "not a regular file" "$PKFSCTL" map --qemu "$MNT/vm1"

pkfs_log "ls -l shows extents and the page size"
"$PKFSCTL" ls -l "$MNT/vm1/iommu" >"$WORK/ls.mounted"
grep -q "^region $REGION page_size=4096$" "$WORK/ls.mounted" || pkfs_fail "ls: $(cat "$WORK/ls.mounted")"
grep -q "extents=2 holds=0 dma-map.log$" "$WORK/ls.mounted" || pkfs_fail "ls: $(cat "$WORK/ls.mounted")"
[ "$(grep -c "^    extent " "$WORK/ls.mounted")" = 2 ] || pkfs_fail "ls: $(cat "$WORK/ls.mounted")"
"$PKFSCTL" ls -l "$MNT/vm1" >"$WORK/ls1.mounted"
"$PKFSCTL" ls "$MNT/vm1" | diff - <(printf 'iommu\nother\nram\n') || pkfs_fail "ls without -l"

pkfs_log "the same through the bare region, unmounted"
pkfs_unmount
"$PKFSCTL" info "$REGION" >"$WORK/info.offline"
grep -q "^Filesystem UUID: $uuid$" "$WORK/info.offline" || pkfs_fail "offline info: $(cat "$WORK/info.offline")"
grep -q "^Mounted: no$" "$WORK/info.offline" || pkfs_fail "offline info: $(cat "$WORK/info.offline")"
grep -q "^State: clean$" "$WORK/info.offline" || pkfs_fail "offline info: $(cat "$WORK/info.offline")"
"$PKFSCTL" ls -l "$REGION" /vm1/iommu | diff "$WORK/ls.mounted" - || pkfs_fail "ls -l differs between mounted and offline"
"$PKFSCTL" ls -l "$REGION" vm1 | diff "$WORK/ls1.mounted" - || pkfs_fail "ls -l of vm1 differs between mounted and offline"
[ "$("$PKFSCTL" map --qemu "$REGION" /vm1/ram 2>/dev/null)" = "$line" ] || pkfs_fail "offline map --qemu differs"
pkfs_expect_fail "no such hold 7" "$PKFSCTL" release "$REGION" 7
pkfs_expect_fail "no entry named" "$PKFSCTL" ls -l "$REGION" /nonexistent

pkfs_log "bad arguments"
pkfs_expect_fail "neither a path on a mounted pkfs nor a pkfs region" "$PKFSCTL" info "$WORK"
pkfs_expect_fail "No such file or directory" "$PKFSCTL" info "$WORK/nonexistent"
echo "not a region" >"$WORK/junk"
status=0
"$PKFSCTL" info "$WORK/junk" >/dev/null 2>"$WORK/err" || status=$?
[ "$status" = 1 ] || pkfs_fail "info on a junk file exited $status"
[ -s "$WORK/err" ] || pkfs_fail "info on a junk file said nothing"
status=0
"$PKFSCTL" >/dev/null 2>&1 || status=$?
[ "$status" = 2 ] || pkfs_fail "pkfsctl without a command exited $status, not 2"
status=0
"$PKFSCTL" release "$REGION" not-a-number >/dev/null 2>&1 || status=$?
[ "$status" = 2 ] || pkfs_fail "a bad hold id exited $status, not 2"
pkfs_log "ok"
