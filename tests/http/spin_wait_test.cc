// SpinUntilReadable and SpinUntil: answer at once when bytes wait (the condition holds), give up
// after their budget, and never let more threads of one role spin than its slots.
#include "http/spin_wait.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "support/raw_socket.h"

namespace mooncake::http {
namespace {

class SocketPair : public test::SocketPair {
 public:
  SocketPair() { EXPECT_GE(first(), 0); }
};

// Makes the pair's first socket readable.
void Send(SocketPair& pair) { ASSERT_EQ(write(pair.second(), "x", 1), 1); }

TEST(SpinWaitTest, ReturnsOnceBytesAreWaiting) {
  if (SpinSlots() == 0) GTEST_SKIP() << "one CPU: nothing ever spins";
  SocketPair pair;
  Send(pair);
  EXPECT_TRUE(SpinUntilReadable(pair.first(), absl::Seconds(60), SpinRole::kClient));
  EXPECT_EQ(SpinningNow(SpinRole::kClient), 0);
}

TEST(SpinWaitTest, GivesUpAfterItsBudget) {
  SocketPair pair;
  const absl::Time start = absl::Now();
  EXPECT_FALSE(SpinUntilReadable(pair.first(), absl::Milliseconds(5), SpinRole::kServer));
  if (SpinSlots() > 0) {
    EXPECT_GE(absl::Now() - start, absl::Milliseconds(5));
  }
  EXPECT_FALSE(SpinUntilReadable(pair.first(), absl::ZeroDuration(), SpinRole::kServer));
  EXPECT_EQ(SpinningNow(SpinRole::kServer), 0);
}

TEST(SpinWaitTest, SeesAConditionAnotherThreadMakesTrue) {
  if (SpinSlots() == 0) GTEST_SKIP() << "one CPU: nothing ever spins";
  std::atomic<bool> done{false};
  std::atomic<int> polls{0};
  std::thread setter([&] {
    while (polls.load() < 3) std::this_thread::yield();  // the spinner is polling
    done = true;
  });
  EXPECT_TRUE(SpinUntil(
      [&] {
        ++polls;
        return done.load();
      },
      absl::Seconds(60), SpinRole::kWaiter));
  setter.join();
  EXPECT_EQ(SpinningNow(SpinRole::kWaiter), 0);

  const absl::Time start = absl::Now();
  EXPECT_FALSE(SpinUntil([] { return false; }, absl::Milliseconds(5), SpinRole::kWaiter));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(5));
  EXPECT_FALSE(SpinUntil([] { return true; }, absl::ZeroDuration(), SpinRole::kWaiter));
  EXPECT_EQ(SpinningNow(SpinRole::kWaiter), 0);
}

TEST(SpinWaitTest, AtMostSpinSlotsThreadsOfARoleSpinAtOnce) {
  const int slots = SpinSlots();
  if (slots == 0) GTEST_SKIP() << "one CPU: nothing ever spins";
  // Every slot of the client role taken by a thread spinning on a socket with nothing to read.
  std::vector<std::unique_ptr<SocketPair>> pairs;
  std::vector<std::thread> spinners;
  for (int i = 0; i < slots; ++i) {
    pairs.push_back(std::make_unique<SocketPair>());
    spinners.emplace_back([fd = pairs.back()->first()] {
      EXPECT_TRUE(SpinUntilReadable(fd, absl::Seconds(60), SpinRole::kClient));
    });
  }
  while (SpinningNow(SpinRole::kClient) < slots) std::this_thread::yield();

  // One more client would spin for a minute; it gets no slot and returns at once.
  SocketPair extra;
  const absl::Time start = absl::Now();
  EXPECT_FALSE(SpinUntilReadable(extra.first(), absl::Seconds(60), SpinRole::kClient));
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  // The server role has slots of its own.
  Send(extra);
  EXPECT_TRUE(SpinUntilReadable(extra.first(), absl::Seconds(60), SpinRole::kServer));

  for (auto& pair : pairs) Send(*pair);
  for (std::thread& spinner : spinners) spinner.join();
  EXPECT_EQ(SpinningNow(SpinRole::kClient), 0);
}

}  // namespace
}  // namespace mooncake::http
