// fsck.pkfs: check and repair a pkfs region. A thin main over
// fsck::check_region and fsck::repair_region.
//
//   fsck.pkfs [-n|-y|-p] [-f] [-v] [-z] [-C FD] [--json-lines FD] REGION
//
// Exit status, a sum of e2fsck's bits: 0 no problems; 1 problems corrected;
// 2 never (no reboot is ever needed: pkfs is not a root filesystem);
// 4 problems left uncorrected; 8 operational error (cannot open, lock or
// read the region); 16 usage error; 32 cancelled (SIGINT or SIGTERM);
// 128 never (no shared-library error can happen after start).
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include "fs/core/filesystem.h"
#include "fs/fsck/fsck.h"
#include "fs/region/region.h"
#include "fsck/json_lines.h"

namespace {

using namespace pkfs;

constexpr int kExitClean = 0;
constexpr int kExitCorrected = 1;
constexpr int kExitUncorrected = 4;
constexpr int kExitOperational = 8;
constexpr int kExitUsage = 16;
constexpr int kExitCancelled = 32;

// A progress bar is shown by default on a terminal when the region has at
// least this many chunks (64 GiB) or inode slots.
constexpr uint64_t kLargeChunks = 32768;
constexpr uint64_t kLargeInodes = 262144;

volatile sig_atomic_t g_cancelled = 0;
void on_signal(int) { g_cancelled = 1; }

int cancelled() {
  std::fprintf(stderr, "\nfsck.pkfs: cancelled\n");
  return kExitCancelled;
}

// --json-lines: problems and repairs as JSON, and the summary main() adds.
fsck::JsonLines g_json;
std::string g_region;

// e2fsck's -C: progress to a file descriptor (0: a bar on stdout).
class ProgressBar {
 public:
  explicit ProgressBar(int fd) : m_fd(fd) {}
  bool enabled() const { return m_fd >= 0; }
  void operator()(int pass, uint64_t done, uint64_t total) {
    if (m_fd < 0) return;
    int percent = total == 0 ? 100 : static_cast<int>(done * 100 / total);
    if (pass == m_pass && percent == m_percent) return;
    m_pass = pass;
    m_percent = percent;
    if (m_fd == 0 || m_fd == 1) {
      std::fprintf(stdout, "\rPass %d: %3d%%", pass, percent);
      std::fflush(stdout);
      m_drawn = true;
    } else {
      dprintf(m_fd, "%d %llu %llu\n", pass, static_cast<unsigned long long>(done),
              static_cast<unsigned long long>(total));
    }
  }
  // Clears the bar before other output.
  void clear() {
    if (!m_drawn) return;
    std::fprintf(stdout, "\r%20s\r", "");
    std::fflush(stdout);
    m_drawn = false;
  }

