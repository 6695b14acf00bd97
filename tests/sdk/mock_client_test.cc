// How a user unit-tests a function written against remora::Client: with the SDK's gmock
// MockClient, no sidecar and no runtime. The function below is the kind of code the mock exists
// for: optimistic concurrency with a retry on an etag conflict.

#include "remora/testing/mock_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace remora::sdk_test {
namespace {

using ::testing::_;
using ::testing::Field;
using ::testing::Return;
using ::testing::StrictMock;

// Appends `item` to the JSON array stored under `cart_id`, retrying when another writer got in
// between the read and the write.
absl::Status AddToCart(Client& client, const std::string& cart_id, const std::string& item) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto state = client.GetState("statestore", cart_id);
    if (!state.ok()) return state.status();
    nlohmann::json cart = nlohmann::json::array();
    if (state->found) {
      auto parsed = state->Json();
      if (!parsed.ok()) return parsed.status();
      cart = *std::move(parsed);
    }
    cart.push_back(item);
    StateItem write = StateItem::FromJson(cart_id, cart);
    if (state->found) write.etag = state->etag;
    absl::Status saved = client.SaveState("statestore", std::move(write));
    if (saved.code() != absl::StatusCode::kAborted) return saved;
  }
  return absl::AbortedError("cart is too busy");
}

State Found(const std::string& value, const std::string& etag) {
  State state;
  state.found = true;
  state.value = value;
  state.etag = etag;
  return state;
}

MATCHER_P2(SavesOne, value, etag, "") {
  return arg.items.size() == 1 && arg.items[0].value == value && arg.items[0].etag == etag;
}

TEST(MockClientTest, RetriesOnEtagConflictWithTheFreshEtag) {
  StrictMock<testing::MockClient> client;
  EXPECT_CALL(client, GetState(Field(&GetStateRequest::key, "cart-1")))
      .WillOnce(Return(Found(R"(["tea"])", "e1")))
      .WillOnce(Return(Found(R"(["tea","cake"])", "e2")));
  EXPECT_CALL(client, SaveState(SavesOne(R"(["tea","jam"])", "e1")))
      .WillOnce(Return(absl::AbortedError("possible etag mismatch")));
  EXPECT_CALL(client, SaveState(SavesOne(R"(["tea","cake","jam"])", "e2")))
      .WillOnce(Return(absl::OkStatus()));

  EXPECT_TRUE(AddToCart(client, "cart-1", "jam").ok());
}

TEST(MockClientTest, NewCartIsCreatedWithoutEtag) {
  StrictMock<testing::MockClient> client;
  EXPECT_CALL(client, GetState(_)).WillOnce(Return(State{}));
  EXPECT_CALL(client, SaveState(SavesOne(R"(["jam"])", std::nullopt)))
      .WillOnce(Return(absl::OkStatus()));
  EXPECT_TRUE(AddToCart(client, "cart-2", "jam").ok());
}

TEST(MockClientTest, SidecarErrorIsReturnedAndNothingIsWritten) {
  StrictMock<testing::MockClient> client;
  EXPECT_CALL(client, GetState(_)).WillOnce(Return(absl::UnavailableError("no sidecar")));
  EXPECT_EQ(AddToCart(client, "cart-3", "jam").code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace remora::sdk_test
