#include "remora/runtime/resiliency.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>

#include "remora/components/common/metadata.h"
#include "remora/components/common/strings.h"
#include "remora/runtime/log.h"

namespace remora::runtime {
namespace {

using std::chrono::milliseconds;

absl::Status FieldError(std::string_view where, std::string_view field, std::string_view problem) {
  return MakeStatus(absl::StatusCode::kInvalidArgument, StrCat(where, ": ", field, " ", problem));
}

// A Go duration ("5s", "1m30s", "250ms").
absl::Status ReadDuration(const YAML::Node& parent, const char* key, std::string_view where,
                          const std::string& field, milliseconds* out) {
  YAML::Node node = parent[key];
  if (!node || node.IsNull()) return absl::OkStatus();
  if (!node.IsScalar()) return FieldError(where, field, "must be a duration (e.g. 5s, 500ms)");
  auto d = components::ParseGoDuration(node.Scalar());
  if (!d.ok() || d->count() < 0) {
    return FieldError(where, field,
                      StrCat("\"", node.Scalar(), "\" is not a duration (e.g. 5s, 500ms)"));
  }
  *out = *d;
  return absl::OkStatus();
}

absl::Status ParseRetry(const YAML::Node& node, std::string_view where, const std::string& field,
                        RetryPolicy* policy) {
  if (!node.IsMap()) return FieldError(where, field, "must be a mapping");
  for (const auto& entry : node) {
    const std::string& key = entry.first.Scalar();
    if (key != "policy" && key != "duration" && key != "initialInterval" && key != "maxInterval" &&
        key != "maxRetries" && key != "multiplier" && key != "randomizationFactor" &&
        key != "matching") {
      log::Warn(where, ": ", field, ".", key, " is not a retry policy field; ignored");
    }
  }
  if (YAML::Node kind = node["policy"]; kind && !kind.IsNull()) {
    if (!kind.IsScalar()) return FieldError(where, field + ".policy", "must be a string");
    if (kind.Scalar() == "constant" || kind.Scalar().empty()) {
      policy->kind = RetryPolicy::Kind::kConstant;
    } else if (kind.Scalar() == "exponential") {
      policy->kind = RetryPolicy::Kind::kExponential;
    } else {
      return FieldError(where, field + ".policy",
                        StrCat("must be constant or exponential, not \"", kind.Scalar(), "\""));
    }
  }
  if (auto s = ReadDuration(node, "duration", where, field + ".duration", &policy->duration);
      !s.ok()) {
    return s;
  }
  if (auto s = ReadDuration(node, "initialInterval", where, field + ".initialInterval",
                            &policy->initial_interval);
      !s.ok()) {
    return s;
  }
  if (auto s =
          ReadDuration(node, "maxInterval", where, field + ".maxInterval", &policy->max_interval);
      !s.ok()) {
    return s;
  }
  if (YAML::Node retries = node["maxRetries"]; retries && !retries.IsNull()) {
    int value = 0;
    if (!retries.IsScalar() || !YAML::convert<int>::decode(retries, value) || value < -1) {
      return FieldError(where, field + ".maxRetries", "must be an integer, -1 for no limit");
    }
    policy->max_retries = value;
  }
  for (auto [key, target] : {std::pair{"multiplier", &policy->multiplier},
                             std::pair{"randomizationFactor", &policy->randomization}}) {
    YAML::Node value = node[key];
    if (!value || value.IsNull()) continue;
    if (!value.IsScalar() || !YAML::convert<double>::decode(value, *target) || *target < 0) {
      return FieldError(where, StrCat(field, ".", key), "must be a non-negative number");
    }
  }
  return absl::OkStatus();
}

absl::Status ParseComponentTargets(const YAML::Node& node, std::string_view where,
                                   ResiliencySpec* out) {
  if (!node.IsMap()) return FieldError(where, "spec.targets.components", "must be a mapping");
  for (const auto& entry : node) {
    const std::string& name = entry.first.Scalar();
    std::string field = StrCat("spec.targets.components.", name);
    const YAML::Node& target = entry.second;
    if (target.IsNull()) continue;
    if (!target.IsMap()) return FieldError(where, field, "must be a mapping");
    ResiliencySpec::ComponentTarget parsed;
    for (auto [direction, policy] : {std::pair{"inbound", &parsed.inbound_retry},
                                     std::pair{"outbound", &parsed.outbound_retry}}) {
      YAML::Node d = target[direction];
      if (!d || d.IsNull()) continue;
      if (!d.IsMap()) return FieldError(where, StrCat(field, ".", direction), "must be a mapping");
      YAML::Node retry = d["retry"];
      if (!retry || retry.IsNull()) continue;
      if (!retry.IsScalar()) {
        return FieldError(where, StrCat(field, ".", direction, ".retry"),
                          "must name a retry policy");
      }
      *policy = retry.Scalar();
    }
    out->components[name] = std::move(parsed);
  }
  return absl::OkStatus();
}

const RetryPolicy* FindPolicy(const std::vector<ResiliencySpec>& specs, std::string_view name) {
  for (const ResiliencySpec& spec : specs) {
    auto it = spec.retries.find(std::string(name));
    if (it != spec.retries.end()) return &it->second;
  }
  return nullptr;
}

template <typename Policy>
const Policy* FindIn(const std::vector<ResiliencySpec>& specs,
                     std::map<std::string, Policy> ResiliencySpec::*member, std::string_view name) {
  for (const ResiliencySpec& spec : specs) {
    auto it = (spec.*member).find(std::string(name));
    if (it != (spec.*member).end()) return &it->second;
  }
  return nullptr;
}

absl::Status ParseCircuitBreaker(const YAML::Node& node, std::string_view where,
                                 const std::string& field, CircuitBreakerPolicy* policy) {
  if (!node.IsMap()) return FieldError(where, field, "must be a mapping");
  for (const auto& entry : node) {
    const std::string& key = entry.first.Scalar();
    if (key != "maxRequests" && key != "interval" && key != "timeout" && key != "trip") {
      log::Warn(where, ": ", field, ".", key, " is not a circuit breaker field; ignored");
    }
  }
  if (YAML::Node max = node["maxRequests"]; max && !max.IsNull()) {
    int value = 0;
    if (!max.IsScalar() || !YAML::convert<int>::decode(max, value) || value < 0) {
      return FieldError(where, field + ".maxRequests", "must be a non-negative integer");
    }
    // gobreaker lets one request through when maxRequests is 0.
    policy->max_requests = std::max(1, value);
  }
  if (auto s = ReadDuration(node, "interval", where, field + ".interval", &policy->interval);
      !s.ok()) {
    return s;
  }
  if (auto s = ReadDuration(node, "timeout", where, field + ".timeout", &policy->timeout);
      !s.ok()) {
    return s;
  }
  if (YAML::Node trip = node["trip"]; trip && !trip.IsNull()) {
    if (!trip.IsScalar()) return FieldError(where, field + ".trip", "must be an expression");
    if (auto s = ParseTripCondition(trip.Scalar(), &policy->trip); !s.ok()) {
      return FieldError(where, field + ".trip", MessageOf(s));
    }
  }
  return absl::OkStatus();
}

absl::Status ParseAppTargets(const YAML::Node& node, std::string_view where, ResiliencySpec* out) {
  if (!node.IsMap()) return FieldError(where, "spec.targets.apps", "must be a mapping");
  for (const auto& entry : node) {
    const std::string& app = entry.first.Scalar();
    std::string field = StrCat("spec.targets.apps.", app);
    const YAML::Node& target = entry.second;
    if (target.IsNull()) continue;
    if (!target.IsMap()) return FieldError(where, field, "must be a mapping");
    ResiliencySpec::AppTarget parsed;
    for (const auto& item : target) {
      const std::string& key = item.first.Scalar();
      std::string* name = key == "timeout"          ? &parsed.timeout
                          : key == "retry"          ? &parsed.retry
                          : key == "circuitBreaker" ? &parsed.circuit_breaker
                                                    : nullptr;
      if (name == nullptr) {
        if (key != "circuitBreakerCacheSize") {
          log::Warn(where, ": ", field, ".", key, " is not an app target field; ignored");
        }
        continue;
      }
      if (item.second.IsNull()) continue;
      if (!item.second.IsScalar()) {
        return FieldError(where, StrCat(field, ".", key), "must name a policy");
      }
      *name = item.second.Scalar();
    }
    out->apps[app] = std::move(parsed);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseTripCondition(std::string_view text, TripCondition* out) {
  static constexpr std::pair<std::string_view, TripCondition::Count> kCounts[] = {
      {"consecutiveFailures", TripCondition::Count::kConsecutiveFailures},
      {"consecutiveSuccesses", TripCondition::Count::kConsecutiveSuccesses},
      {"requests", TripCondition::Count::kRequests},
      {"totalFailures", TripCondition::Count::kTotalFailures},
      {"totalSuccesses", TripCondition::Count::kTotalSuccesses},
  };
  // Longest operators first, so ">=" is not read as ">".
  static constexpr std::pair<std::string_view, TripCondition::Op> kOps[] = {
      {">=", TripCondition::Op::kGe}, {"<=", TripCondition::Op::kLe},
      {"==", TripCondition::Op::kEq}, {"!=", TripCondition::Op::kNe},
      {">", TripCondition::Op::kGt},  {"<", TripCondition::Op::kLt},
  };
  auto unsupported = [&](std::string_view why) {
    return MakeStatus(
        absl::StatusCode::kInvalidArgument,
        StrCat("\"", text, "\" is not a supported trip expression (", why,
               "); use comparisons like `consecutiveFailures > 5` joined by && or ||, on "
               "consecutiveFailures, consecutiveSuccesses, requests, totalFailures or "
               "totalSuccesses"));
  };
  auto trim = [](std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
  };
  TripCondition parsed;
  parsed.text = std::string(trim(text));
  parsed.comparisons.clear();
  bool has_and = text.find("&&") != std::string_view::npos;
  bool has_or = text.find("||") != std::string_view::npos;
  if (has_and && has_or) return unsupported("&& and || mixed");
  parsed.any = has_or;
  std::string_view rest = text;
  std::string_view joiner = has_or ? "||" : "&&";
  while (true) {
    size_t end = rest.find(joiner);
    std::string_view part = trim(rest.substr(0, end));
    // Parentheses around a comparison are fine; anything else CEL has is not.
    while (part.size() >= 2 && part.front() == '(' && part.back() == ')') {
      part = trim(part.substr(1, part.size() - 2));
    }
    if (part.empty()) return unsupported("empty comparison");
    TripCondition::Comparison comparison;
    size_t name_end = 0;
    while (name_end < part.size() && std::isalpha(static_cast<unsigned char>(part[name_end]))) {
      ++name_end;
    }
    std::string_view name = part.substr(0, name_end);
    bool known = false;
    for (const auto& [count_name, count] : kCounts) {
      if (name == count_name) {
        comparison.count = count;
        known = true;
      }
    }
    if (!known) return unsupported(StrCat("unknown count \"", name, "\""));
    std::string_view after = trim(part.substr(name_end));
    bool op_found = false;
    for (const auto& [op_text, op] : kOps) {
      if (after.substr(0, op_text.size()) == op_text) {
        comparison.op = op;
        after = trim(after.substr(op_text.size()));
        op_found = true;
        break;
      }
    }
    if (!op_found) return unsupported("expected a comparison operator");
    if (after.empty() || after.find_first_not_of("0123456789") != std::string_view::npos ||
        after.size() > 18) {
      return unsupported(StrCat("\"", after, "\" is not a non-negative integer"));
    }
    comparison.value = std::stoll(std::string(after));
    parsed.comparisons.push_back(comparison);
    if (end == std::string_view::npos) break;
    rest = rest.substr(end + joiner.size());
  }
  *out = std::move(parsed);
  return absl::OkStatus();
}

milliseconds RetryPolicy::Delay(int retry, double random01) const {
  if (kind == Kind::kConstant) return duration;
  double interval = static_cast<double>(initial_interval.count()) *
                    std::pow(multiplier, static_cast<double>(std::max(0, retry)));
  interval = std::min(interval, static_cast<double>(max_interval.count()));
  // Jitter as Go's backoff library draws it: uniformly within ±randomization of the interval.
  double delta = randomization * interval;
  double jittered = interval - delta + random01 * 2 * delta;
  return milliseconds(static_cast<int64_t>(std::max(0.0, jittered)));
}

absl::Status ParseResiliencyDocument(const YAML::Node& doc, std::string_view where,
                                     ResiliencySpec* out) {
  out->source = std::string(where);
  if (YAML::Node meta = doc["metadata"]; meta && meta.IsMap()) {
    if (YAML::Node name = meta["name"]; name && name.IsScalar()) out->name = name.Scalar();
    if (YAML::Node ns = meta["namespace"]; ns && ns.IsScalar()) out->namespace_ = ns.Scalar();
  }
  if (YAML::Node scopes = doc["scopes"]; scopes && !scopes.IsNull()) {
    if (!scopes.IsSequence()) return FieldError(where, "scopes", "must be a list of app ids");
    for (const YAML::Node& scope : scopes) {
      if (!scope.IsScalar()) return FieldError(where, "scopes", "must be a list of app ids");
      out->scopes.push_back(scope.Scalar());
    }
  }
  YAML::Node spec = doc["spec"];
  if (!spec || spec.IsNull()) return absl::OkStatus();
  if (!spec.IsMap()) return FieldError(where, "spec", "must be a mapping");
  if (YAML::Node policies = spec["policies"]; policies && !policies.IsNull()) {
    if (!policies.IsMap()) return FieldError(where, "spec.policies", "must be a mapping");
    if (YAML::Node retries = policies["retries"]; retries && !retries.IsNull()) {
      if (!retries.IsMap()) return FieldError(where, "spec.policies.retries", "must be a mapping");
      for (const auto& entry : retries) {
        RetryPolicy policy;
        policy.name = entry.first.Scalar();
        if (auto s = ParseRetry(entry.second, where, StrCat("spec.policies.retries.", policy.name),
                                &policy);
            !s.ok()) {
          return s;
        }
        out->retries[policy.name] = std::move(policy);
      }
    }
    if (YAML::Node timeouts = policies["timeouts"]; timeouts && !timeouts.IsNull()) {
      if (!timeouts.IsMap())
        return FieldError(where, "spec.policies.timeouts", "must be a mapping");
      for (const auto& entry : timeouts) {
        std::string name = entry.first.Scalar();
        std::string field = StrCat("spec.policies.timeouts.", name);
        if (!entry.second.IsScalar()) return FieldError(where, field, "must be a duration");
        auto d = components::ParseGoDuration(entry.second.Scalar());
        if (!d.ok() || d->count() <= 0) {
          return FieldError(where, field,
                            StrCat("\"", entry.second.Scalar(),
                                   "\" is not a positive duration (e.g. 5s, 500ms)"));
        }
        out->timeouts[name] = *d;
      }
    }
    if (YAML::Node breakers = policies["circuitBreakers"]; breakers && !breakers.IsNull()) {
      if (!breakers.IsMap()) {
        return FieldError(where, "spec.policies.circuitBreakers", "must be a mapping");
      }
      for (const auto& entry : breakers) {
        CircuitBreakerPolicy policy;
        policy.name = entry.first.Scalar();
        if (auto s =
                ParseCircuitBreaker(entry.second, where,
                                    StrCat("spec.policies.circuitBreakers.", policy.name), &policy);
            !s.ok()) {
          return s;
        }
        out->circuit_breakers[policy.name] = std::move(policy);
      }
    }
  }
  if (YAML::Node targets = spec["targets"]; targets && !targets.IsNull()) {
    if (!targets.IsMap()) return FieldError(where, "spec.targets", "must be a mapping");
    if (YAML::Node components = targets["components"]; components && !components.IsNull()) {
      if (auto s = ParseComponentTargets(components, where, out); !s.ok()) return s;
    }
    if (YAML::Node apps = targets["apps"]; apps && !apps.IsNull()) {
      if (auto s = ParseAppTargets(apps, where, out); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateResiliencies(const std::vector<ResiliencySpec>& specs) {
  for (const ResiliencySpec& spec : specs) {
    for (const auto& [component, target] : spec.components) {
      for (const auto& [direction, name] : {std::pair{"inbound", &target.inbound_retry},
                                            std::pair{"outbound", &target.outbound_retry}}) {
        if (name->empty() || FindPolicy(specs, *name) != nullptr) continue;
        return FieldError(
            spec.source, StrCat("spec.targets.components.", component, ".", direction, ".retry"),
            StrCat("names retry policy \"", *name, "\", which no Resiliency resource defines"));
      }
    }
    for (const auto& [app, target] : spec.apps) {
      std::string field = StrCat("spec.targets.apps.", app, ".");
      if (!target.retry.empty() && FindPolicy(specs, target.retry) == nullptr) {
        return FieldError(spec.source, field + "retry",
                          StrCat("names retry policy \"", target.retry,
                                 "\", which no Resiliency resource defines"));
      }
      if (!target.timeout.empty() &&
          FindIn(specs, &ResiliencySpec::timeouts, target.timeout) == nullptr) {
        return FieldError(spec.source, field + "timeout",
                          StrCat("names timeout policy \"", target.timeout,
                                 "\", which no Resiliency resource defines"));
      }
      if (!target.circuit_breaker.empty() &&
          FindIn(specs, &ResiliencySpec::circuit_breakers, target.circuit_breaker) == nullptr) {
        return FieldError(spec.source, field + "circuitBreaker",
                          StrCat("names circuit breaker policy \"", target.circuit_breaker,
                                 "\", which no Resiliency resource defines"));
      }
    }
  }
  return absl::OkStatus();
}

std::optional<RetryPolicy> InboundRetryPolicy(const std::vector<ResiliencySpec>& specs,
                                              std::string_view name, std::string_view kind) {
  for (const ResiliencySpec& spec : specs) {
    auto it = spec.components.find(std::string(name));
    if (it == spec.components.end() || it->second.inbound_retry.empty()) continue;
    if (const RetryPolicy* policy = FindPolicy(specs, it->second.inbound_retry)) return *policy;
  }
  std::string kind_title(kind);
  if (!kind_title.empty()) kind_title[0] = static_cast<char>(std::toupper(kind_title[0]));
  for (const std::string& fallback :
       {StrCat("Default", kind_title, "ComponentInboundRetryPolicy"),
        std::string("DefaultComponentInboundRetryPolicy"),
        std::string("DefaultComponentRetryPolicy"), std::string("DefaultRetryPolicy")}) {
    if (const RetryPolicy* policy = FindPolicy(specs, fallback)) return *policy;
  }
  return std::nullopt;
}

TargetPolicy AppPolicy(const std::vector<ResiliencySpec>& specs, std::string_view app_id) {
  const ResiliencySpec::AppTarget* target = nullptr;
  for (const ResiliencySpec& spec : specs) {
    auto it = spec.apps.find(std::string(app_id));
    if (it != spec.apps.end()) {
      target = &it->second;
      break;
    }
  }
  // Dapr's lookup: the target's own policy name, then the app default, then the global default.
  auto pick = [&](const std::string ResiliencySpec::AppTarget::*member, std::string_view kind,
                  auto&& find) -> decltype(find(std::string_view())) {
    if (target != nullptr && !(target->*member).empty()) {
      if (auto found = find(target->*member)) return found;
    }
    if (auto found = find(StrCat("DefaultApp", kind, "Policy"))) return found;
    return find(StrCat("Default", kind, "Policy"));
  };
  TargetPolicy policy;
  if (const milliseconds* timeout = pick(
          &ResiliencySpec::AppTarget::timeout, "Timeout",
          [&](std::string_view name) { return FindIn(specs, &ResiliencySpec::timeouts, name); })) {
    policy.timeout = *timeout;
  }
  if (const RetryPolicy* retry =
          pick(&ResiliencySpec::AppTarget::retry, "Retry",
               [&](std::string_view name) { return FindPolicy(specs, name); })) {
    policy.retry = *retry;
  } else {
    policy.builtin_retry = true;
    if (const RetryPolicy* builtin = FindPolicy(specs, "DaprBuiltInServiceRetries")) {
      policy.retry = *builtin;
    } else {
      policy.retry.name = "DaprBuiltInServiceRetries";
      policy.retry.kind = RetryPolicy::Kind::kConstant;
      policy.retry.duration = milliseconds(1000);
      policy.retry.max_retries = 3;
    }
  }
  if (const CircuitBreakerPolicy* breaker =
          pick(&ResiliencySpec::AppTarget::circuit_breaker, "CircuitBreaker",
               [&](std::string_view name) {
                 return FindIn(specs, &ResiliencySpec::circuit_breakers, name);
               })) {
    policy.circuit_breaker = *breaker;
    policy.breaker_key = StrCat("app:", app_id, "/", breaker->name);
  }
  return policy;
}

}  // namespace remora::runtime
