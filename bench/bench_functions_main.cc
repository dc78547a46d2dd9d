// The trivial function the functions benchmark runs. `trivial` does no work beyond what every Ferry function
// does (the SDK's Started/Completed lines); given a `sent_us` attribute (the publisher's wall clock when it sent
// the message) it also logs how long the message took to reach it.
#include <chrono>
#include <string>

#include <ferry/function.h>

namespace {

void Trivial(ferry::Event const& event, ferry::Context const&) {
  auto it = event.attributes.find("sent_us");
  if (it == event.attributes.end()) return;
  auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  ferry::log::Info("latency_us=" + std::to_string(now_us - std::stoll(it->second)));
}

// A trivial HTTP function, for bench/http_functions_bench.sh.
ferry::Response Hello(ferry::Request const&) { return {200, {{"Content-Type", "text/plain"}}, "hello"}; }

}  // namespace

int main(int argc, char** argv) {
  return ferry::Run(argc, argv, ferry::Functions().Event("trivial", Trivial).Http("hello", Hello));
}
