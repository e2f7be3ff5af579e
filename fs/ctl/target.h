// fs/ctl/target.h: what a pkfsctl argument names, and how to talk to it.
//
// Every subcommand takes a TARGET: either a path inside a mounted pkfs (the
// mountpoint or any file below it), served through the daemon's control
// socket (fs/client/protocol.h), or a region (hugetlbfs/tmpfs file or
// device-dax device) that is read directly: read-only and without the
// region lock, like fsck.pkfs -n, so it also works beside a running daemon
// (then the view may be a moment old). Subcommands that change the region
// offline ask for Access::kReadWrite, which takes the lock and so refuses a
// mounted region.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fs/base/result.h"
#include "fs/client/protocol.h"
#include "fs/core/filesystem.h"

namespace pkfs::ctl {

enum class TargetAccess { kReadOnly, kReadWrite };

struct Target {
  std::string argument;  // as given
  // Mounted: the control socket of the daemon serving `argument`.
  std::string socket;
  // Offline: the filesystem, opened from the region `argument`.
  std::unique_ptr<core::Filesystem> fs;
  // Offline: who holds the region's lock ("pid 12 (pkfs)"), or empty.
  std::string lock_holder;

  bool mounted() const { return !socket.empty(); }
};

// Resolves TARGET. Errors name the argument and say what was expected.
Result<Target> resolve_target(const std::string& argument, TargetAccess access = TargetAccess::kReadOnly);

// What the daemon (or the region) knows about one file.
struct FileLayout {
  control::MapReply head;
  std::vector<control::ExtentRecord> extents;  // bytes, adjacent ones merged
  std::string region_path;
};

// Mounted requests (REQUIRE: target.mounted()).
// One request/reply exchange with the daemon at `socket_path` (with `fd`
// as the request's descriptor, or none): the reply's payload, or its status
// and message. A descriptor in the reply is closed.
Result<std::vector<std::byte>> request_reply(const std::string& socket_path, const control::Request& request,
                                             int fd = -1);
Result<std::string> request_info(const Target& target);
Result<FileLayout> request_stat(const Target& target, const std::string& path);
Result<std::vector<control::HoldRecord>> request_holds(const Target& target);
Result<void> request_release(const Target& target, uint64_t hold_id, bool stale_only);

// Offline: the layout of inode `ino` read from target.fs.
Result<FileLayout> offline_layout(const Target& target, core::Ino ino);
// Offline: the inode at `path` ("/" or "/a/b") inside target.fs.
Result<core::Ino> offline_lookup(const Target& target, const std::string& path);

// "-rw-r--r--" for st_mode.
std::string mode_text(uint32_t mode);

}  // namespace pkfs::ctl
