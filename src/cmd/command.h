// How main() wires subcommands: each subcommand file adds its CLI11 subcommand with its flags and
// returns what to run once the command line has been parsed.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"

namespace mooncake::cmd {

// Exit codes of every subcommand.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // a runtime failure (cannot bind, lost a dependency, ...)
inline constexpr int kExitUsage = 2;    // bad flags or configuration

struct Command {
  CLI::App* app;             // the subcommand, to test whether it was chosen
  std::function<int()> run;  // runs it with the parsed flags; returns the exit code
};

Command AddMetadataCommand(CLI::App& parent);
Command AddMasterCommand(CLI::App& parent);
Command AddStoreCommand(CLI::App& parent);
Command AddBenchCommand(CLI::App& parent);

// The original master's gflags habits, rewritten for CLI11 before parsing (`args` follow the
// word "master"): --flagfile=FILE is replaced by the flags in FILE (one per line, '#' comments),
// and single-dash long flags (-port=1, -v=1) get their second dash. An unreadable file is an error.
absl::StatusOr<std::vector<std::string>> RewriteGflagsHabits(std::vector<std::string> args);

}  // namespace mooncake::cmd
