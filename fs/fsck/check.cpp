// fs/fsck/check.cpp: the read-only consistency check of a whole region.
//
// Owns: the passes of check_region (superblocks, journal, inodes and their
// extents, directory tree, space, holds) and the problem codes they report.
// Parses the region on its own, through format:: validators and its own
// walks, never through core::Filesystem: it exists to catch core's bugs, so
// it must not share core's assumptions. Every walk is bounded and every
// offset is checked before it is read, so garbage yields problems, never a
// crash or a hang.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "fs/format/format.h"
#include "fs/fsck/fsck.h"
#include "fs/fsck/model.h"
#include "fs/fsck/passes.h"
#include "fs/journal/journal.h"

namespace pkfs::fsck {
namespace {

// One code floods a report of a badly damaged region; past this many the
// rest are counted in one closing problem of the same code.
constexpr size_t kMaxProblemsPerCode = 100;

// m_reached values besides entry indexes.
constexpr size_t kNotReached = SIZE_MAX;
constexpr size_t kRoot = SIZE_MAX - 1;

// A chunk whose state could not be read (its chunk-map block is bad): space
// checks skip it rather than report guesses.
constexpr uint8_t kStateUnknown = 0xff;

enum class Slot : uint8_t { kFree, kInUse, kBad };

std::string extent_text(const Extent& extent) {
  return "extent (file block " + std::to_string(extent.file_block) + ", region block " +
         std::to_string(extent.region_block) + ", " + std::to_string(extent.block_count) + " blocks)";
}

// One reference to space, for "claimed twice" messages.
struct Owner {
  uint64_t ino = 0;
  const char* what = "";
};

// A split chunk as its header describes it. Which of its blocks references
// claimed is in Model's Claims; owners are looked up again only for blocks
// claimed twice.
struct SplitChunk {
  bool header_ok = false;
  uint64_t bitmap[kBlocksPerChunk / 64] = {};
  bool bit(uint64_t index) const { return (bitmap[index / 64] >> (index % 64)) & 1; }
};

// A valid directory entry whose parent and child are in use.
struct Entry {
  uint64_t slot = 0;
  uint64_t parent = 0;
  uint64_t child = 0;
  std::string name;
};

class Checker : public Model, private Fixer {
 public:
  Checker(const region::Region& region, const CheckOptions& options, const Progress& progress)
      : Model(region, progress), m_options(options) {}

  Result<CheckReport> run() {
    TRY(check_superblocks());
    if (m_stop) return finish();
    // A transaction interrupted by a crash is the normal state of a region
    // whose daemon was killed: the next mount rolls it back. Check what that
    // mount will see, the region with the transaction's undo records laid
    // over it (in DRAM; the region is never written), from the superblocks
    // on, since transactions change them too.
    if (auto rollback = load_rollback()) {
      m_report.rolled_back_sequence = rollback->first;
      m_report.rolled_back_records = rollback->second;
      m_report.problems.clear();
      m_code_counts.clear();
      TRY(check_superblocks());
      if (m_stop) return finish();
    }
    check_journal();
    load_space();
    scan_inodes();
    check_tree();
    check_files();
    name_double_claims();
    check_space();
    check_holds();
    return finish();
  }

 private:
  // ---------------------------------------------------------------------
  // Reading and reporting.

  void problem(Code code, std::string message) {
    if (m_resolving) return;  // the second walk only looks up owners
    size_t& count = m_code_counts[code];
    ++count;
    if (count > kMaxProblemsPerCode) return;
    m_report.problems.push_back({code_name(code), std::move(message)});
  }

  CheckReport finish() {
    for (const auto& [code, count] : m_code_counts) {
      if (count > kMaxProblemsPerCode) {
        m_report.problems.push_back({code_name(code), std::to_string(count - kMaxProblemsPerCode) +
                                                          " more problems of this kind not listed"});
      }
    }
    return std::move(m_report);
  }

  Inode inode_at(uint64_t ino) const { return read<Inode>(inode_offset(ino)); }

  Slot slot_of(uint64_t ino) const { return ino < m_slots.size() ? m_slots[ino] : Slot::kFree; }
  bool reached(uint64_t ino) const { return ino < m_reached.size() && m_reached[ino] != kNotReached; }

  // describe(ino), built only when a message needs it: most inodes have
  // no problem, and a path costs a walk and a string.
  struct Who {
    const Checker* checker;
    uint64_t ino;
    operator std::string() const { return checker->describe(ino); }
    friend std::string operator+(const Who& who, const char* text) { return std::string(who) + text; }
  };

  // The path by which the walk from the root first reached `ino`, or "".
  std::string path_of(uint64_t ino) const {
    if (ino == format::kRootIno) return reached(ino) ? "/" : "";
    std::vector<const std::string*> names;
    for (uint64_t at = ino; at != format::kRootIno;) {
      if (!reached(at)) return "";
      const Entry& entry = m_entries[m_reached[at]];
      names.push_back(&entry.name);
      at = entry.parent;  // the walk's tree: each step is one level closer to the root
    }
    std::string path;
    for (auto it = names.rbegin(); it != names.rend(); ++it) path += "/" + **it;
    return path;
  }

  // "inode 12 (/a/b)", or "inode 12" when no path leads to it.
  std::string describe(uint64_t ino) const {
    std::string path = path_of(ino);
    if (path.empty()) return "inode " + std::to_string(ino);
    return "inode " + std::to_string(ino) + " (" + path + ")";
  }

  // ---------------------------------------------------------------------
  // Pass 1: superblocks.

