// tests/fuzz/fuzz_mount.cpp: libFuzzer target for what the daemon's mount
// reads from a region.
//
// An input (support.h) picks a seed region and patches a private copy of
// it; core::Filesystem::open takes the copy as the daemon's mount would
// (read-write, journal recovery, orphans, stale holds), and the mount's
// operations run on what it opened (support.cpp, exercise). Whatever the
// damage, open and every operation must return (an error value is fine):
// never crash, hang, leak or allocate without bound. A read-only open runs
// on a read-only mapping, so any write it attempts is a crash with a stack.
//
// With PKFS_FUZZ_STRICT=1 in the environment, one more property aborts: a
// region that fsck's check finds clean still checks clean after the mount,
// its operations and a clean close. Off in CI: it doubles the cost of a run.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "fs/core/filesystem.h"
#include "fs/fsck/fsck.h"
#include "support.h"
#include "support/memory_view.h"

using namespace pkfs;

namespace {

bool checks_clean(fuzz::PrivateCopy& copy, std::string* problems = nullptr) {
  testing::MemoryView view(copy.base(), copy.size(), true);
  auto report = fsck::check_region(view);
  if (report && problems) {
    for (const auto& problem : report->problems) *problems += "\n  " + problem.code + ": " + problem.message;
  }
  return report && report->clean();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)fuzz::seed_images();  // built before the first input, not timed with it
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input input;
  if (!fuzz::decode(data, size, input)) return 0;
  fuzz::PrivateCopy copy(*input.seed);
  fuzz::apply_patches(*input.seed, copy.base(), input.patches);

  const bool read_only = (input.options & fuzz::kMountReadOnly) != 0;
  core::OpenOptions options;
  options.read_only = read_only;
  options.holder_alive = fuzz::fuzz_holder_alive;
  options.log = [](const std::string&) {};
  const bool was_clean = fuzz::strict() && !read_only && checks_clean(copy);
  if (read_only) copy.protect(true);

  const int rounds = (input.options & fuzz::kMountRestart) ? 2 : 1;
  for (int round = 0; round < rounds; ++round) {
    auto view = std::make_unique<testing::MemoryView>(copy.base(), copy.size(), read_only);
    if (input.options & fuzz::kMountHugePages) view->test_report_page_size(uint64_t{2} << 20);
    auto opened = core::Filesystem::open(std::move(view), options);
    if (!opened) return 0;
    auto fs = std::move(opened).value();
    fuzz::exercise(*fs, (input.options & fuzz::kMountWrite) && !read_only);
    if ((input.options & fuzz::kMountReleaseStale) && !read_only) (void)fs->release_stale_holds();
    // A restart drops the filesystem as kill -9 would (no close), then
    // mounts the same bytes again.
    if (round + 1 < rounds) continue;
    bool closed = fs->close().ok();
    fs.reset();
    std::string problems;
    if (was_clean && closed && !checks_clean(copy, &problems)) {
      std::fprintf(stderr, "fuzz_mount: a region that checked clean does not after mount and close:%s\n",
                   problems.c_str());
      std::abort();
    }
  }
  return 0;
}
