// tests/unit/support/data_pattern.h: recognisable file contents for tests.
//
// Owns: pattern(), bytes that differ by position and seed (so a block read
// from the wrong place or file is caught), and write_pattern(), which writes
// them through core and requires the whole write to succeed.
#pragma once

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fs/core/filesystem.h"

namespace pkfs::test {

inline std::vector<std::byte> pattern(size_t length, unsigned seed) {
  std::vector<std::byte> data(length);
  for (size_t i = 0; i < length; ++i)
    data[i] = static_cast<std::byte>((i * 131 + seed * 7 + (i >> 12)) & 0xff);
  return data;
}

inline void write_pattern(core::Filesystem& fs, core::Ino ino, uint64_t offset, size_t length,
                          unsigned seed) {
  auto data = pattern(length, seed);
  auto written = fs.write(ino, offset, data);
  INFO("write of " << length << " bytes at " << offset << ": "
                   << (written ? std::string() : written.error().message()));
  REQUIRE(written);
  REQUIRE(written.value() == length);
}

}  // namespace pkfs::test
