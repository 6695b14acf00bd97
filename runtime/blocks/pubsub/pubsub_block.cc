#include "blocks/pubsub/pubsub_block.h"

#include <algorithm>
#include <condition_variable>
#include <random>
#include <set>

#include "blocks/pubsub/cloudevents.h"
#include "blocks/pubsub/routing.h"
#include "observability/trace.h"
#include "remora/components/common/strings.h"
#include "remora/runtime/asio.h"
#include "remora/runtime/errors.h"
#include "remora/runtime/log.h"

namespace remora::runtime {

namespace ps = components::pubsub;
namespace asio = boost::asio;
using errors::Code;
using nlohmann::json;

namespace {

constexpr const char* kRuntimeKeys[] = {"consumerID", "publishingScopes", "subscriptionScopes",
                                        "allowedTopics", "protectedTopics"};

std::string RemoveSpaces(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c != ' ') out.push_back(c);
  }
  return out;
}

std::vector<std::string> Split(std::string_view s, char sep) {
  std::vector<std::string> out;
  while (!s.empty()) {
    size_t at = s.find(sep);
    std::string_view part = s.substr(0, at);
    if (!part.empty()) out.emplace_back(part);
    if (at == std::string_view::npos) break;
    s.remove_prefix(at + 1);
  }
  return out;
}

// `app1=t1,t2;app2=t3`: the topics listed for `app_id` (Dapr's GetScopedTopics).
std::vector<std::string> ScopedTopics(const components::Metadata& metadata, std::string_view key,
                                      std::string_view app_id) {
  std::vector<std::string> topics;
  for (const std::string& entry : Split(RemoveSpaces(metadata.GetString(key)), ';')) {
    size_t eq = entry.find('=');
    if (entry.substr(0, eq) != app_id || eq == std::string::npos) continue;
    for (std::string& topic : Split(std::string_view(entry).substr(eq + 1), ',')) {
      if (std::find(topics.begin(), topics.end(), topic) == topics.end()) {
        topics.push_back(std::move(topic));
      }
    }
  }
  return topics;
}

bool Contains(const std::vector<std::string>& list, std::string_view item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

double Random01() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

}  // namespace

std::string_view SubscriptionTypeName(SubscriptionSpec::Type type) {
  switch (type) {
    case SubscriptionSpec::Type::kDeclarative:
      return "DECLARATIVE";
    case SubscriptionSpec::Type::kProgrammatic:
      return "PROGRAMMATIC";
    case SubscriptionSpec::Type::kStreaming:
      return "STREAMING";
  }
  return "UNKNOWN";
}

// Messages taken from brokers and not yet acked; shared with deliveries that may outlive the
// block (their callbacks run on the event loops).
struct PubSubBlock::Counters {
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0;

  void Add() {
    std::lock_guard lock(mu);
    ++in_flight;
  }
  void Done() {
    std::lock_guard lock(mu);
    --in_flight;
    cv.notify_all();
  }
  bool WaitIdle(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mu);
    return cv.wait_until(lock, deadline, [&] { return in_flight == 0; });
  }
};

struct PubSubBlock::Component {
  PubSubComponentInfo info;
  std::shared_ptr<ps::PubSub> pubsub;
  std::vector<std::string> publishing_scopes;    // topics this app may publish to ("" = any)
  std::vector<std::string> subscription_scopes;  // topics this app may subscribe to
  std::vector<std::string> allowed_topics;
  std::vector<std::string> protected_topics;
  RetryPolicy inbound_retry;

  // Dapr's IsOperationAllowed: allowedTopics limits everyone; a protected topic, or an app with
  // scoped topics, needs the topic in the app's scope.
  bool Allowed(std::string_view topic, const std::vector<std::string>& scoped) const {
    if (!allowed_topics.empty() && !Contains(allowed_topics, topic)) return false;
    if (!Contains(protected_topics, topic) && scoped.empty()) return true;
    return Contains(scoped, topic);
  }
};

namespace {
struct Delivery;
}  // namespace

// One subscription at run time. The gate (mu/closed/running) makes "once Close() returns, the
// app channel / streaming callback is not called again" hold across threads.
struct PubSubBlock::Active {
  SubscriptionSpec spec;
  std::vector<pubsub::Rule> rules;
  bool raw_payload = false;
  std::shared_ptr<Component> component;
  RetryPolicy retry;
  asio::io_context* io = nullptr;
  std::shared_ptr<Counters> counters;
  AppChannel* channel = nullptr;  // app subscriptions
  StreamingDeliver streaming;     // streaming subscriptions

