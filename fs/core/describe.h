// fs/core/describe.h: a filesystem's summary as "Key: value" pairs, in the
// order `pkfsctl info` prints them (the daemon sends the same lines).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "fs/core/filesystem.h"

namespace pkfs::core {

std::vector<std::pair<std::string, std::string>> describe(Filesystem& fs);

}  // namespace pkfs::core
