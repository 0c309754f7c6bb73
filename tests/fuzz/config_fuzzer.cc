// libFuzzer target: configuration as users write it: a store's JSON config (SPEC.md §2), sizes and
// durations with units, and auth tokens. Bad input is an error, never a crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "client/client_config.h"
#include "common/auth.h"
#include "common/units.h"
#include "nlohmann/json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)mooncake::ParseByteSize(text);
  (void)mooncake::ParseDuration(text, absl::Milliseconds(1));
  (void)mooncake::AuthToken::FromString(text);
  nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return 0;
  // A token file path would have the fuzzer read arbitrary files (/dev/stdin would block).
  if (json.is_object()) json.erase("auth_token_file");
  std::vector<std::string> ignored;
  auto config = mooncake::client::ConfigFromJson(json, {}, &ignored);
  if (config.ok()) (void)mooncake::client::ValidateConfig(*config);
  return 0;
}