 private:
  int m_fd;
  int m_pass = 0, m_percent = -1;
  bool m_drawn = false;
};

void print_by_pass(const std::vector<std::pair<std::string, std::string>>& lines, bool verify_zero) {
  // Lines grouped under their pass headers, each pass once, in pass order.
  std::vector<std::pair<int, size_t>> order;
  for (size_t i = 0; i < lines.size(); ++i) order.emplace_back(fsck::check_pass_of(lines[i].first), i);
  std::stable_sort(order.begin(), order.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  size_t at = 0;
  for (int pass = 1; pass <= fsck::kPassCount; ++pass) {
    std::printf("Pass %d: %s%s\n", pass, fsck::check_pass_name(pass),
                pass == 7 && !verify_zero ? " (skipped: -z reads them)" : "");
    for (; at < order.size() && order[at].first == pass; ++at) {
      const auto& [code, message] = lines[order[at].second];
      std::printf("%s: %s\n", code.c_str(), message.c_str());
    }
  }
}

void print_counts(const std::string& path, const fsck::CheckReport& report) {
  std::printf("%s: %llu inodes, %llu entries, %llu data blocks in use; %llu orphans, %llu unfinished trims\n",
              path.c_str(), static_cast<unsigned long long>(report.inodes_in_use),
              static_cast<unsigned long long>(report.dirents_in_use),
              static_cast<unsigned long long>(report.data_blocks_in_use),
              static_cast<unsigned long long>(report.orphan_inodes),
              static_cast<unsigned long long>(report.trimming_inodes));
}

// The quick path: a region marked clean is skipped without -f, after the
// validation a mount does (every eagerly read structure: superblocks,
// journal header, inode and entry slots, chunk map, split headers, holds),
// so that fsck never calls clean what the daemon would refuse. Returns true
// when it printed the summary; `region` is consumed either way.
bool quick_clean(const std::string& path, std::unique_ptr<region::Region> region, std::string* trouble) {
  auto sb = core::read_superblock(*region);
  if (!sb || !(sb->state & format::kStateClean) || (sb->state & format::kStateError)) return false;
  core::OpenOptions options;
  options.read_only = true;
  auto opened = core::Filesystem::open(std::move(region), options);
  if (!opened) {
    *trouble = opened.error().message();
    const std::string hint = "; run fsck.pkfs";
    if (trouble->size() > hint.size() && trouble->ends_with(hint))
      trouble->resize(trouble->size() - hint.size());
    const std::string prefix = "run fsck.pkfs: ";
    if (trouble->starts_with(prefix)) trouble->erase(0, prefix.size());
    return false;
  }
  std::printf("%s: clean, %llu of %llu inodes used, %llu mounts\n", path.c_str(),
              static_cast<unsigned long long>(opened.value()->open_report().inodes_in_use),
              static_cast<unsigned long long>(sb->inode_count - 1),
              static_cast<unsigned long long>(sb->mount_count));
  return true;
}

}  // namespace

int run(int argc, char** argv) {
  CLI::App app{
      "Check and repair a pkfs region (a hugetlbfs or tmpfs file, or a device-dax device).\n\n"
      "Exit status (a sum): 0 no problems; 1 problems corrected; 2 never (no reboot is needed);\n"
      "4 problems left uncorrected; 8 operational error (cannot open, lock or read the region);\n"
      "16 usage error; 32 cancelled; 128 never.\n\n"
      "Without -n, -y or -p, fsck.pkfs checks only (as -n). Repairs are described in the\n"
      "project's FORMAT.md, \"Repair\"; -p makes only those that need no decision (journal\n"
      "recovery, counts, leaked space, backup superblock, stale holds) and otherwise changes\n"
      "nothing else and asks for -y. A region mounted by a daemon can be checked with -n only.",
      "fsck.pkfs"};
  std::string path;
  bool no_changes = false, force = false, verbose = false, verify_zero = false, yes = false, preen = false;
  int progress_fd = -1;
  bool progress_given = false;
  app.add_option("REGION", path, "Region to check")->required();
  app.add_flag("-n,--no", no_changes,
               "Open read-only and change nothing (also without the lock: a mounted region)");
  app.add_flag("-y,--yes", yes, "Repair everything repairable");
  app.add_flag("-p,-a,--preen", preen, "Repair only what is safe without asking; exit 4 if more is needed");
  app.add_flag("-f,--force", force, "Check even a region marked clean");
  app.add_flag("-v,--verbose", verbose, "Print counts of what was checked");
  app.add_flag("-z,--verify-zero", verify_zero,
               "Also read every free chunk recorded as zero (slow on large regions); with -y/-p mark those "
               "that are not as dirty");
  app.add_option(
         "-C,--progress", progress_fd,
         "Progress to file descriptor FD as lines \"pass done total\"; 0: a bar on stdout (default on a "
         "terminal for regions of 64 GiB or more)")
      ->each([&](const std::string&) { progress_given = true; });
  int json_fd = -1;
  app.add_option("--json-lines", json_fd,
                 "Also write each problem and repair, then a summary, as JSON lines to file descriptor FD; "
                 "1: to stdout instead of the text");
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
  if (progress_given && progress_fd < 0) {
    std::fprintf(stderr, "fsck.pkfs: -C needs a file descriptor >= 0\n");
    return kExitUsage;
  }
  const bool repair = yes || preen;
  g_region = path;
  g_json.open(json_fd);

  struct sigaction action {};
  action.sa_handler = on_signal;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);

