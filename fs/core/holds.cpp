// fs/core/holds.cpp: TEMPORARY minimal holds, for testing the client side
// before the real hold table code lands. Writes hold slots without the
// journal, never relocates, keeps a held file open (so unlink defers).
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <shared_mutex>
#include <sstream>

#include "fs/core/internal.h"

namespace pkfs::core {
namespace {

void boot_id(uint8_t (&out)[16]) {
  std::memset(out, 0, sizeof out);
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string text;
  in >> text;
  format::uuid_from_string(text, out);
}

bool alive(const format::Hold& hold) {
  uint8_t boot[16];
  boot_id(boot);
  if (std::memcmp(boot, hold.boot_id, 16) != 0) return false;
  std::ifstream in("/proc/" + std::to_string(hold.pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t close = text.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream fields(text.substr(close + 1));
  std::string field;
  for (int index = 3; index <= 22 && fields >> field; ++index) {
    if (index == 3 && (field == "Z" || field == "X")) return false;
    if (index == 22) return std::strtoull(field.c_str(), nullptr, 10) == hold.start_ticks;
  }
  return false;
}

}  // namespace

Result<uint64_t> Filesystem::acquire_hold(Ino ino, const Holder& holder) {
  std::unique_lock lock(m_mutex);
  if (m_read_only) return Error(EROFS, "read-only filesystem");
  TRY_ASSIGN(Node * n, node(ino));
  const format::Inode& inode = inode_ref(ino);
  if (!S_ISREG(inode.mode)) return Error(EINVAL, "not a regular file");
  for (uint64_t slot = 0; slot < m_layout.hold_count; ++slot) {
    auto* hold = reinterpret_cast<format::Hold*>(m_region->base() + m_layout.hold_table_offset +
                                                 slot * sizeof(format::Hold));
    if (!format::hold_is_free(*hold)) continue;
    format::Hold h{};
    h.tag = format::kHoldTag;
    h.version = 1;
    h.ino = ino;
    h.generation = inode.generation;
    h.pid = holder.pid;
    h.uid = holder.uid;
    h.start_ticks = holder.start_ticks;
    boot_id(h.boot_id);
    format::seal(h);
    *hold = h;
    n->open_count += 1;
    return slot + 1;
  }
  return Error(ENOSPC, "hold table full");
}

Result<void> Filesystem::release_hold(uint64_t id) {
  std::unique_lock lock(m_mutex);
  if (id == 0 || id > m_layout.hold_count) return Error(ENOENT, "no such hold");
  auto* hold = reinterpret_cast<format::Hold*>(m_region->base() + m_layout.hold_table_offset +
                                               (id - 1) * sizeof(format::Hold));
  if (format::hold_is_free(*hold)) return Error(ENOENT, "no such hold");
  Ino ino = hold->ino;
  std::memset(hold, 0, sizeof *hold);
  auto it = m_nodes.find(ino);
  if (it != m_nodes.end() && it->second->open_count > 0) {
    it->second->open_count -= 1;
    if (it->second->unreferenced() && inode_ref(ino).nlink == 0 && !m_read_only) return reclaim(ino);
  }
  return success();
}

Result<std::vector<HoldInfo>> Filesystem::list_holds() {
  std::shared_lock lock(m_mutex);
  std::vector<HoldInfo> out;
  for (uint64_t slot = 0; slot < m_layout.hold_count; ++slot) {
    const auto* hold = reinterpret_cast<const format::Hold*>(m_region->base() + m_layout.hold_table_offset +
                                                             slot * sizeof(format::Hold));
    if (format::hold_is_free(*hold)) continue;
    out.push_back(HoldInfo{slot + 1, hold->ino, hold->generation,
                           Holder{hold->pid, hold->uid, hold->start_ticks}});
  }
  return out;
}

Result<uint64_t> Filesystem::release_stale_holds() {
  uint64_t count = 0;
  TRY_ASSIGN(auto holds, list_holds());
  for (const HoldInfo& info : holds) {
    const auto* hold = reinterpret_cast<const format::Hold*>(m_region->base() + m_layout.hold_table_offset +
                                                             (info.id - 1) * sizeof(format::Hold));
    if (alive(*hold)) continue;
    TRY(release_hold(info.id));
    ++count;
  }
  return count;
}

bool temp_held(const std::byte* base, const format::Layout& layout, Ino ino) {
  for (uint64_t slot = 0; slot < layout.hold_count; ++slot) {
    const auto* hold =
        reinterpret_cast<const format::Hold*>(base + layout.hold_table_offset + slot * sizeof(format::Hold));
    if (!format::hold_is_free(*hold) && hold->ino == ino) return true;
  }
  return false;
}

}  // namespace pkfs::core
