// fs/fsck/pass3_inodes.cpp: pass 3, the inodes (see passes.h). For now
// only the field rules of an inode in use, its extent blocks and its xattr
// block; the slot scan and the walks of extents and xattr blocks are still
// in check.cpp and repair.cpp.
#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include "fs/fsck/passes.h"

namespace pkfs::fsck {

bool walk_inode_fields(Fixer& fixer, const std::function<std::string()>& who, Inode& inode) {
  bool changed = false;
  // Every field rule is a repair preen leaves alone: the inode is in use.
  auto rule = [&](bool bad, auto&& what, const char* fix, auto&& apply) {
    if (bad && fixer.fix_problem(Code::kInodeInvalid, who() + ": " + what(), fix, Preen::kNo)) {
      apply();
      changed = true;
    }
  };
  const bool regular = S_ISREG(inode.mode), symlink = S_ISLNK(inode.mode),
             device = S_ISCHR(inode.mode) || S_ISBLK(inode.mode);
  rule(
      !regular && !symlink && inode.size != 0,
      [&] { return "a " + type_name(inode.mode) + " has size " + std::to_string(inode.size); }, "set to 0",
      [&] { inode.size = 0; });
  rule(
      !device && inode.rdev != 0, [&] { return "a " + type_name(inode.mode) + " has a device number"; },
      "cleared", [&] { inode.rdev = 0; });
  rule(
      !S_ISDIR(inode.mode) && inode.parent != 0,
      [&] { return "a " + type_name(inode.mode) + " has a parent field"; }, "cleared",
      [&] { inode.parent = 0; });
  rule(
      inode.reserved0 != 0, [] { return std::string("reserved field is not zero"); }, "zeroed",
      [&] { inode.reserved0 = 0; });
  const uint32_t inline_count = std::min(inode.extent_count, format::kInlineExtents);
  const size_t unused_bytes = (format::kInlineExtents - inline_count) * sizeof(Extent);
  rule(
      !all_zero(inode.extents + inline_count, unused_bytes),
      [] { return std::string("unused inline extent entries are not zero"); }, "zeroed",
      [&] { std::memset(inode.extents + inline_count, 0, unused_bytes); });
  const uint64_t size_blocks = (inode.size + kBlockSize - 1) / kBlockSize;
  if (inode.flags & format::kInodeTrimming) {
    rule(
        inode.trim_block < size_blocks,
        [&] {
          return "trim_block " + std::to_string(inode.trim_block) + " lies inside the file's size (" +
                 std::to_string(size_blocks) + " blocks)";
        },
        "moved to its end", [&] { inode.trim_block = size_blocks; });
  } else {
    rule(
        inode.trim_block != 0, [] { return std::string("trim_block is set without the trimming flag"); },
        "cleared", [&] { inode.trim_block = 0; });
  }
  return changed;
}

bool walk_extent_block_fields(Fixer& fixer, const std::string& where, const ExtentBlock& block) {
  const uint32_t used = std::min<uint32_t>(block.count, format::kExtentsPerBlock);
  return !all_zero(block.extents + used, (format::kExtentsPerBlock - used) * sizeof(Extent)) &&
         fixer.fix_problem(Code::kExtentBlockInvalid, where + ": unused extent entries are not zero",
                           "zeroed");
}

bool walk_xattr_block_fields(Fixer& fixer, const std::string& where, XattrBlock& block) {
  bool changed = false;
  if (block.reserved0 != 0 &&
      fixer.fix_problem(Code::kXattrBlockInvalid, where + ": reserved field is not zero", "zeroed")) {
    block.reserved0 = 0;
    changed = true;
  }
  const size_t unused = format::kXattrPayloadBytes - block.used_bytes;
  if (!all_zero(block.payload + block.used_bytes, unused) &&
      fixer.fix_problem(Code::kXattrBlockInvalid, where + ": payload past used_bytes is not zero",
                        "zeroed")) {
    std::memset(block.payload + block.used_bytes, 0, unused);
    changed = true;
  }
  if (changed) format::seal(block);
  return changed;
}

void for_each_xattr_entry(const XattrBlock& block,
                          const std::function<void(uint16_t index, const format::XattrEntryHeader& header,
                                                   std::string_view name)>& visit) {
  uint32_t position = 0;
  for (uint16_t i = 0; i < block.entry_count; ++i) {
    format::XattrEntryHeader header;
    std::memcpy(&header, block.payload + position, sizeof header);
    position += static_cast<uint32_t>(sizeof header);
    visit(i, header,
          std::string_view(reinterpret_cast<const char*>(block.payload + position), header.name_length));
    position += header.name_length + header.value_length;
  }
}

}  // namespace pkfs::fsck
