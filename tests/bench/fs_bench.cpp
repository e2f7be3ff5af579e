// tests/bench/fs_bench.cpp: a few file-system workloads timed through the
// ordinary system calls, on any directory: a pkfs mount, tmpfs, hugetlbfs,
// another FUSE filesystem. A benchmark, not a test: run it through
// scripts/bench (or scripts/bench-fuse), which compare pkfs with tmpfs,
// hugetlbfs and libfuse's passthrough_ll example.
//
//   pkfs_fs_bench DIR [--files N] [--mib M] [--keep] [--meta-only] [--threads T]
//   pkfs_fs_bench DIR --cold [--mib M]
//   pkfs_fs_bench DIR --mmap [--mib M]
//   pkfs_fs_bench DIR --fallocate MIB
//
// Without --cold, in this order, each timed with clock_gettime(MONOTONIC):
//   create     open(O_CREAT|O_EXCL) + close of N files (default 10,000) in a
//              fresh subdirectory DIR/fs_bench.PID
//   stat       stat of each of them, once untimed, then a timed second pass
//              (the warm figure)
//   readdir    one listing of the subdirectory (getdents64 through
//              readdir(3)), counted in entries; it must find all N
//   unlink     unlink of each of them (the subdirectory goes afterwards,
//              untimed)
//   write      M MiB (default 256) written sequentially in 1 MiB write(2)s to
//              DIR/fs_bench.data, then fsync and close
//   read_warm  the same file read back in 1 MiB read(2)s right after the
//              write, dropping nothing
// --meta-only stops after unlink. --threads T runs create, stat and unlink
// from T threads at once, each on N/T files in its own subdirectory (rates
// are over all threads, timed from a common start to the last finish) and
// implies --meta-only; readdir is then skipped.
// The data file is removed at the end, unless --keep leaves it for a later
// `--cold` run (made after the caller remounted DIR, say), which reads it
// the same way and prints read_cold, then removes it. Every read checks the
// chunk numbers the write stamped into the data.
//
// --mmap: a file of M MiB (M even, so that hugetlbfs takes it) is sized with
// ftruncate, mapped MAP_SHARED and written through the mapping 1 MiB at a
// time, then msync(MS_SYNC) and unmapped (mmap_write); mapped again and read
// back, checking the stamps (mmap_read).
// --fallocate MIB: fallocate(2) of MIB MiB on a new file (fallocate_fresh,
// in ms); the file is removed, the space waited for (statvfs), and the same
// done again on another new file, which now gets the space just freed
// (fallocate_reused). Then once more (fallocate_zeroed): the file is
// removed and, with --zeroed-wait, COMMAND (run by sh) is repeated every
// 100 ms until it exits 0, up to 300 s, before the timing starts; for pkfs
// the caller makes it succeed once the background zeroer has zeroed all
// free space, so fallocate_zeroed is reused space the zeroer caught up
// with. Without it (hugetlbfs, which zeroes in fallocate anyway) the third
// run is reused space like the second.
//
// Prints one line per workload, key=value:
//   workload=create count=10000 seconds=0.512 rate=19531.2 unit=ops/s
//   workload=write count=268435456 seconds=0.210 rate=1219.0 unit=MiB/s
//   workload=fallocate_fresh count=4294967296 seconds=0.000412 rate=0.412 unit=ms
// Exit status 0, or 1 with the reason on stderr (files made so far are
// removed on a best-effort basis).
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr size_t kChunk = size_t{1} << 20;  // bytes per write(2) and read(2)
constexpr uint64_t kStamp = 0x706b66735f62656eULL;
const char* const kDataName = "fs_bench.data";

// What to remove if we have to stop early.
struct Leftovers {
  int dir_fd = -1;     // the directory under test
  std::string subdir;  // fs_bench.PID, relative to dir_fd
  int subdir_fd = -1;
  std::vector<std::string> names;  // files in subdir that may exist
  bool data_file = false;          // kDataName may exist and should go
} g_left;