  std::mutex mu;
  std::condition_variable cv;
  std::unique_ptr<ps::Subscription> handle;  // null until subscribed and after Close
  bool closed = false;
  int running = 0;
  std::map<uint64_t, std::shared_ptr<asio::steady_timer>> timers;  // pending retries
  uint64_t next_timer = 0;
  // bulkSubscribe: the batch being filled per route, sent when full or when its timer fires.
  struct Batch {
    std::vector<std::shared_ptr<Delivery>> items;
    std::shared_ptr<asio::steady_timer> timer;
  };
  std::map<std::string, std::shared_ptr<Batch>> batches;

  static std::vector<const Active*>& Inside() {
    static thread_local std::vector<const Active*> inside;
    return inside;
  }

  bool Enter() {
    std::lock_guard lock(mu);
    if (closed) return false;
    ++running;
    Inside().push_back(this);
    return true;
  }
  void Leave() {
    Inside().pop_back();
    std::lock_guard lock(mu);
    --running;
    cv.notify_all();
  }

  void Close() {
    std::unique_ptr<ps::Subscription> doomed;
    {
      std::lock_guard lock(mu);
      closed = true;
      doomed = std::move(handle);
    }
    doomed.reset();  // the broker stops and waits for its handler calls in progress
    const int own = static_cast<int>(std::count(Inside().begin(), Inside().end(), this));
    std::map<uint64_t, std::shared_ptr<asio::steady_timer>> pending;
    std::map<std::string, std::shared_ptr<Batch>> filling;
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return running <= own; });
      pending.swap(timers);
      filling.swap(batches);
    }
    for (auto& [id, timer] : pending) timer->cancel();           // each nacks its message
    for (auto& [path, batch] : filling) batch->timer->cancel();  // nacks the batch's messages
  }
};

