// `mooncake.store`: the Python face of the client library (src/client), with the API and return
// conventions of SPEC.md §5. A thin layer: it converts arguments, releases the GIL around every
// call that does I/O, and turns statuses into the integers SGLang expects. The logic lives in
// Client.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "client/client.h"
#include "common/error_code.h"
#include "common/logging.h"
#include "common/strings.h"
#include "common/units.h"
#include "http/server.h"

namespace py = pybind11;

namespace mooncake::python {

// A list of keys from Python, as views of the key objects' own bytes: no key is copied to pass it
// to the client (a batch of 128 SGLang keys made 128 allocations of 69 bytes each). The views
// stay valid while the call runs without the GIL, even if another thread empties the list,
// because the key objects are referenced here. A str is viewed as UTF-8 (CPython keeps that form
// with the str), a bytes object as it is; a bytearray, which another thread could resize, is
// copied.
class KeyList {
 public:
  // False if `keys` is not a list (or other sequence) of str, bytes or bytearray keys, or a str
  // cannot be encoded as UTF-8: pybind11 then raises TypeError, as it did for a list of strings.
  bool Load(py::handle keys) {
    if (!py::isinstance<py::sequence>(keys) || py::isinstance<py::bytes>(keys) ||
        py::isinstance<py::str>(keys)) {
      return false;
    }
    auto sequence = py::reinterpret_borrow<py::sequence>(keys);
    const size_t n = sequence.size();
    held_.reserve(n);
    views_.reserve(n);
    for (auto item : sequence) {
      py::object key = item;  // a reference of our own, whatever the sequence is
      Py_ssize_t size = 0;
      const char* data = nullptr;
      if (PyUnicode_Check(key.ptr())) {
        data = PyUnicode_AsUTF8AndSize(key.ptr(), &size);
        if (data == nullptr) {
          PyErr_Clear();
          return false;
        }
      } else if (PyBytes_Check(key.ptr())) {
        data = PyBytes_AS_STRING(key.ptr());
        size = PyBytes_GET_SIZE(key.ptr());
      } else if (PyByteArray_Check(key.ptr())) {
        copies_.emplace_back(PyByteArray_AS_STRING(key.ptr()),
                             static_cast<size_t>(PyByteArray_GET_SIZE(key.ptr())));
        views_.push_back(copies_.back());
        continue;
      } else {
        return false;
      }
      held_.push_back(std::move(key));
      views_.emplace_back(data, static_cast<size_t>(size));
    }
    return true;
  }

  Keys keys() const { return views_; }

 private:
  // The key objects viewed; released with the GIL held (pybind11 destroys a call's arguments
  // after the call has taken the GIL back).
  std::vector<py::object> held_;
  std::deque<std::string> copies_;
  std::vector<std::string_view> views_;
};

}  // namespace mooncake::python

namespace pybind11::detail {
template <>
struct type_caster<mooncake::python::KeyList> {
  PYBIND11_TYPE_CASTER(mooncake::python::KeyList, const_name("List[str]"));
  bool load(handle src, bool) { return value.Load(src); }
};
}  // namespace pybind11::detail

namespace mooncake::python {
namespace {

using client::Client;
using client::ClientConfig;
using client::Slice;

constexpr uint64_t kMiB = 1u << 20;

int Code(const absl::Status& status) {
  return status.ok() ? 0 : static_cast<int>(ErrorCodeOf(status));
}
int Code(ErrorCode code) { return static_cast<int>(code); }

enum class SoftPinAction { kPreserve, kEnable, kDisable };

struct ReplicateConfig {
  uint32_t replica_num = 1;
  bool with_soft_pin = false;
  bool with_hard_pin = false;
  std::string preferred_segment;
  std::vector<std::string> preferred_segments;
  bool prefer_alloc_in_same_node = false;
  std::vector<std::string> group_ids;
  SoftPinAction soft_pin_action = SoftPinAction::kPreserve;
  std::optional<uint64_t> soft_pin_ttl_ms;

