#include "model/log_filter.h"

#include <algorithm>
#include <cctype>

#include "common/time_util.h"

namespace ferry {

struct LogFilter::Node {
  enum class Kind { kAnd, kOr, kNot, kCompare } kind = Kind::kCompare;
  std::vector<std::unique_ptr<Node>> children;
  std::string field, op, value;
};

namespace {

using Node = LogFilter::Node;
constexpr std::size_t kMaxFilterBytes = 8 * 1024;
constexpr int kMaxDepth = 32;

// The filter's tokens: ( ) operators, quoted strings, words.
struct Token {
  enum class Kind { kOpen, kClose, kOp, kString, kWord, kEnd } kind;
  std::string text;
  std::size_t at = 0;
};

StatusOr<std::vector<Token>> Tokenize(std::string_view s) {
  std::vector<Token> out;
  std::size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (c == '(' || c == ')') {
      out.push_back({c == '(' ? Token::Kind::kOpen : Token::Kind::kClose, std::string(1, c), i++});
    } else if (c == '"') {
      std::string text;
      std::size_t start = i++;
      while (i < s.size() && s[i] != '"') {
        if (s[i] == '\\' && i + 1 < s.size()) ++i;
        text += s[i++];
      }
      if (i >= s.size()) return InvalidArgumentError("filter: unterminated string at " + std::to_string(start));
      ++i;
      out.push_back({Token::Kind::kString, std::move(text), start});
    } else if (c == '=' || c == ':' || c == '<' || c == '>' || (c == '!' && i + 1 < s.size() && s[i + 1] == '=')) {
      std::size_t start = i;
      std::string op(1, c);
      if ((c == '<' || c == '>' || c == '!') && i + 1 < s.size() && s[i + 1] == '=') op += '=';
      i += op.size();
      out.push_back({Token::Kind::kOp, op, start});
    } else if (c == '.') {
      out.push_back({Token::Kind::kWord, ".", i++});
    } else {
      std::size_t start = i;
      while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i])) && s[i] != '(' && s[i] != ')' &&
             s[i] != '"' && s[i] != '=' && s[i] != ':' && s[i] != '<' && s[i] != '>' && s[i] != '.' &&
             !(s[i] == '!' && i + 1 < s.size() && s[i + 1] == '=')) {
        ++i;
      }
      if (i == start) return InvalidArgumentError("filter: unexpected '" + std::string(1, c) + "' at " + std::to_string(i));
      out.push_back({Token::Kind::kWord, std::string(s.substr(start, i - start)), start});
    }
  }
  out.push_back({Token::Kind::kEnd, "", s.size()});
  return out;
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : t_(std::move(tokens)) {}

  StatusOr<std::unique_ptr<Node>> Parse() {
    if (Peek().kind == Token::Kind::kEnd) return std::unique_ptr<Node>();
    auto node = And(0);
    if (!node.ok()) return node;
    if (Peek().kind != Token::Kind::kEnd) return Error("unexpected \"" + Peek().text + "\"");
    return node;
  }

 private:
  Token const& Peek() const { return t_[pos_]; }
  Token const& Next() { return t_[pos_ < t_.size() - 1 ? pos_++ : pos_]; }
  bool IsWord(char const* w) const { return Peek().kind == Token::Kind::kWord && Peek().text == w; }
  Status Error(std::string const& what) const {
    return InvalidArgumentError("filter: " + what + " at " + std::to_string(Peek().at));
  }

  // As the Logging query language has it, OR binds tighter than AND (and than juxtaposition): "a OR b c" is
  // "(a OR b) AND c".
  StatusOr<std::unique_ptr<Node>> And(int depth) {
    auto first = Or(depth);
    if (!first.ok()) return first;
    auto node = std::make_unique<Node>();
    node->kind = Node::Kind::kAnd;
    node->children.push_back(*std::move(first));
    for (;;) {
      if (IsWord("AND")) {
        Next();
      } else if (Peek().kind == Token::Kind::kEnd || Peek().kind == Token::Kind::kClose) {
        break;
      }
      auto next = Or(depth);
      if (!next.ok()) return next;
      node->children.push_back(*std::move(next));
    }
    if (node->children.size() == 1) return std::move(node->children[0]);
    return node;
  }

  StatusOr<std::unique_ptr<Node>> Or(int depth) {
    auto first = Unary(depth);
    if (!first.ok()) return first;
    if (!IsWord("OR")) return first;
    auto node = std::make_unique<Node>();
    node->kind = Node::Kind::kOr;
    node->children.push_back(*std::move(first));
    while (IsWord("OR")) {
      Next();
      auto next = Unary(depth);
      if (!next.ok()) return next;
      node->children.push_back(*std::move(next));
    }
    return node;
  }

  StatusOr<std::unique_ptr<Node>> Unary(int depth) {
    if (depth > kMaxDepth) return Error("nested deeper than " + std::to_string(kMaxDepth));
    bool negate = false;
    if (IsWord("NOT")) {
      Next();
      negate = true;
    } else if (Peek().kind == Token::Kind::kWord && Peek().text.size() > 1 && Peek().text[0] == '-') {
      negate = true;  // -field=value: the minus is part of the first word
      t_[pos_].text.erase(0, 1);
    }
    StatusOr<std::unique_ptr<Node>> inner = Primary(depth);
    if (!inner.ok() || !negate) return inner;
    auto node = std::make_unique<Node>();
    node->kind = Node::Kind::kNot;
    node->children.push_back(*std::move(inner));
    return node;
  }

  StatusOr<std::unique_ptr<Node>> Primary(int depth) {
    if (Peek().kind == Token::Kind::kOpen) {
      Next();
      auto inner = And(depth + 1);
      if (!inner.ok()) return inner;
      if (Peek().kind != Token::Kind::kClose) return Error("expected \")\"");
      Next();
      return inner;
    }
    // FIELD: parts joined by dots, each a word or a quoted string.
    std::string field;
    for (;;) {
      Token const& part = Peek();
      if (part.kind != Token::Kind::kWord && part.kind != Token::Kind::kString) return Error("expected a field");
      if (part.text == ".") return Error("expected a field name");
      field += Next().text;
      if (Peek().kind == Token::Kind::kWord && Peek().text == ".") {
        Next();
        field += '.';
        continue;
      }
      break;
    }
    if (Peek().kind != Token::Kind::kOp) return Error("expected a comparison after \"" + field + "\"");
    std::string op = Next().text;
    // VALUE: a quoted string, or words and dots up to the next space-separated token.
    std::string value;
    if (Peek().kind == Token::Kind::kString) {
      value = Next().text;
    } else if (Peek().kind == Token::Kind::kWord) {
      value = Next().text;
      while (Peek().kind == Token::Kind::kWord && Peek().text == "." ) {
        value += Next().text;
        if (Peek().kind == Token::Kind::kWord && Peek().text != ".") value += Next().text;
      }
    } else {
      return Error("expected a value after \"" + field + op + "\"");
    }
    auto node = std::make_unique<Node>();
    node->field = std::move(field);
    node->op = std::move(op);
    node->value = std::move(value);
    return node;
  }

  std::vector<Token> t_;
  std::size_t pos_ = 0;
};

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// -1, 0 or 1; nullopt when the two cannot be ordered (an unknown severity, a time that does not parse).
std::optional<int> Compare(std::string const& field, std::string const& have, std::string const& want) {
  if (field == "severity") {
    int a = SeverityNumber(have), b = SeverityNumber(want);
    if (b < 0) {  // a number, as Logging also accepts
      try {
        b = std::stoi(want);
      } catch (...) {
        return std::nullopt;
      }
    }
    if (a < 0) return std::nullopt;
    return a < b ? -1 : a > b ? 1 : 0;
  }
  if (field == "timestamp" || field == "receiveTimestamp") {
    auto a = ParseRfc3339(have), b = ParseRfc3339(want);
    if (!a.ok() || !b.ok()) return std::nullopt;
    return *a < *b ? -1 : *a > *b ? 1 : 0;
  }
  int c = have.compare(want);
  return c < 0 ? -1 : c > 0 ? 1 : 0;
}

