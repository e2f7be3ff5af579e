// fs/fsck/repair.cpp: repair of a damaged region (fsck.pkfs -y and -p).
//
// Owns: repair_region. Like check.cpp it parses the region on its own,
// through format:: validators, never through core::Filesystem (which refuses
// the damage it would have to read). It works in three steps:
//   1. superblocks and journal, written at once: a primary restored from the
//      backup (or the backup from the primary), an open transaction rolled
//      back, a damaged journal header rewritten;
//   2. a model of the filesystem in DRAM (inodes in use, their extents,
//      directory entries, holds, claimed space), on which every other repair
//      is decided; nothing is written yet, so -p can still back out;
//   3. the differences between the model and the region, written through the
//      journal between a first transaction that sets the superblock's Error
//      state and a last one that clears it (see FORMAT.md, "Repair").
// Every offset is checked before it is read, as in check.cpp.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "fs/alloc/allocator.h"
#include "fs/base/bytes.h"
#include "fs/base/clock.h"
#include "fs/format/format.h"
#include "fs/fsck/fsck.h"
#include "fs/fsck/model.h"
#include "fs/fsck/passes.h"
#include "fs/journal/journal.h"

namespace pkfs::fsck {
namespace {

constexpr const char* kLostFound = "lost+found";

struct ChainBlock {
  uint64_t offset;
  ExtentBlock block;
};

// An inode in use, as the repair will leave it.
struct InodeModel {
  Inode inode{};
  std::vector<Extent> extents;
  std::vector<uint64_t> chain;  // extent block offsets, in chain order
  bool extents_changed = false;
};

struct Entry {
  uint64_t slot = 0;
  uint64_t parent = 0;
  uint64_t child = 0;
  uint8_t file_type = 0;
  std::string name;
  bool live = true;  // false: to be cleared
};

class Repairer : public Model, private Fixer {
 public:
  Repairer(region::Region& region, const RepairOptions& options, const Progress& progress)
      : Model(region, progress), m_target(region), m_options(options) {}

  Result<RepairReport> run() {
    TRY(fix_superblocks());
    if (m_stop) return finish();
    TRY(fix_journal());
    if (m_stop) return finish();
    load_inodes();
    load_extents();
    load_dirents();
    fix_tree();
    fix_links();
    fix_holds();
    fix_space();
    if (preen_blocked()) return finish();
    TRY(apply());
    m_report.applied = true;
    return finish();
  }

 private:
  // ---------------------------------------------------------------------
  // Reading, reporting, pending writes.

  // Every problem repair finds goes through here, with what was (or would
  // be) done. Whether -p may do it is the problem table's word; only codes
  // the table marks Preen::kPerFix say it per call.
  void act(Code code, std::string message) {
    const ProblemInfo& info = problem_info(code);
    if (info.preen == Preen::kPerFix) std::abort();  // broken invariant: the call must say
    m_report.actions.push_back({info.name, std::move(message), info.preen == Preen::kYes});
  }
  void act(Code code, std::string message, Preen preen) {
    const ProblemInfo& info = problem_info(code);
    if (info.preen != Preen::kPerFix || preen == Preen::kPerFix)
      std::abort();  // broken invariant: the table decides
    m_report.actions.push_back({info.name, std::move(message), preen == Preen::kYes});
  }

  // Unsafe actions under -p: nothing past journal recovery is written.
  bool preen_blocked() const { return m_options.mode == RepairMode::kPreen && m_report.unsafe_count() != 0; }

  RepairReport finish() { return std::move(m_report); }

  // The shared walks' one way to report (passes.h): repair reports what
  // it does, and does it.
  bool fix_problem(Code code, const std::string& message, const std::string& fix, Preen preen) override {
    if (problem_info(code).preen == Preen::kPerFix) {
      act(code, message + "; " + fix, preen);
    } else {
      act(code, message + "; " + fix);
    }
    return true;
  }
  void stage(uint64_t offset, const void* bytes, size_t length) override {
    const auto* first = static_cast<const std::byte*>(bytes);
    m_writes[offset].assign(first, first + length);
  }
  template <typename T>
  void write(uint64_t offset, const T& value) {
    stage(offset, &value, sizeof value);
  }

  // ---------------------------------------------------------------------
  // Step 1: superblocks (pass 1), written at once.

  Result<void> fix_superblocks() {
    if (m_region.size() < format::kMinRegionBytes) {
      return Error(ENODATA,
                   "region of " + std::to_string(m_region.size()) + " bytes is too small to hold pkfs");
    }
    const auto primary = read<Superblock>(0);
    auto primary_ok = format::verify_superblock(primary);
    std::optional<Layout> primary_layout;
    std::string primary_trouble;
    if (!primary_ok) {
      primary_trouble = primary_ok.error().message();
    } else if (auto layout = format::layout_from_superblock(primary, m_region.size()); !layout) {
      primary_trouble = layout.error().message();
    } else {
      primary_layout = layout.value();
    }
    const uint64_t backup_offset =
        primary_layout
            ? primary_layout->backup_offset
            : format::locate_backup_superblock(m_region.base(), m_region.size(), m_region.info().page_size);
    const auto backup = read<Superblock>(backup_offset);
    auto backup_ok = format::verify_superblock(backup);
    std::optional<Layout> backup_layout;
    std::string backup_trouble;
    if (!backup_ok) {
      backup_trouble = backup_ok.error().message();
    } else if (auto layout = format::layout_from_superblock(backup, m_region.size()); !layout) {
      backup_trouble = layout.error().message();
    } else {
      backup_layout = layout.value();
    }

    if (!primary_layout && !backup_layout) {
      return Error(primary_ok ? EUCLEAN : primary_ok.error().code(),
                   "no usable superblock: primary: " + primary_trouble + "; backup: " + backup_trouble);
    }
    Superblock sb = primary_layout ? primary : backup;
    format::Compatibility compatibility = format::check_compatibility(sb);
    if (compatibility.access == format::Access::kRefuse) return Error(EPROTONOSUPPORT, compatibility.reason);
    if (compatibility.access != format::Access::kReadWrite) return Error(EROFS, compatibility.reason);

    if (!primary_layout) {
      m_layout = *backup_layout;
      extend_high_water(sb);
      act(Code::kSuperblockChecksum, "primary superblock: " + primary_trouble + "; restored from the backup");
      if (preen_blocked()) {
        m_stop = true;
        return success();
      }
      // Written now, outside the journal: the journal is found through it.
      // A kill part way leaves the backup intact to restore from again.
      Superblock marked = sb;
      marked.state = (marked.state | format::kStateError) & ~format::kStateClean;
      format::seal(marked);
      std::memcpy(m_target.base(), &marked, sizeof marked);
      m_target.persist(0, sizeof marked);
    } else {
      m_layout = *primary_layout;
      bool backup_differs =
          !backup_layout || std::memcmp(primary.uuid, backup.uuid, sizeof backup.uuid) != 0 ||
          std::memcmp(&*backup_layout, &m_layout, sizeof m_layout) != 0 ||
          backup.root_ino != primary.root_ino || backup.feature_incompat != primary.feature_incompat ||
          !reserved_zero(backup) || !label_terminated(backup) || !label_padded(backup);
      if (backup_differs) {
        act(backup_layout ? Code::kBackupSuperblockMismatch : Code::kBackupSuperblockChecksum,
            "backup superblock at " + std::to_string(m_layout.backup_offset) + ": " +
                (backup_layout ? std::string("differs from the primary") : backup_trouble) +
                "; rewritten from the primary");
        m_rewrite_backup = true;
      }
    }
    walk_superblock_fields(*this, "superblock", sb);
    if (sb.state & format::kStateError) {
      act(Code::kSuperblockErrors,
          "superblock: the region has recorded " + std::to_string(sb.error_count) + " errors (first: " +
              std::string(sb.first_error_what, strnlen(sb.first_error_what, sizeof sb.first_error_what)) +
              "); cleared once the region is repaired");
    }
    m_was_clean =
        (primary_layout && (primary.state & format::kStateClean) && !(primary.state & format::kStateError));
    m_sb = sb;
    return success();
  }

