#include "remora/components/state/store.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <utility>

#include "absl/strings/cord.h"
#include "remora/components/common/strings.h"

namespace remora::components::state {
namespace {

// The etag kind travels in a payload rather than in the status code alone: ABORTED and
// INVALID_ARGUMENT are common codes, and the building block must not turn an unrelated
// INVALID_ARGUMENT (a bad ttlInSeconds, say) into an etag error.
constexpr std::string_view kETagPayloadUrl = "type.remora.dev/state.ETagError";
constexpr std::string_view kMismatch = "mismatch";
constexpr std::string_view kInvalid = "invalid";

absl::Status ETagError(absl::StatusCode code, std::string_view kind, std::string_view message) {
  absl::Status status = MakeStatus(code, message);
  status.SetPayload(Sv(kETagPayloadUrl), absl::Cord(Sv(kind)));
  return status;
}

bool HasETagKind(const absl::Status& status, std::string_view kind) {
  if (status.ok()) return false;
  auto payload = status.GetPayload(Sv(kETagPayloadUrl));
  return payload.has_value() && *payload == Sv(kind);
}

// Names the key a bulk item failed on while keeping the code and payloads, so an etag failure
// inside a bulk call is still recognised by IsETagMismatch / IsETagInvalid.
absl::Status WithKey(const absl::Status& status, std::string_view key) {
  absl::Status out = MakeStatus(status.code(), StrCat("key \"", key, "\": ", MessageOf(status)));
  status.ForEachPayload(
      [&out](absl::string_view url, const absl::Cord& payload) { out.SetPayload(url, payload); });
  return out;
}

// Completion state shared by the per-item callbacks of one bulk call. Each callback writes only
// its own slot; the acq_rel decrement publishes those writes to whichever callback finishes last,
// and that one (on whatever thread it runs) invokes `done` exactly once.
template <typename Result, typename Done>
struct BulkState {
  BulkState(size_t n, Done d) : results(n), remaining(n), done(std::move(d)) {}
  std::vector<Result> results;
  std::atomic<size_t> remaining;
  Done done;

  // True for the caller that completed the last item.
  bool Finish() { return remaining.fetch_sub(1, std::memory_order_acq_rel) == 1; }
};

// Shared tail of BulkSet / BulkDelete: OK, or the first failure in request order.
template <typename Request>
void RunBulkWrite(std::vector<Request> requests, DoneCallback done,
                  void (Store::*single)(Request, DoneCallback), Store* store) {
  if (requests.empty()) {
    std::move(done)(absl::OkStatus());
    return;
  }
  std::vector<std::string> keys;
  keys.reserve(requests.size());
  for (const Request& r : requests) keys.push_back(r.key);
  auto state =
      std::make_shared<BulkState<absl::Status, DoneCallback>>(requests.size(), std::move(done));
  auto shared_keys = std::make_shared<std::vector<std::string>>(std::move(keys));
  for (size_t i = 0; i < requests.size(); ++i) {
    (store->*single)(std::move(requests[i]), [state, shared_keys, i](absl::Status status) {
      state->results[i] = std::move(status);
      if (!state->Finish()) return;
      for (size_t j = 0; j < state->results.size(); ++j) {
        if (!state->results[j].ok()) {
          std::move(state->done)(WithKey(state->results[j], (*shared_keys)[j]));
          return;
        }
      }
      std::move(state->done)(absl::OkStatus());
    });
  }
}

}  // namespace

const char* FeatureName(Feature feature) {
  switch (feature) {
    case Feature::kETag:
      return "ETAG";
    case Feature::kTransactional:
      return "TRANSACTIONAL";
    case Feature::kTTL:
      return "TTL";
    case Feature::kQueryAPI:
      return "QUERY_API";
    case Feature::kDeleteWithPrefix:
      return "DELETE_WITH_PREFIX";
    case Feature::kKeysLike:
      return "KEYS_LIKE";
  }
  return "UNKNOWN";
}

bool Store::HasFeature(Feature feature) const {
  std::vector<Feature> features = Features();
  return std::find(features.begin(), features.end(), feature) != features.end();
}

void Store::BulkGet(std::vector<GetRequest> requests, Callback<std::vector<BulkGetItem>> done) {
  if (requests.empty()) {
    std::move(done)(std::vector<BulkGetItem>{});
    return;
  }
  using Done = Callback<std::vector<BulkGetItem>>;
  auto state = std::make_shared<BulkState<BulkGetItem, Done>>(requests.size(), std::move(done));
  for (size_t i = 0; i < requests.size(); ++i) state->results[i].key = requests[i].key;
  for (size_t i = 0; i < requests.size(); ++i) {
    Get(std::move(requests[i]), [state, i](absl::StatusOr<GetResponse> response) {
      BulkGetItem& item = state->results[i];
      if (response.ok()) {
        item.response = *std::move(response);
      } else {
        item.error = std::string(MessageOf(response.status()));
        if (item.error.empty()) item.error = response.status().ToString();
      }
      if (state->Finish()) std::move(state->done)(std::move(state->results));
    });
  }
}

void Store::BulkSet(std::vector<SetRequest> requests, DoneCallback done) {
  RunBulkWrite<SetRequest>(std::move(requests), std::move(done), &Store::Set, this);
}

void Store::BulkDelete(std::vector<DeleteRequest> requests, DoneCallback done) {
  RunBulkWrite<DeleteRequest>(std::move(requests), std::move(done), &Store::Delete, this);
}

absl::Status ETagMismatchError(std::string_view message) {
  return ETagError(absl::StatusCode::kAborted, kMismatch, message);
}

absl::Status ETagInvalidError(std::string_view message) {
  return ETagError(absl::StatusCode::kInvalidArgument, kInvalid, message);
}

bool IsETagMismatch(const absl::Status& status) { return HasETagKind(status, kMismatch); }

bool IsETagInvalid(const absl::Status& status) { return HasETagKind(status, kInvalid); }

absl::StatusOr<std::optional<int64_t>> ParseTTL(const RequestMetadata& metadata) {
  auto it = metadata.find("ttlInSeconds");
  if (it == metadata.end() || it->second.empty()) return std::optional<int64_t>();
  // Go's strconv.ParseInt: an optional sign, then decimal digits and nothing else (no spaces).
  std::string_view text = it->second;
  std::string_view digits = text;
  if (digits.front() == '+') digits.remove_prefix(1);
  int64_t value = 0;
  bool ok =
      !digits.empty() && (text.front() != '+' || (digits.front() >= '0' && digits.front() <= '9'));
  if (ok) {
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    ok = ec == std::errc() && end == digits.data() + digits.size();
  }
  if (!ok) {
    return MakeStatus(
        absl::StatusCode::kInvalidArgument,
        StrCat("incorrect value for metadata \"ttlInSeconds\": \"", text, "\" is not an integer"));
  }
  return std::optional<int64_t>(value);
}

}  // namespace remora::components::state