namespace {

using Active = PubSubBlock::Active;

// One message on its way to the app. Steps run one after another (never concurrently), so the
// fields need no lock.
struct Delivery {
  std::shared_ptr<Active> sub;
  ps::Message message;
  ps::Ack ack;
  json event;
  std::string path;
  std::string id;  // the CloudEvent id, for logs
  int retries = 0;
  bool finished = false;
};
using DeliveryPtr = std::shared_ptr<Delivery>;

void Attempt(const DeliveryPtr& d);

void Finish(const DeliveryPtr& d, absl::Status status) {
  if (d->finished) return;
  d->finished = true;
  std::move(d->ack)(std::move(status));
  d->sub->counters->Done();
}

std::string Describe(const Delivery& d) {
  return StrCat("event ", d.id.empty() ? "(no id)" : d.id, " on topic ", d.sub->spec.topic,
                " of pubsub ", d.sub->spec.pubsub_name);
}

// Sends the original message to the dead-letter topic and acks only once it is there; without a
// dead-letter topic, acks with `fallback`.
void DeadLetterOr(const DeliveryPtr& d, absl::Status fallback) {
  const std::string& dlq = d->sub->spec.dead_letter_topic;
  if (dlq.empty()) return Finish(d, std::move(fallback));
  ps::PublishRequest request;
  request.topic = dlq;
  request.data = d->message.data;
  request.content_type = d->message.content_type;
  request.metadata = d->message.metadata;
  d->sub->component->pubsub->Publish(std::move(request), [d](absl::Status status) {
    if (!status.ok()) {
      log::Error("cannot send ", Describe(*d), " to dead-letter topic ",
                 d->sub->spec.dead_letter_topic, ": ", MessageOf(status),
                 "; the broker will redeliver it");
      return Finish(d, MakeStatus(absl::StatusCode::kUnavailable,
                                  StrCat("dead-letter publish failed: ", MessageOf(status))));
    }
    log::Info(Describe(*d), " sent to dead-letter topic ", d->sub->spec.dead_letter_topic);
    Finish(d, absl::OkStatus());
  });
}

void ScheduleRetry(const DeliveryPtr& d) {
  Active& sub = *d->sub;
  auto delay = sub.retry.Delay(d->retries, Random01());
  ++d->retries;
  auto timer = std::make_shared<asio::steady_timer>(*sub.io, delay);
  uint64_t id;
  {
    std::lock_guard lock(sub.mu);
    if (sub.closed) {
      // Unlock before acking: the broker may call back into anything.
      id = UINT64_MAX;
    } else {
      id = sub.next_timer++;
      sub.timers[id] = timer;
    }
  }
  if (id == UINT64_MAX) return Finish(d, absl::CancelledError("the subscription was stopped"));
  timer->async_wait([d, id, timer](const boost::system::error_code& ec) {
    {
      std::lock_guard lock(d->sub->mu);
      d->sub->timers.erase(id);
    }
    if (ec) return Finish(d, absl::CancelledError("the subscription was stopped"));
    Attempt(d);
  });
}

void OnAnswer(const DeliveryPtr& d, absl::StatusOr<EventStatus> answer) {
  if (answer.ok() && *answer == EventStatus::kSuccess) return Finish(d, absl::OkStatus());
  if (answer.ok() && *answer == EventStatus::kDrop) {
    log::Warn("the app dropped ", Describe(*d));
    return DeadLetterOr(d, absl::OkStatus());
  }
  absl::Status why = answer.ok()
                         ? MakeStatus(absl::StatusCode::kUnavailable, "the app asked to retry")
                         : answer.status();
  if (d->sub->retry.Exhausted(d->retries)) {
    log::Warn("delivering ", Describe(*d), " to ", d->path, " failed after ", d->retries + 1,
              " attempts: ", MessageOf(why),
              d->sub->spec.dead_letter_topic.empty() ? "; the broker will redeliver it"
                                                     : "; sending it to the dead-letter topic");
    return DeadLetterOr(d, MakeStatus(why.code(), StrCat("delivery failed: ", MessageOf(why))));
  }
  log::Debug("delivering ", Describe(*d), " failed (", MessageOf(why), "); retry ", d->retries + 1);
  ScheduleRetry(d);
}

// Sends a batch of a bulk subscription and hands each entry's answer to OnAnswer, so that every
// entry goes its own way (ack, dead-letter topic, or a retry that joins a later batch).
void SendBatch(const std::shared_ptr<Active>& sub_ptr, const std::string& path,
               std::vector<DeliveryPtr> items) {
  Active& sub = *sub_ptr;
  if (!sub.Enter()) {
    for (const DeliveryPtr& d : items) {
      Finish(d, absl::CancelledError("the subscription was stopped"));
    }
    return;
  }
  BulkTopicEvent bulk;
  bulk.pubsub_name = sub.spec.pubsub_name;
  bulk.topic = sub.spec.topic;
  bulk.path = path;
  std::vector<std::string> ids;
  for (size_t i = 0; i < items.size(); ++i) {
    const DeliveryPtr& d = items[i];
    BulkTopicEvent::Entry entry;
    // Entry ids only need to be unique within the batch; the index keeps them short.
    entry.entry_id = StrCat(static_cast<uint64_t>(i));
    entry.event = d->event;
    entry.content_type = "application/cloudevents+json";
    entry.metadata = d->message.metadata;
    ids.push_back(entry.entry_id);
    bulk.entries.push_back(std::move(entry));
  }
  sub.channel->BulkDeliver(std::move(bulk), [items = std::move(items), ids = std::move(ids)](
                                                absl::StatusOr<BulkEventStatuses> answer) {
    for (size_t i = 0; i < items.size(); ++i) {
      if (!answer.ok()) {
        OnAnswer(items[i], answer.status());
        continue;
      }
      auto it = answer->find(ids[i]);
      OnAnswer(items[i], it == answer->end() ? EventStatus::kRetry : it->second);
    }
  });
  sub.Leave();
}

// Adds `d` to its route's batch: sent at once when it reaches maxMessagesCount, else when the
// batch is maxAwaitDurationMs old. (The broker's own in-flight limit, e.g. Redis `concurrency`,
// caps how many messages can wait in a batch at a time.)
void Enqueue(const DeliveryPtr& d) {
  const std::shared_ptr<Active>& sub = d->sub;
  const size_t max_count = static_cast<size_t>(std::max(1, sub->spec.bulk.max_messages_count));
  std::vector<DeliveryPtr> full;
  std::shared_ptr<Active::Batch> started;
  bool stopped = false;
  {
    std::lock_guard lock(sub->mu);
    if (sub->closed) {
      stopped = true;
    } else {
      std::shared_ptr<Active::Batch>& batch = sub->batches[d->path];
      if (batch == nullptr) {
        batch = std::make_shared<Active::Batch>();
        batch->timer = std::make_shared<asio::steady_timer>(
            *sub->io, std::chrono::milliseconds(std::max(0, sub->spec.bulk.max_await_duration_ms)));
        started = batch;
      }
      batch->items.push_back(d);
      if (batch->items.size() >= max_count) {
        full.swap(batch->items);
        batch->timer->cancel();
        sub->batches.erase(d->path);
      }
    }
  }
  if (stopped) return Finish(d, absl::CancelledError("the subscription was stopped"));
  if (started) {
    started->timer->async_wait(
        [sub, path = d->path, batch = started](const boost::system::error_code& ec) {
          std::vector<DeliveryPtr> items;
          {
            std::lock_guard lock(sub->mu);
            auto it = sub->batches.find(path);
            if (it != sub->batches.end() && it->second == batch) sub->batches.erase(it);
            items.swap(batch->items);  // empty when the batch was sent full
          }
          if (items.empty()) return;
          if (ec) {
            for (const DeliveryPtr& item : items) {
              Finish(item, absl::CancelledError("the subscription was stopped"));
            }
            return;
          }
          SendBatch(sub, path, std::move(items));
        });
  }
  if (!full.empty()) SendBatch(sub, d->path, std::move(full));
}

void Attempt(const DeliveryPtr& d) {
  Active& sub = *d->sub;
  if (sub.spec.bulk.enabled && !sub.streaming) return Enqueue(d);
  if (!sub.Enter()) return Finish(d, absl::CancelledError("the subscription was stopped"));
  TopicEvent event;
  event.cloud_event = d->event;
  event.pubsub_name = sub.spec.pubsub_name;
  event.topic = sub.spec.topic;
  event.path = d->path;
  event.metadata = d->message.metadata;
  auto done = [d](absl::StatusOr<EventStatus> answer) { OnAnswer(d, std::move(answer)); };
  if (sub.streaming) {
    sub.streaming(std::move(event), std::move(done));
  } else {
    sub.channel->DeliverEvent(std::move(event), std::move(done));
  }
  sub.Leave();
}

void OnMessage(const std::shared_ptr<Active>& sub, ps::Message message, ps::Ack ack) {
  sub->counters->Add();
  auto d = std::make_shared<Delivery>();
  d->sub = sub;
  d->message = std::move(message);
  d->ack = std::move(ack);
  auto event =
      pubsub::ReadEvent(d->message.data, sub->raw_payload, sub->spec.topic, sub->spec.pubsub_name);
  if (!event.ok()) {
    log::Warn("a message on topic ", sub->spec.topic, " of pubsub ", sub->spec.pubsub_name,
              " cannot be delivered: ", MessageOf(event.status()));
    return DeadLetterOr(d, event.status());
  }
  d->event = *std::move(event);
  if (auto id = d->event.find("id"); id != d->event.end() && id->is_string()) {
    d->id = id->get<std::string>();
  }
  if (sub->raw_payload) {
    // The synthetic event carries the publisher's trace context when the broker kept it.
    for (const char* key : {"traceparent", "tracestate"}) {
      if (auto it = d->message.metadata.find(key); it != d->message.metadata.end()) {
        d->event[key] = it->second;
      }
    }
  }
  if (pubsub::Expired(d->event, std::chrono::system_clock::now())) {
    log::Warn(Describe(*d), " expired at ", d->event.value("expiration", ""), "; dropped");
    return Finish(d, absl::OkStatus());
  }
  const pubsub::Rule* rule = pubsub::SelectRoute(sub->rules, d->event);
  if (rule == nullptr) {
    log::Warn("no route of the subscription matches ", Describe(*d), "; dropped");
    return DeadLetterOr(d, absl::OkStatus());
  }
  d->path = rule->path;
  Attempt(d);
}

}  // namespace

