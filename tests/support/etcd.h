// A real etcd (Debian's etcd-server) for tests: a member or a cluster of members on 127.0.0.1
// ports picked free, each with its own data directory, stopped and removed with the object.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "http/etcd_client.h"
#include "support/subprocess.h"

namespace mooncake::test {

// A TCP port on 127.0.0.1 that nothing listens on at the time of the call.
int FreeLoopbackPort();

class EtcdCluster {
 public:
  // Starts `members` members that form one cluster and waits until it answers.
  explicit EtcdCluster(int members = 1);
  ~EtcdCluster();

  bool ok() const { return ok_; }
  // "127.0.0.1:p1,127.0.0.1:p2,..." (the client ports).
  std::string endpoints() const;
  std::string endpoint(int member) const;
  // A client of all members (a test failure and nullptr if it cannot be made).
  std::unique_ptr<http::EtcdClient> NewClient() const;

  void Kill(int member);  // SIGKILL
  void Stop(int member);  // SIGSTOP
  void Continue(int member);
  // Starts a killed member again with its data.
  bool Restart(int member);

 private:
  struct Member {
    std::string name;
    int client_port = 0;
    int peer_port = 0;
    std::string data_dir;
    std::unique_ptr<Subprocess> process;
  };
  bool StartMember(Member& member, bool existing);
  bool WaitReady(int member);

  std::vector<Member> members_;
  std::string initial_cluster_;
  std::string root_;
  bool ok_ = false;
};

}  // namespace mooncake::test
