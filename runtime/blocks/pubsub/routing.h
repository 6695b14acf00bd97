#pragma once

// Subscription routing rules: the subset of CEL that Dapr users write in `routes.rules[].match`.
//
//   expr    := or
//   or      := and ("||" and)*
//   and     := unary ("&&" unary)*
//   unary   := "!" unary | primary
//   primary := "(" expr ")" | compare
//   compare := operand (("==" | "!=" | "<" | "<=" | ">" | ">=") operand)?
//   operand := path | string | number | true | false | null
//   path    := "event" ("." identifier)+        e.g. event.type, event.data.order.total
//
// Evaluation follows CEL: a path the event lacks is an error, `error || true` is true,
// `error && false` is false, and a rule that ends in an error does not match (as in daprd), so a
// rule about a field some events lack simply does not match them. Anything outside the
// subset (function calls, `in`, indexing, arithmetic) is a parse error naming the position,
// reported when the subscription loads.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace remora::runtime::pubsub {

class Expression {
 public:
  static absl::StatusOr<Expression> Parse(std::string_view text);
  bool Matches(const nlohmann::json& event) const;
  const std::string& text() const { return text_; }

  struct Node;

 private:
  std::string text_;
  std::shared_ptr<const Node> root_;
};

struct Rule {
  Expression match;  // empty text: the default route, always matches
  std::string path;
};

// The first rule whose expression matches, or null (the event is dropped, as daprd does).
const Rule* SelectRoute(const std::vector<Rule>& rules, const nlohmann::json& event);

}  // namespace remora::runtime::pubsub
