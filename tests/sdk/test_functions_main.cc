// A function program for the SDK tests: the shape of a user's single entrypoint file.
#include <stdexcept>

#include <ferry/function.h>

namespace {

void Greet(ferry::Event const& event, ferry::Context const& context) {
  ferry::Json body = event.data_json();
  ferry::log::Info("greeting " + body["name"].AsString("nobody") + " on attempt " +
                   std::to_string(event.delivery_attempt) + " for " + context.resource + " attrs=" +
                   std::to_string(event.attributes.size()));
}

void Explode(ferry::Event const&, ferry::Context const&) { throw std::runtime_error("the database is down"); }

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
  return ferry::Run(argc, argv, ferry::Functions().Event("greet", Greet).Event("explode", Explode).Http("echo", Echo));
}
