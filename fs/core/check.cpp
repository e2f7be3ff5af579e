// fs/core/check.cpp: placeholder until the checker lands.
#include "fs/core/check.h"

namespace pkfs::core {
Result<CheckReport> check_region(const region::Region&) { return Error(ENOSYS, "check_region not written yet"); }
}  // namespace pkfs::core
