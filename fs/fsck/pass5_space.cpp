// fs/fsck/pass5_space.cpp: pass 5, the allocation map (see passes.h). For
// now the chunk-map blocks' own rules; the states against the claims, and
// the split headers, are still walked in check.cpp and repair.cpp.
#include <cstring>

#include "fs/fsck/passes.h"

namespace pkfs::fsck {

ChunkMapRepair walk_chunk_map_block(Fixer& fixer, uint64_t index, ChunkMapBlock& map) {
  const std::string where = "chunk map block " + std::to_string(index);
  std::string what;
  if (!format::chunk_map_block_valid(map, index, &what)) {
    // Rebuilding forgets every state: a decision, whatever the code.
    if (!fixer.fix_problem(
            rejection_code(Code::kChunkMapTag, map.tag == format::kChunkMapTag, format::checksum_ok(map)),
            where + ": " + what, "rebuilt from the extents", Preen::kNo)) {
      return ChunkMapRepair::kUnreadable;
    }
    // States that cannot be trusted: nothing is known zero.
    map = format::stamped<ChunkMapBlock>();
    map.first_chunk = index * format::kChunksPerMapBlock;
    std::memset(map.state, format::kChunkFreeDirty, sizeof map.state);
    return ChunkMapRepair::kRebuilt;
  }
  if (map.reserved0 != 0 && fixer.fix_problem(Code::kChunkMapInvalid, where + ": reserved field is not zero",
                                              "zeroed", Preen::kYes)) {
    map.reserved0 = 0;
    return ChunkMapRepair::kChanged;
  }
  return ChunkMapRepair::kNone;
}

}  // namespace pkfs::fsck