  // The backup's high-water marks date from the last mount or unmount:
  // inodes and entries created since lie just above them. Slots directly
  // above a mark that hold valid structures are taken back in, up to the
  // first slot that does not (FORMAT.md, "Repair").
  void extend_high_water(Superblock& sb) {
    uint64_t inodes = sb.inode_high_water;
    while (inodes < m_layout.inode_count) {
      const auto inode = read<Inode>(inode_offset(inodes));
      if (!format::inode_valid(inode, inodes) || format::inode_is_free(inode)) break;
      ++inodes;
    }
    uint64_t dirents = sb.dirent_high_water;
    while (dirents < m_layout.dirent_count) {
      const auto dirent = read<Dirent>(dirent_offset(dirents));
      if (!format::dirent_valid(dirent)) break;
      ++dirents;
    }
    if (inodes != sb.inode_high_water || dirents != sb.dirent_high_water) {
      act(Code::kSuperblockFallback, "backup superblock: high-water marks raised to " +
                                         std::to_string(inodes) + " inodes and " + std::to_string(dirents) +
                                         " entries over the slots in use above them");
    }
    sb.inode_high_water = inodes;
    sb.dirent_high_water = dirents;
  }

  // ---------------------------------------------------------------------
  // Step 1, continued: the journal (pass 2).

  Result<void> fix_journal() {
    const uint64_t offset = m_layout.journal_offset, bytes = m_layout.journal_bytes;
    auto filter = [layout = m_layout](uint64_t target, std::byte* image, uint64_t length,
                                      const std::byte* current) {
      alloc::Allocator::adjust_undo_image(layout, target, image, length, current);
    };
    JournalHeader salvaged{};
    if (const auto fix = walk_journal_header(*this, read<JournalHeader>(offset), bytes, &salvaged);
        fix != JournalRepair::kNone) {
      if (preen_blocked()) {
        m_stop = true;
        return success();
      }
      if (fix == JournalRepair::kRestore) {
        std::memcpy(m_target.base() + offset, &salvaged, offsetof(JournalHeader, reserved2));
        m_target.persist(offset, sizeof(JournalHeader));
      } else {
        journal::Journal::format(m_target, offset, bytes);
      }
    }
    auto journal = journal::Journal::open(m_target, offset, bytes, filter);
    if (!journal) return journal.error();
    m_journal = std::move(journal).value();
    if (m_journal->needs_recovery()) {
      auto recovery = m_journal->recover();
      if (!recovery) {
        act(Code::kUndoRecordInvalid,
            recovery.error().message() + "; the transaction is discarded and the journal rewritten");
        if (preen_blocked()) {
          m_stop = true;
          return success();
        }
        m_journal.reset();
        journal::Journal::format(m_target, offset, bytes);
        TRY_ASSIGN(auto reopened, journal::Journal::open(m_target, offset, bytes, filter));
        m_journal = std::move(reopened);
      } else {
        m_report.recovered_sequence = recovery->sequence;
        m_report.recovered_records = recovery->records;
        act(Code::kJournalOpen,
            "journal: transaction " + std::to_string(recovery->sequence) + " was open; rolled back (" +
                std::to_string(recovery->records) + " records)",
            Preen::kYes);
        // The roll back may have restored the superblock's fields.
        if (auto sb = format::verify_superblock(read<Superblock>(0)); sb) {
          Superblock restored = read<Superblock>(0);
          m_sb.inode_high_water = restored.inode_high_water;
          m_sb.dirent_high_water = restored.dirent_high_water;
        }
      }
    }
    if (m_sb.inode_high_water < 2 || m_sb.inode_high_water > m_layout.inode_count ||
        m_sb.dirent_high_water > m_layout.dirent_count) {
      return Error(EUCLEAN, "superblock high-water marks out of range after journal recovery");
    }
    return success();
  }

  // ---------------------------------------------------------------------
  // Step 2: the model. Names first, for messages only.

