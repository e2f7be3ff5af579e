// tests/bench/open_bench.cpp: how long core::Filesystem::open (and close)
// takes, by region size and by file count. A benchmark, not a test: run it
// through scripts/bench-open.
//
//   pkfs_open_bench [--dir DIR] [--runs N] [--fsck FSCK_BINARY]
//   pkfs_open_bench --make REGION --size BYTES --files N
//
// Makes sparse tmpfs region files in DIR (default /dev/shm): 1 GiB and 1 TiB
// with 100,000 files each, and 1 GiB with 1,000 and 10,000 files. Files are
// created through core::Filesystem, 100 per directory, every tenth with a
// 4 KiB write. Then it opens and closes each region N times (default 7),
// round-robin so that drift in the machine spreads over every case, and
// prints the median and range. With --fsck it also times, in the same
// rounds, fsck::check_region on a read-only mapping (what fsck.pkfs -n -f
// does after opening the region) and the whole `FSCK -n -f REGION` process
// (output discarded; it must exit 0). The region files are removed at the
// end, also on failure.
//
// --make only builds one such region (a new sparse file REGION of BYTES,
// 131,072 inodes, N files as above) and leaves it, cleanly closed, for
// scripts/bench to time the daemon's mount and fsck.pkfs on.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fs/core/filesystem.h"
#include "fs/fsck/fsck.h"
#include "fs/region/region.h"

namespace {

using namespace pkfs;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kGiB = uint64_t{1} << 30;
constexpr uint64_t kTiB = uint64_t{1} << 40;
constexpr uint64_t kInodeCount = 131072;  // usable inodes, the same for every case
constexpr uint64_t kFilesPerDirectory = 100;

struct Case {
  std::string name;
  uint64_t region_bytes = 0;
  uint64_t files = 0;
  std::string path;
  double create_seconds = 0;
  std::vector<double> open_ms;   // Filesystem::open alone
  std::vector<double> total_ms;  // region::open + Filesystem::open + close + unmap
  std::vector<double> check_ms;  // read-only region::open + check_region + unmap
  std::vector<double> fsck_ms;   // the fsck.pkfs -n -f process, start to exit
};

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "pkfs_open_bench: %s\n", message.c_str());
  std::exit(1);
}

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

std::string size_name(uint64_t bytes) {
  return bytes >= kTiB ? std::to_string(bytes / kTiB) + " TiB" : std::to_string(bytes / kGiB) + " GiB";
}

// Removes the region files however main() ends.
struct Cleanup {
  std::vector<Case>* cases = nullptr;
  ~Cleanup() {
    if (cases == nullptr) return;
    for (const Case& c : *cases) ::unlink(c.path.c_str());
  }
};

// A sparse file of `bytes`: no memory is used until it is written.
void make_sparse(const std::string& path, uint64_t bytes) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) die(path + ": cannot create: " + std::strerror(errno));
  if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    int err = errno;
    ::close(fd);
    die(path + ": cannot size to " + std::to_string(bytes) + " bytes: " + std::strerror(err));
  }
  ::close(fd);
}

std::unique_ptr<region::Region> open_region(const std::string& path) {
  auto opened = region::open(path, region::OpenOptions{});
  if (!opened) die(opened.error().message());
  return std::move(opened).value();
}

