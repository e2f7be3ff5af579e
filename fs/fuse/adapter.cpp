// fs/fuse/adapter.cpp: one libfuse low-level callback per FUSE request, each
// a thin translation to one core::Filesystem call (see adapter.h).
//
// Every callback is noexcept and goes through serve(): the handler replies
// through a Request, which remembers that it replied, so a handler that
// throws (bad_alloc from a std::string, say) still gets exactly one reply.
#include "fs/fuse/adapter.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cstring>
#include <exception>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fs/client/protocol.h"
#include "fs/fuse/control_server.h"
#include "fs/takeover/connection.h"

namespace pkfs::fuse {
namespace {

Adapter& adapter_of(fuse_req_t req) { return *static_cast<Adapter*>(fuse_req_userdata(req)); }

core::Caller caller_of(fuse_req_t req) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  return core::Caller{static_cast<uint32_t>(ctx->uid), static_cast<uint32_t>(ctx->gid),
                      static_cast<uint32_t>(ctx->umask)};
}

struct stat to_stat(const core::Attr& attr) {
  struct stat st {};
  st.st_ino = attr.ino;
  st.st_mode = attr.mode;
  st.st_nlink = attr.nlink;
  st.st_uid = attr.uid;
  st.st_gid = attr.gid;
  st.st_size = static_cast<off_t>(attr.size);
  st.st_blocks = static_cast<blkcnt_t>(attr.blocks);
  st.st_blksize = static_cast<blksize_t>(format::kBlockSize);
  st.st_rdev = static_cast<dev_t>(attr.rdev);
  st.st_atim = attr.atime;
  st.st_mtim = attr.mtime;
  st.st_ctim = attr.ctime;
  return st;
}

// How long the kernel may cache these attributes. A set-user-ID or
// set-group-ID file's not at all: a write by another user clears the bits
// here (op_write), and the kernel, which cannot be told without the session
// (notify_inval_inode), must not go on seeing them, for stat or for exec.
// The name stays cached; only attributes are asked for again. Such files
// are rare on a filesystem of guest RAM, so this costs nothing elsewhere.
double attr_timeout(const core::Attr& attr) {
  bool set_id = S_ISREG(attr.mode) && (attr.mode & (S_ISUID | S_ISGID)) != 0;
  return set_id ? 0.0 : kCacheTimeoutSeconds;
}

fuse_entry_param to_entry(const core::Attr& attr) {
  fuse_entry_param entry{};
  entry.ino = attr.ino;
  entry.generation = attr.generation;
  entry.attr = to_stat(attr);
  entry.attr_timeout = attr_timeout(attr);
  entry.entry_timeout = kCacheTimeoutSeconds;
  return entry;
}

// One request being served. Each reply method sends one reply and marks the
// request answered; serve() answers whatever a handler left unanswered.
class Request {
 public:
  Request(fuse_req_t req, const char* operation) noexcept
      : m_req(req), m_adapter(adapter_of(req)), m_operation(operation) {}

  fuse_req_t req() const { return m_req; }
  Adapter& adapter() const { return m_adapter; }
  core::Filesystem& fs() const { return m_adapter.filesystem(); }
  const char* operation() const { return m_operation; }
  bool replied() const { return m_replied; }

  void error(int code) {
    m_replied = true;
    fuse_reply_err(m_req, code);
  }
  void fail(const Error& error) { this->error(m_adapter.to_errno(error, m_operation)); }
  void ok() { error(0); }

