// pkfsctl release [--force] TARGET ID: releases hold ID.
//
// Mounted (TARGET inside the mount): the daemon releases the hold if its
// holder is gone (stale); with --force also a live holder's (root and the
// file's owner only: the holder's mapping stays, but the file is no longer
// kept in place for it). Offline (TARGET is the region, not mounted): the
// region is opened read-write, which mount-time cleanup of stale holds
// already does; a hold is released only with --force there.
#include <cinttypes>
#include <cstdio>
#include <string>

#include "fs/ctl/command.h"
#include "fs/ctl/target.h"

namespace pkfs::ctl {
namespace {

int fail(const std::string& message) {
  std::fprintf(stderr, "pkfsctl release: %s\n", message.c_str());
  return kExitFailure;
}

int run_release(const std::string& argument, uint64_t id, bool force) {
  auto probe = resolve_target(argument);
  if (!probe) return fail(probe.error().message());
  if (probe->mounted()) {
    auto released = request_release(*probe, id, !force);
    if (!released) return fail(released.error().message());
    std::printf("released hold %" PRIu64 "\n", id);
    return kExitOk;
  }
  probe->fs.reset();  // release the read-only view before opening read-write
  auto target = resolve_target(argument, TargetAccess::kReadWrite);
  if (!target) return fail(target.error().message());
  auto holds = target->fs->list_holds();
  bool present = false;
  if (holds) {
    for (const core::HoldInfo& h : *holds) present = present || h.id == id;
  }
  int status = kExitOk;
  if (!present) {
    status = fail("no such hold " + std::to_string(id) +
                  " (holds of gone holders are released when the region opens)");
  } else if (!force) {
    status = fail("hold " + std::to_string(id) + " has a live holder; add --force to release it anyway");
  } else if (auto released = target->fs->release_hold(id); !released) {
    status = fail(released.error().message());
  } else {
    std::printf("released hold %" PRIu64 "\n", id);
  }
  if (auto closed = target->fs->close(); !closed) return fail(closed.error().message());
  return status;
}

void setup(CLI::App& app, int& exit_code) {
  auto* sub = app.add_subcommand("release", "Release a hold whose holder is gone");
  static bool force = false;
  static std::string argument;
  static uint64_t id = 0;
  sub->add_flag("--force", force, "Release it even if the holder is alive");
  sub->add_option("TARGET", argument, "A path inside a pkfs mount, or a region")->required();
  sub->add_option("ID", id, "The hold (see pkfsctl ls -l)")->required();
  sub->callback([&exit_code] { exit_code = run_release(argument, id, force); });
}

const Registration registration{setup};

}  // namespace
}  // namespace pkfs::ctl
