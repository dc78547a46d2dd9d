// A function program for the SDK tests: the shape of a user's single entrypoint file.
#include <time.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

#include <cstdio>

#include <ferry/function.h>

namespace {

void Greet(ferry::Event const& event, ferry::Context const& context) {
  ferry::Json body = event.data_json();
  ferry::log::Info("greeting " + body["name"].AsString("nobody") + " on attempt " +
                   std::to_string(event.delivery_attempt) + " for " + context.resource + " attrs=" +
                   std::to_string(event.attributes.size()));
}

void Explode(ferry::Event const&, ferry::Context const&) { throw std::runtime_error("the database is down"); }

int64_t MonotonicNanos() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);  // comparable across processes
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// Sleeps {"ms": N}, logging when it began and ended, so tests can measure overlap across instances.
void Sleepy(ferry::Event const& event, ferry::Context const&) {
  ferry::log::Info("begin " + std::to_string(MonotonicNanos()));
  std::this_thread::sleep_for(std::chrono::milliseconds(event.data_json()["ms"].AsInt(0)));
  ferry::log::Info("end " + std::to_string(MonotonicNanos()));
}

void Crash(ferry::Event const&, ferry::Context const&) {
  std::fprintf(stderr, "about to crash\n");
  std::fflush(stderr);
  std::abort();
}

// Allocates and touches {"mb": N} megabytes, then holds them for a second (the supervisor samples every 100 ms).
void Hog(ferry::Event const& event, ferry::Context const&) {
  auto mb = event.data_json()["mb"].AsInt(0);
  std::vector<char*> blocks;
  for (int64_t i = 0; i < mb; ++i) {
    char* block = static_cast<char*>(std::malloc(1 << 20));
    std::memset(block, 1, 1 << 20);
    blocks.push_back(block);
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));
  for (char* b : blocks) std::free(b);
}

// One function that fails on demand, to show an instance replaced and the next invocation fine:
// {"ms": N} sleeps first; then {"crash": true} aborts, {"mb": N} holds N MB for a second; anything else succeeds.
void Chaos(ferry::Event const& event, ferry::Context const& context) {
  ferry::Json body = event.data_json();
  if (body["ms"].AsInt(0) > 0) std::this_thread::sleep_for(std::chrono::milliseconds(body["ms"].AsInt(0)));
  if (body["crash"].AsBool(false)) Crash(event, context);
  if (body["mb"].AsInt(0) > 0) Hog(event, context);
  ferry::log::Info("chaos survived");
}

// Appends this call's start and end (CLOCK_MONOTONIC, seconds) to $OVERLAP_FILE: cluster_test.py checks that no
// two calls of a function with max_instances 1 overlap, on whichever node they ran.
void Overlap(ferry::Event const&, ferry::Context const&) {
  auto now = [] {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
  };
  double start = now();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  double end = now();
  char const* path = std::getenv("OVERLAP_FILE");
  if (path == nullptr) throw std::runtime_error("OVERLAP_FILE is not set");
  FILE* f = std::fopen(path, "a");
  if (f == nullptr) throw std::runtime_error("cannot open OVERLAP_FILE");
  std::fprintf(f, "%.6f %.6f\n", start, end);
  std::fclose(f);
}

ferry::Response Echo(ferry::Request const& request) {
  ferry::Response response;
  response.status = request.headers.count("x-status") ? std::stoi(request.headers.at("x-status")) : 200;
  response.headers["X-Echo-Method"] = request.method;
  response.headers["Content-Type"] = "text/plain";
  response.body = request.path + "?" + request.query + " " + request.body;
  return response;
}

}  // namespace

int main(int argc, char** argv) {
  return ferry::Run(argc, argv,
                    ferry::Functions()
                        .Event("greet", Greet)
                        .Event("explode", Explode)
                        .Event("sleepy", Sleepy)
                        .Event("crash", Crash)
                        .Event("hog", Hog)
                        .Event("chaos", Chaos)
                        .Event("overlap", Overlap)
                        .Http("echo", Echo));
}
