#include "engine/segment_descriptor.h"

#include "common/error_code.h"
#include "common/strings.h"
#include "nlohmann/json.hpp"

namespace mooncake::engine {

std::string SegmentKey(const std::string& name) { return "mooncake/segment/" + name; }

std::string EncodeDescriptor(const SegmentDescriptor& d) {
  nlohmann::json buffers = nlohmann::json::array();
  for (const BufferInfo& b : d.buffers) {
    buffers.push_back({{"addr", b.addr}, {"length", b.length}, {"location", b.location}});
  }
  return nlohmann::json{{"name", d.name},
                        {"host_id", d.host_id},
                        {"tcp", {{"host", d.tcp_host}, {"port", d.tcp_port}}},
                        {"buffers", buffers}}
      .dump();
}

absl::StatusOr<SegmentDescriptor> DecodeDescriptor(std::string_view text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  auto bad = [](std::string_view what) {
    return MakeError(ErrorCode::INVALID_PARAMS, fmt::format("segment descriptor: {}", what));
  };
  if (!j.is_object()) return bad("not a JSON object");
  SegmentDescriptor d;
  if (!j.contains("name") || !j["name"].is_string()) return bad("'name' must be a string");
  d.name = j["name"];
  if (j.contains("host_id") && j["host_id"].is_string()) d.host_id = j["host_id"];
  if (!j.contains("tcp") || !j["tcp"].is_object() || !j["tcp"].contains("host") ||
      !j["tcp"]["host"].is_string() || !j["tcp"].contains("port") ||
      !j["tcp"]["port"].is_number_unsigned() || j["tcp"]["port"].get<uint64_t>() > 65535) {
    return bad("'tcp' must be {\"host\": string, \"port\": 0..65535}");
  }
  d.tcp_host = j["tcp"]["host"];
  d.tcp_port = j["tcp"]["port"].get<int>();
  if (!j.contains("buffers") || !j["buffers"].is_array()) return bad("'buffers' must be an array");
  for (const nlohmann::json& b : j["buffers"]) {
    if (!b.is_object() || !b.contains("addr") || !b["addr"].is_number_unsigned() ||
        !b.contains("length") || !b["length"].is_number_unsigned()) {
      return bad("each buffer needs unsigned 'addr' and 'length'");
    }
    d.buffers.push_back(BufferInfo{b["addr"], b["length"],
                                   b.contains("location") && b["location"].is_string()
                                       ? b["location"].get<std::string>()
                                       : ""});
  }
  return d;
}

}  // namespace mooncake::engine
