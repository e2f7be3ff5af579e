// fs/ctl/info_json.cpp: `pkfsctl info --json` (see info_json.h).
//
// Each key is the line's key in lower case with spaces as underscores
// ("Page size" -> "page_size"), so a key added to core::describe later
// shows up without a change here. Values are typed by key: counts and byte
// sizes are numbers (the "(N MiB)" for people is dropped), yes/no is a
// boolean, "never" and "<none>" are null, paths get a "_hex" twin when they
// are not UTF-8 (fs/base/json.h), and everything else is a string.
// "Free whole pages: N of M (1 GiB each)" (large-page layouts only) becomes
// two numbers, free_whole_pages and whole_pages (the size is page_size).
#include "fs/ctl/info_json.h"

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "fs/base/json.h"

namespace pkfs::ctl {
namespace {

const std::set<std::string> kNumbers = {"region_size",   "page_size",   "format_version", "errors",
                                        "mount_count",   "chunk_size",  "data_chunks",    "inode_slots",
                                        "hold_slots",    "data_bytes",  "free_bytes",     "used_bytes",
                                        "inodes_in_use", "inodes_free", "holds",          "daemon_pid"};
const std::set<std::string> kBooleans = {"survives_kexec"};
const std::set<std::string> kPaths = {"region", "mountpoint", "control_socket"};

std::string json_key(const std::string& key) {
  std::string out;
  for (char c : key) out += c == ' ' ? '_' : static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return out;
}

}  // namespace

InfoLines parse_info_lines(const std::string& text) {
  InfoLines lines;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(at, end - at);
    at = end + 1;
    size_t colon = line.find(": ");
    if (colon == std::string::npos) continue;
    lines.emplace_back(line.substr(0, colon), line.substr(colon + 2));
  }
  return lines;
}

std::string info_json(const InfoLines& lines) {
  json::Writer out;
  out.begin_object();
  for (const auto& [key, value] : lines) {
    std::string name = json_key(key);
    if (kNumbers.contains(name)) {
      out.key(name).number(static_cast<uint64_t>(std::strtoull(value.c_str(), nullptr, 10)));
    } else if (kBooleans.contains(name)) {
      out.key(name).boolean(value == "yes");
      // NOLINTNEXTLINE(bugprone-branch-clone): the label is text too, once "<none>" is null
    } else if (kPaths.contains(name)) {
      out.text_field(name, value);
    } else if (name == "mounted") {
      // "yes" (through the daemon), "no", or "in use by pid N (pkfs)" when
      // a region is read beside the daemon that has it mounted.
      out.key(name).boolean(value != "no");
      const std::string prefix = "in use by ";
      if (value.compare(0, prefix.size(), prefix) == 0)
        out.key("lock_holder").string(value.substr(prefix.size()));
    } else if (name == "free_whole_pages") {
      uint64_t free_pages = 0, pages = 0;
      if (std::sscanf(value.c_str(), "%" SCNu64 " of %" SCNu64, &free_pages, &pages) == 2) {
        out.key(name).number(free_pages);
        out.key("whole_pages").number(pages);
      } else {
        // Not from this build's daemon: no count, and what it said.
        out.key(name).null();
        out.key("free_whole_pages_text").string(value);
      }
    } else if (value == "never" || value == "<none>") {
      out.key(name).null();
    } else if (name == "filesystem_label") {
      out.text_field(name, value);
    } else {
      out.key(name).string(value);
    }
  }
  out.end_object();
  return out.str();
}

}  // namespace pkfs::ctl
