#include "runtime/observability/trace.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace remora::runtime::observability {
namespace {

constexpr char kValid[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

bool LooksLikeTraceparent(std::string_view s) {
  if (s.size() != 55 || s.substr(0, 3) != "00-" || s[35] != '-' || s[52] != '-') return false;
  for (size_t i : {3, 36, 53}) {
    size_t n = i == 3 ? 32 : i == 36 ? 16 : 2;
    for (char c : s.substr(i, n)) {
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
  }
  return true;
}

TEST(TraceContextTest, ParsesAValidTraceparent) {
  auto context = TraceContext::Parse(kValid, "congo=t61rcWkgMzE");
  ASSERT_TRUE(context.has_value());
  EXPECT_EQ(context->traceparent(), kValid);
  EXPECT_EQ(context->trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(context->span_id(), "00f067aa0ba902b7");
  EXPECT_TRUE(context->sampled());
  EXPECT_EQ(context->tracestate(), "congo=t61rcWkgMzE");

  auto unsampled = TraceContext::Parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  ASSERT_TRUE(unsampled.has_value());
  EXPECT_FALSE(unsampled->sampled());
}

TEST(TraceContextTest, RejectsInvalidTraceparents) {
  for (const char* bad : {
           "",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",       // no flags
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",    // upper case
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // version ff
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",    // zero trace id
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",    // zero parent id
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",  // v00 with extra
           "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // separator
           "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",    // not hex
           "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // version not hex
           "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",   // future: no '-'
       }) {
    EXPECT_FALSE(TraceContext::Parse(bad).has_value()) << bad;
  }
}

TEST(TraceContextTest, AcceptsAFutureVersionAsVersion00) {
  auto context = TraceContext::Parse(
      "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-what-the-future");
  ASSERT_TRUE(context.has_value());
  // Only the sampled bit is known to version 00; the extra fields are dropped.
  EXPECT_EQ(context->traceparent(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
}

TEST(TraceContextTest, NewContextsAreValidSampledAndDistinct) {
  std::set<std::string> trace_ids;
  for (int i = 0; i < 100; ++i) {
    TraceContext context = TraceContext::New();
    EXPECT_TRUE(LooksLikeTraceparent(context.traceparent())) << context.traceparent();
    EXPECT_TRUE(context.sampled());
    EXPECT_TRUE(TraceContext::Parse(context.traceparent()).has_value());
    trace_ids.emplace(context.trace_id());
  }
  EXPECT_EQ(trace_ids.size(), 100u);
  EXPECT_FALSE(TraceContext::New(/*sampled=*/false).sampled());
}

TEST(TraceContextTest, ChildKeepsTraceIdFlagsAndStateWithANewSpanId) {
  auto parent = TraceContext::Parse(kValid, "a=b");
  ASSERT_TRUE(parent.has_value());
  TraceContext child = parent->Child();
  EXPECT_EQ(child.trace_id(), parent->trace_id());
  EXPECT_NE(child.span_id(), parent->span_id());
  EXPECT_EQ(child.flags(), parent->flags());
  EXPECT_EQ(child.tracestate(), "a=b");
  EXPECT_TRUE(LooksLikeTraceparent(child.traceparent()));
}

TEST(TraceContextTest, ForRequestContinuesAValidTraceAndRestartsAnInvalidOne) {
  TraceContext continued = TraceContext::ForRequest(kValid, "k=v");
  EXPECT_EQ(continued.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_NE(continued.span_id(), "00f067aa0ba902b7");
  EXPECT_EQ(continued.tracestate(), "k=v");

  // An invalid traceparent starts a new trace, and its tracestate is not trusted.
  TraceContext restarted =
      TraceContext::ForRequest("00-4bf92f3577b34da6a3ce929d0e0e4736-zzzz", "k=v");
  EXPECT_NE(restarted.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_TRUE(restarted.tracestate().empty());
  EXPECT_TRUE(LooksLikeTraceparent(restarted.traceparent()));

  TraceContext fresh = TraceContext::ForRequest("", "");
  EXPECT_TRUE(LooksLikeTraceparent(fresh.traceparent()));
}

TEST(TraceContextTest, OverlongTracestateIsDropped) {
  std::string huge(TraceContext::kMaxTracestateSize + 1, 'a');
  auto context = TraceContext::Parse(kValid, huge);
  ASSERT_TRUE(context.has_value());
  EXPECT_TRUE(context->tracestate().empty());
}

}  // namespace
}  // namespace remora::runtime::observability
