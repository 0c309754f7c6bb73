#include "cmd/auth_flag.h"

#include "client/client_config.h"
#include "common/logging.h"

namespace mooncake::cmd {

void AddAuthTokenOption(CLI::App* app, std::string* path) {
  app->add_option("--auth-token-file,--auth_token_file", *path,
                  "File holding the cluster's auth token (also: MOONCAKE_AUTH_TOKEN); every "
                  "caller must then prove it");
}

absl::StatusOr<AuthToken> ResolveAuthToken(const std::string& flag_path,
                                           const AuthToken& from_config) {
  if (!flag_path.empty()) return AuthToken::FromFile(flag_path);
  if (from_config.enabled()) return from_config;
  return client::AuthTokenFromEnvironment();
}

void WarnIfOpen(const AuthToken& token, std::string_view service, std::string_view surfaces) {
  if (token.enabled()) return;
  spdlog::warn(
      "{}: no auth token (--auth-token-file or MOONCAKE_AUTH_TOKEN): anyone who can reach {} may "
      "use them",
      service, surfaces);
}

}  // namespace mooncake::cmd