// Lets an asynchronous ListSubscriptions answer reach the block only while it exists.
struct PubSubBlock::Guard {
  std::mutex mu;
  PubSubBlock* block = nullptr;
};

RetryPolicy PubSubBlock::DefaultRetryPolicy() {
  RetryPolicy policy;
  policy.name = "remora-default-inbound";
  policy.kind = RetryPolicy::Kind::kConstant;
  policy.duration = std::chrono::seconds(1);
  policy.max_retries = 3;
  return policy;
}

components::Metadata PubSubBlock::PrepareMetadata(const components::Metadata& metadata,
                                                  std::string_view app_id) {
  std::map<std::string, std::string> values = metadata.values();
  if (!metadata.Get("consumerID").has_value() && !app_id.empty()) {
    values["consumerID"] = std::string(app_id);
  }
  components::Metadata out(std::move(values));
  for (const char* key : kRuntimeKeys) out.MarkUsed(key);
  return out;
}

PubSubBlock::PubSubBlock(Options options)
    : options_(std::move(options)), counters_(std::make_shared<Counters>()) {}

PubSubBlock::~PubSubBlock() { Shutdown(std::chrono::steady_clock::now()); }

void PubSubBlock::AddComponent(std::string name, std::string type, std::string version,
                               const components::Metadata& metadata,
                               std::unique_ptr<ps::PubSub> component) {
  auto entry = std::make_shared<Component>();
  entry->info.name = name;
  entry->info.type = std::move(type);
  entry->info.version = std::move(version);
  for (ps::Feature f : component->Features()) {
    entry->info.capabilities.push_back(ps::FeatureName(f));
  }
  entry->pubsub = std::move(component);
  entry->publishing_scopes = ScopedTopics(metadata, "publishingScopes", options_.app_id);
  entry->subscription_scopes = ScopedTopics(metadata, "subscriptionScopes", options_.app_id);
  entry->allowed_topics = Split(RemoveSpaces(metadata.GetString("allowedTopics")), ',');
  entry->protected_topics = Split(RemoveSpaces(metadata.GetString("protectedTopics")), ',');
  entry->inbound_retry = options_.default_retry;
  components_.insert_or_assign(std::move(name), std::move(entry));
}