  // Pass 3: inode slots.
  void load_inodes() {
    const uint64_t high = m_sb.inode_high_water;
    if (!all_zero(m_region.base() + inode_offset(0), sizeof(Inode))) {
      act(Code::kInodeInvalid, "inode slot 0 (never used) is not zero; zeroed", Preen::kYes);
      write(inode_offset(0), Inode{});
    }
    for (uint64_t ino = 1; ino < high; ++ino) {
      if (ino % kProgressStep == 0) progress(3, ino, high);
      Inode inode = read<Inode>(inode_offset(ino));
      std::string what;
      if (format::inode_is_free(inode)) {
        if (inode.tag == 0) continue;
        Inode free_form = free_inode(ino, inode.generation);
        free_form.generation = inode.generation;
        format::seal(free_form);
        if (std::memcmp(&free_form, &inode, sizeof inode) != 0) {
          act(Code::kInodeInvalid, "free inode " + std::to_string(ino) + ": not in the free form; rewritten",
              Preen::kYes);
          write(inode_offset(ino), free_form);
        }
        continue;
      }
      if (!format::inode_valid(inode, ino, &what)) {
        std::string how;
        auto salvaged = salvage(
            inode, [ino](const Inode& i) { return format::inode_valid(i, ino); }, &how);
        if (salvaged && !format::inode_is_free(*salvaged)) {
          act(inode.tag != format::kInodeTag ? Code::kInodeTag : Code::kInodeChecksum,
              describe_by_names(ino) + ": " + what + "; " + how);
          inode = *salvaged;
          write(inode_offset(ino), inode);
        } else {
          act(inode.tag != format::kInodeTag ? Code::kInodeTag : Code::kInodeChecksum,
              describe_by_names(ino) + ": " + what + "; cleared (its entries are removed, its space freed)");
          write(inode_offset(ino), free_inode(ino, inode.generation + 1));
          continue;
        }
      }
      InodeModel& model = m_inodes[ino];
      model.inode = inode;
      if (walk_inode_fields(
              *this, [&] { return describe_by_names(ino); }, model.inode)) {
        m_dirty_inodes.insert(ino);
      }
    }
    auto root = m_inodes.find(format::kRootIno);
    if (root == m_inodes.end() || !S_ISDIR(root->second.inode.mode)) {
      act(root == m_inodes.end() ? Code::kRootMissing : Code::kRootNotDirectory,
          "inode 1 (the root directory) is missing or not a directory; a new empty root is made");
      InodeModel& model = m_inodes[format::kRootIno];
      uint64_t generation = root == m_inodes.end() ? 1 : model.inode.generation + 1;
      model = InodeModel{};
      model.inode = new_directory(format::kRootIno, generation, format::kRootIno, 0755);
      m_dirty_inodes.insert(format::kRootIno);
    }
  }

  static Inode free_inode(uint64_t ino, uint64_t generation) {
    auto inode = format::stamped<Inode>();
    inode.ino = ino;
    inode.generation = generation;
    format::seal(inode);
    return inode;
  }

  static Inode new_directory(uint64_t ino, uint64_t generation, uint64_t parent, uint32_t permissions) {
    auto inode = format::stamped<Inode>();
    inode.ino = ino;
    inode.generation = generation;
    inode.mode = S_IFDIR | permissions;
    inode.nlink = 2;
    inode.atime_ns = inode.mtime_ns = inode.ctime_ns = inode.btime_ns = now_ns();
    inode.parent = parent;
    return inode;
  }

  // ---------------------------------------------------------------------
  // Pass 3: extent chains, extents, xattr blocks; pass 5's claims.

  void load_extents() {
    const uint64_t chunks = m_layout.chunk_count;
    m_claims.reset(chunks);
    uint64_t done = 0;
    std::vector<uint64_t> order;
    order.reserve(m_inodes.size());
    for (const auto& [ino, model] : m_inodes) order.push_back(ino);
    std::sort(order.begin(), order.end());  // the lower inode keeps contested space
    for (uint64_t ino : order) {
      if (++done % kProgressStep == 0) progress(3, done, order.size());
      load_file(ino, m_inodes[ino]);
    }
  }

