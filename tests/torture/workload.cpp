// tests/torture/workload.cpp: the workload and the checker of the kill -9
// torture test (tests/integration/torture.sh, scripts/torture).
//
//   pkfs_torture_workload run MNT STATE [--verify] [--seed S] [--workers N] [--ops N]
//   pkfs_torture_workload verify MNT STATE [--workers N]
//
// run: N worker threads (default 2), worker i working only in MNT/w<i>, each
// doing a random mix of create, write, fsync, rename (also over an existing
// file), renameat2 RENAME_EXCHANGE, unlink (also of a file it keeps open and
// goes on writing to), mkdir, rmdir, truncate, fallocate (all modes pkfs
// has), setxattr, removexattr, link, chmod and directory fsync, until --ops
// operations are done (default: forever) or the daemon dies (ENOTCONN or
// ECONNABORTED), when the worker stops. With --verify it first does what
// verify does (on the same scan it starts from) and stops there on a
// mismatch. It prints "ready" once every worker's new log is in place: the
// driver times its kill from then. Every other error is a failure
// (exit 3): the worker keeps a model of its subtree and only asks for
// operations the model says must succeed.
//
// Each worker keeps a log, STATE/log.w<i>, written with write(2) (the
// driver kills us with SIGKILL; nothing is buffered). It starts with a
// snapshot of the subtree as the worker found it (the model it starts
// from), then has one line per event:
//   I <seq> <op> <path> <path2> <x> <y> <z>   intent, before the system call
//   A <seq> <result> [<size> <xxh3>]          the call returned: its result
//                                             (>= 0) or -errno; an fsync ack
//                                             carries the file's size and hash
//   K <seq> <errno>                           the call failed with errno (EIO,
//                                             seen on writes) as the connection
//                                             went (statfs says ENOTCONN); its
//                                             ack then says -ECONNABORTED
// A write's bytes are not logged: they are generated from <z>, a per-write
// seed. A new log is built under another name and renamed into place once
// complete, so a kill during startup leaves the previous log, which still
// describes the subtree (nothing was changed since it was verified).
//
// verify: for each worker log, replays it over its snapshot and compares the
// result with the subtree (paths, types, modes, sizes, bytes, user xattrs,
// which paths are hard links of one inode and their link count). What is
// required:
// - pkfs makes every operation durable before it replies (metadata is
//   journaled in the region, data lands in the region before the reply, the
//   mount uses no writeback cache), so every operation that returned before
//   the kill must be there: not only what was fsync'd. Failures on a file
//   whose last change was fsync'd are counted apart.
// - At most one operation per worker can be in flight at the kill (logged
//   intent, no ack; or an ack of ENOTCONN/ECONNABORTED). The subtree must be
//   exactly as before it or exactly as after it, with one relaxation for the
//   operations that store bytes in place without a journal (write,
//   fallocate ZERO_RANGE and PUNCH_HOLE): each byte of the target may have
//   its old or its new value (bytes past the old size count as zero), and its
//   size may be the old one, the new one, or, for a write that grows the
//   file, a multiple of 4096 in between (the kernel splits a write(2) into
//   FUSE requests at page boundaries, and pkfs commits each on its own).
//   The same split explains a short write: when the daemon dies between two
//   of those requests, write(2) returns what the first ones wrote, and the
//   daemon may have done the next one too. So the bytes a short write
//   returned must be there and the rest is in flight; and as only a dying
//   connection cuts a write short, no later call may have returned.
//   Nothing else is tolerated.
// Prints one summary line and the first mismatches; exit 0 when everything
// matched, 1 when not, 2 on usage or operational errors.
#include <dirent.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <latch>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnexpected = 3;

// Bounds that keep each worker's subtree small, so a cycle stays fast and
// the region never fills (no ENOSPC, which the model does not predict).
constexpr size_t kMaxNames = 48;                   // files and directories
constexpr uint64_t kMaxBytes = uint64_t{6} << 20;  // sum of file sizes
constexpr uint64_t kMaxFileBytes = uint64_t{4} << 20;
constexpr size_t kMaxXattrValue = 200;
const char* const kXattrNames[] = {"user.a", "user.b", "user.c"};
const uint32_t kFileModes[] = {0644, 0600, 0640, 0755, 0444};
const uint32_t kDirModes[] = {0755, 0700, 0750};

[[noreturn]] void die(const char* what, const std::string& detail) {
  std::fprintf(stderr, "pkfs_torture_workload: %s: %s\n", what, detail.c_str());
  std::exit(kExitUsage);
}

// ---------------------------------------------------------------------------
// Byte generation: the bytes of a write or xattr value from its seed.

