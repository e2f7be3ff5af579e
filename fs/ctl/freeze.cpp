// pkfsctl freeze / verify: content checksums across a kexec.
//
//   pkfsctl freeze REGION [PATH...]   before the kexec: record checksums of
//                                     the files (all by default), flush, mark
//                                     the region clean. The region must not
//                                     be mounted. Files up to 8 MiB are
//                                     hashed whole, larger ones (guest RAM)
//                                     at 1024 sampled pages; --full hashes
//                                     those whole too (one pass over RAM).
//   pkfsctl verify REGION [PATH...]   after it: recompute and compare what
//                                     freeze recorded (sampled pages of guest
//                                     RAM); one line per file; exit 1 on any
//                                     CORRUPT. --full checks every byte of
//                                     guest RAM against a freeze --full.
//
// Progress goes to stderr, and only when stderr is a terminal.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "fs/core/filesystem.h"
#include "fs/ctl/command.h"
#include "fs/region/region.h"

namespace pkfs::ctl {
namespace {

struct Arguments {
  std::string region;
  std::vector<std::string> paths;
  unsigned threads = 0;
  uint64_t chunk_kib = 4096;
  uint64_t whole_max_mib = core::kDefaultWholeMaxBytes >> 20;
  uint32_t samples = core::kDefaultFreezeSamples;
  bool full = false;
  bool quiet = false;
};

std::string size_text(uint64_t bytes) {
  char text[32];
  if (bytes >= (uint64_t{1} << 30)) {
    std::snprintf(text, sizeof text, "%.2f GiB", static_cast<double>(bytes) / (1 << 30));
  } else {
    std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  }
  return text;
}

// A one-line progress meter on a terminal; nothing otherwise.
std::function<void(const core::FreezeProgress&)> progress_meter(const char* verb) {
  if (::isatty(STDERR_FILENO) == 0) return {};
  return [verb](const core::FreezeProgress& p) {
    std::fprintf(stderr, "\r%s: %llu/%llu files, %s of %s   ", verb,
                 static_cast<unsigned long long>(p.files_done),
                 static_cast<unsigned long long>(p.files_total), size_text(p.bytes_done).c_str(),
                 size_text(p.bytes_total).c_str());
    if (p.files_done == p.files_total && p.bytes_done == p.bytes_total) std::fputc('\n', stderr);
    std::fflush(stderr);
  };
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string rate_text(uint64_t bytes, double seconds) {
  if (seconds <= 0) return "";
  char text[48];
  std::snprintf(text, sizeof text, ", %.2f GiB/s", static_cast<double>(bytes) / (1 << 30) / seconds);
  return text;
}

// Opens the region for freeze: read-write and exclusive, which a mounted
// region refuses (its daemon holds the lock).
Result<std::unique_ptr<core::Filesystem>> open_for_freeze(const std::string& path) {
  region::OpenOptions options;
  options.access = region::Access::kReadWrite;
  auto opened = region::open(path, options);
  if (!opened) {
    if (opened.error().code() == EBUSY) {
      std::string holder = region::lock_holder(path);
      if (!holder.empty()) {
        return Error(EBUSY, "region " + path + " is mounted by " + holder + "; unmount it first");
      }
    }
    return std::move(opened).error();
  }
  return core::Filesystem::open(std::move(opened).value());
}

int run_freeze(const Arguments& args) {
  auto fs = open_for_freeze(args.region);
  if (!fs) {
    std::fprintf(stderr, "pkfsctl freeze: %s\n", fs.error().message().c_str());
    return kExitFailure;
  }
  region::Info info = fs.value()->region().info();
  core::FreezeOptions options;
  options.paths = args.paths;
  options.threads = args.threads;
  options.chunk_bytes = args.chunk_kib * 1024;
  options.whole_max_bytes = args.whole_max_mib << 20;
  options.samples = args.samples;
  options.full = args.full;
  options.progress = progress_meter("freeze");
  auto start = std::chrono::steady_clock::now();
  auto report = fs.value()->freeze(options);
  double seconds = seconds_since(start);
  if (!report) {
    std::fprintf(stderr, "pkfsctl freeze: %s: %s\n", args.region.c_str(), report.error().message().c_str());
    return kExitFailure;
  }
  int errors = 0;
  size_t sampled = 0;
  for (const core::FileCheck& file : report->files) {
    if (file.status == core::FileCheckStatus::kOk) {
      if (file.sampled) ++sampled;
      if (!args.quiet) {
        std::printf("FROZEN %s (%llu bytes, %sxxh3 %016llx)\n", file.path.c_str(),
                    static_cast<unsigned long long>(file.size), file.sampled ? "sampled pages, " : "",
                    static_cast<unsigned long long>(file.hash));
      }
    } else {
      ++errors;
      std::printf("%s %s: %s\n", core::file_check_status_name(file.status), file.path.c_str(),
                  file.detail.c_str());
    }
  }
  std::printf(
      "froze %zu files (%zu by sampled pages), hashed %s in %.2f s%s; "
      "region %s (%s) flushed and marked clean; survives kexec: %s\n",
      report->files.size() - static_cast<size_t>(errors), sampled, size_text(report->bytes_hashed).c_str(),
      seconds, rate_text(report->bytes_hashed, seconds).c_str(), args.region.c_str(),
      region::kind_name(info.kind), region::survives_kexec(info.kind) ? "yes" : "no");
  return errors == 0 ? kExitOk : kExitFailure;
}

int run_verify(const Arguments& args) {
  // verify takes no lock: it works on a mounted region too, but files being
  // written meanwhile may show as changed (or, mid-write, as corrupt).
  if (std::string holder = region::lock_holder(args.region); !holder.empty()) {
    std::fprintf(
        stderr,
        "pkfsctl verify: warning: region %s is mounted by %s; files written meanwhile may not match\n",
        args.region.c_str(), holder.c_str());
  }
  region::OpenOptions region_options;
  region_options.access = region::Access::kReadOnly;
  region_options.locking = region::Locking::kNone;
  auto opened = region::open(args.region, region_options);
  if (!opened) {
    std::fprintf(stderr, "pkfsctl verify: %s\n", opened.error().message().c_str());
    return kExitFailure;
  }
  core::OpenOptions fs_options;
  fs_options.read_only = true;
  auto fs = core::Filesystem::open(std::move(opened).value(), fs_options);
  if (!fs) {
    std::fprintf(stderr, "pkfsctl verify: %s: %s\n", args.region.c_str(), fs.error().message().c_str());
    return kExitFailure;
  }
  core::VerifyOptions options;
  options.paths = args.paths;
  options.threads = args.threads;
  options.full = args.full;
  options.progress = progress_meter("verify");
  auto start = std::chrono::steady_clock::now();
  auto report = fs.value()->verify(options);
  double seconds = seconds_since(start);
  if (!report) {
    std::fprintf(stderr, "pkfsctl verify: %s: %s\n", args.region.c_str(), report.error().message().c_str());
    return kExitFailure;
  }
  for (const core::FileCheck& file : report->files) {
    bool ok = file.status == core::FileCheckStatus::kOk;
    if (ok && args.quiet) continue;
    std::printf("%s %s", core::file_check_status_name(file.status), file.path.c_str());
    if (ok) {
      std::printf(" (%llu bytes%s)\n", static_cast<unsigned long long>(file.size),
                  file.sampled ? ", sampled pages" : "");
    } else {
      std::printf(": %s\n", file.detail.c_str());
    }
  }
  if (report->missing_frozen > 0) {
    std::printf("MISSING %llu of the %llu files frozen last are gone or carry another record\n",
                static_cast<unsigned long long>(report->missing_frozen),
                static_cast<unsigned long long>(report->frozen_files));
  }
  using core::FileCheckStatus;
  std::printf(
      "verified %s in %.2f s%s: %llu ok, %llu corrupt, %llu changed since freeze, %llu without record, "
      "%llu unreadable%s\n",
      size_text(report->bytes_hashed).c_str(), seconds, rate_text(report->bytes_hashed, seconds).c_str(),
      static_cast<unsigned long long>(report->count(FileCheckStatus::kOk)),
      static_cast<unsigned long long>(report->count(FileCheckStatus::kCorrupt)),
      static_cast<unsigned long long>(report->count(FileCheckStatus::kChanged)),
      static_cast<unsigned long long>(report->count(FileCheckStatus::kMissingRecord)),
      static_cast<unsigned long long>(report->count(FileCheckStatus::kError)),
      args.full ? (", " + std::to_string(report->count(FileCheckStatus::kSampledOnly)) +
                   " sampled only (no freeze --full)")
                      .c_str()
                : "");
  // --full promises every byte: a file that could only be sampled fails it.
  bool full_done = !args.full || report->count(FileCheckStatus::kSampledOnly) == 0;
  return report->intact() && full_done ? kExitOk : kExitFailure;
}

void add_common(CLI::App* sub, Arguments& args) {
  sub->add_option("region", args.region, "The region (hugetlbfs/tmpfs file or /dev/daxN.M)")->required();
  sub->add_option("paths", args.paths, "Files or directories inside the filesystem (default: all files)");
  sub->add_option("-j,--threads", args.threads, "Hashing threads (default: one per CPU)");
  sub->add_flag("-q,--quiet", args.quiet, "Print only problems and the summary");
}

void setup(CLI::App& app, int& exit_code) {
  static Arguments freeze_args, verify_args;
  auto* freeze = app.add_subcommand(
      "freeze", "Before a kexec: record checksums of files (all by default), flush, mark the region clean");
  add_common(freeze, freeze_args);
  freeze
      ->add_option("--chunk-kib", freeze_args.chunk_kib, "Bytes hashed per work item, in KiB (default 4096)")
      ->check(CLI::Range(64, 1024 * 1024));
  freeze
      ->add_option("--whole-max-mib", freeze_args.whole_max_mib,
                   "Files up to this many MiB are hashed whole, larger ones (guest RAM) at sampled pages "
                   "(default 8)")
      ->check(CLI::Range(uint64_t{0}, uint64_t{1} << 40));
  freeze
      ->add_option("--samples", freeze_args.samples,
                   "4 KiB pages sampled per larger file (default 1024, at most 1048576)")
      ->check(CLI::Range(uint32_t{1}, core::kMaxFreezeSamples));
  freeze->add_flag("--full", freeze_args.full,
                   "Also hash larger files whole, for verify --full (one pass over all guest RAM: "
                   "seconds per 10 GiB, in the blackout)");
  freeze->callback([&exit_code] { exit_code = run_freeze(freeze_args); });
  auto* verify = app.add_subcommand(
      "verify", "After a kexec: check files against their freeze checksums; exit 1 on any corruption");
  add_common(verify, verify_args);
  verify->add_flag("--full", verify_args.full,
                   "Check every byte of sampled (guest-RAM) files too, against freeze --full; exit 1 where "
                   "freeze recorded samples only");
  verify->callback([&exit_code] { exit_code = run_verify(verify_args); });
}

const Registration registration{setup};

}  // namespace
}  // namespace pkfs::ctl