  Result<void> check_superblocks() {
    progress(1, 0, 1);
    if (m_region.size() < format::kMinRegionBytes) {
      return Error(ENODATA,
                   "region of " + std::to_string(m_region.size()) + " bytes is too small to hold pkfs");
    }
    std::optional<Superblock> chosen;
    const auto primary = read<Superblock>(0);
    auto primary_ok = format::verify_superblock(primary);
    if (!primary_ok) {
      problem(primary.magic != format::kSuperblockMagic         ? Code::kSuperblockMagic
              : primary.format_version > format::kFormatVersion ? Code::kSuperblockVersion
              : !format::checksum_ok(primary)                   ? Code::kSuperblockChecksum
                                                                : Code::kSuperblockInvalid,
              "primary superblock: " + primary_ok.error().message());
    } else if (auto layout = format::layout_from_superblock(primary, m_region.size()); !layout) {
      problem(Code::kSuperblockLayout, "primary superblock: " + layout.error().message());
    } else {
      m_layout = layout.value();
      chosen = primary;
    }

    uint64_t backup_offset = chosen ? m_layout.backup_offset
                                    : format::locate_backup_superblock(m_region.base(), m_region.size(),
                                                                       m_region.info().page_size);
    const auto backup = read<Superblock>(backup_offset);
    auto backup_ok = format::verify_superblock(backup);
    if (!backup_ok) {
      problem(backup.magic != format::kSuperblockMagic ? Code::kBackupSuperblockMagic
              : !format::checksum_ok(backup)           ? Code::kBackupSuperblockChecksum
                                                       : Code::kBackupSuperblockInvalid,
              "backup superblock at " + std::to_string(backup_offset) + ": " + backup_ok.error().message());
    } else if (auto layout = format::layout_from_superblock(backup, m_region.size()); !layout) {
      problem(Code::kBackupSuperblockLayout, "backup superblock: " + layout.error().message());
    } else if (chosen) {
      compare_backup(primary, backup);
      Superblock fields = backup;  // check's fix_problem changes nothing
      walk_superblock_fields(*this, "backup superblock", fields);
    } else {
      // The backup's high-water marks date from the last clean unmount, so
      // what follows may report slots the primary had counted.
      m_layout = layout.value();
      chosen = backup;
      problem(Code::kSuperblockFallback,
              "checking with the backup superblock (its high-water marks may be stale)");
    }
    if (!chosen) {
      return Error(
          primary_ok ? EUCLEAN : primary_ok.error().code(),
          "no usable superblock: primary: " +
              (primary_ok ? std::string("impossible layout") : primary_ok.error().message()) +
              "; backup: " + (backup_ok ? std::string("impossible layout") : backup_ok.error().message()));
    }
    m_sb = *chosen;
    format::Compatibility compatibility = format::check_compatibility(m_sb);
    if (compatibility.access != format::Access::kReadWrite) {
      // Unknown features may change what any structure means: stop here.
      problem(Code::kSuperblockFeatures, "superblock: " + compatibility.reason);
      m_stop = true;
      return success();
    }
    Superblock fields = m_sb;
    walk_superblock_fields(*this, "superblock", fields);
    if (m_sb.state & format::kStateError) {
      problem(Code::kSuperblockErrors,
              "superblock: the region has recorded " + std::to_string(m_sb.error_count) + " errors (first: " +
                  std::string(m_sb.first_error_what,
                              strnlen(m_sb.first_error_what, sizeof m_sb.first_error_what)) +
                  ", inode " + std::to_string(m_sb.first_error_ino) + ")");
    }
    m_slots.assign(m_sb.inode_high_water, Slot::kFree);
    return success();
  }

  void compare_backup(const Superblock& primary, const Superblock& backup) {
    struct Field {
      const char* name;
      uint64_t primary, backup;
    };
    const Field fields[] = {
        {"region_bytes", primary.region_bytes, backup.region_bytes},
        {"page_bytes", primary.page_bytes, backup.page_bytes},
        {"chunk_count", primary.chunk_count, backup.chunk_count},
        {"journal_offset", primary.journal_offset, backup.journal_offset},
        {"journal_bytes", primary.journal_bytes, backup.journal_bytes},
        {"inode_table_offset", primary.inode_table_offset, backup.inode_table_offset},
        {"inode_count", primary.inode_count, backup.inode_count},
        {"dirent_table_offset", primary.dirent_table_offset, backup.dirent_table_offset},
        {"dirent_count", primary.dirent_count, backup.dirent_count},
        {"chunk_map_offset", primary.chunk_map_offset, backup.chunk_map_offset},
        {"chunk_map_blocks", primary.chunk_map_blocks, backup.chunk_map_blocks},
        {"hold_table_offset", primary.hold_table_offset, backup.hold_table_offset},
        {"hold_count", primary.hold_count, backup.hold_count},
        {"data_offset", primary.data_offset, backup.data_offset},
        {"backup_offset", primary.backup_offset, backup.backup_offset},
        {"root_ino", primary.root_ino, backup.root_ino},
        {"format_version", primary.format_version, backup.format_version},
        {"feature_incompat", primary.feature_incompat, backup.feature_incompat},
    };
    for (const Field& field : fields) {
      if (field.primary != field.backup) {
        problem(Code::kBackupSuperblockMismatch, std::string("backup superblock: ") + field.name + " is " +
                                                     std::to_string(field.backup) + ", the primary says " +
                                                     std::to_string(field.primary));
      }
    }
    if (std::memcmp(primary.uuid, backup.uuid, sizeof primary.uuid) != 0) {
      problem(Code::kBackupSuperblockMismatch,
              "backup superblock: uuid " + format::uuid_to_string(backup.uuid) +
                  " differs from the primary's " + format::uuid_to_string(primary.uuid));
    }
  }

