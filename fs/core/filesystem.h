// fs/core/filesystem.h: the pkfs filesystem, without FUSE.
//
// Owns: inodes, directories, extents, xattrs and their DRAM indexes (rebuilt
// at open from the region); every metadata operation as one journal
// transaction (or a chain of them whose every prefix is consistent, for
// frees too large for one; see FORMAT.md, "Crash consistency").
// Knows no FUSE type: fs/fuse adapts this API. The types of holds are in
// holds.h, those of freeze and verify in freeze.h.
//
// Locking: one reader-writer lock, m_mutex. Operations that change the
// region or DRAM indexes hold it exclusively; lookup, getattr, read,
// readdir, readlink, getxattr, listxattr and statfs hold it shared. No other
// lock exists in core; the journal and allocator run under m_mutex.
// Inode numbers are stable for the life of the region (they become FUSE
// node ids); a reused slot gets a new generation.
#pragma once

#include <sys/stat.h>

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fs/alloc/allocator.h"
#include "fs/base/result.h"
#include "fs/core/freeze.h"
#include "fs/core/holds.h"
#include "fs/core/ino.h"
#include "fs/format/format.h"
#include "fs/journal/journal.h"
#include "fs/region/region.h"

namespace pkfs::core {

struct Attr {
  Ino ino = 0;
  uint64_t generation = 0;
  uint32_t mode = 0;
  uint32_t nlink = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  uint64_t blocks = 0;  // 512-byte units allocated
  uint64_t rdev = 0;
  timespec atime{}, mtime{}, ctime{}, btime{};
};

// Who asks: new files take the caller's uid and gid (or the directory's gid
// when it is set-group-ID); `umask` is applied to the mode of new files.
struct Caller {
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t umask = 0;
};

// A timestamp to set: a value, or "now".
struct TimeSet {
  bool now = false;
  timespec value{};
};

struct SetAttr {
  std::optional<uint32_t> mode;  // permission bits only (07777)
  std::optional<uint32_t> uid;
  std::optional<uint32_t> gid;
  std::optional<uint64_t> size;
  std::optional<TimeSet> atime;
  std::optional<TimeSet> mtime;
  std::optional<TimeSet> ctime;
};

struct DirEntry {
  std::string_view name;
  Ino ino;
  uint32_t mode;         // file type bits (S_IFMT) of the entry
  uint64_t next_cookie;  // pass to readdir to continue after this entry
};

struct StatFs {
  uint64_t block_size = format::kBlockSize;
  uint64_t blocks = 0;
  uint64_t free_blocks = 0;
  uint64_t files = 0;
  uint64_t free_files = 0;
  uint64_t name_max = format::kNameMax;
};

// How a daemon that takes over a live FUSE connection (fs/takeover) finds
// the kernel's references: the kernel reaches inodes by number (lookup
// counts, open handles, working directories), and an unlinked inode it
// still reaches must not be freed, nor its number reused.
enum class Takeover {
  kNone,     // an ordinary mount: the kernel references nothing yet
  kExact,    // planned hand-over: OpenOptions::inherited is every reference
  kUnknown,  // the previous daemon died: every inode in use at open counts
             // as referenced (pinned) until the next ordinary mount
};

// What the kernel holds of one inode, as a daemon hands it to its successor.
struct InheritedReferences {
  Ino ino = 0;
  uint64_t generation = 0;
  uint32_t open_count = 0;
  uint64_t references = 0;  // lookup counts
  bool pinned = false;      // references unknown (carried from a kUnknown takeover)
};

// Free space by zero state, and the background zeroer's progress
// (zeroing.cpp; `pkfsctl info` prints it).
class BackgroundZeroer;  // zeroing.cpp

struct ZeroingStatus {
  uint64_t free_zero_bytes = 0;   // free whole chunks known zero
  uint64_t free_dirty_bytes = 0;  // free whole chunks zeroed only when handed out
  bool background = false;        // the zeroer thread runs
  uint64_t zeroed_bytes = 0;      // recorded zero by the zeroer since it started
  uint64_t bytes_per_second = 0;  // its rate over its last busy second, 0 if unknown
};

// The pages a large-page layout keeps whole for guest RAM (FORMAT.md,
// "Large-page layout"), and how many of them no file uses yet. All zero on
// a chunk layout.
struct WholePages {
  uint64_t page_bytes = 0;
  uint64_t total = 0;
  uint64_t free = 0;
};

struct OpenOptions {
  bool read_only = false;
  Takeover takeover = Takeover::kNone;
  // With kExact: the references the previous daemon left (export_references).
  // An entry whose generation no longer matches is ignored.
  std::vector<InheritedReferences> inherited;
  // Open a region whose superblock records an error (fsck uses this).
  bool ignore_error_state = false;
  // One line per notable event: journal recovery, orphans reclaimed, stale
  // holds released.
  std::function<void(const std::string&)> log;
  // Whether the process that took a hold still holds it (see FORMAT.md,
  // "Holds"). Empty: holder_alive() below, the /proc check. Tests inject.
  std::function<bool(const format::Hold&)> holder_alive;
};

// What open() found and did.
struct OpenReport {
  bool was_clean = false;
  uint64_t recovered_sequence = 0;  // 0: no transaction was rolled back
  uint64_t recovered_records = 0;
  uint64_t orphans_reclaimed = 0;
  uint64_t stale_holds_released = 0;  // read-write opens
  uint64_t holds_kept = 0;            // live holds left in the table
  uint64_t inodes_in_use = 0;
  uint64_t dirents_in_use = 0;
};

// mkfs options: see mkfs.pkfs --help for units and bounds.
struct FormatOptions {
  format::LayoutOptions layout;
  std::string label;
  std::optional<std::array<uint8_t, 16>> uuid;  // random when absent
  bool data_known_zero = false;                 // every data byte is zero (fresh backing)
  uint32_t root_mode = 0755;
  uint32_t root_uid = 0;
  uint32_t root_gid = 0;
};

// Writes a new, empty filesystem on `region`. REQUIRES: the caller holds the
// region exclusively. Returns the layout written.
Result<format::Layout> format_region(region::Region& region, const FormatOptions& options);

// Reads the superblock of a region: the primary, or with `backup` the copy
// in the last block of the backing (where it is unless the backing grew
// since mkfs; the fallback when the primary is unreadable). Errors as
// format::verify_superblock.
Result<format::Superblock> read_superblock(const region::Region& region, bool backup = false);

class Filesystem {
 public:
  // Takes the region, recovers the journal, rebuilds every DRAM index and,
  // read-write, reclaims orphans and marks the region in use (not clean).
  // Errors: EUCLEAN naming the damaged structure and fsck.pkfs; ENODATA for
  // a region without pkfs; EPROTONOSUPPORT for a newer format; EROFS when a
  // read-only open would need recovery.
  static Result<std::unique_ptr<Filesystem>> open(std::unique_ptr<region::Region> region,
                                                  const OpenOptions& options = {});
  ~Filesystem();

