// pkfsctl: inspect and control a pkfs region, mounted or not.
//
//   pkfsctl COMMAND [options...]
//
// Subcommands register themselves (see command.h); this file only parses.
#include <cstdio>
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

}  // namespace pkfs::ctl

int main(int argc, char** argv) {
  using namespace pkfs::ctl;
  CLI::App app{"Inspect and control a pkfs region, mounted or not.", "pkfsctl"};
  app.require_subcommand(1);
  int exit_code = kExitOk;
  for (Setup setup : setups()) setup(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    app.exit(e);
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }
  return exit_code;
}