  // A new reference for the kernel: counted before the reply so a racing
  // FORGET cannot see it uncounted, and uncounted if the reply was not
  // delivered (interrupted request).
  void entry(const core::Attr& attr) {
    fuse_entry_param entry = to_entry(attr);
    m_adapter.add_lookups(attr.ino, 1);
    m_replied = true;
    if (fuse_reply_entry(m_req, &entry) != 0) m_adapter.forget(attr.ino, 1);
  }
  // The name does not exist: a negative entry the kernel may cache, since
  // only this mount creates names.
  void no_entry() {
    fuse_entry_param entry{};
    entry.entry_timeout = kCacheTimeoutSeconds;
    m_replied = true;
    fuse_reply_entry(m_req, &entry);
  }
  void attr(const core::Attr& attr) {
    struct stat st = to_stat(attr);
    m_replied = true;
    fuse_reply_attr(m_req, &st, attr_timeout(attr));
  }
  // Returns false when the kernel did not get the reply.
  bool open(const fuse_file_info* fi) {
    m_replied = true;
    return fuse_reply_open(m_req, fi) == 0;
  }
  bool create(const core::Attr& attr, const fuse_file_info* fi) {
    fuse_entry_param entry = to_entry(attr);
    m_adapter.add_lookups(attr.ino, 1);
    m_replied = true;
    if (fuse_reply_create(m_req, &entry, fi) == 0) return true;
    m_adapter.forget(attr.ino, 1);
    return false;
  }
  bool buffer(const void* data, size_t size) {
    m_replied = true;
    return fuse_reply_buf(m_req, static_cast<const char*>(data), size) == 0;
  }
  void readlink(const std::string& target) {
    m_replied = true;
    fuse_reply_readlink(m_req, target.c_str());
  }
  void written(size_t count) {
    m_replied = true;
    fuse_reply_write(m_req, count);
  }
  void xattr_size(size_t size) {
    m_replied = true;
    fuse_reply_xattr(m_req, size);
  }
  void statfs(const struct statvfs& st) {
    m_replied = true;
    fuse_reply_statfs(m_req, &st);
  }