void PubSubBlock::SetInboundRetry(std::string_view name, RetryPolicy policy) {
  if (auto it = components_.find(name); it != components_.end()) {
    it->second->inbound_retry = std::move(policy);
  }
}

absl::StatusOr<std::shared_ptr<PubSubBlock::Component>> PubSubBlock::FindForPublish(
    std::string_view pubsub_name, std::string_view topic) const {
  if (components_.empty()) {
    return errors::Make(Code::kPubsubNotConfigured, "no pubsub is configured");
  }
  if (pubsub_name.empty()) return errors::Make(Code::kPubsubEmpty, "pubsub name is empty");
  auto it = components_.find(pubsub_name);
  if (it == components_.end()) {
    return errors::Make(Code::kPubsubNotFound, StrCat("pubsub ", pubsub_name, " not found"));
  }
  if (topic.empty()) {
    return errors::Make(Code::kTopicNameEmpty, StrCat("topic is empty in pubsub ", pubsub_name));
  }
  if (!it->second->Allowed(topic, it->second->publishing_scopes)) {
    return errors::Make(Code::kPubsubForbidden,
                        StrCat("topic ", topic, " is not allowed for app id ", options_.app_id));
  }
  return it->second;
}

void PubSubBlock::Publish(PublishEventRequest request, DoneCallback done) {
  auto component = FindForPublish(request.pubsub_name, request.topic);
  if (!component.ok()) return std::move(done)(component.status());
  auto raw = pubsub::RawPayload(request.metadata);
  if (!raw.ok()) return std::move(done)(raw.status());
  ps::PublishRequest out;
  out.topic = request.topic;
  if (*raw) {
    out.data = std::move(request.data);
    out.content_type = std::move(request.content_type);
  } else {
    pubsub::EnvelopeInput in;
    in.data = std::move(request.data);
    in.content_type = std::move(request.content_type);
    in.topic = request.topic;
    in.pubsub_name = request.pubsub_name;
    in.app_id = options_.app_id;
    // The event carries the publish span: a child of the caller's trace, or a new trace.
    auto trace = observability::TraceContext::ForRequest(request.traceparent, request.tracestate);
    in.traceparent = std::string(trace.traceparent());
    in.tracestate = trace.tracestate();
    in.metadata = request.metadata;
    in.broker_has_message_ttl = (*component)->pubsub->HasFeature(ps::Feature::kMessageTTL);
    auto envelope = pubsub::BuildEnvelope(in);
    if (!envelope.ok()) return std::move(done)(envelope.status());
    out.data = *std::move(envelope);
    out.content_type = "application/cloudevents+json";
  }
  out.metadata = std::move(request.metadata);
  (*component)
      ->pubsub->Publish(std::move(out), [done = std::move(done), topic = request.topic,
                                         name = request.pubsub_name](absl::Status s) mutable {
        if (s.ok()) return std::move(done)(s);
        Code code;
        if (errors::CodeOf(s, &code)) return std::move(done)(s);
        if (s.code() == absl::StatusCode::kNotFound) {
          return std::move(done)(errors::Make(
              Code::kPubsubTopicNotFound,
              StrCat("topic ", topic, " not found in pubsub ", name, ": ", MessageOf(s))));
        }
        std::move(done)(errors::Make(Code::kPubsubPublishMessage,
                                     StrCat("error when publish to topic ", topic, " in pubsub ",
                                            name, ": ", MessageOf(s))));
      });
}