  // ---------------------------------------------------------------------
  // Pass 2: journal.

  void check_journal() {
    progress(2, 0, 1);
    const auto header = read<JournalHeader>(m_layout.journal_offset);
    walk_journal_header(*this, header, m_layout.journal_bytes, nullptr);  // check restores nothing
    if (!format::stamp_ok(header) || !format::checksum_ok(header)) return;
    if (header.open_sequence != 0 && m_report.rolled_back_sequence != header.open_sequence) {
      if (header.open_sequence == header.last_sequence) {
        problem(Code::kJournalOpen, "journal: transaction " + std::to_string(header.open_sequence) +
                                        " is open (last begun: " + std::to_string(header.last_sequence) +
                                        "); mounting rolls it back");
      }
      check_undo_records(header.open_sequence);
    }
  }

  // The records of the open transaction, as recovery will read them. The
  // first record that fails ends the log (a kill may tear the last one), so
  // a failing record is damage only when a valid record of the same
  // transaction follows it; records of a closed journal are never read.
  void check_undo_records(uint64_t sequence) {
    const uint64_t base = m_layout.journal_offset, bytes = m_layout.journal_bytes;
    std::optional<std::string> damaged;
    journal::scan_undo_records(
        m_region.base() + base, bytes, sequence, [&](const journal::UndoRecord& record) {
          const std::string where = "journal undo record " + std::to_string(record.index) +
                                    " of transaction " + std::to_string(sequence) + " at " +
                                    std::to_string(base + record.position);
          if (!record.checksum_ok) {
            if (!damaged) damaged = where;
          } else if (damaged) {
            problem(Code::kUndoRecordChecksum,
                    *damaged + ": checksum mismatch, and valid records follow it; recovery stops there");
            return false;
          } else if (!journal::undo_target_ok(record, m_region.size(), base, bytes)) {
            problem(Code::kUndoRecordInvalid, where + ": targets bytes outside the metadata");
            return false;
          }
          return true;
        });
  }

  // ---------------------------------------------------------------------
  // Pass 5, first half: the chunk map and split headers, which the extent
  // checks of pass 3 need.

  void load_space() {
    const uint64_t chunks = m_layout.chunk_count;
    m_states.assign(chunks, kStateUnknown);
    m_claims.reset(chunks);
    for (uint64_t block = 0; block < m_layout.chunk_map_blocks; ++block) {
      auto map = read<ChunkMapBlock>(m_layout.chunk_map_offset + block * kBlockSize);
      if (walk_chunk_map_block(*this, block, map) == ChunkMapRepair::kUnreadable) {
        m_space_trusted = false;
        continue;
      }
      for (uint64_t i = 0; i < format::kChunksPerMapBlock; ++i) {
        uint64_t chunk = block * format::kChunksPerMapBlock + i;
        if (chunk < chunks) {
          m_states[chunk] = map.state[i];
        } else if (map.state[i] != format::kChunkMeta) {
          problem(Code::kChunkState, "chunk map block " + std::to_string(block) + ": chunk " +
                                         std::to_string(chunk) +
                                         " lies past the region but is not marked metadata");
        }
      }
    }
    for (uint64_t chunk = 0; chunk < chunks; ++chunk) {
      uint8_t state = m_states[chunk];
      if (state == kStateUnknown) continue;
      bool must_be_meta = m_layout.meta_chunk(chunk);
      if (must_be_meta != (state == format::kChunkMeta)) {
        problem(Code::kChunkState,
                "chunk map: chunk " + std::to_string(chunk) + " has state " + std::to_string(state) +
                    (must_be_meta ? " but holds metadata" : " (metadata) but lies in the data area"));
        if (must_be_meta) m_states[chunk] = kStateUnknown;
        continue;
      }
      if (state != format::kChunkSplit) continue;
      SplitChunk& split = m_splits[chunk];
      const auto header = read<SplitHeader>(chunk * kChunkSize);
      std::string what;
      if (!format::split_header_valid(header, chunk, &what)) {
        problem(rejection_code(Code::kSplitHeaderTag, header.tag == format::kSplitHeaderTag,
                               format::checksum_ok(header)),
                "split chunk " + std::to_string(chunk) + " header: " + what);
        m_space_trusted = false;
        continue;
      }
      split.header_ok = true;
      std::memcpy(split.bitmap, header.bitmap, sizeof split.bitmap);
      if (header.used_blocks < 2) {
        // The transaction that frees a split chunk's last block frees the chunk.
        problem(Code::kSplitEmpty,
                "split chunk " + std::to_string(chunk) + " has no block in use besides its header");
      }
    }
  }

