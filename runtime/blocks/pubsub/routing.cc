#include "blocks/pubsub/routing.h"

#include <cctype>
#include <charconv>
#include <optional>
#include <variant>

#include "remora/components/common/strings.h"

namespace remora::runtime::pubsub {

using nlohmann::json;

struct Expression::Node {
  enum class Kind { kOr, kAnd, kNot, kCompare, kPath, kLiteral };
  Kind kind;
  std::string op;                 // for kCompare
  std::vector<std::string> path;  // for kPath, after "event"
  json literal;                   // for kLiteral
  std::shared_ptr<const Node> lhs, rhs;
};

namespace {

using Node = Expression::Node;
using NodePtr = std::shared_ptr<const Node>;

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  absl::StatusOr<NodePtr> Parse() {
    auto node = ParseOr();
    if (!node.ok()) return node;
    SkipSpace();
    if (pos_ != text_.size()) return Error("unexpected text");
    return node;
  }

 private:
  absl::Status Error(std::string_view what) const {
    return MakeStatus(absl::StatusCode::kInvalidArgument,
                      StrCat("routing rule '", text_, "': ", what, " at position ", pos_,
                             " (supported: event.<field> paths, literals, == != < <= > >=, && || "
                             "! and parentheses)"));
  }
  void SkipSpace() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  bool Eat(std::string_view token) {
    SkipSpace();
    if (text_.substr(pos_, token.size()) == token) {
      pos_ += token.size();
      return true;
    }
    return false;
  }
  static NodePtr Binary(Node::Kind kind, NodePtr lhs, NodePtr rhs, std::string op = "") {
    auto n = std::make_shared<Node>();
    n->kind = kind;
    n->lhs = std::move(lhs);
    n->rhs = std::move(rhs);
    n->op = std::move(op);
    return n;
  }