  // Marks the region clean (read-write opens). Further calls fail with EIO.
  Result<void> close();

  const OpenReport& open_report() const { return m_report; }
  format::Superblock superblock() const;
  region::Region& region() const { return *m_region; }

  // Namespace. Names are 1-255 bytes without '/' or NUL, never . or ..
  Result<Attr> lookup(Ino parent, std::string_view name);
  Result<Attr> getattr(Ino ino);
  Result<Attr> setattr(Ino ino, const SetAttr& changes, const Caller& caller);
  // Regular files, FIFOs, sockets and device nodes: `mode` holds the type.
  Result<Attr> mknod(Ino parent, std::string_view name, uint32_t mode, uint64_t rdev, const Caller& caller);
  Result<Attr> mkdir(Ino parent, std::string_view name, uint32_t mode, const Caller& caller);
  Result<Attr> symlink(Ino parent, std::string_view name, std::string_view target, const Caller& caller);
  Result<std::string> readlink(Ino ino);
  Result<Attr> link(Ino ino, Ino new_parent, std::string_view new_name);
  Result<void> unlink(Ino parent, std::string_view name);
  Result<void> rmdir(Ino parent, std::string_view name);
  // `flags`: 0, RENAME_NOREPLACE or RENAME_EXCHANGE.
  Result<void> rename(Ino parent, std::string_view name, Ino new_parent, std::string_view new_name,
                      unsigned flags);
  // Lists from `cookie` (0 = start, with "." and ".."); `emit` returns false
  // when it wants no more.
  Result<void> readdir(Ino dir, uint64_t cookie, const std::function<bool(const DirEntry&)>& emit);

