// A hand-written recursive-descent parser: the language is a dozen tokens, smaller than any parser library's setup.
#include "model/filter.h"

#include <cctype>
#include <vector>

namespace ferry {

struct Filter::Node {
  enum class Kind { kEquals, kNotEquals, kHas, kHasPrefix, kNot, kAnd, kOr } kind;
  std::string key;
  std::string value;
  std::vector<std::shared_ptr<Node const>> children;
};

namespace {

using NodePtr = std::shared_ptr<Filter::Node const>;
using Kind = Filter::Node::Kind;

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  StatusOr<NodePtr> ParseAll() {
    auto node = Expression();
    if (!node.ok()) return node;
    SkipSpace();
    if (pos_ != text_.size()) return Error("unexpected input");
    return node;
  }

 private:
  // expression := term {AND term} | term {OR term}; one operator per level unless parenthesized.
  StatusOr<NodePtr> Expression() {
    auto first = Term();
    if (!first.ok()) return first;
    std::vector<NodePtr> items{*first};
    std::string op;
    while (true) {
      std::size_t at = pos_;
      std::string word = PeekWord();
      if (word != "AND" && word != "OR") break;
      if (!op.empty() && word != op) {
        pos_ = at;
        return Error("AND and OR must be separated by parentheses");
      }
      op = word;
      pos_ += word.size();
      auto next = Term();
      if (!next.ok()) return next;
      items.push_back(*next);
    }
    if (items.size() == 1) return items.front();
    return NodePtr(new Filter::Node{op == "AND" ? Kind::kAnd : Kind::kOr, {}, {}, std::move(items)});
  }

  // term := NOT term | "-" term | "(" expression ")" | predicate
  StatusOr<NodePtr> Term() {
    SkipSpace();
    if (PeekWord() == "NOT") {
      pos_ += 3;
      return Negate();
    }
    if (Consume('-')) return Negate();
    if (Consume('(')) {
      auto inner = Expression();
      if (!inner.ok()) return inner;
      SkipSpace();
      if (!Consume(')')) return Error("expected \")\"");
      return inner;
    }
    if (PeekWord() == "hasPrefix") {
      pos_ += 9;
      SkipSpace();
      if (!Consume('(')) return Error("expected \"(\" after hasPrefix");
      auto key = AttributeKey();
      if (!key.ok()) return key.status();
      SkipSpace();
      if (!Consume(',')) return Error("expected \",\"");
      auto prefix = StringLiteral();
      if (!prefix.ok()) return prefix.status();
      SkipSpace();
      if (!Consume(')')) return Error("expected \")\"");
      return NodePtr(new Filter::Node{Kind::kHasPrefix, *key, *prefix, {}});
    }
    auto key = AttributeKeyOrHas();
    if (!key.ok()) return key.status();
    if (key->second) return NodePtr(new Filter::Node{Kind::kHas, key->first, {}, {}});
    SkipSpace();
    Kind kind;
    if (Consume('=')) {
      kind = Kind::kEquals;
    } else if (text_.substr(pos_, 2) == "!=") {
      pos_ += 2;
      kind = Kind::kNotEquals;
    } else {
      return Error("expected \"=\", \"!=\" or \":\"");
    }
    auto value = StringLiteral();
    if (!value.ok()) return value.status();
    return NodePtr(new Filter::Node{kind, key->first, *value, {}});
  }

  StatusOr<NodePtr> Negate() {
    auto inner = Term();
    if (!inner.ok()) return inner;
    return NodePtr(new Filter::Node{Kind::kNot, {}, {}, {*inner}});
  }

  // "attributes.KEY" (false) or "attributes:KEY" (true).
  StatusOr<std::pair<std::string, bool>> AttributeKeyOrHas() {
    SkipSpace();
    if (text_.substr(pos_, 10) != "attributes") return Error("expected \"attributes\"");
    pos_ += 10;
    bool has = false;
    if (Consume(':')) {
      has = true;
    } else if (!Consume('.')) {
      return Error("expected \".\" or \":\" after attributes");
    }
    auto key = Key();
    if (!key.ok()) return key.status();
    return std::pair{*key, has};
  }

