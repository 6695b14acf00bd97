// remora::App called the way a sidecar calls it: Dapr's generated AppCallback stubs over a real
// gRPC connection. Covers the subscriptions the app declares, event routing and verdicts (bulk
// too), invocation handlers and their errors, the app API token, health, and the server's
// lifecycle (free port, $APP_PORT, Stop and SIGTERM ending Run); and end to end through remorad
// with --app-protocol grpc.

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

#include <gtest/gtest.h>

#include "dapr/proto/runtime/v1/appcallback.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "remora/app.h"
#include "remora/client.h"
#include "remora/components/common/strings.h"
#include "tests/tools/test_env.h"

namespace remora::sdk_test {
namespace {

namespace pb = dapr::proto::runtime::v1;
namespace common = dapr::proto::common::v1;
using std::chrono::milliseconds;

std::unique_ptr<pb::AppCallback::Stub> CallbackStub(int port) {
  return pb::AppCallback::NewStub(
      grpc::CreateChannel(StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
}

void Deadline(grpc::ClientContext& ctx) {
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
}

AppOptions FreePortOptions() {
  AppOptions options;
  options.port = 0;
  options.api_token = "";  // independent of the environment
  return options;
}

TopicHandler Returning(TopicResult result, std::vector<TopicEvent>* seen = nullptr,
                       std::mutex* mu = nullptr) {
  return [=](const TopicEvent& event) {
    if (seen != nullptr) {
      std::lock_guard lock(*mu);
      seen->push_back(event);
    }
    return result;
  };
}

TEST(AppTest, ListsOneSubscriptionPerTopicWithRulesDefaultRouteAndDeadLetter) {
  App app(FreePortOptions());
  app.Subscribe({.pubsub = "pubsub",
                 .topic = "orders",
                 .dead_letter_topic = "orders-dlq",
                 .metadata = {{"rawPayload", "true"}}},
                Returning(TopicResult::kSuccess));
  app.Subscribe(
      {.pubsub = "pubsub", .topic = "orders", .route = "/big", .match = "event.data.qty > 10"},
      Returning(TopicResult::kSuccess));
  app.Subscribe({.pubsub = "pubsub", .topic = "orders", .match = "event.type == \"x\""},
                Returning(TopicResult::kSuccess));
  app.Subscribe(
      {.pubsub = "other", .topic = "audit", .bulk = {.enabled = true, .max_messages_count = 5}},
      Returning(TopicResult::kSuccess));
  ASSERT_TRUE(app.Start().ok());
  ASSERT_GT(app.port(), 0);

  pb::ListTopicSubscriptionsResponse resp;
  grpc::ClientContext ctx;
  Deadline(ctx);
  ASSERT_TRUE(CallbackStub(app.port())
                  ->ListTopicSubscriptions(&ctx, google::protobuf::Empty(), &resp)
                  .ok());
  ASSERT_EQ(resp.subscriptions_size(), 2);
  const pb::TopicSubscription& orders = resp.subscriptions(0);
  EXPECT_EQ(orders.pubsub_name(), "pubsub");
  EXPECT_EQ(orders.topic(), "orders");
  EXPECT_EQ(orders.dead_letter_topic(), "orders-dlq");
  EXPECT_EQ(orders.metadata().at("rawPayload"), "true");
  EXPECT_EQ(orders.routes().default_(), "/pubsub/orders");
  ASSERT_EQ(orders.routes().rules_size(), 2);
  EXPECT_EQ(orders.routes().rules(0).match(), "event.data.qty > 10");
  EXPECT_EQ(orders.routes().rules(0).path(), "/big");
  EXPECT_EQ(orders.routes().rules(1).match(), "event.type == \"x\"");
  EXPECT_EQ(orders.routes().rules(1).path(), "/pubsub/orders/1");
  const pb::TopicSubscription& audit = resp.subscriptions(1);
  EXPECT_EQ(audit.pubsub_name(), "other");
  EXPECT_TRUE(audit.bulk_subscribe().enabled());
  EXPECT_EQ(audit.bulk_subscribe().max_messages_count(), 5);
}

TEST(AppTest, EventGoesToTheMatchedRouteAndItsVerdictGoesBack) {
  std::mutex mu;
  std::vector<TopicEvent> by_default, by_rule;
  App app(FreePortOptions());
  app.Subscribe({.pubsub = "pubsub", .topic = "orders"},
                Returning(TopicResult::kRetry, &by_default, &mu));
  app.Subscribe({.pubsub = "pubsub", .topic = "orders", .route = "/big", .match = "true"},
                Returning(TopicResult::kDrop, &by_rule, &mu));
  ASSERT_TRUE(app.Start().ok());
  auto stub = CallbackStub(app.port());

  pb::TopicEventRequest req;
  req.set_id("ev-1");
  req.set_source("checkout");
  req.set_type("com.dapr.event.sent");
  req.set_spec_version("1.0");
  req.set_data_content_type("application/json");
  req.set_data(R"({"qty":3})");
  req.set_topic("orders");
  req.set_pubsub_name("pubsub");
  req.set_path("/pubsub/orders");
  (*req.mutable_extensions()->mutable_fields())["traceid"].set_string_value("00-abc");
  {
    pb::TopicEventResponse resp;
    grpc::ClientContext ctx;
    Deadline(ctx);
    ctx.AddMetadata("partitionkey", "p1");
    ASSERT_TRUE(stub->OnTopicEvent(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.status(), pb::TopicEventResponse::RETRY);
  }
  req.set_path("/big");
  {
    pb::TopicEventResponse resp;
    grpc::ClientContext ctx;
    Deadline(ctx);
    ASSERT_TRUE(stub->OnTopicEvent(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.status(), pb::TopicEventResponse::DROP);
  }
  std::lock_guard lock(mu);
  ASSERT_EQ(by_default.size(), 1u);
  ASSERT_EQ(by_rule.size(), 1u);
  const TopicEvent& event = by_default[0];
  EXPECT_EQ(event.id, "ev-1");
  EXPECT_EQ(event.source, "checkout");
  EXPECT_EQ(event.type, "com.dapr.event.sent");
  EXPECT_EQ(event.data_content_type, "application/json");
  EXPECT_EQ(event.topic, "orders");
  EXPECT_EQ(event.pubsub, "pubsub");
  EXPECT_EQ(event.path, "/pubsub/orders");
  EXPECT_EQ(event.extensions["traceid"], "00-abc");
  EXPECT_EQ(event.metadata.at("partitionkey"), "p1");
  EXPECT_EQ(event.metadata.count("user-agent"), 0u);
  auto json = event.Json();
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ((*json)["qty"], 3);
  EXPECT_EQ(by_rule[0].path, "/big");
}

TEST(AppTest, EventWithoutPathUsesTheDefaultRouteAndUnknownRoutesAreUnimplemented) {
  std::mutex mu;
  std::vector<TopicEvent> seen;
  App app(FreePortOptions());
  app.Subscribe({.pubsub = "pubsub", .topic = "orders"},
                Returning(TopicResult::kSuccess, &seen, &mu));
  ASSERT_TRUE(app.Start().ok());
  auto stub = CallbackStub(app.port());

  pb::TopicEventRequest req;
  req.set_id("1");
  req.set_topic("orders");
  req.set_pubsub_name("pubsub");
  {
    pb::TopicEventResponse resp;
    grpc::ClientContext ctx;
    Deadline(ctx);
    ASSERT_TRUE(stub->OnTopicEvent(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.status(), pb::TopicEventResponse::SUCCESS);
  }
  // UNIMPLEMENTED is what makes Dapr drop an event nobody handles instead of retrying it.
  req.set_topic("unknown");
  {
    pb::TopicEventResponse resp;
    grpc::ClientContext ctx;
    Deadline(ctx);
    grpc::Status status = stub->OnTopicEvent(&ctx, req, &resp);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
    EXPECT_NE(status.error_message().find("unknown"), std::string::npos);
  }
  std::lock_guard lock(mu);
  EXPECT_EQ(seen.size(), 1u);
}

TEST(AppTest, BulkEventsGetOneVerdictPerEntryOnBothServices) {
  App app(FreePortOptions());
  app.Subscribe({.pubsub = "pubsub", .topic = "orders"}, [](const TopicEvent& event) {
    if (event.data == "bad") return TopicResult::kDrop;
    return event.id == "ce-1" && event.type == "t" ? TopicResult::kSuccess : TopicResult::kRetry;
  });
  ASSERT_TRUE(app.Start().ok());

  pb::TopicEventBulkRequest req;
  req.set_id("batch");
  req.set_topic("orders");
  req.set_pubsub_name("pubsub");
  req.set_path("/pubsub/orders");
  pb::TopicEventBulkRequestEntry* e1 = req.add_entries();
  e1->set_entry_id("a");
  e1->mutable_cloud_event()->set_id("ce-1");
  e1->mutable_cloud_event()->set_type("t");
  e1->mutable_cloud_event()->set_data("ok");
  pb::TopicEventBulkRequestEntry* e2 = req.add_entries();
  e2->set_entry_id("b");
  e2->set_bytes("bad");
  pb::TopicEventBulkRequestEntry* e3 = req.add_entries();
  e3->set_entry_id("c");
  e3->set_bytes("other");

  auto check = [](const pb::TopicEventBulkResponse& resp) {
    ASSERT_EQ(resp.statuses_size(), 3);
    EXPECT_EQ(resp.statuses(0).entry_id(), "a");
    EXPECT_EQ(resp.statuses(0).status(), pb::TopicEventResponse::SUCCESS);
    EXPECT_EQ(resp.statuses(1).entry_id(), "b");
    EXPECT_EQ(resp.statuses(1).status(), pb::TopicEventResponse::DROP);
    EXPECT_EQ(resp.statuses(2).status(), pb::TopicEventResponse::RETRY);
  };
  {
    pb::TopicEventBulkResponse resp;
    grpc::ClientContext ctx;
    Deadline(ctx);
    ASSERT_TRUE(CallbackStub(app.port())->OnBulkTopicEvent(&ctx, req, &resp).ok());
    check(resp);
  }
  {
    auto alpha = pb::AppCallbackAlpha::NewStub(
        grpc::CreateChannel(StrCat("127.0.0.1:", app.port()), grpc::InsecureChannelCredentials()));
    pb::TopicEventBulkResponse resp;
    grpc::ClientContext ctx;
    Deadline(ctx);
    ASSERT_TRUE(alpha->OnBulkTopicEventAlpha1(&ctx, req, &resp).ok());
    check(resp);
  }
}

TEST(AppTest, InvocationHandlerGetsTheRequestAndItsAnswerOrErrorGoesBack) {
  App app(FreePortOptions());
  std::mutex mu;
  std::optional<InvocationRequest> seen;
  app.OnInvoke("echo", [&](const InvocationRequest& in) -> absl::StatusOr<InvocationResponse> {
    {
      std::lock_guard lock(mu);
      seen = in;
    }
    return InvocationResponse{.data = StrCat("echo:", in.data), .content_type = "text/plain"};
  });
  app.OnInvoke("fail", [](const InvocationRequest&) -> absl::StatusOr<InvocationResponse> {
    return absl::NotFoundError("no such order");
  });
  ASSERT_TRUE(app.Start().ok());
  auto stub = CallbackStub(app.port());

  common::InvokeRequest req;
  req.set_method("echo");
  req.mutable_data()->set_value("hi");
  req.set_content_type("text/plain");
  req.mutable_http_extension()->set_verb(common::HTTPExtension::PUT);
  req.mutable_http_extension()->set_querystring("a=1&b=2");
  {
    common::InvokeResponse resp;
    grpc::ClientContext ctx;
    Deadline(ctx);
    ctx.AddMetadata("x-order", "42");
    ASSERT_TRUE(stub->OnInvoke(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.data().value(), "echo:hi");
    EXPECT_EQ(resp.content_type(), "text/plain");
  }
  {
    std::lock_guard lock(mu);
    ASSERT_TRUE(seen.has_value());
    EXPECT_EQ(seen->method, "echo");
    EXPECT_EQ(seen->verb, "PUT");
    EXPECT_EQ(seen->data, "hi");
    EXPECT_EQ(seen->content_type, "text/plain");
    EXPECT_EQ(seen->query, "a=1&b=2");
    EXPECT_EQ(seen->metadata.at("x-order"), "42");
  }
  req.set_method("fail");
  {
    common::InvokeResponse resp;
    grpc::ClientContext ctx;
    Deadline(ctx);
    grpc::Status status = stub->OnInvoke(&ctx, req, &resp);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(status.error_message(), "no such order");
  }
  req.set_method("missing");
  {
    common::InvokeResponse resp;
    grpc::ClientContext ctx;
    Deadline(ctx);
    grpc::Status status = stub->OnInvoke(&ctx, req, &resp);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
    EXPECT_NE(status.error_message().find("missing"), std::string::npos);
  }
}

TEST(AppTest, ApiTokenIsRequiredWhenSet) {
  AppOptions options = FreePortOptions();
  options.api_token = "s3cret";
  App app(options);
  app.OnInvoke("m", [](const InvocationRequest&) -> absl::StatusOr<InvocationResponse> {
    return InvocationResponse{.data = "ok"};
  });
  ASSERT_TRUE(app.Start().ok());
  auto stub = CallbackStub(app.port());
  common::InvokeRequest req;
  req.set_method("m");
  for (const char* token : {"", "wrong", "s3cret"}) {
    common::InvokeResponse resp;
    grpc::ClientContext ctx;
    Deadline(ctx);
    if (*token != '\0') ctx.AddMetadata("dapr-api-token", token);
    grpc::Status status = stub->OnInvoke(&ctx, req, &resp);
    if (std::string_view(token) == "s3cret") {
      EXPECT_TRUE(status.ok()) << status.error_message();
      EXPECT_EQ(resp.data().value(), "ok");
    } else {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << token;
    }
  }
}

TEST(AppTest, HealthCheckAnswersTheHealthHandler) {
  App app(FreePortOptions());
  std::atomic<bool> healthy{true};
  app.OnHealthCheck([&]() -> absl::Status {
    return healthy.load() ? absl::OkStatus() : absl::UnavailableError("db down");
  });
  ASSERT_TRUE(app.Start().ok());
  auto stub = pb::AppCallbackHealthCheck::NewStub(
      grpc::CreateChannel(StrCat("127.0.0.1:", app.port()), grpc::InsecureChannelCredentials()));
  {
    pb::HealthCheckResponse resp;
    grpc::ClientContext ctx;
    Deadline(ctx);
    EXPECT_TRUE(stub->HealthCheck(&ctx, google::protobuf::Empty(), &resp).ok());
  }
  healthy = false;
  {
    pb::HealthCheckResponse resp;
    grpc::ClientContext ctx;
    Deadline(ctx);
    grpc::Status status = stub->HealthCheck(&ctx, google::protobuf::Empty(), &resp);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_EQ(status.error_message(), "db down");
  }
}

TEST(AppTest, BadRegistrationsMakeStartFailNamingThem) {
  App app(FreePortOptions());
  app.Subscribe({.pubsub = "pubsub", .topic = "t"}, Returning(TopicResult::kSuccess));
  app.Subscribe({.pubsub = "pubsub", .topic = "t"}, Returning(TopicResult::kSuccess));
  app.Subscribe({.pubsub = "", .topic = "t"}, Returning(TopicResult::kSuccess));
  auto handler = [](const InvocationRequest&) -> absl::StatusOr<InvocationResponse> {
    return InvocationResponse{};
  };
  app.OnInvoke("m", handler);
  app.OnInvoke("m", handler);
  absl::Status status = app.Start();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("second default route"), absl::string_view::npos) << status;
  EXPECT_NE(status.message().find("pubsub and topic must be set"), absl::string_view::npos);
  EXPECT_NE(status.message().find("'m'"), absl::string_view::npos);
  EXPECT_EQ(app.port(), 0);
}

TEST(AppTest, PortFromAppPortAndAPortInUseIsUnavailable) {
  const int port = testing::FreePort();
  ::setenv("APP_PORT", std::to_string(port).c_str(), 1);
  AppOptions options;
  options.api_token = "";
  App app(options);
  absl::Status started = app.Start();
  ::unsetenv("APP_PORT");
  ASSERT_TRUE(started.ok()) << started;
  EXPECT_EQ(app.port(), port);
  EXPECT_EQ(app.Start().code(), absl::StatusCode::kFailedPrecondition);

  AppOptions same = FreePortOptions();
  same.port = port;
  App second(same);
  EXPECT_EQ(second.Start().code(), absl::StatusCode::kUnavailable);
}

TEST(AppTest, RunServesUntilStopOrSigterm) {
  for (bool by_signal : {false, true}) {
    App app(FreePortOptions());
    app.OnInvoke("m", [](const InvocationRequest&) -> absl::StatusOr<InvocationResponse> {
      return InvocationResponse{.data = "up"};
    });
    std::promise<absl::Status> ran;
    std::future<absl::Status> result = ran.get_future();
    std::thread runner([&] { ran.set_value(app.Run()); });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (app.port() == 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(5));
    }
    ASSERT_GT(app.port(), 0);
    common::InvokeRequest req;
    req.set_method("m");
    common::InvokeResponse resp;
    grpc::ClientContext ctx;
    Deadline(ctx);
    EXPECT_TRUE(CallbackStub(app.port())->OnInvoke(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.data().value(), "up");
    EXPECT_EQ(result.wait_for(milliseconds(0)), std::future_status::timeout);  // still serving
    if (by_signal) {
      // Directed at Run's thread: the process-wide SIGTERM would hit the test's other threads.
      pthread_kill(runner.native_handle(), SIGTERM);
    } else {
      app.Stop();
    }
    ASSERT_EQ(result.wait_for(std::chrono::seconds(5)), std::future_status::ready) << by_signal;
    EXPECT_TRUE(result.get().ok());
    runner.join();
    EXPECT_EQ(app.Start().code(), absl::StatusCode::kFailedPrecondition);
  }
}

// The whole path: remorad with --app-protocol grpc asks the App for its subscriptions, delivers a
// published event to the handler, and routes InvokeMethod of its own app id to OnInvoke.
TEST(AppE2ETest, EventsAndInvocationsReachTheAppThroughRemorad) {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<TopicEvent> events;
  App app(FreePortOptions());
  app.Subscribe({.pubsub = "pubsub", .topic = "orders"}, [&](const TopicEvent& event) {
    std::lock_guard lock(mu);
    events.push_back(event);
    cv.notify_all();
    return TopicResult::kSuccess;
  });
  app.OnInvoke("hello", [](const InvocationRequest& in) -> absl::StatusOr<InvocationResponse> {
    return InvocationResponse{.data = StrCat("hi ", in.data), .content_type = "text/plain"};
  });
  ASSERT_TRUE(app.Start().ok());
  const std::string dir = testing::WriteTempFile("pubsub.yaml", R"(apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: pubsub }
spec: { type: pubsub.in-memory, version: v1 }
)");
  auto sidecar =
      testing::StartRemorad({"--app-id", "sdk-grpc-app", "--resources-path", dir, "--app-port",
                             std::to_string(app.port()), "--app-protocol", "grpc"});
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  RemoteOptions options;
  options.address = StrCat("127.0.0.1:", sidecar->grpc_port);
  options.api_token = "";
  std::unique_ptr<Client> client = Client::Remote(options);

  ASSERT_TRUE(client->PublishJson("pubsub", "orders", {{"n", 1}}).ok());
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return !events.empty(); }));
    EXPECT_EQ(events[0].topic, "orders");
    EXPECT_EQ(events[0].pubsub, "pubsub");
    auto json = events[0].Json();
    ASSERT_TRUE(json.ok()) << json.status() << " " << events[0].data;
    EXPECT_EQ((*json)["n"], 1);
  }
  auto answer = client->InvokeMethod("sdk-grpc-app", "hello", "POST", "bob", "text/plain");
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->data, "hi bob");
}

}  // namespace
}  // namespace remora::sdk_test