  // Claims blocks [first, first+count) of one split chunk for `ino`.
  // Returns a description of the first problem, or "" when all is well.
  std::string claim_blocks(uint64_t first, uint64_t count, uint64_t ino, const char* what) {
    uint64_t chunk = first / kBlocksPerChunk;
    if ((first + count - 1) / kBlocksPerChunk != chunk) return "crosses a chunk boundary";
    uint8_t state = m_states[chunk];
    if (state == kStateUnknown) return "";
    if (state != format::kChunkSplit) {
      return "lies in chunk " + std::to_string(chunk) + " whose state is " + std::to_string(state) +
             ", not split";
    }
    SplitChunk& split = m_splits[chunk];
    if (!split.header_ok) return "";
    std::string trouble;
    for (uint64_t block = first; block < first + count; ++block) {
      uint64_t bit = block % kBlocksPerChunk;
      if (bit == 0) {
        if (trouble.empty()) trouble = "covers the header block of split chunk " + std::to_string(chunk);
        continue;
      }
      if (!split.bit(bit)) {
        if (trouble.empty())
          trouble = "block " + std::to_string(block) + " is free in its split chunk's bitmap";
        continue;
      }
      note_claim(block, m_claims.block_claimed(block), ino, what);
      m_claims.claim_block(block);
    }
    return trouble;
  }

  // Claims whole chunks [first_block/512, ...) for `ino`.
  std::string claim_chunks(uint64_t first_block, uint64_t count, uint64_t ino, const char* what) {
    std::string trouble;
    for (uint64_t chunk = first_block / kBlocksPerChunk; chunk < (first_block + count) / kBlocksPerChunk;
         ++chunk) {
      uint8_t state = m_states[chunk];
      if (state == kStateUnknown) continue;
      if (state != format::kChunkUsed) {
        if (trouble.empty()) {
          trouble = "covers chunk " + std::to_string(chunk) + " whose state is " + std::to_string(state) +
                    ", not used";
        }
        continue;
      }
      note_claim(chunk * kBlocksPerChunk, m_claims.chunk_owner(chunk) != 0, ino, what);
      m_claims.set_chunk_owner(chunk, ino);
    }
    return trouble;
  }

  // First walk: remembers (a bounded number of) places claimed twice.
  // Second walk (m_resolving): collects every owner of those places.
  void note_claim(uint64_t block, bool already, uint64_t ino, const char* what) {
    if (m_resolving) {
      auto it = m_double_claims.find(block);
      if (it != m_double_claims.end()) it->second.push_back({ino, what});
      return;
    }
    if (!already || m_double_claims.count(block)) return;
    if (m_double_claims.size() < kMaxProblemsPerCode) {
      m_double_claims.emplace(block, std::vector<Owner>{});
    } else {
      ++m_unnamed_double_claims;
    }
  }

  // Walks every inode's references again, now that it knows which places
  // are claimed twice, to name all their owners.
  void name_double_claims() {
    if (m_double_claims.empty()) return;
    m_resolving = true;
    for (uint64_t ino = 1; ino < m_slots.size(); ++ino) {
      if (m_slots[ino] == Slot::kInUse) check_extents(ino, inode_at(ino));
    }
    m_resolving = false;
    for (const auto& [block, owners] : m_double_claims) {
      std::string text;
      for (const Owner& owner : owners)
        text += (text.empty() ? "" : ", ") + describe(owner.ino) + " (" + owner.what + ")";
      problem(Code::kSpaceClaimedTwice, "block " + std::to_string(block) + " (chunk " +
                                            std::to_string(block / kBlocksPerChunk) + ") is claimed by " +
                                            text);
    }
    if (m_unnamed_double_claims != 0) {
      problem(Code::kSpaceClaimedTwice,
              "and " + std::to_string(m_unnamed_double_claims) + " more places claimed twice");
    }
  }

  // ---------------------------------------------------------------------
  // Pass 3, first half: which inode slots are in use.

  void scan_inodes() {
    if (!all_zero(inode_at(0))) problem(Code::kInodeInvalid, "inode slot 0 (never used) is not zero");
    for (uint64_t ino = 1; ino < m_slots.size(); ++ino) {
      if ((ino - 1) % kProgressStep == 0) progress(3, ino - 1, m_slots.size());
      const Inode inode = inode_at(ino);
      std::string what;
      if (format::inode_is_free(inode)) {
        if (inode.tag != 0 && !format::inode_valid(inode, ino, &what)) {
          problem(rejection_code(Code::kInodeTag, true, format::checksum_ok(inode)),
                  "free inode " + std::to_string(ino) + ": " + what);
        } else if (inode.tag != 0) {
          // The free form keeps tag, version, ino and generation only.
          Inode free_form{};
          free_form.tag = inode.tag;
          free_form.version = inode.version;
          free_form.ino = inode.ino;
          free_form.generation = inode.generation;
          free_form.checksum = inode.checksum;
          if (std::memcmp(&free_form, &inode, sizeof inode) != 0) {
            problem(Code::kInodeInvalid,
                    "free inode " + std::to_string(ino) + ": fields besides its generation are not zero");
          }
        }
        continue;
      }
      if (!format::inode_valid(inode, ino, &what)) {
        problem(rejection_code(Code::kInodeTag, inode.tag == format::kInodeTag, format::checksum_ok(inode)),
                describe_by_names(ino) + ": " + what);
        m_slots[ino] = Slot::kBad;
        m_tree_trusted = false;
        m_space_trusted = false;
        continue;
      }
      m_slots[ino] = Slot::kInUse;
      ++m_report.inodes_in_use;
      if (inode.flags & format::kInodeOrphan) ++m_report.orphan_inodes;
      if (inode.flags & format::kInodeTrimming) ++m_report.trimming_inodes;
    }
    Slot root = slot_of(format::kRootIno);
    if (root == Slot::kFree) {
      problem(Code::kRootMissing, "inode 1 (the root directory) is not in use");
    } else if (root == Slot::kInUse && !S_ISDIR(inode_at(format::kRootIno).mode)) {
      problem(Code::kRootNotDirectory,
              "inode 1 (the root directory) is a " + type_name(inode_at(format::kRootIno).mode));
    }
  }

