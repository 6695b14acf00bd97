#include "remora/runtime/errors.h"

#include <gtest/gtest.h>

#include "nlohmann/json.hpp"
#include "remora/components/common/strings.h"

namespace remora::errors {
namespace {

TEST(ErrorsTest, MakeAndCodeOfRoundTripEveryCode) {
  for (int i = 0; i < static_cast<int>(Code::kCount_); ++i) {
    Code code = static_cast<Code>(i);
    absl::Status status = Make(code, "boom");
    EXPECT_EQ(status.code(), SpecOf(code).grpc_code) << i;
    EXPECT_EQ(MessageOf(status), "boom");
    Code got;
    ASSERT_TRUE(CodeOf(status, &got)) << i;
    EXPECT_EQ(got, code);
  }
}

TEST(ErrorsTest, PlainStatusHasNoCode) {
  Code got;
  EXPECT_FALSE(CodeOf(absl::InternalError("x"), &got));
  EXPECT_FALSE(CodeOf(absl::OkStatus(), &got));
}

TEST(ErrorsTest, StateStoreNotFoundRendersDaprBodyWithErrorInfo) {
  HttpError err = ToHttp(Make(Code::kStateStoreNotFound, "state store nope is not found"));
  EXPECT_EQ(err.status, 400);
  nlohmann::json body = nlohmann::json::parse(err.body);
  EXPECT_EQ(body["errorCode"], "ERR_STATE_STORE_NOT_FOUND");
  EXPECT_EQ(body["message"], "state store nope is not found");
  ASSERT_TRUE(body["details"].is_array());
  ASSERT_EQ(body["details"].size(), 1u);
  EXPECT_EQ(body["details"][0]["@type"], "type.googleapis.com/google.rpc.ErrorInfo");
  EXPECT_EQ(body["details"][0]["reason"], "DAPR_STATE_NOT_FOUND");
  EXPECT_EQ(body["details"][0]["domain"], "dapr.io");
}

TEST(ErrorsTest, ETagMismatchIsConflictWithoutDetails) {
  HttpError err = ToHttp(Make(Code::kStateSaveETagMismatch, "possible etag mismatch"));
  EXPECT_EQ(err.status, 409);
  nlohmann::json body = nlohmann::json::parse(err.body);
  EXPECT_EQ(body["errorCode"], "ERR_STATE_SAVE");
  EXPECT_EQ(body["message"], "possible etag mismatch");
  EXPECT_FALSE(body.contains("details"));
}

TEST(ErrorsTest, PlainStatusMapsByCanonicalCode) {
  HttpError err = ToHttp(absl::NotFoundError("no such thing"));
  EXPECT_EQ(err.status, 404);
  nlohmann::json body = nlohmann::json::parse(err.body);
  EXPECT_EQ(body["errorCode"], "ERR_INTERNAL");
  EXPECT_EQ(body["message"], "no such thing");

  EXPECT_EQ(ToHttp(absl::UnavailableError("down")).status, 503);
  EXPECT_EQ(ToHttp(absl::DeadlineExceededError("slow")).status, 504);
  EXPECT_EQ(ToHttp(absl::UnknownError("?")).status, 500);
}

TEST(ErrorsTest, MessageIsEscapedAsJson) {
  // Quotes and invalid UTF-8 in a user-supplied name must still give a parseable body.
  HttpError err = ToHttp(Make(Code::kBadRequest, "bad \"key\" \xff"));
  nlohmann::json body = nlohmann::json::parse(err.body);
  EXPECT_EQ(body["errorCode"], "ERR_BAD_REQUEST");
  EXPECT_NE(body["message"].get<std::string>().find("\"key\""), std::string::npos);
}

TEST(ErrorsTest, HttpStatusFromGrpcFollowsDapr) {
  EXPECT_EQ(HttpStatusFromGrpc(absl::StatusCode::kOk), 200);
  EXPECT_EQ(HttpStatusFromGrpc(absl::StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusFromGrpc(absl::StatusCode::kPermissionDenied), 403);
  EXPECT_EQ(HttpStatusFromGrpc(absl::StatusCode::kResourceExhausted), 429);
  EXPECT_EQ(HttpStatusFromGrpc(absl::StatusCode::kUnimplemented), 501);
  EXPECT_EQ(HttpStatusFromGrpc(absl::StatusCode::kCancelled), 408);
}

}  // namespace
}  // namespace remora::errors