  void load_file(uint64_t ino, InodeModel& model) {
    Inode& inode = model.inode;
    const std::string who = describe_by_names(ino);
    const uint32_t inline_count = std::min(inode.extent_count, format::kInlineExtents);
    std::vector<Extent> extents(inode.extents, inode.extents + inline_count);
    bool changed = false;
    bool rewrite_chain = false;  // only the chain's unused entries change

    // The chain, up to the first block that cannot be used.
    std::unordered_set<uint64_t> seen;
    for (uint64_t next = inode.extent_block; next != 0;) {
      std::string where = who + ": extent block at " + std::to_string(next);
      if (!seen.insert(next).second || next % kBlockSize != 0 || !in_data_area(next / kBlockSize, 1)) {
        act(Code::kExtentChain, where + ": cycle or outside the data area; the chain is cut there");
        changed = true;
        break;
      }
      auto block = read<ExtentBlock>(next);
      std::string what;
      if (!format::extent_block_valid(block, &what)) {
        std::string how;
        auto salvaged = salvage(
            block, [](const ExtentBlock& b) { return format::extent_block_valid(b); }, &how);
        if (!salvaged || salvaged->owner_ino != ino) {
          act(block.tag != format::kExtentBlockTag ? Code::kExtentBlockTag : Code::kExtentBlockChecksum,
              where + ": " + what + "; the chain is cut there (the extents it held are lost)");
          changed = true;
          break;
        }
        act(block.tag != format::kExtentBlockTag ? Code::kExtentBlockTag : Code::kExtentBlockChecksum,
            where + ": " + what + "; " + how);
        block = *salvaged;
        changed = true;
      }
      if (block.owner_ino != ino) {
        act(Code::kExtentBlockOwner,
            where + ": owned by inode " + std::to_string(block.owner_ino) + "; the chain is cut there");
        changed = true;
        break;
      }
      if (!claim_blocks(next / kBlockSize, 1, ino)) {
        act(Code::kExtentSpace, where + ": claimed by an earlier inode; the chain is cut there", Preen::kNo);
        changed = true;
        break;
      }
      model.chain.push_back(next);
      const uint32_t used = std::min<uint32_t>(block.count, format::kExtentsPerBlock);
      // The chain is written again from the model, unused entries zero.
      if (walk_extent_block_fields(*this, where, block)) rewrite_chain = true;
      extents.insert(extents.end(), block.extents, block.extents + used);
      if (block.next != 0 && block.count != format::kExtentsPerBlock) changed = true;  // compacted below
      if (extents.size() > inode.extent_count) break;
      next = block.next;
    }
    if (extents.size() != inode.extent_count) {
      if (!changed)
        act(Code::kExtentCount, who + ": extent_count is " + std::to_string(inode.extent_count) + " but " +
                                    std::to_string(extents.size()) +
                                    " extents were found; set to what was found");
      if (extents.size() > inode.extent_count) extents.resize(inode.extent_count);
      changed = true;
    }
    if (!S_ISREG(inode.mode) && !S_ISLNK(inode.mode) && !extents.empty()) {
      act(Code::kInodeExtents, who + ": a non-file owns extents; they are freed");
      extents.clear();
      changed = true;
    }

    // Each extent: sane, not overlapping, and its space unclaimed. Sorted
    // first, so one extent with a damaged file_block costs only itself.
    if (!std::is_sorted(extents.begin(), extents.end(),
                        [](const Extent& a, const Extent& b) { return a.file_block < b.file_block; })) {
      act(Code::kExtentOrder, who + ": extents are not sorted; sorted");
      std::stable_sort(extents.begin(), extents.end(),
                       [](const Extent& a, const Extent& b) { return a.file_block < b.file_block; });
      changed = true;
    }
    std::vector<Extent> kept;
    uint64_t previous_end = 0;
    for (const Extent& extent : extents) {
      std::string where = who + ": extent (file block " + std::to_string(extent.file_block) +
                          ", region block " + std::to_string(extent.region_block) + ", " +
                          std::to_string(extent.block_count) + " blocks)";
      std::string trouble;
      const bool large = extent.region_block % kBlocksPerChunk == 0 &&
                         extent.block_count % kBlocksPerChunk == 0 &&
                         extent.file_block % kBlocksPerChunk == 0;
      if (extent.block_count == 0) {
        trouble = "empty";
      } else if (extent.file_block > format::kMaxFileBytes / kBlockSize ||
                 extent.file_block + extent.block_count > format::kMaxFileBytes / kBlockSize) {
        trouble = "lies past the largest file size";
      } else if (!kept.empty() && extent.file_block < previous_end) {
        trouble = "overlaps the previous extent";
      } else if (!in_data_area(extent.region_block, extent.block_count)) {
        trouble = "lies outside the data area";
      } else if (!large && (extent.region_block + extent.block_count - 1) / kBlocksPerChunk !=
                               extent.region_block / kBlocksPerChunk) {
        trouble = "small extent crosses a chunk boundary";
      } else if (large ? !claim_chunks(extent.region_block, extent.block_count, ino)
                       : !claim_blocks(extent.region_block, extent.block_count, ino)) {
        trouble = "its space is claimed by an earlier inode or is a split chunk's header";
      }
      if (!trouble.empty()) {
        act(trouble.find("claimed") != std::string::npos ? Code::kSpaceClaimedTwice : Code::kExtentInvalid,
            where + ": " + trouble + "; removed (the range reads as zeros)");
        changed = true;
        continue;
      }
      previous_end = extent.file_block + extent.block_count;
      kept.push_back(extent);
    }

    // The xattr block.
    if (inode.xattr_block != 0) {
      const std::string where = who + ": xattr block at " + std::to_string(inode.xattr_block);
      std::string trouble;
      Code code = Code::kXattrBlockInvalid;
      std::optional<XattrBlock> rewritten;
      if (!in_data_area(inode.xattr_block / kBlockSize, 1)) {
        trouble = "lies outside the data area";
        code = Code::kXattrBlockRange;
      } else {
        auto block = read<XattrBlock>(inode.xattr_block);
        std::string what;
        if (!format::xattr_block_valid(block, &what)) {
          code = block.tag != format::kXattrBlockTag ? Code::kXattrBlockTag : Code::kXattrBlockChecksum;
          std::string how;
          auto salvaged = salvage(
              block, [](const XattrBlock& b) { return format::xattr_block_valid(b); }, &how);
          if (!salvaged) {
            trouble = what;
          } else {
            act(code, where + ": " + what + "; " + how);
            block = *salvaged;
            rewritten = block;
          }
        }
        if (trouble.empty() && block.owner_ino != ino)
          trouble = "owned by inode " + std::to_string(block.owner_ino);
        if (trouble.empty() && block.entry_count == 0) trouble = "holds no attribute";
        if (trouble.empty() && !xattr_names_unique(block)) trouble = "an attribute name appears twice";
        if (trouble.empty() && walk_xattr_block_fields(*this, where, block)) rewritten = block;
        if (trouble.empty() && !claim_blocks(inode.xattr_block / kBlockSize, 1, ino)) {
          trouble = "claimed by an earlier inode";
          code = Code::kXattrBlockSpace;
        }
      }
      if (!trouble.empty()) {
        act(code, where + ": " + trouble + "; removed (the file's extended attributes are lost)");
        inode.xattr_block = 0;
        m_dirty_inodes.insert(ino);
      } else if (rewritten) {
        write(inode.xattr_block, *rewritten);
      }
    }

    if (S_ISLNK(inode.mode) && (kept.size() != 1 || kept[0].file_block != 0 || kept[0].block_count != 1 ||
                                inode.size == 0 || inode.size > format::kSymlinkMax)) {
      act(Code::kSymlinkInvalid, who + ": symlink without a valid target block; cleared");
      release(kept, model.chain, inode);
      m_cleared.insert(ino);
      return;
    }

    model.extents = std::move(kept);
    // Chain blocks beyond what the extents now need are released.
    const size_t count = model.extents.size();
    const size_t needed =
        count <= format::kInlineExtents
            ? 0
            : (count - format::kInlineExtents + format::kExtentsPerBlock - 1) / format::kExtentsPerBlock;
    while (model.chain.size() > needed) {
      m_claims.unclaim_block(model.chain.back() / kBlockSize);
      model.chain.pop_back();
      changed = true;
    }
    model.extents_changed = changed || rewrite_chain;
    if (model.extents_changed) m_dirty_inodes.insert(ino);
    uint64_t blocks = model.chain.size() + (inode.xattr_block != 0 ? 1 : 0);
    for (const Extent& extent : model.extents) blocks += extent.block_count;
    if (inode.allocated_blocks != blocks) {
      if (!changed)
        act(Code::kInodeBlocks, who + ": allocated_blocks is " + std::to_string(inode.allocated_blocks) +
                                    ", it owns " + std::to_string(blocks) + "; corrected");
      inode.allocated_blocks = blocks;
      m_dirty_inodes.insert(ino);
    }
  }

  static bool xattr_names_unique(const XattrBlock& block) {
    std::unordered_set<std::string> names;
    bool ok = true;
    for_each_xattr_entry(block, [&](uint16_t, const format::XattrEntryHeader& header, std::string_view name) {
      ok = ok && header.reserved0 == 0 && names.emplace(name).second;
    });
    return ok;
  }

  // Claims, in inode order: a whole chunk has one owner; a split chunk's
  // blocks (never block 0, its header) have one owner each.
  bool claim_chunks(uint64_t first_block, uint64_t count, uint64_t ino) {
    const uint64_t first = first_block / kBlocksPerChunk, end = (first_block + count) / kBlocksPerChunk;
    for (uint64_t chunk = first; chunk < end; ++chunk) {
      if (m_claims.chunk_owner(chunk) != 0 || m_claims.split_claims(chunk)) return false;
    }
    for (uint64_t chunk = first; chunk < end; ++chunk) m_claims.set_chunk_owner(chunk, ino);
    return true;
  }