  // ---------------------------------------------------------------------
  // Pass 4: directory entries and the tree they form.

  void check_tree() {
    const size_t slots = m_slots.size();
    m_entry_count.assign(slots, 0);
    m_subdirs.assign(slots, 0);
    m_dir_entry_parent.assign(slots, 0);
    m_reached.assign(slots, kNotReached);
    m_children.assign(slots, {});
    // (parent, hash of name, entry): sorted afterwards to find duplicates.
    std::vector<std::tuple<uint64_t, size_t, size_t>> names;
    progress(4, 0, m_sb.dirent_high_water);
    for (uint64_t slot = 0; slot < m_sb.dirent_high_water; ++slot) {
      if (slot % kProgressStep == 0 && slot != 0) progress(4, slot, m_sb.dirent_high_water);
      // In place (every slot is read at each check), unless the interrupted
      // transaction changed it: then as the rollback will leave it.
      const uint64_t offset = m_layout.dirent_table_offset + slot * sizeof(Dirent);
      Dirent rolled;
      const Dirent* in_place = reinterpret_cast<const Dirent*>(m_region.base() + offset);
      if (rolled_back(offset, sizeof(Dirent))) {
        rolled = read<Dirent>(offset);
        in_place = &rolled;
      }
      const Dirent& dirent = *in_place;
      if (format::dirent_is_free(dirent)) continue;
      std::string what;
      if (!format::dirent_valid(dirent, &what)) {
        problem(
            rejection_code(Code::kDirentTag, dirent.tag == format::kDirentTag, format::checksum_ok(dirent)),
            "directory entry " + std::to_string(slot) + ": " + what);
        m_tree_trusted = false;
        continue;
      }
      ++m_report.dirents_in_use;
      std::string name(format::dirent_name(dirent));
      auto where = [&] {
        return "directory entry " + std::to_string(slot) + " (\"" + name + "\" in inode " +
               std::to_string(dirent.parent_ino) + ")";
      };
      if (dirent.reserved0 != 0) problem(Code::kDirentInvalid, where() + ": reserved field is not zero");
      Slot parent = slot_of(dirent.parent_ino), child = slot_of(dirent.ino);
      if (parent == Slot::kBad || child == Slot::kBad) continue;  // reported with the inode
      if (parent == Slot::kFree) {
        problem(Code::kDirentParent,
                where() + ": its directory, inode " + std::to_string(dirent.parent_ino) + ", is not in use");
        m_tree_trusted = false;
        continue;
      }
      const Inode parent_inode = inode_at(dirent.parent_ino);
      if (!S_ISDIR(parent_inode.mode)) {
        problem(Code::kDirentParent, where() + ": inode " + std::to_string(dirent.parent_ino) + " is a " +
                                         type_name(parent_inode.mode) + ", not a directory");
        m_tree_trusted = false;
        continue;
      }
      if (child == Slot::kFree) {
        problem(Code::kDirentChild,
                where() + ": names inode " + std::to_string(dirent.ino) + ", which is not in use");
        m_tree_trusted = false;
        continue;
      }
      const Inode child_inode = inode_at(dirent.ino);
      if (dirent.file_type != IFTODT(child_inode.mode)) {
        problem(Code::kDirentType, where() + ": file type " + std::to_string(dirent.file_type) +
                                       " but inode " + std::to_string(dirent.ino) + " is a " +
                                       type_name(child_inode.mode));
      }
      names.emplace_back(dirent.parent_ino, std::hash<std::string>{}(name), m_entries.size());
      m_entry_count[dirent.ino] += 1;
      if (S_ISDIR(child_inode.mode)) {
        m_subdirs[dirent.parent_ino] += 1;
        if (m_dir_entry_parent[dirent.ino] == 0) m_dir_entry_parent[dirent.ino] = dirent.parent_ino;
      }
      m_children[dirent.parent_ino].push_back(m_entries.size());
      m_entries.push_back({slot, dirent.parent_ino, dirent.ino, std::move(name)});
    }

    // Names unique per directory: equal (parent, hash) neighbours after a
    // sort, compared by name; the later slot is reported.
    std::sort(names.begin(), names.end());
    for (size_t i = 1; i < names.size(); ++i) {
      const auto& [parent, hash, index] = names[i];
      for (size_t j = i; j-- > 0 && std::get<0>(names[j]) == parent && std::get<1>(names[j]) == hash;) {
        const Entry& entry = m_entries[index];
        if (m_entries[std::get<2>(names[j])].name != entry.name) continue;
        problem(Code::kDirentDuplicate, "directory entry " + std::to_string(entry.slot) + " (\"" +
                                            entry.name + "\" in inode " + std::to_string(entry.parent) +
                                            "): the directory has another entry of that name");
        break;
      }
    }

    // Paths, breadth first from the root: each directory is entered once,
    // so a cycle or a second link to a directory cannot loop.
    if (slot_of(format::kRootIno) != Slot::kInUse) return;
    m_reached[format::kRootIno] = kRoot;
    std::deque<uint64_t> queue{format::kRootIno};
    while (!queue.empty()) {
      uint64_t dir = queue.front();
      queue.pop_front();
      for (size_t index : m_children[dir]) {
        const Entry& entry = m_entries[index];
        if (reached(entry.child)) continue;
        m_reached[entry.child] = index;
        if (S_ISDIR(inode_at(entry.child).mode)) queue.push_back(entry.child);
      }
    }
  }