  // The client's form, or INVALID_PARAMS for a combination the SPEC refuses.
  absl::StatusOr<client::ReplicateConfig> ToClient() const {
    if (soft_pin_ttl_ms && soft_pin_action != SoftPinAction::kEnable) {
      return MakeError(ErrorCode::INVALID_PARAMS,
                       "soft_pin_ttl_ms is allowed only with soft_pin_action ENABLE");
    }
    client::ReplicateConfig out;
    out.replica_num = replica_num;
    out.with_soft_pin = with_soft_pin || soft_pin_action == SoftPinAction::kEnable;
    out.soft_pin_action = static_cast<client::SoftPinAction>(soft_pin_action);
    out.with_hard_pin = with_hard_pin;
    out.preferred_segment = preferred_segment;
    out.preferred_segments = preferred_segments;
    out.prefer_alloc_in_same_node = prefer_alloc_in_same_node;
    if (soft_pin_ttl_ms) out.soft_pin_ttl = absl::Milliseconds(*soft_pin_ttl_ms);
    return out;
  }
};

absl::StatusOr<client::ReplicateConfig> ConfigOf(const std::optional<ReplicateConfig>& config) {
  return config ? config->ToClient() : client::ReplicateConfig{};
}

// A buffer-protocol view of a Python value, released (with the GIL held) when it goes.
class BufferView {
 public:
  explicit BufferView(const py::handle& object) {
    if (PyUnicode_Check(object.ptr())) {
      throw py::type_error(
          "a value must be bytes-like (bytes, bytearray, memoryview, a numpy "
          "array...), not str");
    }
    if (PyObject_GetBuffer(object.ptr(), &view_, PyBUF_SIMPLE) != 0) {
      PyErr_Clear();
      throw py::type_error(
          fmt::format("a value must be a contiguous bytes-like object, not {}",
                      std::string(py::str(py::type::of(object).attr("__name__")))));
    }
  }
  ~BufferView() { PyBuffer_Release(&view_); }
  BufferView(const BufferView&) = delete;
  BufferView& operator=(const BufferView&) = delete;

  std::string_view bytes() const {
    return {static_cast<const char*>(view_.buf), static_cast<size_t>(view_.len)};
  }

 private:
  Py_buffer view_{};
};

// What get_buffer returns: the object's bytes, readable through the buffer protocol.
class BufferHandle {
 public:
  explicit BufferHandle(std::string data) : data_(std::move(data)) {}
  uintptr_t ptr() const { return reinterpret_cast<uintptr_t>(data_.data()); }
  size_t size() const { return data_.size(); }
  std::string& data() { return data_; }

 private:
  std::string data_;
};

std::vector<Slice> Slices(const std::vector<uintptr_t>& ptrs, const std::vector<uint64_t>& sizes) {
  std::vector<Slice> slices(std::min(ptrs.size(), sizes.size()));
  for (size_t i = 0; i < slices.size(); ++i) {
    slices[i] = {reinterpret_cast<void*>(ptrs[i]), sizes[i]};
  }
  return slices;
}

// Python values of a setup dict or of keyword arguments as JSON, for ConfigFromJson.
nlohmann::json ToJson(const py::handle& value) {
  if (value.is_none()) return nullptr;
  if (py::isinstance<py::bool_>(value)) return value.cast<bool>();
  if (py::isinstance<py::int_>(value)) {
    if (value.cast<py::int_>() < py::int_(0)) return value.cast<int64_t>();
    return value.cast<uint64_t>();
  }
  if (py::isinstance<py::float_>(value)) return value.cast<double>();
  if (py::isinstance<py::str>(value)) return value.cast<std::string>();
  return py::str(value).cast<std::string>();
}

class MooncakeDistributedStore;

// Stores still open at interpreter exit are closed by an atexit hook.
absl::Mutex live_mu;
absl::flat_hash_set<MooncakeDistributedStore*>& Live() {
  static auto* live = new absl::flat_hash_set<MooncakeDistributedStore*>();
  return *live;
}

class MooncakeDistributedStore {
 public:
  MooncakeDistributedStore() {
    absl::MutexLock lock(&live_mu);
    Live().insert(this);
  }
  ~MooncakeDistributedStore() {
    {
      absl::MutexLock lock(&live_mu);
      Live().erase(this);
    }
    py::gil_scoped_release release;
    CloseLocked();
  }

  // setup(local_hostname, metadata_server, global_segment_size, local_buffer_size, protocol,
  //       rdma_devices, master_server_addr, engine=None, **optional) or setup(config: dict).
  int Setup(py::args args, py::kwargs kwargs) {
    static const char* const kPositional[] = {
        "local_hostname", "metadata_server", "global_segment_size", "local_buffer_size",
        "protocol",       "rdma_devices",    "master_server_addr",  "engine"};
    static const absl::flat_hash_set<std::string> kOptional = {
        "enable_client_http_server", "client_http_port", "enable_ssd_offload", "ssd_offload_path",
        "tenant_id"};
    nlohmann::json config = nlohmann::json::object();
    if (args.size() == 1 && py::isinstance<py::dict>(args[0])) {
      for (auto [key, value] : args[0].cast<py::dict>()) {
        config[py::str(key).cast<std::string>()] = ToJson(value);
      }
    } else {
      if (args.size() > 8) {
        throw py::type_error(
            fmt::format("setup() takes at most 8 positional arguments ({} given)", args.size()));
      }
      for (size_t i = 0; i < args.size(); ++i) config[kPositional[i]] = ToJson(args[i]);
    }
    for (auto [key, value] : kwargs) {
      const std::string name = py::str(key);
      const bool positional =
          std::find(std::begin(kPositional), std::end(kPositional), name) != std::end(kPositional);
      if (!positional && !kOptional.contains(name)) {
        throw py::type_error(fmt::format("setup() got an unexpected keyword argument '{}'", name));
      }
      config[name] = ToJson(value);
    }
    return SetupFromJson(config);
  }