void populate(Case& c) {
  make_sparse(c.path, c.region_bytes);
  auto start = Clock::now();
  {
    auto region = open_region(c.path);
    core::FormatOptions options;
    options.layout.inode_count = kInodeCount;
    options.data_known_zero = true;  // a fresh sparse file reads as zero
    auto formatted = core::format_region(*region, options);
    if (!formatted) die(c.path + ": format: " + formatted.error().message());
    // `region` is released here: a process may hold a region only once.
  }
  auto opened = core::Filesystem::open(open_region(c.path));
  if (!opened) die(c.path + ": open after format: " + opened.error().message());
  core::Filesystem& fs = *opened.value();
  core::Caller caller;
  std::vector<std::byte> block(4096);
  for (size_t i = 0; i < block.size(); ++i) block[i] = static_cast<std::byte>(i * 7 + 1);
  char name[32];
  uint64_t directories = (c.files + kFilesPerDirectory - 1) / kFilesPerDirectory;
  uint64_t made = 0;
  for (uint64_t d = 0; d < directories; ++d) {
    std::snprintf(name, sizeof name, "d%04llu", static_cast<unsigned long long>(d));
    auto dir = fs.mkdir(format::kRootIno, name, 0755, caller);
    if (!dir) die(c.path + ": mkdir " + name + ": " + dir.error().message());
    for (uint64_t f = 0; f < kFilesPerDirectory && made < c.files; ++f, ++made) {
      std::snprintf(name, sizeof name, "f%02llu", static_cast<unsigned long long>(f));
      auto file = fs.mknod(dir->ino, name, S_IFREG | 0644, 0, caller);
      if (!file) die(c.path + ": mknod: " + file.error().message());
      if (f % 10 == 0) {
        auto wrote = fs.write(file->ino, 0, block);
        if (!wrote || wrote.value() != block.size()) die(c.path + ": write failed");
      }
    }
  }
  auto closed = fs.close();
  if (!closed) die(c.path + ": close: " + closed.error().message());
  opened.value().reset();
  c.create_seconds = ms_between(start, Clock::now()) / 1000;
}

// One timed open and close. Checks that every inode is found.
void time_open(Case& c) {
  uint64_t directories = (c.files + kFilesPerDirectory - 1) / kFilesPerDirectory;
  uint64_t expected_inodes = 1 + directories + c.files;
  auto t0 = Clock::now();
  auto region = open_region(c.path);
  auto t1 = Clock::now();
  auto opened = core::Filesystem::open(std::move(region));
  auto t2 = Clock::now();
  if (!opened) die(c.path + ": open: " + opened.error().message());
  uint64_t found = opened.value()->open_report().inodes_in_use;
  auto closed = opened.value()->close();
  if (!closed) die(c.path + ": close: " + closed.error().message());
  opened.value().reset();  // unmaps and unlocks
  auto t3 = Clock::now();
  if (found != expected_inodes) {
    die(c.path + ": open found " + std::to_string(found) + " inodes in use, expected " +
        std::to_string(expected_inodes));
  }
  c.open_ms.push_back(ms_between(t1, t2));
  c.total_ms.push_back(ms_between(t0, t3));
}

// One timed check_region, as fsck.pkfs -n -f runs it (read-only, no lock).
void time_check(Case& c) {
  auto t0 = Clock::now();
  region::OpenOptions options;
  options.access = region::Access::kReadOnly;
  options.locking = region::Locking::kNone;
  auto opened = region::open(c.path, options);
  if (!opened) die(opened.error().message());
  auto report = fsck::check_region(*opened.value());
  if (!report) die(c.path + ": check: " + report.error().message());
  if (!report->clean())
    die(c.path + ": check found " + std::to_string(report->problems.size()) + " problems");
  opened.value().reset();
  c.check_ms.push_back(ms_between(t0, Clock::now()));
}

// One timed run of the fsck.pkfs binary.
void time_fsck(Case& c, const std::string& fsck) {
  auto t0 = Clock::now();
  pid_t pid = ::fork();
  if (pid < 0) die(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null >= 0) ::dup2(null, STDOUT_FILENO);
    ::execl(fsck.c_str(), fsck.c_str(), "-n", "-f", c.path.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  if (::waitpid(pid, &status, 0) < 0) die(std::string("waitpid: ") + std::strerror(errno));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    die(fsck + " -n -f " + c.path + ": exit status " + std::to_string(WEXITSTATUS(status)));
  }
  c.fsck_ms.push_back(ms_between(t0, Clock::now()));
}

struct Stats {
  double median, min, max;
};