  // True when following `dir`'s entry upwards comes back to `dir`.
  bool on_cycle(uint64_t dir) const {
    uint64_t at = dir;
    for (size_t steps = 0; steps <= m_dir_entry_parent.size(); ++steps) {
      if (m_dir_entry_parent[at] == 0) return false;
      at = m_dir_entry_parent[at];
      if (at == dir) return true;
    }
    return false;
  }

  void check_links(uint64_t ino, const Inode& inode) {
    const bool orphan = inode.flags & format::kInodeOrphan;
    const uint64_t entries = m_entry_count[ino];
    const Who who{this, ino};
    if (S_ISDIR(inode.mode)) {
      const uint64_t subdirs = m_subdirs[ino];
      if (ino == format::kRootIno) {
        if (entries != 0)
          problem(Code::kDirEntries,
                  who + ": the root directory has " + std::to_string(entries) + " entries naming it");
        if (inode.parent != format::kRootIno) {
          problem(Code::kDirParent,
                  who + ": the root's parent field is " + std::to_string(inode.parent) + ", not 1");
        }
      } else if (orphan) {
        if (entries != 0)
          problem(Code::kDirEntries,
                  who + ": orphan directory still has " + std::to_string(entries) + " entries");
      } else if (entries != 1) {
        problem(Code::kDirEntries,
                who + ": directory has " + std::to_string(entries) + " entries naming it, not 1");
      } else if (inode.parent != m_dir_entry_parent[ino]) {
        problem(Code::kDirParent, who + ": parent field is " + std::to_string(inode.parent) +
                                      " but its entry lies in inode " +
                                      std::to_string(m_dir_entry_parent[ino]));
      }
      uint64_t wanted = orphan ? 0 : 2 + subdirs;
      if (inode.nlink != wanted) {
        problem(Code::kLinkCount,
                who + ": directory nlink is " + std::to_string(inode.nlink) + ", expected " +
                    std::to_string(wanted) +
                    (orphan ? " (orphan)" : " (2 + " + std::to_string(subdirs) + " subdirectories)"));
      }
    } else if (orphan) {
      if (inode.nlink != 0 || entries != 0) {
        problem(Code::kLinkCount, who + ": orphan has nlink " + std::to_string(inode.nlink) + " and " +
                                      std::to_string(entries) + " entries; both must be 0");
      }
    } else if (inode.nlink == 0) {
      problem(Code::kLinkCount, who + ": nlink is 0 but the orphan flag is not set");
    } else if (inode.nlink != entries) {
      problem(Code::kLinkCount, who + ": nlink is " + std::to_string(inode.nlink) + " but " +
                                    std::to_string(entries) + " entries name it");
    }
    if (!orphan && !reached(ino)) {
      if (S_ISDIR(inode.mode) && on_cycle(ino)) {
        if (!m_cycle_reported.count(ino)) {
          // Report the cycle once, not once per member.
          for (uint64_t at = ino; m_cycle_reported.insert(at).second;) at = m_dir_entry_parent[at];
          problem(Code::kDirCycle, who + ": directory lies on a cycle of directories cut off from the root");
        }
      } else {
        problem(Code::kUnreachable,
                who + ": " + type_name(inode.mode) + " is in use but not reachable from the root");
      }
    }
  }

  // ---------------------------------------------------------------------
  // Pass 3, second half: each inode in use, its links, extents and xattrs.

  void check_files() {
    for (uint64_t ino = 1; ino < m_slots.size(); ++ino) {
      if (m_slots[ino] != Slot::kInUse) continue;
      const Inode inode = inode_at(ino);
      Inode fields = inode;  // check's fix_problem changes nothing
      walk_inode_fields(
          *this, [&] { return describe(ino); }, fields);
      if (m_tree_trusted) check_links(ino, inode);
      check_extents(ino, inode);
    }
  }