  // setup_dummy(mem_pool_size, local_buffer_size, server_address): a client of `server_address`
  // contributing mem_pool_size bytes, discovered peer to peer.
  int SetupDummy(uint64_t mem_pool_size, uint64_t local_buffer_size,
                 const std::string& server_address) {
    return SetupFromJson({{"global_segment_size", mem_pool_size},
                          {"local_buffer_size", local_buffer_size},
                          {"master_server_addr", server_address}});
  }

  // init_all(protocol, device_name, mount_segment_size): the environment of SPEC.md §3.
  int InitAll(const std::string& protocol, const std::string& device_name,
              uint64_t mount_segment_size) {
    absl::StatusOr<ClientConfig> config = client::ConfigFromEnvironment();
    if (!config.ok()) {
      spdlog::error("init_all: {}", config.status().message());
      return Code(config.status());
    }
    config->protocol = protocol;
    config->device_name = device_name;
    config->global_segment_size = mount_segment_size;
    return Start(*std::move(config));
  }

  int RegisterBuffer(uintptr_t ptr, uint64_t size) {
    return Call(
        [&](Client& c) { return Code(c.RegisterBuffer(reinterpret_cast<void*>(ptr), size)); });
  }
  int UnregisterBuffer(uintptr_t ptr) {
    return Call([&](Client& c) { return Code(c.UnregisterBuffer(reinterpret_cast<void*>(ptr))); });
  }

  int Put(const std::string& key, const py::handle& value,
          const std::optional<ReplicateConfig>& config) {
    BufferView view(value);
    return PutValues({key}, {view.bytes()}, config)[0];
  }

  // upsert(key, value, config=None): insert or replace.
  int Upsert(const std::string& key, const py::handle& value,
             const std::optional<ReplicateConfig>& config) {
    BufferView view(value);
    std::vector<std::string> keys = {key};
    std::vector<std::string_view> values = {view.bytes()};
    return PutSlices(
        keys,
        [&](Client& c, const client::ReplicateConfig& r) { return c.BatchUpsert(keys, values, r); },
        config)[0];
  }

  std::vector<int> BatchUpsertFrom(const std::vector<std::string>& keys,
                                   const std::vector<uintptr_t>& ptrs,
                                   const std::vector<uint64_t>& sizes,
                                   const std::optional<ReplicateConfig>& config) {
    return PutFromPointers(keys, ptrs, sizes, config, /*upsert=*/true);
  }

  int PutParts(const std::string& key, py::args parts, py::kwargs kwargs) {
    std::optional<ReplicateConfig> config;
    for (auto [name, value] : kwargs) {
      if (py::str(name).cast<std::string>() != "config") {
        throw py::type_error(fmt::format("put_parts() got an unexpected keyword argument '{}'",
                                         py::str(name).cast<std::string>()));
      }
      if (!value.is_none()) config = value.cast<ReplicateConfig>();
    }
    std::vector<std::unique_ptr<BufferView>> views;
    std::vector<std::string_view> bytes = ViewAll(parts, &views);
    absl::StatusOr<client::ReplicateConfig> replicate = ConfigOf(config);
    if (!replicate.ok()) return Code(replicate.status());
    return Call([&](Client& c) { return Code(c.PutParts(key, bytes, *replicate)); });
  }

  int PutBatch(const std::vector<std::string>& keys, const py::list& values,
               const std::optional<ReplicateConfig>& config) {
    if (keys.size() != values.size()) return Code(ErrorCode::INVALID_PARAMS);
    std::vector<std::unique_ptr<BufferView>> views;
    std::vector<std::string_view> bytes = ViewAll(values, &views);
    for (int code : PutValues(keys, bytes, config)) {
      if (code != 0) return code;
    }
    return 0;
  }

  int PutFrom(const std::string& key, uintptr_t ptr, uint64_t size,
              const std::optional<ReplicateConfig>& config) {
    return BatchPutFrom({key}, {ptr}, {size}, config)[0];
  }

  std::vector<int> BatchPutFrom(const std::vector<std::string>& keys,
                                const std::vector<uintptr_t>& ptrs,
                                const std::vector<uint64_t>& sizes,
                                const std::optional<ReplicateConfig>& config) {
    return PutFromPointers(keys, ptrs, sizes, config, /*upsert=*/false);
  }