void PubSubBlock::BulkPublish(BulkPublishEventRequest request,
                              Callback<BulkPublishEventResult> done) {
  auto component = FindForPublish(request.pubsub_name, request.topic);
  if (!component.ok()) return std::move(done)(component.status());
  auto raw = pubsub::RawPayload(request.metadata);
  if (!raw.ok()) return std::move(done)(raw.status());
  std::set<std::string_view> ids;
  for (const BulkPublishEventEntry& entry : request.entries) {
    if (entry.entry_id.empty()) {
      return std::move(done)(
          errors::Make(Code::kPubsubMarshalEvents, "entryId is required for every entry"));
    }
    if (!ids.insert(entry.entry_id).second) {
      return std::move(done)(errors::Make(Code::kPubsubMarshalEvents,
                                          StrCat("entryId ", entry.entry_id, " is duplicated")));
    }
  }
  if (request.entries.empty()) return std::move(done)(BulkPublishEventResult());
  const bool broker_ttl = (*component)->pubsub->HasFeature(ps::Feature::kMessageTTL);
  // Each entry gets its own span under the caller's trace (or one new trace for the request).
  std::optional<observability::TraceContext> trace =
      observability::TraceContext::Parse(request.traceparent, request.tracestate);
  if (!trace) trace = observability::TraceContext::New();
  std::vector<ps::BulkPublishEntry> entries;
  entries.reserve(request.entries.size());
  for (BulkPublishEventEntry& entry : request.entries) {
    std::map<std::string, std::string> metadata = request.metadata;
    for (auto& [k, v] : entry.metadata) metadata[k] = v;
    ps::BulkPublishEntry out;
    out.entry_id = entry.entry_id;
    out.request.topic = request.topic;
    if (*raw) {
      out.request.data = std::move(entry.data);
      out.request.content_type = std::move(entry.content_type);
    } else {
      pubsub::EnvelopeInput in;
      in.data = std::move(entry.data);
      in.content_type = entry.content_type;
      in.topic = request.topic;
      in.pubsub_name = request.pubsub_name;
      in.app_id = options_.app_id;
      observability::TraceContext span = trace->Child();
      in.traceparent = std::string(span.traceparent());
      in.tracestate = span.tracestate();
      in.metadata = metadata;
      in.broker_has_message_ttl = broker_ttl;
      auto envelope = pubsub::BuildEnvelope(in);
      if (!envelope.ok()) {
        Code code = Code::kPubsubCloudEventsSer;
        errors::CodeOf(envelope.status(), &code);
        return std::move(done)(errors::Make(
            code, StrCat("entry ", entry.entry_id, ": ", MessageOf(envelope.status()))));
      }
      out.request.data = *std::move(envelope);
      out.request.content_type = "application/cloudevents+json";
    }
    out.request.metadata = std::move(metadata);
    entries.push_back(std::move(out));
  }
  std::vector<std::string> all_ids;
  for (const auto& e : entries) all_ids.push_back(e.entry_id);
  (*component)
      ->pubsub->BulkPublish(
          std::move(entries),
          [done = std::move(done), all_ids = std::move(all_ids), topic = request.topic,
           name = request.pubsub_name](absl::StatusOr<ps::BulkPublishResult> result) mutable {
            BulkPublishEventResult out;
            if (!result.ok()) {
              std::string error = StrCat("error when publish to topic ", topic, " in pubsub ", name,
                                         ": ", MessageOf(result.status()));
              for (std::string& id : all_ids) out.failed.push_back({std::move(id), error});
            } else {
              for (auto& f : result->failed) {
                out.failed.push_back({std::move(f.entry_id), std::move(f.error)});
              }
            }
            std::move(done)(std::move(out));
          });
}

absl::StatusOr<std::shared_ptr<PubSubBlock::Active>> PubSubBlock::Prepare(SubscriptionSpec spec) {
  const std::string where = spec.source.empty() ? std::string() : StrCat(spec.source, ": ");
  auto it = components_.find(spec.pubsub_name);
  if (it == components_.end()) {
    return errors::Make(Code::kPubsubNotFound,
                        StrCat(where, "pubsub ", spec.pubsub_name, " not found"));
  }
  if (spec.topic.empty()) {
    return errors::Make(Code::kTopicNameEmpty,
                        StrCat(where, "topic is empty in pubsub ", spec.pubsub_name));
  }
  if (!it->second->Allowed(spec.topic, it->second->subscription_scopes)) {
    return errors::Make(Code::kPubsubForbidden,
                        StrCat(where, "subscribing to topic ", spec.topic, " of pubsub ",
                               spec.pubsub_name, " is not allowed for app id ", options_.app_id));
  }
  auto active = std::make_shared<Active>();
  for (const SubscriptionSpec::Rule& rule : spec.rules) {
    auto match = pubsub::Expression::Parse(rule.match);
    if (!match.ok()) {
      return MakeStatus(
          absl::StatusCode::kInvalidArgument,
          StrCat(where, "subscription to topic ", spec.topic, ": ", MessageOf(match.status())));
    }
    active->rules.push_back({*std::move(match), rule.path});
  }
  auto raw = pubsub::RawPayload(spec.metadata);
  if (!raw.ok()) {
    return MakeStatus(
        absl::StatusCode::kInvalidArgument,
        StrCat(where, "subscription to topic ", spec.topic, ": ", MessageOf(raw.status())));
  }
  active->raw_payload = *raw;
  active->component = it->second;
  active->retry = it->second->inbound_retry;
  active->io = options_.io;
  active->counters = counters_;
  active->spec = std::move(spec);
  return active;
}

absl::Status PubSubBlock::Subscribe(const std::shared_ptr<Active>& active) {
  ps::SubscribeRequest request;
  request.topic = active->spec.topic;
  request.metadata = active->spec.metadata;
  // The handler holds the subscription; Close() breaks the cycle by destroying the handle.
  auto handle = active->component->pubsub->Subscribe(
      std::move(request), [active](ps::Message message, ps::Ack ack) {
        OnMessage(active, std::move(message), std::move(ack));
      });
  if (!handle.ok()) {
    log::Error("cannot subscribe to topic ", active->spec.topic, " of pubsub ",
               active->spec.pubsub_name, ": ", MessageOf(handle.status()));
    return handle.status();
  }
  std::lock_guard lock(active->mu);
  if (active->closed) return absl::CancelledError("the block is shutting down");
  active->handle = *std::move(handle);
  return absl::OkStatus();
}

