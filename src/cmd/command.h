// How main() wires subcommands: each subcommand file adds its CLI11 subcommand with its flags and
// returns what to run once the command line has been parsed.
#pragma once

#include <functional>

#include "CLI/CLI.hpp"

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

}  // namespace mooncake::cmd
