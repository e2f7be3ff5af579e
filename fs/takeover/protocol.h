// fs/takeover/protocol.h: the hand-over of a live FUSE connection from one
// pkfs daemon process to the next, on the wire.
//
// Nothing of this is on the region: a hand-over moves DRAM state and a file
// descriptor between two processes of one boot, over a Unix stream socket.
//
// Sockets (directory kRunDir, mode 0700, files 0600, owned by the daemon's
// user; the server also checks SO_PEERCRED: uid 0 or the daemon's uid):
//   <kRunDir>/<hash>.handover  served by the daemon that serves the mount
//   <kRunDir>/<hash>.keeper    served by the keeper of the mount, if any
// where <hash> is 16 hex digits of FNV-1a-64 over the absolute mountpoint
// path as given (no symlinks resolved: a dead mount cannot be stat'ed).
//
// A conversation, successor S and daemon (or keeper) D:
//   S -> D  Hello     magic, kVersion, what S asks for, S's pid and version.
//   D -> S  Answer    status 0 and the connection's Params, with the
//                     /dev/fuse descriptor attached (SCM_RIGHTS) to its first
//                     byte; then Answer::records References. Or a refusal:
//                     status = an errno, message = why; D goes on serving.
//   S -> D  Verdict   (hand-over only) status 0: S has opened the region,
//                     recovered it, accepted the connection parameters and
//                     serves from now on: D exits without unmounting.
//                     Nonzero, or the socket closing first: D takes the
//                     region back and serves on ("resumes").
// Before its Answer a daemon stops reading requests, finishes every request
// it has read, stops its control socket and marks the region clean, so the
// References it sends are exact and S finds no transaction to recover. A
// keeper answers at once with no References: the daemon that registered the
// connection is gone and its counts with it (core::Takeover::kUnknown).
//
// Compatibility: D refuses a Hello of another kVersion. Every struct below
// has a fixed size and host byte order (both ends run on one host).
#pragma once

#include <cstdint>

namespace pkfs::takeover {

inline constexpr const char* kRunDir = "/run/pkfs/takeover";
inline constexpr uint32_t kMagic = 0x4f544b50;  // "PKTO"
inline constexpr uint32_t kVersion = 1;

// From the kernel's include/uapi/linux/fuse.h (since Linux 6.9, protocol
// 7.40); Debian 12's linux/fuse.h (6.1) predates them.
// FUSE_HAS_RESEND: INIT flag (bit 39, i.e. bit 7 of flags2): the kernel
// understands FUSE_NOTIFY_RESEND, which moves every request a daemon has
// read but not answered back to the pending queue, its unique id marked
// with FUSE_UNIQUE_RESEND.
inline constexpr uint64_t kFuseHasResend = uint64_t{1} << 39;
inline constexpr int32_t kFuseNotifyResend = 7;
inline constexpr uint64_t kFuseUniqueResend = uint64_t{1} << 63;

enum class Ask : uint32_t {
  kHandover = 1,  // planned: the serving daemon stops and hands over
  kKeeper = 2,    // unplanned: the keeper hands out its copy of the descriptor
  kRelease = 3,   // to a keeper: the mount ended cleanly, exit
};

struct Hello {
  uint32_t magic = kMagic;
  uint32_t version = kVersion;
  Ask ask = Ask::kHandover;
  uint32_t pid = 0;
  char binary_version[32] = {};
};

// The raw FUSE_INIT request the kernel sent (struct fuse_init_in, up to 64
// bytes) and the reply the first daemon gave (struct fuse_init_out, up to 64
// bytes): a successor replays the first to its libfuse session, which has
// never seen INIT, and compares its own reply with the second.
struct InitRecord {
  uint32_t in_bytes = 0;
  uint32_t out_bytes = 0;
  uint8_t in[64] = {};
  uint8_t out[64] = {};
};

// What a successor needs besides the descriptor: how the mount was made.
struct Params {
  InitRecord init;
  char region[4096] = {};
  char mountpoint[4096] = {};
  char control[108] = {};  // the control socket path (sun_path size)
  uint32_t read_only = 0;
  uint32_t holds_per_process = 0;
  uint32_t holds_per_uid = 0;
  uint32_t keeper = 0;  // a keeper holds a copy of the descriptor
  uint32_t owner_uid = 0;
  uint32_t background_zeroing_off = 0;  // -o background_zeroing=off
};

struct Answer {
  uint32_t magic = kMagic;
  uint32_t version = kVersion;
  int32_t status = 0;  // 0, or the errno of a refusal
  uint32_t pid = 0;    // who answers
  char message[512] = {};
  Params params;
  uint64_t records = 0;  // References that follow
};

// One inode the kernel holds (core::InheritedReferences).
struct Reference {
  uint64_t ino = 0;
  uint64_t generation = 0;
  uint64_t references = 0;
  uint32_t open_count = 0;
  uint32_t pinned = 0;
};

struct Verdict {
  uint32_t magic = kMagic;
  int32_t status = 0;
  char message[512] = {};
};

}  // namespace pkfs::takeover
