// tests/unit/support/extent_equal.h: extent lists compare in tests
// (REQUIRE(extents == expected)); the format defines no operator== since
// core never compares extents whole.
#pragma once

#include "fs/format/format.h"

namespace pkfs::format {
inline bool operator==(const Extent& a, const Extent& b) {
  return a.file_block == b.file_block && a.region_block == b.region_block && a.block_count == b.block_count;
}
}  // namespace pkfs::format
