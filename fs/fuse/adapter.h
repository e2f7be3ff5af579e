// fs/fuse/adapter.h: the libfuse3 low-level adapter over core::Filesystem.
//
// Owns: the fuse_lowlevel_ops table, translating each request into one core
// call and its result into exactly one reply, the errno translation, the
// caller identity (fuse_req_ctx), and the kernel's lookup counts (DRAM only).
// Holds no filesystem logic: names, permissions bits, link counts, space and
// every on-region decision belong to fs/core.
//
// Node ids are core inode numbers: FUSE_ROOT_ID (1) is the core root, and
// the generation of a reused slot comes from core::Attr. Permission checks
// are the kernel's (the daemon always mounts with default_permissions).
//
// After a takeover (fs/takeover) the adapter serves a kernel whose node ids
// and file handles another daemon process handed out: node ids are inode
// numbers (+ generation), file handles are node ids and core counts opens
// per inode, so nothing per handle needs rebuilding; the counts come with a
// planned hand-over, and after a crash every inode in use is pinned
// (core::Takeover). Re-sent requests: see adapter.cpp.
//
// Lookup counts are kept by core: an unlinked inode is freed, and its
// number reused, only once no open handle and no kernel reference (lookup
// count) remains, because an O_PATH descriptor or a working directory
// reaches an inode by node id alone. The kernel forgets an unlinked inode
// right after the unlink when nothing else holds it, so the space of a
// deleted guest-RAM file comes back a moment after rm(1) returns.
#pragma once

#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 12)
#include <fuse_lowlevel.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

#include "fs/base/result.h"
#include "fs/core/filesystem.h"

namespace pkfs::fuse {

class HeldInodes;

// Entries and attributes may be cached this long: only this mount changes
// the filesystem's metadata, so the kernel's copy cannot go stale behind
// its back. Except the attributes of set-user-ID and set-group-ID files,
// never cached: a write may clear those bits without the kernel knowing
// (see op_write in adapter.cpp).
inline constexpr double kCacheTimeoutSeconds = 3600.0;
// Largest WRITE the kernel sends (conn->max_write); libfuse caps it at its
// receive buffer, 1 MiB with 4 KiB pages.
inline constexpr unsigned kMaxWriteBytes = 1u << 20;

class Adapter {
 public:
  using Log = std::function<void(const std::string&)>;

  explicit Adapter(Log log);
  Adapter(const Adapter&) = delete;
  Adapter& operator=(const Adapter&) = delete;

  // The table to pass to fuse_session_new with `this` as userdata.
  static const fuse_lowlevel_ops& operations();

  // The filesystem requests go to. Attach it before the session is mounted
  // (no request arrives earlier); it must outlive the session. The daemon
  // creates the session first so that bad FUSE options are refused before
  // the region is opened.
  void attach(core::Filesystem& fs) { m_fs = &fs; }
  // The control socket (answered as the virtual xattr user.pkfs.control)
  // and the held inodes (opened with direct_io). Set before mounting.
  void set_control(std::string socket_path, const HeldInodes* held) {
    m_control_path = std::move(socket_path);
    m_held = held;
  }
  const std::string& control_path() const { return m_control_path; }
  bool held(fuse_ino_t ino) const;
  core::Filesystem& filesystem() const { return *m_fs; }
  void log(const std::string& line) const;

  // Core error -> errno for the kernel. Corruption (EUCLEAN) becomes EIO and
  // is logged; core already recorded it in the superblock.
  int to_errno(const Error& error, const char* operation) const;

  // Lookup accounting, kept by core (it decides when an unlinked inode may
  // be freed): every fuse_reply_entry/create/direntplus adds one, forget
  // subtracts what the kernel says.
  void add_lookups(fuse_ino_t ino, uint64_t count);
  void forget(fuse_ino_t ino, uint64_t count);

 private:
  core::Filesystem* m_fs = nullptr;
  Log m_log;
  std::string m_control_path;
  const HeldInodes* m_held = nullptr;
};

}  // namespace pkfs::fuse