  void check_extents(uint64_t ino, const Inode& inode) {
    const Who who{this, ino};
    std::vector<Extent> extents;
    uint32_t inline_count = std::min(inode.extent_count, format::kInlineExtents);
    extents.insert(extents.end(), inode.extents, inode.extents + inline_count);

    // The overflow chain: each block once (a cycle ends the walk), each in
    // the data area and valid before it is read further.
    bool readable = true;
    uint64_t chain_blocks = 0;
    std::unordered_set<uint64_t> seen;
    for (uint64_t next = inode.extent_block; next != 0;) {
      std::string where = who + ": extent block at " + std::to_string(next);
      if (!seen.insert(next).second) {
        problem(Code::kExtentChain, where + ": the chain comes back to it (cycle)");
        readable = false;
        break;
      }
      if (next % kBlockSize != 0 || !in_data_area(next / kBlockSize, 1)) {
        problem(Code::kExtentChain, where + ": lies outside the data area");
        readable = false;
        break;
      }
      const auto block = read<ExtentBlock>(next);
      std::string what;
      if (!format::extent_block_valid(block, &what)) {
        problem(rejection_code(Code::kExtentBlockTag, block.tag == format::kExtentBlockTag,
                               format::checksum_ok(block)),
                where + ": " + what);
        readable = false;
        break;
      }
      if (block.owner_ino != ino) {
        problem(Code::kExtentBlockOwner, where + ": owned by inode " + std::to_string(block.owner_ino));
        readable = false;
        break;
      }
      ++chain_blocks;
      if (std::string trouble = claim_blocks(next / kBlockSize, 1, ino, "extent block"); !trouble.empty()) {
        problem(Code::kExtentSpace, where + ": " + trouble);
      }
      walk_extent_block_fields(*this, where, block);
      if (block.next != 0 && block.count != format::kExtentsPerBlock) {
        problem(Code::kExtentChain,
                where + ": holds " + std::to_string(block.count) +
                    " extents but is not the last block (the writer fills every block but the last)");
      }
      extents.insert(extents.end(), block.extents, block.extents + block.count);
      if (extents.size() > inode.extent_count) {
        problem(Code::kExtentCount, who + ": the extent chain holds more than extent_count (" +
                                        std::to_string(inode.extent_count) + ") extents");
        readable = false;
        break;
      }
      next = block.next;
    }
    if (readable && extents.size() != inode.extent_count) {
      problem(Code::kExtentCount, who + ": extent_count is " + std::to_string(inode.extent_count) + " but " +
                                      std::to_string(extents.size()) + " extents were found");
      readable = false;
    }
    if (readable && inode.extent_count <= format::kInlineExtents && inode.extent_block != 0) {
      problem(Code::kExtentChain, who + ": has an extent block but its extents fit inline");
    }
    if (!readable) m_space_trusted = false;

    uint64_t data_blocks = 0;
    uint64_t previous_end = 0;
    for (size_t i = 0; i < extents.size(); ++i) {
      const Extent& extent = extents[i];
      std::string where = who + ": " + extent_text(extent);
      if (extent.block_count == 0) {
        problem(Code::kExtentInvalid, where + ": empty");
        continue;
      }
      if (extent.file_block > format::kMaxFileBytes / kBlockSize ||
          extent.file_block + extent.block_count > format::kMaxFileBytes / kBlockSize) {
        problem(Code::kExtentInvalid, where + ": lies past the largest file size");
        continue;
      }
      if (i > 0 && extent.file_block < previous_end) {
        problem(Code::kExtentOrder,
                where + ": starts before the previous extent ends (unsorted or overlapping)");
      }
      previous_end = std::max(previous_end, extent.file_block + extent.block_count);
      if (!in_data_area(extent.region_block, extent.block_count)) {
        problem(Code::kExtentRange, where + ": lies outside the data area");
        continue;
      }
      data_blocks += extent.block_count;
      bool large = extent.region_block % kBlocksPerChunk == 0 && extent.block_count % kBlocksPerChunk == 0 &&
                   extent.file_block % kBlocksPerChunk == 0;
      std::string trouble = large ? claim_chunks(extent.region_block, extent.block_count, ino, "data")
                                  : claim_blocks(extent.region_block, extent.block_count, ino, "data");
      if (!trouble.empty()) problem(Code::kExtentSpace, where + ": " + trouble);
    }

    uint64_t xattr_blocks = check_xattrs(ino, inode) ? 1 : 0;
    if (!m_resolving) m_report.data_blocks_in_use += data_blocks + chain_blocks + xattr_blocks;
    if (readable && inode.allocated_blocks != data_blocks + chain_blocks + (inode.xattr_block != 0 ? 1 : 0)) {
      problem(Code::kInodeBlocks, who + ": allocated_blocks is " + std::to_string(inode.allocated_blocks) +
                                      " but it owns " + std::to_string(data_blocks) + " data, " +
                                      std::to_string(chain_blocks) + " extent and " +
                                      std::to_string(inode.xattr_block != 0 ? 1 : 0) + " xattr blocks");
    }

    if (S_ISLNK(inode.mode)) {
      if (inode.size == 0 || inode.size > format::kSymlinkMax) {
        problem(Code::kSymlinkInvalid,
                who + ": symlink size " + std::to_string(inode.size) + " is not 1..4095");
      }
      if (extents.size() != 1 || extents[0].file_block != 0 || extents[0].block_count != 1) {
        problem(Code::kSymlinkInvalid, who + ": symlink has " + std::to_string(extents.size()) +
                                           " extents; it needs one of one block, at file block 0");
      }
    } else if (!S_ISREG(inode.mode) && (inode.extent_count != 0 || inode.extent_block != 0)) {
      problem(Code::kInodeExtents, who + ": a " + type_name(inode.mode) + " owns extents");
    }
  }

  // Checks and claims the xattr block; true when it was claimed.
  bool check_xattrs(uint64_t ino, const Inode& inode) {
    if (inode.xattr_block == 0) return false;
    const std::string where = describe(ino) + ": xattr block at " + std::to_string(inode.xattr_block);
    if (!in_data_area(inode.xattr_block / kBlockSize, 1)) {
      problem(Code::kXattrBlockRange, where + ": lies outside the data area");
      m_space_trusted = false;
      return false;
    }
    const auto block = read<XattrBlock>(inode.xattr_block);
    std::string what;
    if (!format::xattr_block_valid(block, &what)) {
      problem(rejection_code(Code::kXattrBlockTag, block.tag == format::kXattrBlockTag,
                             format::checksum_ok(block)),
              where + ": " + what);
      m_space_trusted = false;
      return false;
    }
    if (block.owner_ino != ino) {
      problem(Code::kXattrBlockOwner, where + ": owned by inode " + std::to_string(block.owner_ino));
      m_space_trusted = false;
      return false;
    }
    if (std::string trouble = claim_blocks(inode.xattr_block / kBlockSize, 1, ino, "xattr block");
        !trouble.empty()) {
      problem(Code::kXattrBlockSpace, where + ": " + trouble);
    }
    if (block.entry_count == 0)
      problem(Code::kXattrBlockInvalid, where + ": holds no attribute (it should have been freed)");
    XattrBlock fields = block;  // check's fix_problem changes nothing
    walk_xattr_block_fields(*this, where, fields);
    // The validator proved every entry fits; names must also be unique.
    std::unordered_set<std::string> names;
    for_each_xattr_entry(block, [&](uint16_t i, const format::XattrEntryHeader& header,
                                    std::string_view name) {
      if (header.reserved0 != 0)
        problem(Code::kXattrBlockInvalid,
                where + ": entry " + std::to_string(i) + " has a nonzero reserved byte");
      if (!names.emplace(name).second)
        problem(Code::kXattrBlockInvalid, where + ": attribute \"" + std::string(name) + "\" appears twice");
    });
    return true;
  }

