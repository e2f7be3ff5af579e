// fs/fsck/pass7_zero.cpp: pass 7, the known-zero chunks (see passes.h).
#include <cstring>

#include "fs/fsck/passes.h"

namespace pkfs::fsck {

bool walk_known_zero_chunk(Fixer& fixer, uint64_t chunk, const std::byte* bytes) {
  // (A chunk an interrupted transaction allocated reads free and dirty
  // here, as the undo filter leaves it at mount.)
  for (uint64_t offset = 0; offset < kChunkSize; offset += sizeof(uint64_t)) {
    uint64_t word;
    std::memcpy(&word, bytes + offset, sizeof word);
    if (word != 0) {
      return fixer.fix_problem(Code::kChunkNotZero,
                               "chunk " + std::to_string(chunk) + " is marked free and known zero but byte " +
                                   std::to_string(offset) + " of it is not zero",
                               "marked dirty");
    }
  }
  return false;
}

}  // namespace pkfs::fsck
