#!/usr/bin/env bash
# json_output.sh: the machine-readable output parses as JSON and has the
# documented keys and values: `pkfsctl info --json` and `pkfsctl ls -l
# --json` (with its holds) both through the daemon and from the region,
# and `fsck.pkfs --json-lines` on a clean and on a damaged region. File
# names with quotes, backslashes, control characters and bytes that are not
# UTF-8 come out as valid JSON, the last with an exact "name_hex".
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/mount.sh"

pkfs_setup
pkfs_need python3 fallocate
CTL="$PKFS_BIN_DIR/fs/ctl/pkfsctl"
FSCK="$PKFS_BIN_DIR/fsck/fsck.pkfs"
pkfs_mkfs 64M -L json
# check FILE PYTHON: FILE must parse as JSON (as `doc`; JSON lines as the
# list `lines`) and the Python statements in PYTHON must pass.
check() {
  python3 - "$1" "$2" <<'PYTHON' || pkfs_fail "$1: $(head -c 2000 "$1")"
import json, sys
text = open(sys.argv[1], "rb").read().decode("utf-8")  # strict: must be UTF-8
lines = [json.loads(line) for line in text.splitlines()]
doc = lines[0] if len(lines) == 1 else None
exec(sys.argv[2])
PYTHON
}

pkfs_mount
odd=$(printf 'odd"\\\001\tname\377\376.bin')  # quote, backslash, ^A, tab, two bytes that are not UTF-8
fallocate -l 4M "$MNT/ram"
echo small >"$MNT/$odd"
mkdir "$MNT/dir"
HOLDER=""
pkfs_on_exit '[ -z "$HOLDER" ] || kill "$HOLDER"'
"$CTL" exec --hold "$MNT/ram" -- sleep 60 &
HOLDER=$!
pkfs_eventually sh -c "'$CTL' ls -l '$MNT' | grep -q 'hold '" || pkfs_fail "the hold did not appear"

pkfs_log "info --json through the daemon"
"$CTL" info --json "$MNT" >"$WORK/info.json"
check "$WORK/info.json" '
assert doc["mounted"] is True and doc["filesystem_label"] == "json", doc
assert doc["region_kind"] == "tmpfs" and doc["page_size"] == 4096 and doc["survives_kexec"] is False
for key in ("region", "region_size", "filesystem_uuid", "format_version", "state", "errors", "mount_count",
            "created", "last_mounted", "chunk_size", "data_chunks", "inode_slots", "hold_slots", "data_bytes",
            "free_bytes", "used_bytes", "inodes_in_use", "inodes_free", "holds", "mountpoint",
            "control_socket", "daemon_pid"):
    assert key in doc, key
assert doc["holds"] == 1 and doc["inodes_in_use"] == 4 and isinstance(doc["daemon_pid"], int)
assert doc["used_bytes"] + doc["free_bytes"] == doc["data_bytes"]
assert doc["region"].endswith("/region")'

pkfs_log "ls -l --json through the daemon"
"$CTL" ls -l --json "$MNT" >"$WORK/ls.json"
check "$WORK/ls.json" '
files = {f["name"]: f for f in doc["files"]}
assert doc["page_size"] == 4096 and set(files) == {"ram", "dir", "odd\"\\\x01\tname\ufffd\ufffd.bin"}, files
odd = files["odd\"\\\x01\tname\ufffd\ufffd.bin"]
assert bytes.fromhex(odd["name_hex"]) == b"odd\"\\\x01\tname\xff\xfe.bin", odd
assert "name_hex" not in files["ram"]
ram = files["ram"]
assert ram["size"] == 4 << 20 and ram["mode_text"].startswith("-") and ram["nlink"] == 1
assert sum(e["length"] for e in ram["extents"]) == 4 << 20 and ram["extents"][0]["file_offset"] == 0
assert files["dir"]["extents"] == [] and files["dir"]["mode"] & 0o170000 == 0o040000
assert len(doc["holds"]) == 1 and ram["holds"] == [doc["holds"][0]["id"]], doc["holds"]
hold = doc["holds"][0]
assert hold["ino"] == ram["ino"] and hold["uid"] == 0 and hold["stale"] is False and hold["pid"] > 0'
# ls without -l but with --json lists the same.
"$CTL" ls --json "$MNT" >"$WORK/ls2.json"
check "$WORK/ls2.json" 'assert len(doc["files"]) == 3 and len(doc["holds"]) == 1'

kill "$HOLDER"
wait "$HOLDER" 2>/dev/null || true
HOLDER=""
pkfs_unmount

pkfs_log "info and ls --json from the region"
"$CTL" info --json "$REGION" >"$WORK/info-offline.json"
check "$WORK/info-offline.json" '
assert doc["mounted"] is False and "lock_holder" not in doc and "daemon_pid" not in doc
assert doc["state"] == "clean" and doc["mount_count"] == 1 and isinstance(doc["last_mounted"], str)'
"$CTL" ls -l --json "$REGION" / >"$WORK/ls-offline.json"
check "$WORK/ls-offline.json" '
names = sorted(bytes.fromhex(f["name_hex"]) if "name_hex" in f else f["name"].encode() for f in doc["files"])
assert names == [b"dir", b"odd\"\\\x01\tname\xff\xfe.bin", b"ram"], names'

pkfs_log "fsck.pkfs --json-lines"
"$FSCK" -n -f --json-lines 3 "$REGION" >"$WORK/fsck.out" 3>"$WORK/fsck.jsonl" ||
  pkfs_fail "fsck of a clean region failed: $(cat "$WORK/fsck.out")"
grep -q "no problems found" "$WORK/fsck.out" || pkfs_fail "the text went missing: $(cat "$WORK/fsck.out")"
check "$WORK/fsck.jsonl" '
assert lines == [{"type": "summary", "region": sys.argv[1].rsplit("/", 1)[0] + "/region", "exit_status": 0,
                  "problems": 0, "repairs": 0}], lines'
# Damage the backup superblock (the last 4 KiB of the region), as fsck_check.sh does.
size=$(stat -c %s "$REGION")
printf '\xff' | dd of="$REGION" bs=1 seek=$((size - 4096 + 40)) conv=notrunc status=none
status=0
"$FSCK" -n -f --json-lines 1 "$REGION" >"$WORK/fsck.jsonl" || status=$?
[ "$status" -eq 4 ] || pkfs_fail "fsck of a damaged region exited $status"
check "$WORK/fsck.jsonl" '
problems = [l for l in lines if l["type"] == "problem"]
assert len(problems) >= 1 and lines[-1]["type"] == "summary", lines
assert lines[-1]["exit_status"] == 4 and lines[-1]["problems"] == len(problems)
assert all(set(p) == {"type", "pass", "code", "message"} and p["pass"] == 1 for p in problems), problems
assert any("backup" in p["message"] for p in problems), problems'
status=0
"$FSCK" -y --json-lines 1 "$REGION" >"$WORK/fsck.jsonl" || status=$?
[ "$status" -eq 1 ] || pkfs_fail "fsck -y exited $status"
check "$WORK/fsck.jsonl" '
repairs = [l for l in lines if l["type"] == "repair"]
assert len(repairs) >= 1 and all(r["done"] is True for r in repairs), lines
assert lines[-1] == {"type": "summary", "region": lines[-1]["region"], "exit_status": 1, "problems": 0,
                     "repairs": len(repairs)}, lines'
pkfs_log "PASS"