absl::Status PubSubBlock::AddDeclarativeSubscription(const SubscriptionResource& resource) {
  SubscriptionSpec spec;
  spec.type = SubscriptionSpec::Type::kDeclarative;
  spec.pubsub_name = resource.pubsub_name;
  spec.topic = resource.topic;
  spec.metadata = resource.metadata;
  for (const auto& rule : resource.rules) spec.rules.push_back({rule.match, rule.path});
  spec.dead_letter_topic = resource.dead_letter_topic;
  spec.bulk.enabled = resource.bulk_enabled;
  spec.bulk.max_messages_count = resource.bulk_max_messages_count;
  spec.bulk.max_await_duration_ms = resource.bulk_max_await_duration_ms;
  spec.scopes = resource.scopes;
  spec.source = resource.source.Describe();
  auto active = Prepare(std::move(spec));
  if (!active.ok()) {
    Code code;
    if (errors::CodeOf(active.status(), &code) &&
        (code == Code::kPubsubNotFound || code == Code::kPubsubForbidden)) {
      log::Warn("subscription ", resource.name, " skipped: ", MessageOf(active.status()));
      return absl::OkStatus();
    }
    return active.status();
  }
  {
    std::lock_guard lock(mu_);
    for (const auto& other : subscriptions_) {
      if (other->spec.pubsub_name == (*active)->spec.pubsub_name &&
          other->spec.topic == (*active)->spec.topic) {
        log::Warn((*active)->spec.source, ": topic ", (*active)->spec.topic, " of pubsub ",
                  (*active)->spec.pubsub_name, " is already subscribed by ", other->spec.source,
                  "; skipped");
        return absl::OkStatus();
      }
    }
    subscriptions_.push_back(*std::move(active));
  }
  NotifyListener();
  return absl::OkStatus();
}

void PubSubBlock::Start(AppChannel* channel) {
  channel_ = channel;
  std::vector<std::shared_ptr<Active>> declarative;
  {
    std::lock_guard lock(mu_);
    declarative = subscriptions_;
  }
  if (channel == nullptr) {
    if (!declarative.empty()) {
      log::Info("no app channel (--app-port is not set): ", declarative.size(),
                " declarative subscription(s) are not delivered");
    }
    programmatic_loaded_.store(true);
    return;
  }
  bool changed = false;
  for (const auto& active : declarative) {
    active->channel = channel;
    if (Subscribe(active).ok()) {
      log::Info("subscribed to topic ", active->spec.topic, " of pubsub ", active->spec.pubsub_name,
                " (", active->spec.source, ")");
      continue;
    }
    // Listed subscriptions are the ones that deliver.
    std::lock_guard lock(mu_);
    subscriptions_.erase(std::remove(subscriptions_.begin(), subscriptions_.end(), active),
                         subscriptions_.end());
    changed = true;
  }
  if (changed) NotifyListener();
  LoadProgrammatic();
}

void PubSubBlock::LoadProgrammatic() {
  auto guard = std::make_shared<Guard>();
  guard->block = this;
  {
    std::lock_guard lock(mu_);
    guard_ = guard;
  }
  channel_->ListSubscriptions([guard](absl::StatusOr<std::vector<SubscriptionSpec>> specs) {
    std::lock_guard guard_lock(guard->mu);
    PubSubBlock* self = guard->block;
    if (self == nullptr) return;
    if (!specs.ok()) {
      log::Error("cannot load the app's subscriptions: ", MessageOf(specs.status()));
    } else {
      for (SubscriptionSpec& spec : *specs) {
        spec.type = SubscriptionSpec::Type::kProgrammatic;
        auto active = self->Prepare(std::move(spec));
        if (!active.ok()) {
          log::Error("app subscription skipped: ", MessageOf(active.status()));
          continue;
        }
        bool duplicate = false;
        {
          std::lock_guard lock(self->mu_);
          if (self->shut_down_) break;
          for (const auto& other : self->subscriptions_) {
            duplicate |= other->spec.pubsub_name == (*active)->spec.pubsub_name &&
                         other->spec.topic == (*active)->spec.topic;
          }
        }
        if (duplicate) {
          log::Warn("app subscription to topic ", (*active)->spec.topic, " of pubsub ",
                    (*active)->spec.pubsub_name, " skipped: the topic is already subscribed");
          continue;
        }
        (*active)->channel = self->channel_;
        if (!self->Subscribe(*active).ok()) continue;
        bool closed = false;
        {
          std::lock_guard lock(self->mu_);
          closed = self->shut_down_;
          if (!closed) self->subscriptions_.push_back(*active);
        }
        if (closed) {
          (*active)->Close();
          break;
        }
        log::Info("subscribed to topic ", (*active)->spec.topic, " of pubsub ",
                  (*active)->spec.pubsub_name, " (app subscription)");
      }
    }
    self->programmatic_loaded_.store(true);
    self->NotifyListener();
  });
}

