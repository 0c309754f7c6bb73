// Tenants: names and internal keys (common/tenant.h), the policy file, quota admission, and the
// master's namespaces, per-tenant eviction and usage (MasterService with a fake clock).
#include "master/tenants.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error_code.h"
#include "common/tenant.h"
#include "master/master_service.h"

namespace mooncake::master {
namespace {

constexpr uint64_t kMiB = 1 << 20;
constexpr char kClient[] = "client-1";

TEST(TenantNameTest, ValidAndInvalidNames) {
  EXPECT_TRUE(ValidateTenantName("tenant-a").ok());
  EXPECT_TRUE(ValidateTenantName("default").ok());
  EXPECT_TRUE(ValidateTenantName("Äbc.1:x y").ok());
  for (std::string bad :
       {std::string(), std::string("_system"), std::string("a\x01"), std::string("a\nb"),
        std::string("a\x7f"), std::string(129, 'x'), std::string("a\0b", 3)}) {
    absl::Status status = ValidateTenantName(bad);
    EXPECT_EQ(ErrorCodeOf(status), ErrorCode::INVALID_PARAMS) << bad;
    EXPECT_FALSE(status.message().empty());
  }
}

TEST(TenantNameTest, InternalKeysKeepTenantsApart) {
  EXPECT_EQ(QualifyKey("default", "k"), "k");
  const std::string a = QualifyKey("a", "k");
  EXPECT_EQ(a, std::string("\0a\0k", 4));
  EXPECT_EQ(SplitKey(a).tenant, "a");
  EXPECT_EQ(SplitKey(a).key, "k");
  EXPECT_EQ(SplitKey("k").tenant, "default");
  EXPECT_TRUE(InTenant(a, "a"));
  EXPECT_FALSE(InTenant(a, "default"));
  EXPECT_FALSE(InTenant(a, "ab"));
  EXPECT_FALSE(InTenant(QualifyKey("ab", "k"), "a"));
  EXPECT_TRUE(InTenant("k", "default"));
  EXPECT_FALSE(InTenant("k", "a"));
}

TEST(TenantPolicyTest, ParsesQuotasInBytesAndUnits) {
  auto quotas = ParseTenantPolicy(
      "version: 1\n"
      "tenants:\n"
      "  - name: tenant-a\n"
      "    quota: 200GB\n"
      "  - name: tenant-b\n"
      "    quota: 4096\n"
      "  - name: \"tenant c\"\n"
      "    quota: 1.5 MiB\n");
  ASSERT_TRUE(quotas.ok()) << quotas.status();
  EXPECT_EQ(quotas->at("tenant-a"), uint64_t{200} << 30);
  EXPECT_EQ(quotas->at("tenant-b"), 4096u);
  EXPECT_EQ(quotas->at("tenant c"), 3 * kMiB / 2);
  // What it writes, it reads back.
  auto again = ParseTenantPolicy(FormatTenantPolicy(*quotas));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *quotas);
  EXPECT_TRUE(ParseTenantPolicy("").ok());
  EXPECT_TRUE(ParseTenantPolicy("version: 1\ntenants: []\n").ok());
}

TEST(TenantPolicyTest, MalformedPoliciesSayWhatIsWrong) {
  const std::pair<const char*, const char*> cases[] = {
      {"version: 1\ntenants: [", "not YAML"},
      {"- a\n- b\n", "expected a mapping"},
      {"version: 2\ntenants: []\n", "'version' must be 1"},
      {"tenants: []\n", "'version' must be 1"},
      {"version: 1\ntenants: []\nquota: 1\n", "unknown key 'quota'"},
      {"version: 1\ntenants: {a: 1}\n", "must be a list"},
      {"version: 1\ntenants:\n  - name: a\n    quota: 0\n", "quota 0 must be 1 byte"},
      {"version: 1\ntenants:\n  - name: a\n    quota: 18446744073709551616\n", "tenants[0] (a)"},
      {"version: 1\ntenants:\n  - name: a\n    quota: 5000000TB\n", "must be 1 byte to 4 EiB"},
      {"version: 1\ntenants:\n  - name: a\n    quota: -5\n", "tenants[0] (a)"},
      {"version: 1\ntenants:\n  - name: a\n    quota: lots\n", "tenants[0] (a)"},
      {"version: 1\ntenants:\n  - name: a\n", "'quota' must be bytes"},
      {"version: 1\ntenants:\n  - quota: 1\n", "'name' must be a string"},
      {"version: 1\ntenants:\n  - name: _sys\n    quota: 1\n", "reserved"},
      {"version: 1\ntenants:\n  - name: \"a\\x01\"\n    quota: 1\n", "control character"},
      {"version: 1\ntenants:\n  - name: a\n    quota: 1\n  - name: a\n    quota: 2\n",
       "listed twice"},
      {"version: 1\ntenants:\n  - name: a\n    quota: 1\n    color: red\n", "unknown key 'color'"},
  };
  for (const auto& [text, expected] : cases) {
    auto parsed = ParseTenantPolicy(text);
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_EQ(ErrorCodeOf(parsed.status()), ErrorCode::INVALID_PARAMS);
    EXPECT_NE(parsed.status().message().find(expected), std::string::npos)
        << text << " -> " << parsed.status().message() << "\n";
  }
}

class PolicyFile {
 public:
  explicit PolicyFile(const std::string& text) {
    path_ =
        (std::filesystem::temp_directory_path() / ("tenants_test_" + std::to_string(::getpid()) +
                                                   "_" + std::to_string(counter_++) + ".yaml"))
            .string();
    if (!text.empty()) std::ofstream(path_) << text;
  }
  ~PolicyFile() {
    std::remove(path_.c_str());
    std::remove((path_ + ".tmp").c_str());
  }
  const std::string& path() const { return path_; }
  std::string Read() const {
    std::stringstream text;
    text << std::ifstream(path_).rdbuf();
    return text.str();
  }