void remove_leftovers() {
  if (g_left.subdir_fd >= 0) {
    for (const std::string& name : g_left.names) ::unlinkat(g_left.subdir_fd, name.c_str(), 0);
    ::close(g_left.subdir_fd);
    g_left.subdir_fd = -1;
  }
  if (g_left.dir_fd >= 0 && !g_left.subdir.empty())
    ::unlinkat(g_left.dir_fd, g_left.subdir.c_str(), AT_REMOVEDIR);
  if (g_left.dir_fd >= 0 && g_left.data_file) ::unlinkat(g_left.dir_fd, kDataName, 0);
}

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "pkfs_fs_bench: %s\n", message.c_str());
  remove_leftovers();
  std::exit(1);
}

[[noreturn]] void die_errno(const std::string& what) { die(what + ": " + std::strerror(errno)); }

double now() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

void report_ms(const char* workload, uint64_t count, double seconds) {
  std::printf("workload=%s count=%" PRIu64 " seconds=%.6f rate=%.4f unit=ms\n", workload, count, seconds,
              seconds * 1e3);
  std::fflush(stdout);
}

void report(const char* workload, uint64_t count, double seconds, bool bytes) {
  double rate = bytes ? static_cast<double>(count) / static_cast<double>(kChunk) / seconds
                      : static_cast<double>(count) / seconds;
  std::printf("workload=%s count=%" PRIu64 " seconds=%.6f rate=%.1f unit=%s\n", workload, count, seconds,
              rate, bytes ? "MiB/s" : "ops/s");
  std::fflush(stdout);
}

std::string file_name(uint64_t i) {
  char name[32];
  std::snprintf(name, sizeof name, "f%07" PRIu64, i);
  return name;
}

