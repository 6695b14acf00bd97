#include "remora/runtime/resiliency.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
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

}  // namespace

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
  }
  if (YAML::Node targets = spec["targets"]; targets && !targets.IsNull()) {
    if (!targets.IsMap()) return FieldError(where, "spec.targets", "must be a mapping");
    if (YAML::Node components = targets["components"]; components && !components.IsNull()) {
      if (auto s = ParseComponentTargets(components, where, out); !s.ok()) return s;
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

}  // namespace remora::runtime