  // ---------------------------------------------------------------------
  // Pass 5, second half: every block in use has exactly one owner.

  void check_space() {
    const uint64_t first_data = m_layout.metadata_chunks, end_data = m_layout.chunk_count;
    for (uint64_t chunk = first_data; chunk < end_data; ++chunk) {
      if ((chunk - first_data) % kProgressStep == 0) progress(5, chunk - first_data, end_data - first_data);
      if (m_layout.meta_chunk(chunk)) continue;  // the backup chunk
      uint8_t state = m_states[chunk];
      if (state == format::kChunkUsed && m_claims.chunk_owner(chunk) == 0 && m_space_trusted) {
        problem(Code::kSpaceLeaked,
                "chunk " + std::to_string(chunk) + " is marked used but no extent covers it");
      } else if (state == format::kChunkSplit && m_space_trusted && m_splits[chunk].header_ok) {
        const SplitChunk& split = m_splits[chunk];
        uint64_t leaked = 0, first_leaked = 0;
        for (uint64_t bit = 1; bit < kBlocksPerChunk; ++bit) {
          if (split.bit(bit) && !m_claims.block_claimed(chunk * kBlocksPerChunk + bit)) {
            if (leaked++ == 0) first_leaked = chunk * kBlocksPerChunk + bit;
          }
        }
        if (leaked != 0) {
          problem(Code::kSpaceLeaked, "split chunk " + std::to_string(chunk) + ": " + std::to_string(leaked) +
                                          " blocks are marked in use but nothing owns them (first: block " +
                                          std::to_string(first_leaked) + ")");
        }
      } else if (state == format::kChunkFreeZero && m_options.verify_known_zero) {
        walk_known_zero_chunk(*this, chunk, m_region.base() + chunk * kChunkSize);
      }
    }
  }

  // ---------------------------------------------------------------------
  // Pass 6: holds.

  void check_holds() {
    progress(6, 0, m_layout.hold_count);
    walk_holds(*this, *this, [&](uint64_t ino) { return slot_of(ino) != Slot::kFree; });
  }

  // The shared walks' one way to report (passes.h): check only reports.
  bool fix_problem(Code code, const std::string& message, const std::string& /*fix*/,
                   Preen /*preen*/) override {
    problem(code, message);
    return false;
  }
  void stage(uint64_t /*offset*/, const void* /*bytes*/, size_t /*length*/) override {
    std::abort();  // broken invariant: a walk stages only what fix_problem allowed
  }

  const CheckOptions m_options;
  CheckReport m_report;
  std::map<Code, size_t> m_code_counts;
  bool m_stop = false;

  std::vector<Slot> m_slots;  // inode slots [0, inode_high_water)
  // Derived checks (link counts, leaks) would only echo an unreadable
  // structure's damage as false leads; they run only when nothing is.
  bool m_tree_trusted = true;
  bool m_space_trusted = true;

  std::vector<uint8_t> m_states;  // chunk -> ChunkState or kStateUnknown
  bool m_resolving = false;       // the second walk of name_double_claims
  uint64_t m_unnamed_double_claims = 0;
  std::map<uint64_t, std::vector<Owner>> m_double_claims;  // first block or chunk's block -> owners
  std::unordered_map<uint64_t, SplitChunk> m_splits;

  std::vector<Entry> m_entries;
  // Indexed by inode number, [0, inode_high_water): every inode an entry
  // links is in use, so below the mark.
  std::vector<std::vector<size_t>> m_children;  // directory -> indexes into m_entries
  std::vector<uint32_t> m_entry_count;          // inode -> entries naming it
  std::vector<uint32_t> m_subdirs;              // directory -> entries of directories in it
  std::vector<uint64_t> m_dir_entry_parent;     // directory -> directory of its (first) entry, 0: none
  std::vector<size_t> m_reached;                // inode -> entry the walk came by, kRoot, or kNotReached
  std::unordered_set<uint64_t> m_cycle_reported;
};

}  // namespace

int check_pass_of(const std::string& code) {
  auto found = code_from_name(code);
  return found ? problem_info(*found).pass : 3;
}

const char* check_pass_name(int pass) {
  switch (pass) {
    case 1: return "Checking superblock and backup";
    case 2: return "Checking the journal";
    case 3: return "Checking inodes, extents and xattr blocks";
    case 4: return "Checking directory tree and link counts";
    case 5: return "Checking allocation map against extents";
    case 6: return "Checking holds and orphans";
    case 7: return "Checking known-zero chunks";
    default: return "?";
  }
}

Result<CheckReport> check_region(const region::Region& region, const CheckOptions& options,
                                 const Progress& progress) {
  Checker checker(region, options, progress);
  return run_cancellable([&] { return checker.run(); });
}

}  // namespace pkfs::fsck
