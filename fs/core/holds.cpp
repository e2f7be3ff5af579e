// fs/core/holds.cpp: holds of directly mapped files (see holds.h, filesystem.h and
// FORMAT.md, "Holds"): the hold table, holder liveness, and what a hold
// changes for unlink and reclaim. The EBUSY rules for shrinking and punching
// live with the data operations (data.cpp).
#include "fs/core/holds.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <sstream>

#include "fs/core/internal.h"

namespace pkfs::core {

using format::Hold;
using format::Inode;

namespace {

// Reads a small /proc file with read(2). A process that exits while its
// stat is read makes read fail with ESRCH, which libstdc++'s streams throw
// as an exception; the daemon must not die of a holder's exit.
bool read_proc_file(const std::string& path, std::string& text) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  text.clear();
  char buffer[1024];
  for (;;) {
    ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      ::close(fd);
      return got == 0;
    }
    text.append(buffer, static_cast<size_t>(got));
  }
}

}  // namespace

Result<uint64_t> process_start_ticks(uint32_t pid) {
  if (pid == 0) return Error(ESRCH, "pid 0 is no process");
  std::string line;
  if (!read_proc_file("/proc/" + std::to_string(pid) + "/stat", line))
    return Error(ESRCH, "no process " + std::to_string(pid));
  // The command name (field 2) is in parentheses and may hold anything, so
  // fields are counted after its last ')'. Field 3 is the state.
  size_t close = line.rfind(')');
  if (close == std::string::npos) return Error(EIO, "unexpected /proc/" + std::to_string(pid) + "/stat");
  std::istringstream fields(line.substr(close + 1));
  std::string field;
  for (int number = 3; fields >> field; ++number) {
    if (number == 3 && (field == "Z" || field == "X"))
      return Error(ESRCH, "process " + std::to_string(pid) + " has exited");
    if (number == 22) {
      char* end = nullptr;
      errno = 0;
      unsigned long long ticks = std::strtoull(field.c_str(), &end, 10);
      if (errno != 0 || end == field.c_str() || *end != '\0') break;
      return uint64_t{ticks};
    }
  }
  return Error(EIO, "unexpected /proc/" + std::to_string(pid) + "/stat");
}

std::array<uint8_t, 16> current_boot_id() {
  std::string text;
  uint8_t id[16];
  if (!read_proc_file("/proc/sys/kernel/random/boot_id", text)) return {};
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  if (!format::uuid_from_string(text, id)) return {};
  std::array<uint8_t, 16> out;
  std::memcpy(out.data(), id, out.size());
  return out;
}

bool holder_alive(const Hold& hold) {
  static const std::array<uint8_t, 16> boot_id = current_boot_id();
  if (std::memcmp(hold.boot_id, boot_id.data(), boot_id.size()) != 0) return false;
  auto ticks = process_start_ticks(hold.pid);
  return ticks && ticks.value() == hold.start_ticks;
}

uint64_t Filesystem::hold_offset(uint64_t slot) const {
  return m_layout.hold_table_offset + slot * sizeof(Hold);
}

uint64_t Filesystem::mapping_page_size() const {
  uint64_t page = m_region->info().page_size;
  return page < format::kBlockSize ? format::kBlockSize : page;
}

// Every slot must be free or a valid hold on an inode in use; the used ones
// go to m_holds and count on their inode.
Result<void> Filesystem::scan_holds() {
  m_holds.clear();
  for (uint64_t slot = 0; slot < m_layout.hold_count; ++slot) {
    Hold hold;
    std::memcpy(&hold, m_region->base() + hold_offset(slot), sizeof hold);
    if (format::hold_is_free(hold)) continue;
    std::string what;
    if (!format::hold_valid(hold, &what)) {
      return Error(EUCLEAN, "hold " + std::to_string(slot) + ": " + what + "; run fsck.pkfs");
    }
    auto it = m_nodes.find(hold.ino);
    if (it == m_nodes.end()) {
      return Error(EUCLEAN, "hold " + std::to_string(slot) + " names inode " + std::to_string(hold.ino) +
                                ", which is not in use; run fsck.pkfs");
    }
    it->second->holds += 1;
    m_holds.emplace(slot, hold);
  }
  m_report.holds_kept = m_holds.size();
  return success();
}

Result<void> Filesystem::clear_hold(journal::Transaction& txn, uint64_t slot) {
  auto it = m_holds.find(slot);
  Hold hold = it->second;
  TRY(txn.put(hold_offset(slot), Hold{}));
  m_holds.erase(it);
  auto node_it = m_nodes.find(hold.ino);
  if (node_it != m_nodes.end()) node_it->second->holds -= 1;
  txn.on_abort([this, slot, hold] {
    m_holds.emplace(slot, hold);
    auto n = m_nodes.find(hold.ino);
    if (n != m_nodes.end()) n->second->holds += 1;
  });
  return success();
}