  absl::StatusOr<NodePtr> ParseOr() {
    auto lhs = ParseAnd();
    if (!lhs.ok()) return lhs;
    NodePtr node = *lhs;
    while (Eat("||")) {
      auto rhs = ParseAnd();
      if (!rhs.ok()) return rhs;
      node = Binary(Node::Kind::kOr, node, *rhs);
    }
    return node;
  }
  absl::StatusOr<NodePtr> ParseAnd() {
    auto lhs = ParseUnary();
    if (!lhs.ok()) return lhs;
    NodePtr node = *lhs;
    while (Eat("&&")) {
      auto rhs = ParseUnary();
      if (!rhs.ok()) return rhs;
      node = Binary(Node::Kind::kAnd, node, *rhs);
    }
    return node;
  }
  absl::StatusOr<NodePtr> ParseUnary() {
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == '!' && text_.substr(pos_, 2) != "!=") {
      ++pos_;
      auto inner = ParseUnary();
      if (!inner.ok()) return inner;
      return Binary(Node::Kind::kNot, *inner, nullptr);
    }
    if (Eat("(")) {
      auto inner = ParseOr();
      if (!inner.ok()) return inner;
      if (!Eat(")")) return Error("expected ')'");
      return inner;
    }
    return ParseCompare();
  }
  absl::StatusOr<NodePtr> ParseCompare() {
    auto lhs = ParseOperand();
    if (!lhs.ok()) return lhs;
    for (std::string_view op : {"==", "!=", "<=", ">=", "<", ">"}) {
      if (Eat(op)) {
        auto rhs = ParseOperand();
        if (!rhs.ok()) return rhs;
        return Binary(Node::Kind::kCompare, *lhs, *rhs, std::string(op));
      }
    }
    return lhs;
  }
  absl::StatusOr<NodePtr> ParseOperand() {
    SkipSpace();
    if (pos_ >= text_.size()) return Error("expected a value");
    auto node = std::make_shared<Node>();
    char c = text_[pos_];
    if (c == '"' || c == '\'') {
      node->kind = Node::Kind::kLiteral;
      std::string value;
      ++pos_;
      while (pos_ < text_.size() && text_[pos_] != c) {
        if (text_[pos_] == '\\' && pos_ + 1 < text_.size()) ++pos_;
        value.push_back(text_[pos_++]);
      }
      if (pos_ >= text_.size()) return Error("unterminated string");
      ++pos_;
      node->literal = value;
      return NodePtr(node);
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '-') {
      size_t start = pos_++;
      while (pos_ < text_.size() &&
             (std::isdigit(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '.' ||
              text_[pos_] == 'e' || text_[pos_] == 'E')) {
        ++pos_;
      }
      json number = json::parse(text_.substr(start, pos_ - start), nullptr, false);
      if (number.is_discarded() || !number.is_number()) return Error("malformed number");
      node->kind = Node::Kind::kLiteral;
      node->literal = number;
      return NodePtr(node);
    }
    std::string ident = Identifier();
    if (ident.empty()) return Error("expected a value");
    if (ident == "true" || ident == "false" || ident == "null") {
      node->kind = Node::Kind::kLiteral;
      node->literal = ident == "null" ? json(nullptr) : json(ident == "true");
      return NodePtr(node);
    }
    if (ident != "event") return Error(StrCat("unknown name '", ident, "' (only 'event')"));
    node->kind = Node::Kind::kPath;
    while (pos_ < text_.size() && text_[pos_] == '.') {
      ++pos_;
      std::string field = Identifier();
      if (field.empty()) return Error("expected a field name after '.'");
      node->path.push_back(std::move(field));
    }
    if (node->path.empty()) return Error("expected event.<field>");
    SkipSpace();
    if (pos_ < text_.size() && (text_[pos_] == '(' || text_[pos_] == '[')) {
      return Error("function calls and indexing are not supported");
    }
    return NodePtr(node);
  }
  std::string Identifier() {
    size_t start = pos_;
    while (pos_ < text_.size() &&
           (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_')) {
      ++pos_;
    }
    return std::string(text_.substr(start, pos_ - start));
  }

  std::string_view text_;
  size_t pos_ = 0;
};

// A path's value: data_base64 events have no JSON `data` to look into.
const json* Resolve(const std::vector<std::string>& path, const json& event) {
  const json* cur = &event;
  for (const std::string& field : path) {
    if (!cur->is_object()) return nullptr;
    auto it = cur->find(field);
    if (it == cur->end()) return nullptr;
    cur = &*it;
  }
  return cur;
}

std::optional<json> Value(const Node& node, const json& event) {
  if (node.kind == Node::Kind::kLiteral) return node.literal;
  if (node.kind == Node::Kind::kPath) {
    const json* v = Resolve(node.path, event);
    if (v == nullptr) return std::nullopt;
    return *v;
  }
  return std::nullopt;
}

bool Compare(const std::string& op, const json& a, const json& b) {
  if (a.is_number() && b.is_number()) {
    double x = a.get<double>(), y = b.get<double>();
    if (op == "==") return x == y;
    if (op == "!=") return x != y;
    if (op == "<") return x < y;
    if (op == "<=") return x <= y;
    if (op == ">") return x > y;
    return x >= y;
  }
  if (op == "==") return a == b;
  if (op == "!=") return a != b;
  if (a.is_string() && b.is_string()) {
    const auto& x = a.get_ref<const std::string&>();
    const auto& y = b.get_ref<const std::string&>();
    if (op == "<") return x < y;
    if (op == "<=") return x <= y;
    if (op == ">") return x > y;
    return x >= y;
  }
  return false;  // ordering across types never holds
}

// CEL's three values: true, false, or an error (nullopt), e.g. a field the event lacks. As in
// CEL, `error || true` is true and `error && false` is false; anything else stays an error, and a
// rule whose result is an error does not match (what daprd does with a CEL evaluation error).
std::optional<bool> Eval(const Node& node, const json& event) {
  switch (node.kind) {
    case Node::Kind::kOr: {
      auto a = Eval(*node.lhs, event);
      if (a == true) return true;
      auto b = Eval(*node.rhs, event);
      if (b == true) return true;
      if (!a || !b) return std::nullopt;
      return false;
    }
    case Node::Kind::kAnd: {
      auto a = Eval(*node.lhs, event);
      if (a == false) return false;
      auto b = Eval(*node.rhs, event);
      if (b == false) return false;
      if (!a || !b) return std::nullopt;
      return true;
    }
    case Node::Kind::kNot: {
      auto a = Eval(*node.lhs, event);
      if (!a) return std::nullopt;
      return !*a;
    }
    case Node::Kind::kCompare: {
      auto a = Value(*node.lhs, event);
      auto b = Value(*node.rhs, event);
      if (!a || !b) return std::nullopt;
      return Compare(node.op, *a, *b);
    }
    case Node::Kind::kPath:
    case Node::Kind::kLiteral: {
      auto v = Value(node, event);
      if (!v || !v->is_boolean()) return std::nullopt;
      return v->get<bool>();
    }
  }
  return std::nullopt;
}

}  // namespace

absl::StatusOr<Expression> Expression::Parse(std::string_view text) {
  Expression e;
  e.text_ = std::string(text);
  if (text.find_first_not_of(" \t\n") == std::string_view::npos) return e;  // default route
  auto root = Parser(text).Parse();
  if (!root.ok()) return root.status();
  e.root_ = *std::move(root);
  return e;
}

bool Expression::Matches(const json& event) const {
  return root_ == nullptr || Eval(*root_, event) == true;
}

const Rule* SelectRoute(const std::vector<Rule>& rules, const json& event) {
  for (const Rule& rule : rules) {
    if (rule.match.Matches(event)) return &rule;
  }
  return nullptr;
}

}  // namespace remora::runtime::pubsub
