// The auth token of SPEC.md §8 as every subcommand takes it: `--auth-token-file FILE`, else a
// config file's `auth_token_file` (the store), else the environment's MOONCAKE_AUTH_TOKEN.
#pragma once

#include <string>
#include <string_view>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "common/auth.h"

namespace mooncake::cmd {

// Adds `--auth-token-file` (and `--auth_token_file`) to `app`, read into `*path`.
void AddAuthTokenOption(CLI::App* app, std::string* path);

// The token from `flag_path` if given, else `from_config` if enabled, else MOONCAKE_AUTH_TOKEN;
// off when none is set. INVALID_PARAMS naming the source for an unreadable file or a bad token.
absl::StatusOr<AuthToken> ResolveAuthToken(const std::string& flag_path,
                                           const AuthToken& from_config = {});

// With the token off, logs once that `surfaces` (e.g. "RPC port 50051, admin port 9003") answer
// anyone who can reach them.
void WarnIfOpen(const AuthToken& token, std::string_view service, std::string_view surfaces);

}  // namespace mooncake::cmd
