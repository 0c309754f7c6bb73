#include "engine/metadata_client.h"

#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "common/error_code.h"
#include "common/strings.h"
#include "http/client.h"
#include "http/etcd_client.h"

namespace mooncake::engine {
namespace {

class HttpMetadataClient final : public MetadataClient {
 public:
  HttpMetadataClient(std::unique_ptr<http::HttpClient> http, std::string path)
      : http_(std::move(http)), path_(std::move(path)) {}

  absl::StatusOr<std::optional<std::string>> Get(const std::string& key) override {
    absl::StatusOr<http::HttpResult> got = http_->Get(Target(key));
    if (!got.ok()) return got.status();
    if (got->status == 404) return std::optional<std::string>();
    if (got->status != 200) {
      return MakeError(ErrorCode::RPC_FAIL,
                       fmt::format("metadata service {}: HTTP {}", Describe(), got->status));
    }
    return std::optional<std::string>(std::move(got->body));
  }

  absl::Status Put(const std::string& key, const std::string& value) override {
    absl::StatusOr<http::HttpResult> put =
        http_->Send("PUT", Target(key), value, "application/json");
    if (!put.ok()) return put.status();
    if (put->status != 200) {
      return MakeError(ErrorCode::RPC_FAIL, fmt::format("metadata service {} refused {}: HTTP {}",
                                                        Describe(), key, put->status));
    }
    return absl::OkStatus();
  }

  absl::Status Delete(const std::string& key) override {
    absl::StatusOr<http::HttpResult> deleted = http_->Send("DELETE", Target(key));
    return deleted.ok() ? absl::OkStatus() : deleted.status();
  }

  absl::Status KeepAlive() override { return absl::OkStatus(); }

  std::string Describe() const override {
    return fmt::format("http://{}:{}{}", http_->host(), http_->port(), path_);
  }

 private:
  std::string Target(const std::string& key) const {
    return path_ + "?key=" + http::EncodeQueryValue(key);
  }

  const std::unique_ptr<http::HttpClient> http_;
  const std::string path_;
};

// Values are put under one lease of this client, granted on the first put and again whenever
// etcd lost it.
class EtcdMetadataClient final : public MetadataClient {
 public:
  EtcdMetadataClient(std::unique_ptr<http::EtcdClient> etcd, absl::Duration lease_ttl)
      : etcd_(std::move(etcd)), lease_ttl_(lease_ttl) {}

  ~EtcdMetadataClient() override {
    absl::MutexLock lock(&mu_);
    if (lease_ != 0) (void)etcd_->LeaseRevoke(lease_);
  }

  absl::StatusOr<std::optional<std::string>> Get(const std::string& key) override {
    absl::StatusOr<std::optional<http::EtcdKeyValue>> got = etcd_->Get(key);
    if (!got.ok()) return got.status();
    if (!got->has_value()) return std::optional<std::string>();
    return std::optional<std::string>(std::move((*got)->value));
  }

  absl::Status Put(const std::string& key, const std::string& value) override {
    absl::MutexLock lock(&mu_);
    for (int attempt = 0;; ++attempt) {
      if (lease_ == 0) {
        absl::StatusOr<int64_t> lease = etcd_->LeaseGrant(lease_ttl_);
        if (!lease.ok()) return lease.status();
        lease_ = *lease;
      }
      absl::StatusOr<int64_t> put = etcd_->Put(key, value, lease_);
      if (put.ok()) return absl::OkStatus();
      if (ErrorCodeOf(put.status()) != ErrorCode::LEASE_EXPIRED || attempt > 0) {
        return put.status();
      }
      lease_ = 0;  // expired while we were away: take a new one
    }
  }

  absl::Status Delete(const std::string& key) override {
    absl::StatusOr<bool> deleted = etcd_->Delete(key);
    return deleted.ok() ? absl::OkStatus() : deleted.status();
  }

  absl::Status KeepAlive() override {
    absl::MutexLock lock(&mu_);
    if (lease_ == 0) return absl::OkStatus();  // nothing put yet
    absl::StatusOr<absl::Duration> renewed = etcd_->LeaseKeepAlive(lease_);
    if (renewed.ok()) return absl::OkStatus();
    if (ErrorCodeOf(renewed.status()) != ErrorCode::LEASE_EXPIRED) return renewed.status();
    lease_ = 0;  // what it held is gone; the next put takes a new lease
    return absl::OkStatus();
  }

  std::string Describe() const override {
    return "etcd://" + absl::StrJoin(etcd_->endpoints(), ",");
  }

 private:
  const std::unique_ptr<http::EtcdClient> etcd_;
  const absl::Duration lease_ttl_;
  absl::Mutex mu_;  // one put or renewal at a time: all use lease_
  int64_t lease_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<MetadataClient>> MetadataClient::Create(std::string_view url,
                                                                       const AuthToken& auth,
                                                                       absl::Duration lease_ttl) {
  absl::string_view rest = AsAbsl(url);
  if (absl::ConsumePrefix(&rest, "etcd://")) {
    if (rest.find('/') != absl::string_view::npos) {
      return MakeError(ErrorCode::INVALID_PARAMS,
                       fmt::format("metadata_server '{}': etcd://host:port[,host:port...] takes "
                                   "no path",
                                   url));
    }
    absl::StatusOr<std::unique_ptr<http::EtcdClient>> etcd =
        http::EtcdClient::Create(std::string(rest));
    if (!etcd.ok()) {
      return MakeError(ErrorCode::INVALID_PARAMS,
                       fmt::format("metadata_server '{}': {}", url, etcd.status().message()));
    }
    return std::unique_ptr<MetadataClient>(new EtcdMetadataClient(*std::move(etcd), lease_ttl));
  }
  http::HttpClientOptions options;
  options.auth = auth;
  auto client = http::HttpClient::ForUrl(url, options);
  if (!client.ok()) {
    return MakeError(ErrorCode::INVALID_PARAMS,
                     fmt::format("metadata_server must be P2PHANDSHAKE, http://host:port/path or "
                                 "etcd://host:port[,host:port...]: {}",
                                 client.status().message()));
  }
  return std::unique_ptr<MetadataClient>(new HttpMetadataClient(
      std::move(client->first), client->second.empty() ? "/metadata" : client->second));
}

}  // namespace mooncake::engine
