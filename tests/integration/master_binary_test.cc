// The real `mooncake master` process on 127.0.0.1, driven over its RPC and admin ports.
#include <gtest/gtest.h>
#include <signal.h>

#include <memory>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "http/client.h"
#include "http/json_body.h"
#include "support/raw_socket.h"
#include "support/subprocess.h"

namespace mooncake {
namespace {

using http::HttpClient;
using nlohmann::json;
using test::Subprocess;

constexpr char kClient[] = "0b6f1c2e-0000-4000-8000-000000000001";

class MasterBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override { Start({}); }

  void Start(std::vector<std::string> extra) {
    std::vector<std::string> argv = {MOONCAKE_BINARY, "master", "--rpc_address",  "127.0.0.1",
                                     "--port",        "0",      "--metrics-port", "0"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    process_ = std::make_unique<Subprocess>(argv);
    std::optional<std::string> line = process_->WaitForLine("listening", absl::Seconds(20));
    ASSERT_TRUE(line.has_value()) << "mooncake master did not start";
    std::smatch m;
    ASSERT_TRUE(
        std::regex_search(*line, m, std::regex("rpc=[0-9.]+:([0-9]+) metrics=[0-9.]+:([0-9]+)")));
    rpc_port_ = std::stoi(m[1]);
    admin_port_ = std::stoi(m[2]);
    rpc_ = std::make_unique<HttpClient>("127.0.0.1", rpc_port_);
    admin_ = std::make_unique<HttpClient>("127.0.0.1", admin_port_);
    if (std::regex_search(*line, m, std::regex("metadata=http://[0-9.]+:([0-9]+)/metadata"))) {
      metadata_port_ = std::stoi(m[1]);
    }
  }

  void TearDown() override {
    process_->Signal(SIGTERM);
    EXPECT_EQ(process_->Wait(absl::Seconds(20)), 0);
  }

  // The RPC's JSON answer, or {"code": N} for an error answer.
  json Call(const std::string& method, const json& body) {
    absl::StatusOr<json> result = rpc_->CallJson("POST", "/v1/" + method, body);
    if (!result.ok()) return json{{"code", static_cast<int>(ErrorCodeOf(result.status()))}};
    return *result;
  }
  int CodeOf(const std::string& method, const json& body) {
    json answer = Call(method, body);
    return answer.contains("code") ? answer["code"].get<int>() : 0;
  }
  int RawCode(const std::string& method, const std::string& body) {
    absl::StatusOr<http::HttpResult> result =
        rpc_->Send("POST", "/v1/" + method, body, "application/json");
    EXPECT_TRUE(result.ok());
    if (result->status == 200) return 0;
    return static_cast<int>(
        ErrorCodeOf(http::StatusFromErrorResponse(result->status, result->body)));
  }
  std::string Admin(const std::string& path) {
    absl::StatusOr<http::HttpResult> result = admin_->Get(path);
    EXPECT_TRUE(result.ok());
    return result.ok() ? result->body : "";
  }
  void Mount(const std::string& name, uint64_t size) {
    ASSERT_EQ(
        CodeOf("MountSegment", {{"client_id", kClient},
                                {"segment", {{"name", name}, {"base", 1 << 20}, {"size", size}}}}),
        0);
  }
  uint64_t UsedBytes() {
    uint64_t used = 0;
    const json listed = Call("ListSegments", json::object());  // alive for the whole loop
    for (const json& s : listed["segments"]) used += s["used"].get<uint64_t>();
    return used;
  }

  std::unique_ptr<Subprocess> process_;
  int rpc_port_ = 0, admin_port_ = 0;
  std::unique_ptr<HttpClient> rpc_;
  std::unique_ptr<HttpClient> admin_;
  int metadata_port_ = 0;
};

TEST_F(MasterBinaryTest, PutGetRemoveOverRpc) {
  EXPECT_EQ(Admin("/get_all_segments"), "");  // SGLang polls this until a segment appears
  Mount("127.0.0.1:12345", 64 << 20);
  EXPECT_EQ(Admin("/get_all_segments"), "127.0.0.1:12345\n");

  json started = Call("PutStart", {{"client_id", kClient}, {"key", "page_0_k"}, {"size", 4096}});
  ASSERT_TRUE(started.contains("replicas")) << started;
  EXPECT_EQ(started["replicas"][0]["segment"], "127.0.0.1:12345");
  EXPECT_EQ(started["replicas"][0]["size"], 4096);
  EXPECT_EQ(CodeOf("GetReplicaList", {{"key", "page_0_k"}}), -703);
  EXPECT_EQ(CodeOf("PutEnd", {{"client_id", kClient}, {"key", "page_0_k"}}), 0);
  json got = Call("GetReplicaList", {{"key", "page_0_k"}});
  EXPECT_EQ(got["size"], 4096);
  EXPECT_EQ(got["lease_ms"], 10000);
  EXPECT_EQ(got["replicas"][0]["address"], started["replicas"][0]["address"]);
  EXPECT_EQ(Call("ExistKey", {{"key", "page_0_k"}})["exists"], true);
  EXPECT_EQ(Call("GetSize", {{"key", "page_0_k"}})["size"], 4096);
  EXPECT_EQ(CodeOf("PutStart", {{"client_id", kClient}, {"key", "page_0_k"}, {"size", 1}}), -705);
  EXPECT_EQ(CodeOf("Remove", {{"key", "page_0_k"}}), -706);  // leased by the reads above
  EXPECT_EQ(CodeOf("Remove", {{"key", "page_0_k"}, {"force", true}}), 0);
  EXPECT_EQ(CodeOf("GetReplicaList", {{"key", "page_0_k"}}), -704);
  EXPECT_EQ(Call("ExistKey", {{"key", "page_0_k"}})["exists"], false);
}

TEST_F(MasterBinaryTest, BatchFormsAnswerPerKey) {
  Mount("127.0.0.1:1", 64 << 20);
  std::vector<std::string> keys;
  std::vector<uint64_t> sizes;
  for (int i = 0; i < 128; ++i) {
    keys.push_back("hash" + std::to_string(i) + "_0_k");
    sizes.push_back(65536);
  }
  keys.push_back("");
  sizes.push_back(1);
  json started = Call("BatchPutStart", {{"client_id", kClient}, {"keys", keys}, {"sizes", sizes}});
  ASSERT_EQ(started["results"].size(), 129u);
  for (int i = 0; i < 128; ++i) EXPECT_EQ(started["results"][i]["code"], 0);
  EXPECT_EQ(started["results"][128]["code"], -400);
  keys.pop_back();
  json ended = Call("BatchPutEnd", {{"client_id", kClient}, {"keys", keys}});
  for (const json& r : ended["results"]) EXPECT_EQ(r["code"], 0);
  keys.push_back("absent");
  json exists = Call("BatchExistKey", {{"keys", keys}});
  ASSERT_EQ(exists["results"].size(), 129u);
  EXPECT_EQ(exists["results"][0]["exists"], true);
  EXPECT_EQ(exists["results"][128]["exists"], false);
  json lists = Call("BatchGetReplicaList", {{"keys", keys}});
  EXPECT_EQ(lists["results"][5]["size"], 65536);
  EXPECT_EQ(lists["results"][128]["code"], -704);
  json got_sizes = Call("BatchGetSize", {{"keys", {keys[0], "absent"}}});
  EXPECT_EQ(got_sizes["results"][0]["size"], 65536);
  EXPECT_EQ(got_sizes["results"][1]["code"], -704);
  json removed = Call("BatchRemove", {{"keys", {keys[0], "absent"}}, {"force", true}});
  EXPECT_EQ(removed["results"][0]["code"], 0);
  EXPECT_EQ(removed["results"][1]["code"], -704);
  EXPECT_EQ(Call("RemoveByRegex", {{"regex", "^hash1[0-9]_"}})["removed"], 0);  // all leased
  EXPECT_EQ(CodeOf("BatchPutRevoke", {{"client_id", kClient}, {"keys", {"absent"}}}), 0);
}

// The keys of a request are read as views of its body, another tenant's rewritten into the
// request's own storage: each call, and the leases it releases, still name the right objects.
TEST_F(MasterBinaryTest, LeasesAreReleasedByKeyInEveryTenant) {
  Mount("127.0.0.1:2", 64 << 20);
  const std::vector<std::string> keys = {"a-key-longer-than-sixteen-bytes_0", "b_1"};
  for (const json& tenant : {json(nullptr), json("t1"), json("t2")}) {
    json started =
        Call("BatchPutStart",
             {{"client_id", kClient}, {"keys", keys}, {"size", 4096}, {"tenant_id", tenant}});
    for (const json& r : started["results"]) ASSERT_EQ(r["code"], 0) << started;
    json ended =
        Call("BatchPutEnd", {{"client_id", kClient}, {"keys", keys}, {"tenant_id", tenant}});
    for (const json& r : ended["results"]) ASSERT_EQ(r["code"], 0) << ended;
  }
  // t1 reads both keys; every lease holds its own tenant's object only.
  json lists = Call("BatchGetReplicaList", {{"keys", keys}, {"tenant_id", "t1"}});
  ASSERT_EQ(lists["results"].size(), 2u);
  const json ids = {lists["results"][0]["lease_id"], lists["results"][1]["lease_id"]};
  auto remove = [&](const json& tenant, const std::string& key) {
    json removed = Call("BatchRemove", {{"keys", {key}}, {"tenant_id", tenant}});
    return removed["results"][0]["code"].get<int>();
  };
  EXPECT_EQ(remove("t1", keys[0]), -706);
  EXPECT_EQ(remove("t1", keys[1]), -706);
  EXPECT_EQ(remove("t2", keys[1]), 0);  // not leased: t1's lease is on t1's object
  // Released with t1's next call: the long key's lease in one tenant, then the short one's.
  json exists =
      Call("BatchExistKey", {{"keys", keys},
                             {"tenant_id", "t1"},
                             {"release_leases", {{"keys", {keys[0]}}, {"lease_ids", {ids[0]}}}}});
  EXPECT_EQ(exists["results"][0]["exists"], true);
  EXPECT_EQ(remove("t1", keys[0]), 0);
  EXPECT_EQ(remove("t1", keys[1]), -706);
  // A release in another tenant's name ends nothing of t1's.
  EXPECT_EQ(
      CodeOf("BatchExistKey", {{"keys", {keys[1]}},
                               {"release_leases", {{"keys", {keys[1]}}, {"lease_ids", {ids[1]}}}}}),
      0);
  EXPECT_EQ(remove("t1", keys[1]), -706);
  EXPECT_EQ(
      CodeOf("BatchGetSize", {{"keys", {keys[1]}},
                              {"tenant_id", "t1"},
                              {"release_leases", {{"keys", {keys[1]}}, {"lease_ids", {ids[1]}}}}}),
      0);
  EXPECT_EQ(remove("t1", keys[1]), 0);
  // The default tenant's objects were never leased.
  EXPECT_EQ(remove(nullptr, keys[0]), 0);
  EXPECT_EQ(remove(nullptr, keys[1]), 0);
  EXPECT_EQ(Call("BatchExistKey", {{"keys", keys}, {"tenant_id", "t2"}})["results"][0]["exists"],
            true);
}

TEST_F(MasterBinaryTest, KeysThatNeedEscapesAreTheKeysTheyEscape) {
  Mount("127.0.0.1:4", 1 << 20);
  std::string control = "ctrl\x01\ttab";
  const std::vector<std::string> keys = {"quote\"d", "back\\slash", "\xc3\xa9t\xc3\xa9", control,
                                         "slash/and space"};
  ASSERT_EQ(CodeOf("BatchPutStart", {{"client_id", kClient},
                                     {"keys", keys},
                                     {"sizes", std::vector<uint64_t>(keys.size(), 64)}}),
            0);
  json ended = Call("BatchPutEnd", {{"client_id", kClient}, {"keys", keys}});
  for (const json& r : ended["results"]) EXPECT_EQ(r["code"], 0) << r;
  // Each key is found under its own name and under no other; \u escapes name the same key.
  json found = Call("BatchExistKey", {{"keys", {keys[0], keys[2], "quote", "\xc3\xa9t"}}});
  EXPECT_EQ(found["results"][0]["exists"], true);
  EXPECT_EQ(found["results"][1]["exists"], true);
  EXPECT_EQ(found["results"][2]["exists"], false);
  EXPECT_EQ(found["results"][3]["exists"], false);
  absl::StatusOr<http::HttpResult> escaped =
      rpc_->Send("POST", "/v1/BatchExistKey",
                 R"({"keys": ["\u00e9t\u00e9", "ctrl\u0001\u0009tab"]})", "application/json");
  ASSERT_TRUE(escaped.ok());
  EXPECT_EQ(json::parse(escaped->body)["results"],
            json::parse(R"([{"code": 0, "exists": true}, {"code": 0, "exists": true}])"));
  // A member given twice counts as its last, as for every other call.
  absl::StatusOr<http::HttpResult> twice =
      rpc_->Send("POST", "/v1/BatchExistKey", R"({"keys": ["quote\"d"], "keys": ["absent", "x"]})",
                 "application/json");
  ASSERT_TRUE(twice.ok());
  EXPECT_EQ(json::parse(twice->body)["results"],
            json::parse(R"([{"code": 0, "exists": false}, {"code": 0, "exists": false}])"));
}