  StatusOr<std::string> AttributeKey() {
    auto key = AttributeKeyOrHas();
    if (!key.ok()) return key.status();
    if (key->second) return Error("expected \"attributes.KEY\"");
    return key->first;
  }

  StatusOr<std::string> Key() {
    if (pos_ < text_.size() && text_[pos_] == '"') return StringLiteral();
    std::size_t start = pos_;
    while (pos_ < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_' ||
                                   text_[pos_] == '-')) {
      ++pos_;
    }
    if (pos_ == start) return Error("expected an attribute key");
    return std::string(text_.substr(start, pos_ - start));
  }

  StatusOr<std::string> StringLiteral() {
    SkipSpace();
    if (!Consume('"')) return Error("expected a string in double quotes");
    std::string out;
    while (pos_ < text_.size() && text_[pos_] != '"') {
      char c = text_[pos_++];
      if (c == '\\' && pos_ < text_.size()) {
        char e = text_[pos_++];
        switch (e) {
          case 'n': out += '\n'; break;
          case 't': out += '\t'; break;
          case 'r': out += '\r'; break;
          default: out += e;  // \" \\ and any other escaped character stand for themselves
        }
        continue;
      }
      out += c;
    }
    if (!Consume('"')) return Error("unterminated string");
    return out;
  }

  std::string PeekWord() {
    SkipSpace();
    std::size_t end = pos_;
    while (end < text_.size() && std::isalpha(static_cast<unsigned char>(text_[end]))) ++end;
    return std::string(text_.substr(pos_, end - pos_));
  }

  bool Consume(char c) {
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  void SkipSpace() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }

  Status Error(std::string const& what) const {
    return InvalidArgumentError("Invalid filter expression: " + what + " at position " + std::to_string(pos_ + 1) +
                                " in \"" + std::string(text_) + "\"");
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

bool Evaluate(Filter::Node const& node, Attributes const& attributes) {
  switch (node.kind) {
    case Kind::kEquals: {
      auto it = attributes.find(node.key);
      return it != attributes.end() && it->second == node.value;
    }
    case Kind::kNotEquals: {
      // As Pub/Sub: a message without the attribute does not match `!=` either.
      auto it = attributes.find(node.key);
      return it != attributes.end() && it->second != node.value;
    }
    case Kind::kHas:
      return attributes.count(node.key) > 0;
    case Kind::kHasPrefix: {
      auto it = attributes.find(node.key);
      return it != attributes.end() && it->second.rfind(node.value, 0) == 0;
    }
    case Kind::kNot:
      return !Evaluate(*node.children[0], attributes);
    case Kind::kAnd:
      for (auto const& c : node.children) {
        if (!Evaluate(*c, attributes)) return false;
      }
      return true;
    case Kind::kOr:
      for (auto const& c : node.children) {
        if (Evaluate(*c, attributes)) return true;
      }
      return false;
  }
  return false;
}

}  // namespace

StatusOr<Filter> Filter::Parse(std::string_view text) {
  Filter filter;
  bool blank = text.find_first_not_of(" \t\r\n") == std::string_view::npos;
  if (blank) return filter;
  if (text.size() > kMaxFilterBytes) {
    return InvalidArgumentError("Invalid filter expression: longer than " + std::to_string(kMaxFilterBytes) +
                                " bytes");
  }
  auto root = Parser(text).ParseAll();
  if (!root.ok()) return root.status();
  filter.root_ = *std::move(root);
  return filter;
}

bool Filter::Matches(Attributes const& attributes) const {
  return root_ == nullptr || Evaluate(*root_, attributes);
}

}  // namespace ferry
