#include "support/etcd.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "http/client.h"

namespace mooncake::test {

int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

EtcdCluster::EtcdCluster(int members) {
  std::string templ = ::testing::TempDir() + "/etcd-XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) return;
  root_ = templ;
  std::vector<std::string> peers;
  for (int i = 0; i < members; ++i) {
    Member m;
    m.name = absl::StrCat("m", i);
    m.client_port = FreeLoopbackPort();
    m.peer_port = FreeLoopbackPort();
    m.data_dir = absl::StrCat(root_, "/", m.name);
    peers.push_back(absl::StrCat(m.name, "=http://127.0.0.1:", m.peer_port));
    members_.push_back(std::move(m));
  }
  initial_cluster_ = absl::StrJoin(peers, ",");
  for (Member& m : members_) {
    if (!StartMember(m, /*existing=*/false)) return;
  }
  for (int i = 0; i < members; ++i) {
    if (!WaitReady(i)) return;
  }
  ok_ = true;
}

EtcdCluster::~EtcdCluster() {
  for (Member& m : members_) {
    if (m.process) {
      m.process->Signal(SIGCONT);
      m.process->Signal(SIGKILL);
      m.process->Wait(absl::Seconds(10));
    }
  }
  if (!root_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }
}

std::string EtcdCluster::endpoints() const {
  std::vector<std::string> out;
  for (size_t i = 0; i < members_.size(); ++i) out.push_back(endpoint(static_cast<int>(i)));
  return absl::StrJoin(out, ",");
}

std::string EtcdCluster::endpoint(int member) const {
  return absl::StrCat("127.0.0.1:", members_[member].client_port);
}

std::unique_ptr<http::EtcdClient> EtcdCluster::NewClient() const {
  absl::StatusOr<std::unique_ptr<http::EtcdClient>> client = http::EtcdClient::Create(endpoints());
  if (!client.ok()) {
    ADD_FAILURE() << client.status();
    return nullptr;
  }
  return *std::move(client);
}

bool EtcdCluster::StartMember(Member& m, bool existing) {
  const std::string client = absl::StrCat("http://127.0.0.1:", m.client_port);
  const std::string peer = absl::StrCat("http://127.0.0.1:", m.peer_port);
  m.process = std::make_unique<Subprocess>(std::vector<std::string>{
      "/usr/bin/etcd", "--name", m.name, "--data-dir", m.data_dir, "--listen-client-urls", client,
      "--advertise-client-urls", client, "--listen-peer-urls", peer,
      "--initial-advertise-peer-urls", peer, "--initial-cluster", initial_cluster_,
      "--initial-cluster-state", existing ? "existing" : "new", "--logger", "zap", "--log-level",
      "error",
      // Short election timings so that a lost member is noticed quickly in tests.
      "--heartbeat-interval", "50", "--election-timeout", "500"});
  return m.process->pid() > 0;
}

bool EtcdCluster::WaitReady(int member) {
  http::HttpClientOptions options;
  options.max_attempts = 1;
  options.connect_timeout = absl::Milliseconds(200);
  options.timeout = absl::Seconds(1);
  http::HttpClient client("127.0.0.1", members_[member].client_port, options);
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    absl::StatusOr<http::HttpResult> health = client.Get("/health");
    if (health.ok() && health->status == 200 &&
        health->body.find("\"true\"") != std::string::npos) {
      return true;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  return false;
}

void EtcdCluster::Kill(int member) {
  Member& m = members_[member];
  if (!m.process) return;
  m.process->Signal(SIGKILL);
  m.process->Wait(absl::Seconds(10));
  m.process.reset();
}

void EtcdCluster::Stop(int member) {
  if (members_[member].process) members_[member].process->Signal(SIGSTOP);
}

void EtcdCluster::Continue(int member) {
  if (members_[member].process) members_[member].process->Signal(SIGCONT);
}

bool EtcdCluster::Restart(int member) {
  Kill(member);
  return StartMember(members_[member], /*existing=*/true) && WaitReady(member);
}

}  // namespace mooncake::test
