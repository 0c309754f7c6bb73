// `mooncake metadata`: the HTTP metadata service (SPEC.md §1, §4).
#include <cstdio>
#include <memory>
#include <string>

#include "cmd/auth_flag.h"
#include "cmd/command.h"
#include "cmd/signals.h"
#include "common/logging.h"
#include "common/units.h"
#include "http/metadata_service.h"

namespace mooncake::cmd {
namespace {

struct MetadataFlags {
  std::string host = "0.0.0.0";
  int port = 8080;
  std::string max_value_size = "16MiB";
  std::string max_total_size = "1GiB";
  size_t http_threads = 1024;
  std::string log_level = "info";
  std::string auth_token_file;
};

int RunMetadata(const MetadataFlags& flags) {
  if (absl::Status status = InitLogging(flags.log_level); !status.ok()) {
    std::fprintf(stderr, "mooncake metadata: %s\n", std::string(status.message()).c_str());
    return kExitUsage;
  }
  absl::StatusOr<uint64_t> max_value = ParseByteSize(flags.max_value_size);
  absl::StatusOr<uint64_t> max_total = ParseByteSize(flags.max_total_size);
  for (const absl::Status& status : {max_value.status(), max_total.status()}) {
    if (!status.ok()) {
      std::fprintf(stderr, "mooncake metadata: %s\n", std::string(status.message()).c_str());
      return kExitUsage;
    }
  }
  absl::StatusOr<AuthToken> token = ResolveAuthToken(flags.auth_token_file);
  if (!token.ok()) {
    std::fprintf(stderr, "mooncake metadata: %s\n", std::string(token.status().message()).c_str());
    return kExitUsage;
  }
  if (*max_value == 0 || *max_total < *max_value) {
    std::fprintf(stderr,
                 "mooncake metadata: --max-value-size must be > 0 and at most --max-total-size\n");
    return kExitUsage;
  }

  BlockTerminationSignals();
  http::HttpServerOptions server_options;
  server_options.name = "metadata";
  server_options.host = flags.host;
  server_options.port = flags.port;
  server_options.max_workers = flags.http_threads;
  server_options.auth = *token;
  http::MetadataStoreOptions store_options;
  store_options.max_value_bytes = *max_value;
  store_options.max_total_bytes = *max_total;
  http::MetadataServer server(server_options, store_options);
  return ServeUntilSignal(
      "metadata",
      [&]() -> absl::StatusOr<std::string> {
        if (absl::Status status = server.Start(); !status.ok()) return status;
        WarnIfOpen(*token, "mooncake metadata", fmt::format("port {}", server.port()));
        // Tests read the port from this line when --port is 0.
        return fmt::format(
            "mooncake metadata listening on http://{}:{}/metadata (values up to "
            "{}, {} in total)",
            flags.host, server.port(), FormatByteSize(*max_value), FormatByteSize(*max_total));
      },
      [&] { server.Stop(); });
}

}  // namespace

Command AddMetadataCommand(CLI::App& parent) {
  auto flags = std::make_shared<MetadataFlags>();
  CLI::App* app =
      parent.add_subcommand("metadata", "HTTP metadata service for segment descriptors");
  app->add_option("--host", flags->host, "Address to listen on")->capture_default_str();
  app->add_option("--port", flags->port, "Port to listen on (0: any free port, printed at start)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  app->add_option("--max-value-size,--max_value_size", flags->max_value_size,
                  "Largest value one key may hold (units: KB, MB, GB)")
      ->capture_default_str();
  app->add_option("--max-total-size,--max_total_size", flags->max_total_size,
                  "Largest total of keys and values held")
      ->capture_default_str();
  app->add_option("--http-threads,--http_threads", flags->http_threads,
                  "Most connections served at once (threads are started on demand)")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  app->add_option("--log-level,--log_level", flags->log_level,
                  "trace, debug (adds an access log), info, warn, error or off")
      ->capture_default_str();
  AddAuthTokenOption(app, &flags->auth_token_file);
  return {app, [flags] { return RunMetadata(*flags); }};
}

}  // namespace mooncake::cmd