 private:
  fuse_req_t m_req;
  Adapter& m_adapter;
  const char* m_operation;
  bool m_replied = false;
};

// Logs without ever throwing: a log line that cannot be built is dropped.
void log_quietly(const Adapter& adapter, const char* operation, const char* what) noexcept {
  try {
    adapter.log(std::string(operation) + ": " + what);
  } catch (...) {
  }
}

// Runs `handler` and guarantees one reply: out of memory is ENOMEM, any
// other exception (or a handler that forgot to reply) is EIO and a log line.
template <typename Handler>
void serve(fuse_req_t req, const char* operation, Handler&& handler) noexcept {
  Request request(req, operation);
  try {
    handler(request);
    if (!request.replied()) {
      log_quietly(request.adapter(), operation, "handler did not reply; answering EIO");
      request.error(EIO);
    }
  } catch (const std::bad_alloc&) {
    if (!request.replied()) request.error(ENOMEM);
  } catch (const std::exception& e) {
    log_quietly(request.adapter(), operation, e.what());
    if (!request.replied()) request.error(EIO);
  } catch (...) {
    log_quietly(request.adapter(), operation, "unknown exception");
    if (!request.replied()) request.error(EIO);
  }
}

bool valid_offset(off_t offset) { return offset >= 0; }

// ---------------------------------------------------------------------------
// Re-sent requests. After a daemon died, the kernel sends again what it had
// read but not answered (FUSE_NOTIFY_RESEND; fs/takeover). Journal recovery
// has left each metadata operation either done or not done; a request the
// dead daemon completed must not fail now because its effect is already
// there. So, for a re-sent request only: a create, mknod, mkdir, symlink or
// link that finds its name taken answers with what the name holds; an
// unlink, rmdir or removexattr that finds nothing to remove succeeds; a
// rename whose source is gone and whose target exists succeeds; an xattr
// set ignores XATTR_CREATE / XATTR_REPLACE; RENAME_EXCHANGE, which would be
// undone by running twice, is answered EIO. Everything else (reads, writes
// of the same bytes at the same offset, setattr, fallocate) is idempotent.

bool resent() { return takeover::current_request_resent(); }

// A re-sent request that creates `name` found it taken: the entry for it.
// With `expected` (a link), only if the name holds that inode.
bool answer_existing(Request& r, fuse_ino_t parent, const char* name, const Error& error,
                     fuse_ino_t expected = 0) {
  if (!resent() || error.code() != EEXIST) return false;
  auto attr = r.fs().lookup(parent, name);
  if (!attr || (expected != 0 && attr->ino != expected)) return false;
  r.adapter().log(std::string(r.operation()) + " of " + name +
                  " was re-sent after a restart and had been done");
  r.entry(attr.value());
  return true;
}

// ---------------------------------------------------------------------------
// Session.

void op_init(void* userdata, fuse_conn_info* conn) noexcept {
  (void)userdata;
  conn->max_write = kMaxWriteBytes;
  auto want = [conn](unsigned capability) {
    if ((conn->capable & capability) != 0) conn->want |= capability;
  };
  want(FUSE_CAP_ASYNC_READ);
  want(FUSE_CAP_READDIRPLUS);
  // The kernel leaves the umask to us (core applies Caller::umask).
  want(FUSE_CAP_DONT_MASK);
  // Handles carry (node id, generation): both stable for the region's life.
  want(FUSE_CAP_EXPORT_SUPPORT);
  want(FUSE_CAP_PARALLEL_DIROPS);
  want(FUSE_CAP_CACHE_SYMLINKS);
  // libfuse turns these on by default; we want the kernel's own handling:
  // O_TRUNC arrives as a setattr, suid/sgid are killed by the kernel's
  // setattr (core's truncate does not kill them), and nobody but this mount
  // changes data, so the page cache never needs invalidating on mtime.
  conn->want &= ~unsigned{FUSE_CAP_ATOMIC_O_TRUNC | FUSE_CAP_HANDLE_KILLPRIV | FUSE_CAP_AUTO_INVAL_DATA |
                          FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE};
  conn->time_gran = 1;  // nanosecond timestamps
}

// The daemon closes the filesystem (marks it clean) after the session ends;
// nothing is left to do here.
void op_destroy(void* userdata) noexcept { (void)userdata; }

// ---------------------------------------------------------------------------
// Names.

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) noexcept {
  serve(req, "lookup", [&](Request& r) {
    std::string_view wanted(name);
    // "." and ".." arrive only from export (file handle) lookups.
    if (wanted == "." || wanted == "..") {
      core::Ino target = parent;
      if (wanted == "..") {
        bool found = false;
        auto listed = r.fs().readdir(parent, 1, [&](const core::DirEntry& entry) {
          target = entry.ino;
          found = true;
          return false;
        });
        if (!listed) return r.fail(listed.error());
        if (!found) return r.error(ENOENT);
      }
      auto attr = r.fs().getattr(target);
      if (!attr) return r.fail(attr.error());
      return r.entry(attr.value());
    }
    auto attr = r.fs().lookup(parent, wanted);
    if (!attr) {
      if (attr.error().code() == ENOENT) return r.no_entry();
      return r.fail(attr.error());
    }
    r.entry(attr.value());
  });
}

void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) noexcept {
  try {
    adapter_of(req).forget(ino, nlookup);
  } catch (...) {
  }
  fuse_reply_none(req);
}

void op_forget_multi(fuse_req_t req, size_t count, fuse_forget_data* forgets) noexcept {
  try {
    Adapter& adapter = adapter_of(req);
    for (size_t i = 0; i < count; ++i) adapter.forget(forgets[i].ino, forgets[i].nlookup);
  } catch (...) {
  }
  fuse_reply_none(req);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept {
  (void)fi;
  serve(req, "getattr", [&](Request& r) {
    auto attr = r.fs().getattr(ino);
    if (!attr) return r.fail(attr.error());
    r.attr(attr.value());
  });
}

core::TimeSet time_set(bool now, const timespec& value) {
  core::TimeSet time;
  time.now = now;
  if (!now) time.value = value;
  return time;
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) noexcept {
  (void)fi;
  serve(req, "setattr", [&](Request& r) {
    core::SetAttr changes;
    if ((to_set & FUSE_SET_ATTR_MODE) != 0) changes.mode = attr->st_mode & 07777;
    if ((to_set & FUSE_SET_ATTR_UID) != 0) changes.uid = attr->st_uid;
    if ((to_set & FUSE_SET_ATTR_GID) != 0) changes.gid = attr->st_gid;
    if ((to_set & FUSE_SET_ATTR_SIZE) != 0) {
      if (attr->st_size < 0) return r.error(EINVAL);
      changes.size = static_cast<uint64_t>(attr->st_size);
    }
    if ((to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW)) != 0) {
      changes.atime = time_set((to_set & FUSE_SET_ATTR_ATIME_NOW) != 0, attr->st_atim);
    }
    if ((to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) != 0) {
      changes.mtime = time_set((to_set & FUSE_SET_ATTR_MTIME_NOW) != 0, attr->st_mtim);
    }
    if ((to_set & FUSE_SET_ATTR_CTIME) != 0) changes.ctime = time_set(false, attr->st_ctim);
    auto result = r.fs().setattr(ino, changes, caller_of(req));
    if (!result) return r.fail(result.error());
    r.attr(result.value());
  });
}

