// pkfsctl info [--json] TARGET: the superblock and usage, as "Key: value"
// lines (or one JSON object: info_json.h).
#include <cstdio>
#include <string>

#include "fs/core/describe.h"
#include "fs/ctl/command.h"
#include "fs/ctl/info_json.h"
#include "fs/ctl/target.h"

namespace pkfs::ctl {
namespace {

int run_info(const std::string& argument, bool as_json) {
  auto target = resolve_target(argument);
  if (!target) {
    std::fprintf(stderr, "pkfsctl info: %s\n", target.error().message().c_str());
    return kExitFailure;
  }
  if (target->mounted()) {
    auto text = request_info(*target);
    if (!text) {
      std::fprintf(stderr, "pkfsctl info: %s\n", text.error().message().c_str());
      return kExitFailure;
    }
    if (as_json) {
      InfoLines lines = parse_info_lines(*text);
      lines.emplace_back("Mounted", "yes");
      std::printf("%s\n", info_json(lines).c_str());
      return kExitOk;
    }
    std::fputs(text->c_str(), stdout);
    return kExitOk;
  }
  if (as_json) {
    InfoLines lines = core::describe(*target->fs);
    lines.emplace_back("Mounted", target->lock_holder.empty() ? "no" : "in use by " + target->lock_holder);
    std::printf("%s\n", info_json(lines).c_str());
    return kExitOk;
  }
  for (const auto& [key, value] : core::describe(*target->fs)) {
    std::printf("%s: %s\n", key.c_str(), value.c_str());
  }
  std::printf("Mounted: %s\n",
              target->lock_holder.empty() ? "no" : ("in use by " + target->lock_holder).c_str());
  return kExitOk;
}

void setup(CLI::App& app, int& exit_code) {
  auto* sub = app.add_subcommand("info", "Show the superblock and usage of a mounted pkfs or a region");
  static std::string argument;
  static bool as_json = false;
  sub->add_flag("--json", as_json, "Print one JSON object with stable keys");
  sub->add_option("TARGET", argument, "A path inside a pkfs mount, or a region")->required();
  sub->callback([&exit_code] { exit_code = run_info(argument, as_json); });
}

const Registration registration{setup};

}  // namespace
}  // namespace pkfs::ctl