  std::vector<int> BatchPutFromMultiBuffers(const std::vector<std::string>& keys,
                                            const std::vector<std::vector<uintptr_t>>& ptrs,
                                            const std::vector<std::vector<uint64_t>>& sizes,
                                            const std::optional<ReplicateConfig>& config) {
    std::vector<std::vector<Slice>> parts;
    if (!MultiSlices(keys, ptrs, sizes, &parts)) {
      return std::vector<int>(keys.size(), Code(ErrorCode::INVALID_PARAMS));
    }
    return PutSlices(
        keys,
        [&](Client& c, const client::ReplicateConfig& r) {
          return c.BatchPutParts(keys, parts, r);
        },
        config);
  }

  py::bytes Get(const std::string& key) { return GetBatch({key})[0]; }

  // Each value is read straight into the bytes object returned (Client::BatchGetWith); empty
  // bytes for a key that failed.
  std::vector<py::bytes> GetBatch(const std::vector<std::string>& keys) {
    std::vector<py::bytes> values(keys.size());
    std::vector<absl::Status> got(
        keys.size(), MakeError(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS, "not set up"));
    CallVoid([&](Client& c) {
      got = c.BatchGetWith(keys, [&](size_t i, uint64_t size) -> char* {
        py::gil_scoped_acquire gil;
        PyObject* bytes = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(size));
        if (bytes == nullptr) {
          PyErr_Clear();  // the key fails instead
          return nullptr;
        }
        values[i] = py::reinterpret_steal<py::bytes>(bytes);
        return PyBytes_AS_STRING(bytes);
      });
    });
    for (size_t i = 0; i < keys.size(); ++i) {
      if (!got[i].ok()) values[i] = py::bytes();
    }
    return values;
  }

  py::object GetBuffer(const std::string& key) { return BatchGetBuffer({key})[0]; }

  std::vector<py::object> BatchGetBuffer(const std::vector<std::string>& keys) {
    std::vector<absl::StatusOr<std::string>> got = GetValues(keys);
    std::vector<py::object> out;
    out.reserve(got.size());
    for (auto& value : got) {
      out.push_back(value.ok() ? py::cast(BufferHandle(*std::move(value))) : py::none());
    }
    return out;
  }

  int64_t GetInto(const std::string& key, uintptr_t ptr, uint64_t size) {
    return BatchGetInto({key}, {ptr}, {size})[0];
  }

  std::vector<int64_t> BatchGetInto(const std::vector<std::string>& keys,
                                    const std::vector<uintptr_t>& ptrs,
                                    const std::vector<uint64_t>& sizes) {
    if (ptrs.size() != keys.size() || sizes.size() != keys.size()) {
      return std::vector<int64_t>(keys.size(), Code(ErrorCode::INVALID_PARAMS));
    }
    std::vector<Slice> slices = Slices(ptrs, sizes);
    return ReadSizes(keys.size(), [&](Client& c) { return c.BatchGetInto(keys, slices); });
  }

  std::vector<int64_t> BatchGetIntoMultiBuffers(const std::vector<std::string>& keys,
                                                const std::vector<std::vector<uintptr_t>>& ptrs,
                                                const std::vector<std::vector<uint64_t>>& sizes) {
    std::vector<std::vector<Slice>> parts;
    if (!MultiSlices(keys, ptrs, sizes, &parts)) {
      return std::vector<int64_t>(keys.size(), Code(ErrorCode::INVALID_PARAMS));
    }
    return ReadSizes(keys.size(), [&](Client& c) { return c.BatchGetIntoParts(keys, parts); });
  }

  // get_into_ranges(buffer_ptrs, keys, dst_offsets, src_offsets, lengths): for buffer i and its
  // key j, each range copies object[src:src+len] to buffer_i + dst. Same nesting back: bytes
  // copied per range or a negative code; one negative entry for a key whose lists differ in length.
  std::vector<std::vector<std::vector<int64_t>>> GetIntoRanges(
      const std::vector<uintptr_t>& buffer_ptrs, const std::vector<std::vector<std::string>>& keys,
      const std::vector<std::vector<std::vector<uint64_t>>>& dst_offsets,
      const std::vector<std::vector<std::vector<uint64_t>>>& src_offsets,
      const std::vector<std::vector<std::vector<uint64_t>>>& lengths) {
    const int64_t invalid = Code(ErrorCode::INVALID_PARAMS);
    std::vector<std::vector<std::vector<int64_t>>> out(keys.size());
    std::vector<std::string> flat_keys;
    std::vector<std::vector<Client::Range>> flat_ranges;
    std::vector<std::pair<size_t, size_t>> where;  // (buffer, key) of each flat entry
    for (size_t i = 0; i < keys.size(); ++i) {
      out[i].resize(keys[i].size());
      const bool shaped =
          i < buffer_ptrs.size() && i < dst_offsets.size() && i < src_offsets.size() &&
          i < lengths.size() && dst_offsets[i].size() == keys[i].size() &&
          src_offsets[i].size() == keys[i].size() && lengths[i].size() == keys[i].size();
      for (size_t j = 0; j < keys[i].size(); ++j) {
        if (!shaped || dst_offsets[i][j].size() != lengths[i][j].size() ||
            src_offsets[i][j].size() != lengths[i][j].size()) {
          out[i][j] = {invalid};
          continue;
        }
        std::vector<Client::Range> ranges;
        for (size_t r = 0; r < lengths[i][j].size(); ++r) {
          const uint64_t dst = buffer_ptrs[i] + dst_offsets[i][j][r];
          // Each destination must stay inside buffer i's registration.
          ranges.push_back({src_offsets[i][j][r],
                            Slice{reinterpret_cast<void*>(dst), lengths[i][j][r]},
                            reinterpret_cast<const void*>(buffer_ptrs[i])});
        }
        flat_keys.push_back(keys[i][j]);
        flat_ranges.push_back(std::move(ranges));
        where.emplace_back(i, j);
      }
    }
    std::vector<std::vector<absl::StatusOr<uint64_t>>> got(
        flat_keys.size(), {MakeError(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS, "not set up")});
    CallVoid([&](Client& c) { got = c.BatchGetRanges(flat_keys, flat_ranges); });
    for (size_t k = 0; k < where.size(); ++k) {
      std::vector<int64_t>& ranges = out[where[k].first][where[k].second];
      for (const absl::StatusOr<uint64_t>& r : got[k]) {
        ranges.push_back(r.ok() ? static_cast<int64_t>(*r) : Code(r.status()));
      }
    }
    return out;
  }