void op_readlink(fuse_req_t req, fuse_ino_t ino) noexcept {
  serve(req, "readlink", [&](Request& r) {
    auto target = r.fs().readlink(ino);
    if (!target) return r.fail(target.error());
    r.readlink(target.value());
  });
}

void op_mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) noexcept {
  serve(req, "mknod", [&](Request& r) {
    auto attr = r.fs().mknod(parent, name, mode, rdev, caller_of(req));
    if (!attr) {
      if (answer_existing(r, parent, name, attr.error())) return;
      return r.fail(attr.error());
    }
    r.entry(attr.value());
  });
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) noexcept {
  serve(req, "mkdir", [&](Request& r) {
    auto attr = r.fs().mkdir(parent, name, mode, caller_of(req));
    if (!attr) {
      if (answer_existing(r, parent, name, attr.error())) return;
      return r.fail(attr.error());
    }
    r.entry(attr.value());
  });
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) noexcept {
  serve(req, "unlink", [&](Request& r) {
    auto result = r.fs().unlink(parent, name);
    if (!result && resent() && result.error().code() == ENOENT) return r.ok();
    if (!result) return r.fail(result.error());
    r.ok();
  });
}

void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) noexcept {
  serve(req, "rmdir", [&](Request& r) {
    auto result = r.fs().rmdir(parent, name);
    if (!result && resent() && result.error().code() == ENOENT) return r.ok();
    if (!result) return r.fail(result.error());
    r.ok();
  });
}

void op_symlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) noexcept {
  serve(req, "symlink", [&](Request& r) {
    auto attr = r.fs().symlink(parent, name, target, caller_of(req));
    if (!attr) {
      if (answer_existing(r, parent, name, attr.error())) return;
      return r.fail(attr.error());
    }
    r.entry(attr.value());
  });
}

void op_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t new_parent,
               const char* new_name, unsigned int flags) noexcept {
  serve(req, "rename", [&](Request& r) {
    if (resent() && (flags & RENAME_EXCHANGE) != 0) {
      r.adapter().log("rename: a re-sent RENAME_EXCHANGE may have been done already; answered EIO");
      return r.error(EIO);
    }
    auto result = r.fs().rename(parent, name, new_parent, new_name, flags);
    if (!result && resent() && result.error().code() == ENOENT && r.fs().lookup(new_parent, new_name))
      return r.ok();
    if (!result) return r.fail(result.error());
    r.ok();
  });
}

void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t new_parent, const char* new_name) noexcept {
  serve(req, "link", [&](Request& r) {
    auto attr = r.fs().link(ino, new_parent, new_name);
    if (!attr) {
      if (answer_existing(r, new_parent, new_name, attr.error(), ino)) return;
      return r.fail(attr.error());
    }
    r.entry(attr.value());
  });
}

// ---------------------------------------------------------------------------
// Files. The file handle is the node id: core counts opens per inode.

