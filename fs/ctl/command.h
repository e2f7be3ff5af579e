// fs/ctl/command.h: how pkfsctl subcommands plug into its main.
//
// Each subcommand lives in its own file and registers itself:
//
//   namespace {
//   void setup(CLI::App& app, int& exit_code) {
//     auto* sub = app.add_subcommand("info", "Show the superblock and usage");
//     sub->callback([&exit_code] { exit_code = run_info(...); });
//   }
//   const pkfs::ctl::Registration registration{setup};
//   }  // namespace
//
// main() parses the command line and returns the exit code the callback set.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace pkfs::ctl {

// Exit codes shared by every subcommand.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the operation failed; a message says why
inline constexpr int kExitUsage = 2;    // bad command line

using Setup = void (*)(CLI::App& app, int& exit_code);

// Adds `setup` to the subcommands main() builds; use at namespace scope.
struct Registration {
  explicit Registration(Setup setup);
};

// pkfsctl exec: the arguments after its `--` (the command to run), which
// main() keeps from CLI11.
std::vector<std::string>& command_after_dashes();

}  // namespace pkfs::ctl
