#include "remora/components/common/metadata.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "remora/components/common/strings.h"

namespace remora::components {
namespace {

using Map = std::map<std::string, std::string>;
using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

TEST(MetadataTest, KeysMatchCaseInsensitively) {
  Metadata md(Map{{"redisHost", "localhost:6379"}});
  EXPECT_EQ(md.Get("redishost"), "localhost:6379");
  EXPECT_EQ(md.Get("REDISHOST"), "localhost:6379");
  EXPECT_EQ(md.GetString("RedisHost"), "localhost:6379");
  EXPECT_EQ(md.Get("redisPassword"), std::nullopt);
  EXPECT_EQ(md.GetString("redisPassword", "none"), "none");
}

TEST(MetadataTest, UnusedListsKeysNobodyRead) {
  Metadata md(
      Map{{"redisHost", "h"}, {"redisPasword", "typo"}, {"keyPrefix", "none"}, {"ttl", "1"}});
  md.Get("REDISHOST");
  ASSERT_TRUE(md.GetInt("redisPassword", 0).ok());  // absent: the typo is not matched
  md.MarkUsed("keyprefix");
  EXPECT_THAT(md.Unused(), UnorderedElementsAre("redisPasword", "ttl"));
  ASSERT_TRUE(md.GetDuration("TTL", milliseconds(0)).ok());
  EXPECT_THAT(md.Unused(), ElementsAre("redisPasword"));
}

TEST(MetadataTest, GetAnyReturnsTheFirstPresentAlias) {
  Metadata md(Map{{"maxRetries", "7"}, {"redisMaxRetries", "3"}});
  EXPECT_EQ(md.GetAny({"redisMaxRetries", "maxRetries"}), "3");
  // Only the alias actually read counts as used, so a conflicting second spelling is reported.
  EXPECT_THAT(md.Unused(), ElementsAre("maxRetries"));
  EXPECT_EQ(md.GetAny({"nope", "MAXRETRIES"}), "7");
  EXPECT_EQ(md.GetAny({"a", "b"}), std::nullopt);
}

TEST(MetadataTest, GetBool) {
  Metadata md(Map{{"a", "true"},
                  {"b", "False"},
                  {"c", "1"},
                  {"d", "0"},
                  {"e", "yes"},
                  {"f", ""},
                  {"g", "maybe"}});
  EXPECT_EQ(*md.GetBool("a", false), true);
  EXPECT_EQ(*md.GetBool("b", true), false);
  EXPECT_EQ(*md.GetBool("c", false), true);
  EXPECT_EQ(*md.GetBool("d", true), false);
  EXPECT_EQ(*md.GetBool("e", false), true);
  EXPECT_EQ(*md.GetBool("f", true), true);  // empty: the default
  EXPECT_EQ(*md.GetBool("missing", true), true);
  absl::StatusOr<bool> bad = md.GetBool("G", false);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(MessageOf(bad.status())), HasSubstr("\"G\""));
  EXPECT_THAT(std::string(MessageOf(bad.status())), HasSubstr("maybe"));
}

TEST(MetadataTest, GetInt) {
  Metadata md(Map{{"a", "42"},
                  {"b", "-7"},
                  {"c", " 10 "},
                  {"d", "12abc"},
                  {"e", "99999999999999999999"},
                  {"f", "1.5"}});
  EXPECT_EQ(*md.GetInt("a", 0), 42);
  EXPECT_EQ(*md.GetInt("b", 0), -7);
  EXPECT_EQ(*md.GetInt("c", 0), 10);
  EXPECT_EQ(*md.GetInt("missing", 5), 5);
  for (const char* key : {"d", "e", "f"}) {
    absl::StatusOr<int64_t> bad = md.GetInt(key, 0);
    ASSERT_FALSE(bad.ok()) << key;
    EXPECT_THAT(std::string(MessageOf(bad.status())), HasSubstr(StrCat("\"", key, "\"")));
  }
}

TEST(MetadataTest, GetDurationAcceptsGoDurationsAndBareIntegers) {
  Metadata md(
      Map{{"a", "1m30s"}, {"b", "250ms"}, {"c", "15"}, {"d", "0"}, {"e", "soon"}, {"f", "-1"}});
  EXPECT_EQ(*md.GetDuration("a", milliseconds(0)), milliseconds(90'000));
  EXPECT_EQ(*md.GetDuration("b", milliseconds(0)), milliseconds(250));
  EXPECT_EQ(*md.GetDuration("c", milliseconds(0)), milliseconds(15));
  EXPECT_EQ(*md.GetDuration("c", milliseconds(0), std::chrono::seconds(1)), milliseconds(15'000));
  EXPECT_EQ(*md.GetDuration("d", milliseconds(7)), milliseconds(0));
  EXPECT_EQ(*md.GetDuration("f", milliseconds(0), std::chrono::seconds(1)), milliseconds(-1000));
  EXPECT_EQ(*md.GetDuration("missing", milliseconds(7)), milliseconds(7));
  absl::StatusOr<milliseconds> bad = md.GetDuration("e", milliseconds(0));
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(MessageOf(bad.status())), HasSubstr("\"e\""));
}

TEST(ParseGoDurationTest, Valid) {
  struct Case {
    const char* text;
    int64_t ms;
  };
  for (const Case& c : std::initializer_list<Case>{
           {"0", 0},
           {"-0", 0},
           {"1s", 1000},
           {"+1s", 1000},
           {"-1s", -1000},
           {"1.5s", 1500},
           {".5s", 500},
           {"1.s", 1000},
           {"250ms", 250},
           {"1m30s", 90'000},
           {"2h45m", (2 * 60 + 45) * 60'000},
           {"1h1m1s1ms", 3'661'001},
           {"1500us", 1},
           {"1500\u00b5s", 1},
           {"999999ns", 0},
           {"2000000ns", 2},
           {"0.001s", 1},
           {"1.0000000000000000001h", 3'600'000},
           {"2562047h", int64_t{2562047} * 3'600'000},
       }) {
    absl::StatusOr<milliseconds> got = ParseGoDuration(c.text);
    ASSERT_TRUE(got.ok()) << c.text << ": " << got.status();
    EXPECT_EQ(got->count(), c.ms) << c.text;
  }
}

TEST(ParseGoDurationTest, Invalid) {
  for (const char* text : {"", "-", "5", "1.5", "s", ".s", "1x", "1 s", "1s ", "1sec", "1S", "--1s",
                           "1s-1s", "3000000h", "9223372036854775808ns"}) {
    absl::StatusOr<milliseconds> got = ParseGoDuration(text);
    EXPECT_FALSE(got.ok()) << "\"" << text << "\" parsed as " << got->count();
  }
  absl::StatusOr<milliseconds> got = ParseGoDuration("1x");
  EXPECT_THAT(std::string(MessageOf(got.status())), HasSubstr("1x"));
}

}  // namespace
}  // namespace remora::components