  // All or nothing: a block claimed before (or a split chunk's header
  // block) leaves every block of the range as it was.
  bool claim_blocks(uint64_t first, uint64_t count, uint64_t /*ino*/) {
    if (m_claims.chunk_owner(first / kBlocksPerChunk) != 0) return false;
    for (uint64_t block = first; block < first + count; ++block) {
      if (block % kBlocksPerChunk == 0 || m_claims.block_claimed(block)) {
        for (uint64_t undo = first; undo < block; ++undo) m_claims.unclaim_block(undo);
        return false;
      }
      m_claims.claim_block(block);
    }
    return true;
  }

  void release(const std::vector<Extent>& extents, const std::vector<uint64_t>& chain, const Inode& inode) {
    for (const Extent& extent : extents) {
      bool large = extent.region_block % kBlocksPerChunk == 0 && extent.block_count % kBlocksPerChunk == 0 &&
                   extent.file_block % kBlocksPerChunk == 0;
      if (large) {
        for (uint64_t c = extent.region_block / kBlocksPerChunk;
             c < (extent.region_block + extent.block_count) / kBlocksPerChunk; ++c)
          m_claims.set_chunk_owner(c, 0);
      } else {
        for (uint64_t b = extent.region_block; b < uint64_t{extent.region_block} + extent.block_count; ++b)
          m_claims.unclaim_block(b);
      }
    }
    for (uint64_t offset : chain) m_claims.unclaim_block(offset / kBlockSize);
    if (inode.xattr_block != 0) m_claims.unclaim_block(inode.xattr_block / kBlockSize);
  }

  // ---------------------------------------------------------------------
  // Pass 4: directory entries.

  void load_dirents() {
    // Inodes cleared by the extent pass are gone from the model now.
    for (uint64_t ino : m_cleared) {
      write(inode_offset(ino), free_inode(ino, m_inodes[ino].inode.generation + 1));
      m_inodes.erase(ino);
      m_dirty_inodes.erase(ino);
    }
    std::unordered_set<std::string> names;
    for (uint64_t slot = 0; slot < m_sb.dirent_high_water; ++slot) {
      if (slot % kProgressStep == 0) progress(4, slot, m_sb.dirent_high_water);
      auto dirent = read<Dirent>(dirent_offset(slot));
      if (format::dirent_is_free(dirent)) continue;
      std::string where = "directory entry " + std::to_string(slot);
      std::string what;
      bool rewrite = false;
      if (!format::dirent_valid(dirent, &what)) {
        std::string how;
        auto salvaged = salvage(
            dirent, [](const Dirent& d) { return format::dirent_valid(d); }, &how);
        const Code code = dirent.tag != format::kDirentTag ? Code::kDirentTag : Code::kDirentChecksum;
        if (!salvaged) {
          act(code, where + ": " + what + "; cleared");
          m_free_dirent_slots.push_back(slot);
          write(dirent_offset(slot), Dirent{});
          continue;
        }
        act(code, where + " (\"" + std::string(format::dirent_name(*salvaged)) + "\"): " + what + "; " + how);
        dirent = *salvaged;
        rewrite = true;
      }
      std::string name(format::dirent_name(dirent));
      where += " (\"" + name + "\" in " + describe_by_names(dirent.parent_ino) + ")";
      auto clear = [&](Code code, const std::string& why) {
        act(code, where + ": " + why + "; cleared");
        m_free_dirent_slots.push_back(slot);
        write(dirent_offset(slot), Dirent{});
      };
      auto parent = m_inodes.find(dirent.parent_ino);
      auto child = m_inodes.find(dirent.ino);
      if (parent == m_inodes.end() || !S_ISDIR(parent->second.inode.mode)) {
        clear(Code::kDirentParent,
              "its directory, inode " + std::to_string(dirent.parent_ino) + ", is not a directory in use");
        continue;
      }
      if (child == m_inodes.end()) {
        clear(Code::kDirentChild, "names inode " + std::to_string(dirent.ino) + ", which is not in use");
        continue;
      }
      if (dirent.ino == format::kRootIno) {
        clear(Code::kDirEntries, "names the root directory");
        continue;
      }
      if (!names.insert(std::to_string(dirent.parent_ino) + "/" + name).second) {
        clear(Code::kDirentDuplicate, "the directory has another entry of that name");
        continue;
      }
      const uint8_t type = static_cast<uint8_t>(IFTODT(child->second.inode.mode));
      if (dirent.file_type != type) {
        act(Code::kDirentType, where + ": file type " + std::to_string(dirent.file_type) +
                                   " does not match the inode; set to " + std::to_string(type));
        dirent.file_type = type;
        rewrite = true;
      }
      if (dirent.reserved0 != 0) {
        act(Code::kDirentInvalid, where + ": reserved field is not zero; zeroed");
        dirent.reserved0 = 0;
        rewrite = true;
      }
      if (rewrite) {
        format::seal(dirent);
        write(dirent_offset(slot), dirent);
      }
      m_entries.push_back({slot, dirent.parent_ino, dirent.ino, dirent.file_type, std::move(name), true});
    }
  }

