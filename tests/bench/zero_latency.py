#!/usr/bin/env python3
"""tests/bench/zero_latency.py: what background zeroing costs FUSE requests.

On a pkfs region of about 2 GiB on hugetlbfs (zeroing there is stores, not
hole punching), a 1.5 GiB file is written and deleted, and right away a loop
times small requests one by one (stat of a file; create + 4 KiB write +
close + unlink of another), with time.perf_counter_ns around each. Cases:

  running   background zeroing on, the ops the zeroer thread ran during
            (its CPU time, /proc/PID/task/TID/schedstat, sampled every 20
            iterations, rose by more than 0.2 ms in the window around the
            op; zeroing 1.5 GiB of faulted hugepages takes it about 50 ms,
            so this is a few dozen windows per run)
  off       -o background_zeroing=off, the same loop after the same delete
  idle      background zeroing on, after pkfsctl info shows no free bytes
            to zero

and p50/p99/max per case and operation. Then fallocate of 1.5 GiB (which
needs the space being zeroed) right after the delete, once the zeroer has
started, against the same with zeroing off: an allocation that takes a
claimed chunk waits for that chunk's stores, then zeroes in the foreground.

Uses bench.py's hugepage helper (flock, exact count put back) and daemon
handling. Needs root and a build (--build-dir) with pkfs, mkfs.pkfs and
pkfsctl.

  tests/bench/zero_latency.py --build-dir build [--seconds S] [--runs N] [--gap-us U]

--gap-us sleeps between iterations, as requests from a few VMs would come:
a loop without gaps keeps a 2-CPU machine busy, and the SCHED_IDLE zeroer
then hardly runs at all.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

MIB = 1 << 20
REGION_MIB = 2048
FILE_MIB = 1536


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


class Zeroer:
    """The daemon's zeroer thread, by its name (pkfs-zeroer)."""

    def __init__(self, pid):
        self.path = None
        deadline = time.monotonic() + 5
        while self.path is None and time.monotonic() < deadline:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/comm") as f:
                    if f.read().strip() == "pkfs-zeroer":
                        self.path = f"/proc/{pid}/task/{tid}/schedstat"
            if self.path is None:
                time.sleep(0.05)

    def cpu_ns(self):
        if self.path is None:
            return 0
        with open(self.path) as f:
            return int(f.read().split()[0])