 private:
  static inline int counter_ = 0;
  std::string path_;
};

TenantOptions Quotas(const PolicyFile& file) {
  TenantOptions options;
  options.quotas = true;
  options.connector_uri = file.path();
  return options;
}

TEST(TenantsTest, OptionsAndFilesAreChecked) {
  TenantOptions redis;
  redis.quotas = true;
  redis.connector_type = "redis";
  redis.connector_uri = "x";
  EXPECT_EQ(ErrorCodeOf(Tenants::Create(redis).status()), ErrorCode::INVALID_PARAMS);
  TenantOptions etcd;  // without endpoints (no URI, no HA)
  etcd.quotas = true;
  etcd.connector_type = "etcd";
  etcd.etcd_key = "mooncake/c/tenant_quotas";
  EXPECT_EQ(ErrorCodeOf(Tenants::Create(etcd).status()), ErrorCode::INVALID_PARAMS);
  TenantOptions no_file;
  no_file.quotas = true;
  EXPECT_EQ(ErrorCodeOf(Tenants::Create(no_file).status()), ErrorCode::INVALID_PARAMS);
  PolicyFile bad("version: 7\n");
  auto refused = Tenants::Create(Quotas(bad));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find(bad.path()), std::string::npos);
  // A file that does not exist yet: an empty policy, written by the first SetQuota.
  PolicyFile missing("");
  auto tenants = Tenants::Create(Quotas(missing));
  ASSERT_TRUE(tenants.ok()) << tenants.status();
  EXPECT_TRUE((*tenants)->List(0)->empty());
  ASSERT_TRUE((*tenants)->SetQuota("a", kMiB, 0).ok());
  auto written = ParseTenantPolicy(missing.Read());
  ASSERT_TRUE(written.ok());
  EXPECT_EQ(written->at("a"), kMiB);
  // A policy the file cannot hold is not kept: the next restart would lose it.
  TenantOptions unwritable;
  unwritable.quotas = true;
  unwritable.connector_uri = "/nonexistent-directory/policy.yaml";
  auto stuck = Tenants::Create(unwritable);
  ASSERT_TRUE(stuck.ok()) << stuck.status();
  auto refused_set = (*stuck)->SetQuota("a", kMiB, 0);
  EXPECT_EQ(ErrorCodeOf(refused_set.status()), ErrorCode::INTERNAL_ERROR);
  EXPECT_NE(refused_set.status().message().find("/nonexistent-directory/policy.yaml"),
            std::string::npos)
      << refused_set.status();
  EXPECT_EQ(ErrorCodeOf((*stuck)->Get("a", 0).status()), ErrorCode::OBJECT_NOT_FOUND);
}