absl::StatusOr<uint64_t> PubSubBlock::AddStreamingSubscription(SubscriptionSpec spec,
                                                               StreamingDeliver deliver) {
  if (!deliver) {
    return MakeStatus(absl::StatusCode::kInvalidArgument,
                      "a streaming subscription needs a callback");
  }
  spec.type = SubscriptionSpec::Type::kStreaming;
  if (spec.rules.empty()) spec.rules.push_back({"", ""});
  if (components_.empty()) {
    return errors::Make(Code::kPubsubNotConfigured, "no pubsub is configured");
  }
  if (spec.pubsub_name.empty()) return errors::Make(Code::kPubsubEmpty, "pubsub name is empty");
  auto active = Prepare(std::move(spec));
  if (!active.ok()) return active.status();
  (*active)->streaming = std::move(deliver);
  {
    std::lock_guard lock(mu_);
    if (shut_down_) return absl::UnavailableError("the pub/sub block is shutting down");
    for (const auto& other : subscriptions_) {
      if (other->spec.pubsub_name == (*active)->spec.pubsub_name &&
          other->spec.topic == (*active)->spec.topic) {
        return MakeStatus(
            absl::StatusCode::kAlreadyExists,
            StrCat("topic ", other->spec.topic, " of pubsub ", other->spec.pubsub_name,
                   " is already subscribed (", SubscriptionTypeName(other->spec.type), ")"));
      }
    }
  }
  if (absl::Status s = Subscribe(*active); !s.ok()) return s;
  uint64_t id;
  bool closed = false;
  {
    std::lock_guard lock(mu_);
    closed = shut_down_;
    id = next_streaming_id_++;
    if (!closed) {
      subscriptions_.push_back(*active);
      streaming_[id] = *active;
    }
  }
  if (closed) {
    (*active)->Close();
    return absl::UnavailableError("the pub/sub block is shutting down");
  }
  NotifyListener();
  return id;
}

void PubSubBlock::RemoveStreamingSubscription(uint64_t id) {
  std::shared_ptr<Active> active;
  {
    std::lock_guard lock(mu_);
    auto it = streaming_.find(id);
    if (it == streaming_.end()) return;
    active = std::move(it->second);
    streaming_.erase(it);
    subscriptions_.erase(std::remove(subscriptions_.begin(), subscriptions_.end(), active),
                         subscriptions_.end());
  }
  active->Close();
  NotifyListener();
}

std::vector<PubSubComponentInfo> PubSubBlock::Components() const {
  std::vector<PubSubComponentInfo> out;
  for (const auto& [name, component] : components_) out.push_back(component->info);
  return out;
}

std::vector<SubscriptionSpec> PubSubBlock::Subscriptions() const {
  std::lock_guard lock(mu_);
  std::vector<SubscriptionSpec> out;
  for (const auto& active : subscriptions_) out.push_back(active->spec);
  return out;
}

void PubSubBlock::SetSubscriptionsListener(
    std::function<void(std::vector<SubscriptionSpec>)> listener) {
  {
    std::lock_guard lock(mu_);
    listener_ = std::move(listener);
  }
  NotifyListener();
}

void PubSubBlock::NotifyListener() {
  std::lock_guard order(notify_mu_);
  std::function<void(std::vector<SubscriptionSpec>)> listener;
  {
    std::lock_guard lock(mu_);
    listener = listener_;
  }
  if (listener) listener(Subscriptions());
}

absl::Status PubSubBlock::Health() const {
  for (const auto& [name, component] : components_) {
    absl::Status s = component->pubsub->Health();
    if (!s.ok()) return MakeStatus(s.code(), StrCat("pubsub ", name, ": ", MessageOf(s)));
  }
  return absl::OkStatus();
}

int PubSubBlock::in_flight() const {
  std::lock_guard lock(counters_->mu);
  return counters_->in_flight;
}

void PubSubBlock::Shutdown(std::chrono::steady_clock::time_point deadline) {
  std::vector<std::shared_ptr<Active>> all;
  std::shared_ptr<Guard> guard;
  {
    std::lock_guard lock(mu_);
    shut_down_ = true;
    all = subscriptions_;
    guard = guard_;
  }
  if (guard) {
    // Waits for an app answer being processed; later answers are ignored.
    std::lock_guard lock(guard->mu);
    guard->block = nullptr;
  }
  for (const auto& active : all) active->Close();
  counters_->WaitIdle(deadline);
}

}  // namespace remora::runtime
