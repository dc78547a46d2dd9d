#include "api/metrics.h"

#include <cstdio>
#include <string_view>

#include "common/prometheus.h"
#include "common/status_macros.h"

namespace ferry {

StatusOr<std::string> RenderMetrics(Broker& broker) {
  FERRY_ASSIGN_OR_RETURN(auto stats, broker.Stats());
  BrokerCounters counters = broker.Counters();
  int64_t now = broker.NowMillis();
  PrometheusWriter w;

  w.Family("ferry_topic_published_messages_total", "counter", "Messages published to the topic.");
  for (auto const& [topic, c] : counters.topics) {
    w.Sample("ferry_topic_published_messages_total", {{"topic", topic}}, static_cast<double>(c.published_messages));
  }
  w.Family("ferry_topic_published_bytes_total", "counter", "Bytes of message data published to the topic.");
  for (auto const& [topic, c] : counters.topics) {
    w.Sample("ferry_topic_published_bytes_total", {{"topic", topic}}, static_cast<double>(c.published_bytes));
  }

  w.Family("ferry_subscription_backlog_messages", "gauge", "Messages not yet acknowledged.");
  for (auto const& s : stats) {
    w.Sample("ferry_subscription_backlog_messages", {{"subscription", s.name}}, static_cast<double>(s.backlog));
  }
  w.Family("ferry_subscription_oldest_unacked_message_age_seconds", "gauge",
           "Age of the oldest unacknowledged message; 0 with an empty backlog.");
  for (auto const& s : stats) {
    double age = s.backlog > 0 ? static_cast<double>(now - s.oldest_unacked_publish_ms) / 1000.0 : 0.0;
    w.Sample("ferry_subscription_oldest_unacked_message_age_seconds", {{"subscription", s.name}}, age < 0 ? 0 : age);
  }

  struct Counter {
    char const* name;
    char const* help;
    int64_t SubscriptionCounters::*field;
  };
  constexpr Counter kCounters[] = {
      {"ferry_subscription_delivered_messages_total", "Deliveries, first and repeated.",
       &SubscriptionCounters::delivered},
      {"ferry_subscription_acked_messages_total", "Messages acknowledged.", &SubscriptionCounters::acked},
      {"ferry_subscription_nacked_messages_total", "Negative acknowledgements.", &SubscriptionCounters::nacked},
      {"ferry_subscription_expired_messages_total", "Leases that expired without an ack.",
       &SubscriptionCounters::expired},
      {"ferry_subscription_dead_lettered_messages_total", "Messages moved to the dead-letter topic.",
       &SubscriptionCounters::dead_lettered},
  };
  for (auto const& c : kCounters) {
    w.Family(c.name, "counter", c.help);
    for (auto const& s : stats) {
      auto it = counters.subscriptions.find(s.name);
      int64_t v = it == counters.subscriptions.end() ? 0 : it->second.*c.field;
      w.Sample(c.name, {{"subscription", s.name}}, static_cast<double>(v));
    }
  }
  return w.Take();
}

std::string WithLabel(std::string const& text, std::string const& name, std::string const& value) {
  std::string escaped;
  for (char c : value) {
    if (c == '\\' || c == '"') escaped += '\\';
    escaped += c == '\n' ? std::string("\\n") : std::string(1, c);
  }
  std::string const label = name + "=\"" + escaped + "\"";
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    if (line.empty() || line[0] == '#') {
      out += line;
    } else {
      // A sample: NAME{LABELS} VALUE or NAME VALUE.
      std::size_t name_end = line.find_first_of("{ ");
      if (name_end == std::string_view::npos) {
        out += line;
      } else if (line[name_end] == '{') {
        out += line.substr(0, name_end + 1);
        out += label;
        if (line.size() > name_end + 1 && line[name_end + 1] != '}') out += ',';
        out += line.substr(name_end + 1);
      } else {
        out += line.substr(0, name_end);
        out += '{' + label + '}';
        out += line.substr(name_end);
      }
    }
    if (end < text.size()) out += '\n';
    pos = end + 1;
  }
  return out;
}

}  // namespace ferry