TEST(TenantsTest, AdmissionWithinQuotas) {
  PolicyFile file("version: 1\ntenants:\n  - name: a\n    quota: 4MiB\n");
  auto created = Tenants::Create(Quotas(file));
  ASSERT_TRUE(created.ok()) << created.status();
  Tenants& tenants = **created;
  // Unregistered tenants, the default one included, may not write.
  EXPECT_EQ(ErrorCodeOf(tenants.Reserve("b", 1, 0)), ErrorCode::ILLEGAL_CLIENT);
  EXPECT_EQ(ErrorCodeOf(tenants.Reserve("default", 1, 0)), ErrorCode::ILLEGAL_CLIENT);
  uint64_t over = 1;
  EXPECT_EQ(ErrorCodeOf(tenants.Reserve("a", 5 * kMiB, 0, &over)), ErrorCode::NO_AVAILABLE_HANDLE);
  EXPECT_EQ(over, 0u);  // larger than the quota: no eviction helps
  ASSERT_TRUE(tenants.Reserve("a", 3 * kMiB, 0).ok());
  EXPECT_EQ(ErrorCodeOf(tenants.Reserve("a", 2 * kMiB, 0, &over)), ErrorCode::NO_AVAILABLE_HANDLE);
  EXPECT_EQ(over, kMiB);
  // Reserved bytes become an object's.
  tenants.Count(QualifyKey("a", "k"), 3 * kMiB, +1);
  tenants.Release("a", 3 * kMiB);
  auto a = tenants.Get("a", 0);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->used_bytes, 3 * kMiB);
  EXPECT_EQ(a->reserved_bytes, 0u);
  EXPECT_EQ(a->objects, 1u);
  EXPECT_TRUE(tenants.Reserve("a", kMiB, 0).ok());
  tenants.Release("a", kMiB);
  // A tenant holding objects keeps its policy.
  EXPECT_EQ(ErrorCodeOf(tenants.DeleteQuota("a")), ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS);
  tenants.Count(QualifyKey("a", "k"), 3 * kMiB, -1);
  EXPECT_TRUE(tenants.DeleteQuota("a").ok());
  EXPECT_EQ(ErrorCodeOf(tenants.Get("a", 0).status()), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(ErrorCodeOf(tenants.DeleteQuota("a")), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(ParseTenantPolicy(file.Read())->size(), 0u);
  const std::string metrics = tenants.RenderMetrics(0);
  EXPECT_NE(metrics.find("mooncake_tenant_quota_reject_total{tenant_id=\"default\","
                         "reason=\"unregistered\"} 1"),
            std::string::npos)
      << metrics;
}

TEST(TenantsTest, QuotasAreScaledDownToThePool) {
  PolicyFile file(
      "version: 1\ntenants:\n  - name: a\n    quota: 6MiB\n  - name: b\n    quota: 2MiB\n");
  auto created = Tenants::Create(Quotas(file));
  ASSERT_TRUE(created.ok());
  Tenants& tenants = **created;
  EXPECT_EQ(tenants.EffectiveQuota("a", 16 * kMiB), 6 * kMiB);  // they fit
  EXPECT_EQ(tenants.EffectiveQuota("a", 4 * kMiB), 3 * kMiB);   // half the pool asked each
  EXPECT_EQ(tenants.EffectiveQuota("b", 4 * kMiB), kMiB);
  tenants.Count(QualifyKey("b", "k"), 2 * kMiB, +1);
  auto b = tenants.Get("b", 4 * kMiB);
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(b->over_quota);
  // Quotas of 0 or past 2^62, and bad names, are refused.
  EXPECT_EQ(ErrorCodeOf(tenants.SetQuota("c", 0, 0).status()), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ErrorCodeOf(tenants.SetQuota("c", kMaxTenantQuotaBytes + 1, 0).status()),
            ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ErrorCodeOf(tenants.SetQuota("_c", 1, 0).status()), ErrorCode::INVALID_PARAMS);
  tenants.Count(QualifyKey("b", "k"), 2 * kMiB, -1);
}

TEST(TenantsTest, QuotasOffRefusesThePolicyApi) {
  auto created = Tenants::Create(TenantOptions{});
  ASSERT_TRUE(created.ok());
  EXPECT_TRUE((*created)->Reserve("anyone", 1 << 30, 0).ok());
  EXPECT_EQ(ErrorCodeOf((*created)->List(0).status()), ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS);
  EXPECT_EQ(ErrorCodeOf((*created)->SetQuota("a", 1, 0).status()),
            ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS);
}

class TenantMasterTest : public ::testing::Test {
 protected:
  TenantMasterTest() : service_(Config(), &clock_, &metrics_) {}
  static MasterConfig Config() {
    MasterConfig config;
    config.seed = 7;
    config.eviction_ratio = 0.01;
    return config;
  }

  absl::Status Put(std::string_view tenant, const std::string& key, uint64_t size) {
    PutItem item{QualifyKey(tenant, key), size};
    auto started = service_.PutStart(kClient, {&item, 1}, ReplicateConfig{})[0];
    if (!started.ok()) return started.status();
    clock_.Advance(absl::Milliseconds(1));  // distinct access times: eviction order is defined
    return service_.PutEnd(kClient, {&item.key, 1})[0];
  }
  bool Exists(std::string_view tenant, const std::string& key) {
    const std::string internal = QualifyKey(tenant, key);
    return *service_.ExistKey({&internal, 1})[0];
  }
  uint64_t Size(std::string_view tenant, const std::string& key) {
    const std::string internal = QualifyKey(tenant, key);
    const std::vector<absl::StatusOr<uint64_t>> sizes = service_.GetSize({&internal, 1});
    return sizes[0].ok() ? *sizes[0] : 0;
  }

  FakeClock clock_;
  MetricsRegistry metrics_;
  MasterService service_;
};

TEST_F(TenantMasterTest, TheSameKeyInTwoTenantsIsTwoObjects) {
  ASSERT_TRUE(service_.MountSegment(kClient, "seg:1", 0x10000000, 64 * kMiB).ok());
  ASSERT_TRUE(Put("default", "k", 100).ok());
  ASSERT_TRUE(Put("a", "k", 200).ok());
  ASSERT_TRUE(Put("b", "k", 300).ok());
  ASSERT_TRUE(Put("b", "only_b", 1).ok());
  EXPECT_EQ(Size("default", "k"), 100u);
  EXPECT_EQ(Size("a", "k"), 200u);
  EXPECT_EQ(Size("b", "k"), 300u);
  EXPECT_FALSE(Exists("a", "only_b"));
  EXPECT_FALSE(Exists("default", "only_b"));
  EXPECT_EQ(service_.AllKeys("b"), (std::vector<std::string>{"k", "only_b"}));
  EXPECT_EQ(service_.AllKeys(), std::vector<std::string>{"k"});
  // Removal by pattern and of everything stay within the tenant; patterns see the client's keys.
  EXPECT_EQ(*service_.RemoveByRegex("^only_", "b"), 1u);
  EXPECT_EQ(*service_.RemoveByRegex("^k$", "a"), 1u);
  EXPECT_TRUE(Exists("b", "k"));
  EXPECT_TRUE(Exists("default", "k"));
  EXPECT_EQ(service_.RemoveAll("b"), 1u);
  EXPECT_TRUE(Exists("default", "k"));
  EXPECT_EQ(service_.RemoveAll(), 1u);
  EXPECT_EQ(service_.counts().objects, 0u);
}

TEST_F(TenantMasterTest, APutPastItsQuotaEvictsOnlyItsTenantsObjects) {
  PolicyFile file(
      "version: 1\ntenants:\n  - name: a\n    quota: 4MiB\n  - name: b\n    quota: 4MiB\n");
  ASSERT_TRUE(service_.EnableTenantQuotas(Quotas(file)).ok());
  ASSERT_TRUE(service_.MountSegment(kClient, "seg:1", 0x10000000, 64 * kMiB).ok());
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(Put("a", "a" + std::to_string(i), kMiB).ok());
  // b's objects are older than all of a's but one: a global LRU would take them first.
  ASSERT_TRUE(Put("b", "b0", kMiB).ok());
  ASSERT_TRUE(Put("b", "b1", kMiB).ok());
  EXPECT_EQ(ErrorCodeOf(Put("default", "d", 1)), ErrorCode::ILLEGAL_CLIENT);
  EXPECT_EQ(ErrorCodeOf(Put("c", "c", 1)), ErrorCode::ILLEGAL_CLIENT);
  ASSERT_TRUE(Put("a", "a4", kMiB).ok());
  EXPECT_FALSE(Exists("a", "a0"));  // a's oldest made the room
  EXPECT_TRUE(Exists("a", "a4"));
  EXPECT_TRUE(Exists("b", "b0"));
  EXPECT_TRUE(Exists("b", "b1"));
  auto a = service_.tenants().Get("a", 64 * kMiB);
  ASSERT_TRUE(a.ok());
  EXPECT_LE(a->used_bytes, 4 * kMiB);
  EXPECT_EQ(a->reserved_bytes, 0u);
  // Larger than the quota: refused without evicting anything.
  const uint64_t objects = service_.counts().objects;
  EXPECT_EQ(ErrorCodeOf(Put("b", "huge", 5 * kMiB)), ErrorCode::NO_AVAILABLE_HANDLE);
  EXPECT_EQ(service_.counts().objects, objects);
  // What a tenant cannot evict (hard-pinned) it cannot replace.
  PutItem pinned{QualifyKey("b", "pinned"), 3 * kMiB};
  ReplicateConfig hard;
  hard.with_hard_pin = true;
  ASSERT_TRUE(service_.PutStart(kClient, {&pinned, 1}, hard)[0].ok());
  ASSERT_TRUE(service_.PutEnd(kClient, {&pinned.key, 1})[0].ok());
  EXPECT_FALSE(Exists("b", "b0"));  // evicted to make room for the pinned one
  auto refused = Put("b", "more", 2 * kMiB);
  EXPECT_EQ(ErrorCodeOf(refused), ErrorCode::NO_AVAILABLE_HANDLE);
  EXPECT_NE(refused.message().find("tenant 'b'"), std::string::npos) << refused;
  for (int i = 2; i < 5; ++i) EXPECT_TRUE(Exists("a", "a" + std::to_string(i))) << i;
  const std::string metrics = service_.tenants().RenderMetrics(64 * kMiB);
  EXPECT_NE(metrics.find("mooncake_tenant_evict_bytes_total{tenant_id=\"a\"} "), std::string::npos);
  EXPECT_EQ(metrics.find("mooncake_tenant_evict_bytes_total{tenant_id=\"a\"} 0\n"),
            std::string::npos)
      << metrics;
}

TEST_F(TenantMasterTest, PutsOfKeysThereAlreadyEvictNothing) {
  PolicyFile file("version: 1\ntenants:\n  - name: a\n    quota: 2MiB\n");
  ASSERT_TRUE(service_.EnableTenantQuotas(Quotas(file)).ok());
  ASSERT_TRUE(service_.MountSegment(kClient, "seg:1", 0x10000000, 64 * kMiB).ok());
  ASSERT_TRUE(Put("a", "a0", kMiB).ok());
  ASSERT_TRUE(Put("a", "a1", kMiB).ok());
  // At its quota, a put of a key it holds is refused as a key that exists, not by evicting.
  EXPECT_EQ(ErrorCodeOf(Put("a", "a1", kMiB)), ErrorCode::OBJECT_ALREADY_EXISTS);
  EXPECT_TRUE(Exists("a", "a0"));
  // An upsert of it needs room for the new value: the oldest other object goes.
  PutItem item{QualifyKey("a", "a1"), kMiB};
  ReplicateConfig upsert;
  upsert.upsert = true;
  ASSERT_TRUE(service_.PutStart(kClient, {&item, 1}, upsert)[0].ok());
  ASSERT_TRUE(service_.PutEnd(kClient, {&item.key, 1})[0].ok());
  EXPECT_FALSE(Exists("a", "a0"));
  EXPECT_TRUE(Exists("a", "a1"));
  EXPECT_EQ(service_.tenants().Get("a", 64 * kMiB)->used_bytes, kMiB);
}

TEST_F(TenantMasterTest, UsageIsRebuiltFromTheOwnersIndexes) {
  ASSERT_TRUE(service_.MountSegment(kClient, "seg:1", 0x10000000, 64 * kMiB).ok());
  // A master restarted with quotas: the owner reports its objects with their tenants.
  PolicyFile file("version: 1\ntenants:\n  - name: a\n    quota: 1GiB\n");
  MasterService restarted(Config(), &clock_, &metrics_);
  ASSERT_TRUE(restarted.EnableTenantQuotas(Quotas(file)).ok());
  std::vector<IndexEntry> index = {{QualifyKey("a", "k"), 0, kMiB, 5},
                                   {QualifyKey("a", "j"), kMiB, 2 * kMiB, 6},
                                   {"plain", 4 * kMiB, 64, 7}};
  ASSERT_TRUE(
      restarted.MountIndexedSegment(kClient, "seg:1", 0x10000000, 64 * kMiB, 0, index).ok());
  auto a = restarted.tenants().Get("a", 64 * kMiB);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->objects, 2u);
  EXPECT_EQ(a->used_bytes, 3 * kMiB);
  EXPECT_EQ(restarted.AllKeys("a"), (std::vector<std::string>{"j", "k"}));
  EXPECT_EQ(restarted.AllKeys(), std::vector<std::string>{"plain"});
}

}  // namespace
}  // namespace mooncake::master
