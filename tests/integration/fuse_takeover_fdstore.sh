#!/usr/bin/env bash
# fuse_takeover_fdstore.sh: the systemd path of an unplanned restart,
# without systemd: this test plays the service manager. It starts the
# daemon with NOTIFY_SOCKET pointing at its own datagram socket, receives
# the descriptors the daemon stores (FDSTORE=1, FDNAME=pkfs-fuse-<hash> and
# pkfs-params-<hash>, as sd_pid_notify_with_fds sends them), kills the
# daemon with kill -9 while a process keeps a file open and its working
# directory in the mount, and starts the same command line again with the
# stored descriptors in LISTEN_FDS / LISTEN_FDNAMES / LISTEN_PID, as a
# restarting service gets them: the new daemon takes the connection over
# instead of mounting, the open file goes on working, and at the clean
# unmount the daemon asks for the descriptors to be dropped
# (FDSTOREREMOVE=1). Then a restart with a stored connection whose mount
# is gone (kill -9, then `umount -l`): the service drops the dead pair from
# the store and mounts afresh; the same for a stored descriptor that is not
# /dev/fuse. fsck is clean.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/mount.sh"

pkfs_setup
pkfs_need python3
pkfs_mkfs 64M
PKFS_MOUNTPOINTS+=("$MNT")
python3 - "$PKFS" "$REGION" "$MNT" "$WORK" <<'PY' || pkfs_fail "the fd-store restart failed (see above)"
import array, os, signal, socket, subprocess, sys, time
pkfs, region, mnt, work = sys.argv[1:5]
notify_path = os.path.join(work, "notify.sock")
manager = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
manager.bind(notify_path)
manager.settimeout(10)
env = dict(os.environ, NOTIFY_SOCKET=notify_path)
procs = []

def fail(message):
    print("FAIL: " + message, file=sys.stderr)
    for p in procs:
        if p.poll() is None:
            p.kill()
    sys.exit(1)

def receive():
    fds = array.array("i")
    data, ancillary, _, _ = manager.recvmsg(4096, socket.CMSG_SPACE(16 * fds.itemsize))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    return data.decode(), list(fds)

# What the daemon asks of the store, until `want_store` descriptors were
# stored and `want_remove` names removed, or `timeout` seconds passed:
# ({name: fd stored}, {names removed}).
def collect(want_store, want_remove=0, timeout=10):
    got_store, got_remove = {}, set()
    manager.settimeout(timeout)
    deadline = time.time() + timeout
    while time.time() < deadline and (len(got_store) < want_store or len(got_remove) < want_remove):
        try:
            message, fds = receive()
        except socket.timeout:
            break
        fields = dict(line.split("=", 1) for line in message.split("\n") if "=" in line)
        if fields.get("FDSTORE") == "1" and fds:
            got_store[fields["FDNAME"]] = fds[0]
        if fields.get("FDSTOREREMOVE") == "1":
            got_remove.add(fields["FDNAME"])
    return got_store, got_remove

log1 = open(os.path.join(work, "daemon.1.log"), "w")
first = subprocess.Popen([pkfs, region, mnt, "-f"], env=env, stderr=log1)
procs.append(first)
stored, _ = collect(2)
# The descriptors are stored after INIT, which the first access triggers
# if the mount has not yet.
if len(stored) < 2:
    fail("the daemon stored %s, want pkfs-fuse-* and pkfs-params-*" % sorted(stored))
names = sorted(stored)
if not (names[0].startswith("pkfs-fuse-") and names[1].startswith("pkfs-params-")):
    fail("unexpected fd names %s" % names)

os.chdir(mnt)
with open("before", "w") as f:
    f.write("before\n")
held = os.open("held", os.O_RDWR | os.O_CREAT, 0o644)
os.write(held, b"one\n")

first.send_signal(signal.SIGKILL)
first.wait()

# A restarted service: same command line, `fuse_fd` and `params_fd` as fds
# 3 and 4 in LISTEN_FDS under the stored names; logs to daemon.N.log.
def restart(fuse_fd, params_fd, n):
    def as_listen_fds():
        os.dup2(fuse_fd, 3)
        os.dup2(params_fd, 4)
    log = open(os.path.join(work, "daemon.%d.log" % n), "w")
    daemon = subprocess.Popen(
        ["sh", "-c", 'LISTEN_PID=$$ exec "$@"', "sh", pkfs, region, mnt, "-f"],
        env=dict(env, LISTEN_FDS="2", LISTEN_FDNAMES=":".join(names)),
        stderr=log, preexec_fn=as_listen_fds, close_fds=False, cwd="/")
    procs.append(daemon)
    return daemon

