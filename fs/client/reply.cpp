// fs/client/reply.cpp: what libpkfs checks before it trusts a daemon's word
// (see protocol.h, "libpkfs's checks", and pkfs.h, "Who libpkfs trusts").
//
// Owns: parsing a map reply, /proc/self/mountinfo and the generation xattr,
// and judging a region descriptor from facts gathered by the one function
// here that makes system calls. Every parser reads its input through
// bounded views and copies each record into a local value before looking
// at it, so no input bytes, however hostile, make it read out of bounds,
// overflow or allocate more than the input's size.
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "fs/base/result.h"
#include "fs/client/protocol.h"

namespace pkfs::control {
namespace {

std::string number(uint64_t value) { return std::to_string(value); }

std::string hex(uint64_t value) {
  char text[24];
  std::snprintf(text, sizeof text, "%#llx", static_cast<unsigned long long>(value));
  return text;
}

// Parses all of `text` as a decimal number without sign or space.
bool parse_decimal(std::string_view text, uint64_t& value) {
  if (text.empty() || text.size() > 20) return false;
  uint64_t result = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    auto digit = static_cast<uint64_t>(c - '0');
    if (result > (UINT64_MAX - digit) / 10) return false;
    result = result * 10 + digit;
  }
  value = result;
  return true;
}

// Undoes the octal escapes (\040 for a space, \134 for a backslash) the
// kernel writes into mountinfo fields.
std::string unescape(std::string_view field) {
  std::string out;
  out.reserve(field.size());
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && field.size() - i >= 4) {
      int value = 0;
      bool octal = true;
      for (size_t k = 1; k <= 3; ++k) {
        char c = field[i + k];
        if (c < '0' || c > '7') {
          octal = false;
          break;
        }
        value = value * 8 + (c - '0');
      }
      if (octal && value <= 0xff) {
        out.push_back(static_cast<char>(value));
        i += 3;
        continue;
      }
    }
    out.push_back(field[i]);
  }
  return out;
}

// Splits `text` at every `separator`, keeping empty pieces.
std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> pieces;
  size_t start = 0;
  for (;;) {
    size_t end = text.find(separator, start);
    if (end == std::string_view::npos) {
      pieces.push_back(text.substr(start));
      return pieces;
    }
    pieces.push_back(text.substr(start, end - start));
    start = end + 1;
  }
}

}  // namespace

int parse_map_reply(const std::vector<std::byte>& payload, MapReply& head, std::vector<ExtentRecord>& extents,
                    std::string& region_path, std::string& error) {
  extents.clear();
  region_path.clear();
  auto bad = [&error](const std::string& what) {
    error = "the daemon's map reply is invalid: " + what;
    return EPROTO;
  };
  if (payload.size() < sizeof head) {
    return bad(number(payload.size()) + " bytes, less than the " + number(sizeof head) + "-byte head");
  }
  std::memcpy(&head, payload.data(), sizeof head);
  // Copied once: what is checked below is what the caller uses.
  const MapReply info = head;
  size_t rest = payload.size() - sizeof info;
  if (info.extent_count > rest / sizeof(ExtentRecord)) {
    return bad("it lists " + number(info.extent_count) + " extents but carries bytes for " +
               number(rest / sizeof(ExtentRecord)));
  }
  uint64_t page = info.page_size;
  if (page < kMinPageSize || page > kMaxPageSize || (page & (page - 1)) != 0) {
    return bad("page size " + number(page) + " is not a power of two from 4 KiB to 1 GiB");
  }
  if (info.mapped_bytes == 0) return bad("it maps no bytes");
  if (info.mapped_bytes % page != 0 || info.file_size > info.mapped_bytes ||
      info.mapped_bytes - info.file_size >= page) {
    return bad("mapped bytes " + number(info.mapped_bytes) + " are not the file size " +
               number(info.file_size) + " rounded up to the page size " + number(page));
  }
  if (info.mapped_bytes > info.region_size) {
    return bad("it maps " + number(info.mapped_bytes) + " bytes of a " + number(info.region_size) +
               "-byte region");
  }
  auto count = static_cast<size_t>(info.extent_count);
  const std::byte* records = payload.data() + sizeof info;
  std::vector<ExtentRecord> parsed;
  parsed.reserve(count);
  uint64_t next = 0;
  for (size_t i = 0; i < count; ++i) {
    ExtentRecord e;
    std::memcpy(&e, records + i * sizeof e, sizeof e);
    std::string which = "extent " + number(i);
    if (e.file_offset != next) {
      return bad(which + " starts at file offset " + number(e.file_offset) + ", not " + number(next) +
                 " (extents must follow each other in file order without gaps)");
    }
    if (e.length == 0 || e.length % page != 0 || e.region_offset % page != 0) {
      return bad(which + " (region offset " + number(e.region_offset) + ", " + number(e.length) +
                 " bytes) is empty or not aligned to the page size " + number(page));
    }
    if (e.region_offset > info.region_size || e.length > info.region_size - e.region_offset) {
      return bad(which + " (region offset " + number(e.region_offset) + ", " + number(e.length) +
                 " bytes) ends past the " + number(info.region_size) + "-byte region");
    }
    if (e.length > info.mapped_bytes - next) {
      return bad(which + " ends past the " + number(info.mapped_bytes) + " mapped bytes");
    }
    next += e.length;
    parsed.push_back(e);
  }
  if (next != info.mapped_bytes) {
    return bad("the extents cover " + number(next) + " of the " + number(info.mapped_bytes) +
               " mapped bytes");
  }
  size_t path_offset = sizeof info + count * sizeof(ExtentRecord);
  std::string_view path(reinterpret_cast<const char*>(payload.data()) + path_offset,
                        payload.size() - path_offset);
  if (path.empty() || path.front() != '/') return bad("it names no absolute region path");
  if (path.size() > kMaxRegionPathBytes)
    return bad("its region path is " + number(path.size()) + " bytes long");
  if (path.find('\0') != std::string_view::npos) return bad("its region path holds a NUL byte");
  extents = std::move(parsed);
  region_path.assign(path);
  head = info;
  return 0;
}