  // Open files: an unlinked file lives until its last release.
  Result<void> open_file(Ino ino);
  Result<void> release_file(Ino ino);

  // References the kernel holds by inode number (FUSE lookup counts): an
  // unlinked inode is not freed, and its number not reused, while any
  // remain, since an O_PATH descriptor or a working directory reaches it
  // by number alone. DRAM only: references do not survive a restart, and
  // mount reclaims what is unlinked.
  void add_references(Ino ino, uint64_t count);
  void drop_references(Ino ino, uint64_t count);
  // Every inode the kernel may hold (open handles, lookup counts, pinned),
  // for a successor daemon (OpenOptions::inherited). Callers stop serving
  // requests first, so that the counts cannot move underneath.
  std::vector<InheritedReferences> export_references() const;

  // Data.
  Result<size_t> read(Ino ino, uint64_t offset, std::span<std::byte> out);
  Result<size_t> write(Ino ino, uint64_t offset, std::span<const std::byte> data);
  // `mode`: 0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE,
  // FALLOC_FL_ZERO_RANGE (optionally with KEEP_SIZE).
  Result<void> fallocate(Ino ino, int mode, uint64_t offset, uint64_t length);
  Result<std::vector<format::Extent>> extents(Ino ino);

  // Extended attributes. `flags`: 0, XATTR_CREATE or XATTR_REPLACE.
  Result<std::string> getxattr(Ino ino, std::string_view name);
  Result<std::vector<std::string>> listxattr(Ino ino);
  Result<void> setxattr(Ino ino, std::string_view name, std::string_view value, int flags);
  Result<void> removexattr(Ino ino, std::string_view name);

  Result<StatFs> statfs();

  // Zeroing of free space (zeroing.cpp). Space is zeroed before a file gets
  // it; space recorded known zero is handed out without that cost, so free
  // space zeroed ahead of time makes a VM's start on reused space as fast
  // as on fresh space. zero_free_space zeroes up to `max_bytes` of free,
  // dirty chunks (see alloc::Allocator::claim_dirty) holding the lock only
  // to claim them and to record them zero; an allocation that needs them
  // meanwhile waits for one chunk's stores at most, and they stay dirty.
  // Returns the bytes recorded known zero; nullopt when no free chunk is
  // dirty. Errors: EROFS, EIO (closed), EUCLEAN.
  // `around_stores`, when given, is called with true before the stores
  // (the lock is not held then) and false after them: the background
  // zeroer drops to idle CPU priority for the stores only, so it never
  // holds the lock at a priority that other work can starve.
  Result<std::optional<uint64_t>> zero_free_space(uint64_t max_bytes,
                                                  const std::function<void(bool)>& around_stores = {});
  // Starts a thread, at the lowest CPU priority, that calls zero_free_space
  // whenever free space is dirty. Stopped by close(), freeze() and the
  // destructor. Read-only opens never start it.
  void start_background_zeroing();
  void stop_background_zeroing();
  ZeroingStatus zeroing_status();
  // From the allocator's free runs (what map and fallocate go by), under
  // the lock: never a half-written chunk map.
  WholePages whole_pages();

  // Holds (holds.cpp; FORMAT.md, "Holds"). A held regular file keeps its
  // extents where they are: unlink defers freeing until the last hold goes;
  // shrinking truncate and punch-hole return EBUSY. Holds are on the region
  // and survive restarts.
  // acquire_hold first makes the file mappable with pages of
  // mapping_page_size(): every page of [0, round_up(size, page)) allocated
  // and, for pages over 4 KiB, every extent there page aligned (a file
  // packed in 4 KiB blocks is moved into whole chunks first).
  // One hold per process and file, and at most `limits` holds per process
  // and per uid: checked, with the table, under the exclusive lock before
  // anything is allocated or moved, so concurrent callers cannot pass a
  // limit together.
  // acquire_hold errors: EEXIST (this process, same pid and start time,
  // already holds this inode; the message names its hold id), EDQUOT (the
  // process or its uid has its limit of holds; the message names the
  // limit), ENOSPC (hold table full, or no space to make the file
  // mappable), EINVAL (not a regular file, or empty), ENOENT (no such
  // inode), EROFS. release_hold errors: ENOENT (no such hold), EROFS.
  Result<uint64_t> acquire_hold(Ino ino, const Holder& holder, const HoldLimits& limits = {});
  Result<void> release_hold(uint64_t id);
  Result<std::vector<HoldInfo>> list_holds();
  // Releases every hold whose holder is gone (OpenOptions::holder_alive, or
  // a generation that no longer matches the inode), reclaiming unlinked
  // files no one holds any more; returns how many. Errors: EROFS.
  Result<uint64_t> release_stale_holds();
  // The page size a direct mapping of this region uses (the region's page
  // size: 4 KiB on tmpfs and memory, 2 MiB or 1 GiB on hugetlbfs/device-dax).
  uint64_t mapping_page_size() const;