Result<uint64_t> Filesystem::acquire_hold(Ino ino, const Holder& holder, const HoldLimits& limits) {
  std::unique_lock lock(m_mutex);
  if (m_read_only) return Error(EROFS, "read-only filesystem");
  TRY_ASSIGN(Node * n, node(ino));
  Inode inode = inode_copy(ino);
  if (!S_ISREG(inode.mode)) return Error(EINVAL, "inode " + std::to_string(ino) + " is not a regular file");
  if (holder.pid == 0) return Error(EINVAL, "a holder needs a pid");
  if (inode.size == 0)
    return Error(EINVAL, "inode " + std::to_string(ino) + " is an empty file: nothing to map");
  // Policy, then the lowest free slot: all checked before any space moves.
  uint64_t process_holds = 0;
  uint64_t uid_holds = 0;
  for (const auto& [id, held] : m_holds) {
    const bool same_process = held.pid == holder.pid && held.start_ticks == holder.start_ticks;
    if (same_process && held.ino == ino && held.generation == inode.generation) {
      return Error(EEXIST, "process " + std::to_string(holder.pid) + " already holds inode " +
                               std::to_string(ino) + " (hold " + std::to_string(id) + ")");
    }
    if (same_process) ++process_holds;
    if (held.uid == holder.uid) ++uid_holds;
  }
  if (limits.per_process != 0 && process_holds >= limits.per_process) {
    return Error(EDQUOT, "process " + std::to_string(holder.pid) + " already has " +
                             std::to_string(process_holds) + " holds, the limit per process (" +
                             std::to_string(limits.per_process) + ")");
  }
  if (limits.per_uid != 0 && holder.uid != 0 && uid_holds >= limits.per_uid) {
    return Error(EDQUOT, "uid " + std::to_string(holder.uid) + " already has " + std::to_string(uid_holds) +
                             " holds, the limit per uid (" + std::to_string(limits.per_uid) + ")");
  }
  uint64_t slot = 0;
  for (const auto& used : m_holds) {
    if (used.first != slot) break;
    ++slot;
  }
  if (slot >= m_layout.hold_count) {
    return Error(ENOSPC, "hold table full (" + std::to_string(m_layout.hold_count) + " slots, all in use)");
  }
  if ((inode.flags & format::kInodeTrimming) != 0) TRY(note(finish_trim(ino), ino, "trim"));
  TRY(note(make_mappable(ino, mapping_page_size()), ino, "make mappable"));
  inode = inode_copy(ino);

  auto hold = format::stamped<Hold>();
  hold.ino = ino;
  hold.generation = inode.generation;
  hold.pid = holder.pid;
  hold.uid = holder.uid;
  hold.start_ticks = holder.start_ticks;
  std::array<uint8_t, 16> boot_id = current_boot_id();
  std::memcpy(hold.boot_id, boot_id.data(), boot_id.size());
  format::seal(hold);
  auto txn = m_journal->begin();
  TRY(txn->put(hold_offset(slot), hold));
  m_holds.emplace(slot, hold);
  n->holds += 1;
  txn->on_abort([this, slot, n] {
    m_holds.erase(slot);
    n->holds -= 1;
  });
  txn->commit();
  return slot;
}

Result<void> Filesystem::release_hold(uint64_t id) {
  std::unique_lock lock(m_mutex);
  if (m_read_only) return Error(EROFS, "read-only filesystem");
  auto it = m_holds.find(id);
  if (it == m_holds.end()) return Error(ENOENT, "no hold " + std::to_string(id));
  Ino ino = it->second.ino;
  auto txn = m_journal->begin();
  TRY(clear_hold(*txn, id));
  txn->commit();
  // The last hold of an unlinked file that nothing else references frees it.
  auto n = m_nodes.find(ino);
  if (n != m_nodes.end() && n->second->unreferenced() && inode_ref(ino).nlink == 0) {
    TRY(note(reclaim(ino), ino, "reclaim"));
  }
  return success();
}

Result<std::vector<HoldInfo>> Filesystem::list_holds() {
  std::shared_lock lock(m_mutex);
  std::vector<HoldInfo> holds;
  holds.reserve(m_holds.size());
  for (const auto& [slot, hold] : m_holds) {
    holds.push_back({slot, hold.ino, hold.generation, Holder{hold.pid, hold.uid, hold.start_ticks}});
  }
  return holds;
}

Result<uint64_t> Filesystem::release_stale_holds() {
  std::unique_lock lock(m_mutex);
  if (m_read_only) return Error(EROFS, "read-only filesystem");
  return release_stale_locked(true);
}

Result<uint64_t> Filesystem::release_stale_locked(bool reclaim_orphans) {
  const auto& alive = m_holder_alive ? m_holder_alive : holder_alive;
  std::vector<uint64_t> stale;
  for (const auto& [slot, hold] : m_holds) {
    // A generation that does not match cannot come from this inode's life.
    if (hold.generation != inode_ref(hold.ino).generation || !alive(hold)) stale.push_back(slot);
  }
  std::vector<Ino> released_inodes;
  for (uint64_t slot : stale) {
    Hold hold = m_holds.at(slot);
    auto txn = m_journal->begin();
    TRY(clear_hold(*txn, slot));
    txn->commit();
    released_inodes.push_back(hold.ino);
    if (m_log) {
      m_log("released stale hold " + std::to_string(slot) + " on inode " + std::to_string(hold.ino) +
            " (pid " + std::to_string(hold.pid) + ", uid " + std::to_string(hold.uid) + ")");
    }
  }
  if (reclaim_orphans) {
    for (Ino ino : released_inodes) {
      auto n = m_nodes.find(ino);
      if (n != m_nodes.end() && n->second->unreferenced() && inode_ref(ino).nlink == 0) {
        TRY(note(reclaim(ino), ino, "reclaim"));
      }
    }
  }
  return uint64_t{stale.size()};
}

}  // namespace pkfs::core
