// pkfsctl: inspect and control a pkfs region, mounted or not.
//
//   pkfsctl COMMAND [options...]
//
// Subcommands register themselves (see command.h); this file only parses.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "fs/ctl/command.h"

namespace pkfs::ctl {
namespace {

std::vector<Setup>& setups() {
  static std::vector<Setup> all;
  return all;
}

}  // namespace

Registration::Registration(Setup setup) { setups().push_back(setup); }

std::vector<std::string>& command_after_dashes() {
  static std::vector<std::string> command;
  return command;
}

}  // namespace pkfs::ctl

namespace {

int run(int argc, char** argv) {
  using namespace pkfs::ctl;
  CLI::App app{"Inspect and control a pkfs region, mounted or not.", "pkfsctl"};
  app.require_subcommand(1);
  int exit_code = kExitOk;
  for (Setup setup : setups()) setup(app, exit_code);
  // pkfsctl exec ... -- COMMAND ARGS...: COMMAND's arguments are its own,
  // options included; CLI11 never sees them (its `--` hands the rest of a
  // subcommand's arguments to the parent app, which refuses them).
  int parsed = argc;
  if (argc > 1 && std::string(argv[1]) == "exec") {
    for (int i = 2; i < argc; ++i) {
      if (std::string(argv[i]) != "--") continue;
      command_after_dashes().assign(argv + i + 1, argv + argc);
      parsed = i;
      break;
    }
  }
  try {
    app.parse(parsed, argv);
  } catch (const CLI::CallForHelp& e) {
    app.exit(e);
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    // Commands report their errors; this is out of memory and the like.
    std::fprintf(stderr, "pkfsctl: %s\n", e.what());
    return pkfs::ctl::kExitFailure;
  }
}