  // Freeze and verify (freeze.cpp; the types are in freeze.h).
  // Checksums that prove a region came through a kexec intact. freeze()
  // records, with each chosen regular file, XXH3 checksums of its content
  // (whole, or sampled pages of a large file: see FreezeOptions) in the
  // hidden attribute kFreezeXattr (no public xattr call sees or sets it;
  // writing it changes no ctime), then marks the region clean; verify()
  // recomputes and compares. Both hash in parallel.
  // freeze() ends like close(): the region is marked clean and flushed
  // (msync), and the filesystem accepts nothing further.
  // REQUIRES (freeze): a read-write open that holds the region exclusively.
  // Errors: EROFS, EINVAL (options), ENOENT (a path), EIO (closed).
  Result<FreezeReport> freeze(const FreezeOptions& options);
  // Read-only; any open will do. Files whose size or mtime differ from the
  // record are kChanged and are not hashed. Costs what the records ask for:
  // O(metadata + small files + samples) unless options.full.
  Result<VerifyReport> verify(const VerifyOptions& options);

 private:
  struct Directory;
  struct Node;
  explicit Filesystem(std::unique_ptr<region::Region> region);

  // open() steps.
  Result<void> load(const OpenOptions& options);
  Result<void> scan_inodes();
  Result<void> scan_dirents();
  Result<void> scan_holds();
  // Counts and pins of a takeover (OpenOptions::takeover).
  void inherit_references(const OpenOptions& options);
  // Releases stale holds (REQUIRES: m_mutex exclusive, read-write); with
  // `reclaim_orphans`, frees unlinked files no one references any more.
  Result<uint64_t> release_stale_locked(bool reclaim_orphans);
  // Clears hold slot `slot` in `txn` and its DRAM state.
  Result<void> clear_hold(journal::Transaction& txn, uint64_t slot);
  uint64_t hold_offset(uint64_t slot) const;
  Result<void> stamp_mount();

  // Region access. REQUIRES: ino < inode_count (checked by node()).
  format::Inode& inode_ref(Ino ino) const;
  // A private copy of the inode (see copy_from_region in internal.h): what a
  // caller that validates a field and then uses it reads.
  format::Inode inode_copy(Ino ino) const;
  uint64_t inode_offset(Ino ino) const;
  format::Dirent& dirent_ref(uint64_t slot) const;
  uint64_t dirent_offset(uint64_t slot) const;
  Result<void> put_inode(journal::Transaction& txn, format::Inode inode);
  static Result<void> put_superblock(journal::Transaction& txn, const format::Superblock& sb);

  // DRAM lookups; errors ENOENT / ESTALE / ENOTDIR.
  Result<Node*> node(Ino ino);
  Result<Directory*> directory(Ino ino);
  Result<uint64_t> find_entry(Ino parent, std::string_view name);
  // The inode entry `slot` of `parent` names, from the DRAM index: the
  // region's dirent may have changed since mount. Errors: EUCLEAN.
  Result<Ino> entry_child(Ino parent, uint64_t slot);

  // Building blocks of the namespace operations (REQUIRE: m_mutex exclusive).
  Result<Ino> allocate_inode(journal::Transaction& txn, uint32_t mode, const Caller& caller, Ino parent);
  Result<uint64_t> add_entry(journal::Transaction& txn, Ino parent, std::string_view name, Ino child,
                             uint32_t mode);
  Result<void> remove_entry(journal::Transaction& txn, Ino parent, uint64_t slot);
  Result<void> touch_dir(journal::Transaction& txn, Ino dir, int64_t nlink_delta);
  Result<Attr> make_node(Ino parent, std::string_view name, uint32_t mode, uint64_t rdev,
                         const Caller& caller, std::string_view symlink_target);
  // Drops one link of `ino`; frees it (after the transaction) when no link
  // and no open handle is left, otherwise marks it orphan.
  Result<void> drop_link(journal::Transaction& txn, Ino ino, bool is_dir, std::vector<Ino>& to_reclaim);
  // Frees every extent, the xattr block and the slot of an unlinked inode,
  // in as many transactions as it takes.
  Result<void> reclaim(Ino ino);
  Result<void> finish_trim(Ino ino);