  // A directory keeps one entry: the one in the directory its parent field
  // names, else the lowest slot. Then everything must reach the root;
  // what does not goes to /lost+found.
  void fix_tree() {
    std::unordered_map<uint64_t, size_t> dir_entry;  // directory -> its kept entry
    for (size_t i = 0; i < m_entries.size(); ++i) {
      Entry& entry = m_entries[i];
      const Inode& child = m_inodes[entry.child].inode;
      if (!S_ISDIR(child.mode)) continue;
      auto [it, inserted] = dir_entry.emplace(entry.child, i);
      if (inserted) continue;
      Entry& other = m_entries[it->second];
      Entry& loser = (other.parent != child.parent && entry.parent == child.parent) ? other : entry;
      if (&loser == &other) it->second = i;
      act(Code::kDirEntries, "directory entry " + std::to_string(loser.slot) + " (\"" + loser.name +
                                 "\"): a second entry for directory " + describe_by_names(entry.child) +
                                 "; cleared");
      clear_entry(loser);
    }
    // Reachability from the root.
    std::unordered_map<uint64_t, std::vector<size_t>> children;
    for (size_t i = 0; i < m_entries.size(); ++i) {
      if (m_entries[i].live) children[m_entries[i].parent].push_back(i);
    }
    std::unordered_set<uint64_t> reached;
    auto walk = [&](uint64_t top) {
      std::deque<uint64_t> queue{top};
      reached.insert(top);
      while (!queue.empty()) {
        uint64_t dir = queue.front();
        queue.pop_front();
        auto it = children.find(dir);
        if (it == children.end()) continue;
        for (size_t index : it->second) {
          const Entry& entry = m_entries[index];
          if (!entry.live) continue;
          if (reached.insert(entry.child).second && S_ISDIR(m_inodes[entry.child].inode.mode)) {
            queue.push_back(entry.child);
          }
        }
      }
    };
    walk(format::kRootIno);

    std::vector<uint64_t> order;
    for (const auto& [ino, model] : m_inodes) order.push_back(ino);
    std::sort(order.begin(), order.end());
    // Directories cut off from the root: reconnect the top of each cut-off
    // tree (or a member of each cycle).
    for (uint64_t ino : order) {
      const Inode& inode = m_inodes[ino].inode;
      if (!S_ISDIR(inode.mode) || reached.count(ino) || (inode.flags & format::kInodeOrphan)) continue;
      uint64_t top = ino;
      std::unordered_set<uint64_t> path{ino};
      for (;;) {
        auto it = dir_entry.find(top);
        if (it == dir_entry.end() || !m_entries[it->second].live) break;
        uint64_t up = m_entries[it->second].parent;
        if (reached.count(up) || !path.insert(up).second) break;
        top = up;
      }
      if (reached.count(top)) continue;
      auto it = dir_entry.find(top);
      std::optional<size_t> entry;
      if (it != dir_entry.end() && m_entries[it->second].live) entry = it->second;
      if (!reconnect(top, entry, "directory")) return;
      reached.insert(m_lost_found);
      size_t index = entry ? *entry : m_entries.size() - 1;
      dir_entry[top] = index;
      children[m_lost_found].push_back(index);
      walk(top);
    }
    // Files no entry names, that are not orphans.
    std::unordered_map<uint64_t, uint64_t> entries;
    for (const Entry& entry : m_entries) entries[entry.child] += entry.live ? 1 : 0;
    for (uint64_t ino : order) {
      Inode& inode = m_inodes[ino].inode;
      if (S_ISDIR(inode.mode) || entries[ino] != 0) continue;
      if (inode.flags & format::kInodeOrphan) continue;
      if (!reconnect(ino, std::nullopt, type_word(inode.mode))) return;
    }
  }

  static const char* type_word(uint32_t mode) {
    switch (mode & S_IFMT) {
      case S_IFREG: return "regular file";
      case S_IFLNK: return "symlink";
      case S_IFDIR: return "directory";
      default: return "special file";
    }
  }

  void clear_entry(Entry& entry) {
    entry.live = false;
    m_free_dirent_slots.push_back(entry.slot);
    write(dirent_offset(entry.slot), Dirent{});
  }

  // The lost+found directory, made on first use (inode 0 if it cannot be).
  uint64_t lost_found() {
    if (m_lost_found != 0) return m_lost_found;
    for (const Entry& entry : m_entries) {
      if (entry.live && entry.parent == format::kRootIno && entry.name == kLostFound &&
          S_ISDIR(m_inodes[entry.child].inode.mode)) {
        return m_lost_found = entry.child;
      }
    }
    for (const Entry& entry : m_entries) {
      if (entry.live && entry.parent == format::kRootIno && entry.name == kLostFound) {
        act(Code::kLostFound, "/lost+found exists but is not a directory; cannot reconnect");
        return 0;
      }
    }
    uint64_t ino = 0;
    for (uint64_t slot = 2; slot < m_sb.inode_high_water; ++slot) {
      if (!m_inodes.count(slot) && !m_cleared.count(slot)) {
        Inode old = read<Inode>(inode_offset(slot));
        if (format::inode_valid(old, slot) || all_zero(&old, sizeof old)) {
          ino = slot;
          break;
        }
      }
    }
    if (ino == 0) {
      if (m_sb.inode_high_water >= m_layout.inode_count) {
        act(Code::kLostFound, "no free inode for /lost+found; cannot reconnect");
        return 0;
      }
      ino = m_sb.inode_high_water++;
      m_superblock_changed = true;
    }
    Inode old = read<Inode>(inode_offset(ino));
    uint64_t generation = old.tag == format::kInodeTag ? old.generation + 1 : 1;
    m_inodes[ino].inode = new_directory(ino, generation, format::kRootIno, 0700);
    m_dirty_inodes.insert(ino);
    if (!add_entry(format::kRootIno, kLostFound, ino)) return 0;
    act(Code::kLostFound, "/lost+found created (inode " + std::to_string(ino) + ")");
    m_lost_found_created = true;
    return m_lost_found = ino;
  }

  bool add_entry(uint64_t parent, const std::string& name, uint64_t child) {
    uint64_t slot;
    if (!m_free_dirent_slots.empty()) {
      std::sort(m_free_dirent_slots.begin(), m_free_dirent_slots.end(), std::greater<>());
      slot = m_free_dirent_slots.back();
      m_free_dirent_slots.pop_back();
    } else {
      // A free slot below the mark, else the mark itself.
      std::set<uint64_t> used;
      for (const Entry& entry : m_entries) used.insert(entry.slot);
      slot = UINT64_MAX;
      for (uint64_t s = 0; s < m_sb.dirent_high_water; ++s) {
        if (!used.count(s) && format::dirent_is_free(read<Dirent>(dirent_offset(s))) &&
            !m_writes.count(dirent_offset(s))) {
          slot = s;
          break;
        }
      }
      if (slot == UINT64_MAX) {
        if (m_sb.dirent_high_water >= m_layout.dirent_count) {
          act(Code::kLostFound,
              "no free directory entry slot; cannot reconnect inode " + std::to_string(child));
          return false;
        }
        slot = m_sb.dirent_high_water++;
        m_superblock_changed = true;
      }
    }
    const Dirent dirent =
        format::make_dirent(parent, child, static_cast<uint8_t>(IFTODT(m_inodes[child].inode.mode)), name);
    write(dirent_offset(slot), dirent);
    m_entries.push_back({slot, parent, child, dirent.file_type, name, true});
    return true;
  }