void metadata_workloads(int dir_fd, uint64_t files) {
  g_left.subdir = "fs_bench." + std::to_string(::getpid());
  if (::mkdirat(dir_fd, g_left.subdir.c_str(), 0755) != 0) die_errno("mkdir " + g_left.subdir);
  g_left.subdir_fd = ::openat(dir_fd, g_left.subdir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (g_left.subdir_fd < 0) die_errno("open " + g_left.subdir);
  int sub = g_left.subdir_fd;

  std::vector<std::string>& names = g_left.names;
  names.reserve(files);
  for (uint64_t i = 0; i < files; ++i) names.push_back(file_name(i));

  double t0 = now();
  for (const std::string& name : names) {
    int fd = ::openat(sub, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) die_errno("create " + name);
    if (::close(fd) != 0) die_errno("close " + name);
  }
  report("create", files, now() - t0, false);

  struct stat st {};
  for (const std::string& name : names) {
    if (::fstatat(sub, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) die_errno("stat " + name);
  }
  t0 = now();
  for (const std::string& name : names) {
    if (::fstatat(sub, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) die_errno("stat " + name);
  }
  report("stat", files, now() - t0, false);

  int list_fd = ::openat(dir_fd, g_left.subdir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (list_fd < 0) die_errno("open " + g_left.subdir);
  DIR* listing = ::fdopendir(list_fd);
  if (listing == nullptr) die_errno("fdopendir " + g_left.subdir);
  t0 = now();
  uint64_t listed = 0;
  errno = 0;
  while (const dirent* entry = ::readdir(listing)) {
    if (entry->d_name[0] != '.') ++listed;
  }
  if (errno != 0) die_errno("readdir " + g_left.subdir);
  double listing_seconds = now() - t0;
  ::closedir(listing);
  if (listed != files)
    die("readdir found " + std::to_string(listed) + " files, expected " + std::to_string(files));
  report("readdir", files, listing_seconds, false);

  t0 = now();
  for (const std::string& name : names) {
    if (::unlinkat(sub, name.c_str(), 0) != 0) die_errno("unlink " + name);
  }
  report("unlink", files, now() - t0, false);
  names.clear();
  ::close(sub);
  g_left.subdir_fd = -1;
  if (::unlinkat(dir_fd, g_left.subdir.c_str(), AT_REMOVEDIR) != 0) die_errno("rmdir " + g_left.subdir);
  g_left.subdir.clear();
}

// A 1 MiB buffer, page aligned, with some non-zero content.
std::byte* chunk_buffer() {
  void* memory = nullptr;
  if (::posix_memalign(&memory, 4096, kChunk) != 0) die("out of memory");
  auto* bytes = static_cast<unsigned char*>(memory);
  for (size_t i = 0; i < kChunk; ++i) bytes[i] = static_cast<unsigned char>((i * 131) >> 3);
  return static_cast<std::byte*>(memory);
}

void write_data(int dir_fd, uint64_t mib, std::byte* buffer) {
  g_left.data_file = true;
  int fd = ::openat(dir_fd, kDataName, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) die_errno(std::string("create ") + kDataName);
  double t0 = now();
  for (uint64_t i = 0; i < mib; ++i) {
    uint64_t stamp = kStamp ^ i;
    std::memcpy(buffer, &stamp, sizeof stamp);
    size_t done = 0;
    while (done < kChunk) {
      ssize_t wrote = ::write(fd, buffer + done, kChunk - done);
      if (wrote < 0 && errno == EINTR) continue;
      if (wrote <= 0) die_errno(std::string("write ") + kDataName);
      done += static_cast<size_t>(wrote);
    }
  }
  if (::fsync(fd) != 0) die_errno(std::string("fsync ") + kDataName);
  if (::close(fd) != 0) die_errno(std::string("close ") + kDataName);
  report("write", mib * kChunk, now() - t0, true);
}

void read_data(int dir_fd, uint64_t mib, std::byte* buffer, const char* workload) {
  int fd = ::openat(dir_fd, kDataName, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die_errno(std::string("open ") + kDataName);
  g_left.data_file = true;
  double t0 = now();
  uint64_t total = 0;
  for (;;) {
    size_t done = 0;
    while (done < kChunk) {
      ssize_t got = ::read(fd, buffer + done, kChunk - done);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) die_errno(std::string("read ") + kDataName);
      if (got == 0) break;
      done += static_cast<size_t>(got);
    }
    if (done == 0) break;
    uint64_t stamp = 0;
    std::memcpy(&stamp, buffer, sizeof stamp);
    uint64_t chunk = total / kChunk;
    if (done != kChunk || stamp != (kStamp ^ chunk)) {
      die(std::string(kDataName) + ": chunk " + std::to_string(chunk) + " reads back wrong (" +
          std::to_string(done) + " bytes)");
    }
    total += done;
  }
  ::close(fd);
  double seconds = now() - t0;
  if (total != mib * kChunk) {
    die(std::string(kDataName) + ": read " + std::to_string(total) + " bytes, expected " +
        std::to_string(mib * kChunk));
  }
  report(workload, total, seconds, true);
}

// create, stat and unlink from `threads` threads at once, each in its own
// subdirectory. Each phase starts when every thread is ready and ends when
// the last one is done.
void parallel_metadata(int dir_fd, uint64_t files, unsigned threads) {
  uint64_t per_thread = files / threads;
  if (per_thread == 0) die("fewer files than threads");
  std::vector<int> subdirs(threads, -1);
  std::vector<std::string> subdir_names(threads);
  for (unsigned t = 0; t < threads; ++t) {
    subdir_names[t] = "fs_bench." + std::to_string(::getpid()) + "." + std::to_string(t);
    if (::mkdirat(dir_fd, subdir_names[t].c_str(), 0755) != 0) die_errno("mkdir " + subdir_names[t]);
    subdirs[t] = ::openat(dir_fd, subdir_names[t].c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (subdirs[t] < 0) die_errno("open " + subdir_names[t]);
  }
  std::vector<std::string> names;
  names.reserve(per_thread);
  for (uint64_t i = 0; i < per_thread; ++i) names.push_back(file_name(i));

  std::atomic<int> failed_errno{0};
  auto phase = [&](const char* workload, auto&& work) {
    std::atomic<unsigned> ready{0};
    std::atomic<bool> go{false};
    double t0 = 0;
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        ready.fetch_add(1);
        while (!go.load(std::memory_order_acquire)) {
        }
        for (const std::string& name : names) {
          if (!work(subdirs[t], name)) {
            int expected = 0;
            failed_errno.compare_exchange_strong(expected, errno == 0 ? EIO : errno);
            return;
          }
        }
      });
    }
    while (ready.load() < threads) {
    }
    t0 = now();
    go.store(true, std::memory_order_release);
    for (std::thread& thread : pool) thread.join();
    double seconds = now() - t0;
    if (failed_errno.load() != 0) {
      errno = failed_errno.load();
      die_errno(std::string(workload) + " from " + std::to_string(threads) + " threads");
    }
    report(workload, per_thread * threads, seconds, false);
  };
  phase("create", [](int sub, const std::string& name) {
    int fd = ::openat(sub, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    return fd >= 0 && ::close(fd) == 0;
  });
  struct stat st {};
  for (unsigned t = 0; t < threads; ++t) {
    for (const std::string& name : names) ::fstatat(subdirs[t], name.c_str(), &st, AT_SYMLINK_NOFOLLOW);
  }
  phase("stat", [](int sub, const std::string& name) {
    struct stat thread_st {};
    return ::fstatat(sub, name.c_str(), &thread_st, AT_SYMLINK_NOFOLLOW) == 0;
  });
  phase("unlink", [](int sub, const std::string& name) { return ::unlinkat(sub, name.c_str(), 0) == 0; });
  for (unsigned t = 0; t < threads; ++t) {
    ::close(subdirs[t]);
    if (::unlinkat(dir_fd, subdir_names[t].c_str(), AT_REMOVEDIR) != 0) die_errno("rmdir " + subdir_names[t]);
  }
}

void mmap_workloads(int dir_fd, uint64_t mib) {
  const char* name = "fs_bench.map";
  size_t bytes = static_cast<size_t>(mib) * kChunk;
  g_left.data_file = true;
  int fd = ::openat(dir_fd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) die_errno(std::string("create ") + name);
  if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0) die_errno(std::string("ftruncate ") + name);
  std::byte* source = chunk_buffer();

  double t0 = now();
  void* mapped = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (mapped == MAP_FAILED) die_errno(std::string("mmap ") + name);
  auto* bytes_out = static_cast<std::byte*>(mapped);
  for (uint64_t i = 0; i < mib; ++i) {
    uint64_t stamp = kStamp ^ i;
    std::memcpy(source, &stamp, sizeof stamp);
    std::memcpy(bytes_out + i * kChunk, source, kChunk);
  }
  if (::msync(mapped, bytes, MS_SYNC) != 0) die_errno(std::string("msync ") + name);
  ::munmap(mapped, bytes);
  report("mmap_write", bytes, now() - t0, true);
  ::close(fd);

  fd = ::openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die_errno(std::string("open ") + name);
  t0 = now();
  mapped = ::mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd, 0);
  if (mapped == MAP_FAILED) die_errno(std::string("mmap ") + name);
  const auto* bytes_in = static_cast<const std::byte*>(mapped);
  for (uint64_t i = 0; i < mib; ++i) {
    std::memcpy(source, bytes_in + i * kChunk, kChunk);
    uint64_t stamp = 0;
    std::memcpy(&stamp, source, sizeof stamp);
    if (stamp != (kStamp ^ i)) die(std::string(name) + ": chunk " + std::to_string(i) + " reads back wrong");
  }
  ::munmap(mapped, bytes);
  report("mmap_read", bytes, now() - t0, true);
  ::close(fd);
  std::free(source);
  if (::unlinkat(dir_fd, name, 0) != 0) die_errno(std::string("unlink ") + name);
  g_left.data_file = false;
}

uint64_t free_bytes(int dir_fd) {
  struct statvfs st {};
  if (::fstatvfs(dir_fd, &st) != 0) die_errno("statvfs");
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

// Runs `command` through sh every 100 ms (a poll that forks must not take
// the CPU from what it waits for) until it exits 0; false after 300 s.
bool wait_for_command(const std::string& command) {
  for (int i = 0; i < 3000; ++i) {
    int status = std::system(command.c_str());
    if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0) return true;
    ::usleep(100000);
  }
  return false;
}

void fallocate_workloads(int dir_fd, uint64_t mib, const std::string& zeroed_wait) {
  uint64_t bytes = mib * kChunk;
  uint64_t free_before = free_bytes(dir_fd);
  for (const char* workload : {"fallocate_fresh", "fallocate_reused", "fallocate_zeroed"}) {
    if (std::strcmp(workload, "fallocate_zeroed") == 0 && !zeroed_wait.empty() &&
        !wait_for_command(zeroed_wait)) {
      std::fprintf(stderr, "pkfs_fs_bench: '%s' did not succeed within 300 s\n", zeroed_wait.c_str());
      std::exit(1);
    }
    std::string name = std::string("fs_bench.") + workload;
    int fd = ::openat(dir_fd, name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) die_errno("create " + name);
    double t0 = now();
    int status = ::fallocate(fd, 0, 0, static_cast<off_t>(bytes));
    double seconds = now() - t0;
    int saved = errno;
    ::close(fd);
    if (status != 0) {
      ::unlinkat(dir_fd, name.c_str(), 0);
      errno = saved;
      die_errno("fallocate " + std::to_string(mib) + " MiB on " + name);
    }
    report_ms(workload, bytes, seconds);
    if (::unlinkat(dir_fd, name.c_str(), 0) != 0) die_errno("unlink " + name);
    // The space comes back once the last reference goes (for FUSE, a
    // moment after close and unlink): wait for it, up to 5 s.
    for (int i = 0; i < 500 && free_bytes(dir_fd) + kChunk < free_before; ++i) ::usleep(10000);
  }
}

uint64_t parse_count(const char* option, const char* text) {
  char* end = nullptr;
  errno = 0;
  unsigned long long value = std::strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value == 0 || text[0] == '-') {
    std::fprintf(stderr, "pkfs_fs_bench: %s wants a positive number, not %s\n", option, text);
    std::exit(2);
  }
  return value;
}

