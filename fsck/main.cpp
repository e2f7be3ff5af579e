// fsck.pkfs: check a pkfs region. A thin main over core::check_region.
//
//   fsck.pkfs [-n] [-f] [-v] [-z] REGION
//
// This version checks and reports; it does not repair yet (-y and -p are
// refused). Exit status, as e2fsck: 0 no problems, 4 problems left
// uncorrected, 8 operational error (cannot open or read the region),
// 16 usage error.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "fs/core/check.h"
#include "fs/core/filesystem.h"
#include "fs/region/region.h"

namespace {

using namespace pkfs;

constexpr int kExitClean = 0;
constexpr int kExitUncorrected = 4;
constexpr int kExitOperational = 8;
constexpr int kExitUsage = 16;

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Check a pkfs region (a hugetlbfs or tmpfs file, or a device-dax device).", "fsck.pkfs"};
  std::string path;
  bool no_changes = false, force = false, verbose = false, verify_zero = false, yes = false, preen = false;
  app.add_option("REGION", path, "Region to check")->required();
  app.add_flag("-n,--no", no_changes, "Open read-only and change nothing (the only mode of this version)");
  app.add_flag("-y,--yes", yes, "Repair everything (not implemented yet)");
  app.add_flag("-p,--preen", preen, "Repair what is safe (not implemented yet)");
  app.add_flag("-f,--force", force, "Check even a region marked clean");
  app.add_flag("-v,--verbose", verbose, "Print counts of what was checked");
  app.add_flag("-z,--verify-zero", verify_zero,
               "Also read every free chunk recorded as zero (slow on large regions)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    app.exit(e);
    return kExitClean;
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;  // CLI11's own codes would clash with the exit bits
  }
  if (int(no_changes) + int(yes) + int(preen) > 1) {
    std::fprintf(stderr, "fsck.pkfs: -n, -y and -p are mutually exclusive\n");
    return kExitUsage;
  }
  if (yes || preen) {
    std::fprintf(stderr,
                 "fsck.pkfs: repair (-y, -p) is not implemented in this version; run with -n to check\n");
    return kExitUsage;
  }

  try {
    // Read-only and without the lock: a mounted region can be looked at,
    // but what a live daemon is changing may look inconsistent.
    region::OpenOptions options;
    options.access = region::Access::kReadOnly;
    options.locking = region::Locking::kNone;
    std::string holder = region::lock_holder(path);
    auto opened = region::open(path, options);
    if (!opened) {
      std::fprintf(stderr, "fsck.pkfs: %s\n", opened.error().message().c_str());
      return kExitOperational;
    }
    const region::Region& region = *opened.value();
    if (!holder.empty()) {
      std::fprintf(stderr, "fsck.pkfs: warning: %s is in use by %s; results may be inconsistent\n",
                   path.c_str(), holder.c_str());
    }
    auto sb = core::read_superblock(region);
    if (sb && !force && (sb->state & format::kStateClean) && !(sb->state & format::kStateError)) {
      std::printf("%s: clean, %llu mounts\n", path.c_str(), static_cast<unsigned long long>(sb->mount_count));
      return kExitClean;
    }
    core::CheckOptions check_options;
    check_options.verify_known_zero = verify_zero;
    auto report = core::check_region(region, check_options);
    if (!report) {
      std::fprintf(stderr, "fsck.pkfs: %s: %s\n", path.c_str(), report.error().message().c_str());
      return kExitUncorrected;
    }
    if (report->rolled_back_sequence != 0) {
      std::printf(
          "%s: transaction %llu was interrupted; checked as the next mount will roll it back (%llu undo "
          "records)\n",
          path.c_str(), static_cast<unsigned long long>(report->rolled_back_sequence),
          static_cast<unsigned long long>(report->rolled_back_records));
    }
    for (const core::CheckProblem& problem : report->problems) {
      std::printf("%s: %s\n", problem.code.c_str(), problem.message.c_str());
    }
    if (verbose || !report->clean()) {
      std::printf(
          "%s: %llu inodes, %llu entries, %llu data blocks in use; %llu orphans, %llu unfinished trims\n",
          path.c_str(), static_cast<unsigned long long>(report->inodes_in_use),
          static_cast<unsigned long long>(report->dirents_in_use),
          static_cast<unsigned long long>(report->data_blocks_in_use),
          static_cast<unsigned long long>(report->orphan_inodes),
          static_cast<unsigned long long>(report->trimming_inodes));
    }
    if (!report->clean()) {
      std::printf("%s: %zu problems found; not repaired (this version only checks)\n", path.c_str(),
                  report->problems.size());
      return kExitUncorrected;
    }
    std::printf("%s: no problems found\n", path.c_str());
    return kExitClean;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fsck.pkfs: %s\n", e.what());
    return kExitOperational;
  }
}
