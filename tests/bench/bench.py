#!/usr/bin/env python3
"""tests/bench/bench.py: the benchmark suite, run through scripts/bench.

Measures pkfs and its alternatives in the same run, alternating them from
one repetition to the next, and reports medians, min-max and the ratio of
pkfs to the right anchor for each workload:

  group      workloads                                   filesystems        anchor
  meta10k    create, stat (warm), readdir, unlink;       tmpfs, pkfs,       creates: passthrough_ll,
  meta100k     10,000 and 100,000 files                  passthrough_ll     the rest: tmpfs
  io         fio: 1 MiB sequential write (+fsync),       tmpfs, pkfs,       tmpfs
             1 MiB sequential read warm and with the     passthrough_ll
             page cache dropped, 4 KiB random read of
             1/8 of the file, page cache dropped
  mmap       write and read through a MAP_SHARED          tmpfs, hugetlbfs,  tmpfs
             mapping of a file on the mount               pkfs, passthrough_ll
  directmap  pkfs_map_bench: libpkfs direct mapping      pkfs, hugetlbfs    hugetlbfs
             against a plain hugetlbfs mapping
  fallocate  4 GiB file, fresh space, space just freed    pkfs, hugetlbfs    hugetlbfs
             by another file (pkfs: before the background
             zeroer caught up), and space freed again once
             pkfsctl info shows no free bytes to zero
  mount      daemon start to mount served, by region     pkfs               target (absolute)
             size (1 GiB-1 TiB sparse) and file count
  fsck       fsck.pkfs -n -f on the same regions         pkfs               target (absolute)
  recovery   kill -9 of the daemon to a file served      pkfs               absolute
             again (1 TiB, 100,000 files)
  parallel   create/stat/unlink from 2 threads; fio      tmpfs, pkfs,       as meta/io
             4 KiB random read with 2 jobs               passthrough_ll

"Page cache dropped" is fio's invalidate=1 (POSIX_FADV_DONTNEED before the
job): on a FUSE mount every read then goes to the daemon; tmpfs keeps its
pages (they are its storage). The random read covers only 1/8 of the file
so that few reads find a page an earlier one brought in.

pkfs regions live on hugetlbfs when the 2 MiB pages can be reserved (taken
per group under the same flock on /proc/sys/vm/nr_hugepages the tests use,
and the exact page count put back afterwards), otherwise on tmpfs, and the
output says so. passthrough_ll is libfuse's example, compiled from the
source libfuse3-dev ships, over a tmpfs directory, with
cache=always,writeback. The mount/fsck/recovery regions are sparse tmpfs
files filled through core (pkfs_open_bench --make), since neither a 1 TiB
region nor 100,000 creates through FUSE fit the time bound.

Writes results.csv, results.json, results.md (the table for the README)
and one PNG per group (gnuplot) to --out. Cleans up every mount, daemon,
file and hugepage it took, also on failure or Ctrl-C. Needs root.
"""
import argparse
import contextlib
import csv
import fcntl
import json
import os
import platform
import resource
import shutil
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time

GROUPS = ["meta10k", "meta100k", "io", "mmap", "directmap", "fallocate", "mount", "fsck", "recovery",
          "parallel"]
# Share of the measuring budget each group may use before it stops starting
# new repetitions (it always makes at least one).
SHARES = {"meta10k": 0.06, "meta100k": 0.25, "io": 0.12, "mmap": 0.05, "directmap": 0.04, "fallocate": 0.08,
          "mount": 0.05, "fsck": 0.05, "recovery": 0.03, "parallel": 0.12}
NAMES = {"pkfs": "pkfs", "tmpfs": "tmpfs", "hugetlbfs": "hugetlbfs", "passthrough_ll": "passthrough_ll"}
FS_ORDER = ["pkfs", "tmpfs", "hugetlbfs", "passthrough_ll"]
HUGE_POOL = "/sys/kernel/mm/hugepages/hugepages-2048kB"
MIB = 1 << 20
GIB = 1 << 30
TIB = 1 << 40


def say(message):
    print(f"bench: {message}", flush=True)


class Failure(Exception):
    pass