  try {
    region::OpenOptions options;
    std::string holder = region::lock_holder(path);
    if (repair) {
      // Read-write takes the exclusive lock: a mounted region is refused,
      // naming the daemon that holds it.
      options.access = region::Access::kReadWrite;
      options.locking = region::Locking::kExclusive;
    } else {
      // Read-only and without the lock: a mounted region can be looked at,
      // but what a live daemon is changing may look inconsistent.
      options.access = region::Access::kReadOnly;
      options.locking = region::Locking::kNone;
    }
    auto opened = region::open(path, options);
    if (opened && !force) {
      std::string trouble;
      if (quick_clean(path, std::move(opened).value(), &trouble)) return kExitClean;
      if (!trouble.empty())
        std::printf("%s: marked clean, but %s; checking\n", path.c_str(), trouble.c_str());
      opened = region::open(path, options);  // the quick path consumed it
    }
    if (!opened) {
      std::fprintf(stderr, "fsck.pkfs: %s\n", opened.error().message().c_str());
      if (repair && !holder.empty()) {
        std::fprintf(stderr, "fsck.pkfs: %s is in use by %s; unmount it first, or check it with -n\n",
                     path.c_str(), holder.c_str());
      }
      return kExitOperational;
    }
    region::Region& region = *opened.value();
    if (!repair && !holder.empty()) {
      std::fprintf(stderr, "fsck.pkfs: warning: %s is in use by %s; results may be inconsistent\n",
                   path.c_str(), holder.c_str());
    }
    if (verbose) {
      std::printf("%s: %s region, survives kexec: %s\n", path.c_str(), region::kind_name(region.info().kind),
                  region::survives_kexec(region.info().kind) ? "yes" : "no");
    }

    // The default bar: on a terminal, for a large region.
    if (!progress_given && isatty(STDOUT_FILENO)) {
      auto sb = core::read_superblock(region);
      if (sb && (sb->chunk_count >= kLargeChunks || sb->inode_high_water >= kLargeInodes)) progress_fd = 0;
    }
    ProgressBar progress(progress_fd);
    // A signal stops the check or the repair at its next progress report.
    auto progress_callback = [&](int pass, uint64_t done, uint64_t total) {
      if (g_cancelled) return false;
      progress(pass, done, total);
      return true;
    };

    int status = kExitClean;
    if (repair) {
      fsck::RepairOptions repair_options;
      repair_options.mode = preen ? fsck::RepairMode::kPreen : fsck::RepairMode::kAll;
      repair_options.verify_known_zero = verify_zero;
      auto repaired = fsck::repair_region(region, repair_options, progress_callback);
      if (!repaired && repaired.error().code() == ECANCELED) return cancelled();
      progress.clear();
      if (!repaired) {
        std::fprintf(stderr, "fsck.pkfs: %s: %s\n", path.c_str(), repaired.error().message().c_str());
        return kExitOperational;
      }
      std::vector<std::pair<std::string, std::string>> lines;
      for (const fsck::RepairAction& done : repaired->actions) {
        std::string message = done.message;
        if (!repaired->applied && !done.safe) message += " [not done: run fsck.pkfs -y]";
        if (!repaired->applied && done.safe && done.code != "JOURNAL_OPEN") message += " [not done]";
        lines.emplace_back(done.code, message);
        // As the text says: journal recovery is done even when -p stops.
        g_json.repair(done.code, done.message,
                      repaired->applied || (done.safe && done.code == "JOURNAL_OPEN"));
      }
      print_by_pass(lines, verify_zero);
      if (!repaired->applied) {
        std::printf("%s: UNEXPECTED INCONSISTENCY: %llu problems need a decision; run fsck.pkfs -y\n",
                    path.c_str(), static_cast<unsigned long long>(repaired->unsafe_count()));
        return kExitUncorrected | (repaired->recovered_sequence != 0 ? kExitCorrected : 0);
      }
      if (!repaired->actions.empty()) status |= kExitCorrected;
    }

    // The check proper; after a repair, the proof that it worked.
    fsck::CheckOptions check_options;
    check_options.verify_known_zero = verify_zero;
    auto report = fsck::check_region(region, check_options, progress_callback);
    if (!report && report.error().code() == ECANCELED) return cancelled();
    progress.clear();
    if (!report) {
      std::fprintf(stderr, "fsck.pkfs: %s: %s\n", path.c_str(), report.error().message().c_str());
      return status | kExitOperational;
    }
    if (g_cancelled) {
      std::fprintf(stderr, "fsck.pkfs: cancelled\n");
      return status | kExitCancelled;
    }
    if (report->rolled_back_sequence != 0) {
      std::printf(
          "%s: transaction %llu was interrupted; checked as the next mount will roll it back (%llu undo "
          "records)\n",
          path.c_str(), static_cast<unsigned long long>(report->rolled_back_sequence),
          static_cast<unsigned long long>(report->rolled_back_records));
    }
    if (repair && !report->clean()) std::printf("Checking again after the repair\n");
    if (!repair || !report->clean()) {
      std::vector<std::pair<std::string, std::string>> lines;
      for (const fsck::CheckProblem& problem : report->problems) {
        lines.emplace_back(problem.code, problem.message);
        g_json.problem(problem.code, problem.message);
      }
      print_by_pass(lines, verify_zero);
    }
    if (verbose || !report->clean()) print_counts(path, *report);
    if (!report->clean()) {
      std::printf("%s: %zu problems %s\n", path.c_str(), report->problems.size(),
                  repair ? "left after the repair" : "found; run fsck.pkfs -y to repair");
      return status | kExitUncorrected;
    }
    if (status & kExitCorrected) {
      std::printf("%s: problems corrected; the region is clean\n", path.c_str());
    } else {
      std::printf("%s: no problems found\n", path.c_str());
    }
    return status;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fsck.pkfs: %s\n", e.what());
    return kExitOperational;
  }
}

int main(int argc, char** argv) {
  int status = run(argc, argv);
  g_json.summary(g_region, status);
  return status;
}
