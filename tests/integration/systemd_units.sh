#!/usr/bin/env bash
# systemd_units.sh: `systemd-analyze verify` accepts the units pkfs ships:
# pkfs@.service as the build made it (for an instance naming a scratch
# region, with ExecStart pointed at the build's daemon, since verify checks
# that the program exists) and the example .mount unit, with nothing to say
# about either (its man:pkfs(8) link resolves to the built page). verify
# needs no systemd as PID 1. A unit with a mistake in it must draw a
# complaint, or the check proves nothing.
source "$PKFS_SOURCE_DIR/tests/integration/lib/region.sh"

command -v systemd-analyze >/dev/null || pkfs_skip "systemd-analyze is not installed (package systemd)"
command -v systemd-escape >/dev/null || pkfs_skip "systemd-escape is not installed (package systemd)"
unit="$PKFS_BIN_DIR/fs/fuse/pkfs@.service"
[ -s "$unit" ] || pkfs_fail "the build made no $unit"
pkfs_tmpdir
T=$PKFS_TMPDIR
mkdir -p "$T/units" "$T/man/man8"
cp "$PKFS_BIN_DIR/fs/fuse/pkfs.8" "$T/man/man8/" 2>/dev/null || pkfs_skip "pkfs.8 was not built (no scdoc)"
sed "s|^ExecStart=[^ ]*/pkfs |ExecStart=$PKFS_BIN_DIR/fs/fuse/pkfs |" "$unit" >"$T/units/pkfs@.service"
grep -q "^ExecStart=$PKFS_BIN_DIR/fs/fuse/pkfs %f \${MOUNTPOINT} -f -o \${OPTIONS}\$" "$T/units/pkfs@.service" ||
  pkfs_fail "unexpected ExecStart: $(grep ExecStart "$unit")"
grep -q "^Type=notify$" "$T/units/pkfs@.service" || pkfs_fail "pkfs@.service is not Type=notify"
instance=$(systemd-escape --path "$T/region")
cp "$PKFS_SOURCE_DIR/fs/fuse/systemd/srv-vm1.mount" "$T/units/"

verify() {  # verify UNIT: systemd-analyze verify must pass and say nothing
  local output status=0
  output=$(cd "$T/units" && MANPATH="$T/man" SYSTEMD_LOG_COLOR=0 systemd-analyze verify "$T/units/$1" 2>&1) || status=$?
  [ "$status" -eq 0 ] && [ -z "$output" ] || { echo "$output"; return 1; }
}
verify "pkfs@$instance.service" || pkfs_fail "systemd-analyze verify pkfs@$instance.service (above)"
echo "verified: pkfs@$instance.service"
verify srv-vm1.mount || pkfs_fail "systemd-analyze verify srv-vm1.mount (above)"
echo "verified: srv-vm1.mount"

sed -i 's/^Type=notify$/Type=notfy/' "$T/units/pkfs@.service"
if verify "pkfs@$instance.service" >/dev/null; then
  pkfs_fail "systemd-analyze verify accepted Type=notfy: this check would not see a broken unit"
fi
echo "PASS"