  int IsExist(const std::string& key) { return Exists({&key, 1})[0]; }

  std::vector<int> BatchIsExist(const KeyList& keys) { return Exists(keys.keys()); }

  std::vector<int> Exists(Keys keys) {
    std::vector<int> out(keys.size(), -1);
    CallVoid([&](Client& c) {
      std::vector<absl::StatusOr<bool>> exists = c.BatchExists(keys);
      for (size_t i = 0; i < keys.size(); ++i) out[i] = exists[i].ok() ? (*exists[i] ? 1 : 0) : -1;
    });
    return out;
  }

  int64_t GetSize(const std::string& key) {
    int64_t out = Code(ErrorCode::INVALID_PARAMS);
    CallVoid([&](Client& c) {
      absl::StatusOr<uint64_t> size = c.GetSize(key);
      out = size.ok() ? static_cast<int64_t>(*size) : Code(size.status());
    });
    return out;
  }

  int Remove(const std::string& key) {
    return Call([&](Client& c) { return Code(c.Remove(key)); });
  }

  std::vector<int> BatchRemove(const std::vector<std::string>& keys, bool force) {
    std::vector<int> out(keys.size(), Code(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS));
    CallVoid([&](Client& c) {
      std::vector<absl::Status> removed = c.BatchRemove(keys, force);
      for (size_t i = 0; i < keys.size(); ++i) out[i] = Code(removed[i]);
    });
    return out;
  }

  int64_t RemoveByRegex(const std::string& pattern) {
    int64_t out = Code(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS);
    CallVoid([&](Client& c) {
      absl::StatusOr<uint64_t> removed = c.RemoveByRegex(pattern);
      out = removed.ok() ? static_cast<int64_t>(*removed) : Code(removed.status());
    });
    return out;
  }

  int64_t RemoveAll() {
    int64_t out = -1;
    CallVoid([&](Client& c) {
      absl::StatusOr<uint64_t> removed = c.RemoveAll();
      out = removed.ok() ? static_cast<int64_t>(*removed) : -1;
    });
    return out;
  }

  std::string GetHostname() {
    absl::MutexLock lock(&mu_);
    return client_ ? client_->segment_name() : std::string();
  }

  int HealthCheck() {
    return Call([&](Client& c) { return Code(c.HealthCheck()); });
  }

  int Close() {
    py::gil_scoped_release release;
    return CloseLocked();
  }

  int CloseLocked() {
    std::shared_ptr<Client> client;
    std::unique_ptr<http::HttpServer> http;
    {
      absl::MutexLock lock(&mu_);
      client = std::move(client_);
      http = std::move(http_);
    }
    if (http) http->Stop();
    return client ? Code(client->Close()) : 0;
  }

 private:
  // The bytes of each value; `views` keeps them pinned until it goes.
  static std::vector<std::string_view> ViewAll(const py::iterable& values,
                                               std::vector<std::unique_ptr<BufferView>>* views) {
    std::vector<std::string_view> bytes;
    for (const py::handle& value : values) {
      views->push_back(std::make_unique<BufferView>(value));
      bytes.push_back(views->back()->bytes());
    }
    return bytes;
  }