  // Moves `ino` into /lost+found as "#ino": its entry is rewritten there, or
  // a new one made.
  bool reconnect(uint64_t ino, std::optional<size_t> index, const char* what) {
    const uint64_t lf = lost_found();
    if (lf == 0) return false;
    std::string name = "#" + std::to_string(ino);
    for (const Entry& other : m_entries) {
      if (other.live && other.parent == lf && other.name == name)
        name += "." + std::to_string(m_entries.size());
    }
    act(S_ISDIR(m_inodes[ino].inode.mode) ? Code::kDirCycle : Code::kUnreachable,
        describe_by_names(ino) + ": " + what + " not reachable from the root; moved to /lost+found/" + name);
    if (index) {
      Entry* entry = &m_entries[*index];
      entry->parent = lf;
      entry->name = name;
      write(dirent_offset(entry->slot), format::make_dirent(lf, ino, entry->file_type, name));
      return true;
    }
    return add_entry(lf, name, ino);
  }

  // Link counts, directory parent fields and orphan flags.
  void fix_links() {
    std::unordered_map<uint64_t, uint64_t> entries, subdirs, entry_parent;
    for (const Entry& entry : m_entries) {
      if (!entry.live) continue;
      entries[entry.child] += 1;
      if (S_ISDIR(m_inodes[entry.child].inode.mode)) {
        subdirs[entry.parent] += 1;
        entry_parent[entry.child] = entry.parent;
      }
    }
    for (auto& [ino, model] : m_inodes) {
      Inode& inode = model.inode;
      const std::string who = describe_by_names(ino);
      // lost+found made by this repair, and the root that gained it, need no message.
      const bool quiet = m_lost_found_created && (ino == m_lost_found || ino == format::kRootIno);
      const uint64_t count = entries.count(ino) ? entries[ino] : 0;
      bool orphan = inode.flags & format::kInodeOrphan;
      if (orphan && count != 0) {
        act(Code::kLinkCount,
            who + ": orphan flag set but " + std::to_string(count) + " entries name it; flag cleared",
            Preen::kNo);
        inode.flags &= static_cast<uint16_t>(~format::kInodeOrphan);
        orphan = false;
        m_dirty_inodes.insert(ino);
      }
      if (S_ISDIR(inode.mode)) {
        uint64_t parent =
            ino == format::kRootIno ? format::kRootIno : (entry_parent.count(ino) ? entry_parent[ino] : 0);
        if (!orphan && inode.parent != parent && parent != 0) {
          act(Code::kDirParent, who + ": parent field is " + std::to_string(inode.parent) +
                                    ", its entry lies in " + std::to_string(parent) + "; corrected");
          inode.parent = parent;
          m_dirty_inodes.insert(ino);
        }
        uint64_t wanted = orphan ? 0 : 2 + (subdirs.count(ino) ? subdirs[ino] : 0);
        if (inode.nlink != wanted) {
          if (!quiet)
            act(Code::kLinkCount,
                who + ": directory nlink is " + std::to_string(inode.nlink) + ", expected " +
                    std::to_string(wanted) + "; corrected",
                Preen::kYes);
          inode.nlink = static_cast<uint32_t>(wanted);
          m_dirty_inodes.insert(ino);
        }
      } else if (inode.nlink != count) {
        act(Code::kLinkCount,
            who + ": nlink is " + std::to_string(inode.nlink) + " but " + std::to_string(count) +
                " entries name it; corrected",
            Preen::kYes);
        inode.nlink = static_cast<uint32_t>(std::min<uint64_t>(count, UINT32_MAX));
        m_dirty_inodes.insert(ino);
      }
    }
  }

  // ---------------------------------------------------------------------
  // Pass 6: holds. A valid hold on an inode in use is kept.

  void fix_holds() {
    walk_holds(*this, *this, [&](uint64_t ino) { return m_inodes.count(ino) != 0; });
  }

  // ---------------------------------------------------------------------
  // Pass 5 (and 7): the chunk map and split headers, rebuilt from claims.

  void fix_space() {
    const uint64_t chunks = m_layout.chunk_count;
    for (uint64_t block = 0; block < m_layout.chunk_map_blocks; ++block) {
      const uint64_t offset = m_layout.chunk_map_offset + block * kBlockSize;
      auto map = read<ChunkMapBlock>(offset);
      const ChunkMapRepair fixed = walk_chunk_map_block(*this, block, map);
      bool rewrite = fixed != ChunkMapRepair::kNone;
      if (fixed == ChunkMapRepair::kRebuilt) m_quiet_blocks.insert(block);
      for (uint64_t i = 0; i < format::kChunksPerMapBlock; ++i) {
        const uint64_t chunk = block * format::kChunksPerMapBlock + i;
        if (chunk % kProgressStep == 0) progress(5, chunk, chunks);
        const uint8_t wanted = wanted_state(chunk, map.state[i]);
        if (wanted == format::kChunkSplit) rewrite_split_header(chunk);
        if (map.state[i] != wanted) {
          if (!m_quiet_blocks.count(block)) describe_state_change(chunk, map.state[i], wanted);
          map.state[i] = wanted;
          rewrite = true;
        }
      }
      if (rewrite) {
        format::seal(map);
        write(offset, map);
      }
    }
  }

  uint8_t wanted_state(uint64_t chunk, uint8_t current) {
    if (m_layout.meta_chunk(chunk)) return format::kChunkMeta;
    if (m_claims.chunk_owner(chunk) != 0) return format::kChunkUsed;
    if (m_claims.split_claims(chunk)) return format::kChunkSplit;
    if (current == format::kChunkFreeZero) {
      if (m_options.verify_known_zero &&
          walk_known_zero_chunk(*this, chunk, m_region.base() + chunk * kChunkSize)) {
        return format::kChunkFreeDirty;
      }
      return format::kChunkFreeZero;
    }
    return format::kChunkFreeDirty;
  }

  void describe_state_change(uint64_t chunk, uint8_t from, uint8_t to) {
    const std::string where = "chunk " + std::to_string(chunk);
    // Known zero to dirty: pass 7's walk (walk_known_zero_chunk) reported it.
    if (to == format::kChunkFreeDirty && from == format::kChunkFreeZero) return;
    if (to == format::kChunkFreeDirty && (from == format::kChunkUsed || from == format::kChunkSplit)) {
      act(Code::kSpaceLeaked, where + ": marked in use but nothing owns it; freed (dirty)");
    } else {
      act(Code::kChunkState,
          where + ": state " + std::to_string(from) + " should be " + std::to_string(to) + "; corrected");
    }
  }