Stats stats(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  size_t n = values.size();
  double median = n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
  return {median, values.front(), values.back()};
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "/dev/shm";
  int runs = 7;
  std::string make_path;
  uint64_t make_bytes = 0, make_files = 0;
  std::string fsck;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--dir" && i + 1 < argc) {
      dir = argv[++i];
    } else if (arg == "--runs" && i + 1 < argc) {
      runs = std::atoi(argv[++i]);
    } else if (arg == "--make" && i + 1 < argc) {
      make_path = argv[++i];
    } else if (arg == "--size" && i + 1 < argc) {
      make_bytes = std::strtoull(argv[++i], nullptr, 10);
    } else if (arg == "--files" && i + 1 < argc) {
      make_files = std::strtoull(argv[++i], nullptr, 10);
    } else if (arg == "--fsck" && i + 1 < argc) {
      fsck = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: pkfs_open_bench [--dir DIR] [--runs N] [--fsck FSCK_BINARY]\n"
                   "       pkfs_open_bench --make REGION --size BYTES --files N\n");
      return 2;
    }
  }
  if (runs < 1) die("--runs wants a positive number");
  if (!make_path.empty()) {
    if (make_bytes < (uint64_t{16} << 20) || make_files == 0 || make_files >= kInodeCount)
      die("--make wants --size of at least 16 MiB and --files between 1 and 131,071");
    Case c;
    c.name = "make";
    c.region_bytes = make_bytes;
    c.files = make_files;
    c.path = make_path;
    populate(c);
    std::printf("made %s: %s, %llu files in %.2f s\n", c.path.c_str(), size_name(c.region_bytes).c_str(),
                static_cast<unsigned long long>(c.files), c.create_seconds);
    return 0;
  }

  std::string prefix = dir + "/pkfs-open-bench-" + std::to_string(::getpid()) + "-";
  std::vector<Case> cases;
  auto add = [&](const char* name, uint64_t bytes, uint64_t files) {
    Case c;
    c.name = name;
    c.region_bytes = bytes;
    c.files = files;
    c.path = prefix + name;
    cases.push_back(std::move(c));
  };
  add("1g-100k", kGiB, 100000);
  add("1t-100k", kTiB, 100000);
  add("1g-1k", kGiB, 1000);
  add("1g-10k", kGiB, 10000);
  Cleanup cleanup{&cases};

  for (Case& c : cases) {
    std::printf("creating %s region with %llu files ... ", size_name(c.region_bytes).c_str(),
                static_cast<unsigned long long>(c.files));
    std::fflush(stdout);
    populate(c);
    std::printf("%.1f s\n", c.create_seconds);
  }
  std::printf("timing %d opens of each region, round-robin ...\n", runs);
  for (int run = 0; run < runs; ++run) {
    for (Case& c : cases) {
      time_open(c);
      if (!fsck.empty()) {
        time_check(c);
        time_fsck(c, fsck);
      }
    }
  }

  std::printf(
      "\nFilesystem::open and open+close (region::open, Filesystem::open, close, unmap), ms over %d runs\n",
      runs);
  std::printf("%-8s %8s %8s | %12s %17s | %12s %17s\n", "region", "files", "inodes", "open median",
              "open min-max", "total median", "total min-max");
  for (const Case& c : cases) {
    Stats open = stats(c.open_ms);
    Stats total = stats(c.total_ms);
    char open_range[32], total_range[32];
    std::snprintf(open_range, sizeof open_range, "%.1f-%.1f", open.min, open.max);
    std::snprintf(total_range, sizeof total_range, "%.1f-%.1f", total.min, total.max);
    std::printf("%-8s %8llu %8llu | %12.1f %17s | %12.1f %17s\n", size_name(c.region_bytes).c_str(),
                static_cast<unsigned long long>(c.files), static_cast<unsigned long long>(kInodeCount),
                open.median, open_range, total.median, total_range);
  }
  if (fsck.empty()) return 0;
  std::printf(
      "\ncheck_region (read-only open, every pass but -z, unmap) and the fsck.pkfs -n -f process, ms over %d "
      "runs\n",
      runs);
  std::printf("%-8s %8s %8s | %12s %17s | %12s %17s\n", "region", "files", "inodes", "check median",
              "check min-max", "fsck median", "fsck min-max");
  for (const Case& c : cases) {
    Stats check = stats(c.check_ms);
    Stats process = stats(c.fsck_ms);
    char check_range[32], process_range[32];
    std::snprintf(check_range, sizeof check_range, "%.1f-%.1f", check.min, check.max);
    std::snprintf(process_range, sizeof process_range, "%.1f-%.1f", process.min, process.max);
    std::printf("%-8s %8llu %8llu | %12.1f %17s | %12.1f %17s\n", size_name(c.region_bytes).c_str(),
                static_cast<unsigned long long>(c.files), static_cast<unsigned long long>(kInodeCount),
                check.median, check_range, process.median, process_range);
  }
  return 0;
}
