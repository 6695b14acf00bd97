// inventory: answers service invocations of "reserve" ({"item": "...", "quantity": n}) and keeps
// the stock of each item in the state store "statestore" (key "stock-<item>", 1000 to start).
// Reservations run concurrently (one per delivered order), so the stock is updated with the
// etag read, and re-read when another reservation won (ABORTED).
//
// Served over gRPC (remora::App on $APP_PORT): run its sidecar with --app-protocol grpc.
//
// Answer: {"reserved": true|false, "item": "...", "remaining": n}.

#include <cstdio>
#include <string>

#include "nlohmann/json.hpp"
#include "remora/app.h"
#include "remora/client.h"

namespace {

constexpr int kInitialStock = 1000;

absl::StatusOr<nlohmann::json> Reserve(remora::Client& client, const std::string& item,
                                       int quantity) {
  const std::string key = "stock-" + item;
  for (int attempt = 0; attempt < 20; ++attempt) {
    absl::StatusOr<remora::State> got = client.GetState("statestore", key);
    if (!got.ok()) return got.status();
    int stock = kInitialStock;
    if (got->found) {
      auto value = got->Json();
      if (!value.ok() || !value->is_number_integer()) {
        return absl::DataLossError("stock of " + item + " is not a number");
      }
      stock = value->get<int>();
    }
    if (stock < quantity)
      return nlohmann::json{{"reserved", false}, {"item", item}, {"remaining", stock}};
    remora::StateItem update = remora::StateItem::FromJson(key, stock - quantity);
    if (got->found) {
      update.etag = got->etag;
    } else {
      update.options.concurrency = remora::Concurrency::kFirstWrite;  // create only
    }
    absl::Status saved = client.SaveState("statestore", update);
    if (saved.ok()) {
      return nlohmann::json{{"reserved", true}, {"item", item}, {"remaining", stock - quantity}};
    }
    // Someone else reserved meanwhile: read again. (A first-write create that lost the race is
    // not ABORTED on every store, so any failure of the create reads again too.)
    if (saved.code() != absl::StatusCode::kAborted && got->found) return saved;
  }
  return absl::AbortedError("too much contention on " + key);
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::unique_ptr<remora::Client> client = remora::Client::Remote();
  remora::App app;
  app.OnInvoke(
      "reserve",
      [&](const remora::InvocationRequest& in) -> absl::StatusOr<remora::InvocationResponse> {
        auto body = in.Json();
        if (!body.ok() || !body->contains("item")) {
          return absl::InvalidArgumentError("expected {\"item\":...,\"quantity\":n}");
        }
        std::string item = body->value("item", "");
        int quantity = body->value("quantity", 1);
        auto answer = Reserve(*client, item, quantity);
        if (!answer.ok()) return answer.status();
        std::printf("reserve %s x%d -> %s\n", item.c_str(), quantity, answer->dump().c_str());
        return remora::InvocationResponse{.data = answer->dump(),
                                          .content_type = "application/json"};
      });
  std::printf("inventory: serving reserve on $APP_PORT\n");
  absl::Status s = app.Run();  // until SIGINT/SIGTERM
  if (!s.ok()) {
    std::fprintf(stderr, "inventory: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
