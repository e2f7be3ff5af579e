// fs/core/describe.cpp: the "Key: value" summary of a filesystem that
// `pkfsctl info` prints, whether it reads the region itself or asks the
// daemon (which calls this too).
#include "fs/core/describe.h"

#include <cstring>
#include <ctime>
#include <string>

#include "fs/format/format.h"

namespace pkfs::core {
namespace {

std::string time_text(int64_t ns) {
  if (ns == 0) return "never";
  time_t seconds = static_cast<time_t>(ns / 1000000000);
  tm parts{};
  gmtime_r(&seconds, &parts);
  char buffer[64];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M:%S UTC", &parts);
  return buffer;
}

std::string mib(uint64_t bytes) {
  return std::to_string(bytes) + " (" + std::to_string(bytes >> 20) + " MiB)";
}

// "1 GiB", "4 MiB": a large page (a power of two over 2 MiB).
std::string page_text(uint64_t bytes) {
  return bytes % (uint64_t{1} << 30) == 0 ? std::to_string(bytes >> 30) + " GiB"
                                          : std::to_string(bytes >> 20) + " MiB";
}

}  // namespace

std::vector<std::pair<std::string, std::string>> describe(Filesystem& fs) {
  std::vector<std::pair<std::string, std::string>> lines;
  auto add = [&lines](std::string key, std::string value) {
    lines.emplace_back(std::move(key), std::move(value));
  };
  format::Superblock sb = fs.superblock();
  const region::Info& info = fs.region().info();
  std::string label(sb.label, strnlen(sb.label, sizeof sb.label));
  add("Region", info.path);
  add("Region kind", region::kind_name(info.kind));
  add("Region size", mib(info.size_bytes));
  add("Page size", std::to_string(info.page_size));
  add("Survives kexec", region::survives_kexec(info.kind) ? "yes" : "no");
  add("Filesystem UUID", format::uuid_to_string(sb.uuid));
  add("Filesystem label", label.empty() ? "<none>" : label);
  add("Format version", std::to_string(sb.format_version));
  add("State", (sb.state & format::kStateClean) != 0 ? "clean" : "in use or not cleanly unmounted");
  add("Errors", std::to_string(sb.error_count));
  add("Mount count", std::to_string(sb.mount_count));
  add("Created", time_text(sb.created_time_ns));
  add("Last mounted", time_text(sb.mount_time_ns));
  add("Chunk size", std::to_string(sb.chunk_size));
  add("Data chunks", std::to_string(sb.chunk_count));
  add("Inode slots", std::to_string(sb.inode_count));
  add("Hold slots", std::to_string(sb.hold_count));
  if (auto usage = fs.statfs()) {
    uint64_t total = usage->blocks * usage->block_size;
    uint64_t free = usage->free_blocks * usage->block_size;
    add("Data bytes", mib(total));
    add("Free bytes", mib(free));
    add("Used bytes", mib(total - free));
    add("Inodes in use", std::to_string(usage->files - usage->free_files));
    add("Inodes free", std::to_string(usage->free_files));
  }
  // A large-page layout keeps its pages from the first unreserved one on
  // whole for guest RAM: how many of them a file of guest RAM can still
  // get (FORMAT.md, "Large-page layout"). Free bytes may be more than that
  // many pages when pages are partly used. Chunk layouts have no such line.
  if (WholePages pages = fs.whole_pages(); pages.page_bytes != 0) {
    add("Free whole pages", std::to_string(pages.free) + " of " + std::to_string(pages.total) + " (" +
                                page_text(pages.page_bytes) + " each)");
  }
  ZeroingStatus zeroing = fs.zeroing_status();
  add("Free bytes known zero", mib(zeroing.free_zero_bytes));
  add("Free bytes to zero", mib(zeroing.free_dirty_bytes));
  if (zeroing.background) {
    std::string rate = zeroing.bytes_per_second == 0
                           ? "rate not measured yet"
                           : std::to_string(zeroing.bytes_per_second >> 20) + " MiB/s";
    add("Background zeroing", "on, " + mib(zeroing.zeroed_bytes) + " zeroed, " + rate);
  } else {
    add("Background zeroing", "off");
  }
  if (auto holds = fs.list_holds()) add("Holds", std::to_string(holds->size()));
  return lines;
}

}  // namespace pkfs::core
