// pkfsctl ls [-l] TARGET [PATH]: files with their extents and holds.
//
// Mounted: TARGET is a directory or file inside the mount (PATH not used).
// Offline: TARGET is the region and PATH a path inside it (default /).
// With -l, a line per file, "MODE LINKS UID GID SIZE ino=N extents=E
// holds=H NAME", then an indented line per extent (file offset, region
// offset, length, in bytes) and per hold (id, holder pid and uid, and
// "stale" when the holder is gone). The first line names the region and its
// page size. With --json (which implies -l), one JSON document instead
// (schema in pkfsctl(8), fs/ctl/pkfsctl.8.scd).
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "fs/base/json.h"
#include "fs/ctl/command.h"
#include "fs/ctl/target.h"

namespace pkfs::ctl {
namespace {

struct Entry {
  std::string name;
  std::string path;  // mounted: the path to stat
  uint32_t mode = 0, nlink = 0, uid = 0, gid = 0;
  uint64_t size = 0, ino = 0;
  std::optional<FileLayout> layout;  // regular files
};

struct Hold {
  uint64_t id, ino;
  uint32_t pid, uid;
  bool stale;
};

// --json: the document being built, printed by end_listing.
bool g_json = false;
json::Writer g_out;

void print_json(const Entry& entry, const std::vector<Hold>& holds) {
  g_out.begin_object().text_field("name", entry.name);
  g_out.key("ino").number(entry.ino).key("mode").number(entry.mode);
  g_out.key("mode_text").string(mode_text(entry.mode)).key("nlink").number(entry.nlink);
  g_out.key("uid").number(entry.uid).key("gid").number(entry.gid).key("size").number(entry.size);
  g_out.key("extents").begin_array();
  if (entry.layout) {
    for (const control::ExtentRecord& e : entry.layout->extents) {
      g_out.begin_object().key("file_offset").number(e.file_offset);
      g_out.key("region_offset").number(e.region_offset).key("length").number(e.length).end_object();
    }
  }
  g_out.end_array().key("holds").begin_array();
  for (const Hold& h : holds) {
    if (h.ino == entry.ino) g_out.number(h.id);
  }
  g_out.end_array().end_object();
}

// The first line (or the document's head): the region and its page size.
void begin_listing(const std::string& region, uint64_t page_size) {
  if (!g_json) {
    std::printf("region %s page_size=%" PRIu64 "\n", region.c_str(), page_size);
    return;
  }
  g_out.begin_object().text_field("region", region).key("page_size").number(page_size);
  g_out.key("files").begin_array();
}

// --json: every hold the caller may see (not only those of listed files),
// after the files.
void end_listing(const std::vector<Hold>& holds) {
  if (!g_json) return;
  g_out.end_array().key("holds").begin_array();
  for (const Hold& h : holds) {
    g_out.begin_object().key("id").number(h.id).key("ino").number(h.ino).key("pid").number(h.pid);
    g_out.key("uid").number(h.uid).key("stale").boolean(h.stale).end_object();
  }
  g_out.end_array().end_object();
  std::printf("%s\n", g_out.str().c_str());
}

void print(const Entry& entry, bool long_format, const std::vector<Hold>& holds) {
  if (g_json) {
    print_json(entry, holds);
    return;
  }
  if (!long_format) {
    std::printf("%s\n", entry.name.c_str());
    return;
  }
  size_t extents = entry.layout ? entry.layout->extents.size() : 0;
  size_t held = std::count_if(holds.begin(), holds.end(), [&](const Hold& h) { return h.ino == entry.ino; });
  std::printf("%s %3u %5u %5u %12" PRIu64 " ino=%" PRIu64 " extents=%zu holds=%zu %s\n",
              mode_text(entry.mode).c_str(), entry.nlink, entry.uid, entry.gid, entry.size, entry.ino,
              extents, held, entry.name.c_str());
  if (entry.layout) {
    for (const control::ExtentRecord& e : entry.layout->extents) {
      std::printf("    extent file=%#" PRIx64 " region=%#" PRIx64 " length=%#" PRIx64 "\n", e.file_offset,
                  e.region_offset, e.length);
    }
  }
  for (const Hold& h : holds) {
    if (h.ino != entry.ino) continue;
    std::printf("    hold %" PRIu64 " pid=%u uid=%u%s\n", h.id, h.pid, h.uid, h.stale ? " stale" : "");
  }
}

int fail(const std::string& message) {
  std::fprintf(stderr, "pkfsctl ls: %s\n", message.c_str());
  return kExitFailure;
}

int run_mounted(const Target& target, bool long_format) {
  std::vector<Hold> holds;
  if (long_format) {
    auto records = request_holds(target);
    if (!records) return fail(records.error().message());
    for (const auto& r : *records) holds.push_back(Hold{r.id, r.ino, r.pid, r.uid, r.stale != 0});
  }
  const std::string& root = target.argument;
  struct stat st {};
  if (::lstat(root.c_str(), &st) != 0) return fail(root + ": " + errno_text(errno));
  std::vector<Entry> entries;
  if (S_ISDIR(st.st_mode)) {
    DIR* dir = ::opendir(root.c_str());
    if (dir == nullptr) return fail(root + ": " + errno_text(errno));
    while (dirent* d = ::readdir(dir)) {  // NOLINT(concurrency-mt-unsafe): this stream is ours alone
      std::string name = d->d_name;
      if (name == "." || name == "..") continue;
      Entry entry;
      entry.name = name;
      entry.path = root + "/" + name;
      entries.push_back(std::move(entry));
    }
    ::closedir(dir);
  } else {
    Entry entry;
    entry.name = root;
    entry.path = root;
    entries.push_back(std::move(entry));
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.name < b.name; });
  if (long_format) {
    // The region and its page size, from the daemon's info lines.
    auto info = request_info(target);
    if (!info) return fail(info.error().message());
    auto value = [&info](const std::string& key) {
      size_t at = info->find(key + ": ");
      if (at == std::string::npos) return std::string("?");
      at += key.size() + 2;
      return info->substr(at, info->find('\n', at) - at);
    };
    begin_listing(value("Region"), std::strtoull(value("Page size").c_str(), nullptr, 10));
  }
  int status = kExitOk;
  for (Entry& entry : entries) {
    if (::lstat(entry.path.c_str(), &st) != 0) {
      std::fprintf(stderr, "pkfsctl ls: %s: %s\n", entry.path.c_str(), errno_text(errno).c_str());
      status = kExitFailure;
      continue;
    }
    entry.mode = st.st_mode;
    entry.nlink = static_cast<uint32_t>(st.st_nlink);
    entry.uid = st.st_uid;
    entry.gid = st.st_gid;
    entry.size = static_cast<uint64_t>(st.st_size);
    entry.ino = st.st_ino;
    if (long_format && S_ISREG(st.st_mode)) {
      auto layout = request_stat(target, entry.path);
      if (!layout) {
        std::fprintf(stderr, "pkfsctl ls: %s\n", layout.error().message().c_str());
        status = kExitFailure;
      } else {
        entry.layout = std::move(layout).value();
      }
    }
    print(entry, long_format, holds);
  }
  end_listing(holds);
  return status;
}

int run_offline(const Target& target, const std::string& path, bool long_format) {
  core::Filesystem& fs = *target.fs;
  if (!target.lock_holder.empty()) {
    std::fprintf(stderr,
                 "pkfsctl ls: note: %s is in use by %s; this is a read-only view that may be a moment old\n",
                 target.argument.c_str(), target.lock_holder.c_str());
  }
  auto ino = offline_lookup(target, path);
  if (!ino) return fail(ino.error().message());
  std::vector<Hold> holds;
  if (auto list = fs.list_holds()) {
    for (const core::HoldInfo& h : *list)
      holds.push_back(Hold{h.id, h.ino, h.holder.pid, h.holder.uid, false});
  }
  auto attr = fs.getattr(*ino);
  if (!attr) return fail(attr.error().message());
  std::vector<std::pair<std::string, core::Ino>> children;
  if (S_ISDIR(attr->mode)) {
    auto listed = fs.readdir(*ino, 0, [&](const core::DirEntry& d) {
      if (d.name != "." && d.name != "..") children.emplace_back(std::string(d.name), d.ino);
      return true;
    });
    if (!listed) return fail(listed.error().message());
  } else {
    children.emplace_back(path, *ino);
  }
  std::sort(children.begin(), children.end());
  if (long_format) {
    const region::Info& info = fs.region().info();
    begin_listing(info.path, info.page_size);
  }
  int status = kExitOk;
  for (const auto& [name, child] : children) {
    auto child_attr = fs.getattr(child);
    if (!child_attr) {
      std::fprintf(stderr, "pkfsctl ls: %s: %s\n", name.c_str(), child_attr.error().message().c_str());
      status = kExitFailure;
      continue;
    }
    Entry entry;
    entry.name = name;
    entry.mode = child_attr->mode;
    entry.nlink = child_attr->nlink;
    entry.uid = child_attr->uid;
    entry.gid = child_attr->gid;
    entry.size = child_attr->size;
    entry.ino = child;
    if (long_format && S_ISREG(child_attr->mode)) {
      auto layout = offline_layout(target, child);
      if (!layout) {
        std::fprintf(stderr, "pkfsctl ls: %s: %s\n", name.c_str(), layout.error().message().c_str());
        status = kExitFailure;
      } else {
        entry.layout = std::move(layout).value();
      }
    }
    print(entry, long_format, holds);
  }
  end_listing(holds);
  return status;
}

void setup(CLI::App& app, int& exit_code) {
  auto* sub = app.add_subcommand("ls", "List files with their extents and holds");
  static bool long_format = false;
  static std::string argument;
  static std::string path = "/";
  sub->add_flag("-l,--long", long_format, "Show mode, owner, size, extents and holds");
  sub->add_flag("--json", g_json, "Print the long listing as one JSON document (implies -l)");
  sub->add_option("TARGET", argument, "A directory or file inside a pkfs mount, or a region")->required();
  sub->add_option("PATH", path, "With a region: the path inside it (default /)");
  sub->callback([&exit_code] {
    auto target = resolve_target(argument);
    if (!target) {
      exit_code = fail(target.error().message());
      return;
    }
    bool long_listing = long_format || g_json;
    exit_code =
        target->mounted() ? run_mounted(*target, long_listing) : run_offline(*target, path, long_listing);
  });
}

const Registration registration{setup};

}  // namespace
}  // namespace pkfs::ctl
