// Subscription (v2alpha1, v1alpha1) and Resiliency resources as the resource loader reads them.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "remora/components/common/strings.h"
#include "remora/runtime/resiliency.h"
#include "remora/runtime/resources.h"

namespace remora::runtime {
namespace {

using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

absl::StatusOr<Resources> Parse(const std::string& yaml, const std::string& app_id = "checkout") {
  Resources r;
  absl::Status status = ParseResourceDocuments(yaml, "res/subs.yaml", app_id, "", &r);
  if (!status.ok()) return status;
  return r;
}

std::string ErrorOf(const std::string& yaml) {
  auto r = Parse(yaml);
  EXPECT_FALSE(r.ok()) << yaml;
  return r.ok() ? "" : std::string(MessageOf(r.status()));
}

std::vector<std::string> Rules(const SubscriptionResource& s) {
  std::vector<std::string> out;
  for (const auto& r : s.rules) out.push_back(r.match + " -> " + r.path);
  return out;
}

TEST(SubscriptionResourceTest, V2AlphaWithRulesDefaultAndEverything) {
  auto r = Parse(R"(apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: { name: order-sub }
spec:
  pubsubname: pubsub
  topic: orders
  routes:
    rules:
    - { match: 'event.type == "order.created"', path: /orders/created }
    - { match: 'event.data.total > 100', path: /orders/big }
    default: /orders
  deadLetterTopic: orders-dlq
  metadata: { rawPayload: "true", maxCount: 5 }
  bulkSubscribe: { enabled: true, maxMessagesCount: 50, maxAwaitDurationMs: 200 }
scopes: [checkout]
)");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->subscriptions.size(), 1u);
  const SubscriptionResource& s = r->subscriptions[0];
  EXPECT_EQ(s.name, "order-sub");
  EXPECT_EQ(s.pubsub_name, "pubsub");
  EXPECT_EQ(s.topic, "orders");
  EXPECT_THAT(Rules(s), ElementsAre("event.type == \"order.created\" -> /orders/created",
                                    "event.data.total > 100 -> /orders/big", " -> /orders"));
  EXPECT_EQ(s.dead_letter_topic, "orders-dlq");
  EXPECT_EQ(s.metadata.at("rawPayload"), "true");
  EXPECT_EQ(s.metadata.at("maxCount"), "5");
  EXPECT_TRUE(s.bulk_enabled);
  EXPECT_EQ(s.bulk_max_messages_count, 50);
  EXPECT_EQ(s.bulk_max_await_duration_ms, 200);
  EXPECT_EQ(s.source.Describe(), "res/subs.yaml (document 1)");
}

TEST(SubscriptionResourceTest, V1AlphaRouteBecomesTheDefaultRule) {
  auto r = Parse(R"(apiVersion: dapr.io/v1alpha1
kind: Subscription
metadata: { name: old }
spec: { pubsubname: pubsub, topic: orders, route: /orders }
)");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->subscriptions.size(), 1u);
  EXPECT_THAT(Rules(r->subscriptions[0]), ElementsAre(" -> /orders"));
}

TEST(SubscriptionResourceTest, ScopesLimitWhichAppsSeeASubscription) {
  std::string yaml = R"(apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: { name: s }
spec: { pubsubname: pubsub, topic: t, routes: { default: /t } }
scopes: [billing]
)";
  auto mine = Parse(yaml, "billing");
  ASSERT_TRUE(mine.ok()) << mine.status();
  EXPECT_EQ(mine->subscriptions.size(), 1u);
  auto theirs = Parse(yaml, "checkout");
  ASSERT_TRUE(theirs.ok()) << theirs.status();
  EXPECT_TRUE(theirs->subscriptions.empty());
}

TEST(SubscriptionResourceTest, MalformedSubscriptionsNameFileDocumentAndField) {
  const std::string head =
      "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata: {name: s}\n";
  EXPECT_THAT(ErrorOf(head + "spec: { topic: t, routes: { default: /t } }\n"),
              HasSubstr("res/subs.yaml (document 1): spec.pubsubname is required"));
  EXPECT_THAT(ErrorOf(head + "spec: { pubsubname: p, routes: { default: /t } }\n"),
              HasSubstr("spec.topic is required"));
  EXPECT_THAT(ErrorOf(head + "spec: { pubsubname: p, topic: t }\n"),
              HasSubstr("spec.routes is required"));
  EXPECT_THAT(ErrorOf(head + "spec: { pubsubname: p, topic: t, routes: {} }\n"),
              HasSubstr("spec.routes needs at least one rule or a default path"));
  EXPECT_THAT(
      ErrorOf(head + "spec: { pubsubname: p, topic: t, routes: { rules: [{match: x}] } }\n"),
      HasSubstr("spec.routes.rules[0].path is required"));
  EXPECT_THAT(ErrorOf(head + "spec: { pubsubname: p, topic: t, routes: { rules: oops } }\n"),
              HasSubstr("spec.routes.rules must be a list"));
  EXPECT_THAT(ErrorOf("apiVersion: dapr.io/v1alpha1\nkind: Subscription\nmetadata: {name: s}\n"
                      "spec: { pubsubname: p, topic: t }\n"),
              HasSubstr("spec.route is required"));
  EXPECT_THAT(ErrorOf("apiVersion: dapr.io/v3\nkind: Subscription\nmetadata: {name: s}\n"
                      "spec: { pubsubname: p, topic: t, route: /t }\n"),
              HasSubstr("apiVersion must be dapr.io/v2alpha1 or dapr.io/v1alpha1"));
  EXPECT_THAT(ErrorOf(head + "spec: { pubsubname: p, topic: t, routes: { default: /t },"
                             " bulkSubscribe: { enabled: maybe } }\n"),
              HasSubstr("spec.bulkSubscribe.enabled must be true or false"));
}

constexpr char kResiliency[] = R"(apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: { name: res }
spec:
  policies:
    timeouts: { general: 5s }
    retries:
      fast: { policy: constant, duration: 50ms, maxRetries: 3 }
      patient: { policy: exponential, maxInterval: 15s }
      DefaultRetryPolicy: { policy: constant, duration: 2s, maxRetries: 1 }
    circuitBreakers:
      cb: { maxRequests: 1, timeout: 30s, trip: consecutiveFailures >= 5 }
  targets:
    apps: { other: { retry: fast } }
    components:
      pubsub: { inbound: { retry: fast }, outbound: { retry: patient } }
      kafka: { outbound: { retry: patient } }
)";

