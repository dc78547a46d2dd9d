// The same trivial HTTP function as bench/bench_functions_main.cc's `hello`.
#include <ferry/function.h>

int main(int argc, char** argv) {
  return ferry::Run(argc, argv, ferry::Functions().Http("hello", [](ferry::Request const&) {
    return ferry::Response{200, {{"Content-Type", "text/plain"}}, "hello"};
  }));
}