class Latency:
    def __init__(self, args):
        self.args = args
        self.bench = bench.Bench(argparse.Namespace(build_dir=args.build_dir, quick=False, runs=1, budget=1,
                                                    pkfs_opt=[]))
        self.pkfsctl = os.path.join(args.build_dir, "fs/ctl/pkfsctl")
        self.samples = {}  # (case, op) -> [ns]
        self.fallocate = {}  # case -> [ms]
        self.zeroer_seconds = []

    def add(self, case, op, ns):
        self.samples.setdefault((case, op), []).append(ns)

    def to_zero(self, mnt):
        out = subprocess.run([self.pkfsctl, "info", mnt], capture_output=True, text=True, check=True).stdout
        return int(re.search(r"Free bytes to zero:\s*(\d+)", out).group(1))

    def mount(self, zeroing):
        b = self.bench
        region = b.region_path()
        bench.run([b.mkfs, "-q", "-s", f"{REGION_MIB}M", region])
        proc, _ = b.start_daemon([b.pkfs, region, b.mnt, "-f", "-o", f"background_zeroing={zeroing}"])
        return proc, region

    def unmount(self, proc, region):
        self.bench.stop_daemon(proc)
        os.unlink(region)

    def fill_and_delete(self, mnt):
        path = os.path.join(mnt, "big")
        block = b"\x5a" * MIB
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        for _ in range(FILE_MIB):
            os.write(fd, block)
        os.close(fd)
        os.unlink(path)

    def ops(self, mnt, seconds, zeroer, classify):
        """Runs the op loop for `seconds` (or, with classify, until the
        zeroer has been quiet for 1.5 s after working). Returns the zeroer's
        busy time seen."""
        target = os.path.join(mnt, "target")
        with open(target, "wb") as f:
            f.write(b"x")
        scratch = os.path.join(mnt, "scratch")
        data = b"y" * 4096
        pending = []  # (op, ns) since the last zeroer sample
        last_cpu = zeroer.cpu_ns() if zeroer else 0
        started = time.monotonic()
        last_busy = None
        busy_ns = 0
        i = 0
        while True:
            t0 = time.perf_counter_ns()
            os.stat(target)
            t1 = time.perf_counter_ns()
            fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, data)
            os.close(fd)
            os.unlink(scratch)
            t2 = time.perf_counter_ns()
            pending.append(("stat", t1 - t0))
            pending.append(("create+4k+close+unlink", t2 - t1))
            if self.args.gap_us:
                time.sleep(self.args.gap_us / 1e6)
            i += 1
            if i % 20 == 0:
                now = time.monotonic()
                if classify:
                    cpu = zeroer.cpu_ns()
                    # The zeroer's wake-up once a second when idle costs a
                    # few microseconds; zeroing a chunk about 100.
                    working = cpu - last_cpu > 200_000
                    case = "running" if working else "on, zeroer not working"
                    if working:
                        busy_ns += cpu - last_cpu
                        last_busy = now
                    last_cpu = cpu
                else:
                    case = self.case
                for op, ns in pending:
                    self.add(case, op, ns)
                pending = []
                if classify:
                    if last_busy is not None and now - last_busy > 1.5:
                        break
                    if now - started > max(seconds, 30):
                        break
                elif now - started > seconds:
                    break
        os.unlink(target)
        return busy_ns

    def fallocate_case(self, mnt, zeroer, case):
        path = os.path.join(mnt, "alloc")
        if zeroer:
            # Wait (up to 3 s) for the zeroer to start on the freed space.
            start = zeroer.cpu_ns()
            deadline = time.monotonic() + 3
            while zeroer.cpu_ns() == start and time.monotonic() < deadline:
                time.sleep(0.001)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        t0 = time.perf_counter_ns()
        os.posix_fallocate(fd, 0, FILE_MIB * MIB)
        ms = (time.perf_counter_ns() - t0) / 1e6
        os.close(fd)
        os.unlink(path)
        self.fallocate.setdefault(case, []).append(ms)

    def run(self):
        b = self.bench
        # Region plus the mkfs slack; the daemon maps the whole region.
        with b, b.hugepages(REGION_MIB // 2 + 8, "zero_latency") as huge:
            if not huge:
                sys.exit("zero_latency: no hugepages")
            for r in range(self.args.runs):
                for zeroing in ("on", "off"):
                    proc, region = self.mount(zeroing)
                    try:
                        zeroer = Zeroer(proc.pid) if zeroing == "on" else None
                        if zeroing == "on" and zeroer.path is None:
                            sys.exit("zero_latency: found no pkfs-zeroer thread in the daemon")
                        # Space being zeroed, then space the zeroer left idle.
                        self.fill_and_delete(b.mnt)
                        if zeroing == "on":
                            self.zeroer_seconds.append(self.ops(b.mnt, self.args.seconds, zeroer, True) / 1e9)
                            while self.to_zero(b.mnt) != 0:
                                time.sleep(0.2)
                            self.case = "idle"
                            self.ops(b.mnt, self.args.seconds, None, False)
                        else:
                            self.case = "off"
                            self.ops(b.mnt, self.args.seconds, None, False)
                        # An allocation that needs the space being zeroed.
                        self.fill_and_delete(b.mnt)
                        self.fallocate_case(b.mnt, zeroer, f"zeroing {zeroing}")
                    finally:
                        self.unmount(proc, region)
        print(f"zeroer busy (CPU s) per run: {', '.join(f'{s:.2f}' for s in self.zeroer_seconds)}")
        print(f"{'case':<20} {'op':<24} {'n':>6} {'p50 us':>8} {'p99 us':>8} {'max us':>9}")
        for (case, op), v in sorted(self.samples.items()):
            print(f"{case:<20} {op:<24} {len(v):>6} {percentile(v, 0.5) / 1e3:>8.1f} "
                  f"{percentile(v, 0.99) / 1e3:>8.1f} {max(v) / 1e3:>9.1f}")
        for case, v in self.fallocate.items():
            print(f"fallocate {FILE_MIB} MiB right after delete, {case}: median {statistics.median(v):.1f} ms "
                  f"({min(v):.1f}-{max(v):.1f}), {len(v)} runs")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build-dir", required=True)
    parser.add_argument("--seconds", type=float, default=3.0, help="loop length for the off and idle cases")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--gap-us", type=float, default=0,
                        help="sleep between iterations: with 0 the loop and the daemon keep both CPUs of a small "
                             "machine busy and a SCHED_IDLE zeroer hardly runs")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("zero_latency: needs root (FUSE mounts, hugepages)")
    Latency(args).run()


if __name__ == "__main__":
    main()