int check_map_identity(const MapReply& head, uint64_t ino, uint64_t generation, std::string& error) {
  if (head.ino != ino) {
    error = "the daemon's reply describes inode " + number(head.ino) + ", but the file opened is inode " +
            number(ino);
    return EPERM;
  }
  if (head.generation != generation) {
    error = "the daemon's reply describes generation " + number(head.generation) + " of inode " +
            number(ino) + ", but the file opened is generation " + number(generation);
    return EPERM;
  }
  return 0;
}

bool parse_generation(std::string_view text, uint64_t& generation) { return parse_decimal(text, generation); }

int find_mount(std::string_view mountinfo, uint32_t major, uint32_t minor, MountEntry& entry) {
  size_t start = 0;
  while (start < mountinfo.size()) {
    size_t end = mountinfo.find('\n', start);
    if (end == std::string_view::npos) end = mountinfo.size();
    std::string_view line = mountinfo.substr(start, end - start);
    start = end + 1;
    // ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER_OPTIONS
    std::vector<std::string_view> fields = split(line, ' ');
    if (fields.size() < 3) continue;
    std::string_view device = fields[2];
    size_t colon = device.find(':');
    uint64_t line_major = 0;
    uint64_t line_minor = 0;
    if (colon == std::string_view::npos || !parse_decimal(device.substr(0, colon), line_major) ||
        !parse_decimal(device.substr(colon + 1), line_minor) || line_major != major || line_minor != minor) {
      continue;
    }
    if (fields.size() < 10) return EPROTO;
    size_t separator = 6;
    while (separator < fields.size() && fields[separator] != "-") ++separator;
    if (fields.size() - separator < 4) return EPROTO;
    entry.mount_point = unescape(fields[4]);
    entry.fstype = unescape(fields[separator + 1]);
    entry.source = unescape(fields[separator + 2]);
    entry.super_options = unescape(fields[separator + 3]);
    return 0;
  }
  return ENOENT;
}

bool mount_option(std::string_view options, std::string_view key, std::string& value) {
  for (std::string_view option : split(options, ',')) {
    if (option.size() > key.size() && option.substr(0, key.size()) == key && option[key.size()] == '=') {
      value.assign(option.substr(key.size() + 1));
      return true;
    }
  }
  return false;
}

int gather_region_facts(int fd, const std::string& region_path, RegionFacts& facts) {
  facts = RegionFacts{};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return errno;
  struct statfs fs {};
  if (::fstatfs(fd, &fs) != 0) return errno;
  facts.mode = st.st_mode;
  facts.dev = st.st_dev;
  facts.ino = st.st_ino;
  facts.nlink = st.st_nlink;
  facts.rdev = st.st_rdev;
  facts.fs_type = static_cast<uint64_t>(fs.f_type);
  struct stat path_st {};
  if (::stat(region_path.c_str(), &path_st) != 0) {
    facts.path_errno = errno;
  } else {
    facts.path_dev = path_st.st_dev;
    facts.path_ino = path_st.st_ino;
  }
  if (S_ISCHR(st.st_mode)) {
    std::string link =
        "/sys/dev/char/" + number(::major(st.st_rdev)) + ":" + number(::minor(st.st_rdev)) + "/subsystem";
    char target[4096];
    ssize_t got = ::readlink(link.c_str(), target, sizeof target - 1);
    if (got > 0) facts.subsystem.assign(target, static_cast<size_t>(got));
  }
  return 0;
}

int check_region_facts(const RegionFacts& facts, const std::string& region_path, std::string& error) {
  auto bad = [&error](const std::string& what) {
    error = "the region descriptor the daemon sent " + what;
    return EPERM;
  };
  if (S_ISCHR(facts.mode)) {
    std::string_view subsystem = facts.subsystem;
    size_t slash = subsystem.rfind('/');
    std::string_view name = slash == std::string_view::npos ? subsystem : subsystem.substr(slash + 1);
    if (name != "dax") {
      return bad("is a character device of subsystem '" + std::string(name) + "', not a device-dax device");
    }
    return 0;
  }
  if (!S_ISREG(facts.mode)) return bad("is neither a regular file nor a device-dax device");
  if (facts.fs_type != kHugetlbfsMagic && facts.fs_type != kTmpfsMagic) {
    return bad("is a file on a filesystem of type " + hex(facts.fs_type) + ", not on hugetlbfs or tmpfs");
  }
  if (facts.nlink == 0) {
    return bad("is a file without a name (a memfd or an unlinked file), not the region " + region_path);
  }
  if (facts.path_errno == EACCES) {
    // The caller may not search the directories above the region (a 0700
    // hugetlbfs mount, say) even where it may use the region file: what is
    // checked above stands alone then.
    return 0;
  }
  if (facts.path_errno != 0) {
    return bad("is not the region " + region_path +
               ", which cannot be found: " + errno_text(facts.path_errno));
  }
  if (facts.path_dev != facts.dev || facts.path_ino != facts.ino) {
    return bad("(device " + hex(facts.dev) + ", inode " + number(facts.ino) + ") is not the region " +
               region_path + " (device " + hex(facts.path_dev) + ", inode " + number(facts.path_ino) + ")");
  }
  return 0;
}

}  // namespace pkfs::control