void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept {
  serve(req, "open", [&](Request& r) {
    auto opened = r.fs().open_file(ino);
    if (!opened) return r.fail(opened.error());
    fi->fh = ino;
    if (r.adapter().held(ino)) {
      // Held: a VMM maps the file's pages directly and writes them behind
      // the kernel's back, so no page cache may serve this open (see
      // control_server.h, "Coherence").
      fi->direct_io = 1;
    } else {
      // Only this mount writes, so cached pages stay valid across opens.
      // FLUSH stays on: it is what pushes dirty mmap pages out at close(2).
      fi->keep_cache = 1;
    }
    // An interrupted open gets no release from the kernel: undo it here.
    if (!r.open(fi)) (void)r.fs().release_file(ino);
  });
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
               fuse_file_info* fi) noexcept {
  serve(req, "create", [&](Request& r) {
    auto attr = r.fs().mknod(parent, name, S_IFREG | (mode & 07777), 0, caller_of(req));
    if (!attr && resent() && attr.error().code() == EEXIST)
      attr = r.fs().lookup(parent, name);  // see resent()
    if (!attr) return r.fail(attr.error());
    auto opened = r.fs().open_file(attr->ino);
    if (!opened) return r.fail(opened.error());
    fi->fh = attr->ino;
    fi->keep_cache = 1;
    if (!r.create(attr.value(), fi)) (void)r.fs().release_file(attr->ino);
  });
}

void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, fuse_file_info* fi) noexcept {
  (void)fi;
  serve(req, "read", [&](Request& r) {
    if (!valid_offset(offset)) return r.error(EINVAL);
    // One buffer per worker thread, grown to the largest read it served
    // (at most max_read, 1 MiB): no allocation per request.
    thread_local std::vector<std::byte> buffer;
    if (buffer.size() < size) buffer.resize(size);
    auto count = r.fs().read(ino, static_cast<uint64_t>(offset), std::span<std::byte>(buffer.data(), size));
    if (!count) return r.fail(count.error());
    r.buffer(buffer.data(), count.value());
  });
}

// Clears set-user-ID, and set-group-ID on a group-executable file, before a
// write, as the kernel does for a writer without CAP_FSETID. The kernel
// does it itself for writes through the page cache (a SETATTR before the
// WRITE, since we leave FUSE_CAP_HANDLE_KILLPRIV off), but for direct_io
// opens, which every open of a held file is, it only sets
// FUSE_WRITE_KILL_SUIDGID in the WRITE, and libfuse 3.14 does not pass
// write_flags on. So the adapter does it for every WRITE: uid 0 stands for
// CAP_FSETID, which the daemon cannot see. Write-back of dirty pages
// (writepage) is left alone: it carries no caller, write(2) into the page
// cache cleared the bits already, and stores through a shared mapping keep
// them, as on any Linux filesystem.
Result<void> kill_suid(Request& r, fuse_ino_t ino) {
  if (caller_of(r.req()).uid == 0) return success();
  TRY_ASSIGN(core::Attr attr, r.fs().getattr(ino));
  uint32_t kill = S_ISUID | ((attr.mode & S_IXGRP) != 0 ? S_ISGID : 0);
  if ((attr.mode & kill) == 0) return success();
  core::SetAttr changes;
  changes.mode = attr.mode & 07777 & ~kill;
  // The kernel has not cached this file's attributes (attr_timeout), so its
  // next stat or permission check sees the bits gone.
  TRY(r.fs().setattr(ino, changes, caller_of(r.req())));
  return success();
}

void op_write(fuse_req_t req, fuse_ino_t ino, const char* data, size_t size, off_t offset,
              fuse_file_info* fi) noexcept {
  serve(req, "write", [&](Request& r) {
    if (!valid_offset(offset)) return r.error(EINVAL);
    if (fi == nullptr || fi->writepage == 0) {
      if (auto killed = kill_suid(r, ino); !killed) return r.fail(killed.error());
    }
    auto count = r.fs().write(ino, static_cast<uint64_t>(offset),
                              std::span<const std::byte>(reinterpret_cast<const std::byte*>(data), size));
    if (!count) return r.fail(count.error());
    r.written(count.value());
  });
}