TEST_F(MasterBinaryTest, BadInputGetsItsCodeAndTheMasterKeepsServing) {
  Mount("127.0.0.1:2", 1 << 20);
  struct Case {
    std::string method;
    std::string body;
    int code;
  };
  const std::string long_key(4097, 'k');
  const std::vector<Case> cases = {
      {"PutStart", "{not json", -600},
      {"PutStart", "[1,2,3]", -600},
      {"PutStart", R"({"client_id": 5, "key": "k", "size": 1})", -600},
      {"PutStart", R"({"client_id": "c", "key": "k", "size": "big"})", -600},
      {"PutStart", R"({"client_id": "c", "key": "k", "size": -1})", -600},
      {"PutStart", R"({"client_id": "c", "key": "k", "size": 1.5})", -600},
      {"PutStart", R"({"client_id": "c", "key": "k", "size": 0})", -600},
      {"PutStart", R"({"client_id": "c", "key": "k", "size": 99999999999999999999})", -600},
      {"PutStart",
       R"({"client_id": "c", "key": "k", "size": 4096, "config": {"replica_num": 100}})", -600},
      {"PutStart", R"({"client_id": "c", "key": "k", "size": 4096, "config": {"replica_num": -1}})",
       -600},
      {"PutStart", R"({"client_id": "c", "key": "k", "size": 4194304})", -200},
      {"PutStart", R"({"client_id": "c", "key": "", "size": 1})", -400},
      {"PutStart", R"({"client_id": "c", "key": ")" + long_key + R"(", "size": 1})", -400},
      {"PutStart", "{\"client_id\": \"c\", \"key\": \"bad\xff\xfeutf8\", \"size\": 1}", -600},
      {"PutStart", R"({"client_id": "", "key": "k", "size": 1})", -600},
      {"GetReplicaList", R"({"keys": ["a"]})", -600},
      {"BatchGetReplicaList", R"({"keys": "a"})", -600},
      {"BatchGetReplicaList", R"({"keys": [1, 2]})", -600},
      {"BatchPutStart", R"({"client_id": "c", "keys": ["a", "b"], "sizes": [1]})", -600},
      {"RemoveByRegex", R"({"regex": "(unclosed"})", -600},
      {"RemoveByRegex", R"({"regex": 7})", -600},
      {"UnmountSegment", R"({"client_id": "c", "name": "nowhere:1"})", -101},
      {"UnmountSegment", R"({"client_id": "someone", "name": "127.0.0.1:2"})", -601},
      {"MountSegment",
       R"({"client_id": "0b6f1c2e-0000-4000-8000-000000000001", "segment": {"name": "127.0.0.1:2", "base": 0, "size": 4096}})",
       -102},
      {"MountSegment", R"({"client_id": "c", "segment": {"name": "z:1", "base": 0, "size": 0}})",
       -600},
      {"MountSegment",
       R"({"client_id": "c", "segment": {"name": "z:1", "base": 18446744073709551615, "size": 4096}})",
       -600},
      {"MountSegment", R"({"client_id": "c", "segment": "z:1"})", -600},
      {"MountSegment",
       R"({"client_id": "c", "segment": {"name": "z:1", "base": 0, "size": 4096}, "index": {}})",
       -600},
      {"MountSegment",
       R"({"client_id": "c", "segment": {"name": "z:1", "base": 0, "size": 4096},
           "index": [["k", 0, 64]]})",
       -600},
      {"MountSegment",
       R"({"client_id": "c", "segment": {"name": "z:1", "base": 0, "size": 4096},
           "index": [["k", 0, 64, 1]], "staged": -3})",
       -600},
      {"MountSegment",
       R"({"client_id": "c", "segment": {"name": "z:1", "base": 0, "size": 4096},
           "index": [], "staged": 5})",
       -704},
      {"StageSegmentIndex", R"({"client_id": "c", "segment": "z:1"})", -600},
      {"StageSegmentIndex", R"({"client_id": "c", "segment": "z:1", "first": 1, "index": []})",
       -600},
      {"StageSegmentIndex", R"({"client_id": "c", "segment": "z:1", "index": [[1, 0, 64, 1]]})",
       -600},
      {"StageSegmentIndex", R"({"client_id": "c", "segment": "z:1", "index": [["", 0, 64, 1]]})",
       -600},
      {"StageSegmentIndex", R"({"segment": "z:1", "index": []})", -600},
      {"SyncSegmentIndex", R"({"client_id": "c", "segment": "z:1", "mount_id": 1, "acked": 0,
                              "wait_ms": 10001})",
       -600},
      {"Heartbeat", R"({})", -600},
      {"NoSuchMethod", R"({})", -600},
      // The per-key calls' own reading of their bodies (http/fast_json.h).
      {"BatchExistKey", R"({"keys": ["a"]} trailing)", -600},
      {"BatchExistKey", "{\"keys\": [\"ok\", \"bad\xff\"]}", -600},
      {"BatchExistKey",
       R"({"keys": ["a"], "x": )" + std::string(65, '[') + std::string(65, ']') + "}", -600},
      {"BatchExistKey", R"({"keys": ["a"], "release_leases": []})", -600},
      {"BatchExistKey",
       R"({"keys": ["a"], "release_leases": {"keys": ["a", "b"], "lease_ids": [1]}})", -600},
      {"BatchExistKey",
       R"({"keys": ["a"], "release_leases": {"keys": ["a"], "lease_ids": [4294967296]}})", -600},
      {"BatchExistKey", R"({"keys": ["a"], "release_leases": {"lease_ids": [1]}})", -600},
      {"BatchExistKey", R"({"key": "a"})", -600},
      {"ExistKey", R"({"key": ["a"]})", -600},
      {"BatchPutEnd", R"({"keys": ["a"]})", -600},
      {"BatchPutStart", R"({"client_id": "c", "keys": ["a"], "sizes": [18446744073709551616]})",
       -600},
      {"BatchRemove", R"({"keys": ["a"], "force": "yes"})", -600},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(RawCode(c.method, c.body), c.code) << c.method << " " << c.body.substr(0, 120);
  }
  // A batch over the limit is refused whole.
  json too_many = json{{"keys", std::vector<std::string>(16385, "k")}};
  EXPECT_EQ(CodeOf("BatchExistKey", too_many), -600);
  // And the master still works, with none of that space lost.
  EXPECT_EQ(CodeOf("PutStart", {{"client_id", kClient}, {"key", "fine"}, {"size", 100}}), 0);
  EXPECT_EQ(CodeOf("PutRevoke", {{"client_id", kClient}, {"key", "fine"}}), 0);
  EXPECT_EQ(UsedBytes(), 0u);
}