  // Extents (data.cpp).
  Result<std::vector<format::Extent>> load_extents(const format::Inode& inode) const;
  Result<std::vector<uint64_t>> extent_chain(const format::Inode& inode) const;
  Result<void> store_extents(journal::Transaction& txn, format::Inode& inode,
                             const std::vector<format::Extent>& extents);
  Result<void> allocate_range(journal::Transaction& txn, format::Inode& inode,
                              std::vector<format::Extent>& extents, uint64_t first_block, uint64_t end_block,
                              uint64_t file_size_after);
  Result<void> free_from(Ino ino, uint64_t first_block);
  void zero_file_range(const std::vector<format::Extent>& extents, uint64_t begin, uint64_t end);
  Result<void> truncate_locked(Ino ino, uint64_t size);
  // acquire_hold's first step (data.cpp): allocates the holes and moves
  // the extents that a mapping with pages of `page_bytes` cannot map, in
  // as many transactions as it takes (each leaves the file's contents
  // unchanged). REQUIRES: m_mutex exclusive, a regular file, no trim mark.
  Result<void> make_mappable(Ino ino, uint64_t page_bytes);

  // Freeze and verify (freeze.cpp).
  struct HashJob;
  // Every regular file under `paths` (all of them when empty), by path,
  // each inode once. REQUIRES: m_mutex held.
  Result<std::vector<std::pair<std::string, Ino>>> collect_files(const std::vector<std::string>& paths);
  Result<Ino> resolve_path(const std::string& path);
  // Hashes jobs in parallel; fills each job's result. REQUIRES: m_mutex held.
  void hash_files(std::vector<HashJob>& jobs, unsigned threads,
                  const std::function<void(const FreezeProgress&)>& progress);

  // Xattrs (xattr.cpp): access below the public calls, which use it too;
  // these take any name, reserved ones included. REQUIRES: m_mutex held
  // (exclusively to store). store: `flags` as setxattr; ctime is bumped only
  // with Ctime::kTouch.
  enum class Ctime { kTouch, kKeep };
  Result<std::optional<std::string>> find_xattr_locked(Ino ino, std::string_view name);
  Result<void> store_xattr_locked(Ino ino, std::string_view name, std::string_view value, int flags,
                                  Ctime ctime);
  // A validated copy of the inode's xattr block; empty when it has none.
  Result<std::optional<format::XattrBlock>> xattr_block(const format::Inode& inode) const;

  // Error bookkeeping: EUCLEAN results are recorded in the superblock.
  template <typename T>
  Result<T> note(Result<T> result, Ino ino, const char* what);
  void record_error(int code, Ino ino, const char* what);

  static Attr attr_of(const format::Inode& inode);

  std::unique_ptr<region::Region> m_region;
  format::Layout m_layout{};
  std::unique_ptr<journal::Journal> m_journal;
  std::unique_ptr<alloc::Allocator> m_allocator;
  OpenReport m_report;
  std::function<void(const std::string&)> m_log;
  bool m_read_only = false;
  bool m_closed = false;
  std::function<bool(const format::Hold&)> m_holder_alive;
  std::map<uint64_t, format::Hold> m_holds;  // used hold slots

  mutable std::shared_mutex m_mutex;                       // see the file header
  std::unordered_map<Ino, std::unique_ptr<Node>> m_nodes;  // every inode in use
  std::vector<Ino> m_free_inodes;                          // free slots below the high water mark
  std::vector<uint64_t> m_free_dirents;                    // free slots below the high water mark
  uint64_t m_inode_high_water = 0;
  uint64_t m_dirent_high_water = 0;
  // Last member: destroyed (its thread stopped) before anything it uses.
  std::unique_ptr<BackgroundZeroer> m_zeroer;
};

}  // namespace pkfs::core
