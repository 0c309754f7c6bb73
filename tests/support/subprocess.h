// Starts a real process for integration tests, reads its stdout line by line, stops it.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace mooncake::test {

class Subprocess {
 public:
  // Starts argv[0] (a path) with the given arguments. stdout is captured; stderr is inherited so it
  // shows in the test log. The child is killed if the test process dies.
  explicit Subprocess(std::vector<std::string> argv);
  ~Subprocess();  // SIGKILL and reap if still running

  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  // Reads stdout until a line containing `needle` arrives (returned), EOF or `timeout` (nullopt).
  std::optional<std::string> WaitForLine(std::string_view needle, absl::Duration timeout);

  // Everything read from stdout so far.
  const std::string& output() const { return output_; }

  void Signal(int signal);

  // The exit status as a shell reports it (code, or 128+signal), or nullopt on timeout.
  std::optional<int> Wait(absl::Duration timeout);

  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string output_;
  size_t consumed_ = 0;  // bytes of output_ already returned as lines
  std::optional<int> status_;
};

// Runs a command to completion and returns its exit status and stdout (stderr is inherited).
struct RunResult {
  int status;
  std::string output;
};
RunResult RunCommand(std::vector<std::string> argv, absl::Duration timeout = absl::Seconds(30));

}  // namespace mooncake::test