TEST_F(MasterBinaryTest, RandomRequestStormLeaksNoSpace) {
  Mount("127.0.0.1:3", 32 << 20);
  Mount("127.0.0.1:4", 16 << 20);
  std::mt19937_64 rng(5);
  const std::vector<std::string> methods = {"BatchPutStart",       "BatchPutEnd", "BatchPutRevoke",
                                            "BatchGetReplicaList", "BatchRemove", "BatchExistKey",
                                            "RemoveByRegex"};
  for (int i = 0; i < 1500; ++i) {
    std::vector<std::string> keys;
    std::vector<json> sizes;
    for (int k = 0; k < 1 + static_cast<int>(rng() % 6); ++k) {
      keys.push_back(rng() % 20 == 0 ? "" : "key" + std::to_string(rng() % 100));
      sizes.push_back(rng() % 10 == 0 ? json(-1) : json(rng() % (3 << 20)));
    }
    json body = {{"client_id", kClient},
                 {"keys", keys},
                 {"sizes", sizes},
                 {"force", rng() % 2 == 0},
                 {"regex", rng() % 2 ? "key1.*" : "(("},
                 {"config", {{"replica_num", rng() % 4}}}};
    if (rng() % 10 == 0) body.erase("keys");
    Call(methods[rng() % methods.size()], body);
  }
  // End every put still in progress, let go of the leases, remove everything.
  std::vector<std::string> all;
  for (int k = 0; k < 100; ++k) all.push_back("key" + std::to_string(k));
  Call("BatchPutRevoke", {{"client_id", kClient}, {"keys", all}});
  Call("BatchRemove", {{"keys", all}, {"force", true}});
  EXPECT_EQ(UsedBytes(), 0u);
  EXPECT_EQ(Admin("/get_all_keys"), "");
}

