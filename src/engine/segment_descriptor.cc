#include "engine/segment_descriptor.h"

#include "common/error_code.h"
#include "common/strings.h"
#include "nlohmann/json.hpp"

namespace mooncake::engine {

std::string SegmentKey(const std::string& name) { return "mooncake/segment/" + name; }

std::string EncodeDescriptor(const SegmentDescriptor& d) {
  nlohmann::json buffers = nlohmann::json::array();
  for (const BufferInfo& b : d.buffers) {
    nlohmann::json buffer = {{"addr", b.addr}, {"length", b.length}, {"location", b.location}};
    if (b.shm_id != 0) {
      buffer["shm_id"] = b.shm_id;
      buffer["shm_offset"] = b.shm_offset;
    }
    if (!b.rkeys.empty()) buffer["rkeys"] = b.rkeys;
    buffers.push_back(std::move(buffer));
  }
  nlohmann::json nics = nlohmann::json::array();
  for (const RdmaNic& nic : d.rdma_nics) {
    nics.push_back({{"name", nic.name}, {"lid", nic.lid}, {"gid", nic.gid}});
  }
  return nlohmann::json{{"name", d.name},
                        {"incarnation", d.incarnation},
                        {"rdma", nics},
                        {"host_id", d.host_id},
                        {"shm_server", d.shm_server},
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
  if (!j.contains("incarnation") || !j["incarnation"].is_number_unsigned() ||
      j["incarnation"].get<uint64_t>() == 0) {
    return bad("'incarnation' must be a nonzero unsigned integer");
  }
  d.incarnation = j["incarnation"].get<uint64_t>();
  if (j.contains("host_id") && j["host_id"].is_string()) d.host_id = j["host_id"];
  if (j.contains("shm_server") && j["shm_server"].is_string()) d.shm_server = j["shm_server"];
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
    BufferInfo info{b["addr"], b["length"],
                    b.contains("location") && b["location"].is_string()
                        ? b["location"].get<std::string>()
                        : ""};
    if (b.contains("shm_id") && b["shm_id"].is_number_unsigned() && b.contains("shm_offset") &&
        b["shm_offset"].is_number_unsigned()) {
      info.shm_id = b["shm_id"];
      info.shm_offset = b["shm_offset"];
    }
    if (b.contains("rkeys") && b["rkeys"].is_array()) {
      for (const nlohmann::json& key : b["rkeys"]) {
        if (!key.is_number_unsigned() || key.get<uint64_t>() > UINT32_MAX) {
          return bad("'rkeys' must be 32-bit unsigned integers");
        }
        info.rkeys.push_back(key.get<uint32_t>());
      }
    }
    d.buffers.push_back(std::move(info));
  }
  if (j.contains("rdma") && j["rdma"].is_array()) {
    for (const nlohmann::json& nic : j["rdma"]) {
      if (!nic.is_object() || !nic.contains("name") || !nic["name"].is_string() ||
          !nic.contains("lid") || !nic["lid"].is_number_unsigned() ||
          nic["lid"].get<uint64_t>() > 65535 || !nic.contains("gid") || !nic["gid"].is_string() ||
          nic["gid"].get<std::string>().size() != 32) {
        return bad("each 'rdma' NIC needs a name, a 16-bit lid and a 32-hex-digit gid");
      }
      d.rdma_nics.push_back(RdmaNic{nic["name"], nic["lid"].get<uint16_t>(), nic["gid"]});
    }
  }
  for (const BufferInfo& b : d.buffers) {
    if (!b.rkeys.empty() && b.rkeys.size() != d.rdma_nics.size()) {
      return bad("a buffer needs one rkey per RDMA NIC");
    }
  }
  return d;
}

}  // namespace mooncake::engine
