// pkfs_map_bench: memory bandwidth through a libpkfs mapping against a plain
// hugetlbfs mapping (not a test; scripts call it).
//
//   pkfs_map_bench --pkfs FILE_ON_MOUNT | --plain HUGETLBFS_FILE [--mib N] [--runs R]
//
// --pkfs maps FILE (which must be at least N MiB) with pkfs_map; --plain
// opens (creating and sizing if needed) a file on hugetlbfs and maps it
// MAP_SHARED. One untimed pass faults every page in; then each run times a
// write pass (memset) and a read pass (a sum of 64-bit words) over the
// first N MiB (default 256, runs default 5) and prints
//
//   mode=<pkfs|plain> op=<write|read> mib=<N> gib_s=<x>
//
// one line per run and operation.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "fs/client/pkfs.h"

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: pkfs_map_bench --pkfs FILE_ON_MOUNT | --plain HUGETLBFS_FILE [--mib N] [--runs R]\n");
  return 2;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Keeps the compiler from dropping the read pass.
volatile uint64_t g_sink;

uint64_t read_pass(const uint64_t* words, size_t count) {
  uint64_t a = 0, b = 0, c = 0, d = 0;
  for (size_t i = 0; i + 4 <= count; i += 4) {
    a += words[i];
    b += words[i + 1];
    c += words[i + 2];
    d += words[i + 3];
  }
  return a + b + c + d;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode, path;
  uint64_t mib = 256;
  int runs = 5;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if ((arg == "--pkfs" || arg == "--plain") && i + 1 < argc) {
      mode = arg.substr(2);
      path = argv[++i];
    } else if (arg == "--mib" && i + 1 < argc) {
      mib = std::strtoull(argv[++i], nullptr, 10);
    } else if (arg == "--runs" && i + 1 < argc) {
      runs = std::atoi(argv[++i]);
    } else {
      return usage();
    }
  }
  if (mode.empty() || mib == 0 || runs <= 0) return usage();
  size_t bytes = mib << 20;

  void* base = nullptr;
  pkfs_mapping mapping{};
  if (mode == "pkfs") {
    if (pkfs_map(path.c_str(), PROT_READ | PROT_WRITE, &mapping) != 0) {
      std::fprintf(stderr, "pkfs_map_bench: %s\n", pkfs_last_error());
      return 1;
    }
    if (mapping.file_size < bytes) {
      std::fprintf(stderr, "pkfs_map_bench: %s has %llu bytes, fewer than --mib %llu\n", path.c_str(),
                   static_cast<unsigned long long>(mapping.file_size), static_cast<unsigned long long>(mib));
      return 1;
    }
    base = mapping.addr;
  } else {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0600);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0) {
      std::perror(path.c_str());
      return 1;
    }
    if (static_cast<uint64_t>(st.st_size) < bytes && ::ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
      std::perror("ftruncate");
      return 1;
    }
    base = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (base == MAP_FAILED) {
      std::perror("mmap");
      return 1;
    }
  }

  auto* words = static_cast<uint64_t*>(base);
  size_t count = bytes / sizeof(uint64_t);
  std::memset(base, 1, bytes);  // fault every page in, untimed
  double gib = static_cast<double>(bytes) / (1u << 30);
  for (int run = 0; run < runs; ++run) {
    auto start = std::chrono::steady_clock::now();
    std::memset(base, run & 0xff, bytes);
    double write_s = seconds_since(start);
    start = std::chrono::steady_clock::now();
    g_sink = read_pass(words, count);
    double read_s = seconds_since(start);
    std::printf("mode=%s op=write mib=%llu gib_s=%.2f\n", mode.c_str(), static_cast<unsigned long long>(mib),
                gib / write_s);
    std::printf("mode=%s op=read mib=%llu gib_s=%.2f\n", mode.c_str(), static_cast<unsigned long long>(mib),
                gib / read_s);
    std::fflush(stdout);
  }
  if (mode == "pkfs") {
    if (pkfs_unmap(&mapping) != 0) {
      std::fprintf(stderr, "pkfs_map_bench: %s\n", pkfs_last_error());
      return 1;
    }
  } else {
    ::munmap(base, bytes);
  }
  return 0;
}
