// fs/core/holds.cpp: holds of directly mapped files (see filesystem.h).
// Placeholder until the hold table is written; every call fails with ENOSYS.
#include <cerrno>

#include "fs/core/internal.h"

namespace pkfs::core {

Result<uint64_t> Filesystem::acquire_hold(Ino, const Holder&) { return Error(ENOSYS, "holds are not implemented yet"); }
Result<void> Filesystem::release_hold(uint64_t) { return Error(ENOSYS, "holds are not implemented yet"); }
Result<std::vector<HoldInfo>> Filesystem::list_holds() { return std::vector<HoldInfo>{}; }
Result<uint64_t> Filesystem::release_stale_holds() { return uint64_t{0}; }

}  // namespace pkfs::core
