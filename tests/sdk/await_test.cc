// The embedded transport's wait on a store's callback: an inline answer, an answer from another
// thread, and a store that never answers (the caller gets DEADLINE_EXCEEDED; a late answer is
// harmless).

#include "sdk/cpp/src/await.h"

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"

namespace remora::sdk_internal {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using Done = absl::AnyInvocable<void(absl::StatusOr<int>)>;

TEST(AwaitTest, InlineAnswer) {
  auto result = Await<absl::StatusOr<int>>([](Done done) { done(7); }, milliseconds(1000));
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(*result, 7);
}

TEST(AwaitTest, AnswerFromAnotherThread) {
  std::thread store;
  auto result = Await<absl::StatusOr<int>>(
      [&](Done done) {
        store = std::thread([done = std::move(done)]() mutable {
          std::this_thread::sleep_for(milliseconds(20));  // a slow backend
          done(42);
        });
      },
      milliseconds(5000));
  store.join();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, 42);
}

TEST(AwaitTest, NoAnswerIsDeadlineExceededAndALateAnswerIsHarmless) {
  Done kept;
  Clock::time_point start = Clock::now();
  auto result =
      Await<absl::StatusOr<int>>([&](Done done) { kept = std::move(done); }, milliseconds(100));
  EXPECT_GE(Clock::now() - start, milliseconds(100));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(result.status().message().find("100 ms"), absl::string_view::npos);
  kept(1);  // the store answers after the caller left: must not touch freed memory
}

}  // namespace
}  // namespace remora::sdk_internal