uint64_t splitmix(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::string generate(uint64_t seed, size_t length) {
  std::string bytes(length, '\0');
  uint64_t state = seed;
  for (size_t i = 0; i < length; i += 8) {
    uint64_t word = splitmix(state);
    std::memcpy(bytes.data() + i, &word, std::min<size_t>(8, length - i));
  }
  return bytes;
}

uint64_t hash_of(const std::string& bytes) { return XXH3_64bits(bytes.data(), bytes.size()); }

// ---------------------------------------------------------------------------
// The model of one worker's subtree.

struct Node {
  bool dir = false;
  uint32_t mode = 0;  // permission bits
  std::string data;
  std::map<std::string, std::string> xattrs;
  bool synced = false;  // an fsync was acknowledged after the last change
};

struct Model {
  std::map<std::string, uint64_t> names;  // path below the worker root -> node id
  std::map<uint64_t, Node> nodes;
  uint64_t next_id = 1;

  bool exists(const std::string& path) const { return names.count(path) != 0; }
  Node* node(const std::string& path) {
    auto it = names.find(path);
    return it == names.end() ? nullptr : &nodes.at(it->second);
  }
  bool is_dir(const std::string& path) const {
    auto it = names.find(path);
    return it != names.end() && nodes.at(it->second).dir;
  }
  bool is_file(const std::string& path) const {
    auto it = names.find(path);
    return it != names.end() && !nodes.at(it->second).dir;
  }
  size_t links(uint64_t id) const {
    size_t count = 0;
    for (const auto& [path, node_id] : names) count += node_id == id;
    return count;
  }
  uint64_t total_bytes() const {
    uint64_t total = 0;
    for (const auto& [id, node] : nodes) total += node.data.size();
    return total;
  }
  bool dir_empty(const std::string& path) const {
    std::string prefix = path + "/";
    auto it = names.lower_bound(prefix);
    return it == names.end() || it->first.compare(0, prefix.size(), prefix) != 0;
  }
  void drop_name(const std::string& path) {
    uint64_t id = names.at(path);
    names.erase(path);
    if (links(id) == 0) nodes.erase(id);
  }
};

std::string parent_of(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

// ---------------------------------------------------------------------------
// Operations, as logged.

struct Op {
  uint64_t seq = 0;
  std::string kind;
  std::string path, path2;
  uint64_t x = 0, y = 0, z = 0;
};

std::string token(const std::string& s) { return s.empty() ? "-" : s; }
std::string untoken(const std::string& s) { return s == "-" ? "" : s; }

std::string format_intent(const Op& op) {
  char numbers[80];
  std::snprintf(numbers, sizeof numbers, " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", op.x, op.y, op.z);
  return "I " + std::to_string(op.seq) + " " + op.kind + " " + token(op.path) + " " + token(op.path2) +
         numbers;
}

// Operations that store bytes in place, unjournaled: a kill in the middle
// may leave any mix of old and new bytes (see the top of this file).
bool stores_bytes(const Op& op) {
  if (op.kind == "write") return true;
  return op.kind == "fallocate" && (op.x & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) != 0;
}

void zero_range(std::string& data, uint64_t offset, uint64_t end) {
  end = std::min<uint64_t>(end, data.size());
  if (offset < end) std::fill(data.begin() + offset, data.begin() + end, '\0');
}

// Applies a successful operation (result: its return value, the byte count
// for a write) to the model. Returns false if the model says it could not
// have succeeded, which a checker reports.
bool apply(Model& model, const Op& op, int64_t result) {
  const std::string& p = op.path;
  auto changed = [&](Node& node) { node.synced = false; };
  if (op.kind == "create") {
    if (model.exists(p)) return false;
    uint64_t id = model.next_id++;
    model.nodes[id] = Node{false, static_cast<uint32_t>(op.x), {}, {}, false};
    model.names[p] = id;
  } else if (op.kind == "mkdir") {
    if (model.exists(p)) return false;
    uint64_t id = model.next_id++;
    model.nodes[id] = Node{true, static_cast<uint32_t>(op.x), {}, {}, false};
    model.names[p] = id;
  } else if (op.kind == "write") {
    Node* node = model.node(p);
    if (!node || node->dir || result < 0) return false;
    std::string bytes = generate(op.z, op.y).substr(0, static_cast<size_t>(result));
    if (node->data.size() < op.x + bytes.size()) node->data.resize(op.x + bytes.size(), '\0');
    std::memcpy(node->data.data() + op.x, bytes.data(), bytes.size());
    changed(*node);
  } else if (op.kind == "truncate") {
    Node* node = model.node(p);
    if (!node || node->dir) return false;
    node->data.resize(op.x, '\0');
    changed(*node);
  } else if (op.kind == "fallocate") {
    Node* node = model.node(p);
    if (!node || node->dir) return false;
    uint64_t end = op.y + op.z;
    bool keep_size = (op.x & FALLOC_FL_KEEP_SIZE) != 0;
    if (op.x & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) zero_range(node->data, op.y, end);
    if (!keep_size && node->data.size() < end) node->data.resize(end, '\0');
    changed(*node);
  } else if (op.kind == "fsync") {
    Node* node = model.node(p);
    if (!node) return false;
    node->synced = true;
  } else if (op.kind == "fsyncdir") {
    if (p != "." && !model.is_dir(p)) return false;
  } else if (op.kind == "unlink") {
    if (!model.is_file(p)) return false;
    model.drop_name(p);
  } else if (op.kind == "rmdir") {
    if (!model.is_dir(p) || !model.dir_empty(p)) return false;
    model.drop_name(p);
  } else if (op.kind == "link") {
    if (!model.is_file(p) || model.exists(op.path2)) return false;
    model.names[op.path2] = model.names.at(p);
  } else if (op.kind == "rename") {
    const std::string& to = op.path2;
    if (!model.exists(p)) return false;
    if (model.is_dir(p)) {
      // Directories only move to a new name (never over one, never below
      // themselves): everything below moves along.
      if (model.exists(to) || to.compare(0, p.size() + 1, p + "/") == 0) return false;
      std::map<std::string, uint64_t> moved;
      for (auto it = model.names.begin(); it != model.names.end();) {
        if (it->first == p || it->first.compare(0, p.size() + 1, p + "/") == 0) {
          moved[to + it->first.substr(p.size())] = it->second;
          it = model.names.erase(it);
        } else {
          ++it;
        }
      }
      model.names.insert(moved.begin(), moved.end());
    } else {
      if (model.is_dir(to)) return false;
      // POSIX: renaming a name onto another link of the same inode does
      // nothing, both names stay.
      if (model.exists(to) && model.names.at(to) == model.names.at(p)) return true;
      if (model.exists(to)) model.drop_name(to);
      model.names[to] = model.names.at(p);
      model.names.erase(p);
    }
  } else if (op.kind == "exchange") {
    if (!model.is_file(p) || !model.is_file(op.path2)) return false;
    std::swap(model.names.at(p), model.names.at(op.path2));
  } else if (op.kind == "setxattr") {
    Node* node = model.node(p);
    if (!node) return false;
    node->xattrs[op.path2] = generate(op.y, op.x);
    changed(*node);
  } else if (op.kind == "removexattr") {
    Node* node = model.node(p);
    if (!node || node->xattrs.erase(op.path2) == 0) return false;
    changed(*node);
  } else if (op.kind == "chmod") {
    Node* node = model.node(p);
    if (!node) return false;
    node->mode = static_cast<uint32_t>(op.x);
    changed(*node);
  } else {
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------
// The subtree as it is: a scan through the mount.

struct Entry {
  bool dir = false;
  uint32_t mode = 0;
  ino_t ino = 0;
  nlink_t nlink = 0;
  std::string data;
  std::map<std::string, std::string> xattrs;
};
using Tree = std::map<std::string, Entry>;

// errno of the first failure, 0 when the scan completed.
int scan_into(const std::string& root, const std::string& relative, Tree& tree) {
  std::string dir_path = relative.empty() ? root : root + "/" + relative;
  DIR* dir = opendir(dir_path.c_str());
  if (!dir) return errno;
  std::vector<std::string> children;
  errno = 0;
  while (dirent* entry = readdir(dir)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") children.push_back(name);
  }
  int error = errno;
  closedir(dir);
  if (error) return error;
  for (const std::string& name : children) {
    std::string rel = relative.empty() ? name : relative + "/" + name;
    std::string full = root + "/" + rel;
    struct stat st {};
    if (lstat(full.c_str(), &st) != 0) return errno;
    Entry entry;
    entry.dir = S_ISDIR(st.st_mode);
    entry.mode = st.st_mode & 07777;
    entry.ino = st.st_ino;
    entry.nlink = st.st_nlink;
    if (!entry.dir && !S_ISREG(st.st_mode)) entry.mode |= 0100000000;  // a type the workload never makes
    if (S_ISREG(st.st_mode)) {
      int fd = open(full.c_str(), O_RDONLY);
      if (fd < 0) return errno;
      entry.data.resize(static_cast<size_t>(st.st_size));
      size_t done = 0;
      while (done < entry.data.size()) {
        ssize_t n = pread(fd, entry.data.data() + done, entry.data.size() - done, static_cast<off_t>(done));
        if (n < 0) {
          error = errno;
          close(fd);
          return error;
        }
        if (n == 0) break;
        done += static_cast<size_t>(n);
      }
      // A short file reads short: keep what was there, the size compare says it.
      entry.data.resize(done);
      char extra;
      if (pread(fd, &extra, 1, static_cast<off_t>(done)) == 1)
        entry.data.push_back('\1');  // longer than stat said
      close(fd);
    }
    char names[4096];
    ssize_t length = llistxattr(full.c_str(), names, sizeof names);
    if (length < 0) return errno;
    for (ssize_t at = 0; at < length;) {
      std::string xname = names + at;
      at += static_cast<ssize_t>(xname.size()) + 1;
      if (xname.compare(0, 5, "user.") != 0) continue;
      char value[4096];
      ssize_t value_length = lgetxattr(full.c_str(), xname.c_str(), value, sizeof value);
      if (value_length < 0) return errno;
      entry.xattrs[xname] = std::string(value, static_cast<size_t>(value_length));
    }
    bool is_dir = entry.dir;
    tree[rel] = std::move(entry);
    if (is_dir) {
      if (int sub = scan_into(root, rel, tree)) return sub;
    }
  }
  return 0;
}

// Builds a model equal to a scanned tree (a worker's starting point).
Model model_of(const Tree& tree) {
  Model model;
  std::map<ino_t, uint64_t> ids;
  for (const auto& [path, entry] : tree) {
    auto found = ids.find(entry.ino);
    if (found != ids.end() && !entry.dir) {
      model.names[path] = found->second;
      continue;
    }
    uint64_t id = model.next_id++;
    ids[entry.ino] = id;
    model.nodes[id] = Node{entry.dir, entry.mode, entry.data, entry.xattrs, false};
    model.names[path] = id;
  }
  return model;
}

// ---------------------------------------------------------------------------
// Comparing a tree with a model.

// A store that may be only partly done: its node may show, byte by byte,
// `before` or the model's (after) bytes.
struct Lenient {
  uint64_t id = 0;     // the node an in-place store was in flight on
  std::string before;  // its bytes before the store
};
using Lenients = std::vector<Lenient>;

struct Mismatches {
  std::vector<std::string> lines;
  uint64_t bytes_lost = 0;       // bytes of returned writes not found intact
  uint64_t synced_failures = 0;  // mismatching files whose last change was fsync'd
  bool empty() const { return lines.empty(); }
};

// Bytes of `want` not found at the same offset in `got`.
uint64_t bytes_differing(const std::string& want, const std::string& got) {
  uint64_t count = 0;
  for (size_t i = 0; i < want.size(); ++i) count += i >= got.size() || got[i] != want[i];
  return count;
}

Mismatches compare(const Model& model, const Tree& tree, const Lenients& lenients) {
  Mismatches out;
  auto fail = [&](const std::string& line, const Node* node, uint64_t lost) {
    out.lines.push_back(line);
    out.bytes_lost += lost;
    if (node && node->synced) out.synced_failures++;
  };
  std::map<uint64_t, ino_t> ino_of;
  std::map<ino_t, uint64_t> id_of;
  for (const auto& [path, id] : model.names) {
    const Node& node = model.nodes.at(id);
    auto it = tree.find(path);
    if (it == tree.end()) {
      fail(path + ": missing", &node, node.dir ? 0 : node.data.size());
      continue;
    }
    const Entry& entry = it->second;
    if (entry.dir != node.dir) {
      fail(path + ": is a " + (entry.dir ? "directory" : "file") + ", want the other", &node,
           node.data.size());
      continue;
    }
    if (entry.mode != node.mode) {
      char line[64];
      std::snprintf(line, sizeof line, ": mode %o, want %o", entry.mode, node.mode);
      fail(path + line, &node, 0);
    }
    if (!node.dir) {
      auto [ino_it, fresh] = ino_of.emplace(id, entry.ino);
      auto [id_it, fresh_id] = id_of.emplace(entry.ino, id);
      if (ino_it->second != entry.ino || id_it->second != id)
        fail(path + ": hard links do not group as expected (inode " + std::to_string(entry.ino) + ")", &node,
             0);
      if (entry.nlink != model.links(id))
        fail(path + ": nlink " + std::to_string(entry.nlink) + ", want " + std::to_string(model.links(id)),
             &node, 0);
      std::vector<const std::string*> candidates;  // what each byte may be
      for (const Lenient& lenient : lenients)
        if (lenient.id == id) candidates.push_back(&lenient.before);
      if (!candidates.empty()) {
        const std::string& after = node.data;
        candidates.push_back(&after);
        auto at = [](const std::string& s, size_t i) { return i < s.size() ? s[i] : '\0'; };
        // The kernel may split one write(2) into several FUSE writes, each
        // ending on a page boundary (it ends a request at a page the write
        // covers only in part and that is not cached): a kill between them
        // leaves a size at such a boundary between the old and the new one.
        size_t size = entry.data.size(), smallest = SIZE_MAX, largest = 0;
        bool size_ok = false;
        for (const std::string* candidate : candidates) {
          size_ok = size_ok || size == candidate->size();
          smallest = std::min(smallest, candidate->size());
          largest = std::max(largest, candidate->size());
        }
        size_ok = size_ok || (size > smallest && size < largest && size % 4096 == 0);
        size_t bad = 0;
        for (size_t i = 0; i < entry.data.size(); ++i) {
          bool any = false;
          for (const std::string* candidate : candidates) any = any || entry.data[i] == at(*candidate, i);
          bad += !any;
        }
        if (!size_ok || bad)
          fail(path + ": in-flight store left size " + std::to_string(size) + " (old " +
                   std::to_string(smallest) + ", new " + std::to_string(after.size()) + "), " +
                   std::to_string(bad) + " bytes neither old nor new",
               &node, bad + (size < smallest ? smallest - size : 0));
      } else if (entry.data != node.data) {
        fail(path + ": size " + std::to_string(entry.data.size()) + " xxh3 " +
                 std::to_string(hash_of(entry.data)) + ", want size " + std::to_string(node.data.size()) +
                 " xxh3 " + std::to_string(hash_of(node.data)),
             &node, bytes_differing(node.data, entry.data));
      }
    }
    if (entry.xattrs != node.xattrs) fail(path + ": xattrs differ", &node, 0);
  }
  for (const auto& [path, entry] : tree) {
    if (!model.exists(path)) fail(path + ": exists but should not", nullptr, 0);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Logs.

struct Log {
  Model base;
  std::vector<Op> ops;                                       // in log order
  std::map<uint64_t, int64_t> acks;                          // seq -> result
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> synced;  // fsync seq -> size, hash
  uint64_t errors_at_kill = 0;                               // K lines
};

// The snapshot is text too: lines "N <id> <d|f> <mode> <path>", then
// "S <id> <size>", "D <id> <offset> <hex bytes>" for each 4 KiB block of a
// file that is not all zero, "X <id> <name> <hex value>", ended by "B".
std::string hex(const std::string& bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

std::string unhex(const char* text, size_t length) {
  auto value = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  std::string out(length / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<char>(value(text[2 * i]) << 4 | value(text[2 * i + 1]));
  return out;
}

std::string snapshot_of(const Model& model) {
  std::string out;
  for (const auto& [path, id] : model.names) {
    char line[64];
    std::snprintf(line, sizeof line, "N %" PRIu64 " %c %o ", id, model.nodes.at(id).dir ? 'd' : 'f',
                  model.nodes.at(id).mode);
    out += line + path + "\n";
  }
  for (const auto& [id, node] : model.nodes) {
    if (!node.data.empty()) out += "S " + std::to_string(id) + " " + std::to_string(node.data.size()) + "\n";
    for (size_t offset = 0; offset < node.data.size(); offset += 4096) {
      std::string block = node.data.substr(offset, 4096);
      if (block.find_first_not_of('\0') == std::string::npos) continue;
      out += "D " + std::to_string(id) + " " + std::to_string(offset) + " " + hex(block) + "\n";
    }
    for (const auto& [name, value] : node.xattrs)
      out += "X " + std::to_string(id) + " " + name + " " + token(hex(value)) + "\n";
  }
  out += "B\n";
  return out;
}

std::optional<Log> read_log(const std::string& path, std::string& error) {
  FILE* file = std::fopen(path.c_str(), "r");
  if (!file) {
    error = path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::string text;
  char buffer[1 << 16];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0) text.append(buffer, n);
  std::fclose(file);
  Log log;
  bool in_snapshot = true;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) break;  // a line cut short by the kill: never acted on
    std::string line = text.substr(at, end - at);
    at = end + 1;
    char kind = line.empty() ? '?' : line[0];
    if (in_snapshot) {
      uint64_t id = 0;
      if (kind == 'N') {
        char type;
        unsigned mode;
        int consumed = 0;
        if (std::sscanf(line.c_str(), "N %" SCNu64 " %c %o %n", &id, &type, &mode, &consumed) < 3) break;
        Node& node = log.base.nodes[id];
        node.dir = type == 'd';
        node.mode = mode;
        log.base.names[line.substr(static_cast<size_t>(consumed))] = id;
        log.base.next_id = std::max(log.base.next_id, id + 1);
      } else if (kind == 'S') {
        uint64_t size = 0;
        std::sscanf(line.c_str(), "S %" SCNu64 " %" SCNu64, &id, &size);
        log.base.nodes[id].data.assign(size, '\0');
      } else if (kind == 'D') {
        int consumed = 0;
        uint64_t offset = 0;
        std::sscanf(line.c_str(), "D %" SCNu64 " %" SCNu64 " %n", &id, &offset, &consumed);
        std::string block = unhex(line.c_str() + consumed, line.size() - static_cast<size_t>(consumed));
        std::string& data = log.base.nodes[id].data;
        if (offset + block.size() > data.size()) {
          error = path + ": snapshot block past the file's size";
          return std::nullopt;
        }
        std::memcpy(data.data() + offset, block.data(), block.size());
      } else if (kind == 'X') {
        char name[64], value[2 * kMaxXattrValue + 8];
        static_assert(sizeof value == 408, "the %407s below must leave room for the NUL");
        std::sscanf(line.c_str(), "X %" SCNu64 " %63s %407s", &id, name, value);
        std::string v = untoken(value);
        log.base.nodes[id].xattrs[name] = unhex(v.c_str(), v.size());
      } else if (kind == 'B') {
        in_snapshot = false;
      } else {
        error = path + ": bad snapshot line: " + line;
        return std::nullopt;
      }
      continue;
    }
    if (kind == 'I') {
      Op op;
      char op_kind[32], p1[512], p2[512];
      if (std::sscanf(line.c_str(), "I %" SCNu64 " %31s %511s %511s %" SCNu64 " %" SCNu64 " %" SCNu64,
                      &op.seq, op_kind, p1, p2, &op.x, &op.y, &op.z) != 7) {
        error = path + ": bad intent line: " + line;
        return std::nullopt;
      }
      op.kind = op_kind;
      op.path = untoken(p1);
      op.path2 = untoken(p2);
      log.ops.push_back(op);
    } else if (kind == 'K') {
      log.errors_at_kill++;
    } else if (kind == 'A') {
      uint64_t seq, size, hash;
      int64_t result;
      int fields = std::sscanf(line.c_str(), "A %" SCNu64 " %" SCNd64 " %" SCNu64 " %" SCNu64, &seq, &result,
                               &size, &hash);
      if (fields < 2) {
        error = path + ": bad ack line: " + line;
        return std::nullopt;
      }
      log.acks[seq] = result;
      if (fields == 4) log.synced[seq] = {size, hash};
    } else {
      error = path + ": bad line: " + line;
      return std::nullopt;
    }
  }
  if (in_snapshot) {
    error = path + ": snapshot incomplete";
    return std::nullopt;
  }
  return log;
}

struct Options {
  std::string mnt, state;
  uint64_t seed = 1;
  int workers = 2;
  uint64_t ops = UINT64_MAX;
  bool verify = false;  // run: check the previous logs first
};

// ---------------------------------------------------------------------------
// verify

struct Totals {
  uint64_t acked = 0, in_flight = 0, files = 0, failures = 0, synced_failures = 0, bytes_lost = 0;
  uint64_t errors_at_kill = 0;
};

// Checks worker `index`'s scanned subtree against its log, adding to
// totals. Returns false on an operational error (message printed).
bool verify_worker(const std::string& log_path, int index, const Tree& tree, Totals& totals) {
  if (access(log_path.c_str(), F_OK) != 0) return true;  // this worker never started
  std::string error;
  std::optional<Log> log = read_log(log_path, error);
  if (!log) {
    std::fprintf(stderr, "verify: %s\n", error.c_str());
    return false;
  }
  totals.errors_at_kill += log->errors_at_kill;
  Model model = log->base;
  std::optional<Op> in_flight;
  std::optional<Op> short_write;
  Lenients lenients;
  std::vector<std::string> problems;
  for (const Op& op : log->ops) {
    if (in_flight) {
      problems.push_back("seq " + std::to_string(op.seq) + " logged after an operation in flight");
      break;
    }
    auto ack = log->acks.find(op.seq);
    if (ack == log->acks.end() || ack->second == -ENOTCONN || ack->second == -ECONNABORTED) {
      in_flight = op;
      continue;
    }
    if (ack->second < 0) continue;  // a failed call changes nothing (the workload failed the run)
    if (short_write) {
      problems.push_back("seq " + std::to_string(op.seq) + " returned after the short write seq " +
                         std::to_string(short_write->seq) + " (only a dying connection cuts a write short)");
      break;
    }
    totals.acked++;
    if (op.kind == "write" && static_cast<uint64_t>(ack->second) < op.y && model.is_file(op.path)) {
      // A write(2) the kernel sent as several FUSE writes, cut short when
      // the daemon died between them: it returns what the first ones
      // wrote, and the daemon may have done the next one too before dying.
      // The returned part must be there; the rest is in flight.
      short_write = op;
      if (!apply(model, op, ack->second)) {
        problems.push_back("the model refuses acknowledged " + op.kind + " " + op.path);
        break;
      }
      lenients.push_back({model.names.at(op.path), model.node(op.path)->data});
      (void)apply(model, op, static_cast<int64_t>(op.y));
      totals.in_flight++;
      continue;
    }
    if (!apply(model, op, ack->second)) {
      problems.push_back("the model refuses acknowledged " + op.kind + " " + op.path);
      break;
    }
    auto synced = log->synced.find(op.seq);
    if (synced != log->synced.end()) {
      const Node* node = model.node(op.path);
      if (!node || node->data.size() != synced->second.first || hash_of(node->data) != synced->second.second)
        problems.push_back("replay disagrees with the workload at fsync " + op.path);
    }
  }
  totals.files += tree.size();
  Mismatches result = compare(model, tree, lenients);
  if (!result.empty() && in_flight) {
    totals.in_flight++;
    Model after = model;
    if (apply(after, *in_flight, static_cast<int64_t>(in_flight->y))) {
      Lenients with_store = lenients;
      if (stores_bytes(*in_flight))
        with_store.push_back({model.names.at(in_flight->path), model.node(in_flight->path)->data});
      Mismatches other = compare(after, tree, with_store);
      if (other.lines.size() <= result.lines.size()) result = other;
    }
  } else if (in_flight) {
    totals.in_flight++;
  }
  for (const std::string& problem : problems) result.lines.push_back("log: " + problem);
  if (!result.empty()) {
    std::printf(
        "worker %d: %zu mismatches%s\n", index, result.lines.size(),
        in_flight ? (" (in flight: " + in_flight->kind + " " + in_flight->path + " " + in_flight->path2 + ")")
                        .c_str()
                  : "");
    for (size_t i = 0; i < result.lines.size() && i < 20; ++i)
      std::printf("  w%d/%s\n", index, result.lines[i].c_str());
  }
  totals.failures += result.lines.size();
  totals.synced_failures += result.synced_failures;
  totals.bytes_lost += result.bytes_lost;
  return true;
}

void print_totals(const Totals& totals) {
  std::printf("verify: acked_ops=%" PRIu64 " in_flight=%" PRIu64 " errors_at_kill=%" PRIu64
              " entries=%" PRIu64 " failures=%" PRIu64 " fsynced_failures=%" PRIu64 " bytes_lost=%" PRIu64
              "\n",
              totals.acked, totals.in_flight, totals.errors_at_kill, totals.files, totals.failures,
              totals.synced_failures, totals.bytes_lost);
  std::fflush(stdout);
}

int verify(const Options& options) {
  Totals totals;
  bool ok = true;
  for (int i = 0; i < options.workers; ++i) {
    Tree tree;
    std::string root = options.mnt + "/w" + std::to_string(i);
    if (int error = scan_into(root, "", tree); error && error != ENOENT) {
      std::fprintf(stderr, "verify: scan %s: %s\n", root.c_str(), std::strerror(error));
      ok = false;
      continue;
    }
    ok = verify_worker(options.state + "/log.w" + std::to_string(i), i, tree, totals) && ok;
  }
  print_totals(totals);
  if (!ok) return kExitUsage;
  return totals.failures == 0 ? 0 : kExitFailure;
}

// ---------------------------------------------------------------------------
// run

class Worker {
 public:
  Worker(const Options& options, int index)
      : m_index(index),
        m_root(options.mnt + "/w" + std::to_string(index)),
        m_log_path(options.state + "/log.w" + std::to_string(index)),
        m_random(options.seed * 1000003 + static_cast<uint64_t>(index)),
        m_ops(options.ops) {}

  // Scans the subtree and, with --verify, checks it against the previous
  // log. Returns false on an operational error.
  bool prepare(bool check, Totals& totals) {
    if (mkdir(m_root.c_str(), 0755) != 0 && errno != EEXIST) {
      stop("mkdir " + m_root, errno);
      return false;
    }
    Tree tree;
    if (int error = scan_into(m_root, "", tree)) {
      stop("scan " + m_root, error);
      return false;
    }
    if (check && !verify_worker(m_log_path, m_index, tree, totals)) return false;
    m_model = model_of(tree);
    return true;
  }

  // Starts a new log from the model (its snapshot first), then runs.
  // `started` is counted down once the log is in place.
  void run(std::latch& started) {
    // The new log, complete with its snapshot, replaces the old one in one
    // rename.
    std::string temporary = m_log_path + ".new";
    m_log = open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    if (m_log < 0) die("open", temporary + ": " + std::strerror(errno));
    emit(snapshot_of(m_model));
    if (rename(temporary.c_str(), m_log_path.c_str()) != 0)
      die("rename", m_log_path + ": " + std::strerror(errno));
    started.count_down();
    for (uint64_t done = 0; done < m_ops && !m_stopped; ++done) step();
    close(m_log);
  }

 private:
  uint64_t random(uint64_t bound) { return bound == 0 ? 0 : m_random() % bound; }
  bool chance(unsigned percent) { return random(100) < percent; }
  std::string full(const std::string& path) const { return path == "." ? m_root : m_root + "/" + path; }

  void emit(const std::string& text) {
    size_t done = 0;
    while (done < text.size()) {
      ssize_t n = write(m_log, text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) die("write log", std::strerror(errno));
      done += static_cast<size_t>(n);
    }
  }

  static bool daemon_gone(int error) { return error == ENOTCONN || error == ECONNABORTED; }

  // True when the FUSE connection is gone: statfs always asks the daemon
  // (nothing answers it from a cache). A real failure that happens just
  // before the kill could pass for a kill artifact here; the window is the
  // few microseconds between the failed call and this one.
  bool connection_lost() const {
    struct statfs st {};
    return statfs(m_root.c_str(), &st) != 0 && daemon_gone(errno);
  }

  void stop(const std::string& what, int error) {
    m_stopped = true;
    if (daemon_gone(error)) return;
    // Anything else is a failure. Stop everything at once: the driver kills
    // the process right after the daemon, which would hide a later exit.
    std::fprintf(stderr, "pkfs_torture_workload: %s: %s\n", what.c_str(), std::strerror(error));
    std::_Exit(kExitUnexpected);
  }

  std::vector<std::string> paths(bool dirs) const {
    std::vector<std::string> out;
    for (const auto& [path, id] : m_model.names)
      if (m_model.nodes.at(id).dir == dirs) out.push_back(path);
    return out;
  }
  template <typename T>
  const T& pick(const std::vector<T>& from) {
    return from[random(from.size())];
  }
  // A name that does not exist yet, in an existing directory.
  std::optional<std::string> fresh_name(bool dir) {
    std::vector<std::string> dirs = paths(true);
    for (int attempt = 0; attempt < 8; ++attempt) {
      std::string path;
      if (dir) {
        // Two levels: d<k> at the root, e<k> below one.
        if (chance(50) || dirs.empty()) {
          path = "d" + std::to_string(random(5));
        } else {
          std::string parent = pick(dirs);
          if (parent.find('/') != std::string::npos) continue;
          path = parent + "/e" + std::to_string(random(3));
        }
      } else {
        std::string name = "f" + std::to_string(random(24));
        path = dirs.empty() || chance(30) ? name : pick(dirs) + "/" + name;
      }
      if (!m_model.exists(path)) return path;
    }
    return std::nullopt;
  }

  // Logs the intent, runs the call, logs the result; applies it to the
  // model on success. Returns false when the worker stopped.
  template <typename Call>
  bool perform(Op op, Call call) {
    if (m_stopped) return false;  // the daemon is gone: nothing more is logged
    op.seq = m_seq++;
    emit(format_intent(op));
    errno = 0;
    int64_t result = call();
    int error = result < 0 ? errno : 0;
    if (result < 0 && !daemon_gone(error) && connection_lost()) {
      // The kernel may answer a request the dying daemon never answered
      // with another error than ENOTCONN/ECONNABORTED (EIO, seen on a
      // write). Once the connection is gone, that call is in flight like
      // any other: it may or may not have taken effect.
      emit("K " + std::to_string(op.seq) + " " + std::to_string(error) + "\n");
      error = ECONNABORTED;
    }
    std::string ack = "A " + std::to_string(op.seq) + " " + std::to_string(result < 0 ? -error : result);
    if (result >= 0 && (op.kind == "fsync")) {
      const Node* node = m_model.node(op.path);
      if (node) ack += " " + std::to_string(node->data.size()) + " " + std::to_string(hash_of(node->data));
    }
    emit(ack + "\n");
    if (result < 0) {
      stop(op.kind + " " + op.path + (op.path2.empty() ? "" : " " + op.path2), error);
      return false;
    }
    if (!apply(m_model, op, result)) {
      std::fprintf(stderr, "pkfs_torture_workload: model refuses %s %s\n", op.kind.c_str(), op.path.c_str());
      std::_Exit(kExitUnexpected);
    }
    return true;
  }

  // Opens path, runs body(fd), closes. The open and close are not logged:
  // they change nothing the checker looks at.
  template <typename Body>
  int64_t with_fd(const std::string& path, int flags, Body body) {
    int fd = open(full(path).c_str(), flags);
    if (fd < 0) return -1;
    int64_t result = body(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return result;
  }

  bool do_fsync(const std::string& path) {
    Op op{0, "fsync", path, "", 0, 0, 0};
    return perform(op, [&] { return with_fd(path, O_RDONLY, [](int fd) -> int64_t { return fsync(fd); }); });
  }
  bool do_fsyncdir(const std::string& path) {
    Op op{0, "fsyncdir", path, "", 0, 0, 0};
    return perform(op, [&] {
      return with_fd(path, O_RDONLY | O_DIRECTORY, [](int fd) -> int64_t { return fsync(fd); });
    });
  }

  void step() {
    std::vector<std::string> files = paths(false);
    std::vector<std::string> dirs = paths(true);
    uint64_t total = m_model.total_bytes();
    bool room = m_model.names.size() < kMaxNames;
    unsigned roll = static_cast<unsigned>(random(100));

    if (roll < 12 || files.empty()) {  // create, sometimes with content
      if (!room) return clear_some();
      auto path = fresh_name(false);
      if (!path) return;
      uint32_t mode = kFileModes[random(std::size(kFileModes))];
      Op op{0, "create", *path, "", mode, 0, 0};
      if (!perform(op, [&] {
            int fd = open(full(*path).c_str(), O_CREAT | O_EXCL | O_WRONLY, mode);
            return fd < 0 ? -1 : close(fd);
          }))
        return;
      if (chance(50)) do_fsyncdir(parent_of(*path));
      return;
    }
    if (roll < 40) {  // write, then often fsync
      const std::string& path = pick(files);
      const Node* node = m_model.node(path);
      uint64_t size = node->data.size();
      uint64_t offset = chance(40) ? size : random(size + 8192);
      uint64_t length = chance(40) ? 1 + random(512) : chance(60) ? 1 + random(8192) : 1 + random(65536);
      if (offset + length > kMaxFileBytes || total + length > kMaxBytes) return clear_some();
      Op op{0, "write", path, "", offset, length, m_random()};
      std::string bytes = generate(op.z, length);
      if (!perform(op, [&] {
            return with_fd(path, O_WRONLY, [&](int fd) -> int64_t {
              return pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
            });
          }))
        return;
      if (chance(60)) do_fsync(path);
      return;
    }
    if (roll < 48) {  // rename, over an existing file or to a new name
      if (chance(10) && !dirs.empty()) {
        const std::string& from = pick(dirs);
        auto to = fresh_name(true);
        if (!to || to->compare(0, from.size() + 1, from + "/") == 0) return;
        Op op{0, "rename", from, *to, 0, 0, 0};
        if (perform(op, [&] { return int64_t{rename(full(from).c_str(), full(*to).c_str())}; }))
          do_fsyncdir(parent_of(*to));
        return;
      }
      const std::string& from = pick(files);
      std::string to;
      if (chance(50)) {
        to = pick(files);
      } else {
        auto fresh = fresh_name(false);
        if (!fresh) return;
        to = *fresh;
      }
      Op op{0, "rename", from, to, 0, 0, 0};
      if (!perform(op, [&] { return int64_t{rename(full(from).c_str(), full(to).c_str())}; })) return;
      if (chance(70) && do_fsyncdir(parent_of(to)) && parent_of(to) != parent_of(from))
        do_fsyncdir(parent_of(from));
      return;
    }
    if (roll < 55) {  // unlink
      const std::string& path = pick(files);
      Op op{0, "unlink", path, "", 0, 0, 0};
      if (perform(op, [&] { return int64_t{unlink(full(path).c_str())}; }) && chance(50))
        do_fsyncdir(parent_of(path));
      return;
    }
    if (roll < 61) {  // mkdir
      if (!room) return clear_some();
      auto path = fresh_name(true);
      if (!path) return;
      uint32_t mode = kDirModes[random(std::size(kDirModes))];
      Op op{0, "mkdir", *path, "", mode, 0, 0};
      perform(op, [&] { return int64_t{mkdir(full(*path).c_str(), mode)}; });
      return;
    }
    if (roll < 65) {  // rmdir, or empty a directory first
      if (dirs.empty()) return;
      return clear_dir(pick(dirs));
    }
    if (roll < 72) {  // truncate
      const std::string& path = pick(files);
      uint64_t size = m_model.node(path)->data.size();
      uint64_t new_size = chance(30) ? 0 : chance(50) ? random(size + 1) : size + random(uint64_t{1} << 20);
      if (new_size > kMaxFileBytes || total - size + new_size > kMaxBytes) return clear_some();
      Op op{0, "truncate", path, "", new_size, 0, 0};
      perform(op, [&] { return int64_t{truncate(full(path).c_str(), static_cast<off_t>(new_size))}; });
      if (chance(30)) do_fsync(path);
      return;
    }
    if (roll < 80) {  // fallocate
      const std::string& path = pick(files);
      uint64_t size = m_model.node(path)->data.size();
      static const int kModes[] = {0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                   FALLOC_FL_ZERO_RANGE, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE};
      int mode = kModes[random(std::size(kModes))];
      uint64_t offset, length;
      if (size == 0 && mode == 0 && chance(50)) {
        // A guest-RAM-like file: sized from empty, gets 2 MiB extents.
        offset = 0;
        length = (uint64_t{1} + random(2)) << 21;
      } else {
        offset = random(size + 16384);
        length = 1 + random(chance(70) ? 16384 : 262144);
      }
      uint64_t end = offset + length;
      if (end > kMaxFileBytes || total + (end > size ? end - size : 0) > kMaxBytes) return clear_some();
      Op op{0, "fallocate", path, "", static_cast<uint64_t>(mode), offset, length};
      perform(op, [&] {
        return with_fd(path, O_WRONLY, [&](int fd) -> int64_t {
          return fallocate(fd, mode, static_cast<off_t>(offset), static_cast<off_t>(length));
        });
      });
      if (chance(30)) do_fsync(path);
      return;
    }
    if (roll < 88) {  // setxattr / removexattr
      const std::string& path = chance(85) || dirs.empty() ? pick(files) : pick(dirs);
      const Node* node = m_model.node(path);
      std::string name = kXattrNames[random(std::size(kXattrNames))];
      if (node->xattrs.count(name) && chance(40)) {
        Op op{0, "removexattr", path, name, 0, 0, 0};
        perform(op, [&] { return int64_t{removexattr(full(path).c_str(), name.c_str())}; });
      } else {
        uint64_t length = random(kMaxXattrValue + 1);
        Op op{0, "setxattr", path, name, length, m_random(), 0};
        std::string value = generate(op.y, length);
        perform(op, [&] {
          return int64_t{setxattr(full(path).c_str(), name.c_str(), value.data(), value.size(), 0)};
        });
      }
      if (chance(30)) do_fsync(path);
      return;
    }
    if (roll < 91) {  // link
      if (!room) return clear_some();
      const std::string& from = pick(files);
      auto to = fresh_name(false);
      if (!to) return;
      Op op{0, "link", from, *to, 0, 0, 0};
      if (perform(op, [&] { return int64_t{link(full(from).c_str(), full(*to).c_str())}; }) && chance(50))
        do_fsyncdir(parent_of(*to));
      return;
    }
    if (roll < 94) {  // exchange two files (renameat2 RENAME_EXCHANGE)
      const std::string& a = pick(files);
      const std::string& b = pick(files);
      Op op{0, "exchange", a, b, 0, 0, 0};
      if (perform(op,
                  [&] {
                    return int64_t{
                        renameat2(AT_FDCWD, full(a).c_str(), AT_FDCWD, full(b).c_str(), RENAME_EXCHANGE)};
                  }) &&
          chance(50))
        do_fsyncdir(parent_of(a));
      return;
    }
    if (roll < 97) return orphan(files);
    {  // chmod
      const std::string& path = chance(80) || dirs.empty() ? pick(files) : pick(dirs);
      uint32_t mode = m_model.node(path)->dir ? kDirModes[random(std::size(kDirModes))]
                                              : kFileModes[random(std::size(kFileModes))];
      Op op{0, "chmod", path, "", mode, 0, 0};
      perform(op, [&] { return int64_t{chmod(full(path).c_str(), mode)}; });
    }
  }

  // Unlinks a file with one link while holding it open, then writes to it
  // through the descriptor: an orphan, which the kill may leave for the
  // next mount to reclaim. Its bytes are not in the model: nothing in the
  // tree can see them. A few stay open from one operation to the next.
  void orphan(const std::vector<std::string>& files) {
    const std::string& path = pick(files);
    if (m_model.links(m_model.names.at(path)) != 1) return;
    if (m_orphans.size() >= 3) {
      close(m_orphans.front());
      m_orphans.erase(m_orphans.begin());
    }
    int fd = open(full(path).c_str(), O_RDWR);
    if (fd < 0) return stop("open " + path, errno);
    m_orphans.push_back(fd);
    Op op{0, "unlink", path, "", 0, 0, 0};
    if (!perform(op, [&] { return int64_t{unlink(full(path).c_str())}; })) return;
    std::string bytes = generate(m_random(), 1 + random(65536));
    if (pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(random(262144))) < 0)
      return stop("write to orphan " + path, errno);
    if (chance(30) && ftruncate(fd, static_cast<off_t>(random(131072))) != 0)
      return stop("truncate orphan " + path, errno);
  }

  // Unlinks a file or removes an empty directory, to make room.
  void clear_some() {
    std::vector<std::string> files = paths(false);
    if (!files.empty() && (chance(70) || paths(true).empty())) {
      const std::string& path = pick(files);
      Op op{0, "unlink", path, "", 0, 0, 0};
      perform(op, [&] { return int64_t{unlink(full(path).c_str())}; });
      return;
    }
    std::vector<std::string> dirs = paths(true);
    if (!dirs.empty()) clear_dir(pick(dirs));
  }

  // Removes one thing from dir: its first entry, or dir itself when empty.
  void clear_dir(const std::string& dir) {
    if (m_model.dir_empty(dir)) {
      Op op{0, "rmdir", dir, "", 0, 0, 0};
      if (perform(op, [&] { return int64_t{rmdir(full(dir).c_str())}; })) do_fsyncdir(parent_of(dir));
      return;
    }
    std::string inside = m_model.names.lower_bound(dir + "/")->first;
    if (m_model.is_dir(inside)) return clear_dir(inside);
    Op op{0, "unlink", inside, "", 0, 0, 0};
    perform(op, [&] { return int64_t{unlink(full(inside).c_str())}; });
  }

  int m_index;
  std::string m_root, m_log_path;
  std::mt19937_64 m_random;
  uint64_t m_ops;
  Model m_model;
  int m_log = -1;
  uint64_t m_seq = 1;
  bool m_stopped = false;
  std::vector<int> m_orphans;  // descriptors of unlinked files, kept open
};

int run(const Options& options) {
  umask(0);
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<Totals> totals(static_cast<size_t>(options.workers));
  std::vector<char> prepared(static_cast<size_t>(options.workers));
  std::vector<std::thread> threads;
  for (int i = 0; i < options.workers; ++i) workers.push_back(std::make_unique<Worker>(options, i));
  for (size_t i = 0; i < workers.size(); ++i)
    threads.emplace_back([&, i] { prepared[i] = workers[i]->prepare(options.verify, totals[i]); });
  for (auto& thread : threads) thread.join();
  threads.clear();
  if (std::count(prepared.begin(), prepared.end(), 0) != 0) return kExitUsage;
  if (options.verify) {
    Totals sum;
    for (const Totals& t : totals) {
      sum.acked += t.acked;
      sum.in_flight += t.in_flight;
      sum.files += t.files;
      sum.failures += t.failures;
      sum.synced_failures += t.synced_failures;
      sum.bytes_lost += t.bytes_lost;
      sum.errors_at_kill += t.errors_at_kill;
    }
    print_totals(sum);
    // The tree stays as found: evidence for a diagnosis.
    if (sum.failures != 0) return kExitFailure;
  }
  std::latch started(options.workers);
  for (auto& worker : workers) threads.emplace_back([&] { worker->run(started); });
  started.wait();
  std::printf("ready\n");
  std::fflush(stdout);
  for (auto& thread : threads) thread.join();
  return 0;
}

uint64_t parse_number(const char* text, const char* what) {
  char* end = nullptr;
  errno = 0;
  unsigned long long value = std::strtoull(text, &end, 10);
  if (errno || end == text || *end) die(what, std::string("not a number: ") + text);
  return value;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr,
                 "usage: pkfs_torture_workload run MNT STATE [--verify] [--seed S] [--workers N] [--ops N]\n"
                 "       pkfs_torture_workload verify MNT STATE [--workers N]\n");
    return kExitUsage;
  }
  std::string mode = argv[1];
  Options options;
  options.mnt = argv[2];
  options.state = argv[3];
  for (int i = 4; i < argc; ++i) {
    std::string option = argv[i];
    if (option == "--verify") {
      options.verify = true;
      continue;
    }
    if (i + 1 >= argc) die("usage", option + " needs a value");
    const char* value = argv[++i];
    if (option == "--seed") {
      options.seed = parse_number(value, "--seed");
    } else if (option == "--workers") {
      options.workers = static_cast<int>(parse_number(value, "--workers"));
      if (options.workers < 1 || options.workers > 16) die("--workers", "must be 1 to 16");
    } else if (option == "--ops") {
      options.ops = parse_number(value, "--ops");
    } else {
      die("usage", "unknown option " + option);
    }
  }
  if (mode == "run") return run(options);
  if (mode == "verify") return verify(options);
  die("usage", "unknown mode " + mode);
}
