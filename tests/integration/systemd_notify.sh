#!/usr/bin/env bash
# systemd_notify.sh: the daemon speaks systemd's readiness protocol
# (Type=notify) through libsystemd: with $NOTIFY_SOCKET set (here a
# datagram socket of this test, as systemd would give it), READY=1 arrives
# once, and when it arrives the mount is up and answers (checked at once:
# the mountpoint is a fuse.pkfs mount in /proc/mounts, and statvfs and a
# directory listing of it succeed), nothing more while it serves, and on SIGTERM
# STOPPING=1 arrives before the daemon exits 0 with the region clean.
# Messages for the fd store (the takeover's) are skipped. Without
# $NOTIFY_SOCKET nothing changes (every other test).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/mount.sh"

pkfs_setup
pkfs_need python3
pkfs_mkfs 64M
PKFS_MOUNTPOINTS+=("$MNT")
python3 - "$PKFS" "$REGION" "$MNT" "$WORK" <<'PYTHON' || pkfs_fail "the readiness protocol failed (above)"
import os, signal, socket, subprocess, sys, time
pkfs, region, mnt, work = sys.argv[1:5]
path = os.path.join(work, "notify.sock")
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
sock.settimeout(20)

def mounted():
    with open("/proc/mounts") as f:
        return any(l.split()[1] == mnt and l.split()[2] == "fuse.pkfs" for l in f)

fdstore = []

def receive():
    # Messages that put descriptors in (or take them out of) the fd store
    # are the takeover's (fuse_takeover_fdstore.sh checks them): noted here,
    # not the readiness protocol.
    while True:
        data = sock.recv(4096).decode()
        message = dict(line.split("=", 1) for line in data.splitlines() if "=" in line)
        if "FDSTORE" in message or "FDSTOREREMOVE" in message:
            fdstore.append(message)
            continue
        return message

env = dict(os.environ, NOTIFY_SOCKET=path)
log = open(os.path.join(work, "daemon.log"), "w")
assert not mounted()
daemon = subprocess.Popen([pkfs, region, mnt, "-f"], env=env, stdout=log, stderr=subprocess.STDOUT)
try:
    message = receive()
    # Checked at once, before anything else can happen: the mount is there
    # and serves requests.
    was_mounted = mounted()
    st = os.statvfs(mnt)
    entries = os.listdir(mnt)
    assert message.get("READY") == "1", "first message is not READY=1: %r" % message
    assert was_mounted, "READY=1 arrived before %s was mounted" % mnt
    assert st.f_bsize > 0 and entries is not None
    assert "serving" in message.get("STATUS", ""), message
    print("READY=1 with the mount serving; STATUS=%s" % message["STATUS"])
    with open(os.path.join(mnt, "file"), "w") as f:
        f.write("x")
    sock.settimeout(0.5)
    try:
        extra = receive()
        raise AssertionError("a second message while serving: %r" % extra)
    except socket.timeout:
        pass
    sock.settimeout(20)
    daemon.send_signal(signal.SIGTERM)
    message = receive()
    assert message.get("STOPPING") == "1", "on SIGTERM: %r" % message
    print("STOPPING=1 on SIGTERM")
    status = daemon.wait(timeout=20)
    assert status == 0, "daemon exited %d" % status
    assert not mounted(), "still mounted after the daemon exited"
finally:
    if daemon.poll() is None:
        daemon.kill()
        daemon.wait()
log.close()
text = open(os.path.join(work, "daemon.log")).read()
assert "is clean" in text, text
print("daemon exited 0, region clean")
PYTHON
pkfs_log "PASS"
