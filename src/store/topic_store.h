#pragma once

#include <string>
#include <vector>

#include "ferry/status.h"
#include "model/resources.h"

namespace ferry {

struct Page {
  std::string after;  // exclusive lower bound on the name; empty: from the start
  int limit = 100;
};

// Topics and subscriptions: what exists, and its settings.
class TopicStore {
 public:
  virtual ~TopicStore() = default;

  [[nodiscard]] virtual Status CreateTopic(Topic const& topic) = 0;
  [[nodiscard]] virtual StatusOr<Topic> GetTopic(std::string const& name) = 0;
  [[nodiscard]] virtual Status UpdateTopic(Topic const& topic) = 0;
  // Subscriptions of a deleted topic stay, with their topic set to "_deleted-topic_".
  [[nodiscard]] virtual Status DeleteTopic(std::string const& name) = 0;
  [[nodiscard]] virtual StatusOr<std::vector<Topic>> ListTopics(std::string const& project, Page page) = 0;
  [[nodiscard]] virtual StatusOr<std::vector<std::string>> ListTopicSubscriptions(std::string const& topic,
                                                                                  Page page) = 0;

  // NOT_FOUND when the topic or the dead-letter topic does not exist.
  [[nodiscard]] virtual Status CreateSubscription(Subscription const& sub) = 0;
  [[nodiscard]] virtual StatusOr<Subscription> GetSubscription(std::string const& name) = 0;
  [[nodiscard]] virtual Status UpdateSubscription(Subscription const& sub) = 0;
  [[nodiscard]] virtual Status DeleteSubscription(std::string const& name) = 0;
  [[nodiscard]] virtual StatusOr<std::vector<Subscription>> ListSubscriptions(std::string const& project,
                                                                              Page page) = 0;
  // Every subscription with a push endpoint, of every project.
  [[nodiscard]] virtual StatusOr<std::vector<Subscription>> ListPushSubscriptions() = 0;
};

}  // namespace ferry
