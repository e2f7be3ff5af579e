// fs/core/ino.h: the inode number of the core API.
//
// Owns: Ino, the number every core header names an inode by (the slot in
// the inode table, stable for the life of the region; FUSE's node id).
#pragma once

#include <cstdint>

namespace pkfs::core {

using Ino = uint64_t;

}  // namespace pkfs::core