  std::vector<int> PutFromPointers(const std::vector<std::string>& keys,
                                   const std::vector<uintptr_t>& ptrs,
                                   const std::vector<uint64_t>& sizes,
                                   const std::optional<ReplicateConfig>& config, bool upsert) {
    if (ptrs.size() != keys.size() || sizes.size() != keys.size()) {
      return std::vector<int>(keys.size(), Code(ErrorCode::INVALID_PARAMS));
    }
    std::vector<Slice> slices = Slices(ptrs, sizes);
    return PutSlices(
        keys,
        [&](Client& c, const client::ReplicateConfig& r) {
          return upsert ? c.BatchUpsertFrom(keys, slices, r) : c.BatchPutFrom(keys, slices, r);
        },
        config);
  }

  int SetupFromJson(const nlohmann::json& json) {
    ClientConfig base;
    // SGLang passes the cluster's token through the environment (SPEC.md §8); an
    // `auth_token_file` key of the config takes precedence.
    absl::StatusOr<AuthToken> token = client::AuthTokenFromEnvironment();
    if (!token.ok()) {
      spdlog::error("setup: {}", token.status().message());
      return Code(token.status());
    }
    base.auth = *std::move(token);
    std::vector<std::string> ignored;
    absl::StatusOr<ClientConfig> config = client::ConfigFromJson(json, base, &ignored);
    if (!config.ok()) {
      spdlog::error("setup: {}", config.status().message());
      return Code(config.status());
    }
    auto flag = [&](const char* name) {
      return json.contains(name) && json[name].is_boolean() && json[name].get<bool>();
    };
    if (flag("enable_ssd_offload")) {
      spdlog::error("setup: enable_ssd_offload is not supported by this build");
      return Code(ErrorCode::NOT_SUPPORTED);
    }
    http_port_ = -1;
    if (flag("enable_client_http_server")) {
      http_port_ = json.contains("client_http_port") && json["client_http_port"].is_number_integer()
                       ? json["client_http_port"].get<int>()
                       : 9300;
    }
    return Start(*std::move(config));
  }

  int Start(ClientConfig config) {
    py::gil_scoped_release release;
    {
      absl::MutexLock lock(&mu_);
      if (client_) {
        spdlog::error("setup: this store is set up already; close() it first");
        return Code(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS);
      }
    }
    absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(std::move(config));
    if (!client.ok()) {
      spdlog::error("setup: {}", client.status().message());
      return Code(client.status());
    }
    std::unique_ptr<http::HttpServer> http;
    if (http_port_ >= 0) {
      http::HttpServerOptions options;
      options.name = "client";
      // On the address peers reach this client by (the host of local_hostname).
      const std::string& host = (*client)->config().local_hostname;
      options.host =
          host.substr(0, host.rfind(':') == std::string::npos ? host.size() : host.rfind(':'));
      options.port = http_port_;
      options.min_workers = 1;
      options.auth = (*client)->config().auth;
      http = std::make_unique<http::HttpServer>(options);
      http::AddHealthAndMetricsRoutes(*http);
      if (absl::Status s = http->Start(); !s.ok()) {
        spdlog::error("setup: client HTTP server: {}", s.message());
        (void)(*client)->Close();
        return Code(s);
      }
    }
    absl::MutexLock lock(&mu_);
    client_ = *std::move(client);
    http_ = std::move(http);
    return 0;
  }

  std::shared_ptr<Client> Current() {
    absl::MutexLock lock(&mu_);
    return client_;
  }

  // Runs `fn` on the client without the GIL; UNAVAILABLE_IN_CURRENT_STATUS before setup.
  template <typename Fn>
  int Call(Fn fn) {
    std::shared_ptr<Client> client = Current();
    if (!client) return Code(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS);
    py::gil_scoped_release release;
    return fn(*client);
  }
  template <typename Fn>
  void CallVoid(Fn fn) {
    std::shared_ptr<Client> client = Current();
    if (!client) return;
    py::gil_scoped_release release;
    fn(*client);
  }

  std::vector<int> PutValues(const std::vector<std::string>& keys,
                             const std::vector<std::string_view>& values,
                             const std::optional<ReplicateConfig>& config) {
    return PutSlices(
        keys,
        [&](Client& c, const client::ReplicateConfig& r) { return c.BatchPut(keys, values, r); },
        config);
  }

  template <typename Fn>
  std::vector<int> PutSlices(const std::vector<std::string>& keys, Fn fn,
                             const std::optional<ReplicateConfig>& config) {
    absl::StatusOr<client::ReplicateConfig> replicate = ConfigOf(config);
    if (!replicate.ok()) return std::vector<int>(keys.size(), Code(replicate.status()));
    std::vector<int> out(keys.size(), Code(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS));
    CallVoid([&](Client& c) {
      std::vector<absl::Status> put = fn(c, *replicate);
      for (size_t i = 0; i < keys.size(); ++i) out[i] = Code(put[i]);
    });
    return out;
  }