second = restart(stored[names[0]], stored[names[1]], 2)
for _ in range(200):
    if "took over" in open(os.path.join(work, "daemon.2.log")).read():
        break
    if second.poll() is not None:
        fail("the restarted daemon exited: " + open(os.path.join(work, "daemon.2.log")).read())
    time.sleep(0.05)
else:
    fail("the restarted daemon did not take over: " + open(os.path.join(work, "daemon.2.log")).read())
if "systemd's fd store" not in open(os.path.join(work, "daemon.2.log")).read():
    fail("not taken from the fd store")

os.write(held, b"two\n")
if os.pread(held, 100, 0) != b"one\ntwo\n":
    fail("the descriptor opened before the kill reads %r" % os.pread(held, 100, 0))
if open("before").read() != "before\n" or sorted(os.listdir(".")) != ["before", "held"]:
    fail("the tree changed: %s" % sorted(os.listdir(".")))
os.close(held)
os.chdir("/")

subprocess.run(["fusermount3", "-u", mnt], check=True)
if second.wait(timeout=20) != 0:
    fail("the restarted daemon exited with %d" % second.returncode)
_, removed = collect(0, want_remove=2, timeout=2)
if removed != set(names):
    fail("FDSTOREREMOVE for %s, want %s" % (sorted(removed), names))
print("[fuse_takeover_fdstore] stored %s; restarted from them; removed at unmount" % ", ".join(names))

# A stored connection whose mount is gone: the daemon dies, the mount is
# lazily unmounted (the kernel aborts the connection although the store
# still holds its descriptor), and the service is restarted with the dead
# pair. It must drop the pair from the store and mount afresh, not exit.
log3 = open(os.path.join(work, "daemon.3.log"), "w")
third = subprocess.Popen([pkfs, region, mnt, "-f"], env=env, stderr=log3)
procs.append(third)
for _ in range(200):
    if os.path.ismount(mnt):
        break
    time.sleep(0.05)
os.listdir(mnt)  # INIT, after which the descriptors are stored
dead, _ = collect(2)
if sorted(dead) != names:
    fail("the third daemon stored %s, want %s" % (sorted(dead), names))
third.send_signal(signal.SIGKILL)
third.wait()
subprocess.run(["fusermount3", "-u", "-z", mnt], check=True)
fourth = restart(dead[names[0]], dead[names[1]], 4)
fresh, removed = collect(2, want_remove=2)
text = open(os.path.join(work, "daemon.4.log")).read()
if fourth.poll() is not None:
    fail("the service restarted with a dead connection exited: " + text)
if "cannot be served" not in text:
    fail("no word of the dead connection in the log: " + text)
if removed != set(names):
    fail("the dead pair was not removed from the store (FDSTOREREMOVE for %s)" % sorted(removed))
if sorted(fresh) != names:
    fail("the fresh mount stored %s, want %s" % (sorted(fresh), names))
if open(os.path.join(mnt, "before")).read() != "before\n":
    fail("the fresh mount lost a file")
subprocess.run(["fusermount3", "-u", mnt], check=True)
if fourth.wait(timeout=20) != 0:
    fail("the fresh daemon exited with %d: %s" % (fourth.returncode, open(os.path.join(work, "daemon.4.log")).read()))
print("[fuse_takeover_fdstore] a dead stored connection was dropped from the store and the service mounted afresh")

# A stored "connection" that is not /dev/fuse at all: the same.
null_fd = os.open("/dev/null", os.O_RDWR)
fifth = restart(null_fd, dead[names[1]], 5)
fresh, removed = collect(2, want_remove=2)
text = open(os.path.join(work, "daemon.5.log")).read()
if fifth.poll() is not None or "it is not /dev/fuse" not in text:
    fail("a stored descriptor that is not /dev/fuse: " + text)
if removed != set(names) or sorted(fresh) != names:
    fail("not /dev/fuse: removed %s, stored %s" % (sorted(removed), sorted(fresh)))
subprocess.run(["fusermount3", "-u", mnt], check=True)
if fifth.wait(timeout=20) != 0:
    fail("the daemon given /dev/null exited with %d" % fifth.returncode)
print("[fuse_takeover_fdstore] a stored descriptor that is not /dev/fuse was dropped too")
PY
for n in 2 4 5; do
  grep -q "is clean" "$WORK/daemon.$n.log" || pkfs_fail "daemon $n did not mark the region clean: $(cat "$WORK/daemon.$n.log")"
done
"$PKFS_BIN_DIR/fsck/fsck.pkfs" "$REGION" >"$WORK/fsck.out" 2>&1 || pkfs_fail "fsck: $(cat "$WORK/fsck.out")"
pkfs_log "ok"