void usage() {
  std::fprintf(stderr,
               "usage: pkfs_fs_bench DIR [--files N] [--mib M] [--keep] [--meta-only] [--threads T]\n"
               "       pkfs_fs_bench DIR --cold [--mib M]\n"
               "       pkfs_fs_bench DIR --mmap [--mib M]\n"
               "       pkfs_fs_bench DIR --fallocate MIB [--zeroed-wait COMMAND]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  uint64_t files = 10000;
  uint64_t mib = 256;
  bool keep = false;
  bool cold = false;
  bool meta_only = false;
  bool map = false;
  uint64_t threads = 1;
  uint64_t fallocate_mib = 0;
  std::string zeroed_wait;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--files" && i + 1 < argc) {
      files = parse_count("--files", argv[++i]);
    } else if (arg == "--mib" && i + 1 < argc) {
      mib = parse_count("--mib", argv[++i]);
    } else if (arg == "--keep") {
      keep = true;
    } else if (arg == "--cold") {
      cold = true;
    } else if (arg == "--meta-only") {
      meta_only = true;
    } else if (arg == "--mmap") {
      map = true;
    } else if (arg == "--threads" && i + 1 < argc) {
      threads = parse_count("--threads", argv[++i]);
    } else if (arg == "--fallocate" && i + 1 < argc) {
      fallocate_mib = parse_count("--fallocate", argv[++i]);
    } else if (arg == "--zeroed-wait" && i + 1 < argc) {
      zeroed_wait = argv[++i];
    } else if (!arg.empty() && arg[0] != '-' && dir.empty()) {
      dir = arg;
    } else {
      usage();
    }
  }
  int modes = int{cold} + int{map} + int{fallocate_mib != 0};
  if (dir.empty() || (cold && keep) || modes > 1 || (modes == 1 && (meta_only || threads > 1)) ||
      (!zeroed_wait.empty() && fallocate_mib == 0) || threads > 64) {
    usage();
  }

  g_left.dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (g_left.dir_fd < 0) die_errno(dir);
  std::byte* buffer = chunk_buffer();

  if (cold) {
    read_data(g_left.dir_fd, mib, buffer, "read_cold");
  } else if (map) {
    mmap_workloads(g_left.dir_fd, mib);
  } else if (fallocate_mib != 0) {
    fallocate_workloads(g_left.dir_fd, fallocate_mib, zeroed_wait);
  } else if (threads > 1) {
    parallel_metadata(g_left.dir_fd, files, static_cast<unsigned>(threads));
  } else if (meta_only) {
    metadata_workloads(g_left.dir_fd, files);
  } else {
    metadata_workloads(g_left.dir_fd, files);
    write_data(g_left.dir_fd, mib, buffer);
    read_data(g_left.dir_fd, mib, buffer, "read_warm");
    if (keep) g_left.data_file = false;
  }
  if (g_left.data_file && ::unlinkat(g_left.dir_fd, kDataName, 0) != 0)
    die_errno(std::string("unlink ") + kDataName);
  g_left.data_file = false;
  std::free(buffer);
  ::close(g_left.dir_fd);
  return 0;
}
