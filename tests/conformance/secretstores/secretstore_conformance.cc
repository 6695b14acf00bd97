#include "tests/conformance/secretstores/secretstore_conformance.h"

#include <unistd.h>

#include <atomic>
#include <cctype>
#include <thread>
#include <vector>

#include <gmock/gmock.h>

namespace remora::conformance::secretstores {
namespace {

using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

// Letters, digits and underscores: usable in env var names, file names and Vault paths.
std::string TestId() {
  static std::atomic<int> counter{0};
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string id = std::string(info->name()) + "_" + std::to_string(::getpid()) + "_" +
                   std::to_string(counter.fetch_add(1));
  for (char& c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return id;
}

}  // namespace

void SecretStoreConformanceTest::TearDown() {
  store_.reset();
  for (size_t i = 0; i < calls_.size(); ++i) {
    EXPECT_EQ(calls_[i]->load(), 1) << "callback of call #" << i << " ran " << calls_[i]->load()
                                    << " times (must be exactly once)";
  }
}

void SecretStoreConformanceTest::CreateStore(const ss::BulkSecretData& secrets) {
  components::ComponentContext context;
  context.name = "conformance";
  context.type = GetParam().type;
  context.version = "v1";
  auto metadata = GetParam().seed(TestId(), secrets, context);
  ASSERT_TRUE(metadata.ok()) << metadata.status();
  context.metadata = components::Metadata(*std::move(metadata));
  auto store = GetParam().factory(context);
  ASSERT_TRUE(store.ok()) << store.status();
  store_ = *std::move(store);
}

absl::StatusOr<ss::SecretData> SecretStoreConformanceTest::Get(const std::string& name,
                                                               ss::RequestMetadata metadata) {
  auto calls = std::make_shared<std::atomic<int>>(0);
  calls_.push_back(calls);
  return Await<ss::SecretData>(
      [&](Callback<ss::SecretData> done) {
        store_->GetSecret(name, std::move(metadata), std::move(done));
      },
      GetParam().call_timeout, calls);
}

absl::StatusOr<ss::BulkSecretData> SecretStoreConformanceTest::Bulk() {
  auto calls = std::make_shared<std::atomic<int>>(0);
  calls_.push_back(calls);
  return Await<ss::BulkSecretData>(
      [&](Callback<ss::BulkSecretData> done) { store_->BulkGetSecret({}, std::move(done)); },
      GetParam().call_timeout, calls);
}

ss::BulkSecretData SecretStoreConformanceTest::StandardSecrets() const {
  if (GetParam().multi_valued) {
    return {{"db", {{"user", "app"}, {"password", "s3cret"}}}, {"api", {{"key", "k-123"}}}};
  }
  return {{"db", {{"db", "s3cret"}}}, {"api", {{"api", "k-123"}}}};
}

TEST_P(SecretStoreConformanceTest, GetReturnsTheSeededSecret) {
  ASSERT_NO_FATAL_FAILURE(CreateStore(StandardSecrets()));
  auto db = Get("db");
  ASSERT_TRUE(db.ok()) << db.status();
  EXPECT_EQ(*db, StandardSecrets().at("db"));
  auto api = Get("api");
  ASSERT_TRUE(api.ok()) << api.status();
  EXPECT_EQ(*api, StandardSecrets().at("api"));
}

TEST_P(SecretStoreConformanceTest, MissingSecret) {
  ASSERT_NO_FATAL_FAILURE(CreateStore(StandardSecrets()));
  auto missing = Get("does-not-exist");
  if (GetParam().missing_is_empty_value) {
    ASSERT_TRUE(missing.ok()) << missing.status();
    EXPECT_THAT(*missing, UnorderedElementsAre(Pair("does-not-exist", "")));
  } else {
    ASSERT_FALSE(missing.ok());
    EXPECT_TRUE(ss::IsSecretNotFound(missing.status())) << missing.status();
    EXPECT_THAT(std::string(missing.status().message()), ::testing::HasSubstr("does-not-exist"));
  }
}

TEST_P(SecretStoreConformanceTest, BulkReturnsEverySecret) {
  ASSERT_NO_FATAL_FAILURE(CreateStore(StandardSecrets()));
  auto all = Bulk();
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(*all, StandardSecrets());
}

TEST_P(SecretStoreConformanceTest, EmptyStoreBulkIsEmpty) {
  ASSERT_NO_FATAL_FAILURE(CreateStore({}));
  auto all = Bulk();
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_THAT(*all, IsEmpty());
}

TEST_P(SecretStoreConformanceTest, FeaturesMatchTheDeclaration) {
  ASSERT_NO_FATAL_FAILURE(CreateStore(StandardSecrets()));
  EXPECT_EQ(store_->HasFeature(ss::Feature::kMultipleKeyValuesPerSecret), GetParam().multi_valued);
  EXPECT_TRUE(store_->Health().ok());
}

TEST_P(SecretStoreConformanceTest, ValuesRoundTripVerbatim) {
  const std::string value = "a=b; \"quoted\" \\ ünïcødé\ttab\nnewline {json:1}";
  ss::BulkSecretData secrets;
  if (GetParam().multi_valued) {
    secrets["odd"] = {{"value", value}, {"empty", ""}};
  } else {
    secrets["odd"] = {{"odd", value}};
  }
  ASSERT_NO_FATAL_FAILURE(CreateStore(secrets));
  auto got = Get("odd");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, secrets.at("odd"));
}

TEST_P(SecretStoreConformanceTest, UnknownRequestMetadataIsIgnored) {
  ASSERT_NO_FATAL_FAILURE(CreateStore(StandardSecrets()));
  auto db = Get("db", {{"some.unknown.key", "x"}});
  ASSERT_TRUE(db.ok()) << db.status();
  EXPECT_EQ(*db, StandardSecrets().at("db"));
}

TEST_P(SecretStoreConformanceTest, ConcurrentGetsFromManyThreads) {
  ASSERT_NO_FATAL_FAILURE(CreateStore(StandardSecrets()));
  constexpr int kThreads = 4;
  constexpr int kPerThread = 25;
  std::atomic<int> ok{0};
  std::vector<std::string> failures[kThreads];
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto got = Await<ss::SecretData>(
            [&](Callback<ss::SecretData> done) {
              store_->GetSecret(i % 2 ? "db" : "api", {}, std::move(done));
            },
            GetParam().call_timeout);
        if (got.ok() && *got == StandardSecrets().at(i % 2 ? "db" : "api")) {
          ok.fetch_add(1);
        } else {
          failures[t].push_back(got.ok() ? "wrong data" : std::string(got.status().message()));
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  for (const auto& f : failures) EXPECT_THAT(f, IsEmpty());
}

}  // namespace remora::conformance::secretstores