def run(command, timeout=300, check=True, **kwargs):
    """Runs a command, returns its stdout; raises Failure with its stderr."""
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout,
                          **kwargs)
    if check and done.returncode != 0:
        raise Failure(f"{' '.join(map(str, command))} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done.stdout


def parse_workloads(text):
    """key=value lines of pkfs_fs_bench -> {workload: (rate, unit)}"""
    out = {}
    for line in text.splitlines():
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        if "workload" in fields:
            out[fields["workload"]] = (float(fields["rate"]), fields["unit"])
    return out


def raise_file_limit():
    """passthrough_ll keeps a descriptor open for every inode the kernel
    knows: 100,000 files need more than the usual limit. Raises it as far
    as this process may (a container may forbid raising the hard limit)."""
    wanted = 1 << 20
    with contextlib.suppress(ValueError, OSError):
        with open("/proc/sys/fs/nr_open") as f:
            wanted = min(wanted, int(f.read()))
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
    except (ValueError, OSError):
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Results:
    def __init__(self):
        self.rows = {}  # (group, workload, fs) -> dict
        self.order = []
        self.notes = []

    def add(self, group, workload, fs, value, unit, better):
        key = (group, workload, fs)
        if key not in self.rows:
            self.rows[key] = {"group": group, "workload": workload, "fs": fs, "unit": unit, "better": better,
                              "values": []}
            self.order.append(key)
        self.rows[key]["values"].append(value)

    def missing(self, group, workload, fs, unit, better, reason):
        key = (group, workload, fs)
        if key not in self.rows:
            self.rows[key] = {"group": group, "workload": workload, "fs": fs, "unit": unit, "better": better,
                              "values": [], "missing": reason}
            self.order.append(key)

    def median(self, group, workload, fs):
        row = self.rows.get((group, workload, fs))
        return statistics.median(row["values"]) if row and row["values"] else None


class Bench:
    def __init__(self, args):
        self.args = args
        build = args.build_dir
        self.pkfs = os.path.join(build, "fs/fuse/pkfs")
        self.mkfs = os.path.join(build, "mkfs/mkfs.pkfs")
        self.fsck = os.path.join(build, "fsck/fsck.pkfs")
        self.fs_bench = os.path.join(build, "tests/bench/pkfs_fs_bench")
        self.open_bench = os.path.join(build, "tests/bench/pkfs_open_bench")
        self.map_bench = os.path.join(build, "tests/bench/pkfs_map_bench")
        self.pkfsctl = os.path.join(build, "fs/ctl/pkfsctl")
        self.results = Results()
        self.stack = contextlib.ExitStack()
        self.daemons = []  # Popen objects still running
        self.mounts = []  # mountpoints still mounted
        self.huge_dir = None  # hugetlbfs mount of the current group, or None
        self.quick = args.quick
        self.runs = args.runs if args.runs else (1 if args.quick else 5)

    # --- set-up and clean-up -------------------------------------------------
    def __enter__(self):
        self.work = tempfile.mkdtemp(prefix="pkfs-bench.", dir="/dev/shm")
        self.stack.callback(self._remove_work)
        for name in ("tmpfs", "pt-src", "mnt", "regions"):
            os.mkdir(os.path.join(self.work, name))
        self.mnt = os.path.join(self.work, "mnt")
        self.stack.callback(self._stop_everything)
        return self

    def __exit__(self, *exc):
        self.stack.close()
        return False

    def _stop_everything(self):
        for mountpoint in list(self.mounts):
            subprocess.run(["fusermount3", "-u", "-z", mountpoint], stderr=subprocess.DEVNULL)
        for proc in list(self.daemons):
            with contextlib.suppress(Exception):
                proc.kill()
                proc.wait(timeout=5)

    def _remove_work(self):
        with open("/proc/mounts") as f:
            if f" {self.work}/" in f.read():
                say(f"left {self.work} in place: something is still mounted below it")
                return
        shutil.rmtree(self.work, ignore_errors=True)

    def build_passthrough(self):
        examples = "/usr/share/doc/libfuse3-dev/examples"
        tool = os.path.join(self.work, "passthrough")
        os.mkdir(tool)
        for name in ("passthrough_ll.c", "passthrough_helpers.h"):
            plain, packed = os.path.join(examples, name), os.path.join(examples, name + ".gz")
            if os.path.exists(plain):
                shutil.copy(plain, tool)
            elif os.path.exists(packed):
                with open(os.path.join(tool, name), "wb") as out:
                    subprocess.run(["gzip", "-dc", packed], stdout=out, check=True)
            else:
                raise Failure(f"{plain} is missing (package libfuse3-dev)")
        flags = run(["pkg-config", "--cflags", "--libs", "fuse3"]).split()
        run(["cc", "-O2", "-o", "passthrough_ll", "passthrough_ll.c", *flags], cwd=tool)
        self.passthrough = os.path.join(tool, "passthrough_ll")

    @contextlib.contextmanager
    def hugepages(self, pages, why):
        """Reserves `pages` more 2 MiB pages and mounts hugetlbfs for the
        duration; yields the mount or None (and records why) when it cannot."""
        reason = None
        lock = None
        saved = None
        huge_dir = None
        try:
            if not os.access("/proc/sys/vm/nr_hugepages", os.W_OK):
                reason = "/proc/sys/vm/nr_hugepages is not writable"
            elif "Hugepagesize:       2048 kB" not in open("/proc/meminfo").read():
                reason = "the default hugepage size is not 2 MiB"
            else:
                lock = open("/proc/sys/vm/nr_hugepages")
                deadline = time.monotonic() + 60
                while True:
                    try:
                        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            reason = "another job held the hugepage lock for 60 s"
                            break
                        time.sleep(0.2)
                if reason is None:
                    saved = int(open("/proc/sys/vm/nr_hugepages").read())
                    with contextlib.suppress(OSError):
                        with open("/proc/sys/vm/nr_hugepages", "w") as f:
                            f.write(str(saved + pages))
                    got = int(open("/proc/sys/vm/nr_hugepages").read())
                    if got < saved + pages:
                        reason = f"could raise nr_hugepages only from {saved} to {got}, not {saved + pages}"
                    elif not self._wait_free_hugepages(pages):
                        reason = f"{pages} hugepages did not become free"
                    else:
                        huge_dir = tempfile.mkdtemp(prefix="pkfs-bench-huge.")
                        run(["mount", "-t", "hugetlbfs", "-o", "pagesize=2M,mode=0700", "none", huge_dir])
                        self.mounts.append(huge_dir)
            if reason:
                note = f"{why}: no hugetlbfs ({reason}); pkfs regions on tmpfs instead"
                say(note)
                self.results.notes.append(note)
            else:
                say(f"{why}: {pages} hugepages of 2 MiB reserved (nr_hugepages {saved} -> {saved + pages})")
            self.huge_dir = huge_dir
            yield huge_dir
        finally:
            self.huge_dir = None
            if huge_dir:
                for name in os.listdir(huge_dir):
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(huge_dir, name))
                for _ in range(50):
                    if subprocess.run(["umount", huge_dir], stderr=subprocess.DEVNULL).returncode == 0:
                        break
                    time.sleep(0.1)
                else:
                    subprocess.run(["umount", "-l", huge_dir])
                self.mounts.remove(huge_dir)
                os.rmdir(huge_dir)
            if saved is not None:
                for _ in range(100):
                    with contextlib.suppress(OSError):
                        with open("/proc/sys/vm/nr_hugepages", "w") as f:
                            f.write(str(saved))
                    if int(open("/proc/sys/vm/nr_hugepages").read()) == saved:
                        break
                    time.sleep(0.1)
                else:
                    say(f"could not restore nr_hugepages to {saved}")
            if lock:
                lock.close()

    @staticmethod
    def _wait_free_hugepages(pages):
        for _ in range(100):
            free = int(open(f"{HUGE_POOL}/free_hugepages").read())
            reserved = int(open(f"{HUGE_POOL}/resv_hugepages").read())
            if free - reserved >= pages:
                return True
            time.sleep(0.1)
        return False

    # --- daemons ----------------------------------------------------------------
    def start_daemon(self, command, log_name="daemon.log", ready_path=None, preexec_fn=None):
        """Starts a FUSE daemon in the foreground on self.mnt and waits until
        the mount serves (stat of ready_path, default the mountpoint's own
        attributes from the new filesystem). Returns (proc, seconds)."""
        parent_dev = os.stat(self.work).st_dev
        log = open(os.path.join(self.work, log_name), "ab")
        t0 = time.perf_counter()
        proc = subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL, preexec_fn=preexec_fn)
        log.close()
        self.daemons.append(proc)
        self.mounts.append(self.mnt)
        deadline = t0 + 30
        while True:
            try:
                if os.stat(self.mnt).st_dev != parent_dev and (ready_path is None or os.stat(ready_path)):
                    break
            except OSError:
                pass
            if proc.poll() is not None:
                raise Failure(f"{command[0]} exited {proc.returncode} before mounting: {self.daemon_log(log_name)}")
            if time.perf_counter() > deadline:
                raise Failure(f"{command[0]} did not mount within 30 s")
            # Sleep rather than spin: on 2 CPUs a spinning poller takes one
            # from the daemon it is timing.
            time.sleep(0.0002)
        return proc, time.perf_counter() - t0

    def stop_daemon(self, proc, check=True):
        subprocess.run(["fusermount3", "-u", self.mnt], stderr=subprocess.DEVNULL)
        try:
            status = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            subprocess.run(["fusermount3", "-u", "-z", self.mnt], stderr=subprocess.DEVNULL)
            proc.kill()
            status = proc.wait()
        if self.mnt in self.mounts:
            self.mounts.remove(self.mnt)
        self.daemons.remove(proc)
        if check and status != 0:
            raise Failure(f"the daemon exited {status}: {self.daemon_log()}")

    def daemon_log(self, name="daemon.log"):
        with contextlib.suppress(OSError):
            with open(os.path.join(self.work, name), errors="replace") as f:
                return f.read()[-2000:]
        return ""

    def region_path(self, name="region"):
        base = self.huge_dir if self.huge_dir else os.path.join(self.work, "regions")
        return os.path.join(base, name)

    @contextlib.contextmanager
    def filesystem(self, kind, region_mib=1024, inodes=None):
        """Yields a fresh, empty directory on `kind`."""
        if kind == "tmpfs":
            path = tempfile.mkdtemp(dir=os.path.join(self.work, "tmpfs"))
            try:
                yield path
            finally:
                shutil.rmtree(path, ignore_errors=True)
        elif kind == "hugetlbfs":
            if not self.huge_dir:
                raise Failure("no hugetlbfs")
            path = tempfile.mkdtemp(dir=self.huge_dir)
            try:
                yield path
            finally:
                shutil.rmtree(path, ignore_errors=True)
        elif kind == "pkfs":
            region = self.region_path()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(region)
            command = [self.mkfs, "-q", "-s", f"{region_mib}M"]
            if inodes:
                command += ["-N", str(inodes)]
            run(command + [region])
            proc = None
            try:
                open(os.path.join(self.work, "daemon.log"), "w").close()
                proc, _ = self.start_daemon([self.pkfs, region, self.mnt, "-f", *self.args.pkfs_opt])
                yield self.mnt
                self.stop_daemon(proc)
                proc = None
            finally:
                if proc is not None:
                    self.stop_daemon(proc, check=False)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(region)
        elif kind == "passthrough_ll":
            source = os.path.join(self.work, "pt-src")
            proc, _ = self.start_daemon(
                [self.passthrough, "-f", "-o", f"source={source},cache=always,writeback", self.mnt],
                preexec_fn=raise_file_limit)
            try:
                yield self.mnt
            finally:
                self.stop_daemon(proc, check=False)
                for name in os.listdir(source):
                    path = os.path.join(source, name)
                    shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
        else:
            raise ValueError(kind)

    # --- repetition --------------------------------------------------------------
    def repetitions(self, group, kinds):
        """Yields (run, kind) with the order rotating from one run to the
        next, until self.runs runs or the group's share of the budget."""
        budget = self.args.budget * SHARES[group]
        start = time.monotonic()
        for r in range(self.runs):
            if r > 0 and time.monotonic() - start > budget:
                note = f"{group}: {r} of {self.runs} runs (time budget of {budget:.0f} s used up)"
                say(note)
                self.results.notes.append(note)
                return
            order = [kinds[(r + i) % len(kinds)] for i in range(len(kinds))]
            shown = " ".join(order) if all(isinstance(k, str) for k in order) else f"{len(order)} regions"
            say(f"{group}: run {r + 1}/{self.runs}: {shown}")
            for kind in order:
                yield r, kind

    # --- groups ------------------------------------------------------------------
    def group_meta(self, group, files):
        kinds = ["tmpfs", "pkfs", "passthrough_ll"]
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if limit != resource.RLIM_INFINITY and files + 1000 > limit:
            kinds.remove("passthrough_ll")
            reason = f"n/a (needs a descriptor per file; the limit here is {limit})"
            for workload in ("create", "stat", "readdir", "unlink"):
                self.results.missing(group, workload, "passthrough_ll", "ops/s", "higher", reason)
        region_mib = 1024
        with self.hugepages(region_mib // 2, group):
            for _, kind in self.repetitions(group, kinds):
                with self.filesystem(kind, region_mib, inodes=files + files // 2 + 1024) as d:
                    try:
                        out = run([self.fs_bench, d, "--files", str(files), "--meta-only"], timeout=600)
                    except Failure as failure:
                        log = self.daemon_log() if kind == "pkfs" else ""
                        raise Failure(f"{kind}: {failure}" + (f"; daemon log: {log}" if log else "")) from None
                for workload, (rate, unit) in parse_workloads(out).items():
                    self.results.add(group, workload, kind, rate, unit, "higher")

    def fio(self, directory, name, rw, bs, size_mib, extra=()):
        command = ["fio", "--output-format=json", f"--name={name}", f"--directory={directory}",
                   "--filename=fio.data", f"--size={size_mib}M", f"--rw={rw}", f"--bs={bs}", "--ioengine=psync",
                   *extra]
        data = json.loads(run(command, timeout=300))
        job = data["jobs"][0]
        side = "write" if "write" in rw else "read"
        return job[side]["bw_bytes"] / MIB

    def group_io(self):
        kinds = ["tmpfs", "pkfs", "passthrough_ll"]
        size = 128 if self.quick else 256
        with self.hugepages(512, "io"):
            for _, kind in self.repetitions("io", kinds):
                with self.filesystem(kind, 1024) as d:
                    figures = {
                        "seq_write_1m": self.fio(d, "seqwrite", "write", "1M", size, ["--end_fsync=1"]),
                        "seq_read_1m_warm": self.fio(d, "seqread", "read", "1M", size, ["--invalidate=0"]),
                        "seq_read_1m_dropped": self.fio(d, "seqread", "read", "1M", size, ["--invalidate=1"]),
                        "rand_read_4k": self.fio(d, "randread", "randread", "4k", size,
                                                 ["--invalidate=1", "--norandommap", f"--io_size={size // 8}M"]),
                    }
                for workload, value in figures.items():
                    self.results.add("io", workload, kind, value, "MiB/s", "higher")

    def group_mmap(self):
        kinds = ["tmpfs", "hugetlbfs", "pkfs", "passthrough_ll"]
        mib = 128 if self.quick else 256
        with self.hugepages(512 + mib // 2, "mmap") as huge:
            if not huge:
                kinds.remove("hugetlbfs")
                for w in ("mmap_write", "mmap_read"):
                    self.results.missing("mmap", w, "hugetlbfs", "MiB/s", "higher", "no hugepages")
            for _, kind in self.repetitions("mmap", kinds):
                with self.filesystem(kind, 1024) as d:
                    out = run([self.fs_bench, d, "--mmap", "--mib", str(mib)])
                for workload, (rate, unit) in parse_workloads(out).items():
                    self.results.add("mmap", workload, kind, rate, unit, "higher")

    def group_directmap(self):
        workloads = ("direct_map_read", "direct_map_write")
        if not os.access(self.map_bench, os.X_OK):
            for w in workloads:
                for kind in ("pkfs", "hugetlbfs"):
                    self.results.missing("directmap", w, kind, "GiB/s", "higher", "n/a (not built)")
            say("directmap: pkfs_map_bench is not built: n/a (not built)")
            return
        mib = 128 if self.quick else 256
        with self.hugepages(512 + mib // 2, "directmap") as huge:
            if not huge:
                for w in workloads:
                    for kind in ("pkfs", "hugetlbfs"):
                        self.results.missing("directmap", w, kind, "GiB/s", "higher", "no hugepages")
                return
            for _, kind in self.repetitions("directmap", ["pkfs", "hugetlbfs"]):
                with self.filesystem(kind, 1024) as d:
                    target = os.path.join(d, "map.bin")
                    mode = "--pkfs" if kind == "pkfs" else "--plain"
                    command = [self.map_bench, mode, target, "--mib", str(mib), "--runs", "1"]
                    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
                    if done.returncode != 0:
                        # Perhaps it wants the file to exist already.
                        with open(target, "wb") as f:
                            if kind == "pkfs":
                                os.posix_fallocate(f.fileno(), 0, mib * MIB)
                            else:
                                os.ftruncate(f.fileno(), mib * MIB)
                        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
                    if done.returncode != 0:
                        raise Failure(f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()}")
                for line in done.stdout.splitlines():
                    fields = dict(p.split("=", 1) for p in line.split() if "=" in p)
                    if "op" in fields and "gib_s" in fields:
                        self.results.add("directmap", f"direct_map_{fields['op']}", kind, float(fields["gib_s"]),
                                         "GiB/s", "higher")

    def group_fallocate(self):
        mib = 1024 if self.quick else 4096
        region_mib = mib + 128
        # The pkfs region and the hugetlbfs file are never there at once.
        with self.hugepages(region_mib // 2, "fallocate") as huge:
            kinds = ["pkfs", "hugetlbfs"] if huge else ["pkfs"]
            if not huge:
                for w in ("fallocate_fresh", "fallocate_reused", "fallocate_zeroed"):
                    self.results.missing("fallocate", w, "hugetlbfs", "ms", "lower", "no hugepages")
            if huge:
                self._touch_hugepages(huge, region_mib)
            for _, kind in self.repetitions("fallocate", kinds):
                if kind == "hugetlbfs":
                    self._wait_free_hugepages(mib // 2)
                with self.filesystem(kind, region_mib, inodes=1024) as d:
                    command = [self.fs_bench, d, "--fallocate", str(mib)]
                    if kind == "pkfs":
                        # fallocate_zeroed starts once the background zeroer
                        # has zeroed all free space (pkfsctl info's "Free
                        # bytes to zero: 0"); hugetlbfs zeroes in fallocate.
                        command += ["--zeroed-wait", f"{shlex.quote(self.pkfsctl)} info {shlex.quote(d)} "
                                    "| grep -Eq '^ *Free bytes to zero: *0 '"]
                    out = run(command, timeout=420)
                for workload, (value, unit) in parse_workloads(out).items():
                    self.results.add("fallocate", workload, kind, value, unit, "lower")
        self.fallocate_mib = mib

    def _touch_hugepages(self, huge, mib):
        """Faults every page just added to the pool once, untimed. On a
        virtual machine whose memory the host backs lazily, the first touch
        of memory the guest has not used yet costs many times the kernel's
        zeroing (measured here: 7.4 s against 0.2 s for a 4 GiB hugetlbfs
        fallocate); whichever filesystem ran first would pay it."""
        path = os.path.join(huge, "touch")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            t0 = time.perf_counter()
            os.posix_fallocate(fd, 0, mib * MIB)
            say(f"fallocate: first touch of {mib} MiB of hugepages took {time.perf_counter() - t0:.2f} s (untimed)")
        finally:
            os.close(fd)
            os.unlink(path)
        self._wait_free_hugepages(mib // 2)

    def mount_cases(self):
        # By file count in 1 TiB, then by region size with 100k files; the
        # target case (1 TiB, 100k files) last.
        return [(TIB, 1000), (TIB, 10000), (GIB, 100000), (32 * GIB, 100000), (TIB, 100000)]

    def make_regions(self):
        if getattr(self, "regions", None):
            return self.regions
        self.regions = {}
        for size, files in self.mount_cases():
            path = os.path.join(self.work, "regions", f"r-{size}-{files}")
            out = run([self.open_bench, "--make", path, "--size", str(size), "--files", str(files)], timeout=120)
            say(out.strip())
            self.regions[(size, files)] = path
        return self.regions

    @staticmethod
    def case_name(size, files):
        size_text = f"{size // TIB} TiB" if size >= TIB else f"{size // GIB} GiB"
        return f"{size_text}, {files // 1000}k files"

    def group_mount(self):
        regions = self.make_regions()
        cases = list(regions)
        for _, case in self.repetitions("mount", cases):
            proc, seconds = self.start_daemon([self.pkfs, regions[case], self.mnt, "-f"])
            self.stop_daemon(proc)
            self.results.add("mount", self.case_name(*case), "pkfs", seconds * 1e3, "ms", "lower")

    def group_fsck(self):
        regions = self.make_regions()
        cases = list(regions)
        for _, case in self.repetitions("fsck", cases):
            t0 = time.perf_counter()
            run([self.fsck, "-n", "-f", regions[case]])
            self.results.add("fsck", self.case_name(*case), "pkfs", (time.perf_counter() - t0) * 1e3, "ms",
                             "lower")

    def group_recovery(self):
        case = (TIB, 100000)
        region = self.make_regions()[case]
        probe = os.path.join(self.mnt, "d0999", "f99")
        for _ in self.repetitions("recovery", ["pkfs"]):
            proc, _ = self.start_daemon([self.pkfs, region, self.mnt, "-f"], ready_path=probe)
            t0 = time.perf_counter()
            proc.kill()
            proc.wait()
            self.daemons.remove(proc)
            run(["fusermount3", "-u", "-z", self.mnt])
            self.mounts.remove(self.mnt)
            proc, _ = self.start_daemon([self.pkfs, region, self.mnt, "-f"], ready_path=probe)
            seconds = time.perf_counter() - t0
            self.stop_daemon(proc)
            self.results.add("recovery", "kill -9 to served (1 TiB, 100k files)", "pkfs", seconds * 1e3, "ms",
                             "lower")

    def group_parallel(self):
        kinds = ["tmpfs", "pkfs", "passthrough_ll"]
        size = 128 if self.quick else 256
        with self.hugepages(512, "parallel"):
            for _, kind in self.repetitions("parallel", kinds):
                with self.filesystem(kind, 1024, inodes=16384) as d:
                    out = run([self.fs_bench, d, "--files", "10000", "--threads", "2"], timeout=300)
                    self.fio(d, "layout", "write", "1M", size, ["--end_fsync=1"])
                    randread = self.fio(d, "randread2", "randread", "4k", size,
                                        ["--invalidate=1", "--norandommap", f"--io_size={size // 16}M",
                                         "--numjobs=2", "--group_reporting"])
                for workload, (rate, unit) in parse_workloads(out).items():
                    self.results.add("parallel", f"{workload}_2t", kind, rate, unit, "higher")
                self.results.add("parallel", "rand_read_4k_2j", kind, randread, "MiB/s", "higher")


# --- report ------------------------------------------------------------------------
# (group, workload) -> (anchor filesystem or None, target text, check)
def target_of(group, workload, fallocate_mib=4096):
    if group in ("meta10k", "meta100k", "parallel") and workload.startswith("create"):
        return "passthrough_ll", (">= 3x", lambda r, v: r >= 3.0) if group != "parallel" else None
    if group in ("meta10k", "meta100k") and workload == "stat":
        return "tmpfs", (">= 0.9x", lambda r, v: r >= 0.9)
    if group in ("meta10k", "meta100k", "parallel"):
        return "tmpfs", None
    if group == "io":
        if workload.startswith("seq_read"):
            return "tmpfs", (">= 0.5x", lambda r, v: r >= 0.5)
        return "tmpfs", None
    if group == "mmap":
        return "tmpfs", None
    if group == "directmap":
        return "hugetlbfs", (">= 0.98x", lambda r, v: r >= 0.98)
    if group == "fallocate":
        if workload in ("fallocate_fresh", "fallocate_zeroed") and fallocate_mib == 4096:
            return "hugetlbfs", ("<= 1 ms", lambda r, v: v <= 1.0)
        return "hugetlbfs", None
    if group == "mount" and workload == "1 TiB, 100k files":
        return None, ("<= 50 ms", lambda r, v: v <= 50.0)
    if group == "fsck" and workload == "1 TiB, 100k files":
        return None, ("<= 500 ms", lambda r, v: v <= 500.0)
    return None, None


def number(x):
    if x is None:
        return "-"
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def summarize(bench):
    res = bench.results
    fallocate_mib = getattr(bench, "fallocate_mib", 4096)
    table = []
    seen = []
    for key in res.order:
        gw = key[:2]
        if gw not in seen:
            seen.append(gw)
    for group, workload in seen:
        row = {"group": group, "workload": workload, "cells": {}}
        for fs in FS_ORDER:
            r = res.rows.get((group, workload, fs))
            if r is None:
                continue
            row["unit"], row["better"] = r["unit"], r["better"]
            if r["values"]:
                v = r["values"]
                row["cells"][fs] = {"median": statistics.median(v), "min": min(v), "max": max(v), "runs": len(v),
                                    "values": v}
            else:
                row["cells"][fs] = {"missing": r.get("missing", "n/a")}
        anchor, target = target_of(group, workload, fallocate_mib)
        pk = row["cells"].get("pkfs", {}).get("median")
        base = row["cells"].get(anchor, {}).get("median") if anchor else None
        ratio = None
        if pk is not None and base:
            ratio = pk / base if row["better"] == "higher" else base / pk
        row["anchor"], row["ratio"] = anchor, ratio
        row["target"], row["verdict"] = "", ""
        if target:
            row["target"] = target[0] + (f" {anchor}" if anchor and target[0].endswith("x") else "")
            if pk is None or (anchor and ratio is None):
                row["verdict"] = "n/a"
            else:
                row["verdict"] = "met" if target[1](ratio, pk) else "MISSED"
        table.append(row)
    return table


def cell_text(cell):
    if not cell:
        return ""
    if "missing" in cell:
        return cell["missing"]
    if cell["runs"] == 1:
        return number(cell["median"])
    return f"{number(cell['median'])} ({number(cell['min'])}-{number(cell['max'])})"


def ratio_text(row):
    if row["ratio"] is None:
        return ""
    ratio = row["ratio"]
    return f"{ratio:,.0f}x {row['anchor']}" if ratio >= 100 else f"{ratio:.2f}x {row['anchor']}"


def machine_description():
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return f"{cpu}, {os.cpu_count()} CPUs, {mem_kib / 1048576:.0f} GiB RAM, kernel {platform.release()}"


LABELS = {
    "create": "create+close", "stat": "stat (warm)", "readdir": "readdir", "unlink": "unlink",
    "seq_write_1m": "1 MiB seq write+fsync", "seq_read_1m_warm": "1 MiB seq read (warm)",
    "seq_read_1m_dropped": "1 MiB seq read (cache dropped)", "rand_read_4k": "4 KiB rand read (cache dropped)",
    "mmap_write": "mmap write+msync", "mmap_read": "mmap read", "direct_map_read": "direct-map read",
    "direct_map_write": "direct-map write", "fallocate_fresh": "fallocate (fresh space)",
    "fallocate_reused": "fallocate (reused, just freed)",
    "fallocate_zeroed": "fallocate (reused, zeroer done)", "create_2t": "create+close, 2 threads",
    "stat_2t": "stat (warm), 2 threads", "unlink_2t": "unlink, 2 threads",
    "rand_read_4k_2j": "4 KiB rand read, 2 jobs",
}
GROUP_TITLES = {
    "meta10k": "metadata, 10,000 files", "meta100k": "metadata, 100,000 files", "io": "file I/O (fio)",
    "mmap": "mmap through the mount", "directmap": "direct map (libpkfs) vs hugetlbfs",
    "fallocate": "fallocate of a guest-RAM file", "mount": "mount to ready (sparse tmpfs regions)",
    "fsck": "fsck.pkfs -n -f (same regions)", "recovery": "daemon kill -9 to files served again",
    "parallel": "parallel clients (2 threads / 2 fio jobs)",
}


def label(group, workload):
    text = LABELS.get(workload, workload)
    if group == "fallocate":
        return f"{text}, {getattr(label, 'fallocate_mib', 4096) // 1024} GiB"
    return text


def write_markdown(path, bench, table, header):
    lines = [f"Machine: {header['machine']}. Build: {header['build']}, commit {header['commit']}. "
             f"{header['date']}; {header['runs']} runs per workload unless noted, alternating; "
             f"median (min-max); the suite took {header['seconds']:.0f} s.", ""]
    lines.append("| group | workload | unit | pkfs | tmpfs | hugetlbfs | passthrough_ll | ratio | target | |")
    lines.append("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    for row in table:
        cells = [cell_text(row["cells"].get(fs)) for fs in FS_ORDER]
        lines.append(f"| {row['group']} | {label(row['group'], row['workload'])} | {row['unit']} | "
                     + " | ".join(cells) + f" | {ratio_text(row)} | {row['target']} | {row['verdict']} |")
    lines.append("")
    lines.append("Ratios: pkfs over the anchor for rates, anchor over pkfs for times, so above 1x means pkfs is "
                 "faster. pkfs regions: " + header["regions"] + ".")
    for note in bench.results.notes:
        lines.append(f"- {note}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def write_csv(path, table):
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["group", "workload", "unit", "filesystem", "runs", "median", "min", "max", "values",
                      "anchor", "ratio", "target", "verdict"])
        for row in table:
            for fs, cell in row["cells"].items():
                if "missing" in cell:
                    out.writerow([row["group"], row["workload"], row["unit"], fs, 0, "", "", "", cell["missing"],
                                  "", "", "", ""])
                    continue
                is_pkfs = fs == "pkfs"
                out.writerow([row["group"], row["workload"], row["unit"], fs, cell["runs"],
                              f"{cell['median']:.6g}", f"{cell['min']:.6g}", f"{cell['max']:.6g}",
                              ";".join(f"{v:.6g}" for v in cell["values"]),
                              row["anchor"] or "" if is_pkfs else "",
                              f"{row['ratio']:.4f}" if is_pkfs and row["ratio"] is not None else "",
                              row["target"] if is_pkfs else "", row["verdict"] if is_pkfs else ""])


def plot(out_dir, table, header):
    """One PNG per group: grouped bars of the medians with min-max error bars,
    the ratio under each workload's name."""
    if not shutil.which("gnuplot"):
        say("gnuplot is missing: no plots")
        return []
    made = []
    groups = []
    for row in table:
        if row["group"] not in groups:
            groups.append(row["group"])
    for group in groups:
        rows = [r for r in table if r["group"] == group]
        kinds = [fs for fs in FS_ORDER if any("median" in r["cells"].get(fs, {}) for r in rows)]
        if not kinds:
            continue
        data_path = os.path.join(out_dir, f"{group}.dat")
        with open(data_path, "w") as f:
            for r in rows:
                name = label(group, r["workload"]).replace('"', "'")
                lines = [name]
                if r["ratio"] is not None:
                    lines.append(f"pkfs {ratio_text(r)}")
                if r["verdict"]:
                    lines.append(f"target {r['target']}: {r['verdict']}")
                text = "\\n".join(lines)
                fields = [f'"{text}"']
                for fs in kinds:
                    c = r["cells"].get(fs, {})
                    if "median" in c:
                        fields += [f"{c['median']:.6g}", f"{c['min']:.6g}", f"{c['max']:.6g}"]
                    else:
                        fields += ["NaN", "NaN", "NaN"]
                f.write(" ".join(fields) + "\n")
        units = rows[0]["unit"]
        better = "higher is better" if rows[0]["better"] == "higher" else "lower is better"
        values = [c[k] for r in rows for c in r["cells"].values() for k in ("min", "max") if k in c]
        log = values and min(values) > 0 and max(values) / min(values) > 50
        colors = {"pkfs": "#1b6ca8", "tmpfs": "#9aa5b1", "hugetlbfs": "#e0a030", "passthrough_ll": "#c0504d"}
        png = os.path.join(out_dir, f"{group}.png")
        width = max(800, 290 * len(rows) + 150)
        script = [
            f"set terminal pngcairo size {min(width, 1700)},460 font 'DejaVu Sans,9' noenhanced",
            "set bmargin 6",
            f"set output '{png}'",
            f"set title \"{GROUP_TITLES.get(group, group)} ({better})\\n{header['machine_short']}\"",
            f"set ylabel '{units}'",
            "set style data histogram",
            "set style histogram errorbars gap 1.5 lw 1",
            "set style fill solid 0.85 border -1",
            "set boxwidth 0.9",
            "set key top left horizontal",
            "set grid ytics",
            "set xtics nomirror scale 0",
            "set yrange [0:*]" if not log else "set logscale y",
            "set datafile missing 'NaN'",
        ]
        parts = []
        for i, fs in enumerate(kinds):
            c0 = 2 + 3 * i
            using = f"{c0}:{c0 + 1}:{c0 + 2}" + (":xticlabels(1)" if i == 0 else "")
            parts.append(f"'{data_path}' using {using} title '{NAMES[fs]}' lc rgb '{colors[fs]}'")
        script.append("plot " + ", ".join(parts))
        done = subprocess.run(["gnuplot"], input="\n".join(script), text=True, capture_output=True)
        os.unlink(data_path)
        if done.returncode != 0:
            say(f"gnuplot failed on {group}: {done.stderr.strip()}")
            continue
        made.append(png)
    return made


def main():
    parser = argparse.ArgumentParser(description="pkfs benchmark suite (see scripts/bench)")
    parser.add_argument("--build-dir", required=True)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one run")
    parser.add_argument("--runs", type=int, default=0, help="repetitions per workload (default 5, 1 with --quick)")
    parser.add_argument("--out", help="output directory (default BUILD_DIR/bench-results)")
    parser.add_argument("--only", nargs="+", choices=GROUPS, metavar="GROUP",
                        help="only these groups: " + " ".join(GROUPS))
    parser.add_argument("--pkfs-opt", action="append", default=[], metavar="ARG",
                        help="an extra argument for the pkfs daemon (repeatable), to compare its options")
    parser.add_argument("--budget", type=float, default=420,
                        help="seconds of measuring to share among the groups (default 420)")
    args = parser.parse_args()
    if args.runs < 0 or args.budget <= 0:
        parser.error("--runs and --budget must be positive")
    out_dir = os.path.abspath(args.out or os.path.join(args.build_dir, "bench-results"))
    os.makedirs(out_dir, exist_ok=True)
    if os.geteuid() != 0:
        sys.exit("bench: needs root (FUSE mounts, hugepages)")
    for tool in ("fusermount3", "fio"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is missing (scripts/setup-deps --bench installs it)")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    raise_file_limit()
    started = time.monotonic()
    groups = args.only or GROUPS
    with Bench(args) as bench:
        bench.build_passthrough()
        label.fallocate_mib = 1024 if args.quick else 4096
        header = {
            "machine": machine_description(),
            "machine_short": f"{machine_description().split(',')[0]}, {os.cpu_count()} CPUs, kernel {platform.release()}",
            "commit": run(["git", "-C", os.path.dirname(os.path.abspath(__file__)), "rev-parse", "--short", "HEAD"],
                          check=False).strip() or "unknown",
            "build": "RelWithDebInfo",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "runs": bench.runs,
        }
        say(f"machine: {header['machine']}; load average {open('/proc/loadavg').read().split()[0]}")
        for group in groups:
            t0 = time.monotonic()
            try:
                if group in ("meta10k", "meta100k"):
                    bench.group_meta(group, 10000 if group == "meta10k" else 100000)
                else:
                    getattr(bench, f"group_{group}")()
            except Failure as failure:
                note = f"{group}: failed: {failure}"
                say(note)
                bench.results.notes.append(note[:500])
            say(f"{group}: {time.monotonic() - t0:.0f} s")
        on_huge = [n for n in bench.results.notes if "no hugetlbfs" in n]
        header["regions"] = ("2 MiB hugetlbfs pages for meta/io/mmap/fallocate/parallel"
                             + (" except where noted" if on_huge else "")
                             + "; sparse tmpfs files for mount/fsck/recovery")
        header["seconds"] = time.monotonic() - started
        table = summarize(bench)

    # The table on stdout.
    print()
    print(f"machine: {header['machine']}")
    widths = [9, 34, 6, 26, 26, 26, 26, 22, 16, 7]
    titles = ["group", "workload", "unit", "pkfs", "tmpfs", "hugetlbfs", "passthrough_ll", "ratio", "target", ""]
    print(" ".join(t.ljust(w) for t, w in zip(titles, widths)).rstrip())
    for row in table:
        cells = [row["group"], label(row["group"], row["workload"]), row["unit"]]
        cells += [cell_text(row["cells"].get(fs)) for fs in FS_ORDER]
        cells += [ratio_text(row), row["target"], row["verdict"]]
        print(" ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip())
    for note in bench.results.notes:
        print(f"note: {note}")

    write_csv(os.path.join(out_dir, "results.csv"), table)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"header": header, "notes": bench.results.notes,
                   "rows": [{k: v for k, v in r.items()} for r in table]}, f, indent=1)
    write_markdown(os.path.join(out_dir, "results.md"), bench, table, header)
    pngs = plot(out_dir, table, header)
    print(f"\nbench: {len(table)} workloads in {header['seconds']:.0f} s; results.csv, results.json, results.md"
          f" and {len(pngs)} plots in {out_dir}")


if __name__ == "__main__":
    main()
