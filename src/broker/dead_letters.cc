#include "broker/dead_letters.h"

#include <algorithm>
#include <set>

#include "common/status_macros.h"
#include "store/delivery_policy.h"

namespace ferry {
namespace {

constexpr char kSubscriptionPrefix[] = "ferry-dead-letters-";
// A listing reads at most this many messages of the dead-letter subscription per call (those of other sources
// are skipped): a page may then hold fewer than asked, with next_after set.
constexpr int kMaxListScan = 20'000;

int IntAttribute(Attributes const& attributes, char const* key) {
  auto it = attributes.find(key);
  if (it == attributes.end()) return 0;
  try {
    return std::max(0, std::stoi(it->second));
  } catch (...) {
    return 0;
  }
}

// Whether `message` was dead-lettered by subscription `source` (its project and id).
bool CameFrom(PubsubMessage const& message, ParsedName const& source) {
  auto const& a = message.attributes;
  auto id = a.find("CloudPubSubDeadLetterSourceSubscription");
  auto project = a.find("CloudPubSubDeadLetterSourceSubscriptionProject");
  return id != a.end() && project != a.end() && id->second == source.id && project->second == source.project;
}

}  // namespace

std::string DeadLetterSubscriptionName(std::string const& dead_letter_topic) {
  auto parsed = ParseResourceName(dead_letter_topic, ResourceKind::kTopic);
  if (!parsed.ok()) return "";
  return MakeResourceName(parsed->project, ResourceKind::kSubscription, kSubscriptionPrefix + parsed->id);
}

StatusOr<std::string> DeadLetters::SubscriptionOf(std::string const& source) {
  FERRY_ASSIGN_OR_RETURN(auto sub, broker_.GetSubscription(source));
  if (!sub.dead_letter_policy) {
    return FailedPreconditionError("Subscription " + source + " has no dead-letter policy");
  }
  std::string const& topic = sub.dead_letter_policy->dead_letter_topic;
  std::string ours = DeadLetterSubscriptionName(topic);
  std::vector<std::string> names;
  std::string token;
  do {  // bounded: a topic's subscriptions, a page at a time
    FERRY_ASSIGN_OR_RETURN(auto page, broker_.ListTopicSubscriptions(topic, 1000, token));
    names.insert(names.end(), page.items.begin(), page.items.end());
    token = page.next_page_token;
  } while (!token.empty() && names.size() < 100'000);
  if (names.empty()) {
    return FailedPreconditionError("Dead-letter topic " + topic + " has no subscription, so the messages " + source +
                                   " dead-lettered were not kept; create " + ours + " to keep the next ones");
  }
  if (std::find(names.begin(), names.end(), ours) != names.end()) return ours;
  return *std::min_element(names.begin(), names.end());
}

StatusOr<DeadLetterPage> DeadLetters::List(std::string const& source, int64_t after, int max) {
  FERRY_ASSIGN_OR_RETURN(auto from, ParseResourceName(source, ResourceKind::kSubscription));
  DeadLetterPage page;
  FERRY_ASSIGN_OR_RETURN(page.dead_letter_subscription, SubscriptionOf(source));
  max = std::clamp(max, 1, kMaxPullMessages);
  for (int scanned = 0; scanned < kMaxListScan;) {
    FERRY_ASSIGN_OR_RETURN(auto held, broker_.Peek(page.dead_letter_subscription, after, kMaxPullMessages));
    if (held.empty()) return page;  // the end: next_after stays 0
    for (auto& h : held) {
      ++scanned;
      after = std::stoll(h.message.message_id);
      if (!CameFrom(h.message, from)) continue;
      DeadLetterEntry entry;
      entry.delivery_attempts = IntAttribute(h.message.attributes, "CloudPubSubDeadLetterSourceDeliveryCount");
      entry.redrives = IntAttribute(h.message.attributes, kRedriveCountAttribute);
      if (auto it = h.message.attributes.find(kLastErrorAttribute); it != h.message.attributes.end()) {
        entry.last_error = it->second;
      }
      entry.held = std::move(h);
      page.messages.push_back(std::move(entry));
      if (static_cast<int>(page.messages.size()) == max) {
        page.next_after = after;
        return page;
      }
    }
  }
  page.next_after = after;
  return page;
}

StatusOr<std::vector<std::string>> DeadLetters::Redrive(std::string const& source,
                                                        std::vector<std::string> const& ids, bool all) {
  return Move(source, ids, all, /*redrive=*/true);
}

StatusOr<std::vector<std::string>> DeadLetters::Purge(std::string const& source, std::vector<std::string> const& ids,
                                                      bool all) {
  return Move(source, ids, all, /*redrive=*/false);
}

// Reads the dead-letter subscription through, a page at a time, and moves the messages of `source` it finds (all,
// or those named) in one transaction a page: memory stays bounded whatever the backlog.
StatusOr<std::vector<std::string>> DeadLetters::Move(std::string const& source, std::vector<std::string> ids,
                                                     bool all, bool redrive) {
  FERRY_ASSIGN_OR_RETURN(auto from, ParseResourceName(source, ResourceKind::kSubscription));
  if (all == !ids.empty()) return InvalidArgumentError("Name the messages (message ids) or all of them, not both");
  if (ids.size() > static_cast<std::size_t>(kMaxPullMessages)) {
    return InvalidArgumentError("At most 1000 message ids a call; use all for more");
  }
  std::set<std::string> wanted(ids.begin(), ids.end());
  FERRY_ASSIGN_OR_RETURN(auto dead_letters, SubscriptionOf(source));
  std::vector<std::string> moved;
  int64_t after = 0;
  while (true) {
    FERRY_ASSIGN_OR_RETURN(auto held, broker_.Peek(dead_letters, after, kMaxPullMessages));
    if (held.empty()) break;
    std::vector<std::string> batch;
    for (auto const& h : held) {
      if (CameFrom(h.message, from) && (all || wanted.contains(h.message.message_id))) {
        batch.push_back(h.message.message_id);
      }
    }
    after = std::stoll(held.back().message.message_id);
    if (batch.empty()) continue;
    FERRY_ASSIGN_OR_RETURN(auto done, broker_.MoveMessages(dead_letters, batch, redrive ? source : "",
                                                           redrive ? MessageRewrite(RedriveCopy) : nullptr));
    moved.insert(moved.end(), done.begin(), done.end());
    if (!all && moved.size() >= wanted.size()) break;
  }
  return moved;
}

}  // namespace ferry