  std::vector<absl::StatusOr<std::string>> GetValues(const std::vector<std::string>& keys) {
    std::vector<absl::StatusOr<std::string>> out(
        keys.size(), MakeError(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS, "not set up"));
    CallVoid([&](Client& c) { out = c.BatchGet(keys); });
    return out;
  }

  template <typename Fn>
  std::vector<int64_t> ReadSizes(size_t n, Fn fn) {
    std::vector<int64_t> out(n, Code(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS));
    CallVoid([&](Client& c) {
      std::vector<absl::StatusOr<uint64_t>> got = fn(c);
      for (size_t i = 0; i < n; ++i) {
        out[i] = got[i].ok() ? static_cast<int64_t>(*got[i]) : Code(got[i].status());
      }
    });
    return out;
  }

  static bool MultiSlices(const std::vector<std::string>& keys,
                          const std::vector<std::vector<uintptr_t>>& ptrs,
                          const std::vector<std::vector<uint64_t>>& sizes,
                          std::vector<std::vector<Slice>>* parts) {
    if (ptrs.size() != keys.size() || sizes.size() != keys.size()) return false;
    for (size_t i = 0; i < keys.size(); ++i) {
      if (ptrs[i].size() != sizes[i].size()) return false;
      parts->push_back(Slices(ptrs[i], sizes[i]));
    }
    return true;
  }

  absl::Mutex mu_;
  std::shared_ptr<Client> client_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<http::HttpServer> http_ ABSL_GUARDED_BY(mu_);
  int http_port_ = -1;
};

// Page-aligned host memory that is cheap to register (mapped, not touched).
class MooncakeHostMemAllocator {
 public:
  ~MooncakeHostMemAllocator() {
    for (auto [addr, size] : live_) munmap(reinterpret_cast<void*>(addr), size);
  }
  uintptr_t Alloc(uint64_t size) {
    if (size == 0) throw py::value_error("alloc(size): size must be > 0");
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    absl::MutexLock lock(&mu_);
    live_[reinterpret_cast<uintptr_t>(p)] = size;
    return reinterpret_cast<uintptr_t>(p);
  }
  int Free(uintptr_t ptr) {
    absl::MutexLock lock(&mu_);
    auto it = live_.find(ptr);
    if (it == live_.end()) return Code(ErrorCode::INVALID_PARAMS);
    munmap(reinterpret_cast<void*>(ptr), it->second);
    live_.erase(it);
    return 0;
  }

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<uintptr_t, uint64_t> live_ ABSL_GUARDED_BY(mu_);
};

void CloseAll() {
  std::vector<MooncakeDistributedStore*> live;
  {
    absl::MutexLock lock(&live_mu);
    live.assign(Live().begin(), Live().end());
  }
  for (MooncakeDistributedStore* store : live) store->Close();
}

}  // namespace
}  // namespace mooncake::python