// No flush operation: libfuse answers ENOSYS once and the kernel stops
// sending FLUSH on every close(2), saving a round trip per close. The kernel
// still writes dirty pages of shared mappings back (as WRITEs) before it
// looks at whether FLUSH is supported, so mmap data reaches the region.
// Memory is the medium: every completed store is as durable as it gets.
void op_fsync(fuse_req_t req, fuse_ino_t /*ino*/, int /*datasync*/, fuse_file_info* /*fi*/) noexcept {
  fuse_reply_err(req, 0);
}
void op_fsyncdir(fuse_req_t req, fuse_ino_t /*ino*/, int /*datasync*/, fuse_file_info* /*fi*/) noexcept {
  fuse_reply_err(req, 0);
}

void op_release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept {
  (void)fi;
  serve(req, "release", [&](Request& r) {
    // The last release of an unlinked file frees it; the kernel ignores
    // the result, so a failure is only logged.
    auto released = r.fs().release_file(ino);
    if (!released)
      r.adapter().log("release of inode " + std::to_string(ino) + ": " + released.error().message());
    r.ok();
  });
}

void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                  fuse_file_info* fi) noexcept {
  (void)fi;
  serve(req, "fallocate", [&](Request& r) {
    if (offset < 0 || length <= 0) return r.error(EINVAL);
    auto result = r.fs().fallocate(ino, mode, static_cast<uint64_t>(offset), static_cast<uint64_t>(length));
    if (!result) return r.fail(result.error());
    r.ok();
  });
}

// ---------------------------------------------------------------------------
// Directories. An open directory counts as an open inode in core, like a
// file, so a removed directory stays valid for fstat(2), fchmod(2) and
// xattrs through its descriptor until releasedir. No other per-handle
// state: the readdir offset is core's cookie.

void op_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept {
  serve(req, "opendir", [&](Request& r) {
    auto attr = r.fs().getattr(ino);
    if (!attr) return r.fail(attr.error());
    if (!S_ISDIR(attr->mode)) return r.error(ENOTDIR);
    auto opened = r.fs().open_file(ino);
    if (!opened) return r.fail(opened.error());
    fi->fh = ino;
    if (!r.open(fi)) (void)r.fs().release_file(ino);
  });
}

void op_releasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* /*fi*/) noexcept {
  serve(req, "releasedir", [&](Request& r) {
    auto released = r.fs().release_file(ino);
    if (!released)
      r.adapter().log("releasedir of inode " + std::to_string(ino) + ": " + released.error().message());
    r.ok();
  });
}

struct Listed {
  std::string name;
  core::Ino ino;
  uint32_t mode;
  uint64_t next_cookie;
};

void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, bool plus) noexcept {
  serve(req, plus ? "readdirplus" : "readdir", [&](Request& r) {
    if (!valid_offset(offset)) return r.error(EINVAL);
    // Collect what fits under core's lock, then fetch attributes without
    // it: calling back into core from inside readdir would take its lock
    // twice. fuse_add_direntry*() with a null buffer only sizes an entry.
    std::vector<Listed> listed;
    size_t planned = 0;
    auto result = r.fs().readdir(ino, static_cast<uint64_t>(offset), [&](const core::DirEntry& entry) {
      std::string name(entry.name);
      size_t need = plus ? fuse_add_direntry_plus(req, nullptr, 0, name.c_str(), nullptr, 0)
                         : fuse_add_direntry(req, nullptr, 0, name.c_str(), nullptr, 0);
      if (planned + need > size) return false;
      planned += need;
      listed.push_back({std::move(name), entry.ino, entry.mode, entry.next_cookie});
      return true;
    });
    if (!result) return r.fail(result.error());

    std::vector<char> buffer(size);
    size_t used = 0;
    std::vector<core::Ino> counted;  // lookups this reply hands the kernel
    counted.reserve(listed.size());  // so recording one cannot throw
    for (const Listed& item : listed) {
      size_t room = size - used;
      size_t added = 0;
      if (plus) {
        fuse_entry_param entry{};
        bool dots = item.name == "." || item.name == "..";
        if (dots) {
          // Node id 0: the kernel makes no inode (and counts no lookup).
          entry.attr.st_ino = item.ino;
          entry.attr.st_mode = item.mode;
        } else {
          auto attr = r.fs().getattr(item.ino);
          if (!attr) {
            if (attr.error().code() == ENOENT) continue;  // removed since it was listed
            if (used == 0) return r.fail(attr.error());
            break;  // send what we have; the kernel asks again from there
          }
          entry = to_entry(attr.value());
        }
        added = fuse_add_direntry_plus(req, buffer.data() + used, room, item.name.c_str(), &entry,
                                       static_cast<off_t>(item.next_cookie));
        if (added > room) break;  // did not fit: not handed out, not counted
        if (!dots) {
          r.adapter().add_lookups(item.ino, 1);
          counted.push_back(item.ino);
        }
      } else {
        struct stat st {};
        st.st_ino = item.ino;
        st.st_mode = item.mode;
        added = fuse_add_direntry(req, buffer.data() + used, room, item.name.c_str(), &st,
                                  static_cast<off_t>(item.next_cookie));
        if (added > room) break;
      }
      used += added;
    }
    if (!r.buffer(buffer.data(), used)) {
      for (core::Ino counted_ino : counted) r.adapter().forget(counted_ino, 1);
    }
  });
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, fuse_file_info* /*fi*/) noexcept {
  do_readdir(req, ino, size, offset, false);
}