  void rewrite_split_header(uint64_t chunk) {
    const uint64_t offset = chunk * kChunkSize;
    const auto current = read<SplitHeader>(offset);
    auto header = format::stamped<SplitHeader>();
    header.chunk_index = chunk;
    const auto& bits = *m_claims.split_claims(chunk);
    std::memcpy(header.bitmap, bits.data(), sizeof header.bitmap);
    header.bitmap[0] |= 1;
    uint64_t used = 0;
    for (uint64_t word : header.bitmap) used += static_cast<uint64_t>(std::popcount(word));
    header.used_blocks = static_cast<uint16_t>(used);
    format::seal(header);
    if (std::memcmp(&header, &current, sizeof header) == 0) return;
    std::string what;
    const std::string where = "split chunk " + std::to_string(chunk) + " header";
    if (current.tag == format::kSplitHeaderTag && format::split_header_valid(current, chunk, &what)) {
      uint64_t leaked = 0, unmarked = 0;
      for (uint64_t bit = 1; bit < kBlocksPerChunk; ++bit) {
        bool had = (current.bitmap[bit / 64] >> (bit % 64)) & 1,
             has = (header.bitmap[bit / 64] >> (bit % 64)) & 1;
        leaked += had && !has;
        unmarked += has && !had;
      }
      if (leaked)
        act(Code::kSpaceLeaked,
            where + ": " + std::to_string(leaked) + " blocks marked in use that nothing owns; freed");
      if (unmarked)
        act(Code::kExtentSpace,
            where + ": " + std::to_string(unmarked) + " blocks in use marked free; marked", Preen::kYes);
    } else if (read<ChunkMapBlock>(m_layout.chunk_map_offset +
                                   chunk / format::kChunksPerMapBlock * kBlockSize)
                   .state[chunk % format::kChunksPerMapBlock] == format::kChunkSplit) {
      format::split_header_valid(current, chunk, &what);
      act(current.tag != format::kSplitHeaderTag ? Code::kSplitHeaderTag : Code::kSplitHeaderChecksum,
          where + ": " + what + "; rebuilt from the extents");
    }
    write(offset, header);
  }

  // ---------------------------------------------------------------------
  // Step 3: write the model's differences, crash safe.

  void stage_inodes() {
    for (uint64_t ino : m_dirty_inodes) {
      auto it = m_inodes.find(ino);
      if (it == m_inodes.end()) continue;
      InodeModel& model = it->second;
      Inode& inode = model.inode;
      if (model.extents_changed) {
        const size_t count = model.extents.size();
        inode.extent_count = static_cast<uint32_t>(count);
        std::memset(inode.extents, 0, sizeof inode.extents);
        std::copy_n(model.extents.begin(), std::min<size_t>(count, format::kInlineExtents), inode.extents);
        inode.extent_block = model.chain.empty() ? 0 : model.chain.front();
        size_t at = format::kInlineExtents;
        for (size_t i = 0; i < model.chain.size(); ++i) {
          auto block = format::stamped<ExtentBlock>();
          block.owner_ino = ino;
          size_t n = std::min<size_t>(format::kExtentsPerBlock, count - at);
          block.count = static_cast<uint16_t>(n);
          std::copy_n(model.extents.begin() + static_cast<ptrdiff_t>(at), n, block.extents);
          at += n;
          block.next = i + 1 < model.chain.size() ? model.chain[i + 1] : 0;
          format::seal(block);
          write(model.chain[i], block);
        }
      }
      format::seal(inode);
      write(inode_offset(ino), inode);
    }
  }

  Result<void> apply() {
    stage_inodes();
    const bool needs_marking = !m_report.actions.empty() || !m_writes.empty() || m_superblock_changed ||
                               m_rewrite_backup || (m_sb.state & format::kStateError) || !m_was_clean;
    if (!needs_marking) return success();
    const uint64_t backup_offset = m_layout.backup_offset;
    // First: mark the repair under way (Error set, Clean cleared).
    Superblock marked = m_sb;
    if (!m_report.actions.empty()) {
      marked.state = (marked.state | format::kStateError) & ~format::kStateClean;
      format::seal(marked);
      auto txn = m_journal->begin();
      TRY(txn->put(0, marked));
      txn->commit();
    }
    // Then every change, in as many transactions as the journal needs.
    auto txn = m_journal->begin();
    for (const auto& [offset, bytes] : m_writes) {
      if (txn->journal_bytes_free() < format::undo_record_bytes(bytes.size()) + 4096) {
        txn->commit();
        txn = m_journal->begin();
      }
      TRY(txn->log(offset, bytes.size()));
      std::memcpy(m_target.base() + offset, bytes.data(), bytes.size());
    }
    txn->commit();
    // Last: the superblock and its backup, clean and without errors.
    Superblock done = m_sb;
    done.state = format::kStateClean;
    done.error_count = 0;
    done.first_error_code = done.last_error_code = 0;
    done.first_error_time_ns = done.last_error_time_ns = 0;
    done.first_error_ino = done.last_error_ino = 0;
    std::memset(done.first_error_what, 0, sizeof done.first_error_what);
    std::memset(done.last_error_what, 0, sizeof done.last_error_what);
    done.check_time_ns = now_ns();
    done.write_time_ns = done.check_time_ns;
    format::seal(done);
    auto last = m_journal->begin();
    TRY(last->put(0, done));
    TRY(last->put(backup_offset, done));
    last->commit();
    m_report.marked_clean = !m_was_clean;
    return success();
  }

  region::Region& m_target;  // the writer's view of the Model's region
  const RepairOptions m_options;
  RepairReport m_report;
  bool m_stop = false;
  bool m_was_clean = false;
  bool m_rewrite_backup = false;
  bool m_superblock_changed = false;
  std::unique_ptr<journal::Journal> m_journal;

  std::unordered_map<uint64_t, InodeModel> m_inodes;  // inodes in use
  std::set<uint64_t> m_dirty_inodes;
  std::set<uint64_t> m_cleared;  // cleared after their extents were read
  std::vector<Entry> m_entries;
  std::vector<uint64_t> m_free_dirent_slots;
  uint64_t m_lost_found = 0;
  bool m_lost_found_created = false;

  std::set<uint64_t> m_quiet_blocks;  // rebuilt map blocks: no per-chunk messages

  std::map<uint64_t, std::vector<std::byte>> m_writes;  // region offset -> new bytes
};

}  // namespace

Result<RepairReport> repair_region(region::Region& region, const RepairOptions& options,
                                   const Progress& progress) {
  Repairer repairer(region, options, progress);
  return run_cancellable([&] { return repairer.run(); });
}

}  // namespace pkfs::fsck