PYBIND11_MODULE(store, m) {
  using namespace mooncake::python;
  m.doc() = "mooncake distributed KV cache: the client API that SGLang's HiCache uses";
  // As in the binary (src/cmd/main.cc): no deadlock detector on every lock.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  mooncake::InitLogging(std::getenv("MOONCAKE_LOG_LEVEL") ? std::getenv("MOONCAKE_LOG_LEVEL")
                                                          : "warn")
      .IgnoreError();

  py::enum_<SoftPinAction>(m, "SoftPinAction")
      .value("PRESERVE", SoftPinAction::kPreserve)
      .value("ENABLE", SoftPinAction::kEnable)
      .value("DISABLE", SoftPinAction::kDisable);

  py::class_<ReplicateConfig>(m, "ReplicateConfig")
      .def(py::init<>())
      .def_readwrite("replica_num", &ReplicateConfig::replica_num)
      .def_readwrite("with_soft_pin", &ReplicateConfig::with_soft_pin)
      .def_readwrite("with_hard_pin", &ReplicateConfig::with_hard_pin)
      .def_readwrite("preferred_segment", &ReplicateConfig::preferred_segment)
      .def_readwrite("preferred_segments", &ReplicateConfig::preferred_segments)
      .def_readwrite("prefer_alloc_in_same_node", &ReplicateConfig::prefer_alloc_in_same_node)
      .def_readwrite("group_ids", &ReplicateConfig::group_ids)
      .def_readwrite("soft_pin_action", &ReplicateConfig::soft_pin_action)
      .def_property(
          "soft_pin_ttl_ms", [](const ReplicateConfig& c) { return c.soft_pin_ttl_ms; },
          [](ReplicateConfig& c, const py::object& value) {
            if (value.is_none()) {
              c.soft_pin_ttl_ms.reset();
              return;
            }
            if (!py::isinstance<py::int_>(value) || py::isinstance<py::bool_>(value)) {
              throw py::type_error("soft_pin_ttl_ms must be an int or None");
            }
            const py::int_ v = value.cast<py::int_>();
            if (v < py::int_(0) ||
                v >= py::int_(py::reinterpret_steal<py::object>(
                         PyLong_FromString("18446744073709551616", nullptr, 10)))) {
              throw py::type_error("soft_pin_ttl_ms must be in 0 .. 2**64 - 1");
            }
            c.soft_pin_ttl_ms = v.cast<uint64_t>();
          })
      .def("__repr__", [](const ReplicateConfig& c) {
        return fmt::format(
            "ReplicateConfig(replica_num={}, with_soft_pin={}, with_hard_pin={}, "
            "preferred_segment='{}')",
            c.replica_num, c.with_soft_pin, c.with_hard_pin, c.preferred_segment);
      });

  py::class_<BufferHandle>(m, "BufferHandle", py::buffer_protocol())
      .def("ptr", &BufferHandle::ptr)
      .def("size", &BufferHandle::size)
      .def("__len__", &BufferHandle::size)
      .def_buffer([](BufferHandle& b) {
        return py::buffer_info(b.data().data(), 1, py::format_descriptor<uint8_t>::format(), 1,
                               {b.size()}, {1});
      });

  py::class_<MooncakeHostMemAllocator>(m, "MooncakeHostMemAllocator")
      .def(py::init<>())
      .def("alloc", &MooncakeHostMemAllocator::Alloc, py::arg("size"))
      .def("free", &MooncakeHostMemAllocator::Free, py::arg("ptr"));

  using Store = MooncakeDistributedStore;
  const py::arg_v config = py::arg("config") = py::none();
  py::class_<Store>(m, "MooncakeDistributedStore")
      .def(py::init<>())
      .def("setup", &Store::Setup)
      .def("setup_dummy", &Store::SetupDummy, py::arg("mem_pool_size"),
           py::arg("local_buffer_size"), py::arg("server_address"))
      .def("init_all", &Store::InitAll, py::arg("protocol"), py::arg("device_name"),
           py::arg("mount_segment_size") = 16 * kMiB)
      .def("register_buffer", &Store::RegisterBuffer, py::arg("ptr"), py::arg("size"))
      .def("unregister_buffer", &Store::UnregisterBuffer, py::arg("ptr"))
      .def("put", &Store::Put, py::arg("key"), py::arg("value"), config)
      .def("put_parts", &Store::PutParts, py::arg("key"))
      .def("upsert", &Store::Upsert, py::arg("key"), py::arg("value"), config)
      .def("batch_upsert_from", &Store::BatchUpsertFrom, py::arg("keys"), py::arg("ptrs"),
           py::arg("sizes"), config)
      .def("put_batch", &Store::PutBatch, py::arg("keys"), py::arg("values"), config)
      .def("put_from", &Store::PutFrom, py::arg("key"), py::arg("ptr"), py::arg("size"), config)
      .def("batch_put_from", &Store::BatchPutFrom, py::arg("keys"), py::arg("ptrs"),
           py::arg("sizes"), config)
      .def("batch_put_from_multi_buffers", &Store::BatchPutFromMultiBuffers, py::arg("keys"),
           py::arg("all_buffer_ptrs"), py::arg("all_sizes"), config)
      .def("get", &Store::Get, py::arg("key"))
      .def("get_batch", &Store::GetBatch, py::arg("keys"))
      .def("get_buffer", &Store::GetBuffer, py::arg("key"))
      .def("batch_get_buffer", &Store::BatchGetBuffer, py::arg("keys"))
      .def("get_into", &Store::GetInto, py::arg("key"), py::arg("ptr"), py::arg("size"))
      .def("batch_get_into", &Store::BatchGetInto, py::arg("keys"), py::arg("ptrs"),
           py::arg("sizes"))
      .def("batch_get_into_multi_buffers", &Store::BatchGetIntoMultiBuffers, py::arg("keys"),
           py::arg("all_buffer_ptrs"), py::arg("all_sizes"))
      .def("get_into_ranges", &Store::GetIntoRanges, py::arg("buffer_ptrs"), py::arg("keys"),
           py::arg("dst_offsets"), py::arg("src_offsets"), py::arg("lengths"))
      .def("is_exist", &Store::IsExist, py::arg("key"))
      .def("batch_is_exist", &Store::BatchIsExist, py::arg("keys"))
      .def("get_size", &Store::GetSize, py::arg("key"))
      .def("remove", &Store::Remove, py::arg("key"))
      .def("batch_remove", &Store::BatchRemove, py::arg("keys"), py::arg("force") = false)
      .def("remove_by_regex", &Store::RemoveByRegex, py::arg("regex"))
      .def("remove_all", &Store::RemoveAll)
      .def("get_hostname", &Store::GetHostname)
      .def("health_check", &Store::HealthCheck)
      .def("close", &Store::Close);

  py::module_::import("atexit").attr("register")(py::cpp_function([] { CloseAll(); }));
}