void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
                    fuse_file_info* /*fi*/) noexcept {
  do_readdir(req, ino, size, offset, true);
}

// ---------------------------------------------------------------------------
// Whole filesystem, extended attributes, access.

void op_statfs(fuse_req_t req, fuse_ino_t /*ino*/) noexcept {
  serve(req, "statfs", [&](Request& r) {
    auto stats = r.fs().statfs();
    if (!stats) return r.fail(stats.error());
    struct statvfs st {};
    st.f_bsize = stats->block_size;
    st.f_frsize = stats->block_size;
    st.f_blocks = stats->blocks;
    st.f_bfree = stats->free_blocks;
    st.f_bavail = stats->free_blocks;
    st.f_files = stats->files;
    st.f_ffree = stats->free_files;
    st.f_favail = stats->free_files;
    st.f_namemax = stats->name_max;
    r.statfs(st);
  });
}

// Answers a getxattr/listxattr: the size for a probe (size 0), ERANGE when
// the caller's buffer is too small, the bytes otherwise.
void reply_sized(Request& r, const std::string& bytes, size_t size) {
  if (size == 0) return r.xattr_size(bytes.size());
  if (bytes.size() > size) return r.error(ERANGE);
  r.buffer(bytes.data(), bytes.size());
}

// The xattrs the adapter answers itself (user.pkfs.control, where the
// daemon's control socket is, and user.pkfs.generation): never stored, never
// listed, read-only for everyone (EPERM), so that what libpkfs reads there
// comes from this daemon.
bool virtual_xattr(const char* name) {
  return std::strcmp(name, control::kControlXattr) == 0 || std::strcmp(name, control::kGenerationXattr) == 0;
}

void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
                 int flags) noexcept {
  serve(req, "setxattr", [&](Request& r) {
    if (virtual_xattr(name)) return r.error(EPERM);
    auto result = r.fs().setxattr(ino, name, std::string_view(value, size), resent() ? 0 : flags);
    if (!result) return r.fail(result.error());
    r.ok();
  });
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) noexcept {
  serve(req, "getxattr", [&](Request& r) {
    // Virtual, answered on every inode: where libpkfs and pkfsctl find the
    // daemon of this file (see fs/client/protocol.h).
    if (std::strcmp(name, control::kControlXattr) == 0) {
      const std::string& path = r.adapter().control_path();
      if (path.empty()) return r.error(ENODATA);
      return reply_sized(r, path, size);
    }
    // Virtual too: the inode's generation in decimal, so that libpkfs can
    // check that a map reply describes the very file it opened.
    if (std::strcmp(name, control::kGenerationXattr) == 0) {
      auto attr = r.fs().getattr(ino);
      if (!attr) return r.fail(attr.error());
      return reply_sized(r, std::to_string(attr->generation), size);
    }
    auto value = r.fs().getxattr(ino, name);
    if (!value) return r.fail(value.error());
    reply_sized(r, value.value(), size);
  });
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) noexcept {
  serve(req, "listxattr", [&](Request& r) {
    auto names = r.fs().listxattr(ino);
    if (!names) return r.fail(names.error());
    std::string packed;  // "name\0name\0..."
    for (const std::string& name : names.value()) {
      // A stored xattr of a virtual name (set before it was virtual) is
      // hidden, as it is for get, set and remove.
      if (virtual_xattr(name.c_str())) continue;
      packed += name;
      packed.push_back('\0');
    }
    reply_sized(r, packed, size);
  });
}