// Finding: a segment name with a quote and a newline injected lines into /metrics. Such names are
// refused, and nothing of them reaches the metrics page.
TEST_F(MasterBinaryTest, SegmentNamesCannotInjectMetricLines) {
  const std::string evil = "x\"} 1\ninjected_metric{a=\"b";
  EXPECT_EQ(CodeOf("MountSegment", {{"client_id", kClient},
                                    {"segment", {{"name", evil}, {"base", 0}, {"size", 4096}}}}),
            -600);
  Mount("127.0.0.1:6", 8 << 20);
  const std::string metrics = Admin("/metrics");
  EXPECT_EQ(metrics.find("injected_metric"), std::string::npos) << metrics;
  for (size_t start = 0, end; (end = metrics.find('\n', start)) != std::string::npos;
       start = end + 1) {
    const std::string line = metrics.substr(start, end - start);
    // Every line is a comment or "name[{labels}] value".
    EXPECT_TRUE(line.empty() || line[0] == '#' ||
                std::regex_match(line, std::regex(R"([a-z_]+(\{.*\})? -?[0-9.]+(e[+-][0-9]+)?)")))
        << line;
  }
}

// Finding: 65 slowly-sending connections to the admin port made /health time out (a worker per
// connection, 64 of them), and connects stalled when many clients came at once (a listen backlog of
// 5). With 500 half-sent requests open on each port, /health and RPCs are answered at once.
TEST_F(MasterBinaryTest, SlowConnectionsDoNotStarveHealthOrRpcs) {
  std::vector<std::unique_ptr<test::RawSocket>> slow;
  for (int i = 0; i < 500; ++i) {
    for (auto [port, partial] :
         {std::pair{admin_port_, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: 1"},
          std::pair{rpc_port_,
                    "POST /v1/ListSegments HTTP/1.1\r\nHost: x\r\nContent-Length: "
                    "100\r\n\r\n{\"a\": "}}) {
      slow.push_back(std::make_unique<test::RawSocket>(port));
      ASSERT_TRUE(slow.back()->connected()) << i;
      ASSERT_TRUE(slow.back()->Send(partial));
    }
  }
  http::HttpClientOptions quick;
  quick.timeout = absl::Seconds(2);
  quick.max_attempts = 1;
  HttpClient admin("127.0.0.1", admin_port_, quick), rpc("127.0.0.1", rpc_port_, quick);
  for (int round = 0; round < 20; ++round) {
    absl::StatusOr<http::HttpResult> health = admin.Get("/health");
    ASSERT_TRUE(health.ok()) << health.status();
    EXPECT_EQ(health->status, 200);
    absl::StatusOr<json> listed = rpc.CallJson("POST", "/v1/ListSegments", json::object());
    ASSERT_TRUE(listed.ok()) << listed.status();
  }
  // The half-sent requests are answered 408 once their time is up, and closed.
  EXPECT_TRUE(slow.front()->WaitForClose(absl::Seconds(20)));
  EXPECT_EQ(test::StatusOf(slow.back()->ReadUntilClose(absl::Seconds(20))), 408);
}

TEST_F(MasterBinaryTest, AdminEndpoints) {
  Mount("127.0.0.1:5", 8 << 20);
  ASSERT_EQ(CodeOf("PutStart", {{"client_id", kClient}, {"key", "b"}, {"size", 10}}), 0);
  ASSERT_EQ(CodeOf("PutEnd", {{"client_id", kClient}, {"key", "b"}}), 0);
  ASSERT_EQ(CodeOf("PutStart", {{"client_id", kClient}, {"key", "a"}, {"size", 10}}), 0);
  ASSERT_EQ(CodeOf("PutEnd", {{"client_id", kClient}, {"key", "a"}}), 0);
  EXPECT_EQ(Admin("/get_all_keys"), "a\nb\n");
  json described = json::parse(Admin("/query_key?key=a"));
  EXPECT_EQ(described["size"], 10);
  EXPECT_EQ(described["state"], "complete");
  EXPECT_EQ(described["replicas"][0]["segment"], "127.0.0.1:5");
  absl::StatusOr<http::HttpResult> missing = admin_->Get("/query_key?key=zzz");
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(Admin("/health"), "OK");
  std::string metrics = Admin("/metrics");
  EXPECT_NE(metrics.find("mooncake_master_objects 2\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("mooncake_master_segment_capacity_bytes{segment=\"127.0.0.1:5\"} 8388608"),
            std::string::npos);
  EXPECT_NE(metrics.find("mooncake_master_key_operations_total{op=\"put_start\"} 2"),
            std::string::npos);
  EXPECT_NE(
      metrics.find(
          "mooncake_http_request_duration_seconds_count{server=\"master\",route=\"/v1/PutStart\""),
      std::string::npos);
  // The original master's names, which its users' scripts read, give the same figures.
  auto value = [&metrics](const std::string& series) -> std::string {
    std::smatch m;
    if (!std::regex_search(metrics, m, std::regex("\n" + series + " ([0-9]+)\n"))) return "none";
    return m[1];
  };
  const std::string segment = "\\{segment=\"127\\.0\\.0\\.1:5\"\\}";
  EXPECT_EQ(value("master_key_count"), "2");
  EXPECT_EQ(value("master_allocated_bytes"), value("mooncake_master_used_bytes"));
  EXPECT_NE(value("master_allocated_bytes"), "0");
  EXPECT_EQ(value("master_total_capacity_bytes"), "8388608");
  EXPECT_EQ(value("master_active_clients"), "1");
  EXPECT_EQ(value("mooncake_master_clients"), "1");
  EXPECT_EQ(value("master_evicted_key_count"), "0");
  EXPECT_EQ(value("segment_total_capacity_bytes" + segment), "8388608");
  EXPECT_EQ(value("segment_allocated_bytes" + segment), value("master_allocated_bytes"));
  std::string summary = Admin("/metrics/summary");
  EXPECT_NE(summary.find("objects: 2"), std::string::npos) << summary;
}

class MasterOptionsTest : public MasterBinaryTest {
 protected:
  void SetUp() override {}
};

TEST_F(MasterOptionsTest, DeadClientsLoseTheirSegments) {
  Start({"--client_live_ttl_sec", "1"});
  const absl::Time mounted = absl::Now();
  Mount("127.0.0.1:6", 8 << 20);
  const std::string listed = Admin("/get_all_segments");
  // (Listed unless a slow machine, such as a sanitizer build, took the TTL to get here.)
  if (absl::Now() - mounted < absl::Milliseconds(900)) {
    EXPECT_EQ(listed, "127.0.0.1:6\n");
  }
  // No heartbeat: within a few maintenance rounds past the TTL the segment is gone.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (Admin("/get_all_segments") != "" && absl::Now() < deadline)
    absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(Admin("/get_all_segments"), "");
  EXPECT_NE(Admin("/metrics").find("mooncake_master_clients_expired_total 1\n"), std::string::npos);
  EXPECT_EQ(Call("Heartbeat", {{"client_id", kClient}})["remount"], true);
  EXPECT_EQ(Call("Heartbeat", {{"client_id", kClient}})["remount"], false);
}

TEST_F(MasterOptionsTest, EmbeddedMetadataService) {
  Start({"--enable_http_metadata_server", "--http_metadata_server_host", "127.0.0.1",
         "--http_metadata_server_port", "0"});
  ASSERT_GT(metadata_port_, 0);
  HttpClient metadata("127.0.0.1", metadata_port_);
  ASSERT_EQ(metadata.Send("PUT", "/metadata?key=seg", "descriptor")->status, 200);
  EXPECT_EQ(metadata.Get("/metadata?key=seg")->body, "descriptor");
}

TEST_F(MasterOptionsTest, MetricsPortCanBeTurnedOff) {
  process_ = std::make_unique<Subprocess>(
      std::vector<std::string>{MOONCAKE_BINARY, "master", "--rpc_address", "127.0.0.1", "--port",
                               "0", "--enable_metric_reporting=false"});
  std::optional<std::string> line = process_->WaitForLine("listening", absl::Seconds(20));
  ASSERT_TRUE(line.has_value());
  EXPECT_EQ(line->find("metrics="), std::string::npos) << *line;
}

// --rpc_spin_us only changes how long threads poll before they sleep (a worker for its
// connection's next call, the master's waits on segments' owners): with 0 calls are answered as
// before; a negative value is refused by name.
TEST_F(MasterOptionsTest, RpcSpinCanBeTurnedOff) {
  Start({"--rpc-spin-us", "0"});
  Mount("127.0.0.1:6", 8 << 20);
  json started = Call("PutStart", {{"client_id", kClient}, {"key", "spin_k"}, {"size", 4096}});
  ASSERT_EQ(started["replicas"].size(), 1u) << started;
  Call("PutEnd", {{"client_id", kClient}, {"key", "spin_k"}});
  EXPECT_EQ(Call("ExistKey", {{"key", "spin_k"}})["exists"], true);

  Subprocess refused(
      {MOONCAKE_BINARY, "master", "--rpc_address", "127.0.0.1", "--port", "0", "--rpc_spin_us=-1"});
  EXPECT_EQ(refused.Wait(absl::Seconds(20)), std::optional<int>(2));
}

}  // namespace
}  // namespace mooncake