bool Evaluate(Node const& n, LogFilter::Fields const& fields) {
  switch (n.kind) {
    case Node::Kind::kAnd:
      return std::all_of(n.children.begin(), n.children.end(), [&](auto const& c) { return Evaluate(*c, fields); });
    case Node::Kind::kOr:
      return std::any_of(n.children.begin(), n.children.end(), [&](auto const& c) { return Evaluate(*c, fields); });
    case Node::Kind::kNot:
      return !Evaluate(*n.children[0], fields);
    case Node::Kind::kCompare:
      break;
  }
  auto have = fields(n.field);
  if (!have) return n.op == "!=";
  if (n.op == ":") return Lower(*have).find(Lower(n.value)) != std::string::npos;
  auto c = Compare(n.field, *have, n.value);
  if (!c) return n.op == "!=";
  if (n.op == "=") return *c == 0;
  if (n.op == "!=") return *c != 0;
  if (n.op == "<") return *c < 0;
  if (n.op == "<=") return *c <= 0;
  if (n.op == ">") return *c > 0;
  return *c >= 0;  // >=
}

}  // namespace

int SeverityNumber(std::string_view name) {
  static constexpr std::pair<std::string_view, int> kLevels[] = {
      {"DEFAULT", 0},  {"DEBUG", 100},    {"INFO", 200},  {"NOTICE", 300},   {"WARNING", 400},
      {"ERROR", 500},  {"CRITICAL", 600}, {"ALERT", 700}, {"EMERGENCY", 800}};
  for (auto const& [n, v] : kLevels) {
    if (n == name) return v;
  }
  return -1;
}

StatusOr<LogFilter> LogFilter::Parse(std::string_view text) {
  if (text.size() > kMaxFilterBytes) return InvalidArgumentError("filter: longer than 8 KiB");
  auto tokens = Tokenize(text);
  if (!tokens.ok()) return tokens.status();
  Parser parser(*std::move(tokens));
  auto root = parser.Parse();
  if (!root.ok()) return root.status();
  return LogFilter(*std::move(root));
}

LogFilter::LogFilter(std::unique_ptr<Node> root) : root_(std::move(root)) {}
LogFilter::LogFilter(LogFilter&&) noexcept = default;
LogFilter& LogFilter::operator=(LogFilter&&) noexcept = default;
LogFilter::~LogFilter() = default;

bool LogFilter::Matches(Fields const& fields) const { return root_ == nullptr || Evaluate(*root_, fields); }

}  // namespace ferry