TEST(ResiliencyResourceTest, RetryPoliciesAndComponentTargets) {
  auto r = Parse(kResiliency);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->resiliencies.size(), 1u);
  const ResiliencySpec& spec = r->resiliencies[0];
  EXPECT_EQ(spec.name, "res");
  const RetryPolicy& fast = spec.retries.at("fast");
  EXPECT_EQ(fast.kind, RetryPolicy::Kind::kConstant);
  EXPECT_EQ(fast.duration, milliseconds(50));
  EXPECT_EQ(fast.max_retries, 3);
  const RetryPolicy& patient = spec.retries.at("patient");
  EXPECT_EQ(patient.kind, RetryPolicy::Kind::kExponential);
  EXPECT_EQ(patient.max_interval, std::chrono::seconds(15));
  EXPECT_EQ(patient.initial_interval, milliseconds(500));  // Dapr's defaults
  EXPECT_EQ(patient.max_retries, -1);
  EXPECT_TRUE(ValidateResiliencies(r->resiliencies).ok());

  auto pubsub = InboundRetryPolicy(r->resiliencies, "pubsub", "pubsub");
  ASSERT_TRUE(pubsub.has_value());
  EXPECT_EQ(pubsub->name, "fast");
  // No inbound target: Dapr's default policy names apply.
  auto kafka = InboundRetryPolicy(r->resiliencies, "kafka", "pubsub");
  ASSERT_TRUE(kafka.has_value());
  EXPECT_EQ(kafka->name, "DefaultRetryPolicy");
  EXPECT_FALSE(InboundRetryPolicy({}, "pubsub", "pubsub").has_value());
}

TEST(ResiliencyResourceTest, ScopedDefaultsWinOverTheGeneralOne) {
  auto r = Parse(R"(apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: { name: res }
spec:
  policies:
    retries:
      DefaultRetryPolicy: { duration: 2s }
      DefaultPubsubComponentInboundRetryPolicy: { duration: 3s }
)");
  ASSERT_TRUE(r.ok()) << r.status();
  auto policy = InboundRetryPolicy(r->resiliencies, "any", "pubsub");
  ASSERT_TRUE(policy.has_value());
  EXPECT_EQ(policy->duration, std::chrono::seconds(3));
}

TEST(ResiliencyResourceTest, BadPoliciesAndUnknownPolicyNamesAreErrors) {
  const std::string head = "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata: {name: r}\n";
  EXPECT_THAT(ErrorOf(head + "spec: { policies: { retries: { x: { policy: linear } } } }\n"),
              HasSubstr("spec.policies.retries.x.policy must be constant or exponential"));
  EXPECT_THAT(ErrorOf(head + "spec: { policies: { retries: { x: { duration: soon } } } }\n"),
              HasSubstr("spec.policies.retries.x.duration"));
  EXPECT_THAT(ErrorOf(head + "spec: { policies: { retries: { x: { maxRetries: -5 } } } }\n"),
              HasSubstr("maxRetries must be an integer"));

  auto r =
      Parse(head + "spec: { targets: { components: { pubsub: { inbound: { retry: nope } } } } }\n");
  ASSERT_TRUE(r.ok()) << r.status();
  absl::Status s = ValidateResiliencies(r->resiliencies);
  EXPECT_THAT(MessageOf(s), HasSubstr("res/subs.yaml (document 1)"));
  EXPECT_THAT(MessageOf(s), HasSubstr("names retry policy \"nope\""));

  // LoadResources checks targets across files.
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / StrCat("remora-res-", ::getpid());
  fs::create_directories(dir);
  std::ofstream(dir / "a.yaml") << head
                                << "spec: { targets: { components: { p: { inbound: { retry: "
                                   "nope } } } } }\n";
  auto loaded = LoadResources({dir.string()}, "app", "");
  EXPECT_FALSE(loaded.ok());
  EXPECT_THAT(MessageOf(loaded.status()), HasSubstr("a.yaml (document 1)"));
  std::ofstream(dir / "b.yaml") << head << "spec: { policies: { retries: { nope: {} } } }\n";
  EXPECT_TRUE(LoadResources({dir.string()}, "app", "").ok());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace remora::runtime