void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) noexcept {
  serve(req, "removexattr", [&](Request& r) {
    if (virtual_xattr(name)) return r.error(EPERM);
    auto result = r.fs().removexattr(ino, name);
    if (!result && resent() && result.error().code() == ENODATA) return r.ok();
    if (!result) return r.fail(result.error());
    r.ok();
  });
}

// With default_permissions (always on) the kernel checks access itself; it
// only asks for existence checks such as access(F_OK) paths it cannot see.
void op_access(fuse_req_t req, fuse_ino_t ino, int mask) noexcept {
  (void)mask;
  serve(req, "access", [&](Request& r) {
    auto attr = r.fs().getattr(ino);
    if (!attr) return r.fail(attr.error());
    r.ok();
  });
}

fuse_lowlevel_ops make_operations() {
  fuse_lowlevel_ops ops{};
  ops.init = op_init;
  ops.destroy = op_destroy;
  ops.lookup = op_lookup;
  ops.forget = op_forget;
  ops.forget_multi = op_forget_multi;
  ops.getattr = op_getattr;
  ops.setattr = op_setattr;
  ops.readlink = op_readlink;
  ops.mknod = op_mknod;
  ops.mkdir = op_mkdir;
  ops.unlink = op_unlink;
  ops.rmdir = op_rmdir;
  ops.symlink = op_symlink;
  ops.rename = op_rename;
  ops.link = op_link;
  ops.open = op_open;
  ops.create = op_create;
  ops.read = op_read;
  ops.write = op_write;
  ops.fsync = op_fsync;
  ops.release = op_release;
  ops.fallocate = op_fallocate;
  ops.opendir = op_opendir;
  ops.readdir = op_readdir;
  ops.readdirplus = op_readdirplus;
  ops.releasedir = op_releasedir;
  ops.fsyncdir = op_fsyncdir;
  ops.statfs = op_statfs;
  ops.setxattr = op_setxattr;
  ops.getxattr = op_getxattr;
  ops.listxattr = op_listxattr;
  ops.removexattr = op_removexattr;
  ops.access = op_access;
  return ops;
}

}  // namespace

Adapter::Adapter(Log log) : m_log(std::move(log)) {}

const fuse_lowlevel_ops& Adapter::operations() {
  static const fuse_lowlevel_ops ops = make_operations();
  return ops;
}

void Adapter::log(const std::string& line) const {
  if (m_log) m_log(line);
}

int Adapter::to_errno(const Error& error, const char* operation) const {
  int code = error.code();
  if (code == EUCLEAN) {
    log(std::string(operation) + ": region damaged: " + error.message() +
        " (reported as EIO; run fsck.pkfs)");
    return EIO;
  }
  if (code <= 0) {
    log(std::string(operation) + ": error without an errno: " + error.message() + " (reported as EIO)");
    return EIO;
  }
  if (code == EIO) log(std::string(operation) + ": " + error.message());
  return code;
}

bool Adapter::held(fuse_ino_t ino) const { return m_held != nullptr && m_held->contains(ino); }

void Adapter::add_lookups(fuse_ino_t ino, uint64_t count) { m_fs->add_references(ino, count); }

void Adapter::forget(fuse_ino_t ino, uint64_t count) { m_fs->drop_references(ino, count); }

}  // namespace pkfs::fuse
