// tests/unit/zero_test.cpp: fs/region/zero (zero_memory) zeroes exactly the
// range it is given, on one thread and on several, at any alignment.
#include "fs/region/zero.h"

#include <sys/mman.h>

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace {

using pkfs::region::kParallelZeroBytes;
using pkfs::region::zero_memory;

// A buffer of `bytes` filled with 0xa5, in its own mapping so that a stray
// store past either end of a range lands in bytes the test checks.
struct Buffer {
  explicit Buffer(uint64_t bytes) : size(bytes) {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(p != MAP_FAILED);
    data = static_cast<std::byte*>(p);
    std::memset(data, 0xa5, size);
  }
  ~Buffer() { munmap(data, size); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  // The first offset in [from, to) whose byte is not `value`, or `to`.
  uint64_t first_not(uint64_t from, uint64_t to, unsigned char value) const {
    for (uint64_t i = from; i < to; ++i) {
      if (static_cast<unsigned char>(data[i]) != value) return i;
    }
    return to;
  }

  std::byte* data = nullptr;
  uint64_t size = 0;
};

void check_zeroes_exactly(uint64_t buffer_bytes, uint64_t offset, uint64_t length, unsigned threads) {
  Buffer buffer(buffer_bytes);
  zero_memory(buffer.data + offset, length, threads);
  CHECK(buffer.first_not(0, offset, 0xa5) == offset);
  CHECK(buffer.first_not(offset, offset + length, 0) == offset + length);
  CHECK(buffer.first_not(offset + length, buffer.size, 0xa5) == buffer.size);
}

}  // namespace

TEST_CASE("zero_memory zeroes small ranges at every alignment", "[zero]") {
  for (uint64_t offset : {0, 1, 15, 63, 64, 65, 4095}) {
    for (uint64_t length : {0, 1, 7, 63, 64, 65, 200, 4096, 12345}) {
      INFO("offset " << offset << " length " << length);
      check_zeroes_exactly(32768, offset, length, 1);
    }
  }
}

TEST_CASE("zero_memory splits large ranges across threads without touching past the ends", "[zero]") {
  uint64_t length = kParallelZeroBytes + (uint64_t{3} << 20) + 12345;
  for (unsigned threads : {0u, 2u, 3u, 7u}) {
    for (uint64_t offset : {uint64_t{0}, uint64_t{4097}, (uint64_t{1} << 20) + 1}) {
      INFO("threads " << threads << " offset " << offset);
      check_zeroes_exactly(length + (uint64_t{4} << 20), offset, length, threads);
    }
  }
}
