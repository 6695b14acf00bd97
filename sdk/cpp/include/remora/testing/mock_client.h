#pragma once

// A gmock implementation of remora::Client for unit-testing functions without a sidecar or an
// embedded runtime. Write the function against `remora::Client&`, then:
//
//   remora::testing::MockClient client;
//   EXPECT_CALL(client, GetState(::testing::Field(&remora::GetStateRequest::key, "order-1")))
//       .WillOnce(::testing::Return(remora::State{.found = true, .value = R"({"qty":3})"}));
//   EXPECT_EQ(CountItems(client, "order-1"), 3);
//
// The shorthands (GetState(store, key), SaveState(store, key, value), SaveJson,
// PublishEvent(pubsub, topic, data), PublishJson, InvokeMethod(app, method), TryLock(...), ...) are
// not mocked: they build a request and call the mocked method, so expectations are always written
// against the request structs. A call without an expectation returns a default-constructed result
// (absl::Status: OK; absl::StatusOr: UNKNOWN); wrap the mock in
// ::testing::StrictMock to make such calls fail the test. Link GTest::gmock.

#include <string_view>
#include <vector>

#include "gmock/gmock.h"
#include "remora/client.h"

namespace remora::testing {

class MockClient : public Client {
 public:
  MOCK_METHOD(absl::StatusOr<State>, GetState, (const GetStateRequest& request), (override));
  MOCK_METHOD(absl::Status, SaveState, (const SaveStateRequest& request), (override));
  MOCK_METHOD(absl::Status, DeleteState, (const DeleteStateRequest& request), (override));
  MOCK_METHOD(absl::StatusOr<std::vector<BulkStateItem>>, GetBulkState,
              (const GetBulkStateRequest& request), (override));
  MOCK_METHOD(absl::Status, DeleteBulkState, (const DeleteBulkStateRequest& request), (override));
  MOCK_METHOD(absl::Status, ExecuteStateTransaction, (const TransactionRequest& request),
              (override));
  MOCK_METHOD(absl::Status, PublishEvent, (const PublishRequest& request), (override));
  MOCK_METHOD(absl::StatusOr<BulkPublishResult>, BulkPublishEvent,
              (const BulkPublishRequest& request), (override));
  MOCK_METHOD(absl::StatusOr<InvokeResponse>, InvokeMethod, (const InvokeRequest& request),
              (override));
  MOCK_METHOD(absl::StatusOr<Secret>, GetSecret, (const GetSecretRequest& request), (override));
  MOCK_METHOD(absl::StatusOr<BulkSecret>, GetBulkSecret, (const GetBulkSecretRequest& request),
              (override));
  MOCK_METHOD(absl::StatusOr<ConfigurationItems>, GetConfiguration,
              (const GetConfigurationRequest& request), (override));
  MOCK_METHOD(absl::StatusOr<std::string>, SubscribeConfiguration,
              (const SubscribeConfigurationRequest& request, ConfigurationHandler handler),
              (override));
  MOCK_METHOD(absl::Status, UnsubscribeConfiguration, (std::string_view store, std::string_view id),
              (override));
  MOCK_METHOD(absl::StatusOr<bool>, TryLock, (const TryLockRequest& request), (override));
  MOCK_METHOD(absl::StatusOr<UnlockStatus>, Unlock, (const UnlockRequest& request), (override));
  MOCK_METHOD(absl::StatusOr<SidecarMetadata>, GetMetadata, (), (override));
  MOCK_METHOD(absl::Status, SetMetadata, (std::string_view key, std::string_view value),
              (override));
  MOCK_METHOD(absl::Status, Shutdown, (), (override));

  // Keep the shorthands callable on a MockClient& too (the mocked overloads would hide them).
  using Client::DeleteState;
  using Client::GetBulkSecret;
  using Client::GetConfiguration;
  using Client::GetSecret;
  using Client::GetState;
  using Client::InvokeMethod;
  using Client::PublishEvent;
  using Client::SaveState;
  using Client::SubscribeConfiguration;
  using Client::TryLock;
  using Client::Unlock;
};

}  // namespace remora::testing
